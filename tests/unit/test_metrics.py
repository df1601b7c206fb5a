"""The gauges the alert rules and the dashboard read that are computed from a pass: score coverage, tier fill,
overdue migrations."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from couchestor.metrics import OperatorMetrics, overdue_migrations, scored_volumes, tier_fill
from k8s_schemas.mayastor import DiskPool
from tests.unit.test_decisions import NOW, GiB, only, rules, run, snapshot, volume


def disk_pool(name: str, tier: str, capacity: int | None, used: int | None) -> DiskPool:
    status = {} if capacity is None else {"capacity": capacity, "used": used, "state": "Online"}
    return msgspec.convert(
        {"metadata": {"name": name, "labels": {"tier": tier}}, "spec": {"node": "n"}, "status": status},
        DiskPool,
    )


def test_scored_volumes_count_decisions_made_from_a_score_not_skips_for_metrics():
    policy = rules()
    vols = [
        volume("pv-hot", "hot-1"),  # scored 9000 on hot: stays
        volume("pv-up", "cold-1"),  # scored 9000 on cold: moves
        volume("pv-part", "cold-1"),  # too few samples
        volume("pv-deg", "cold-1", states=[("Online", "Syncing")]),  # degraded, decided before the metrics
    ]
    plan = run(
        [policy], [v for v in vols if v.name != "pv-part"], snapshot({"pv-hot": 9000.0, "pv-up": 9000.0})
    )
    partial = run([policy], vols, snapshot({"pv-part": 9000.0}, coverage=0.1))
    assert only(partial, "pv-part").reason == "low-coverage"
    assert only(plan, "pv-deg").reason == "degraded"
    assert [only(plan, v).label for v in ("pv-hot", "pv-up")] == ["stay", "hot"]
    assert scored_volumes((*plan.decisions, only(partial, "pv-part"))) == {"p": 2}
    # A Prometheus outage: nothing is scored, the policy still appears (coverage 0, not absent).
    down = run([policy], vols, snapshot({}, healthy=False))
    assert scored_volumes(down.decisions) == {"p": 0}


def test_tier_fill_sums_each_policys_tiers_and_leaves_out_pools_without_capacity():
    pools = [
        disk_pool("h1", "hot", 100 * GiB, 90 * GiB),
        disk_pool("h2", "hot", 100 * GiB, 70 * GiB),
        disk_pool("c1", "cold", 1000 * GiB, 10 * GiB),
        disk_pool("c2", "cold", None, None),  # not reporting yet
        disk_pool("x", "other", 5 * GiB, 5 * GiB),  # no tier of the policy
    ]
    fill = tier_fill([rules("a"), rules("b", nvmePoolSelector={"matchLabels": {"tier": "other"}})], pools)
    assert fill == {
        ("a", "hot"): (200 * GiB, 160 * GiB),
        ("a", "cold"): (1000 * GiB, 10 * GiB),
        ("b", "hot"): (5 * GiB, 5 * GiB),
        ("b", "cold"): (1000 * GiB, 10 * GiB),
    }


def test_overdue_migrations_are_those_past_their_policys_timeout():
    since = {
        "pv-a": NOW - timedelta(minutes=31),
        "pv-b": NOW - timedelta(minutes=29),
        "pv-c": NOW - timedelta(hours=9),
    }
    policy_of = {"pv-a": "p", "pv-b": "p", "pv-c": "gone"}
    assert overdue_migrations(since, policy_of, {"p": 1800}, NOW) == 1
    assert overdue_migrations(since, policy_of, {"p": 3600}, NOW) == 0


def test_new_gauges_are_in_the_exposition():
    metrics = OperatorMetrics()
    metrics.migrations_overdue.set(2)
    metrics.tier_capacity.labels(policy="p", tier="hot").set(10)
    text = metrics.render().decode()
    assert "storage_operator_migrations_overdue 2.0" in text
    assert 'storage_operator_tier_capacity_bytes{policy="p",tier="hot"} 10.0' in text
