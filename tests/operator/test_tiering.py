"""The operator end to end on the emulated cluster with a real Prometheus: decisions, migrations, status,
events, metrics."""

from __future__ import annotations

import httpx
import pytest

from couchestor.kube import resources
from k8s_schemas.annotations import LAST_MIGRATION, MIGRATION_INTENT, TIER_LABEL
from tests.operator.harness import policy_body

pytestmark = pytest.mark.prometheus


async def test_hot_volume_promoted_idle_demoted_middle_stays(env):
    await env.apply_policy(policy_body())
    operator = await env.start_operator()

    async def settled():
        policy = await env.policy()
        status = policy.status
        history = status.migration_history if status and status.migration_history else []
        return len(history) >= 2 and status.active_migrations == 0 and status

    status = await env.eventually(settled, timeout=90, what="two migrations recorded")
    assert await env.tiers("heavy") == ["hot"]
    assert await env.tiers("idle") == ["cold"]
    assert await env.tiers("middle") == ["hot"]
    by_volume = {h.volume_name: h for h in status.migration_history}
    assert set(by_volume) == {"pvc-heavy", "pvc-idle"}
    assert by_volume["pvc-heavy"].success
    assert by_volume["pvc-heavy"].to_tier == "hot"
    assert by_volume["pvc-heavy"].trigger_iops > 5000
    assert by_volume["pvc-idle"].to_tier == "cold"
    assert by_volume["pvc-idle"].trigger_iops < 500
    assert status.total_migrations == 2
    assert status.failed_migrations == 0

    async def counted():
        s = (await env.policy()).status
        return (s.hot_volumes, s.cold_volumes, s.watched_volumes) == (2, 1, 3) and s

    status = await env.eventually(counted, what="tier counts after the moves")
    conditions = {c.type: c for c in status.conditions}
    assert conditions["Ready"].status == "True"
    assert conditions["MetricsAvailable"].status == "True"
    assert conditions["Conflicts"].status == "False"
    assert status.phase == "Active"

    for name, tier in (("heavy", "hot"), ("idle", "cold")):
        pv = await env.pv(name)
        assert pv.metadata.labels[TIER_LABEL] == tier
        assert LAST_MIGRATION in pv.metadata.annotations
        vol = await env.volume(name)
        assert MIGRATION_INTENT not in (vol.metadata.annotations or {})
        assert vol.spec.num_replicas == 1
    assert env.simulator.checker.violations == []

    events = await env.client.list_all(resources.EVENT, "default", type=dict)
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in events.items}
    assert ("pvc-heavy", "MigrationStarted") in reasons
    assert ("pvc-heavy", "MigrationCompleted") in reasons
    assert ("tiering", "MigrationCompleted") in reasons

    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{operator.endpoint_url}/metrics")).text
        ready = await http.get(f"{operator.endpoint_url}/readyz")
    assert 'storage_operator_migrations_total{status="success"} 2.0' in text
    assert "storage_operator_reconcile_total" in text
    assert ready.status_code == 200, ready.text


async def test_steady_state_makes_no_api_writes(env):
    await env.apply_policy(policy_body(highWatermarkIOPS=100000, lowWatermarkIOPS=0))
    operator = await env.start_operator()

    async def active():
        s = (await env.policy()).status
        return (
            s
            and s.watched_volumes == 3
            and {c.type: c.status for c in s.conditions}.get("MetricsAvailable") == "True"
        )

    await env.eventually(active, what="policy status with healthy metrics")

    async def labelled():
        tiers = {
            name: (await env.pv(name)).metadata.labels.get(TIER_LABEL) for name in ("heavy", "idle", "middle")
        }
        return tiers == {"heavy": "cold", "idle": "hot", "middle": "hot"}

    await env.eventually(labelled, what="every PV labelled with its tier")
    passes = operator.reconciler.passes
    writes = sum(
        s.value for m in operator.metrics.api_writes.collect() for s in m.samples if s.name.endswith("_total")
    )
    rv = (await env.policy()).metadata.resource_version

    async def more_passes():
        return operator.reconciler.passes >= passes + 5

    await env.eventually(more_passes, timeout=60, what="five more reconcile passes")
    after = sum(
        s.value for m in operator.metrics.api_writes.collect() for s in m.samples if s.name.endswith("_total")
    )
    assert after == writes
    assert (await env.policy()).metadata.resource_version == rv


async def test_preservation_mode_keeps_the_old_replica_and_says_so(env):
    await env.apply_policy(policy_body())
    await env.start_operator(preservation_mode="true")

    async def recorded():
        status = await env.status()
        history = status.migration_history if status and status.migration_history else []
        return len(history) >= 2 and status.active_migrations == 0 and history

    await env.eventually(recorded, timeout=90, what="two migrations recorded")
    assert await env.tiers("heavy") == ["cold", "hot"]
    assert await env.tiers("idle") == ["cold", "hot"]
    vol = await env.volume("heavy")
    assert vol.spec.num_replicas == 2
    assert MIGRATION_INTENT not in (vol.metadata.annotations or {})
    events = await env.client.list_all(resources.EVENT, "default", type=dict)
    messages = [e["message"] for e in events.items if e["reason"] == "MigrationCompleted"]
    assert any("preservation mode" in m for m in messages), messages
    assert env.simulator.checker.violations == []


PRESSURE_LOADS = {"heavy": ("cold", 8000.0), **{f"warm{i}": ("hot", 1000.0 + 800.0 * i) for i in range(5)}}


@pytest.mark.parametrize("loads", [PRESSURE_LOADS])
async def test_a_full_hot_tier_sends_its_coldest_volumes_down_and_takes_no_promotion(env):
    """Five 10 GiB volumes between the watermarks fill the hot pools (2 x 500 GiB) to 5 %; with a mark of 3 %
    the two coldest go down, the busy one waiting on cold is not promoted into the full tier."""
    await env.apply_policy(policy_body(maxTierFillPercent=3, maxConcurrentMigrations=4))
    await env.start_operator()

    async def settled():
        status = (await env.policy()).status
        history = status.migration_history if status and status.migration_history else []
        done = len(history) >= 2 and status.active_migrations == 0
        return done and status.tier_fill_percent and status.tier_fill_percent.get("hot") == 3 and status

    status = await env.eventually(settled, timeout=90, what="two moves down and the hot tier at 3 %")
    assert {h.volume_name: (h.from_tier, h.to_tier) for h in status.migration_history} == {
        "pvc-warm0": ("hot", "cold"),
        "pvc-warm1": ("hot", "cold"),
    }
    for name, tier in (
        ("warm0", "cold"),
        ("warm1", "cold"),
        ("warm2", "hot"),
        ("warm4", "hot"),
        ("heavy", "cold"),
    ):
        assert await env.tiers(name) == [tier], name
    assert status.tier_fill_percent["cold"] >= 2
    assert env.simulator.checker.violations == []
