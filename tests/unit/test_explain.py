"""The pure parts of ``couchestor explain``: reading VOLUME, and what would change a decision in words."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given, strategies as st

from couchestor.errors import UserError
from couchestor.explain import Target, change_conditions, parse_target
from couchestor.tiering.policy import PolicyRules, Tier, compile_policy
from k8s_schemas.storage_policy import StoragePolicy


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
