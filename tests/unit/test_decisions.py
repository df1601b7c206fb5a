"""Per-volume decisions and migration planning: every rule by example, and the safety rules as properties."""

import random
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from couchestor.tiering.decide import decide
from couchestor.tiering.heat import HeatScore, ScoreSnapshot
from couchestor.tiering.pins import Pin
from couchestor.tiering.plan import Action, DecideOptions, Plan
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier, compile_policy
from couchestor.tiering.views import (
    LAST_MIGRATION_ANNOTATION,
    PoolView,
    ReplicaView,
    VolumeView,
    build_pool_views,
    build_volume_views,
)
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)
GiB = 2**30
HOUR = 3600


def rules(name="p", **spec):
    spec.setdefault("highWatermarkIOPS", 5000)
    spec.setdefault("lowWatermarkIOPS", 500)
    compiled = compile_policy(StoragePolicy(metadata=ObjectMeta(name=name, generation=1), spec=spec))
    assert isinstance(compiled, PolicyRules), compiled
    return compiled


def pool(name, tier, free=100 * GiB, health="Online", node=None):
    return PoolView(name, node or f"node-{name}", {"tier": tier}, health, free)


def volume(name, *pools, size=10 * GiB, labels=None, last=None, states=None, num=None, sc="mayastor", **kw):
    states = states or [("Online", "Synced")] * len(pools)
    replicas = tuple(ReplicaView(p, f"node-{p}", s, y) for p, (s, y) in zip(pools, states, strict=True))
    return VolumeView(
        name=name,
        volume_id=f"uuid-{name}",
        storage_class=sc,
        pvc_labels=labels or {},
        size_bytes=size,
        num_replicas=num or len(pools),
        replicas=replicas,
        last_migration=last,
        **kw,
    )


def snapshot(scores, window=HOUR, coverage=1.0, fetched_at=NOW, healthy=True):
    heat = {
        key: HeatScore(key, value, None, None, None, coverage, 240, window, fetched_at, "m")
        for key, value in scores.items()
    }
    return ScoreSnapshot(window, healthy, fetched_at, heat, None if healthy else "connection refused")


POOLS = [pool("hot-1", "hot"), pool("cold-1", "cold")]


def run(policies, volumes, scores, pools=POOLS, in_flight=(), recent=None, now=NOW, **opts):
    snaps = scores if isinstance(scores, dict) and all(isinstance(k, int) for k in scores) else {HOUR: scores}
    return decide(policies, volumes, pools, snaps, set(in_flight), recent or {}, now, DecideOptions(**opts))


def only(plan: Plan, volume_name: str):
    found = [d for d in plan.decisions if d.volume == volume_name]
    assert len(found) == 1, found
    return found[0]


# --- Moves and stays -----------------------------------------------------------------------------------------


def test_hot_volume_on_cold_is_promoted_and_idle_volume_on_hot_demoted():
    plan = run([rules()], [volume("a", "cold-1"), volume("b", "hot-1")], snapshot({"a": 6500.0, "b": 12.0}))
    a, b = only(plan, "a"), only(plan, "b")
    assert (a.label, a.current_tier, a.target_tier, a.target_pool, a.score) == (
        "hot",
        "cold",
        "hot",
        "hot-1",
        6500,
    )
    assert (b.label, b.current_tier, b.target_tier, b.target_pool) == ("cold", "hot", "cold", "cold-1")
    assert "6500.0 > highWatermarkIOPS 5000" in a.detail
    assert [(m.volume, m.from_tier, m.to_tier, m.target_pool, m.source_pools) for m in plan.migrations] == [
        ("a", Tier.COLD, Tier.HOT, "hot-1", ("cold-1",)),
        ("b", Tier.HOT, Tier.COLD, "cold-1", ("hot-1",)),
    ]
    assert plan.migrations[0].timeout_seconds == 1800
    assert plan.migrations[0].size_bytes == 10 * GiB


def test_between_watermarks_a_volume_stays_where_it_is():
    plan = run([rules()], [volume("a", "cold-1"), volume("b", "hot-1")], snapshot({"a": 5000.0, "b": 500.0}))
    assert [only(plan, v).label for v in "ab"] == ["stay", "stay"]
    assert only(plan, "a").current_tier is Tier.COLD
    assert plan.migrations == ()


def test_already_on_the_right_tier_stays():
    plan = run([rules()], [volume("a", "hot-1"), volume("b", "cold-1")], snapshot({"a": 9000.0, "b": 1.0}))
    assert [only(plan, v).action for v in "ab"] == [Action.STAY, Action.STAY]


def test_warm_band_steps_hot_down_and_cold_up_to_warm():
    pools = [*POOLS, pool("warm-1", "warm")]
    vols = [volume("h", "hot-1"), volume("c", "cold-1"), volume("w", "warm-1")]
    plan = run(
        [rules(warmWatermarkIOPS=2000)], vols, snapshot({"h": 1500.0, "c": 2500.0, "w": 1500.0}), pools=pools
    )
    assert [only(plan, v).label for v in "hcw"] == ["warm", "warm", "stay"]
    assert {m.target_pool for m in plan.migrations} == {"warm-1"}


def test_absent_volume_is_not_called_idle_while_prometheus_lacks_a_window_of_data():
    young = snapshot({"uuid-a": 7000.0}, coverage=0.2)
    plan = run([rules()], [volume("a", "cold-1"), volume("b", "hot-1")], young)
    assert only(plan, "b").label == "skip:low-coverage"
    assert only(plan, "a").label == "skip:low-coverage"
    empty = run([rules()], [volume("b", "hot-1")], snapshot({}))
    assert only(empty, "b").label == "skip:low-coverage"


def test_volume_matched_by_uuid_label_and_absent_volumes_score_zero():
    plan = run([rules()], [volume("a", "cold-1"), volume("b", "hot-1")], snapshot({"uuid-a": 7000.0}))
    assert only(plan, "a").label == "hot"
    b = only(plan, "b")
    assert (b.label, b.score) == ("cold", 0.0)


# --- Metrics -------------------------------------------------------------------------------------------------


def test_prometheus_outage_moves_nothing():
    # The seeds' operator scored every volume 0 on errors and sent all of them to the cold tier.
    vols = [volume("a", "hot-1"), volume("b", "hot-1")]
    plan = run([rules()], vols, snapshot({}, healthy=False))
    assert plan.migrations == ()
    assert {d.label for d in plan.decisions} == {"skip:metrics-unavailable"}
    assert "connection refused" in only(plan, "a").detail
    assert only(plan, "a").current_tier is Tier.HOT


def test_missing_or_stale_snapshots_move_nothing():
    vols = [volume("a", "hot-1")]
    other_window = run([rules()], vols, {2 * HOUR: snapshot({}, window=2 * HOUR)})
    assert only(other_window, "a").label == "skip:metrics-unavailable"
    stale = run(
        [rules()], vols, snapshot({}, fetched_at=NOW - timedelta(minutes=10)), max_score_age_seconds=300
    )
    assert only(stale, "a").label == "skip:metrics-unavailable"
    assert "old" in only(stale, "a").detail
    fresh = run(
        [rules()],
        vols,
        snapshot({"some-other-volume": 1.0}, fetched_at=NOW - timedelta(minutes=4)),
        max_score_age_seconds=300,
    )
    assert only(fresh, "a").label == "cold"


def test_each_policy_reads_the_snapshot_of_its_own_window():
    p1, p2 = rules("one", samplingWindow="1h", storageClassName="x"), rules("two", samplingWindow="2h")
    vols = [volume("a", "cold-1", sc="x"), volume("b", "cold-1")]
    scores = {HOUR: snapshot({"a": 9000.0, "b": 9000.0}), 2 * HOUR: snapshot({"b": 100.0}, window=2 * HOUR)}
    plan = run([p1, p2], vols, scores)
    assert (only(plan, "a").label, only(plan, "b").label) == ("hot", "stay")


def test_low_coverage_and_unusable_scores_decide_nothing():
    vols = [volume("a", "hot-1"), volume("b", "hot-1")]
    low = run([rules()], vols, snapshot({"a": 1.0}, coverage=0.4), min_coverage=0.5)
    assert only(low, "a").label == "skip:low-coverage"
    # Absent, but no volume has enough samples either: Prometheus is too young to call anything idle.
    assert only(low, "b").label == "skip:low-coverage"
    enough = run([rules()], vols, snapshot({"a": 1.0}, coverage=0.5), min_coverage=0.5)
    assert only(enough, "a").label == "cold"
    nan = run([rules()], vols, snapshot({"a": None}))
    assert only(nan, "a").label == "skip:no-score"


# --- Cooldown, dry run, disabled, conflicts, invalid policies ----------------------------------------------


def test_cooldown_from_annotation_or_recent_history_whichever_is_later():
    p = rules(cooldownPeriod="24h")
    old, recent = NOW - timedelta(hours=30), NOW - timedelta(hours=2)
    vols = [
        volume("a", "cold-1", last=recent),
        volume("b", "cold-1", last=old),
        volume("c", "cold-1", last=old),
    ]
    plan = run([p], vols, snapshot({"a": 9000.0, "b": 9000.0, "c": 9000.0}), recent={"c": recent})
    a = only(plan, "a")
    assert (a.label, a.target_tier, a.current_tier) == ("skip:cooldown", Tier.HOT, Tier.COLD)
    assert "22h" in a.detail
    assert only(plan, "b").label == "hot"
    assert only(plan, "c").label == "skip:cooldown"


def test_dry_run_shows_the_would_be_move_and_reserves_nothing():
    tight = [pool("hot-1", "hot", free=10 * GiB), pool("cold-1", "cold")]
    dry = rules("dry", dryRun=True, volumeSelector={"matchLabels": {"team": "a"}})
    real = rules("real", volumeSelector={"matchLabels": {"team": "b"}})
    vols = [volume("a", "cold-1", labels={"team": "a"}), volume("b", "cold-1", labels={"team": "b"})]
    plan = run([dry, real], vols, snapshot({"a": 9000.0, "b": 6000.0}), pools=tight)
    a = only(plan, "a")
    assert (a.label, a.target_tier, a.target_pool) == ("skip:dry-run", Tier.HOT, "hot-1")
    assert [m.volume for m in plan.migrations] == ["b"]
    assert plan.policy("dry").dry_run


def test_disabled_policies_do_nothing_and_claim_nothing():
    off = rules("off", enabled=False)
    on = rules("on")
    plan = run([off, on], [volume("a", "cold-1")], snapshot({"a": 9000.0}))
    off_plan, on_plan = plan.policy("off"), plan.policy("on")
    assert [d.label for d in off_plan.decisions] == ["skip:disabled"]
    assert off_plan.phase == "Disabled"
    assert [d.label for d in on_plan.decisions] == ["hot"]
    assert on_plan.conflicts == {}


def test_a_volume_selected_by_two_policies_is_a_conflict_on_both_and_never_moved():
    a, b, c = rules("a"), rules("b"), rules("c", storageClassName="other")
    plan = run([b, a, c], [volume("v", "cold-1"), volume("w", "cold-1", sc="other")], snapshot({"v": 9000.0}))
    assert only(plan, "w").policy == "c"
    v_decisions = [d for d in plan.decisions if d.volume == "v"]
    assert [(d.policy, d.label) for d in v_decisions] == [("a", "skip:conflict:b"), ("b", "skip:conflict:a")]
    assert plan.policy("a").conflicts == {"v": ("b",)}
    assert plan.policy("b").conflicts == {"v": ("a",)}
    assert all(m.volume != "v" for m in plan.migrations)


def test_an_invalid_policy_moves_nothing_and_still_blocks_its_volumes():
    broken = compile_policy(
        StoragePolicy(
            metadata=ObjectMeta(name="broken"),
            spec={
                "highWatermarkIOPS": 1,
                "lowWatermarkIOPS": 2,
                "volumeSelector": {"matchLabels": {"t": "x"}},
            },
        )
    )
    assert isinstance(broken, PolicyProblem)
    vols = [volume("a", "cold-1", labels={"t": "x"}), volume("b", "cold-1", labels={"t": "x"}, sc="other")]
    plan = run([broken, rules("ok")], vols, snapshot({"a": 9000.0}))
    assert plan.policy("broken").phase == "Error"
    assert plan.policy("broken").problem == broken
    assert [(d.policy, d.label) for d in plan.decisions] == [
        ("broken", "skip:conflict:ok"),
        ("ok", "skip:conflict:broken"),
    ]
    alone = run([broken], [volume("a", "cold-1", labels={"t": "x"})], snapshot({"a": 9000.0}))
    assert [d.label for d in alone.decisions] == ["skip:invalid-policy"]
    assert "lowWatermarkIOPS" in alone.decisions[0].detail


# --- Volume state --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vol", "reason"),
    [
        (volume("a", "cold-1", states=[("Online", "Syncing")]), "degraded"),
        (volume("a", "cold-1", "cold-2", states=[("Online", "Synced"), ("Faulted", "Unknown")]), "degraded"),
        (volume("a", "cold-1", num=2), "degraded"),
        (volume("a"), "degraded"),
        (volume("a", "nowhere"), "tier-unknown"),
        (volume("a", "plain"), "tier-unknown"),
        (volume("a", "cold-1", "hot-1"), "mixed-tier"),
        (volume("a", "cold-1", has_backend=False), "no-mayastor-volume"),
        (volume("a", "cold-1", deleting=True), "deleting"),
        (volume("a", "cold-1", size=None), "size-unknown"),
    ],
)
def test_volumes_in_an_unsafe_or_unknown_state_are_not_moved(vol, reason):
    pools = [*POOLS, pool("cold-2", "cold"), PoolView("plain", "n", {}, "Online", 100 * GiB)]
    plan = run([rules()], [vol], snapshot({"a": 9000.0}), pools=pools)
    assert only(plan, "a").label == f"skip:{reason}"
    assert plan.migrations == ()


def test_in_flight_volumes_are_skipped_and_use_up_slots():
    vols = [volume(n, "cold-1") for n in ("a", "b", "c")]
    plan = run(
        [rules(maxConcurrentMigrations=2)],
        vols,
        snapshot({"a": 9000.0, "b": 8000.0, "c": 7000.0}),
        in_flight={"a"},
    )
    assert [only(plan, n).label for n in "abc"] == ["skip:in-flight", "hot", "skip:concurrency-limit"]
    assert plan.policy("p").in_flight == 1


# --- Capacity and ordering -----------------------------------------------------------------------------------


def test_capacity_is_reserved_as_moves_are_planned_hottest_first():
    pools = [pool("hot-1", "hot", free=25 * GiB), pool("cold-1", "cold")]
    vols = [volume(n, "cold-1") for n in ("a", "b", "c")]
    plan = run(
        [rules(maxConcurrentMigrations=5)],
        vols,
        snapshot({"a": 6000.0, "b": 9000.0, "c": 7000.0}),
        pools=pools,
    )
    assert [m.volume for m in plan.migrations] == ["b", "c"]
    assert only(plan, "a").label == "skip:no-capacity"
    assert only(plan, "a").target_tier is Tier.HOT


def test_the_pool_with_most_room_on_another_node_is_chosen():
    pools = [
        pool("hot-a", "hot", free=50 * GiB, node="n1"),
        pool("hot-b", "hot", free=80 * GiB, node="n2"),
        pool("hot-c", "hot", free=90 * GiB, node="n3"),
        pool("hot-off", "hot", free=500 * GiB, health="Offline"),
        PoolView("hot-unknown", "n9", {"tier": "hot"}, "Online", None),
        pool("cold-1", "cold", node="n3"),
    ]
    vol = VolumeView(
        "a", "uuid-a", "mayastor", {}, 10 * GiB, True, 1, (ReplicaView("cold-1", "n3", "Online", "Synced"),)
    )
    plan = run([rules()], [vol], snapshot({"a": 9000.0}), pools=pools)
    assert [m.target_pool for m in plan.migrations] == ["hot-b"]


def test_no_online_pool_with_room_means_no_capacity():
    pools = [
        pool("hot-1", "hot", free=5 * GiB),
        pool("hot-2", "hot", health="Degraded"),
        pool("cold-1", "cold"),
    ]
    plan = run([rules()], [volume("a", "cold-1")], snapshot({"a": 9000.0}), pools=pools)
    assert only(plan, "a").label == "skip:no-capacity"


def test_promotions_go_first_hottest_first_then_demotions_coldest_first():
    vols = [volume("p1", "cold-1"), volume("p2", "cold-1"), volume("d1", "hot-1"), volume("d2", "hot-1")]
    scores = snapshot({"p1": 6000.0, "p2": 8000.0, "d1": 300.0, "d2": 100.0})
    plan = run([rules(maxConcurrentMigrations=10)], vols, scores)
    assert [m.volume for m in plan.migrations] == ["p2", "p1", "d2", "d1"]
    limited = run([rules(maxConcurrentMigrations=3)], vols, scores)
    assert [m.volume for m in limited.migrations] == ["p2", "p1", "d2"]
    assert only(limited, "d1").label == "skip:concurrency-limit"


def test_once_every_slot_is_taken_the_rest_are_held_back_and_ties_go_by_name():
    # Two policies of one slot each; idle volumes tie at score 0, so the name decides. A policy whose target
    # tier has no room keeps looking down its list (a refused move takes no slot).
    a = rules("a", maxConcurrentMigrations=1, volumeSelector={"matchLabels": {"team": "a"}})
    b = rules("b", maxConcurrentMigrations=1, volumeSelector={"matchLabels": {"team": "b"}})
    vols = [volume(f"{team}{i}", "hot-1", labels={"team": team}) for team in "ab" for i in (3, 1, 2)]
    idle = snapshot({v.name: 0.0 for v in vols})
    plan = run([b, a], vols, idle)
    assert sorted(m.volume for m in plan.migrations) == ["a1", "b1"]
    for name in ("a2", "a3", "b2", "b3"):
        assert only(plan, name).label == "skip:concurrency-limit"
    # The same when the order of the volumes given changes.
    again = run([a, b], list(reversed(vols)), idle)
    assert again.decisions == plan.decisions
    assert again.migrations == plan.migrations
    full = [pool("hot-1", "hot"), pool("cold-1", "cold", free=5 * GiB)]
    refused = run([a, b], vols, idle, pools=full)
    assert refused.migrations == ()
    assert {d.label for d in refused.decisions} == {"skip:no-capacity"}


def test_status_counts_are_by_placement():
    pools = [*POOLS, pool("warm-1", "warm")]
    vols = [
        volume("a", "hot-1"),
        volume("b", "hot-1", states=[("Online", "Syncing")]),
        volume("c", "cold-1"),
        volume("d", "warm-1"),
        volume("e", "cold-1", "hot-1", states=[("Online", "Synced"), ("Online", "Syncing")]),
    ]
    plan = run([rules(warmWatermarkIOPS=1000)], vols, snapshot({}, healthy=False), pools=pools)
    p = plan.policy("p")
    assert p.watched == 5
    assert dict(p.tier_counts) == {Tier.HOT: 1, Tier.WARM: 1, Tier.COLD: 2}
    assert p.phase == "Active"


def test_volume_selector_matches_the_bound_pvc_labels():
    p = rules(volumeSelector={"matchExpressions": [{"key": "team", "operator": "In", "values": ["data"]}]})
    vols = [volume("a", "cold-1", labels={"team": "data"}), volume("b", "cold-1", labels={"team": "web"})]
    plan = run([p], [*vols, volume("c", "cold-1")], snapshot({}))
    assert [d.volume for d in plan.decisions] == ["a"]


# --- Views from Kubernetes objects --------------------------------------------------------------------------


def decode(kind, doc):
    return msgspec.convert(doc, kind)


def test_views_join_pv_pvc_and_mayastor_volume():
    pv = decode(
        PersistentVolume,
        {
            "metadata": {"name": "pvc-1", "annotations": {LAST_MIGRATION_ANNOTATION: "2026-02-01T10:00:00Z"}},
            "spec": {
                "storageClassName": "mayastor",
                "capacity": {"storage": "20Gi"},
                "csi": {"driver": "io.openebs.csi-mayastor", "volumeHandle": "uuid-1"},
                "claimRef": {"namespace": "app", "name": "data", "uid": "u-1"},
            },
        },
    )
    pvc = decode(
        PersistentVolumeClaim,
        {"metadata": {"namespace": "app", "name": "data", "uid": "u-1", "labels": {"team": "x"}}},
    )
    msv = decode(
        MayastorVolume,
        {
            "metadata": {"name": "uuid-1", "namespace": "mayastor"},
            "spec": {"numReplicas": 1, "size": 1073741824},
            "status": {
                "replicas": [{"pool": "hot-1", "node": "n1", "state": "Online", "syncState": "Synced"}]
            },
        },
    )
    (view,) = build_volume_views([pv], [pvc], [msv])
    assert (view.name, view.volume_id, view.storage_class, dict(view.pvc_labels)) == (
        "pvc-1",
        "uuid-1",
        "mayastor",
        {"team": "x"},
    )
    assert (view.size_bytes, view.num_replicas, view.has_backend, view.deleting) == (GiB, 1, True, False)
    assert view.replicas == (ReplicaView("hot-1", "n1", "Online", "Synced"),)
    assert view.last_migration == datetime(2026, 2, 1, 10, tzinfo=UTC)


def test_views_fall_back_and_ignore_what_does_not_belong():
    pv = decode(
        PersistentVolume,
        {
            "metadata": {"name": "pvc-2", "annotations": {LAST_MIGRATION_ANNOTATION: "last tuesday"}},
            "spec": {
                "capacity": {"storage": "2Gi"},
                "claimRef": {"namespace": "app", "name": "data", "uid": "old"},
            },
        },
    )
    pvc = decode(
        PersistentVolumeClaim,
        {"metadata": {"namespace": "app", "name": "data", "uid": "new", "labels": {"t": "x"}}},
    )
    msv = decode(MayastorVolume, {"metadata": {"name": "pvc-2"}, "spec": {"numReplicas": 2}})
    (view,) = build_volume_views([pv], [pvc], [msv])
    assert view.pvc_labels == {}  # the claimRef names a PVC that was deleted and recreated
    assert (view.size_bytes, view.has_backend, view.num_replicas, view.replicas) == (2 * GiB, True, 2, ())
    assert view.last_migration is None
    assert view.storage_class is None
    (orphan,) = build_volume_views([decode(PersistentVolume, {"metadata": {"name": "z"}})], [], [])
    assert (orphan.has_backend, orphan.size_bytes) == (False, None)


def test_pool_views():
    pools = [
        decode(
            DiskPool,
            {
                "metadata": {"name": "b", "labels": {"tier": "cold"}},
                "spec": {"node": "n2"},
                "status": {"state": "Online", "capacity": "100Gi", "used": "40Gi"},
            },
        ),
        decode(
            DiskPool,
            {
                "metadata": {"name": "a"},
                "spec": {"node": "n1", "topology": {"labelled": {"tier": "hot"}}},
                "status": {"pool_status": "Online", "capacity": 100, "available": 70},
            },
        ),
    ]
    a, b = build_pool_views(pools)
    assert (a.name, a.node, dict(a.labels), a.online, a.free_bytes) == ("a", "n1", {"tier": "hot"}, True, 70)
    assert (b.name, b.free_bytes, b.online) == ("b", 60 * GiB, True)


# --- Properties ----------------------------------------------------------------------------------------------

TIERS = ("hot", "warm", "cold")
SCORES = st.one_of(
    st.sampled_from([0.0, 10.0, 300.0, 499.0, 500.0, 1500.0, 3000.0, 5000.0, 5001.0, 9000.0]),
    st.floats(0, 20_000, allow_nan=False),
)
HEALTHY_REPLICA = ("Online", "Synced")
REPLICA_STATES = st.sampled_from([HEALTHY_REPLICA] * 20 + [("Online", "Syncing"), ("Faulted", "Synced")])


def rare(draw, one_in):
    # Hypothesis favours boundary integers, so an integer test would fire far more often than 1 in n.
    return draw(st.sampled_from((False,) * (one_in - 1) + (True,)))


@st.composite
def worlds(draw):
    """Clusters with a few policies (mostly disjoint, sometimes overlapping or broken), pools per tier with
    varied room and health, volumes placed mostly healthily on one tier, and scores that mostly ask for moves."""
    pools = []
    for tier in TIERS:
        for i in range(draw(st.integers(0 if tier == "warm" else 1, 2 if tier == "warm" else 3))):
            health = "Offline" if rare(draw, 8) else "Online"
            free = None if rare(draw, 12) else draw(st.integers(0, 60)) * GiB
            pools.append(PoolView(f"{tier}-{i}", f"n{draw(st.integers(0, 4))}", {"tier": tier}, health, free))
    policies = []
    for i in range(draw(st.integers(1, 3))):
        low = draw(st.sampled_from([100, 500, 1000]))
        high = low + draw(st.sampled_from([1, 1000, 4500]))
        spec = {
            "highWatermarkIOPS": high,
            "lowWatermarkIOPS": low,
            "maxConcurrentMigrations": draw(st.integers(1, 3)),
            "enabled": not rare(draw, 8),
            "dryRun": rare(draw, 8),
            "cooldownPeriod": draw(st.sampled_from(["1h", "24h"])),
            "samplingWindow": draw(st.sampled_from(["1h", "1h", "2h"])),
            # Usually each policy its own team; sometimes two policies share one (a conflict).
            "volumeSelector": {
                "matchLabels": {"team": f"t{draw(st.integers(0, 3)) if rare(draw, 4) else i}"}
            },
        }
        if rare(draw, 3):
            spec["groupLabel"] = "grp"
        if high - low > 1 and draw(st.booleans()):
            spec["warmWatermarkIOPS"] = draw(st.integers(low + 1, high - 1))
        if rare(draw, 10):
            spec["lowWatermarkIOPS"] = high  # invalid, yet still claims its volumes
        policies.append(compile_policy(StoragePolicy(metadata=ObjectMeta(name=f"pol-{i}"), spec=spec)))
    by_tier = {tier: [p.name for p in pools if p.labels["tier"] == tier] for tier in TIERS}
    volumes = []
    for i in range(draw(st.integers(1, 12))):
        tier = draw(st.sampled_from([t for t in TIERS if by_tier[t]]))
        candidates = by_tier[tier] + (["ghost", *(p.name for p in pools)] if rare(draw, 10) else [])
        placed = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique=True))
        if rare(draw, 25):
            placed = []
        replicas = tuple(
            ReplicaView(name, f"n{draw(st.integers(0, 4))}", *draw(REPLICA_STATES)) for name in placed
        )
        last = None if not rare(draw, 3) else NOW - timedelta(hours=draw(st.integers(-1, 48)))
        pin = None
        if rare(draw, 4):
            until = draw(st.sampled_from([None, NOW - timedelta(hours=1), NOW + timedelta(hours=1)]))
            pin = Pin(draw(st.sampled_from([None, *Tier])), until)
        volumes.append(
            VolumeView(
                name=f"pvc-{i}",
                volume_id=f"uuid-{i}",
                storage_class="other" if rare(draw, 15) else "mayastor",
                pvc_labels={
                    "team": f"t{draw(st.integers(0, 3 if rare(draw, 5) else len(policies) - 1))}",
                    **({"grp": f"g{draw(st.integers(0, 2))}"} if draw(st.booleans()) else {}),
                },
                size_bytes=None if rare(draw, 20) else draw(st.integers(1, 30)) * GiB,
                has_backend=not rare(draw, 20),
                num_replicas=max(len(replicas), 1),
                replicas=replicas,
                last_migration=last,
                deleting=rare(draw, 20),
                pin=pin,
                pin_error="unreadable pin" if rare(draw, 20) else None,
                last_migration_error="unreadable last migration" if rare(draw, 20) else None,
            )
        )
    snapshots = {}
    for window in (HOUR, 2 * HOUR):
        if rare(draw, 15):
            continue  # no snapshot for this window yet
        healthy = not rare(draw, 10)
        fetched = NOW - timedelta(seconds=400 if rare(draw, 12) else draw(st.integers(0, 60)))
        scores = {}
        for v in volumes if healthy else ():
            if rare(draw, 5):
                continue  # absent: scores 0
            key = v.volume_id if rare(draw, 3) else v.name
            value = None if rare(draw, 20) else draw(SCORES)
            coverage = 0.2 if rare(draw, 8) else draw(st.sampled_from([1.0, 0.6]))
            scores[key] = HeatScore(key, value, None, None, None, coverage, 1, window, fetched, "m")
        snapshots[window] = ScoreSnapshot(window, healthy, fetched, scores, None if healthy else "down")
    names = [v.name for v in volumes]
    in_flight = set(draw(st.lists(st.sampled_from(names), max_size=1)))
    recent = {
        name: NOW - timedelta(hours=draw(st.integers(0, 30)))
        for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    }
    return policies, volumes, pools, snapshots, in_flight, recent


def plan_of(world):
    policies, volumes, pools, snapshots, in_flight, recent = world
    return decide(policies, volumes, pools, snapshots, in_flight, recent, NOW)


def claimants(world, volume):
    policies = world[0]
    return [
        p
        for p in policies
        if p.scope is not None
        and p.scope.selects(volume.storage_class, volume.pvc_labels)
        and (isinstance(p, PolicyProblem) or p.enabled)
    ]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.randoms(use_true_random=False))
def test_safety_properties(world, rnd: random.Random):
    # One generated world feeds every property check: generating worlds is the expensive part.
    plan = plan_of(world)
    check_nothing_moves_that_must_not(world, plan)
    check_never_twice_never_over_capacity_never_over_the_limit(world, plan)
    check_every_selected_volume_gets_exactly_one_decision_per_policy(world, plan)
    check_the_plan_does_not_depend_on_input_order(world, plan, rnd)
    check_volume_groups_move_all_or_none(world, plan)


def check_volume_groups_move_all_or_none(world, plan):
    policies, volumes, *_ = world
    for p in policies:
        if not isinstance(p, PolicyRules) or p.group_label is None:
            continue
        chosen = [v for v in volumes if p.scope.selects(v.storage_class, v.pvc_labels)]
        groups: dict[str, set[str]] = {}
        for v in chosen:
            if v.pvc_labels.get("grp"):
                groups.setdefault(v.pvc_labels["grp"], set()).add(v.name)
        moving = {m.volume for m in plan.migrations if m.policy == p.name}
        for value, members in groups.items():
            if len(members) < 2:
                continue
            assert members <= moving or not (members & moving), f"group {value} partially scheduled"
            if members <= moving:
                assert {m.group for m in plan.migrations if m.volume in members} == {f"{p.name}/{value}"}


def pinned_to(world, policy, v):
    """The tiers ``v`` is pinned to under ``policy``: its own active pin's, else its group's pinned members'
    (an empty set: not pinned)."""
    volumes = world[1]
    if v.pin is not None and v.pin.active(NOW):
        return {v.pin.tier}
    key = v.pvc_labels.get("grp") if policy.group_label is not None else None
    if key is None:
        return set()
    return {
        o.pin.tier
        for o in volumes
        if o.pvc_labels.get("grp") == key
        and policy.scope.selects(o.storage_class, o.pvc_labels)
        and o.pin is not None
        and o.pin.tier is not None
        and o.pin.active(NOW)
    }


def check_nothing_moves_that_must_not(world, plan):
    policies, volumes, _, snapshots, in_flight, recent = world
    by_name = {v.name: v for v in volumes}
    rules_by_name = {p.name: p for p in policies}
    for m in plan.migrations:
        v, p = by_name[m.volume], rules_by_name[m.policy]
        assert v.pin_error is None, "an unreadable pin fails closed"
        assert v.last_migration_error is None, "an unreadable last migration counts as in cooldown"
        pins = pinned_to(world, p, v)
        assert pins in (set(), {m.to_tier}), f"moved to {m.to_tier} while pinned to {pins}"
        assert isinstance(p, PolicyRules)
        assert p.enabled, "disabled policies move nothing"
        assert not p.dry_run, "dry-run policies move nothing"
        assert claimants(world, v) == [p], "conflicting or unselected volumes are never moved"
        assert m.volume not in in_flight
        assert not v.deleting
        assert v.has_backend
        assert v.replicas, "a volume without replicas is degraded"
        assert all(r.state == "Online" and r.sync_state == "Synced" for r in v.replicas), "degraded"
        last = max((t for t in (v.last_migration, recent.get(v.name)) if t is not None), default=None)
        assert last is None or (NOW - last).total_seconds() >= p.cooldown_seconds, "inside the cooldown"
        if pins:
            continue  # a pinned move needs no heat
        snap = snapshots.get(p.window_seconds)
        assert snap is not None, "no scores for the window"
        assert snap.healthy, "metrics unhealthy"
        assert (NOW - snap.fetched_at).total_seconds() <= DecideOptions().max_score_age_seconds, (
            "stale scores"
        )
        assert m.target_pool not in m.source_pools


def check_never_twice_never_over_capacity_never_over_the_limit(world, plan):
    policies, _, pools, *_ = world
    scheduled = [m.volume for m in plan.migrations]
    assert len(scheduled) == len(set(scheduled)), "a volume scheduled twice"
    pool_by_name = {p.name: p for p in pools}
    used: dict[str, int] = {}
    for m in plan.migrations:
        target = pool_by_name[m.target_pool]
        assert target.online
        assert target.labels["tier"] == m.to_tier
        used[m.target_pool] = used.get(m.target_pool, 0) + m.size_bytes
    for name, total in used.items():
        assert total <= pool_by_name[name].free_bytes, f"pool {name} over capacity"
    for p in plan.policies:
        rules_ = next(r for r in policies if r.name == p.policy)
        if isinstance(rules_, PolicyRules):
            batches = {m.group or m.volume for m in p.migrations}  # a volume group takes one slot
            assert len(batches) <= max(0, rules_.max_concurrent_migrations - p.in_flight), "over the limit"
    moved = {
        (d.policy, d.volume) for d in plan.decisions if d.action in (Action.HOT, Action.WARM, Action.COLD)
    }
    assert moved == {(m.policy, m.volume) for m in plan.migrations}


def check_every_selected_volume_gets_exactly_one_decision_per_policy(world, plan):
    policies, volumes, *_ = world
    for p in policies:
        selected = [
            v.name for v in volumes if p.scope is not None and p.scope.selects(v.storage_class, v.pvc_labels)
        ]
        assert [d.volume for d in plan.policy(p.name).decisions] == sorted(selected)
    for d in plan.decisions:
        if d.reason.startswith("conflict:"):
            assert d.action is Action.SKIP


def check_the_plan_does_not_depend_on_input_order(world, plan, rnd):
    policies, volumes, pools, snapshots, in_flight, recent = world
    shuffled = [list(x) for x in (policies, volumes, pools)]
    for items in shuffled:
        rnd.shuffle(items)
    again = decide(*shuffled, dict(reversed(snapshots.items())), set(in_flight), dict(recent), NOW)
    assert again == plan


# --- Topologies fixed at creation (Mayastor 2.x) -------------------------------------------------------------


PINNING_POOLS = [
    PoolView("hot-a", "node-a", {"tier": "hot", "zone": "a"}, "Online", 100 * GiB),
    PoolView("hot-b", "node-b", {"tier": "hot", "zone": "b"}, "Online", 500 * GiB),
    PoolView("cold-a", "node-c", {"tier": "cold", "zone": "a"}, "Online", 100 * GiB),
]


@pytest.mark.parametrize(
    ("topology", "pinned", "pool_chosen"),
    [
        ({}, False, "hot-b"),  # no topology: the roomiest hot pool
        ({"inclusion": {"zone": "a"}}, False, "hot-a"),  # only the matching pool, though smaller
        ({"inclusion": {"zone": "c"}}, True, None),
        ({"allowed_nodes": frozenset({"node-a", "node-c"})}, False, "hot-a"),
        ({"allowed_nodes": frozenset({"node-c"})}, True, None),
        ({"inclusion": {"zone": "b"}, "allowed_nodes": frozenset({"node-a"})}, True, None),
    ],
)
def test_a_fixed_topology_limits_the_target_pools_and_pins_when_none_fits(topology, pinned, pool_chosen):
    v = volume("a", "cold-a", **topology)
    plan = run([rules()], [v], snapshot({"a": 9000.0}), pools=PINNING_POOLS, fixed_topology=True)
    decision = only(plan, "a")
    if pinned:
        assert decision.label == "skip:topology-pinned"
        assert decision.target_tier == "hot"
        assert "cannot change a volume's topology" in decision.detail
        for node in topology.get("allowed_nodes", ()):
            assert node in decision.detail
        assert plan.migrations == ()
    else:
        assert [(m.volume, m.target_pool) for m in plan.migrations] == [("a", pool_chosen)]


def test_without_fixed_topologies_a_pin_is_not_a_reason_to_skip():
    v = volume("a", "cold-a", allowed_nodes=frozenset({"node-c"}))
    plan = run([rules()], [v], snapshot({"a": 9000.0}), pools=PINNING_POOLS)
    assert [m.target_pool for m in plan.migrations] == ["hot-b"]
