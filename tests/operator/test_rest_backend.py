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


async def test_rest_backend_promotes_and_demotes(env, tmp_path):
    sim = env.simulator
    sim.app.token = "operator-token"  # a control plane with authentication on
    token = tmp_path / "token"
    token.write_text("operator-token\n")
    await env.apply_policy(policy_body())
    await env.start_operator(
        backend="mayastor-rest", mayastor_rest_url=sim.url, mayastor_rest_token_file=str(token)
    )

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
    assert await _steering(env) == ("PoolCordon", "new replicas are steered to their pool by pool cordon")


async def test_rest_backend_on_a_release_without_pool_cordon_steers_by_node_cordon(env):
    sim = env.simulator
    sim.plane.release = "2.7"
    await env.apply_policy(policy_body())
    await env.start_operator(backend="mayastor-rest", mayastor_rest_url=sim.url)

    async def recorded():
        entries = await history(env)
        return len(entries) >= 2 and entries

    entries = await env.eventually(recorded, timeout=90, what="two migrations recorded")
    assert {(e.volume_name, e.success) for e in entries} == {("pvc-heavy", True), ("pvc-idle", True)}
    assert await env.tiers("heavy") == ["hot"]
    assert await env.tiers("idle") == ["cold"]
    await env.eventually(lambda: _no_intent(env, "heavy"), what="the intent removed")
    assert not sim.plane.node_cordons, "every node cordon lifted"
    assert sim.checker.violations == []
    assert await _steering(env) == ("NodeCordon", "new replicas are steered to their pool by node cordon")


async def _steering(env):
    async def condition():
        status = await env.status()
        found = [c for c in (status.conditions or []) if c.type == "Steering"] if status else []
        return found and (found[0].reason, found[0].message)

    return await env.eventually(condition, what="the Steering condition")


@pytest.mark.parametrize("loads", [{"heavy": ("cold", 8000.0), "middle": ("hot", 2000.0)}])
async def test_mayastor_removing_the_new_replica_is_repaired(env):
    """On scale-down Mayastor drops the replica just built instead of the old one; the operator notices,
    builds it again, and the volume never has fewer healthy replicas than it started with."""
    sim = env.simulator
    sim.plane.misremove = 1
    await env.apply_policy(policy_body())
    await env.start_operator()
    entries = await env.eventually(lambda: history(env), timeout=90, what="the migration recorded")
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]
    assert sim.plane.misremove == 0, "the wrong removal happened"
    assert await env.tiers("heavy") == ["hot"]
    await env.eventually(lambda: _no_intent(env, "heavy"), what="the intent removed")
    assert not sim.plane.pool_cordons
    assert sim.checker.violations == []


@pytest.mark.parametrize("loads", [{"heavy": ("cold", 8000.0), "middle": ("hot", 2000.0)}])
async def test_operator_killed_while_pools_are_cordoned_is_finished_by_the_next_one(env):
    """The operator dies right after cordoning the pools that must not receive the new replica (before it
    saw the answer, and with Mayastor out of its reach, so its shielded clean-up cannot lift them either); the
    next operator finds its cordons recorded on the PV, lifts them and finishes the move."""
    sim = env.simulator
    await env.apply_policy(policy_body())
    killed: list[bool] = []
    first = None

    def crash_once_cordoned():
        if not killed and first is not None and any(c.replicas for c in sim.plane.pool_cordons.values()):
            killed.append(True)
            sim.app.fail_next.extend([503] * 10_000)  # the dying process reaches nothing
            env.kill(first)  # the cancellation reaches it before the cordon's answer does
        sim._wake_up()

    sim.app.on_change = crash_once_cordoned
    first = await env.start_operator()
    await env.eventually(lambda: _true(killed), what="the crash with pools cordoned")
    await env.wait_stopped(first)
    sim.app.fail_next.clear()
    assert any(c.replicas for c in sim.plane.pool_cordons.values()), "cordons left behind by the crash"
    assert await env.intent("heavy") is not None

    await env.start_operator(identity="second-operator")
    entries = await env.eventually(lambda: history(env), timeout=90, what="the migration recorded")
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]
    await env.eventually(lambda: _no_intent(env, "heavy"), what="the intent removed")
    assert await env.tiers("heavy") == ["hot"]
    assert not sim.plane.pool_cordons, "every cordon lifted"
    assert sim.checker.violations == []


async def _no_intent(env, name):
    return await env.intent(name) is None


async def _true(flag):
    return bool(flag)
