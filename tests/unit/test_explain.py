"""The pure parts of ``couchestor explain``: reading VOLUME, what would change a decision in words, and the
report of one volume (tier fill, idle period) from a cluster read once."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, strategies as st

from couchestor.errors import UserError
from couchestor.explain import Target, build_report, change_conditions, parse_target, render
from couchestor.inspection import ClusterState
from couchestor.preview import build_plan
from couchestor.tiering.heat import HeatScore, PeakScore, PeakSnapshot, ScoreSnapshot
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.policy import PolicyRules, Tier, compile_policy
from k8s_schemas.core import PersistentVolume
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "namespace", "target"),
    [
        ("pvc-1", None, Target("any", "pvc-1", None)),
        ("pv/pvc-1", "apps", Target("pv", "pvc-1")),
        ("pvc/data", "apps", Target("pvc", "data", "apps")),
        ("pvc/data", None, Target("pvc", "data", None)),
        ("pvc/other/data", "apps", Target("pvc", "data", "other")),
        ("apps/data", None, Target("pvc", "data", "apps")),
        ("persistentvolumeclaim/data", "x", Target("pvc", "data", "x")),
    ],
)
def test_volume_forms(text, namespace, target):
    assert parse_target(text, namespace) == target


@pytest.mark.parametrize("text", ["", "pv/", "pv/a/b", "pvc/", "a/b/c", "/x"])
def test_malformed_volume_is_a_user_error(text):
    with pytest.raises(UserError, match=r"expected|no volume"):
        parse_target(text, None)


def _rules(spec: dict[str, int]) -> PolicyRules:
    body = {"apiVersion": "storage.billyronks.io/v1", "kind": "StoragePolicy", "metadata": {"name": "p"}}
    rules = compile_policy(msgspec.convert({**body, "spec": spec}, StoragePolicy))
    assert isinstance(rules, PolicyRules)
    return rules


def test_the_words_of_the_issue():
    rules = _rules({"lowWatermarkIOPS": 500, "highWatermarkIOPS": 5000})
    assert change_conditions(rules, Tier.COLD, 1212.4) == ["promoted to hot above 5,000 IOPS; now 1,212"]
    assert change_conditions(rules, Tier.HOT, None) == ["demoted to cold below 500 IOPS"]


_CONDITION = re.compile(r"(promoted|demoted) to (hot|warm|cold) (above|below) ([0-9,]+) IOPS")


@given(
    low=st.integers(0, 1000),
    gaps=st.tuples(st.integers(1, 1000), st.integers(1, 1000)),
    warm_tier=st.booleans(),
    on=st.sampled_from(list(Tier)),
)
def test_each_condition_is_where_the_engine_moves_the_volume(low, gaps, warm_tier, on):
    """Just past each threshold explain names, the engine's own rule moves the volume to the tier named; just
    short of it, not (so the words are the decision code's, not a second opinion)."""
    warm, high = low + gaps[0], low + gaps[0] + gaps[1]
    spec = {"lowWatermarkIOPS": low, "highWatermarkIOPS": high}
    if warm_tier:
        spec["warmWatermarkIOPS"] = warm
    rules = _rules(spec)
    if on not in rules.tiers:
        return
    conditions = change_conditions(rules, on, None)
    assert len(conditions) == len(rules.tiers) - 1
    for text in conditions:
        verb, tier, side, number = _CONDITION.fullmatch(text).groups()  # type: ignore[union-attr]
        threshold, target = int(number.replace(",", "")), Tier(tier)
        assert (verb == "promoted") == (target.rank > on.rank)
        past, short = (threshold + 0.5, threshold) if side == "above" else (threshold - 0.5, threshold)
        if past >= 0:
            assert rules.target_tier(past, on) is target, (text, past)
        assert rules.target_tier(short, on) is not target, (text, short)


def _cluster(*, used_gib: int, policy_spec: dict) -> ClusterState:
    """One 10 GiB volume on a hot pool, a cold pool, and one policy."""
    pv = msgspec.convert(
        {
            "metadata": {"name": "pvc-1"},
            "spec": {"storageClassName": "mayastor", "capacity": {"storage": "10Gi"}},
        },
        PersistentVolume,
    )
    mv = msgspec.convert(
        {
            "metadata": {"name": "pvc-1", "namespace": "mayastor"},
            "spec": {"numReplicas": 1, "size": 10 * 2**30},
            "status": {
                "replicas": [{"pool": "hot-1", "node": "n1", "state": "Online", "syncState": "Synced"}]
            },
        },
        MayastorVolume,
    )
    pools = tuple(
        msgspec.convert(
            {
                "metadata": {"name": f"{tier}-1", "namespace": "mayastor", "labels": {"tier": tier}},
                "spec": {"node": "n1"},
                "status": {"state": "Online", "capacity": 100 * 2**30, "used": used * 2**30},
            },
            DiskPool,
        )
        for tier, used in (("hot", used_gib), ("cold", 20))
    )
    policy = StoragePolicy(metadata=ObjectMeta(name="gold"), spec=policy_spec)
    return ClusterState(policies=(policy,), pvs=(pv,), pvcs=(), volumes=(mv,), pools=pools)


def _scores(score: float, peak: float | None) -> dict[int, ScoreSnapshot]:
    heat = {"pvc-1": HeatScore("pvc-1", score, None, None, None, 1.0, 240, 3600, NOW, "m")}
    peaks = (
        {} if peak is None else {604_800: PeakSnapshot(604_800, True, NOW, {"pvc-1": PeakScore(peak, 1.0)})}
    )
    return {3600: ScoreSnapshot(3600, True, NOW, heat, peaks=peaks)}


def test_explain_shows_the_tier_fill_and_the_idle_period():
    spec = {"maxTierFillPercent": 85, "coldAfterIdle": {"period": "7d", "belowIOPS": 10}}
    state = _cluster(used_gib=91, policy_spec=spec)
    compiled = [compile_policy(p) for p in state.policies]
    report = build_report("pvc-1", None, compiled, state, _scores(1000.0, 42.0), NOW, DecideOptions())
    assert report["tierFill"] == {"percent": {"hot": 91.0, "cold": 20.0}, "max": 85}
    assert report["idle"] == {
        "period": "7d",
        "belowIOPS": 10,
        "peakIOPS": 42.0,
        "coverage": 1.0,
        "error": None,
    }
    # Over the mark: the volume, between the watermarks, moves down for pressure.
    assert report["decision"]["label"] == "cold"
    text = render(report)
    assert "Tier fill:  hot 91%, cold 20% (maxTierFillPercent 85)" in text
    assert "Idle rule:  cold only after 7d under 10 IOPS; peak 42.0 IOPS over it, 100% coverage" in text

    # Quiet over the window but busy within the period: it stays, and says why.
    state = _cluster(used_gib=50, policy_spec=spec)
    report = build_report("pvc-1", None, compiled, state, _scores(1.0, 42.0), NOW, DecideOptions())
    assert report["decision"]["label"] == "stay"
    assert "coldAfterIdle" in report["decision"]["detail"]
    # Not fetched yet: said so, and nothing goes cold.
    report = build_report("pvc-1", None, compiled, state, _scores(1.0, None), NOW, DecideOptions())
    assert report["idle"]["peakIOPS"] is None
    assert report["decision"]["label"] == "skip:metrics-unavailable"
    assert "Idle rule:  cold only after 7d under 10 IOPS; no peak known yet" in render(report)


def test_explain_and_plan_show_a_move_held_outside_the_policys_window_as_the_operator_does():
    window = {"schedule": "0 3 * * *", "duration": "1h"}  # closed at noon; opens at 03:00
    spec = {"maintenanceWindows": [window]}
    state = _cluster(used_gib=20, policy_spec=spec)
    compiled = [compile_policy(p) for p in state.policies]
    report = build_report("pvc-1", None, compiled, state, _scores(1.0, None), NOW, DecideOptions())
    decision = report["decision"]
    assert (decision["label"], decision["targetTier"]) == ("skip:outside-window", "cold")
    assert "2026-02-02T03:00:00Z" in decision["detail"]
    assert report["wouldChange"][-1].startswith("not before the policy's next maintenance window opening")
    rules = compiled[0]
    assert isinstance(rules, PolicyRules)
    plan = build_plan(rules, [], state, _scores(1.0, None), NOW, DecideOptions())
    assert (plan["moves"], plan["bytesToCopy"]) == ([], 0)
    assert [(b["volume"], b["reason"], b["to"]) for b in plan["blocked"]] == [
        ("pvc-1", "outside-window", "cold")
    ]
    # Inside a window, both show the move itself.
    state = _cluster(
        used_gib=20, policy_spec={"maintenanceWindows": [{"schedule": "0 12 * * *", "duration": "1h"}]}
    )
    compiled = [compile_policy(p) for p in state.policies]
    report = build_report("pvc-1", None, compiled, state, _scores(1.0, None), NOW, DecideOptions())
    assert report["decision"]["label"] == "cold"
    assert isinstance(compiled[0], PolicyRules)
    plan = build_plan(compiled[0], [], state, _scores(1.0, None), NOW, DecideOptions())
    assert [m["volume"] for m in plan["moves"]] == ["pvc-1"]
