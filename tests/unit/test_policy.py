"""StoragePolicy validation (every problem named by field) and the tier rules of a valid policy."""

import pytest
from hypothesis import given, strategies as st

from couchestor.tiering.policy import DEFAULT_POOL_SELECTORS, PolicyProblem, PolicyRules, Tier, compile_policy
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy


def policy(spec=None, name="p", generation=4):
    return StoragePolicy(metadata=ObjectMeta(name=name, generation=generation), spec=spec or {})


def rules_of(spec=None) -> PolicyRules:
    compiled = compile_policy(policy(spec))
    assert isinstance(compiled, PolicyRules), compiled
    return compiled


def problem_of(spec) -> PolicyProblem:
    compiled = compile_policy(policy(spec))
    assert isinstance(compiled, PolicyProblem), compiled
    return compiled


def test_defaults_are_applied_and_converted():
    rules = rules_of()
    assert (rules.name, rules.generation) == ("p", 4)
    assert (rules.high_iops, rules.low_iops, rules.warm_iops) == (5000, 500, None)
    assert (rules.window_seconds, rules.cooldown_seconds, rules.migration_timeout_seconds) == (
        3600,
        86_400,
        1800,
    )
    assert (rules.max_concurrent_migrations, rules.enabled, rules.dry_run) == (2, True, False)
    assert rules.scope.storage_class == "mayastor"
    assert rules.scope.volume_selector == ()
    assert rules.tiers == (Tier.HOT, Tier.COLD)
    assert rules.tiers_matching({"tier": "hot"}) == {Tier.HOT}
    assert rules.tiers_matching({"tier": "cold"}) == {Tier.COLD}
    assert rules.tiers_matching({"tier": "warm"}) == set()


def test_user_values_are_used():
    rules = rules_of(
        {
            "storageClassName": "fast",
            "highWatermarkIOPS": 7000,
            "lowWatermarkIOPS": 700,
            "warmWatermarkIOPS": 3000,
            "samplingWindow": "1h30m",
            "cooldownPeriod": "2d",
            "migrationTimeout": "45m",
            "maxConcurrentMigrations": 5,
            "nvmePoolSelector": {"matchLabels": {"media": "nvme"}},
            "sataPoolSelector": {
                "matchExpressions": [{"key": "media", "operator": "In", "values": ["sata", "hdd"]}]
            },
            "warmPoolSelector": {"matchLabels": {"media": "ssd"}},
            "volumeSelector": {"matchLabels": {"team": "data"}},
            "enabled": False,
            "dryRun": True,
        }
    )
    assert (rules.high_iops, rules.low_iops, rules.warm_iops) == (7000, 700, 3000)
    assert (rules.window_seconds, rules.cooldown_seconds, rules.migration_timeout_seconds) == (
        5400,
        172_800,
        2700,
    )
    assert (rules.max_concurrent_migrations, rules.enabled, rules.dry_run) == (5, False, True)
    assert rules.tiers == (Tier.HOT, Tier.WARM, Tier.COLD)
    assert rules.tiers_matching({"media": "hdd"}) == {Tier.COLD}
    assert rules.tiers_matching({"media": "ssd"}) == {Tier.WARM}
    assert rules.tiers_matching({"tier": "hot"}) == set()
    assert rules.scope.selects("fast", {"team": "data", "x": "y"})
    assert not rules.scope.selects("mayastor", {"team": "data"})
    assert not rules.scope.selects("fast", {"team": "web"})


def test_aliases_are_accepted_and_must_agree():
    rules = rules_of(
        {
            "hotPoolSelector": {"matchLabels": {"m": "fast"}},
            "coldPoolSelector": {"matchLabels": {"m": "slow"}},
        }
    )
    assert rules.tiers_matching({"m": "fast"}) == {Tier.HOT}
    assert rules.tiers_matching({"m": "slow"}) == {Tier.COLD}
    same = {"matchLabels": {"m": "fast"}}
    assert isinstance(
        compile_policy(policy({"nvmePoolSelector": same, "hotPoolSelector": same})), PolicyRules
    )
    problem = problem_of({"nvmePoolSelector": same, "hotPoolSelector": {"matchLabels": {"m": "other"}}})
    assert problem.field == "spec.hotPoolSelector"
    assert "alias" in problem.message


def test_warm_band_uses_a_default_selector_and_zero_switches_it_off():
    rules = rules_of({"warmWatermarkIOPS": 2000})
    assert rules.warm_iops == 2000
    assert rules.tiers_matching({"tier": "warm"}) == {Tier.WARM}
    assert dict(rules.pool_selectors)[Tier.WARM] == DEFAULT_POOL_SELECTORS[Tier.WARM]
    off = rules_of({"warmWatermarkIOPS": 0})
    assert off.warm_iops is None
    assert off.tiers == (Tier.HOT, Tier.COLD)


def test_low_not_below_high_is_named_with_the_values():
    problem = problem_of({"highWatermarkIOPS": 400, "lowWatermarkIOPS": 500})
    assert problem.message == "spec.lowWatermarkIOPS: must be lower than highWatermarkIOPS (500 >= 400)"
    assert problem.field == "spec.lowWatermarkIOPS"
    equal = problem_of({"highWatermarkIOPS": 500, "lowWatermarkIOPS": 500})
    assert "(500 >= 500)" in equal.message


@pytest.mark.parametrize("warm", [500, 100, 5000, 9000])
def test_warm_outside_the_open_band_is_refused(warm):
    problem = problem_of({"warmWatermarkIOPS": warm})
    assert problem.field == "spec.warmWatermarkIOPS"
    assert f"{warm} is not in (500, 5000)" in problem.message


def test_warm_selector_without_warm_watermark_is_refused():
    problem = problem_of({"warmPoolSelector": {"matchLabels": {"tier": "warm"}}})
    assert problem.field == "spec.warmPoolSelector"
    assert "warmWatermarkIOPS" in problem.message


@pytest.mark.parametrize(
    ("field", "value"), [("samplingWindow", "0h"), ("cooldownPeriod", "0s0m"), ("migrationTimeout", "0d")]
)
def test_zero_durations_are_refused_by_field(field, value):
    problem = problem_of({field: value})
    assert problem.field == f"spec.{field}"
    assert "longer than zero" in problem.message


@pytest.mark.parametrize("value", ["1x", "90", "1.5h", ""])
def test_unparsable_durations_are_refused_by_field(value):
    problem = problem_of({"samplingWindow": value})
    assert problem.field == "spec.samplingWindow"


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (
            {"volumeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "spec.volumeSelector",
            "needs values",
        ),
        ({"volumeSelector": {"matchLabels": {"bad key!": "x"}}}, "spec.volumeSelector", "invalid label key"),
        (
            {"sataPoolSelector": {"matchLabels": {"tier": "bad value!"}}},
            "spec.sataPoolSelector",
            "invalid label value",
        ),
        ({"nvmePoolSelector": {}}, "spec.nvmePoolSelector", "matches every pool"),
        ({"coldPoolSelector": {"matchLabels": {}}}, "spec.coldPoolSelector", "matches every pool"),
        ({"sataPoolSelector": {"matchLabels": {"tier": "hot"}}}, "spec.sataPoolSelector", "same pools"),
        (
            {"volumeSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
            "spec.volumeSelector",
            "Near",
        ),
    ],
)
def test_bad_selectors_are_refused_by_field(spec, field, words):
    problem = problem_of(spec)
    assert problem.field.startswith(field)
    assert words in problem.message


def test_every_problem_is_reported_at_once():
    problem = problem_of(
        {
            "highWatermarkIOPS": 100,
            "lowWatermarkIOPS": 200,
            "cooldownPeriod": "0m",
            "volumeSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "nvmePoolSelector": {},
        }
    )
    fields = [p.field for p in problem.problems]
    assert fields == [
        "spec.lowWatermarkIOPS",
        "spec.cooldownPeriod",
        "spec.volumeSelector",
        "spec.nvmePoolSelector",
    ]
    assert all(str(p) in problem.message for p in problem.problems)
    # With a broken volume selector nobody can tell which volumes the policy meant.
    assert problem.scope is None


def test_an_invalid_policy_still_claims_its_volumes_when_that_can_be_read():
    problem = problem_of(
        {"highWatermarkIOPS": 1, "lowWatermarkIOPS": 2, "volumeSelector": {"matchLabels": {"t": "a"}}}
    )
    assert problem.scope is not None
    assert problem.scope.selects("mayastor", {"t": "a"})
    typed = problem_of({"enabled": "yes", "storageClassName": "fast"})
    assert typed.field == "spec.enabled"
    assert typed.scope is not None
    assert typed.scope.selects("fast", {})
    assert problem_of({"storageClassName": 7}).scope is None


def test_tier_words_include_the_seeds_media_names():
    assert Tier.parse("nvme") is Tier.HOT
    assert Tier.parse(" SATA ") is Tier.COLD
    assert Tier.parse("warm") is Tier.WARM
    assert Tier.parse("fast") is None
    assert [t.rank for t in (Tier.COLD, Tier.WARM, Tier.HOT)] == [0, 1, 2]


# --- Thresholds and hysteresis ------------------------------------------------------------------------------

scores = st.floats(min_value=0, max_value=20_000, allow_nan=False)
TWO = rules_of({"highWatermarkIOPS": 5000, "lowWatermarkIOPS": 500})
THREE = rules_of({"highWatermarkIOPS": 5000, "lowWatermarkIOPS": 500, "warmWatermarkIOPS": 2000})


@given(scores, st.sampled_from([Tier.HOT, Tier.COLD]))
def test_two_tiers_strict_watermarks_and_a_dead_band(score, current):
    target = TWO.target_tier(score, current)
    if score > 5000:
        assert target == (None if current is Tier.HOT else Tier.HOT)
    elif score < 500:
        assert target == (None if current is Tier.COLD else Tier.COLD)
    else:
        assert target is None


@pytest.mark.parametrize(
    ("score", "current", "target"),
    [
        (5000, Tier.COLD, Tier.WARM),  # strict: exactly high is not hot, but above warm lifts cold to warm
        (5000, Tier.WARM, None),
        (500, Tier.HOT, Tier.WARM),  # strict: exactly low is not cold, but below warm steps hot down
        (5001, Tier.WARM, Tier.HOT),
        (499, Tier.WARM, Tier.COLD),
        (1999, Tier.HOT, Tier.WARM),
        (2000, Tier.HOT, None),
        (4000, Tier.HOT, None),
        (2001, Tier.COLD, Tier.WARM),
        (2000, Tier.COLD, None),
        (600, Tier.COLD, None),
        (600, Tier.WARM, None),
        (4999, Tier.WARM, None),
    ],
)
def test_three_tier_hysteresis(score, current, target):
    assert THREE.target_tier(score, current) == target


@given(scores, st.sampled_from(list(Tier)))
def test_a_move_is_stable_at_the_score_that_caused_it(score, current):
    # Anti-thrash: having moved, the same score never asks for another move.
    for rules in (TWO, THREE):
        target = rules.target_tier(score, current)
        if target is not None:
            assert rules.target_tier(score, target) is None


@given(scores, scores, st.sampled_from(list(Tier)))
def test_a_hotter_score_never_asks_for_a_colder_tier(low_score, high_score, current):
    low_score, high_score = sorted((low_score, high_score))
    for rules in (TWO, THREE):
        cooler = rules.target_tier(low_score, current) or current
        hotter = rules.target_tier(high_score, current) or current
        assert cooler.rank <= hotter.rank
