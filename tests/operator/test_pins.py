"""Pins and opt-outs end to end on the emulated cluster with a real Prometheus: the annotations on a PVC reach
the operator through its PVC watch; a pinned volume moves to its tier against its heat, an opted-out one
stays, an unreadable pin moves nothing and says so (Event on the claim, condition on the policy)."""

from __future__ import annotations

import pytest

from couchestor.kube import resources
from k8s_schemas.annotations import EXCLUDE, PIN
from tests.operator.harness import policy_body
from tests.operator.test_faults import history

pytestmark = pytest.mark.prometheus


@pytest.fixture
def loads():
    return {
        "pinned": ("hot", 8000.0),  # busy on hot: the heat keeps it there, its pin sends it to cold
        "excluded": ("hot", 0.0),  # idle on hot: the heat would demote it, its claim opts out
        "garbled": ("cold", 8000.0),  # busy on cold: the heat would promote it, its pin cannot be read
        "idle": ("hot", 0.0),  # the control: demoted by its heat
    }


async def annotate(env, name, annotations):
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME_CLAIM,
        f"data-{name}",
        {"metadata": {"annotations": annotations}},
        namespace="apps",
        type=dict,
    )


async def test_a_pinned_claim_moves_to_its_tier_an_excluded_one_stays(env):
    await annotate(env, "excluded", {EXCLUDE: "true"})
    await annotate(env, "garbled", {PIN: "lukewarm"})
    await env.apply_policy(policy_body())
    operator = await env.start_operator()

    async def idle_moved():
        names = {e.volume_name for e in await history(env) if e.success}
        return "pvc-idle" in names and names

    await env.eventually(idle_moved, timeout=90, what="the idle volume demoted")
    # The pin arrives while the operator runs: the PVC watch brings it to the next pass.
    await annotate(env, "pinned", {PIN: "cold"})

    async def pinned_moved():
        entries = [e for e in await history(env) if e.volume_name == "pvc-pinned" and e.success]
        return entries and await env.tiers("pinned") == ["cold"] and entries

    (entry,) = await env.eventually(pinned_moved, timeout=90, what="the pinned volume on cold")
    assert (entry.from_tier, entry.to_tier) == ("hot", "cold")
    assert await env.tiers("excluded") == ["hot"]
    assert await env.tiers("garbled") == ["cold"]
    moved = {e.volume_name for e in await history(env)}
    assert moved == {"pvc-idle", "pvc-pinned"}

    async def judged_after_the_move():
        # The pass that saw the move in flight may be the last one so far; wait for one that saw it done.
        plan = operator.reconciler.last_plan
        labels = {d.volume: d.label for d in plan.decisions} if plan is not None else {}
        return labels.get("pvc-pinned") != "skip:in-flight" and labels

    labels = await env.eventually(judged_after_the_move, timeout=30, what="a pass after the pinned move")
    assert labels["pvc-pinned"] == "skip:pinned"  # on its tier now, busy as it is
    assert labels["pvc-excluded"] == "skip:excluded"
    assert labels["pvc-garbled"] == "skip:pin-invalid"

    conditions = await env.conditions()
    unreadable = conditions["UnreadableAnnotations"]
    assert unreadable.status == "True"
    assert "pvc-garbled" in unreadable.message
    assert "'lukewarm' is not hot, warm or cold" in unreadable.message

    async def warned():
        events = await env.client.list_all(resources.EVENT, "apps", type=dict)
        return [e for e in events.items if e["reason"] == "InvalidPin"]

    (event,) = await env.eventually(warned, what="an InvalidPin Event on the claim")
    assert event["involvedObject"]["name"] == "data-garbled"
    assert event["type"] == "Warning"
    assert env.simulator.checker.violations == []
