"""The data-safety defects of issue 25, each replayed end to end on the emulated cluster (both backends where
it applies): lost replies, unguarded scale-downs, rollbacks that cannot finish."""

from __future__ import annotations

import pytest

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
