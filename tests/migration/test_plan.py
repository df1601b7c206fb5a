"""The pure migration state machine (plan.py) and the history helpers (record.py), branch by branch."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, strategies as st

from couchestor.migration.backend import ReplicaInfo, VolumeState
from couchestor.migration.intent import Intent
from couchestor.migration.plan import (
    Abort,
    AddReplica,
    Finished,
    RemoveReplica,
    Wait,
    elapsed_seconds,
    next_step,
    start_problem,
)
from couchestor.migration.record import history_entry, history_patch, pv_patch
from k8s_schemas.annotations import LAST_MIGRATION, TIER_LABEL
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import (
    HISTORY_LIMIT,
    MigrationHistoryEntry,
    StoragePolicy,
    StoragePolicyStatus,
)

T0 = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
COLD = {"tier": "cold"}
HOT = {"tier": "hot"}
COLD_POOLS = ("c1", "c2", "c3")
HOT_POOLS = ("h1", "h2", "h3")
ALL_ONLINE = dict.fromkeys(COLD_POOLS + HOT_POOLS, "Online")


def make_intent(n=1, *, phase="forward", started=T0, timeout=1800, **kw):
    fields = {
        "pv": "pv-1",
        "volume": "vol-1",
        "policy": "p",
        "from_tier": "cold",
        "to_tier": "hot",
        "target_pool": "h1",
        "source_pools": list(COLD_POOLS[:n]),
        "original_replicas": n,
        "original_inclusion": dict(COLD),
        "target_inclusion": dict(HOT),
        "started_at": started if isinstance(started, str) else started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "operator": "op-a",
        "trigger_iops": 6500.0,
        "timeout_seconds": timeout,
        "phase": phase,
    }
    fields.update(kw)
    return Intent(**fields)


def ok(pool):
    return ReplicaInfo(pool, f"node-{pool}", "Online", "Synced")


def syncing(pool, progress=None):
    return ReplicaInfo(pool, f"node-{pool}", "Online", "Syncing", progress)


def faulted(pool):
    return ReplicaInfo(pool, f"node-{pool}", "Faulted", "Unknown")


def volume(num, replicas, inclusion=HOT, intent=None, version="1"):
    return VolumeState("vol-1", num, dict(inclusion), tuple(replicas), intent, version)


def step(state, intent, *, now=T0 + timedelta(seconds=60), health=ALL_ONLINE, **kw):
    return next_step(state, intent, now=now, pool_health=health, **kw)


# --- forward rounds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_rounds_move_every_replica_one_at_a_time(n):
    """Drive the plan against an ideal storage system: add, sync, drop one old replica, n times, then finish."""
    intent = make_intent(n)
    replicas = [ok(p) for p in COLD_POOLS[:n]]
    num, inclusion = n, dict(COLD)
    free_hot = list(HOT_POOLS)
    kinds = []
    for _ in range(10 * n):
        s = step(volume(num, replicas, inclusion), intent)
        kinds.append(type(s).__name__)
        if isinstance(s, Finished):
            break
        if isinstance(s, AddReplica):
            assert (s.count, dict(s.topology)) == (n + 1, HOT)
            num, inclusion = s.count, dict(s.topology)
            replicas.append(syncing(free_hot.pop(0), progress=40))
        elif isinstance(s, Wait):
            assert s.progress == 40
            replicas = [ok(r.pool) for r in replicas]  # the rebuild completes
        elif isinstance(s, RemoveReplica):
            # The old replica is dropped only while n + 1 complete copies exist.
            assert sum(r.healthy for r in replicas) >= n + 1
            assert s.pool in COLD_POOLS
            assert (s.count, dict(s.topology)) == (n, HOT)
            num = s.count
            replicas = [r for r in replicas if r.pool != s.pool]
        else:
            pytest.fail(f"unexpected step {s}")
    assert kinds == ["AddReplica", "Wait", "RemoveReplica"] * n + ["Finished"]
    assert s == Finished("completed", f"{n} replica(s) on the hot tier")
    assert sorted(r.pool for r in replicas) == sorted(HOT_POOLS[:n])


def test_victim_is_the_first_old_pool_by_name():
    intent = make_intent(2)
    s = step(volume(3, [ok("h1"), ok("c2"), ok("c1")]), intent)
    assert s == RemoveReplica(2, "c1", HOT)


def test_victim_is_any_surplus_when_no_old_replica_is_left():
    # The old replica vanished (e.g. replaced after a fault): any surplus replica may go.
    intent = make_intent(1)
    s = step(volume(2, [ok("h1"), ok("h2")]), intent)
    assert s == RemoveReplica(1, "", HOT)


# --- waiting --------------------------------------------------------------------------------------------


def test_waits_for_placement_of_the_new_replica():
    s = step(volume(2, [ok("c1")]), make_intent(1))
    assert isinstance(s, Wait)
    assert "placed" in s.reason
    assert s.progress is None


@pytest.mark.parametrize(
    ("new", "progress"),
    [
        ([syncing("h1", 37)], 37),
        ([syncing("h1", 80), syncing("h2", 12)], 12),  # the slowest rebuild is reported
        ([syncing("h1")], None),
        ([ReplicaInfo("h1", "n", "Unknown", "Unknown")], None),  # placed, not opened yet
    ],
)
def test_waits_while_the_new_replica_syncs_reporting_progress(new, progress):
    state = volume(2, [ok("c1"), *new])
    s = step(state, make_intent(1))
    assert s == Wait("new replica syncing", progress)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("sick", ["old-degraded", "old-faulted", "new-syncing"])
def test_no_removal_unless_n_plus_one_replicas_are_healthy(n, sick):
    replicas = [ok(p) for p in COLD_POOLS[:n]] + [ok("h1")]
    if sick == "old-degraded":
        replicas[0] = ReplicaInfo(replicas[0].pool, "n", "Degraded", "Synced")
    elif sick == "old-faulted":
        replicas[0] = faulted(replicas[0].pool)
    else:
        replicas[-1] = syncing("h1", 99)
    s = step(volume(n + 1, replicas), make_intent(n))
    assert isinstance(s, Wait)
    replicas = [ok(r.pool) for r in replicas]
    assert isinstance(step(volume(n + 1, replicas), make_intent(n)), RemoveReplica)


replica_strategy = st.builds(
    ReplicaInfo,
    pool=st.sampled_from(COLD_POOLS + HOT_POOLS),
    node=st.just("n"),
    state=st.sampled_from(["Online", "Degraded", "Faulted", "Unknown"]),
    sync_state=st.sampled_from(["Unknown", "Syncing", "Synced"]),
    progress=st.none() | st.integers(0, 99),
)


@given(
    n=st.integers(1, 3),
    num=st.integers(0, 5),
    replicas=st.lists(replica_strategy, max_size=5, unique_by=lambda r: r.pool),
    inclusion=st.sampled_from([COLD, HOT]),
    health=st.dictionaries(
        st.sampled_from(COLD_POOLS + HOT_POOLS), st.sampled_from(["Online", "Unknown", "Degraded", "Faulted"])
    ),
    seconds=st.integers(0, 4000),
    preservation=st.booleans(),
)
def test_forward_steps_never_remove_below_n_plus_one_healthy(
    n, num, replicas, inclusion, health, seconds, preservation
):
    """Whatever the volume looks like, a forward step removes a replica only with n + 1 healthy ones."""
    intent = make_intent(n)
    s = step(
        volume(num, replicas, inclusion),
        intent,
        now=T0 + timedelta(seconds=seconds),
        health=health,
        preservation=preservation,
    )
    if isinstance(s, RemoveReplica):
        assert not preservation
        assert num == n + 1
        assert sum(r.healthy for r in replicas) >= n + 1
        assert s.count == n
    if isinstance(s, AddReplica):
        assert s.count == n + 1
    if isinstance(s, Finished):
        assert s.outcome == ("preserved" if preservation else "completed")
        assert all(r.healthy for r in replicas) or preservation


# --- at n replicas between rounds -----------------------------------------------------------------------


def test_waits_for_the_surplus_replica_to_go():
    s = step(volume(1, [ok("c1"), ok("h1")]), make_intent(1))
    assert s == Wait("waiting for the surplus replica to be removed")


@pytest.mark.parametrize(
    "replicas", [[ok("c2"), syncing("h1", 50)], [ok("h1")], [ok("c2"), faulted("c1")]], ids=str
)
def test_waits_for_every_replica_to_be_healthy_between_rounds(replicas):
    s = step(volume(2, replicas), make_intent(2))
    assert s == Wait("waiting for every replica to be Online and Synced")


def test_finished_when_no_replica_is_left_on_the_source_pools():
    s = step(volume(2, [ok("h1"), ok("h2")]), make_intent(2))
    assert s == Finished("completed", "2 replica(s) on the hot tier")


# --- aborts ---------------------------------------------------------------------------------------------


def test_abort_when_the_new_replica_faults():
    s = step(volume(2, [ok("c1"), faulted("h1")]), make_intent(1))
    assert s == Abort("new replica on pool h1 faulted", failed=True)


@pytest.mark.parametrize(
    ("health", "word"), [("Faulted", "Faulted"), ("Degraded", "Degraded"), (None, "gone")]
)
def test_abort_when_the_new_replicas_pool_is_unhealthy(health, word):
    pools = {**ALL_ONLINE, "h1": health} if health else {p: h for p, h in ALL_ONLINE.items() if p != "h1"}
    s = step(volume(2, [ok("c1"), syncing("h1", 10)]), make_intent(1), health=pools)
    assert s == Abort(f"target pool h1 is {word}", failed=True)


def test_unknown_pool_health_is_not_a_reason_to_abort():
    s = step(volume(2, [ok("c1"), syncing("h1", 10)]), make_intent(1), health={**ALL_ONLINE, "h1": "Unknown"})
    assert isinstance(s, Wait)


def test_an_unhealthy_source_pool_does_not_abort_by_itself():
    s = step(volume(2, [ok("c1"), syncing("h1", 10)]), make_intent(1), health={**ALL_ONLINE, "c1": "Faulted"})
    assert isinstance(s, Wait)


def test_abort_on_timeout_and_not_before():
    intent = make_intent(1, timeout=1800)
    state = volume(2, [ok("c1"), syncing("h1", 10)])
    assert isinstance(step(state, intent, now=T0 + timedelta(seconds=1799)), Wait)
    s = step(state, intent, now=T0 + timedelta(seconds=1800))
    assert s == Abort("timed out after 30m", failed=True)


def test_unreadable_start_time_counts_as_expired():
    intent = make_intent(1, started="yesterday-ish")
    assert elapsed_seconds(intent, T0) == float("inf")
    s = step(volume(2, [ok("c1"), syncing("h1", 10)]), intent)
    assert isinstance(s, Abort)
    assert s.failed
    assert s.reason.startswith("timed out after ")


def test_elapsed_is_never_negative():
    assert elapsed_seconds(make_intent(1, started=T0 + timedelta(hours=1)), T0) == 0.0
    assert elapsed_seconds(make_intent(1), T0 + timedelta(seconds=90)) == 90.0


def test_stop_reason_aborts_deliberately_before_anything_else():
    intent = make_intent(1, timeout=60)
    state = volume(2, [ok("c1"), faulted("h1")])
    s = step(state, intent, now=T0 + timedelta(hours=2), stop_reason="policy p was disabled")
    assert s == Abort("policy p was disabled", failed=False)


@pytest.mark.parametrize("num", [0, 3, 5])
def test_abort_when_another_writer_changed_the_replica_count(num):
    s = step(volume(num, [ok("c1"), ok("h1")]), make_intent(1))
    assert s == Abort(f"replica count changed to {num} by another writer", failed=True)


def test_a_removal_under_way_is_not_aborted_by_timeout_or_policy_stop():
    # numReplicas is back at n while the surplus replica still exists: going back would only undo progress.
    removing = volume(1, [ok("c1"), ok("h1")])
    late = T0 + timedelta(hours=2)
    s = step(removing, make_intent(1, timeout=60), now=late, stop_reason="policy p was disabled")
    assert s == Wait("waiting for the surplus replica to be removed")
    # Faults still abort.
    s = step(volume(1, [ok("c1"), faulted("h1")]), make_intent(1, timeout=60), now=late)
    assert s == Abort("new replica on pool h1 faulted", failed=True)


def test_a_committed_group_member_only_goes_forward():
    intent = make_intent(1, timeout=60, group="g", group_members=["pv-1", "pv-2"], committed=True)
    state = volume(2, [ok("c1"), syncing("h1", 50)])
    s = step(state, intent, now=T0 + timedelta(hours=2), stop_reason="policy p was disabled")
    assert s == Wait("new replica syncing", 50)
    assert isinstance(step(volume(2, [ok("c1"), faulted("h1")]), intent), Abort)
    # The same member without the commit aborts on the deadline.
    uncommitted = make_intent(1, timeout=60, group="g", group_members=["pv-1", "pv-2"])
    assert isinstance(step(state, uncommitted, now=T0 + timedelta(hours=2)), Abort)


# --- rollback -------------------------------------------------------------------------------------------


def rolling(n=1, **kw):
    return make_intent(n, phase="rolling-back", abort_reason="boom", failed=True, **kw)


def test_rollback_removes_the_least_useful_new_replica_and_restores_the_topology():
    state = volume(3, [ok("c1"), ok("h2"), syncing("h3", 5), ok("c2")])
    assert step(state, rolling(2), source_tier_pools=COLD_POOLS) == RemoveReplica(2, "h3", COLD)


def test_rollback_without_the_pool_topology_assumes_healthy_replicas_go_first():
    # Which pools fit the topology is unknown: the control plane may drop h2 and c1, leaving one healthy.
    state = volume(3, [ok("c1"), ok("h2"), syncing("h3", 5), ok("c2")])
    assert step(state, rolling(2)) == AddReplica(4, COLD)
    assert step(volume(4, state.replicas, inclusion=COLD), rolling(2)) == Wait(
        "waiting for enough healthy replicas before removing the new one"
    )


def test_rollback_waits_while_the_replacement_off_the_source_pools_syncs():
    # Issue 25, defect 1: c1 was replaced on c3 (cold, not a source pool), still syncing. The control plane
    # drops h1 first (off the cold topology, healthy or not): scaling down now leaves one healthy replica.
    state = volume(3, [ok("c2"), ok("h1"), syncing("c3", 40)], inclusion=COLD)
    s = step(state, rolling(2), source_tier_pools=COLD_POOLS, target_pools=HOT_POOLS)
    assert s == Wait("waiting for enough healthy replicas before removing the new one")
    synced = volume(3, [ok("c2"), ok("h1"), ok("c3")], inclusion=COLD)
    s = step(synced, rolling(2), source_tier_pools=COLD_POOLS, target_pools=HOT_POOLS)
    assert s == RemoveReplica(2, "h1", COLD)


def test_rollback_restores_the_topology_even_at_n_replicas():
    assert step(volume(1, [ok("c1")], inclusion=HOT), rolling(1)) == RemoveReplica(1, "", COLD)


def test_rollback_waits_for_the_removal_then_finishes():
    assert step(volume(1, [ok("c1"), faulted("h1")], inclusion=COLD), rolling(1)) == Wait(
        "waiting for the new replica to be removed"
    )
    s = step(volume(1, [ok("c1")], inclusion=COLD), rolling(1))
    assert s == Finished("rolled-back", "1 replica(s) left on c1")


def test_rollback_ignores_timeout_faults_and_stop_reason():
    state = volume(1, [ok("c1")], inclusion=COLD)
    intent = rolling(1, timeout=1, started="garbage")
    health = {"c1": "Faulted"}
    s = step(state, intent, now=T0 + timedelta(days=9), health=health, stop_reason="policy deleted")
    assert s == Finished("rolled-back", "1 replica(s) left on c1")


def test_rollback_after_another_writer_lowered_the_count_restores_it():
    assert step(volume(0, [], inclusion=COLD), rolling(1)) == RemoveReplica(1, "", COLD)


# --- preservation mode ----------------------------------------------------------------------------------


def test_preservation_adds_then_keeps_n_plus_one():
    intent = make_intent(2)
    assert step(volume(2, [ok("c1"), ok("c2")], COLD), intent, preservation=True) == AddReplica(3, HOT)
    placing = step(volume(3, [ok("c1"), ok("c2")]), intent, preservation=True)
    assert placing == Wait("waiting for the new replica to be placed")
    sync = step(volume(3, [ok("c1"), ok("c2"), syncing("h1", 64)]), intent, preservation=True)
    assert sync == Wait("new replica syncing", 64)
    done = step(volume(3, [ok("c1"), ok("c2"), ok("h1")]), intent, preservation=True)
    assert isinstance(done, Finished)
    assert done.outcome == "preserved"
    assert "kept the 2 old replica(s)" in done.detail


def test_preservation_still_aborts_on_faults():
    s = step(volume(2, [ok("c1"), faulted("h1")]), make_intent(1), preservation=True)
    assert isinstance(s, Abort)


# --- start_problem --------------------------------------------------------------------------------------


def test_start_allowed_on_a_healthy_volume():
    state = volume(2, [ok("c1"), ok("c2")], COLD)
    assert start_problem(state, "h1", ("c2", "c1"), ALL_ONLINE) is None


@pytest.mark.parametrize(
    ("state", "target", "health", "problem"),
    [
        (
            volume(1, [ok("c1")], COLD, intent=make_intent(1)),
            "h1",
            ALL_ONLINE,
            "volume already carries a migration intent from op-a",
        ),
        (
            volume(2, [ok("c1")], COLD),
            "h1",
            ALL_ONLINE,
            "volume is degraded (not every replica is Online and Synced)",
        ),
        (
            volume(1, [syncing("c1", 50)], COLD),
            "h1",
            ALL_ONLINE,
            "volume is degraded (not every replica is Online and Synced)",
        ),
        (volume(1, [ok("c2")], COLD), "h1", ALL_ONLINE, "volume's replicas moved since the decision"),
        (volume(1, [ok("c1")], COLD), "c1", ALL_ONLINE, "target pool c1 already holds a replica"),
        (volume(1, [ok("c1")], COLD), "h1", {**ALL_ONLINE, "h1": "Faulted"}, "target pool h1 is Faulted"),
        (volume(1, [ok("c1")], COLD), "h9", ALL_ONLINE, "target pool h9 is gone"),
    ],
)
def test_start_problems(state, target, health, problem):
    assert start_problem(state, target, ("c1",), health) == problem


# --- record.py ------------------------------------------------------------------------------------------


def policy(history=None, total=None, failed=None):
    status = StoragePolicyStatus()
    if history is not None:
        status.migration_history = history
    if total is not None:
        status.total_migrations = total
    if failed is not None:
        status.failed_migrations = failed
    return StoragePolicy(metadata=ObjectMeta(name="p", resource_version="42"), status=status)


def entry(volume="pv-1", timestamp="2026-02-01T10:00:00Z", success=True):
    return MigrationHistoryEntry(
        volume_name=volume,
        timestamp=timestamp,
        from_tier="cold",
        to_tier="hot",
        trigger_iops=1.0,
        duration="1m",
        success=success,
    )


def test_history_entry_for_success_and_failure():
    intent = make_intent(1)
    good = history_entry(intent, status="success", now=T0 + timedelta(minutes=4, seconds=12))
    assert (good.volume_name, good.timestamp, good.to_tier, good.duration) == (
        "pv-1",
        intent.started_at,
        "hot",
        "4m12s",
    )
    assert good.success
    assert good.error is msgspec.UNSET
    bad = history_entry(intent, status="failed", now=T0 + timedelta(seconds=30), error="timed out")
    assert (bad.to_tier, bad.success, bad.error, bad.duration) == ("cold", False, "timed out", "30s")
    aborted = history_entry(make_intent(1, started="nonsense"), status="aborted", now=T0)
    assert aborted.duration == "0s"
    assert not aborted.success


def test_history_patch_appends_with_counters_and_precondition():
    patch = history_patch(StoragePolicy(metadata=ObjectMeta(name="p", resource_version="7")), entry())
    assert patch["metadata"] == {"resourceVersion": "7"}
    assert patch["status"]["totalMigrations"] == 1
    assert patch["status"]["failedMigrations"] == 0
    assert patch["status"]["migrationHistory"] == [msgspec.to_builtins(entry())]
    failed = history_patch(policy([entry("pv-0")], total=5, failed=2), entry(success=False))
    assert failed["status"]["totalMigrations"] == 6
    assert failed["status"]["failedMigrations"] == 3
    assert [h["volumeName"] for h in failed["status"]["migrationHistory"]] == ["pv-0", "pv-1"]


def test_history_patch_dedupes_the_same_migration():
    recorded = policy([entry()], total=1, failed=0)
    assert history_patch(recorded, entry(success=False)) is None
    # Same volume, another migration (other start time): recorded.
    again = history_patch(recorded, entry(timestamp="2026-02-02T10:00:00Z"))
    assert again is not None
    assert len(again["status"]["migrationHistory"]) == 2
    # Same start time, another volume: recorded.
    assert history_patch(recorded, entry(volume="pv-2")) is not None


@pytest.mark.parametrize("existing", [HISTORY_LIMIT - 1, HISTORY_LIMIT, HISTORY_LIMIT + 3])
def test_history_is_capped_keeping_the_newest_last(existing):
    old = [entry(f"pv-{i}") for i in range(existing)]
    patch = history_patch(policy(old, total=existing), entry("pv-new"))
    history = patch["status"]["migrationHistory"]
    assert HISTORY_LIMIT == 50
    assert len(history) == min(existing + 1, HISTORY_LIMIT)
    assert history[-1]["volumeName"] == "pv-new"
    assert history[0]["volumeName"] == f"pv-{existing + 1 - len(history)}"
    assert patch["status"]["totalMigrations"] == existing + 1


def test_pv_patch_labels_the_tier_only_when_moved():
    intent = make_intent(1)
    moved = pv_patch(intent, now=T0, moved=True)
    assert moved == {
        "metadata": {"annotations": {LAST_MIGRATION: "2026-02-01T10:00:00Z"}, "labels": {TIER_LABEL: "hot"}}
    }
    stayed = pv_patch(intent, now=T0, moved=False)
    assert stayed == {"metadata": {"annotations": {LAST_MIGRATION: "2026-02-01T10:00:00Z"}}}


# --- former bugs, kept as regression tests -----------------------------------------------------------------


def test_rollback_never_drops_a_healthy_replica_below_n():
    # n = 2, first round: c1 faulted after the new replica synced, then the migration timed out.
    state = volume(3, [faulted("c1"), ok("c2"), ok("h1")])
    s = step(state, rolling(2))
    if isinstance(s, RemoveReplica) and s.count < state.num_replicas:
        victim = next((r for r in state.replicas if r.pool == s.pool), None)
        lost = 1 if victim is None or victim.healthy else 0
        assert state.healthy_count - lost >= 2, f"{s} leaves {state.healthy_count - lost} healthy"


@pytest.mark.parametrize(
    ("preservation", "kw"),
    [
        (False, {"now": T0 + timedelta(hours=2)}),
        (False, {"stop_reason": "policy p was disabled"}),
        (False, {"health": {**ALL_ONLINE, "h1": "Degraded"}}),
        (True, {"now": T0 + timedelta(hours=2)}),
    ],
    ids=["timeout", "policy-stop", "pool-degraded", "preserved-timeout"],
)
def test_a_finished_migration_stays_finished(preservation, kw):
    # The operator died after the last step and came back later (or the policy changed meanwhile).
    state = volume(2, [ok("c1"), ok("h1")]) if preservation else volume(1, [ok("h1")])
    s = step(state, make_intent(1), preservation=preservation, **kw)
    assert isinstance(s, Finished), s


def test_no_scale_down_of_a_scale_up_the_plan_did_not_make():
    # Another writer raised numReplicas before the plan's AddReplica: the new replica landed on cold pool c2.
    state = volume(2, [ok("c1"), ok("c2")], inclusion=COLD)
    s = step(state, make_intent(1))
    assert not isinstance(s, RemoveReplica), s


@pytest.mark.parametrize(
    "replicas",
    [[ok("h1"), syncing("h2", 3)], [faulted("c1"), ok("h1")]],
    ids=["old-replica-removed-by-another-writer", "old-replica-faulted"],
)
def test_preserved_only_with_the_old_replicas_kept(replicas):
    s = step(volume(2, replicas), make_intent(1), preservation=True)
    assert not isinstance(s, Finished), s
