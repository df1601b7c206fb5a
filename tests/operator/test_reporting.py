"""What the operator reports without moving anything: dry runs, disabled and invalid policies, and a
Prometheus outage."""

from __future__ import annotations

import pytest
import trio
from msgspec import UNSET

from couchestor.kube import resources
from couchestor.kube.errors import Invalid
from tests.operator.harness import policy_body

pytestmark = pytest.mark.prometheus


async def _replica_tiers(env):
    return {name: await env.tiers(name) for name in ("heavy", "idle", "middle")}


async def test_dry_run_decides_and_reports_but_changes_nothing(env):
    before = await _replica_tiers(env)
    await env.apply_policy(policy_body(dryRun=True))
    operator = await env.start_operator()

    async def dry_run_events():
        events = await env.client.list_all(resources.EVENT, "default", type=dict)
        found = {e["involvedObject"]["name"] for e in events.items if e["reason"] == "DryRunMigration"}
        return {"pvc-heavy", "pvc-idle", "tiering"} <= found and found

    await env.eventually(dry_run_events, what="dry-run events for both moves")
    plan = operator.reconciler.last_plan
    labels = {d.volume: d.label for d in plan.decisions}
    assert labels == {"pvc-heavy": "skip:dry-run", "pvc-idle": "skip:dry-run", "pvc-middle": "stay"}
    await trio.sleep(3)  # a few more passes
    assert await _replica_tiers(env) == before
    status = await env.status()
    assert status.total_migrations in (UNSET, 0)
    assert "dry run" in (await env.conditions())["Ready"].message
    for name in ("heavy", "idle"):
        vol = await env.volume(name)
        assert vol.metadata.annotations in (UNSET, {})


async def test_operator_wide_dry_run_overrides_policies(env):
    before = await _replica_tiers(env)
    await env.apply_policy(policy_body())
    operator = await env.start_operator(dry_run="true")

    async def decided():
        plan = operator.reconciler.last_plan
        return plan and {d.volume: d.label for d in plan.decisions}.get("pvc-heavy") == "skip:dry-run"

    await env.eventually(decided, what="dry-run decision for the hot volume")
    await trio.sleep(2)
    assert await _replica_tiers(env) == before
    assert not operator.runner.in_flight


async def test_disabled_policy_moves_nothing_and_says_so(env):
    before = await _replica_tiers(env)
    await env.apply_policy(policy_body(enabled=False))
    await env.start_operator()

    async def disabled():
        status = await env.status()
        return status and status.phase == "Disabled" and status

    status = await env.eventually(disabled, what="phase Disabled")
    ready = (await env.conditions())["Ready"]
    assert (ready.status, ready.reason) == ("False", "Disabled")
    await trio.sleep(3)
    assert await _replica_tiers(env) == before
    assert status.total_migrations in (UNSET, 0)


async def test_prometheus_outage_stops_decisions_and_sets_the_condition(env):
    before = await _replica_tiers(env)
    env.prometheus.process.kill()
    await env.prometheus.process.wait()
    await env.apply_policy(policy_body())
    operator = await env.start_operator()

    async def unavailable():
        cond = (await env.conditions()).get("MetricsAvailable")
        return cond and cond.status == "False" and cond

    cond = await env.eventually(unavailable, what="MetricsAvailable=False")
    assert cond.reason == "PrometheusUnavailable"
    plan = operator.reconciler.last_plan
    assert {d.label for d in plan.decisions} == {"skip:metrics-unavailable"}
    await trio.sleep(2)
    assert await _replica_tiers(env) == before
    assert not operator.runner.in_flight
    text = operator.metrics.render().decode()
    assert "storage_operator_metrics_healthy 0.0" in text


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"lowWatermarkIOPS": 6000}, "lowWatermarkIOPS"),
        ({"samplingWindow": "ten minutes"}, "samplingWindow"),
        ({"warmWatermarkIOPS": 9000}, "warmWatermarkIOPS"),
        (
            {
                "volumeSelector": {
                    "matchExpressions": [{"key": "app", "operator": "Sideways", "values": ["x"]}]
                }
            },
            "volumeSelector",
        ),
    ],
)
async def test_schema_refuses_what_it_can_express_naming_the_field(env, spec, field):
    with pytest.raises(Invalid, match=field):
        await env.apply_policy(policy_body(name="broken", **spec))


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (
            {
                "nvmePoolSelector": {"matchLabels": {"tier": "cold"}},
                "sataPoolSelector": {"matchLabels": {"tier": "cold"}},
            },
            "sataPoolSelector",
            "same pools",
        ),
        ({"volumeSelector": {"matchLabels": {"bad key!": "x"}}}, "volumeSelector", ""),
    ],
)
async def test_invalid_spec_gets_phase_error_naming_the_field(env, spec, field, words):
    """What the schema cannot express gets phase Error and a condition naming the field; the other policies
    keep working."""
    await env.apply_policy(policy_body(name="broken", **spec))
    await env.apply_policy(policy_body(name="fine", storageClassName="other"))
    await env.start_operator()

    async def errored():
        status = await env.status("broken")
        return status and status.phase == "Error" and status

    await env.eventually(errored, what="phase Error")
    ready = (await env.conditions("broken"))["Ready"]
    assert ready.status == "False"
    assert ready.reason == "InvalidSpec"
    assert field in ready.message
    assert words in ready.message

    async def other_active():
        status = await env.status("fine")
        return status and status.phase == "Active"

    await env.eventually(other_active, what="the valid policy still reconciled")
