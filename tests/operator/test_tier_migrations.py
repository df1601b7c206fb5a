"""TierMigrations under the operator's control, end to end on the emulated cluster: every move is recorded as
one, Manual approval holds a move until it is approved (or declines it), ``spec.cancel`` rolls a running move
back, a closed maintenance window or ``--paused`` holds new moves, the per-node rebuild limit is never
exceeded, and a crash while a move awaits approval, while it is cancelled or after its window closed leaves
no invariant violated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from couchestor.approvals import answer
from couchestor.durations import parse_time
from couchestor.kube import resources
from couchestor.migration.intent import decode
from couchestor.tiering.tiermigration import FINALIZER
from couchestor.tiering.windows import compile_window
from k8s_schemas.annotations import POLICY_GENERATION, POLICY_LABEL
from k8s_schemas.tier_migration import TierMigration
from tests.operator.harness import WrappedBackend, policy_body

pytestmark = pytest.mark.prometheus

MIB = 2**20


async def migrations(env) -> list[TierMigration]:
    listed = await env.client.list_all(resources.TIER_MIGRATION, type=TierMigration)
    return list(listed.items)


async def migration_of(env, pv: str) -> TierMigration | None:
    """The one TierMigration of ``pv`` (fails on several)."""
    mine = [tm for tm in await migrations(env) if tm.spec.volume == pv]
    assert len(mine) <= 1, [tm.metadata.name for tm in mine]
    return mine[0] if mine else None


async def wait_phase(env, pv: str, *phases: str, timeout: float = 90.0) -> TierMigration:
    async def reached():
        tm = await migration_of(env, pv)
        return tm if tm is not None and tm.status and tm.status.phase in phases else None

    return await env.eventually(reached, timeout=timeout, what=f"TierMigration of {pv} in {phases}")


async def wait_released(env, pv: str) -> TierMigration:
    async def released():
        tm = await migration_of(env, pv)
        return tm if tm is not None and FINALIZER not in (tm.metadata.finalizers or ()) else None

    return await env.eventually(released, what=f"the finalizer of {pv}'s TierMigration dropped")


async def assert_unmoved(env, names_tiers: dict[str, list[str]]) -> None:
    for name, tiers in names_tiers.items():
        assert await env.intent(name) is None, f"{name} has an intent"
        assert await env.tiers(name) == tiers


async def test_every_move_is_recorded_as_a_tier_migration(env):
    policy = await env.apply_policy(policy_body())
    await env.start_operator()
    heavy = await wait_phase(env, "pvc-heavy", "Succeeded")
    idle = await wait_phase(env, "pvc-idle", "Succeeded")
    assert await env.tiers("heavy") == ["hot"]
    assert await env.tiers("idle") == ["cold"]
    for tm, to in ((heavy, "hot"), (idle, "cold")):
        assert tm.spec.policy == "tiering"
        assert tm.spec.target_tier == to
        assert tm.metadata.labels[POLICY_LABEL] == "tiering"
        assert tm.metadata.annotations[POLICY_GENERATION] == str(policy.metadata.generation)
        assert tm.status.to_tier == to
        assert tm.status.progress == 100
        assert tm.status.started_at
        assert tm.status.finished_at
        assert tm.status.reason == "Completed"
    assert (await wait_released(env, "pvc-heavy")).status.phase == "Succeeded"
    await wait_released(env, "pvc-idle")
    assert await migration_of(env, "pvc-middle") is None
    assert env.simulator.checker.violations == []


@pytest.mark.parametrize("backend", ["crd", "rest"])
async def test_a_manual_move_waits_for_approval_then_moves_and_a_declined_one_is_cancelled(env):
    await env.apply_policy(policy_body(approval="Manual"))
    operator = await env.start_operator()
    heavy = await wait_phase(env, "pvc-heavy", "AwaitingApproval")
    idle = await wait_phase(env, "pvc-idle", "AwaitingApproval")
    assert heavy.status.preview.target_pool.startswith("pool-hot-")
    assert (await env.status()).phase == "Active"  # Manual approval is enforced, so accepted
    passes = operator.reconciler.passes
    await env.eventually(
        lambda: _true(operator.reconciler.passes >= passes + 3), what="three more reconcile passes"
    )
    await assert_unmoved(env, {"heavy": ["cold"], "idle": ["hot"]})

    print(await answer(env.client, heavy.metadata.name, approved=True))
    done = await wait_phase(env, "pvc-heavy", "Succeeded")
    assert done.spec.approved is True
    assert await env.tiers("heavy") == ["hot"]
    await assert_unmoved(env, {"idle": ["hot"]})
    assert (await migration_of(env, "pvc-idle")).status.phase == "AwaitingApproval"

    await answer(env.client, idle.metadata.name, approved=False)
    declined = await wait_phase(env, "pvc-idle", "Cancelled")
    assert declined.status.reason == "Declined"
    await wait_released(env, "pvc-idle")
    await assert_unmoved(env, {"idle": ["hot"]})
    assert env.simulator.checker.violations == []


async def _true(value: bool) -> bool:
    return value


async def test_cancel_mid_sync_rolls_the_move_back(env):
    env.slow_rebuilds(40 * MIB)
    await env.apply_policy(policy_body(lowWatermarkIOPS=0))  # only heavy moves
    await env.start_operator()
    syncing = await wait_phase(env, "pvc-heavy", "Syncing")
    assert syncing.status.progress is not None
    await env.client.merge_patch(
        resources.TIER_MIGRATION, syncing.metadata.name, {"spec": {"cancel": True}}, type=dict
    )
    done = await wait_phase(env, "pvc-heavy", "Cancelled", "RolledBack")
    assert done.status.phase == "Cancelled"
    assert "cancelled by the user" in done.status.message
    await wait_released(env, "pvc-heavy")
    await env.eventually(lambda: _at_rest(env, "heavy", ["cold"]), what="heavy back at rest on cold")
    history = (await env.status()).migration_history
    assert [h.success for h in history] == [False]
    assert env.simulator.checker.violations == []


async def _at_rest(env, name: str, tiers: list[str]) -> bool:
    return await env.intent(name) is None and await env.tiers(name) == tiers


async def test_deleting_a_running_move_rolls_it_back_before_the_object_goes(env):
    env.slow_rebuilds(40 * MIB)
    await env.apply_policy(policy_body(lowWatermarkIOPS=0))
    await env.start_operator()
    syncing = await wait_phase(env, "pvc-heavy", "Syncing")
    await env.client.delete(resources.TIER_MIGRATION, syncing.metadata.name)
    # The finalizer keeps the object until the rollback is done.
    await env.eventually(lambda: _gone(env, "pvc-heavy"), what="the deleted TierMigration gone")
    assert await _at_rest(env, "heavy", ["cold"])
    assert env.simulator.checker.violations == []


async def _gone(env, pv: str) -> bool:
    return await migration_of(env, pv) is None


async def test_outside_its_windows_a_policy_starts_no_move(env):
    closed_hour = (datetime.now(UTC).hour + 12) % 24  # a one-hour window twelve hours away
    window = {"schedule": f"0 {closed_hour} * * *", "duration": "1h", "timeZone": "UTC"}
    await env.apply_policy(policy_body(maintenanceWindows=[window]))
    operator = await env.start_operator()
    held = await wait_phase(env, "pvc-heavy", "Scheduled")
    assert held.status.reason == "OutsideWindow"
    assert held.status.next_window.endswith(f"T{closed_hour:02d}:00:00Z")

    async def shown():
        status = await env.status()
        return status is not None and status.next_window == held.status.next_window

    await env.eventually(shown, what="the policy's status.nextWindow")
    passes = operator.reconciler.passes
    await env.eventually(lambda: _true(operator.reconciler.passes >= passes + 3), what="more passes")
    await assert_unmoved(env, {"heavy": ["cold"], "idle": ["hot"]})
    # Where decisions are shown (the metric, Events, logs), the held moves say why they wait.
    assert shown_labels(operator) >= {
        ("pvc-heavy", "skip:outside-window"),
        ("pvc-idle", "skip:outside-window"),
    }
    counted = operator.metrics.decisions.labels(policy="tiering", action="skip:outside-window")
    assert counted._value.get() >= 2


def shown_labels(operator) -> set[tuple[str, str]]:
    plan = operator.reconciler.last_plan
    return {(d.volume, d.label) for d in plan.decisions}


@pytest.mark.parametrize("backend", ["crd", "rest"])
async def test_a_crash_after_the_window_closed_finishes_the_move_and_starts_no_other(env):
    env.slow_rebuilds(0)  # the started move stays in Syncing until the window has closed
    now = datetime.now(UTC)
    # A daily window that opened at the start of this minute and closes 35 s from now (the move starts well
    # before; the rest of the day is outside it).
    window = {"schedule": f"{now.minute} {now.hour} * * *", "duration": f"{now.second + 35}s"}
    closes = now.replace(microsecond=0) + timedelta(seconds=35)
    schedule = compile_window(window["schedule"], window["duration"])
    await env.apply_policy(policy_body(maintenanceWindows=[window], maxConcurrentMigrations=1))
    first = await env.start_operator()

    async def one_syncing():
        tms = [tm for tm in await migrations(env) if tm.status and tm.status.phase == "Syncing"]
        return tms[0] if tms else None

    started = await env.eventually(one_syncing, what="a move syncing inside the window")
    assert schedule.open_at(parse_time(started.status.started_at)) is not None
    moving = started.spec.volume
    other = "pvc-idle" if moving == "pvc-heavy" else "pvc-heavy"

    async def closed():
        return datetime.now(UTC) > closes + timedelta(seconds=1)

    # The window closes while the move runs (the other waits for the policy's one slot meanwhile).
    await env.eventually(closed, timeout=60, what="the window closed")
    passes = first.reconciler.passes
    await env.eventually(lambda: _true(first.reconciler.passes > passes), what="a pass after the close")
    env.kill(first)
    await env.wait_stopped(first)
    assert await env.intent(moving.removeprefix("pvc-")) is not None  # killed mid-move, after the close

    second = await env.start_operator()
    env.slow_rebuilds(400 * MIB)
    done = await wait_phase(env, moving, "Succeeded")  # finished, not rolled back for the closed window
    assert done.status.started_at == started.status.started_at
    passes = second.reconciler.passes
    await env.eventually(lambda: _true(second.reconciler.passes >= passes + 3), what="more passes")
    waiting = await migration_of(env, other)
    assert (waiting.status.phase, waiting.status.reason) == ("Scheduled", "OutsideWindow")
    assert await env.intent(other.removeprefix("pvc-")) is None
    assert (other, "skip:outside-window") in shown_labels(second)
    for tm in await migrations(env):  # every move that started, started inside the window
        if tm.status and tm.status.started_at:
            assert schedule.open_at(parse_time(tm.status.started_at)) is not None, tm.metadata.name
    assert env.simulator.checker.violations == []


async def test_a_paused_operator_starts_no_move(env):
    await env.apply_policy(policy_body())
    operator = await env.start_operator(paused="true")
    held = await wait_phase(env, "pvc-heavy", "Scheduled")
    assert held.status.reason == "Paused"
    passes = operator.reconciler.passes
    await env.eventually(lambda: _true(operator.reconciler.passes >= passes + 3), what="more passes")
    await assert_unmoved(env, {"heavy": ["cold"], "idle": ["hot"]})


@pytest.mark.parametrize(
    "loads", [{f"v{i}": ("cold", 8000.0 + i) for i in range(4)}], ids=["four-promotions"]
)
async def test_the_per_node_rebuild_limit_is_never_exceeded(env):
    env.slow_rebuilds(200 * MIB)
    checker = env.simulator.checker
    checker.node_of_pool = {p.name: p.node for p in env.spec.pools}
    checker.max_per_node = 1
    await env.apply_policy(policy_body(maxConcurrentMigrations=4, maxRebuildsPerNode=1, maxRebuildsPerPool=4))
    await env.start_operator(max_concurrent_migrations="4")

    async def all_moved():
        return all([await env.tiers(f"v{i}") == ["hot"] for i in range(4)])

    await env.eventually(all_moved, timeout=180, what="every volume promoted")
    assert checker.violations == []
    assert checker.peak_per_node == 1


async def test_a_crash_while_a_move_awaits_approval_loses_nothing(env):
    await env.apply_policy(policy_body(approval="Manual", lowWatermarkIOPS=0))  # only heavy moves
    first = await env.start_operator()
    waiting = await wait_phase(env, "pvc-heavy", "AwaitingApproval")
    env.kill(first)
    await env.wait_stopped(first)
    await answer(env.client, waiting.metadata.name, approved=True)
    await env.start_operator()
    await wait_phase(env, "pvc-heavy", "Succeeded")
    assert await env.tiers("heavy") == ["hot"]
    assert [tm.metadata.name for tm in await migrations(env)] == [waiting.metadata.name]
    assert env.simulator.checker.violations == []


class CrashOnRollback(WrappedBackend):
    """Kills its operator as soon as it has recorded a rollback on a volume's intent."""

    def __init__(self, inner, crash):
        super().__init__(inner)
        self.crash, self.crashed = crash, False

    async def write_intent(self, volume, intent, *, expected_version):
        state = await self.inner.write_intent(volume, intent, expected_version=expected_version)
        if intent is not None and intent.phase == "rolling-back" and not self.crashed:
            self.crashed = True
            self.crash()
            await trio.lowlevel.checkpoint()
        return state


@pytest.mark.parametrize("backend", ["crd", "rest"])
async def test_a_crash_during_a_cancel_still_rolls_back(env):
    env.slow_rebuilds(40 * MIB)
    await env.apply_policy(policy_body(lowWatermarkIOPS=0))
    first, backends = await env.start_operator_with_backend(
        lambda operator, inner: CrashOnRollback(inner, lambda: env.kill(operator))
    )
    syncing = await wait_phase(env, "pvc-heavy", "Syncing")
    await env.client.merge_patch(
        resources.TIER_MIGRATION, syncing.metadata.name, {"spec": {"cancel": True}}, type=dict
    )
    await env.wait_stopped(first, timeout=60)
    assert backends[0].crashed
    text = await env.intent("heavy")
    assert text is not None
    assert decode(text).phase == "rolling-back"
    assert (await migration_of(env, "pvc-heavy")).status.phase not in ("Cancelled", "RolledBack")
    await env.start_operator()
    done = await wait_phase(env, "pvc-heavy", "Cancelled")
    assert done.status.reason == "Cancelled"
    await env.eventually(lambda: _at_rest(env, "heavy", ["cold"]), what="heavy back at rest on cold")
    await wait_released(env, "pvc-heavy")
    assert env.simulator.checker.violations == []


async def test_a_dry_run_policy_shows_its_moves_as_planned_tier_migrations(env):
    await env.apply_policy(policy_body(dryRun=True))
    operator = await env.start_operator()
    heavy = await wait_phase(env, "pvc-heavy", "Planned")
    idle = await wait_phase(env, "pvc-idle", "Planned")
    assert (heavy.spec.target_tier, idle.spec.target_tier) == ("hot", "cold")
    assert heavy.status.reason == "DryRun"
    passes = operator.reconciler.passes
    await env.eventually(lambda: _true(operator.reconciler.passes >= passes + 3), what="more passes")
    await assert_unmoved(env, {"heavy": ["cold"], "idle": ["hot"]})
    assert (await migration_of(env, "pvc-heavy")).status.phase == "Planned"
