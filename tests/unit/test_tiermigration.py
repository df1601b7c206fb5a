"""TierMigration as a mirror of the intent: status computed from the intent and the volume along a whole
simulated migration (driven by the real state machine), approval verdicts, status patches, history."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from couchestor.migration import plan
from couchestor.migration.backend import ReplicaInfo, VolumeState
from couchestor.migration.intent import Intent
from couchestor.tiering.admission import Hold
from couchestor.tiering.tiermigration import (
    AwaitApproval,
    Cancel,
    Facts,
    Move,
    Ready,
    approval_verdict,
    finished_status,
    history_to_delete,
    object_name,
    open_migration,
    running_status,
    status_patch,
    stop_reason,
    waiting_status,
)
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.tier_migration import _DNS_SUBDOMAIN, TierMigration, TierMigrationSpec, TierMigrationStatus

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
GI = 1 << 30


def intent(n: int = 1, **kw) -> Intent:
    sources = [f"s{i}" for i in range(n)]
    base = {
        "pv": "pvc-1",
        "volume": "pvc-1",
        "policy": "gold",
        "from_tier": "cold",
        "to_tier": "hot",
        "target_pool": "t0",
        "source_pools": sources,
        "original_replicas": n,
        "original_inclusion": {"tier": "cold"},
        "target_inclusion": {"tier": "hot"},
        "started_at": "2026-06-01T10:00:00Z",
        "operator": "op",
        "trigger_iops": 6500.0,
        "timeout_seconds": 10**9,
    }
    base.update(kw)
    return Intent(**base)


def state(replicas, num=None, inclusion=None) -> VolumeState:
    return VolumeState(
        "pvc-1",
        len(replicas) if num is None else num,
        inclusion or {"tier": "hot"},
        tuple(replicas),
        None,
        "1",
    )


def synced(pool: str) -> ReplicaInfo:
    return ReplicaInfo(pool, f"node-{pool}", "Online", "Synced")


def syncing(pool: str, progress: int | None) -> ReplicaInfo:
    return ReplicaInfo(pool, f"node-{pool}", "Online", "Syncing", progress)


# --- a whole migration, step by step -------------------------------------------------------------------------


HEALTH = {f"{kind}{i}": "Online" for kind in "st" for i in range(5)}


def simulate(n: int, progress_steps: list[int]):
    """Drive the real state machine (migration.plan.next_step) on a simulated volume; yield each state."""
    it = intent(n)
    replicas = [synced(f"s{i}") for i in range(n)]
    num = n
    placed = 0
    now = T0
    for _ in range(2000):
        current = state(replicas, num)
        yield current, now
        step = plan.next_step(current, it, now=now, pool_health=HEALTH)
        now += timedelta(seconds=30)
        if isinstance(step, plan.Finished):
            assert step.outcome == "completed"
            return
        assert not isinstance(step, plan.Abort), step
        if isinstance(step, plan.AddReplica):
            num = step.count
        elif isinstance(step, plan.RemoveReplica):
            num = step.count
            replicas = [r for r in replicas if r.pool != step.pool]
        elif len(replicas) < num:  # the control plane places the requested replica
            replicas.append(syncing(f"t{placed}", 0))
            placed += 1
        else:  # the rebuild goes on
            grow = progress_steps[placed % len(progress_steps)]
            replicas = [
                r
                if r.healthy
                else (
                    synced(r.pool)
                    if (r.progress or 0) + grow >= 100
                    else syncing(r.pool, (r.progress or 0) + grow)
                )
                for r in replicas
            ]
    raise AssertionError("migration did not finish")


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3), st.lists(st.integers(1, 60), min_size=1, max_size=4), st.sampled_from([None, 10 * GI])
)
def test_status_follows_a_whole_migration(n, progress_steps, size):
    phases = []
    last_progress = 0
    for current, now in simulate(n, progress_steps):
        status = running_status(intent(n), current, size_bytes=size, now=now)
        # A pure function of the intent and the volume: a restarted operator computes the same status.
        assert status == running_status(intent(n), current, size_bytes=size, now=now)
        assert status.phase in ("AddingReplica", "Syncing", "RemovingReplica")
        assert 0 <= status.progress <= 100
        assert status.progress >= last_progress, "progress never goes back during a forward move"
        last_progress = status.progress
        if size is not None:
            assert status.bytes_to_copy == size * n
            assert 0 <= status.bytes_copied <= status.bytes_to_copy
        if status.phase == "Syncing" and status.progress > 0:
            assert status.eta is not msgspec.UNSET
        elif status.phase != "Syncing":
            assert status.eta is msgspec.UNSET
        if not phases or phases[-1] != status.phase:
            phases.append(status.phase)
    assert last_progress == 100
    # Each round adds, syncs, then removes: the phases only ever go in that cycle.
    allowed = {
        ("AddingReplica", "Syncing"),
        ("Syncing", "RemovingReplica"),
        ("RemovingReplica", "AddingReplica"),
    }
    allowed |= {("AddingReplica", "RemovingReplica")}  # a replica placed already Synced
    for a, b in itertools.pairwise(phases):
        assert (a, b) in allowed, phases
    assert phases.count("RemovingReplica") >= n


def test_syncing_status_reads_as_a_user_expects():
    status = running_status(
        intent(1),
        state([synced("s0"), syncing("t0", 25)], num=2),
        size_bytes=8 * GI,
        now=T0 + timedelta(minutes=10),
    )
    assert (status.phase, status.progress, status.bytes_copied, status.bytes_to_copy) == (
        "Syncing",
        25,
        2 * GI,
        8 * GI,
    )
    assert status.eta == "2026-06-01T10:40:00Z"  # 10 minutes for 25%: 30 more
    assert (status.from_tier, status.to_tier, status.source_pools, status.target_pool) == (
        "cold",
        "hot",
        ["s0"],
        "t0",
    )
    assert status.trigger_iops == 6500.0
    rolling = running_status(
        intent(1, phase="rolling-back", abort_reason="timed out after 1h"),
        state([synced("s0"), syncing("t0", 25)], num=1),
        size_bytes=8 * GI,
        now=T0,
    )
    assert (rolling.phase, rolling.reason) == ("RemovingReplica", "RollingBack")
    assert "timed out after 1h" in rolling.message


# --- approvals ----------------------------------------------------------------------------------------------


def facts(**kw) -> Facts:
    base = {
        "approved": None,
        "cancel": False,
        "deleting": False,
        "created_at": T0,
        "manual": True,
        "ttl_seconds": 3600,
        "planned_generation": 3,
        "policy_generation": 3,
        "still_wanted": True,
    }
    base.update(kw)
    return Facts(**base)


def test_approval_verdicts():
    assert approval_verdict(facts(), T0) == AwaitApproval(T0 + timedelta(hours=1))
    assert approval_verdict(facts(approved=True), T0) == Ready()
    assert approval_verdict(facts(manual=False), T0) == Ready()
    assert approval_verdict(facts(), T0 + timedelta(hours=1)) == Cancel(
        "Expired", "not approved within approvalTTL (1h)"
    )
    assert approval_verdict(facts(approved=False), T0).reason == "Declined"
    assert approval_verdict(facts(cancel=True, approved=True), T0).reason == "Cancelled"
    assert "deleted" in approval_verdict(facts(deleting=True), T0).message
    assert approval_verdict(facts(policy_generation=None), T0).reason == "PolicyGone"
    changed = approval_verdict(facts(approved=True, policy_generation=4), T0)
    assert changed.reason == "PolicyChanged"
    assert "generation 3 -> 4" in changed.message
    gone = approval_verdict(facts(still_wanted=False, why_not="score 300.0 keeps the volume on cold"), T0)
    assert gone == Cancel(
        "DecisionChanged", "the decision no longer holds: score 300.0 keeps the volume on cold"
    )


@given(
    st.sampled_from([None, True, False]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, 3, 4]),
    st.booleans(),
    st.integers(0, 7200),
)
def test_a_move_is_ready_only_when_everything_says_so(
    approved, cancel, deleting, manual, generation, wanted, age
):
    f = facts(
        approved=approved,
        cancel=cancel,
        deleting=deleting,
        manual=manual,
        policy_generation=generation,
        still_wanted=wanted,
    )
    verdict = approval_verdict(f, T0 + timedelta(seconds=age))
    fine = not cancel and not deleting and approved is not False and generation == 3 and wanted
    if isinstance(verdict, Ready):
        assert fine
        assert approved is True or not manual
    elif isinstance(verdict, AwaitApproval):
        assert fine
        assert manual
        assert approved is None
        assert age < 3600
    else:
        assert not fine or (manual and approved is None and age >= 3600)


def _tm(
    name="tm-1",
    volume="pvc-1",
    cancel=False,
    deleting=False,
    phase=None,
    policy="gold",
    finished=None,
    created=None,
):
    status = (
        msgspec.UNSET
        if phase is None
        else TierMigrationStatus(phase=phase, policy=policy, finished_at=finished or msgspec.UNSET)
    )
    return TierMigration(
        metadata=ObjectMeta(
            name=name,
            deletion_timestamp="2026-06-01T10:00:00Z" if deleting else msgspec.UNSET,
            creation_timestamp=created or "2026-06-01T09:00:00Z",
        ),
        spec=TierMigrationSpec(volume=volume, target_tier="hot", cancel=cancel),
        status=status,
    )


def test_stop_reason_and_open_migration():
    assert stop_reason(None) is None
    assert stop_reason(_tm()) is None
    assert stop_reason(_tm(cancel=True)) == "cancelled by the user (spec.cancel)"
    assert stop_reason(_tm(deleting=True)) == "cancelled by the user (TierMigration deleted)"
    done = _tm("old", phase="Succeeded")
    running = _tm("new", phase="Syncing", created="2026-06-01T09:30:00Z")
    other = _tm("x", volume="pvc-2")
    assert open_migration("pvc-1", [done, running, other]) is running
    assert open_migration("pvc-3", [done, running, other]) is None


# --- waiting and finished statuses, patches ----------------------------------------------------------------

MOVE = Move(
    policy="gold",
    from_tier="cold",
    to_tier="hot",
    source_pools=("s0",),
    target_pool="t0",
    size_bytes=10 * GI,
    trigger_iops=6500.0,
    target_free_bytes=50 * GI,
    policy_generation=3,
)


def test_waiting_phases_and_preview():
    awaiting = waiting_status(MOVE, verdict=AwaitApproval(T0))
    assert awaiting.phase == "AwaitingApproval"
    assert "expires at 2026-06-01T10:00:00Z" in awaiting.message
    assert (
        awaiting.preview.target_pool,
        awaiting.preview.bytes_to_copy,
        awaiting.preview.pool_free_bytes_after,
    ) == (
        "t0",
        10 * GI,
        40 * GI,
    )
    assert awaiting.observed_generation == 3
    window = waiting_status(MOVE, verdict=Ready(), hold=Hold("outside-window", "outside", T0))
    assert (window.phase, window.reason, window.next_window) == (
        "Scheduled",
        "OutsideWindow",
        "2026-06-01T10:00:00Z",
    )
    assert waiting_status(MOVE, verdict=Ready()).reason == "Starting"
    assert waiting_status(MOVE, verdict=Ready(), dry_run=True).phase == "Planned"
    unplaced = Move(policy="gold", from_tier="cold", to_tier="hot")
    assert waiting_status(unplaced, verdict=Ready()).phase == "Pending"
    with pytest.raises(ValueError, match="finished"):
        waiting_status(MOVE, verdict=Cancel("Declined", "no"))


def test_finished_phases():
    assert finished_status("completed", now=T0).phase == "Succeeded"
    assert finished_status("rolled-back", now=T0, failed=True).phase == "Failed"
    assert finished_status("rolled-back", now=T0, cancelled=True).phase == "Cancelled"
    assert finished_status("rolled-back", now=T0).phase == "RolledBack"
    declined = finished_status(
        "cancelled", now=T0, reason="Declined", detail="declined (spec.approved: false)"
    )
    assert (declined.phase, declined.reason, declined.finished_at) == (
        "Cancelled",
        "Declined",
        "2026-06-01T10:00:00Z",
    )


def test_status_patches_clear_what_no_longer_applies_and_stop_when_finished():
    syncing_status = running_status(
        intent(1),
        state([synced("s0"), syncing("t0", 50)], num=2),
        size_bytes=GI,
        now=T0 + timedelta(minutes=5),
    )
    removing = running_status(
        intent(1), state([synced("s0"), synced("t0")], num=1), size_bytes=GI, now=T0 + timedelta(minutes=9)
    )
    patch = status_patch(syncing_status, removing)
    assert patch is not None
    assert patch["status"]["phase"] == "RemovingReplica"
    assert patch["status"]["eta"] is None
    assert status_patch(removing, removing) is None
    done = finished_status("completed", now=T0 + timedelta(minutes=10))
    final = status_patch(syncing_status, done)
    assert final is not None
    assert final["status"]["eta"] is None  # transient fields go
    assert "sourcePools" not in final["status"]  # what the move showed stays
    assert status_patch(done, removing) is None  # a finished status is final


statuses = st.builds(
    TierMigrationStatus,
    phase=st.sampled_from(["Pending", "Scheduled", "Syncing", "AwaitingApproval"]),
    reason=st.sampled_from([msgspec.UNSET, "A", "B"]),
    progress=st.sampled_from([msgspec.UNSET, 0, 50]),
    eta=st.sampled_from([msgspec.UNSET, "2026-06-01T10:00:00Z"]),
    target_pool=st.sampled_from([msgspec.UNSET, "t0", "t1"]),
)


@given(statuses, statuses)
def test_a_patch_applied_as_merge_patch_gives_the_new_status(old, new):
    patch = status_patch(old, new)
    merged = msgspec.to_builtins(old)
    for key, value in (patch or {"status": {}})["status"].items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    assert merged == msgspec.to_builtins(new)


# --- history and names --------------------------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(st.sampled_from(["gold", "silver", "gone"]), st.integers(0, 50), st.booleans()),
        max_size=30,
    ),
    st.integers(0, 5),
)
def test_history_keeps_the_newest_per_policy(items, limit):
    tms = [
        _tm(
            f"tm-{i}",
            phase="Succeeded" if done else "Syncing",
            policy=policy,
            finished=f"2026-06-01T10:{minute:02d}:00Z",
        )
        for i, (policy, minute, done) in enumerate(items)
    ]
    doomed = set(history_to_delete(tms, {"gold": limit, "silver": limit + 1}, default_limit=2))
    for policy, keep in (("gold", limit), ("silver", limit + 1), ("gone", 2)):
        finished = sorted(
            (tm.status.finished_at, tm.metadata.name)
            for tm in tms
            if tm.status.policy == policy and tm.status.phase == "Succeeded"
        )
        assert {name for _, name in finished[: max(len(finished) - keep, 0)]} == doomed & {
            n for _, n in finished
        }
    assert not doomed & {tm.metadata.name for tm in tms if tm.status.phase == "Syncing"}


@given(st.text(alphabet="abcXYZ019.-_", min_size=1, max_size=300), st.sampled_from(["hot", "warm", "cold"]))
def test_object_names_are_valid_and_say_what_moves(pv, tier):
    name = object_name(pv, tier, datetime(2026, 12, 6, 10, 30, 5, tzinfo=UTC))
    assert len(name) <= 253
    assert re.fullmatch(_DNS_SUBDOMAIN, name)
    assert name.endswith(f"-{tier}-20261206103005")
    assert object_name("pvc-abc", "hot", T0) == "pvc-abc-hot-20260601100000"
