"""The data-safety defects of issue 25, each replayed end to end on the emulated cluster (both backends where
it applies): lost replies, unguarded scale-downs, rollbacks that cannot finish."""

from __future__ import annotations

from dataclasses import replace

import pytest

from couchestor.kube import resources
from couchestor.migration.backend import BackendError
from tests.operator.harness import WrappedBackend, policy_body

pytestmark = pytest.mark.prometheus


async def history(env, name="tiering"):
    status = await env.status(name)
    return list(status.migration_history) if status and status.migration_history else []


async def wait_recorded(env, count=1, timeout=60.0):
    async def recorded():
        entries = await history(env)
        return len(entries) >= count and entries

    return await env.eventually(recorded, timeout=timeout, what=f"{count} history entries")


async def assert_at_rest(env, name, tiers):
    async def rest():
        return await env.intent(name) is None and await env.tiers(name) == tiers

    await env.eventually(rest, what=f"{name} at rest on {tiers}")
    assert env.simulator.checker.violations == []
    if env.rest:
        assert not env.simulator.plane.pool_cordons, "every cordon lifted"


class LostFirstIntentReply(WrappedBackend):
    """The first intent write is applied, then its answer is lost: what the Kubernetes client reports when
    the connection breaks after the server acted, or (REST backend) when the re-read after the PV patch
    fails."""

    def __init__(self, inner):
        super().__init__(inner)
        self.lost = 0

    async def write_intent(self, volume, intent, *, expected_version):
        state = await self.inner.write_intent(volume, intent, expected_version=expected_version)
        if intent is not None and not self.lost:
            self.lost += 1
            raise BackendError("cannot update: connection broken: reset by peer", retryable=True)
        return state


async def test_a_lost_reply_on_the_first_intent_write_does_not_orphan_the_intent(env):
    # Issue 25, defect 3: the retry met its own write (409), the re-read found "an intent from" this very
    # operator, and the volume stayed stuck until a restart.
    await env.apply_policy(policy_body())
    _, backends = await env.start_operator_with_backend(lambda operator, inner: LostFirstIntentReply(inner))
    entries = await wait_recorded(env)
    assert backends[0].lost == 1
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]
    await assert_at_rest(env, "heavy", ["hot"])


class UnpublishedDuringRollback(WrappedBackend):
    """The first volume to migrate: its new replica is reported Faulted (the migration rolls back), then the
    volume is unpublished, so every replica's sync state reads Unknown and the rollback can never proceed."""

    def __init__(self, inner):
        super().__init__(inner)
        self.volume = None

    async def add_replica(self, volume, **kw):
        self.volume = self.volume or volume
        return await self.inner.add_replica(volume, **kw)

    async def read(self, volume):
        state = await self.inner.read(volume)
        if volume != self.volume or state.intent is None:
            return state
        source = set(state.intent.source_pools)
        if state.intent.phase == "forward":
            replicas = tuple(r if r.pool in source else replace(r, state="Faulted") for r in state.replicas)
        else:
            replicas = tuple(replace(r, sync_state="Unknown") for r in state.replicas)
        return replace(state, replicas=replicas)


@pytest.mark.parametrize("loads", [{"first": ("cold", 8000.0), "second": ("cold", 8000.0)}])
async def test_a_rollback_that_cannot_finish_is_reported_and_gives_its_slot_back(env):
    # Issue 25, defect 6: the rollback had no deadline and held the global slot: with one slot, nothing else
    # ever migrated again.
    await env.apply_policy(policy_body(migrationTimeout="10s"))
    operator, backends = await env.start_operator_with_backend(
        lambda operator, inner: UnpublishedDuringRollback(inner), max_concurrent_migrations="1"
    )
    await env.eventually(lambda: _true(backends and backends[0].volume), what="a first migration")
    entries = await wait_recorded(env, timeout=90)
    moved_pv = entries[0].volume_name
    stuck_pv = "pvc-second" if moved_pv == "pvc-first" else "pvc-first"
    assert [(e.volume_name, e.success) for e in entries] == [(moved_pv, True)]
    assert await env.tiers(moved_pv.removeprefix("pvc-")) == ["hot"]
    runner = operator.runner
    assert stuck_pv in runner.stuck
    assert runner.metrics.stuck_migrations._value.get() == 1
    assert await env.intent(stuck_pv.removeprefix("pvc-")) is not None, "the rollback goes on"

    async def stuck_event():
        events = await env.client.list_all(resources.EVENT, "default", type=dict)
        return [e for e in events.items if e.get("reason") == "MigrationStuck"]

    reported = await env.eventually(stuck_event, what="a MigrationStuck Event")
    assert "rollback" in reported[0]["message"]

    async def stuck_condition():
        status = await env.status()
        conditions = {c.type: c for c in status.conditions} if status and status.conditions else {}
        return conditions.get("MigrationsStuck")

    condition = await env.eventually(stuck_condition, what="a MigrationsStuck condition")
    assert condition.status == "True"
    assert stuck_pv in condition.message
    assert env.simulator.checker.violations == []


async def _true(value):
    return bool(value)
