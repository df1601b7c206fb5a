"""The idle-period rule (``coldAfterIdle``) in the pure core: its query and answer, and its decisions by
example and as properties (never cold while busy within the period, promotions untouched)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from couchestor.tiering.decide import decide
from couchestor.tiering.heat import (
    PRESETS,
    HeatScore,
    PeakScore,
    PeakSnapshot,
    QueryResult,
    ScoreSnapshot,
    build_idle_query,
    build_peaks,
    metric_source,
)
from couchestor.tiering.plan import DecideOptions, Plan
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier, compile_policy
from couchestor.tiering.views import PoolView, ReplicaView, VolumeView
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)
GiB = 2**30
HOUR = 3600
WEEK = 7 * 86_400
POOLS = [PoolView(f"{t}-1", f"node-{t}", {"tier": t}, "Online", 1000 * GiB) for t in ("hot", "warm", "cold")]


def rules(idle: dict | None = None, **spec) -> PolicyRules:
    spec = {"lowWatermarkIOPS": 500, "highWatermarkIOPS": 5000, "maxConcurrentMigrations": 100, **spec}
    if idle is not None:
        spec["coldAfterIdle"] = idle
    compiled = compile_policy(StoragePolicy(metadata=ObjectMeta(name="p"), spec=spec))
    assert isinstance(compiled, PolicyRules), compiled
    return compiled


def volume(name: str, tier: str) -> VolumeView:
    return VolumeView(
        name,
        f"uuid-{name}",
        "mayastor",
        size_bytes=GiB,
        num_replicas=1,
        replicas=(ReplicaView(f"{tier}-1", f"node-{tier}", "Online", "Synced"),),
    )


def snapshots(scores, peaks=None, period=WEEK, peak_coverage=1.0, healthy=True, fetched=NOW):
    heat = {k: HeatScore(k, v, None, None, None, 1.0, 240, HOUR, NOW, "m") for k, v in scores.items()}
    idle = {}
    if peaks is not None:
        idle[period] = PeakSnapshot(
            period,
            healthy,
            fetched,
            {k: PeakScore(v, peak_coverage) for k, v in peaks.items()} if healthy else {},
            None if healthy else "connection refused",
        )
    return {HOUR: ScoreSnapshot(HOUR, True, NOW, heat, peaks=idle)}


def run(policy, vols, snaps) -> Plan:
    return decide([policy], vols, POOLS, snaps, set(), {}, NOW, DecideOptions())


def labels(plan: Plan) -> dict[str, str]:
    return {d.volume: d.label for d in plan.decisions}


IDLE = {"period": "7d", "belowIOPS": 10}


def test_a_volume_goes_cold_only_once_idle_for_the_whole_period():
    vols = [volume("idle", "hot"), volume("busy-once", "hot"), volume("at-floor", "hot")]
    snaps = snapshots(
        {"idle": 2.0, "busy-once": 2.0, "at-floor": 2.0}, {"idle": 9.5, "busy-once": 800.0, "at-floor": 10.0}
    )
    plan = run(rules(IDLE), vols, snaps)
    assert labels(plan) == {"idle": "cold", "busy-once": "stay", "at-floor": "stay"}
    busy = next(d for d in plan.decisions if d.volume == "busy-once")
    assert "peak 800.0 IOPS within the 7d coldAfterIdle period (belowIOPS 10)" in busy.detail
    # Without the rule all three go cold on the window alone.
    assert set(labels(run(rules(), vols, snaps)).values()) == {"cold"}


def test_a_volume_absent_from_the_peaks_peaked_at_zero_when_others_are_covered():
    snaps = snapshots({"a": 0.0, "b": 0.0}, {"b": 0.0})
    assert labels(run(rules(IDLE), [volume("a", "hot"), volume("b", "hot")], snaps)) == {
        "a": "cold",
        "b": "cold",
    }
    snaps = snapshots({"a": 0.0}, {}, peak_coverage=0.1)
    assert labels(run(rules(IDLE), [volume("a", "hot")], snaps)) == {"a": "skip:low-coverage"}


def test_without_usable_peaks_nothing_goes_cold_but_promotions_go_on():
    vols = [volume("quiet", "hot"), volume("hot-now", "cold")]
    scores = {"quiet": 1.0, "hot-now": 9000.0}
    for snaps, reason in (
        (snapshots(scores), "metrics-unavailable"),  # not fetched yet
        (snapshots(scores, {}, healthy=False), "metrics-unavailable"),
        (snapshots(scores, {"quiet": 1.0}, fetched=NOW - timedelta(hours=1)), "metrics-unavailable"),
        (snapshots(scores, {"quiet": 1.0}, peak_coverage=0.2), "low-coverage"),
        (snapshots(scores, {"quiet": None}), "no-score"),
    ):
        assert labels(run(rules(IDLE), vols, snaps)) == {"quiet": f"skip:{reason}", "hot-now": "hot"}


def test_a_busy_hot_volume_still_cools_to_warm():
    policy = rules(IDLE, warmWatermarkIOPS=2000)
    snaps = snapshots({"a": 1.0, "b": 1.0}, {"a": 500.0, "b": 0.0})
    plan = run(policy, [volume("a", "hot"), volume("b", "warm")], snaps)
    assert labels(plan) == {"a": "warm", "b": "cold"}
    assert "not cold: peak 500.0 IOPS" in next(d for d in plan.decisions if d.volume == "a").detail


def test_the_rule_is_compiled():
    assert rules(IDLE).idle is not None
    assert (rules(IDLE).idle.period_seconds, rules(IDLE).idle.below_iops) == (WEEK, 10)
    broken = compile_policy(
        StoragePolicy(metadata=ObjectMeta(name="p"), spec={"coldAfterIdle": {"period": "0d", "belowIOPS": 1}})
    )
    assert isinstance(broken, PolicyProblem)
    assert broken.field == "spec.coldAfterIdle.period"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_one_query_per_period_whatever_the_volumes(preset):
    source = metric_source(preset, scrape_interval_seconds=15)
    query = build_idle_query(source, WEEK)
    assert query.roles == {"idle"}
    assert "[7d:1m]" in query.promql
    assert query.promql.count("max_over_time") == 1
    assert query.promql.count("count_over_time") == 1
    # The answer: a peak and a sample count per volume, told apart by a label.
    label = source.label
    answer = QueryResult(
        (
            ({label: "a", "couchestor_idle": "peak"}, 12.0),
            ({label: "a", "couchestor_idle": "samples"}, 10080.0),
            ({label: "b", "couchestor_idle": "peak"}, float("nan")),
            ({label: "b", "couchestor_idle": "samples"}, 2016.0),
            ({"couchestor_idle": "peak"}, 1.0),  # no volume label: dropped
        )
    )
    peaks = build_peaks(source, WEEK, answer, NOW)
    assert peaks.healthy
    assert peaks.peaks == {"a": PeakScore(12.0, 1.0), "b": PeakScore(None, 0.2)}
    assert peaks.max_coverage == 1.0
    assert not build_peaks(source, WEEK, QueryResult((), ("partial",)), NOW).healthy
    assert not build_peaks(source, WEEK, None, NOW).healthy


# --- Properties ---------------------------------------------------------------------------------------------


@st.composite
def idle_worlds(draw):
    warm = draw(st.booleans())
    floor = draw(st.sampled_from([1, 10, 100]))
    spec = {"warmWatermarkIOPS": 2000} if warm else {}
    tiers = ["hot", "warm", "cold"] if warm else ["hot", "cold"]
    vols, scores, peaks = [], {}, {}
    for i in range(draw(st.integers(1, 12))):
        v = volume(f"v{i:02}", draw(st.sampled_from(tiers)))
        vols.append(v)
        scores[v.name] = draw(st.sampled_from([0.0, 5.0, 300.0, 1000.0, 3000.0, 9000.0]))
        if draw(st.integers(0, 5)):
            peaks[v.name] = max(scores[v.name], draw(st.sampled_from([0.0, 5.0, 9.0, 10.0, 50.0, 8000.0])))
    coverage = draw(st.sampled_from([1.0, 1.0, 0.3]))
    return spec, floor, vols, scores, peaks, coverage


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idle_worlds())
def test_the_idle_rule_never_sends_a_volume_busy_within_the_period_cold(world):
    spec, floor, vols, scores, peaks, coverage = world
    snaps = snapshots(scores, peaks, peak_coverage=coverage)
    with_rule = run(rules({"period": "7d", "belowIOPS": floor}, **spec), vols, snaps)
    without = run(rules(**spec), vols, snaps)
    for m in with_rule.migrations:
        if m.to_tier is Tier.COLD:
            # Proven idle: its peak over the period (0 when absent) under the floor, and enough samples.
            assert peaks.get(m.volume, 0.0) < floor
            assert coverage >= DecideOptions().min_coverage
    # Promotions do not wait for the period: the same volumes go up, to the same tiers.
    up = lambda plan: {(m.volume, m.to_tier) for m in plan.migrations if m.to_tier.rank > m.from_tier.rank}  # noqa: E731
    assert up(with_rule) == up(without)
    # The rule only ever holds moves to the cold tier back.
    cold = lambda plan: {m.volume for m in plan.migrations if m.to_tier is Tier.COLD}  # noqa: E731
    assert cold(with_rule) <= cold(without)
