"""``couchestor run --backend mayastor-rest``: the same operator on Mayastor 2.x's REST API (simulated), with the
intent on the PV and placement steered by pool cordons."""

from __future__ import annotations

import pytest

from k8s_schemas.annotations import MIGRATION_INTENT, TIER_LABEL
from tests.operator.harness import policy_body
from tests.operator.test_faults import history

pytestmark = pytest.mark.prometheus


@pytest.fixture
def backend():
    return "rest"


async def test_rest_backend_promotes_and_demotes(env):
    sim = env.simulator
    await env.apply_policy(policy_body())
    await env.start_operator(backend="mayastor-rest", mayastor_rest_url=sim.url)

    async def recorded():
        entries = await history(env)
        return len(entries) >= 2 and entries

    entries = await env.eventually(recorded, timeout=90, what="two migrations recorded")
    assert {(e.volume_name, e.success) for e in entries} == {("pvc-heavy", True), ("pvc-idle", True)}
    assert await env.tiers("heavy") == ["hot"]
    assert await env.tiers("idle") == ["cold"]
    assert await env.tiers("middle") == ["hot"]

    async def settled():
        pvs = {name: await env.pv(name) for name in ("heavy", "idle")}
        return all(MIGRATION_INTENT not in (pv.metadata.annotations or {}) for pv in pvs.values()) and {
            name: pv.metadata.labels.get(TIER_LABEL) for name, pv in pvs.items()
        } == {"heavy": "hot", "idle": "cold"}

    await env.eventually(settled, what="the intents removed from the PVs and their tier labels set")
    assert not sim.plane.pool_cordons, "every cordon lifted"
    assert sim.checker.violations == []
