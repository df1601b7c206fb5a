"""Judging one volume under one policy: the per-volume rules 1-6 of :mod:`couchestor.tiering.decide`, giving
either a final :class:`~couchestor.tiering.plan.Decision` or a :class:`~couchestor.tiering.placement.Wanted`
move that then competes for a slot and pool room. Shared by the full and the incremental pass."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from couchestor.durations import format_duration, format_time
from couchestor.tiering.heat import ScoreSnapshot, lookup
from couchestor.tiering.pins import Pinning, own_pinning
from couchestor.tiering.placement import Pools, Wanted, pick_pool, placeable
from couchestor.tiering.plan import Action, DecideOptions, Decision
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier
from couchestor.tiering.views import VolumeView


def judge(
    policy: PolicyRules | PolicyProblem,
    v: VolumeView,
    others: tuple[str, ...],
    pools: Pools,
    scores: Mapping[int, ScoreSnapshot],
    in_flight: Collection[str],
    recent: Mapping[str, datetime],
    now: datetime,
    opts: DecideOptions,
    group: tuple[str, float] | None = None,
    tier: tuple[Tier | None, tuple[str, str] | None] | None = None,
    group_pin: Pinning | None = None,
) -> Decision | Wanted:
    """The verdict on ``v`` under ``policy`` before scheduling; ``tier`` is :func:`current_tier`'s answer
    when the caller has it already; ``group_pin`` is the pin of ``v``'s group
    (:func:`~couchestor.tiering.pins.group_pinning`), which applies when ``v`` has no pin of its own."""

    def skip(
        reason: str,
        detail: str,
        score: float | None = None,
        current_tier: Tier | None = None,
        target_tier: Tier | None = None,
        target_pool: str | None = None,
    ) -> Decision:
        return Decision(
            v.name, policy.name, Action.SKIP, reason, score, current_tier, target_tier, target_pool, detail
        )

    if isinstance(policy, PolicyProblem):
        if others:
            return skip(f"conflict:{','.join(others)}", f"also selected by {', '.join(others)}")
        return skip("invalid-policy", f"the policy is invalid: {policy.message}")
    if not policy.enabled:
        return skip("disabled", "the policy is disabled")
    if others:
        return skip(f"conflict:{','.join(others)}", f"also selected by {', '.join(others)}; never moved")
    facts = _volume_problem(v, in_flight)
    if facts is not None:
        return skip(*facts)
    # Pins and opt-outs come before the tier and the heat: what the owner asked is never overruled.
    if v.pin_error is not None:
        return skip("pin-invalid", f"{v.pin_error}; not moved until it is fixed")
    pinning = own_pinning(v.pin, now)
    if pinning is not None and pinning.tier is None:
        return skip("excluded", f"{pinning.why}; never moved")
    if group_pin is not None and group_pin.conflict is not None:
        return skip("pin-conflict", group_pin.conflict)
    pinning = pinning or group_pin
    current, problem = tier if tier is not None else current_tier(policy, v, pools)
    if current is None:
        assert problem is not None
        return skip(*problem)
    if pinning is not None:
        assert pinning.tier is not None
        if pinning.tier not in policy.tiers:
            return skip(
                "pinned",
                f"{pinning.why}, a tier policy {policy.name} does not have; not moved",
                current_tier=current,
            )
        if pinning.tier is current:
            return skip("pinned", f"{pinning.why}; stays on {current}", current_tier=current)
        return _move_checks(
            policy,
            v,
            pools,
            recent,
            now,
            opts,
            current,
            pinning.tier,
            _usable_score(v, scores.get(policy.window_seconds), now, opts),
            f"{pinning.why}: {current} -> {pinning.tier}",
        )
    snapshot = scores.get(policy.window_seconds)
    unavailable = metrics_problem(snapshot, policy.window_seconds, now, opts)
    if unavailable is not None or snapshot is None:
        return skip("metrics-unavailable", unavailable or "", current_tier=current)
    heat = lookup(snapshot, v.name, v.volume_id)
    score = 0.0
    if heat is None and snapshot.max_coverage < opts.min_coverage:
        return skip(
            "low-coverage",
            "no samples for the volume, and no volume has enough of the window yet to call it idle",
            current_tier=current,
        )
    if heat is not None:
        if heat.score is None:
            return skip("no-score", "Prometheus returned a non-finite value", current_tier=current)
        if heat.coverage < opts.min_coverage:
            return skip(
                "low-coverage",
                f"{heat.coverage:.0%} of the window's samples present, {opts.min_coverage:.0%} needed",
                score=heat.score,
                current_tier=current,
            )
        score = heat.score
    if group is not None:
        # A group member is judged on the group's combined heat; its own checks above still apply.
        score = group[1]
    target = policy.target_tier(score, current)
    idle_note = ""
    if target is Tier.COLD and policy.idle is not None:
        held = idle_problem(policy, v, snapshot, now, opts)
        if held is not None:
            reason, why = held
            if reason != "busy":
                return skip(reason, why, score=score, current_tier=current, target_tier=target)
            # Busy within the idle period: not cold yet. A hot volume still cools down to warm.
            target = Tier.WARM if current is Tier.HOT and policy.warm_iops is not None else None
            idle_note = f"; not cold: {why}"
    if target is None:
        return Decision(
            v.name,
            policy.name,
            Action.STAY,
            "stay",
            score,
            current,
            detail=_explain_stay(policy, score, current) + idle_note,
        )
    detail = _explain_move(policy, score, current, target) + idle_note
    if group is not None:
        detail = f"group {group[0]}: combined {detail}"
    return _move_checks(policy, v, pools, recent, now, opts, current, target, score, detail)


def _move_checks(
    policy: PolicyRules,
    v: VolumeView,
    pools: Pools,
    recent: Mapping[str, datetime],
    now: datetime,
    opts: DecideOptions,
    current: Tier,
    target: Tier,
    score: float | None,
    detail: str,
) -> Decision | Wanted:
    """Rule 6: a wanted move from ``current`` to ``target`` against topology, cooldown, dry run and size.
    ``score`` is None for a pinned move of a volume without a usable heat score."""

    def skip(reason: str, detail: str, target_pool: str | None = None) -> Decision:
        return Decision(v.name, policy.name, Action.SKIP, reason, score, current, target, target_pool, detail)

    if opts.fixed_topology and not _topology_allows(policy, target, v, pools):
        return skip(
            "topology-pinned",
            f"{detail}; the volume was created with {_topology_text(v)}, which no {target} pool satisfies, and"
            " Mayastor cannot change a volume's topology (recreate it from a StorageClass without that"
            " affinity to make it movable)",
        )
    if v.last_migration_error is not None:
        # Fail closed: a volume whose last move cannot be dated might have moved a moment ago.
        return skip(
            "cooldown",
            f"{detail}; {v.last_migration_error}, so the volume counts as in cooldown until it is fixed",
        )
    last = max((t for t in (v.last_migration, recent.get(v.name)) if t is not None), default=None)
    if last is not None and (now - last).total_seconds() < policy.cooldown_seconds:
        left = policy.cooldown_seconds - (now - last).total_seconds()
        return skip(
            "cooldown",
            f"{detail}; last migration {format_duration((now - last).total_seconds())} ago, {format_duration(left)} "
            "of cooldown left",
        )
    want = Wanted(policy, v, current, target, 0.0 if score is None else score, detail, opts.fixed_topology)
    if policy.dry_run:
        preview = pick_pool(want, pools, {})
        where = f"pool {preview.name}" if preview else "no pool with room"
        return skip("dry-run", f"{detail}; dry run, would use {where}", preview.name if preview else None)
    if v.size_bytes is None:
        return skip("size-unknown", f"{detail}; volume size unknown")
    return want


def _usable_score(
    v: VolumeView, snapshot: ScoreSnapshot | None, now: datetime, opts: DecideOptions
) -> float | None:
    """The volume's own heat when the snapshot can be trusted and covers it well enough, else None (a pinned
    move does not need one; it is shown and ordered by it when there is one)."""
    if snapshot is None or metrics_problem(snapshot, snapshot.window_seconds, now, opts) is not None:
        return None
    heat = lookup(snapshot, v.name, v.volume_id)
    if heat is None or heat.score is None or heat.coverage < opts.min_coverage:
        return None
    return heat.score


def _topology_allows(policy: PolicyRules, target: Tier, v: VolumeView, pools: Pools) -> bool:
    """True when some pool of ``target`` could take a replica of ``v`` under its creation topology."""
    if not v.inclusion and v.allowed_nodes is None:
        return True
    return any(placeable(v, pool) for pool in pools.values() if pools.tiers(policy, pool) == {target})


def _topology_text(v: VolumeView) -> str:
    parts = []
    if v.inclusion:
        parts.append("pool topology " + ", ".join(f"{k}={val}" for k, val in sorted(v.inclusion.items())))
    if v.allowed_nodes is not None:
        parts.append("replicas allowed only on node(s) " + ", ".join(sorted(v.allowed_nodes)))
    return " and ".join(parts)


def _volume_problem(v: VolumeView, in_flight: Collection[str]) -> tuple[str, str] | None:
    if v.deleting:
        return "deleting", "the PV is being deleted"
    if not v.has_backend:
        return "no-mayastor-volume", f"no MayastorVolume named {v.volume_id or v.name}"
    if v.name in in_flight:
        return "in-flight", "a migration of this volume is running"
    unhealthy = [r for r in v.replicas if not r.healthy]
    if unhealthy:
        r = unhealthy[0]
        return "degraded", f"replica on pool {r.pool} is {r.state}/{r.sync_state}"
    if not v.replicas or (v.num_replicas is not None and len(v.replicas) < v.num_replicas):
        return "degraded", f"{len(v.replicas)} of {v.num_replicas or 1} replicas reported"
    return None


def current_tier(
    policy: PolicyRules, v: VolumeView, pools: Pools
) -> tuple[Tier | None, tuple[str, str] | None]:
    """The single tier of the pools holding ``v``'s Synced replicas, or the skip reason and detail."""
    tiers: set[Tier] = set()
    synced = [r for r in v.replicas if r.synced]
    if not synced:
        return None, ("tier-unknown", "no Synced replica")
    tier_of = pools.tier_map(policy)
    for replica in synced:
        matched = tier_of.get(replica.pool)
        if matched is None:
            return None, ("tier-unknown", f"pool {replica.pool} is not known")
        if len(matched) != 1:
            which = " and ".join(sorted(matched)) or "no tier"
            return None, (
                "tier-unknown",
                f"pool {replica.pool} matches {which} of the policy's pool selectors",
            )
        tiers |= matched
    if len(tiers) > 1:
        return None, ("mixed-tier", f"replicas on {' and '.join(sorted(tiers))} pools")
    return tiers.pop(), None


def metrics_problem(
    snapshot: ScoreSnapshot | None, window: int, now: datetime, opts: DecideOptions
) -> str | None:
    if snapshot is None:
        return f"no heat scores for a {format_duration(window)} window yet"
    if not snapshot.healthy:
        return f"metrics unhealthy: {snapshot.error or 'unknown error'}"
    if (now - snapshot.fetched_at).total_seconds() > opts.max_score_age_seconds:
        # No age in the text: it would change at every pass, and every volume be judged again to say so.
        return f"heat scores are older than {_max_age(opts)} (fetched at {format_time(snapshot.fetched_at)})"
    return None


def _max_age(opts: DecideOptions) -> str:
    return format_duration(opts.max_score_age_seconds)


def idle_problem(
    policy: PolicyRules, v: VolumeView, snapshot: ScoreSnapshot, now: datetime, opts: DecideOptions
) -> tuple[str, str] | None:
    """None when ``v`` was idle for the policy's whole ``coldAfterIdle`` period; else ``("busy", why)`` when
    its IOPS reached the floor within it, or the skip reason and detail when that cannot be told (no,
    unhealthy or old peaks, too few samples over the period: the same guards as the window's)."""
    idle = policy.idle
    assert idle is not None
    period = format_duration(idle.period_seconds)
    peaks = snapshot.peaks.get(idle.period_seconds)
    if peaks is None:
        return "metrics-unavailable", f"no peak IOPS over the {period} coldAfterIdle period yet"
    if not peaks.healthy:
        return "metrics-unavailable", f"idle-period metrics unhealthy: {peaks.error or 'unknown error'}"
    if (now - peaks.fetched_at).total_seconds() > opts.max_score_age_seconds:
        fetched = format_time(peaks.fetched_at)
        return (
            "metrics-unavailable",
            f"idle-period peaks are older than {_max_age(opts)} (fetched at {fetched})",
        )
    found = peaks.lookup(v.name, v.volume_id)
    if found is None:
        if peaks.max_coverage < opts.min_coverage:
            return (
                "low-coverage",
                f"no samples for the volume over the {period} coldAfterIdle period, and no volume has enough"
                " of it yet to call it idle",
            )
        return None
    if found.peak is None:
        return "no-score", f"Prometheus returned a non-finite peak over the {period} coldAfterIdle period"
    if found.coverage < opts.min_coverage:
        return (
            "low-coverage",
            f"{found.coverage:.0%} of the {period} coldAfterIdle period's samples present,"
            f" {opts.min_coverage:.0%} needed",
        )
    if found.peak >= idle.below_iops:
        return (
            "busy",
            f"peak {found.peak:.1f} IOPS within the {period} coldAfterIdle period (belowIOPS {idle.below_iops})",
        )
    return None


def _explain_move(policy: PolicyRules, score: float, current: Tier, target: Tier) -> str:
    if target is Tier.HOT:
        rule = f"> highWatermarkIOPS {policy.high_iops}"
    elif target is Tier.COLD:
        rule = f"< lowWatermarkIOPS {policy.low_iops}"
    else:
        rule = f"{'<' if current is Tier.HOT else '>'} warmWatermarkIOPS {policy.warm_iops}"
    return f"score {score:.1f} {rule}: {current} -> {target}"


def _explain_stay(policy: PolicyRules, score: float, current: Tier) -> str:
    band = f"[{policy.low_iops}, {policy.high_iops}]"
    if policy.warm_iops is not None:
        band = f"[{policy.low_iops}, {policy.warm_iops}, {policy.high_iops}]"
    return f"score {score:.1f} keeps the volume on {current} (watermarks {band})"
