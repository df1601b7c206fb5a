"""Tier pressure (``maxTierFillPercent``) in the pure core: by example, and its safety rules as properties.

The rules: a tier whose pools are fuller than the mark sends its coldest volumes one tier down, even between
the watermarks, until it would be back under the mark; a promotion into a tier over the mark, or one that
would push it over, is refused (``max-tier-fill``); the policy status shows every tier's fill.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import HealthCheck, given, settings, strategies as st

from couchestor.tiering.decide import decide
from couchestor.tiering.heat import HeatScore, ScoreSnapshot
from couchestor.tiering.plan import Action, Plan
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier, compile_policy
from couchestor.tiering.pressure import footprint
from couchestor.tiering.status import MetricsState, status_patch
from couchestor.tiering.views import PoolView, ReplicaView, VolumeView
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy, StoragePolicyStatus

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)
GiB = 2**30
HOUR = 3600
LOW, WARM, HIGH = 500, 2000, 5000


def rules(**spec) -> PolicyRules:
    spec = {"lowWatermarkIOPS": LOW, "highWatermarkIOPS": HIGH, "maxConcurrentMigrations": 100, **spec}
    compiled = compile_policy(StoragePolicy(metadata=ObjectMeta(name="p", generation=1), spec=spec))
    assert isinstance(compiled, PolicyRules), compiled
    return compiled


def pool(name: str, tier: str, capacity: int, used: int) -> PoolView:
    return PoolView(name, f"node-{name}", {"tier": tier}, "Online", capacity - used, capacity, used)


def volume(name: str, on: str, size: int = 10 * GiB, last: datetime | None = None) -> VolumeView:
    return VolumeView(
        name=name,
        volume_id=None,
        storage_class="mayastor",
        size_bytes=size,
        num_replicas=1,
        replicas=(ReplicaView(on, f"node-{on}", "Online", "Synced"),),
        last_migration=last,
    )


def snapshot(scores: dict[str, float]) -> dict[int, ScoreSnapshot]:
    heat = {k: HeatScore(k, v, None, None, None, 1.0, 240, HOUR, NOW, "m") for k, v in scores.items()}
    return {HOUR: ScoreSnapshot(HOUR, True, NOW, heat)}


def run(policy, volumes, pools, scores, moving=None) -> Plan:
    return decide([policy], volumes, pools, snapshot(scores), set(moving or ()), {}, NOW, moving=moving)


def labels(plan: Plan) -> dict[str, str]:
    return {d.volume: d.label for d in plan.decisions}


COLD_POOL = pool("cold-1", "cold", 1000 * GiB, 0)


def test_a_full_tier_sends_its_coldest_volumes_down_until_it_is_under_the_mark():
    vols = [volume(n, "hot-1") for n in "abcd"]
    scores = {"a": 800.0, "b": 600.0, "c": 3000.0, "d": 900.0}  # all between the watermarks
    hot = pool("hot-1", "hot", 100 * GiB, 90 * GiB)
    plan = run(rules(maxTierFillPercent=85), vols, [hot, COLD_POOL], scores)
    assert labels(plan) == {"a": "stay", "b": "cold", "c": "stay", "d": "stay"}
    down = plan.decisions[[d.volume for d in plan.decisions].index("b")]
    assert "hot tier 90% full, over maxTierFillPercent 85" in down.detail
    # A lower mark needs more room: the next coldest go too, the hottest stays.
    plan = run(rules(maxTierFillPercent=65), vols, [hot, COLD_POOL], scores)
    assert labels(plan) == {"a": "cold", "b": "cold", "c": "stay", "d": "cold"}
    # Without a mark, or under it, nothing between the watermarks moves.
    assert set(labels(run(rules(), vols, [hot, COLD_POOL], scores)).values()) == {"stay"}
    assert set(labels(run(rules(maxTierFillPercent=90), vols, [hot, COLD_POOL], scores)).values()) == {"stay"}


def test_pressure_moves_a_warm_tier_volume_one_tier_down():
    policy = rules(maxTierFillPercent=50, warmWatermarkIOPS=WARM)
    pools = [pool("hot-1", "hot", 100 * GiB, 60 * GiB), pool("warm-1", "warm", 100 * GiB, 0), COLD_POOL]
    plan = run(policy, [volume("a", "hot-1")], pools, {"a": 2500.0})
    assert labels(plan) == {"a": "warm"}
    assert plan.migrations[0].to_tier is Tier.WARM


def test_a_promotion_that_would_overfill_the_tier_is_refused():
    hot = pool("hot-1", "hot", 100 * GiB, 80 * GiB)
    big, small = volume("big", "cold-1", size=10 * GiB), volume("small", "cold-1", size=5 * GiB)
    plan = run(rules(maxTierFillPercent=85), [big, small], [hot, COLD_POOL], {"big": 9000.0, "small": 8000.0})
    # Hottest first: the big one would take the tier to 90%, the small one to 85% (not over).
    assert labels(plan) == {"big": "skip:max-tier-fill", "small": "hot"}
    refused = next(d for d in plan.decisions if d.volume == "big")
    assert refused.target_tier is Tier.HOT
    assert "would fill the hot tier to 90%, over maxTierFillPercent 85" in refused.detail


def test_a_tier_over_the_mark_takes_no_promotion_while_its_coldest_go_down():
    hot = pool("hot-1", "hot", 100 * GiB, 90 * GiB)
    vols = [volume("busy", "cold-1", size=1 * GiB), volume("lukewarm", "hot-1")]
    plan = run(rules(maxTierFillPercent=85), vols, [hot, COLD_POOL], {"busy": 9000.0, "lukewarm": 1000.0})
    assert labels(plan) == {"busy": "skip:max-tier-fill", "lukewarm": "cold"}
    # The volume sent down is not promoted back while the tier is full: even busy now, it is refused.
    after = [volume("lukewarm", "cold-1")]
    hot_after = pool("hot-1", "hot", 100 * GiB, 80 * GiB)
    again = run(rules(maxTierFillPercent=85), after, [hot_after, COLD_POOL], {"lukewarm": 9000.0})
    assert labels(again) == {"lukewarm": "skip:max-tier-fill"}


def test_running_migrations_count_before_the_pools_report_them():
    hot = pool("hot-1", "hot", 100 * GiB, 90 * GiB)
    leaving = volume("leaving", "hot-1")
    vols = [leaving, volume("a", "hot-1")]
    scores = {"a": 1000.0, "leaving": 100.0}
    # Without the running move the tier looks 90% full and "a" would be sent down too.
    assert labels(run(rules(maxTierFillPercent=85), [volume("a", "hot-1")], [hot, COLD_POOL], scores)) == {
        "a": "cold"
    }
    plan = run(
        rules(maxTierFillPercent=85), vols, [hot, COLD_POOL], scores, {"leaving": (Tier.HOT, Tier.COLD)}
    )
    assert labels(plan) == {"a": "stay", "leaving": "skip:in-flight"}
    # A running promotion into the tier fills it before the pools say so.
    hot = pool("hot-1", "hot", 100 * GiB, 80 * GiB)
    arriving = volume("arriving", "cold-1")
    plan = run(
        rules(maxTierFillPercent=85),
        [arriving, volume("b", "cold-1", size=1 * GiB)],
        [hot, COLD_POOL],
        {"b": 9000.0, "arriving": 9000.0},
        {"arriving": (Tier.COLD, Tier.HOT)},
    )
    assert labels(plan)["b"] == "skip:max-tier-fill"


def test_a_volume_in_its_cooldown_is_not_sent_down_for_pressure():
    hot = pool("hot-1", "hot", 100 * GiB, 90 * GiB)
    vols = [volume("fresh", "hot-1", last=NOW - timedelta(minutes=5)), volume("old", "hot-1")]
    plan = run(
        rules(maxTierFillPercent=85, cooldownPeriod="1h"),
        vols,
        [hot, COLD_POOL],
        {"fresh": 600.0, "old": 700.0},
    )
    assert labels(plan) == {"fresh": "stay", "old": "cold"}


def test_a_dry_run_policy_says_which_volumes_pressure_would_move():
    hot = pool("hot-1", "hot", 100 * GiB, 90 * GiB)
    plan = run(
        rules(maxTierFillPercent=85, dryRun=True), [volume("a", "hot-1")], [hot, COLD_POOL], {"a": 800.0}
    )
    (d,) = plan.decisions
    assert (d.label, d.target_tier, d.target_pool) == ("skip:dry-run", Tier.COLD, "cold-1")
    assert plan.migrations == ()


def test_the_status_shows_each_tiers_fill():
    hot = pool("hot-1", "hot", 100 * GiB, 91 * GiB)
    plan = run(
        rules(maxTierFillPercent=95),
        [volume("a", "hot-1")],
        [hot, pool("cold-1", "cold", 400 * GiB, 100 * GiB)],
        {"a": 800.0},
    )
    own = plan.policy("p")
    assert own is not None
    assert dict(own.tier_fill) == {Tier.HOT: 91.0, Tier.COLD: 25.0}
    patch = status_patch(own, None, metrics=MetricsState(True), active=0, now=NOW)
    assert patch is not None
    assert patch["status"]["tierFillPercent"] == {"hot": 91, "cold": 25}


def test_the_mark_is_checked_by_the_compiler():
    for bad in (0, 101):
        compiled = compile_policy(
            StoragePolicy(metadata=ObjectMeta(name="p"), spec={"maxTierFillPercent": bad})
        )
        assert isinstance(compiled, PolicyProblem)
        assert compiled.field == "spec.maxTierFillPercent"
    assert rules(maxTierFillPercent=100).max_fill_percent == 100


# --- Properties ---------------------------------------------------------------------------------------------

SCORES = [0.0, 100.0, 600.0, 900.0, 1500.0, 2500.0, 4000.0, 6000.0, 9000.0]


@st.composite
def pressured(draw):
    """A policy with a mark, hot (and maybe warm) pools of varied fill, roomy cold pools, volumes on every
    tier with scores across the watermarks, some in their cooldown and some already moving."""
    warm = draw(st.booleans())
    spec = {"maxTierFillPercent": draw(st.integers(1, 100)), "cooldownPeriod": "1h"}
    if warm:
        spec["warmWatermarkIOPS"] = WARM
    policy = rules(**spec)
    tiers = ["hot", "warm", "cold"] if warm else ["hot", "cold"]
    pools = []
    for tier in tiers:
        for i in range(draw(st.integers(1, 2))):
            capacity = (10_000 if tier == "cold" else draw(st.integers(20, 200))) * GiB
            used = draw(st.integers(0, capacity // GiB)) * GiB if tier != "cold" else 0
            pools.append(pool(f"{tier}-{i}", tier, capacity, used))
    vols, scores, moving = [], {}, {}
    for i in range(draw(st.integers(1, 14))):
        on = draw(st.sampled_from(pools)).name
        recent = draw(st.sampled_from([None, None, None, 10, 600]))
        v = volume(
            f"v{i:02}",
            on,
            draw(st.integers(1, 30)) * GiB,
            None if recent is None else NOW - timedelta(minutes=recent),
        )
        vols.append(v)
        scores[v.name] = draw(st.sampled_from(SCORES))
        if draw(st.integers(0, 9)) == 0:
            here = Tier(on.split("-")[0])
            moving[v.name] = (here, draw(st.sampled_from([t for t in policy.tiers if t is not here])))
    return policy, vols, pools, scores, moving


def _tier_state(policy: PolicyRules, pools, vols, moving):
    """(used, capacity) per tier as the pools report them, plus the running moves still to land."""
    used = dict.fromkeys(policy.tiers, 0)
    cap = dict.fromkeys(policy.tiers, 0)
    tier_of = {p.name: Tier(p.labels["tier"]) for p in pools}
    for p in pools:
        used[tier_of[p.name]] += p.used_bytes
        cap[tier_of[p.name]] += p.capacity_bytes
    for v in vols:
        if v.name in moving:
            source, target = moving[v.name]
            used[source] -= footprint(v)
            used[target] += footprint(v)
    return used, cap


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pressured())
def test_pressure_properties(world):
    policy, vols, pools, scores, moving = world
    plan = run(policy, vols, pools, scores, moving)
    mark = policy.max_fill_percent
    used, cap = _tier_state(policy, pools, vols, moving)
    over_at_start = {t for t in policy.tiers if used[t] * 100 > mark * cap[t]}
    by_name = {v.name: v for v in vols}
    final, promoted = dict(used), dict(used)
    for m in plan.migrations:
        size = footprint(by_name[m.volume])
        final[m.from_tier] -= size
        final[m.to_tier] += size
        if m.to_tier.rank > m.from_tier.rank:
            promoted[m.from_tier] -= size
            promoted[m.to_tier] += size
    for tier in {m.to_tier for m in plan.migrations if m.to_tier.rank > m.from_tier.rank}:
        # No promotion into a tier that was over the mark, and the promotions together (scheduled before
        # any move down) do not push a tier over it. (A move down into the warm tier may; then the warm
        # tier's own pressure acts.)
        assert tier not in over_at_start
        assert promoted[tier] * 100 <= mark * cap[tier]
    decided = {d.volume: d for d in plan.decisions}
    for tier in policy.tiers[:-1]:
        # Moves down between the watermarks: pressure's. Volumes left to stay: those it could have taken.
        pressed = [
            m.volume
            for m in plan.migrations
            if m.from_tier is tier
            and m.to_tier.rank < tier.rank
            and policy.target_tier(scores[m.volume], tier) is None
        ]
        staying = [
            v.name
            for v in vols
            if decided[v.name].action is Action.STAY
            and decided[v.name].current_tier is tier
            and (v.last_migration is None or NOW - v.last_migration >= timedelta(hours=1))
        ]
        if pressed:
            assert (
                tier in over_at_start
                or final[tier] * 100 > mark * cap[tier]
                or any(m.to_tier is tier for m in plan.migrations)
            )
            # Coldest first: every volume left on the tier is at least as hot as every one sent down.
            assert max(scores[n] for n in pressed) <= min((scores[n] for n in staying), default=float("inf"))
        if tier in over_at_start and staying:
            # Slots and cold room are plenty: pressure stops only once the tier would be under the mark
            # (or the warm tier below had no room for it).
            assert final[tier] * 100 <= mark * cap[tier] or any(
                d.reason == "no-capacity" for d in plan.decisions
            )
        for n in staying:
            assert policy.target_tier(scores[n], tier) is None
    # A volume sent down is never also sent up in the same pass (one decision each), and no volume sent
    # down for pressure is in its cooldown.
    assert len(decided) == len(plan.decisions)
    for m in plan.migrations:
        v = by_name[m.volume]
        if policy.target_tier(scores[m.volume], m.from_tier) is None:
            assert v.last_migration is None or NOW - v.last_migration >= timedelta(hours=1)


def test_a_tier_no_longer_reported_is_removed_from_the_status_once():
    hot = pool("hot-1", "hot", 100 * GiB, 91 * GiB)
    # The cold pool reports no size (yet): only the hot tier's fill is known.
    cold = PoolView("cold-1", "node-cold-1", {"tier": "cold"}, "Online", 900 * GiB)
    own = run(rules(maxTierFillPercent=95), [volume("a", "hot-1")], [hot, cold], {"a": 800.0}).policy("p")
    assert own is not None
    shown = StoragePolicyStatus(tier_fill_percent={"hot": 91, "cold": 25})
    patch = status_patch(own, shown, metrics=MetricsState(True), active=0, now=NOW)
    assert patch is not None
    assert patch["status"]["tierFillPercent"] == {"hot": 91, "cold": None}
    # Once the merge patch removed it, the status is as wanted: no write until the heartbeat.
    after = status_patch(own, _applied(shown, patch), metrics=MetricsState(True), active=0, now=NOW)
    assert after is None


def _applied(status: StoragePolicyStatus, patch: dict) -> StoragePolicyStatus:
    """``status`` after the merge patch, as the API server applies it (a null removes the key)."""
    merged = msgspec.to_builtins(status)
    for key, value in msgspec.to_builtins(patch["status"]).items():
        if isinstance(value, dict):
            inner = {**merged.get(key, {}), **value}
            merged[key] = {k: v for k, v in inner.items() if v is not None}
        else:
            merged[key] = value
    return msgspec.convert(merged, StoragePolicyStatus)


def _team_rules(name: str, team: str, **spec) -> PolicyRules:
    spec = {
        "lowWatermarkIOPS": LOW,
        "highWatermarkIOPS": HIGH,
        "maxConcurrentMigrations": 100,
        "volumeSelector": {"matchLabels": {"team": team}},
        **spec,
    }
    compiled = compile_policy(StoragePolicy(metadata=ObjectMeta(name=name), spec=spec))
    assert isinstance(compiled, PolicyRules), compiled
    return compiled


def _team_volume(name: str, on: str, team: str, size: int = 10 * GiB) -> VolumeView:
    v = volume(name, on, size)
    return VolumeView(v.name, None, "mayastor", {"team": team}, size, num_replicas=1, replicas=v.replicas)


def test_policies_on_the_same_pools_fill_and_free_them_together():
    policies = [_team_rules("a", "x", maxTierFillPercent=85), _team_rules("b", "y", maxTierFillPercent=85)]
    hot = pool("hot-1", "hot", 100 * GiB, 80 * GiB)
    # Each policy alone could promote its 5 GiB volume (to 85 %); together they would fill the tier to 90 %.
    vols = [_team_volume("ax", "cold-1", "x", 5 * GiB), _team_volume("by", "cold-1", "y", 5 * GiB)]
    plan = decide(policies, vols, [hot, COLD_POOL], snapshot({"ax": 9000.0, "by": 8000.0}), set(), {}, NOW)
    assert labels(plan) == {"ax": "hot", "by": "skip:max-tier-fill"}
    # Over the mark: one move down frees the tier for both policies; the other policy's volume stays.
    hot = pool("hot-1", "hot", 100 * GiB, 90 * GiB)
    vols = [_team_volume("ax", "hot-1", "x"), _team_volume("by", "hot-1", "y")]
    plan = decide(policies, vols, [hot, COLD_POOL], snapshot({"ax": 900.0, "by": 800.0}), set(), {}, NOW)
    assert sorted(labels(plan).values()) == ["cold", "stay"]
