"""Group-aware tiering end to end: a volume group moves on its combined heat, all members or none, even when a
member fails or the operator dies at the group's commit point."""

from __future__ import annotations

import pytest

from k8s_schemas.annotations import MIGRATION_INTENT
from tests.operator.harness import WrappedBackend, policy_body
from tests.operator.test_faults import history, slow_rebuilds

pytestmark = pytest.mark.prometheus

MIB = 2**20
MEMBERS = ("data", "wal", "conf")


@pytest.fixture
def loads():
    # Alone, no member is hot (5000 IOPS); together they are (5600).
    return {
        "data": ("cold", 3000.0, "pg"),
        "wal": ("cold", 2400.0, "pg"),
        "conf": ("cold", 200.0, "pg"),
        "other": ("cold", 2000.0),
    }


def grouped_policy(**spec):
    # The members rebuild at once: room for all three on one node or pool (admission never exceeds the limits).
    return policy_body(
        groupLabel="group", maxConcurrentMigrations=1, maxRebuildsPerNode=3, maxRebuildsPerPool=3, **spec
    )


async def group_tiers(env):
    return {name: await env.tiers(name) for name in MEMBERS}


async def wait_group_recorded(env, timeout=120.0):
    async def recorded():
        entries = await history(env)
        names = {e.volume_name for e in entries}
        intents = [await env.volume(n) for n in MEMBERS]
        idle = all(MIGRATION_INTENT not in (v.metadata.annotations or {}) for v in intents)
        return names >= {f"pvc-{m}" for m in MEMBERS} and idle and entries

    return await env.eventually(recorded, timeout=timeout, what="every member recorded")


async def test_group_moves_together_on_combined_heat(env):
    await env.apply_policy(grouped_policy())
    operator = await env.start_operator()
    entries = await wait_group_recorded(env)
    assert all(e.success for e in entries)
    assert await group_tiers(env) == {m: ["hot"] for m in MEMBERS}
    assert await env.tiers("other") == ["cold"]
    plan = operator.reconciler.last_plan
    assert all(e.trigger_iops > 5000 for e in entries)
    assert plan is not None
    assert env.simulator.checker.violations == []


async def test_one_member_failing_before_the_commit_rolls_the_whole_group_back(env):
    slow_rebuilds(env, 20 * MIB)
    await env.apply_policy(grouped_policy())
    await env.start_operator()

    async def syncing_pool():
        vol = await env.volume("wal")
        return next((r.pool for r in vol.replicas if r.sync_state == "Syncing"), None)

    pool = await env.eventually(syncing_pool, what="the wal member syncing")
    env.simulator.fault_replica("vol-wal", pool)
    entries = await wait_group_recorded(env)
    assert not any(e.success for e in entries)
    assert await group_tiers(env) == {m: ["cold"] for m in MEMBERS}
    assert env.simulator.checker.violations == []


class StopAtCommit(WrappedBackend):
    """Kills its operator the moment the first member records the group's commit."""

    def __init__(self, inner, *, crash):
        super().__init__(inner)
        self.crash, self.crashed = crash, False

    async def write_intent(self, volume, intent, *, expected_version):
        state = await self.inner.write_intent(volume, intent, expected_version=expected_version)
        if intent is not None and intent.committed and not self.crashed:
            self.crashed = True
            self.crash()
        return state


async def test_operator_dying_at_the_commit_leaves_no_partial_group(env):
    await env.apply_policy(grouped_policy())
    _, backends = await env.start_operator_with_backend(
        lambda operator, inner: StopAtCommit(inner, crash=lambda: env.kill(operator))
    )

    async def crashed():
        return backends and backends[0].crashed

    await env.eventually(crashed, timeout=90, what="the crash at the commit")
    await env.start_operator(identity="second-operator")
    entries = await wait_group_recorded(env)
    outcomes = {e.success for e in entries}
    assert len(outcomes) == 1, entries  # all members succeeded, or none
    expected = ["hot"] if outcomes == {True} else ["cold"]
    assert await group_tiers(env) == dict.fromkeys(MEMBERS, expected)
    assert env.simulator.checker.violations == []
