"""Incremental views and decisions equal a full recompute after any sequence of changes.

The oracle is the full pass: :func:`build_volume_views` + :func:`build_pool_views` over every object and
:func:`decide` over every view. The incremental side is what the reconciler runs: a :class:`ViewIndex` fed
only the keys that changed, and an :class:`IncrementalPlanner` told only which views changed. Changes are
adds, updates and deletes of PVs, PVCs, MayastorVolumes, DiskPools and policies, new score snapshots (healthy
or not, changing some scores or all), volumes starting and finishing migrations, external groups, and time
passing (cooldowns run out, snapshots grow old), pools filling up past a policy's ``maxTierFillPercent`` (tier
pressure, with the running migrations' directions), and peaks over a policy's idle period. After each batch both plans must be equal, and the
planner's reported changes must be exactly the decisions that differ from the previous full plan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from couchestor.kube.objects import ObjectKey
from couchestor.tiering import incremental
from couchestor.tiering.decide import decide
from couchestor.tiering.heat import HeatScore, PeakScore, PeakSnapshot, ScoreSnapshot
from couchestor.tiering.incremental import IncrementalPlanner
from couchestor.tiering.plan import DecideOptions, Decision, Plan
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier, compile_policy
from couchestor.tiering.views import (
    LAST_MIGRATION_ANNOTATION,
    ViewIndex,
    build_pool_views,
    build_volume_views,
)
from k8s_schemas.annotations import EXCLUDE, PIN, PIN_UNTIL
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.storage_policy import StoragePolicy

START = datetime(2026, 2, 1, 12, tzinfo=UTC)
GiB = 2**30
NS = "mayastor"
POOLS = ("hot-1", "hot-2", "warm-1", "cold-1", "cold-2")
WINDOWS = {"1h": 3600, "10m": 600}
WEEK = 7 * 86_400


class FakeStore:
    """The two calls the index makes of a store, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, Any] = {}

    def get_key(self, key: ObjectKey) -> Any:
        return self.objects.get(key)

    def list(self) -> list[Any]:
        return list(self.objects.values())


def _pv(i: int, d: Any) -> PersistentVolume:
    annotations = {}
    if d["last"] == "garbled":
        annotations[LAST_MIGRATION_ANNOTATION] = "last tuesday"
    elif d["last"] is not None:
        annotations[LAST_MIGRATION_ANNOTATION] = (START + timedelta(minutes=d["last"])).isoformat()
    meta: dict[str, Any] = {"name": f"pv-{i}", "annotations": annotations}
    if d["deleting"]:
        meta["deletionTimestamp"] = START.isoformat()
    spec: dict[str, Any] = {"storageClassName": d["sc"], "capacity": {"storage": f"{d['size']}Gi"}}
    if d["handle"]:
        spec["csi"] = {"driver": "io.openebs.csi-mayastor", "volumeHandle": f"u-{i}"}
    if d["claim"] is not None:
        spec["claimRef"] = {"namespace": "app", "name": f"c-{d['claim']}"}
    return msgspec.convert({"metadata": meta, "spec": spec}, PersistentVolume)


def _pvc(j: int, d: Any) -> PersistentVolumeClaim:
    labels = {"team": d["team"]}
    if d["group"] is not None:
        labels["app"] = d["group"]
    annotations: dict[str, str] = {}
    pin, until = d.get("pin"), d.get("until")
    if pin == "exclude":
        annotations[EXCLUDE] = "true"
    elif pin is not None:
        annotations[PIN] = pin  # "lukewarm" cannot be read
        if until is not None:
            annotations[PIN_UNTIL] = (START + timedelta(seconds=until)).isoformat()
    meta = {"namespace": "app", "name": f"c-{j}", "labels": labels, "annotations": annotations}
    return msgspec.convert({"metadata": meta}, PersistentVolumeClaim)


def _mv(i: int, d: Any) -> MayastorVolume:
    name = f"u-{i}" if d["by_handle"] else f"pv-{i}"
    replicas = [
        {"pool": p, "node": f"n-{p}", "state": state, "syncState": sync} for p, state, sync in d["replicas"]
    ]
    spec: dict[str, Any] = {"numReplicas": d["num"], "size": d["size"] * GiB}
    if d["inclusion"]:
        spec["topology"] = {"pool": {"labelled": {"inclusion": {"tier": d["inclusion"]}}}}
    return msgspec.convert(
        {"metadata": {"name": name, "namespace": NS}, "spec": spec, "status": {"replicas": replicas}},
        MayastorVolume,
    )


def _pool(name: str, d: Any) -> DiskPool:
    return msgspec.convert(
        {
            "metadata": {"name": name, "namespace": NS, "labels": {"tier": d["tier"]}},
            "spec": {"node": f"n-{name}"},
            "status": {
                "state": d["health"],
                "capacity": (d["free"] + d.get("used", 0)) * GiB,
                "used": d.get("used", 0) * GiB,
            },
        },
        DiskPool,
    )


def _policy(name: str, d: Any) -> StoragePolicy:
    spec: dict[str, Any] = {
        "highWatermarkIOPS": 5000,
        "lowWatermarkIOPS": d["low"],
        "samplingWindow": d["window"],
        "cooldownPeriod": d["cooldown"],
        "enabled": d["enabled"],
        "dryRun": d["dry_run"],
        "maxConcurrentMigrations": d["slots"],
        "volumeSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": d["teams"]}]},
    }
    if d["warm"]:
        spec["warmWatermarkIOPS"] = 2000
        spec["warmPoolSelector"] = {"matchLabels": {"tier": "warm"}}
    if d["group"]:
        spec["groupLabel"] = "app"
    if d.get("fill") is not None:
        spec["maxTierFillPercent"] = d["fill"]
    if d.get("idle") is not None:
        spec["coldAfterIdle"] = {"period": "7d", "belowIOPS": d["idle"]}
    return msgspec.convert({"metadata": {"name": name, "generation": d["gen"]}, "spec": spec}, StoragePolicy)


pv_data = st.fixed_dictionaries(
    {
        "sc": st.sampled_from(["mayastor", "mayastor", "other"]),
        "size": st.sampled_from([1, 10, 50]),
        "handle": st.booleans(),
        "claim": st.none() | st.integers(0, 5),
        "last": st.none() | st.integers(-3000, 0) | st.just("garbled"),
        "deleting": st.sampled_from([False, False, False, True]),
    }
)
pvc_data = st.fixed_dictionaries(
    {
        "team": st.sampled_from(["x", "y", "z"]),
        "group": st.none() | st.sampled_from(["g1", "g2"]),
        "pin": st.sampled_from([None, None, None, "hot", "warm", "cold", "exclude", "lukewarm"]),
        # Pins ending within the time the changes move the clock on (the world starts at START).
        "until": st.none() | st.sampled_from([-60, 30, 400, 2000]),
    }
)
replica = st.tuples(
    st.sampled_from((*POOLS, "gone")),
    st.sampled_from(["Online", "Online", "Online", "Faulted"]),
    st.sampled_from(["Synced", "Synced", "Synced", "Syncing"]),
)
mv_data = st.fixed_dictionaries(
    {
        "by_handle": st.booleans(),
        "replicas": st.lists(replica, min_size=0, max_size=2, unique_by=lambda r: r[0]),
        "num": st.integers(1, 2),
        "size": st.sampled_from([1, 10, 50]),
        "inclusion": st.none() | st.sampled_from(["hot", "cold"]),
    }
)
pool_data = st.fixed_dictionaries(
    {
        "tier": st.sampled_from(["hot", "warm", "cold"]),
        "health": st.sampled_from(["Online", "Online", "Faulted"]),
        "free": st.sampled_from([5, 30, 500]),
        "used": st.sampled_from([0, 20, 400]),
    }
)
policy_data = st.fixed_dictionaries(
    {
        "low": st.sampled_from([500, 1000]),
        "window": st.sampled_from(list(WINDOWS)),
        "cooldown": st.sampled_from(["1h", "24h"]),
        "enabled": st.sampled_from([True, True, False]),
        "dry_run": st.sampled_from([False, False, True]),
        "slots": st.integers(1, 3),
        "teams": st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=2, unique=True),
        "warm": st.booleans(),
        "group": st.booleans(),
        "gen": st.integers(1, 3),
        "fill": st.none() | st.sampled_from([10, 50, 90]),
        "idle": st.none() | st.sampled_from([10, 1000]),
    }
)
score_keys = st.sampled_from([f"pv-{i}" for i in range(8)] + [f"u-{i}" for i in range(8)])
snapshot_data = st.fixed_dictionaries(
    {
        "window": st.sampled_from(list(WINDOWS.values())),
        "healthy": st.sampled_from([True, True, True, False]),
        "scores": st.dictionaries(
            score_keys,
            st.tuples(
                st.sampled_from([0.0, 300.0, 1500.0, 3000.0, 9000.0, float("nan")]),
                st.sampled_from([1.0, 0.2]),
            ),
            max_size=10,
        ),
        "merge": st.booleans(),
        # Peaks over the idle period (7d): None keeps the last ones.
        "peaks": st.none()
        | st.fixed_dictionaries(
            {
                "healthy": st.sampled_from([True, True, False]),
                "values": st.dictionaries(
                    score_keys,
                    st.tuples(st.sampled_from([0.0, 5.0, 50.0, 5000.0, None]), st.sampled_from([1.0, 0.2])),
                    max_size=10,
                ),
            }
        ),
    }
)

change = st.one_of(
    st.tuples(st.just("pv"), st.integers(0, 7), st.none() | pv_data),
    st.tuples(st.just("pvc"), st.integers(0, 5), st.none() | pvc_data),
    st.tuples(st.just("mv"), st.integers(0, 7), st.none() | mv_data),
    st.tuples(st.just("pool"), st.sampled_from(POOLS), st.none() | pool_data),
    st.tuples(
        st.just("room"),
        st.sampled_from(POOLS),
        st.tuples(
            st.sampled_from(["Online", "Online", "Faulted"]),
            st.sampled_from([5, 30, 500, 600]),
            st.sampled_from([0, 20, 400]),
        ),
    ),
    st.tuples(st.just("policy"), st.sampled_from(["p1", "p2", "p3"]), st.none() | policy_data),
    st.tuples(st.just("scores"), st.just(0), snapshot_data),
    st.tuples(st.just("time"), st.just(0), st.sampled_from([1, 10, 90, 400, 1500])),
    st.tuples(st.just("flight"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("recent"), st.integers(0, 7), st.none() | st.integers(-120, 0)),
    st.tuples(st.just("vgr"), st.integers(0, 7), st.none() | st.sampled_from(["vgr:a", "vgr:b"])),
    st.tuples(st.just("plan"), st.just(0), st.just(None)),
)


def _by_pair(plan: Plan) -> dict[tuple[str, str], Decision]:
    return {(d.policy, d.volume): d for d in plan.decisions}


def _summary(plan: Plan) -> list[Any]:
    return [
        (
            p.policy,
            p.generation,
            p.problem,
            p.enabled,
            p.dry_run,
            dict(p.tier_counts),
            dict(p.conflicts),
            dict(p.unreadable),
            p.in_flight,
            p.migrations,
            p.watched,
            dict(p.tier_fill),
        )
        for p in plan.policies
    ]


class World:
    def __init__(self) -> None:
        self.pvs, self.pvcs, self.mvs, self.pools = FakeStore(), FakeStore(), FakeStore(), FakeStore()
        self.policies: dict[str, StoragePolicy] = {}
        self.scores: dict[int, ScoreSnapshot] = {}
        self.now = START
        self.in_flight: set[str] = set()
        self.recent: dict[str, datetime] = {}
        self.groups: dict[str, str] = {}
        self.index = ViewIndex(self.pvs, self.pvcs, self.mvs, self.pools)
        self.planner = IncrementalPlanner()
        self.changed: dict[str, set[ObjectKey]] = {"pv": set(), "pvc": set(), "mv": set()}
        self.pools_changed = False
        self.last_full: dict[tuple[str, str], Decision] | None = None
        self.started = False
        self.by_index = True

    def apply(self, kind: str, which: Any, data: Any) -> None:
        if kind == "pv":
            self._put(
                self.pvs, ObjectKey("", f"pv-{which}"), None if data is None else _pv(which, data), "pv"
            )
        elif kind == "pvc":
            obj = None if data is None else _pvc(which, data)
            self._put(self.pvcs, ObjectKey("app", f"c-{which}"), obj, "pvc")
        elif kind == "mv":
            # Both possible names of volume `which`: a put replaces whichever one it had.
            for name in (f"u-{which}", f"pv-{which}"):
                self._put(self.mvs, ObjectKey(NS, name), None, "mv")
            if data is not None:
                obj = _mv(which, data)
                self._put(self.mvs, ObjectKey(NS, str(obj.metadata.name)), obj, "mv")
        elif kind == "pool":
            key = ObjectKey(NS, which)
            if data is None:
                self.pools.objects.pop(key, None)
            else:
                self.pools.objects[key] = _pool(which, data)
            self.pools_changed = True
        elif kind == "room":
            key = ObjectKey(NS, which)
            pool = self.pools.objects.get(key)
            if pool is not None:
                health, free, used = data
                tier = pool.metadata.labels["tier"]
                self.pools.objects[key] = _pool(
                    which, {"tier": tier, "health": health, "free": free, "used": used}
                )
                self.pools_changed = True
        elif kind == "policy":
            if data is None:
                self.policies.pop(which, None)
            else:
                self.policies[which] = _policy(which, data)
        elif kind == "scores":
            self._scores(data)
        elif kind == "time":
            self.now += timedelta(seconds=data)
        elif kind == "flight":
            (self.in_flight.add if data else self.in_flight.discard)(f"pv-{which}")
        elif kind == "recent":
            if data is None:
                self.recent.pop(f"pv-{which}", None)
            else:
                self.recent[f"pv-{which}"] = self.now + timedelta(minutes=data)
        elif kind == "vgr":
            if data is None:
                self.groups.pop(f"pv-{which}", None)
            else:
                self.groups[f"pv-{which}"] = data

    def _put(self, store: FakeStore, key: ObjectKey, obj: Any, kind: str) -> None:
        if obj is None:
            if store.objects.pop(key, None) is not None:
                self.changed[kind].add(key)
        else:
            store.objects[key] = obj
            self.changed[kind].add(key)

    def _scores(self, d: Any) -> None:
        window = d["window"]
        if not d["healthy"]:
            self.scores[window] = ScoreSnapshot.failed(window, self.now, "connection refused")
            return
        old = self.scores.get(window)
        heat = dict(old.scores) if d["merge"] and old is not None else {}
        for key, (score, coverage) in d["scores"].items():
            value = None if score != score else score
            heat[key] = HeatScore(key, value, None, None, None, coverage, 10, window, self.now, "m")
        peaks = dict(old.peaks) if old is not None else {}
        if d.get("peaks") is not None:
            p = d["peaks"]
            was = peaks.get(WEEK)
            values = dict(was.peaks) if d["merge"] and was is not None and was.healthy else {}
            values.update({k: PeakScore(v, c) for k, (v, c) in p["values"].items()})
            peaks[WEEK] = PeakSnapshot(
                WEEK, p["healthy"], self.now, values if p["healthy"] else {}, None if p["healthy"] else "down"
            )
        self.scores[window] = ScoreSnapshot(window, True, self.now, heat, peaks=peaks)

    def rules(self) -> list[PolicyRules | PolicyProblem]:
        return [compile_policy(p) for p in self.policies.values()]

    def moving(self) -> dict[str, tuple[Tier, Tier]]:
        """The running migrations: even volumes move down from hot, odd ones up from cold."""
        return {
            name: (Tier.COLD, Tier.HOT) if int(name.rsplit("-", 1)[1]) % 2 else (Tier.HOT, Tier.COLD)
            for name in self.in_flight
        }

    def check(self) -> None:
        opts = DecideOptions(max_score_age_seconds=1200)
        rules = self.rules()
        moving = self.moving()
        full = decide(
            rules,
            build_volume_views(self.pvs.list(), self.pvcs.list(), self.mvs.list()),
            build_pool_views(self.pools.list()),
            self.scores,
            set(self.in_flight),
            dict(self.recent),
            self.now,
            opts,
            groups=dict(self.groups),
            moving=moving,
        )
        if not self.started:
            self.index.rebuild()
            changed = None
            self.started = True
        else:
            changed = self.index.update(
                self.changed["pv"], self.changed["pvc"], self.changed["mv"], pools=self.pools_changed
            )
        self.changed = {"pv": set(), "pvc": set(), "mv": set()}
        self.pools_changed = False
        assert self.index.views == {
            v.name: v for v in build_volume_views(self.pvs.list(), self.pvcs.list(), self.mvs.list())
        }
        assert self.index.pools == build_pool_views(self.pools.list())
        inc = self.planner.plan(
            rules,
            self.index.views,
            self.index.pools,
            self.scores,
            set(self.in_flight),
            dict(self.recent),
            self.now,
            opts,
            groups=dict(self.groups),
            changed=changed,
            handle_names=self.index.names_with_handle if self.by_index else None,
            moving=moving,
        )
        assert _by_pair(inc) == _by_pair(full)
        assert _summary(inc) == _summary(full)
        assert inc.migrations == full.migrations
        now_full = _by_pair(full)
        if self.last_full is not None:
            expected_changes = sorted(
                (d for k, d in now_full.items() if self.last_full.get(k) != d),
                key=lambda d: (d.policy, d.volume),
            )
            expected_removed = [
                self.last_full[k] for k in sorted(k for k in self.last_full if k not in now_full)
            ]
            assert [after for _, after in self.planner.changes] == expected_changes
            assert [before for before, _ in self.planner.changes] == [
                self.last_full.get((d.policy, d.volume)) for d in expected_changes
            ]
            assert self.planner.removed == expected_removed
        self.last_full = now_full


def _seeded(rng_seed: int) -> World:
    """A world where most volumes are decided something interesting: pools of every tier, two policies,
    eight volumes with claims and MayastorVolumes, scores for both windows."""
    world = World()
    for name, tier in zip(POOLS, ("hot", "hot", "warm", "cold", "cold"), strict=True):
        used = 400 if tier == "hot" and rng_seed in (1, 4) else 0
        world.apply("pool", name, {"tier": tier, "health": "Online", "free": 500, "used": used})
    base = {
        "low": 500,
        "window": "1h",
        "cooldown": "1h",
        "enabled": True,
        "dry_run": False,
        "slots": 2,
        "warm": True,
        "group": True,
        "gen": 1,
        "fill": 40 if rng_seed in (1, 3, 4) else None,
        "idle": 1000 if rng_seed != 2 else None,
    }
    world.apply("policy", "p1", {**base, "teams": ["x"]})
    world.apply(
        "policy",
        "p2",
        {
            **base,
            "teams": ["y"],
            "window": "10m",
            "warm": False,
            "group": False,
            "dry_run": rng_seed in (2, 4),
            "idle": 10 if rng_seed in (1, 3) else None,
        },
    )
    for i in range(8):
        world.apply(
            "pvc",
            i % 6,
            {
                "team": "xy"[i % 2],
                "group": ("g1", "g2", None)[i % 3],
                "pin": (None, "cold", None, None, "hot", None)[(i + rng_seed) % 6],
                "until": 400 if i % 2 else None,
            },
        )
        world.apply(
            "pv",
            i,
            {
                "sc": "mayastor",
                "size": 10,
                "handle": i % 3 != 0,
                "claim": i % 6,
                "last": -30 if i == 5 else None,
                "deleting": False,
            },
        )
        pool = ("hot-1", "cold-1", "warm-1", "cold-2")[(i + rng_seed) % 4]
        world.apply(
            "mv",
            i,
            {
                "by_handle": i % 3 != 0,
                "replicas": [(pool, "Online", "Synced")],
                "num": 1,
                "size": 10,
                "inclusion": None,
            },
        )
    iops = (0.0, 300.0, 1500.0, 3000.0, 9000.0)
    for window in WINDOWS.values():
        scores = {f"pv-{i}": (iops[(i + rng_seed) % 5], 1.0) for i in range(8)}
        peaks = {f"pv-{i}": ((0.0, 50.0, 5000.0)[(i + rng_seed) % 3], 1.0) for i in range(8)}
        world.apply(
            "scores",
            0,
            {
                "window": window,
                "healthy": True,
                "merge": False,
                "scores": scores,
                "peaks": {"healthy": True, "values": peaks},
            },
        )
    return world


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 4), st.lists(change, min_size=1, max_size=40))
def test_incremental_plan_equals_a_full_recompute(seed, changes):
    world = _seeded(seed)
    world.by_index = seed != 3  # also the planner's own scan for scores labelled by volume handle
    world.check()
    for kind, which, data in changes:
        world.apply(kind, which, data)
        if kind == "plan" or len(changes) < 20:
            world.check()
    world.check()


def _count_judged(monkeypatch) -> list[str]:
    """From now on, the names of the volumes the planner judges, in order."""
    judged: list[str] = []
    real = incremental._judge

    def counting(policy, v, *args, **kw):
        judged.append(v.name)
        return real(policy, v, *args, **kw)

    monkeypatch.setattr(incremental, "_judge", counting)
    return judged


@pytest.mark.parametrize("label", ["pv", "u"])
def test_a_change_to_one_volume_rejudges_only_that_volume(monkeypatch, label):
    """After the first pass, a heat change of one volume makes the planner judge that volume alone, whether
    Prometheus labels volumes by PV name or by volume UUID."""
    world = World()
    world.apply("pool", "hot-1", {"tier": "hot", "health": "Online", "free": 500})
    world.apply("pool", "cold-1", {"tier": "cold", "health": "Online", "free": 500})
    policy = {
        "low": 500,
        "window": "1h",
        "cooldown": "1h",
        "enabled": True,
        "dry_run": False,
        "slots": 2,
        "teams": ["x"],
        "warm": False,
        "group": False,
        "gen": 1,
    }
    world.apply("policy", "p1", policy)
    for i in range(6):
        world.apply("pvc", i, {"team": "x", "group": None})
        world.apply(
            "pv",
            i,
            {"sc": "mayastor", "size": 10, "handle": True, "claim": i, "last": None, "deleting": False},
        )
        world.apply(
            "mv",
            i,
            {
                "by_handle": True,
                "replicas": [("cold-1", "Online", "Synced")],
                "num": 1,
                "size": 10,
                "inclusion": None,
            },
        )
    world.apply(
        "scores",
        0,
        {
            "window": 3600,
            "healthy": True,
            "merge": False,
            "scores": {f"{label}-{i}": (1000.0, 1.0) for i in range(6)},
        },
    )
    world.check()
    judged = _count_judged(monkeypatch)
    world.apply(
        "scores", 0, {"window": 3600, "healthy": True, "merge": True, "scores": {f"{label}-3": (9000.0, 1.0)}}
    )
    world.check()
    assert judged == ["pv-3"]
    assert [(d.volume, d.label) for _, d in world.planner.changes] == [("pv-3", "hot")]


def _idle_world(idle: int | None = 10) -> World:
    """One volume on hot, quiet over the window, and a policy that wants it idle for 7d first (``idle``
    None: a policy without an idle period)."""
    world = World()
    world.apply("pool", "hot-1", {"tier": "hot", "health": "Online", "free": 500})
    world.apply("pool", "cold-1", {"tier": "cold", "health": "Online", "free": 500})
    policy = {
        "low": 500,
        "window": "1h",
        "cooldown": "1h",
        "enabled": True,
        "dry_run": False,
        "slots": 2,
        "teams": ["x"],
        "warm": False,
        "group": False,
        "gen": 1,
        "idle": idle,
    }
    world.apply("policy", "p1", policy)
    world.apply("pvc", 0, {"team": "x", "group": None})
    world.apply(
        "pv", 0, {"sc": "mayastor", "size": 10, "handle": False, "claim": 0, "last": None, "deleting": False}
    )
    world.apply(
        "mv",
        0,
        {
            "by_handle": False,
            "replicas": [("hot-1", "Online", "Synced")],
            "num": 1,
            "size": 10,
            "inclusion": None,
        },
    )
    return world


def _refresh(world: World, peaks: dict[str, tuple[float | None, float]] | None, healthy: bool = True) -> None:
    scores = {"pv-0": (0.0, 1.0)}
    data = {"window": 3600, "healthy": True, "merge": True, "scores": scores}
    data["peaks"] = None if peaks is None else {"healthy": healthy, "values": peaks}
    world.apply("scores", 0, data)


def test_a_change_of_a_volumes_peak_alone_judges_it_again():
    world = _idle_world()
    _refresh(world, {"pv-0": (50.0, 1.0)})
    world.check()
    assert world.last_full is not None
    assert world.last_full[("p1", "pv-0")].label == "stay"
    _refresh(world, {"pv-0": (0.0, 1.0)})  # the same score, a new peak
    world.check()
    assert world.last_full[("p1", "pv-0")].label == "cold"


def test_peaks_growing_old_while_the_window_is_fresh_judge_every_volume_again():
    world = _idle_world()
    _refresh(world, {"pv-0": (0.0, 1.0)})
    world.check()
    assert world.last_full is not None
    assert world.last_full[("p1", "pv-0")].label == "cold"
    world.apply("time", 0, 1500)
    _refresh(world, None)  # fresh scores, the peaks of 1500 s ago
    world.check()
    assert world.last_full[("p1", "pv-0")].label == "skip:metrics-unavailable"


def test_scores_growing_older_still_judge_no_volume_again(monkeypatch):
    """Scores too old skip every volume; later passes, the scores older still, judge none of them again (the
    skip says when the scores were fetched, not how old they are: that would change at every pass)."""
    world = _idle_world(idle=None)
    _refresh(world, None)
    world.check()
    world.apply("time", 0, 1500)
    world.check()
    assert world.last_full is not None
    assert world.last_full[("p1", "pv-0")].label == "skip:metrics-unavailable"
    judged = _count_judged(monkeypatch)
    world.apply("time", 0, 400)
    world.check()
    assert judged == []
    assert world.last_full[("p1", "pv-0")].label == "skip:metrics-unavailable"
