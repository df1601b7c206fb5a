"""CPU time of the reconciler's decision work at growing volume counts: the first (full) pass, and what one
change costs after it.

For each size, the watched objects (PV, PVC, MayastorVolume per volume; 12 pools; 3 policies selecting
disjoint thirds by a PVC label, with about a fifth of the volumes wanting to move) are built once, outside
the timing, in plain stores. Then, as the reconciler does it (:class:`~couchestor.tiering.views.ViewIndex` and
:class:`~couchestor.tiering.incremental.IncrementalPlanner`):

- **first pass**: every view built and every volume judged (the full pass);
- **one volume's heat**: a new score snapshot in which one volume's score crossed a watermark;
- **one volume's labels**: its PVC relabelled so that another policy selects it;
- **every score**: a snapshot in which every volume's score changed (a score refresh after a load shift).

Each figure is the best ``time.process_time`` of several runs (the process's CPU, not wall time: on a shared
machine wall time says more about the neighbours). The full pass per volume is also reported, to show
whether its cost per volume stays flat as the count grows.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from couchestor.kube.objects import ObjectKey
from couchestor.tiering.heat import HeatScore, ScoreSnapshot
from couchestor.tiering.incremental import IncrementalPlanner
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.policy import PolicyRules
from couchestor.tiering.views import ViewIndex
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from tests.bench.decide import NOW, TEAMS, WINDOW, _policies
from tests.bench.timing import growth_vs_linear

GIB = 2**30


class _Store:
    """The two calls :class:`ViewIndex` makes of a store, over a dict."""

    def __init__(self, objects: dict[ObjectKey, Any]) -> None:
        self.objects = objects

    def get_key(self, key: ObjectKey) -> Any:
        return self.objects.get(key)

    def list(self) -> list[Any]:
        return list(self.objects.values())


def _objects(n: int) -> tuple[_Store, _Store, _Store, _Store]:
    pvs, pvcs, mvs = [], [], []
    for i in range(n):
        uid = f"{i:08d}-0000-4000-8000-000000000000"
        tier = "hot" if i % 2 else "cold"
        pvcs.append(
            {
                "metadata": {
                    "namespace": f"team-{TEAMS[i % 3]}",
                    "name": f"data-{i}",
                    "labels": {"team": TEAMS[i % 3], "app": f"app-{i % 50}"},
                }
            }
        )
        pvs.append(
            {
                "metadata": {"name": f"pvc-{i:08d}"},
                "spec": {
                    "storageClassName": "mayastor",
                    "capacity": {"storage": "10Gi"},
                    "csi": {"driver": "io.openebs.csi-mayastor", "volumeHandle": uid},
                    "claimRef": {"namespace": f"team-{TEAMS[i % 3]}", "name": f"data-{i}"},
                },
            }
        )
        mvs.append(
            {
                "metadata": {"name": uid, "namespace": "mayastor"},
                "spec": {"numReplicas": 1, "size": 10 * GIB},
                "status": {
                    "replicas": [
                        {
                            "pool": f"{tier}-{i % 6}",
                            "node": f"node-{i % 6}",
                            "state": "Online",
                            "syncState": "Synced",
                        }
                    ]
                },
            }
        )
    pools = [
        {
            "metadata": {"name": f"{tier}-{i}", "namespace": "mayastor", "labels": {"tier": tier}},
            "spec": {"node": f"node-{i}"},
            "status": {"state": "Online", "capacity": 100_000 * GIB, "used": 0},
        }
        for tier in ("hot", "cold")
        for i in range(6)
    ]

    def store(kind: type[Any], docs: list[dict[str, Any]]) -> _Store:
        objs = msgspec.json.decode(msgspec.json.encode(docs), type=list[kind])  # type: ignore[valid-type]
        return _Store({ObjectKey(o.metadata.namespace or "", o.metadata.name): o for o in objs})

    return (
        store(PersistentVolume, pvs),
        store(PersistentVolumeClaim, pvcs),
        store(MayastorVolume, mvs),
        store(DiskPool, pools),
    )


def _snapshot(n: int, seed: int, at: datetime) -> ScoreSnapshot:
    rng = random.Random(seed)
    heat = {}
    for i in range(n):
        name = f"pvc-{i:08d}"
        roll = rng.random()
        iops = rng.uniform(5001, 20000) if roll < 0.1 else rng.uniform(0, 499) if roll < 0.6 else 2000.0
        heat[name] = HeatScore(name, iops, None, None, None, 1.0, 240, WINDOW, at, "openebs_volume_iops")
    return ScoreSnapshot(WINDOW, True, at, heat)


def _best(runs: int, setup: Callable[[], Callable[[], Any]]) -> float:
    best = float("inf")
    for _ in range(runs):
        work = setup()
        gc.collect()
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def _size(n: int, repeat: int) -> dict[str, Any]:
    policies: list[PolicyRules] = _policies()
    pvs, pvcs, mvs, pools = _objects(n)
    snapshot = _snapshot(n, 1, NOW)
    opts = DecideOptions()
    state: dict[str, Any] = {}

    def first() -> Callable[[], Any]:
        index = ViewIndex(pvs, pvcs, mvs, pools)
        planner = IncrementalPlanner()
        state.update(index=index, planner=planner, scores={WINDOW: snapshot})

        def work() -> None:
            index.rebuild()
            planner.plan(policies, index.views, index.pools, state["scores"], set(), {}, NOW, opts)

        return work

    first_cpu = _best(repeat, first)
    index: ViewIndex = state["index"]
    planner: IncrementalPlanner = state["planner"]

    def after(change: Callable[[], tuple[set[ObjectKey], set[ObjectKey]]]) -> Callable[[], Any]:
        def work() -> None:
            pv_keys, pvc_keys = change()
            changed = index.update(pv_keys, pvc_keys)
            planner.plan(
                policies,
                index.views,
                index.pools,
                state["scores"],
                set(),
                {},
                NOW,
                opts,
                changed=changed,
                handle_names=index.names_with_handle,
            )

        return work

    flip = {"n": 0}

    def one_heat() -> Callable[[], Any]:
        flip["n"] += 1
        name = f"pvc-{(flip['n'] * 7919) % n:08d}"
        heat = dict(state["scores"][WINDOW].scores)
        old = heat[name]
        heat[name] = msgspec.structs.replace(old, score=30_000.0 if (old.score or 0) < 5000 else 100.0)
        new = ScoreSnapshot(WINDOW, True, NOW, heat)

        def change() -> tuple[set[ObjectKey], set[ObjectKey]]:
            state["scores"] = {WINDOW: new}
            return set(), set()

        return after(change)

    def one_label() -> Callable[[], Any]:
        flip["n"] += 1
        i = (flip["n"] * 104729) % n
        key = ObjectKey(f"team-{TEAMS[i % 3]}", f"data-{i}")
        pvc = pvcs.objects[key]
        labels = dict(pvc.metadata.labels)
        labels["team"] = TEAMS[(TEAMS.index(labels["team"]) + 1) % 3]
        relabelled = msgspec.structs.replace(
            pvc, metadata=msgspec.structs.replace(pvc.metadata, labels=labels)
        )

        def change() -> tuple[set[ObjectKey], set[ObjectKey]]:
            pvcs.objects[key] = relabelled
            return set(), {key}

        return after(change)

    seeds = iter(range(100, 1000))

    def every_score() -> Callable[[], Any]:
        new = _snapshot(n, next(seeds), NOW)

        def change() -> tuple[set[ObjectKey], set[ObjectKey]]:
            state["scores"] = {WINDOW: new}
            return set(), set()

        return after(change)

    heat_cpu = _best(max(repeat, 5), one_heat)
    label_cpu = _best(max(repeat, 5), one_label)
    every_cpu = _best(repeat, every_score)
    nothing_cpu = _best(max(repeat, 5), lambda: after(lambda: (set(), set())))
    return {
        "volumes": n,
        "first_pass_cpu_seconds": round(first_cpu, 4),
        "first_pass_us_per_volume": round(first_cpu / n * 1e6, 2),
        "nothing_changed_cpu_ms": round(nothing_cpu * 1000, 2),
        "one_heat_cpu_ms": round(heat_cpu * 1000, 2),
        "one_label_cpu_ms": round(label_cpu * 1000, 2),
        "every_score_cpu_seconds": round(every_cpu, 3),
    }


def run(sizes: tuple[int, ...] = (1_000, 10_000, 100_000), repeat: int = 3) -> dict[str, Any]:
    rows = [_size(n, repeat) for n in sizes]
    return {"rows": rows, "growth": growth_vs_linear(rows, "first_pass_us_per_volume")}


def report(result: dict[str, Any]) -> str:
    lines = [
        "Incremental decisions: CPU of the first pass and of one change after it (3 policies, 12 pools, best of runs)",
        f"  {'volumes':>8} {'first pass':>11} {'per volume':>11} {'no change':>10} {'one heat':>9}"
        f" {'one label':>10} {'every score':>12}",
    ]
    for r in result["rows"]:
        lines.append(
            f"  {r['volumes']:>8,} {r['first_pass_cpu_seconds'] * 1000:>9.0f}ms {r['first_pass_us_per_volume']:>9.1f}us"
            f" {r['nothing_changed_cpu_ms']:>8.1f}ms {r['one_heat_cpu_ms']:>7.1f}ms {r['one_label_cpu_ms']:>8.1f}ms"
            f" {r['every_score_cpu_seconds'] * 1000:>10.0f}ms"
        )
    if result["growth"] is not None:
        lines.append(
            f"  first pass CPU grows {result['growth']:.2f}x as fast as the volume count (1.00 = linear)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(report(run(tuple(int(a) for a in sys.argv[1:]) or (1_000, 10_000, 100_000))))
