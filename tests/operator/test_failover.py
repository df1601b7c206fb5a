"""Two operators with leader election: one acts, the standby is ready, and takes over a migration mid-way."""

from __future__ import annotations

import httpx
import pytest

from tests.operator.harness import policy_body
from tests.operator.test_faults import assert_at_rest, slow_rebuilds, wait_recorded

pytestmark = pytest.mark.prometheus

ELECTION = {
    "leader_election": "true",
    "namespace": "default",
    "lease_duration": "4s",
    "renew_deadline": "3s",
    "retry_period": "1s",
}


@pytest.fixture
def loads():
    return {"heavy": ("cold", 8000.0), "middle": ("hot", 2000.0)}


def leading(operator) -> bool:
    return operator.metrics.is_leader._value.get() == 1


async def test_standby_is_ready_and_finishes_the_leaders_migration(env):
    slow_rebuilds(env, 20 * 2**20)
    await env.apply_policy(policy_body())
    first = await env.start_operator(identity="first", **ELECTION)

    async def first_leads():
        return leading(first)

    await env.eventually(first_leads, what="the first operator to lead")
    second = await env.start_operator(identity="second", **ELECTION)
    async with httpx.AsyncClient() as http:

        async def standby_ready():
            return (await http.get(f"{second.endpoint_url}/readyz")).status_code == 200

        await env.eventually(standby_ready, what="the standby ready")
    assert not leading(second)

    async def syncing():
        vol = await env.volume("heavy")
        return any(r.sync_state == "Syncing" for r in vol.replicas)

    await env.eventually(syncing, what="the leader's migration syncing")
    env.stop_operator(first)

    async def second_leads():
        return leading(second)

    await env.eventually(second_leads, timeout=30, what="the standby taking over")
    entries = await wait_recorded(env)
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]
    await assert_at_rest(env, "heavy", ["hot"])
