"""Scheduling wanted moves: a concurrency slot and a pool with room per move (:func:`schedule`; :func:`held_back`
is its decision on a move whose policy has no slot left), the decision and planned migration of a scheduled
move (:func:`move`), and each policy's :class:`~couchestor.tiering.plan.PolicyPlan` (:func:`policy_plan`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType

from couchestor.tiering.placement import Pools, Wanted, pick_pool
from couchestor.tiering.plan import Action, Decision, PlannedMigration, PolicyPlan
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier
from couchestor.tiering.pressure import REASON as PRESSURE, Pressure
from couchestor.tiering.views import PoolView, VolumeView


def schedule(
    want: Wanted,
    slots: dict[str, int],
    pools: Pools,
    reserved: dict[str, int],
    pressure: Pressure | None = None,
) -> tuple[Decision, PlannedMigration | None]:
    """A slot of the policy, the pass's tier pressure and a pool with room, in that order (a move held
    back by its policy's limit says so whatever else holds it back)."""
    v, rules = want.volume, want.rules
    if slots[rules.name] <= 0:
        return held_back(want), None
    refused = None if pressure is None else pressure.refusal(want)
    if refused is not None:
        return _skipped(want, PRESSURE, f"{want.detail}; {refused}"), None
    pool = pick_pool(want, pools, reserved)
    if pool is None:
        detail = f"{want.detail}; no Online {want.target} pool has room for the volume"
        return _skipped(want, "no-capacity", detail), None
    size = v.size_bytes or 0
    reserved[pool.name] = reserved.get(pool.name, 0) + size
    slots[rules.name] -= 1
    decision, migration = move(want, pool)
    if pressure is not None:
        pressure.record(migration, v)
    return decision, migration


def held_back(want: Wanted) -> Decision:
    """The decision on a move its policy has no slot for (what :func:`schedule` decides then)."""
    limit = want.rules.max_concurrent_migrations
    return _skipped(
        want, "concurrency-limit", f"{want.detail}; {limit} migration(s) running or planned for the policy"
    )


def _skipped(want: Wanted, reason: str, detail: str) -> Decision:
    return Decision(
        want.volume.name,
        want.rules.name,
        Action.SKIP,
        reason,
        want.score,
        want.current,
        want.target,
        None,
        detail,
    )


def move(want: Wanted, pool: PoolView, group: str = "") -> tuple[Decision, PlannedMigration]:
    """The decision and the planned migration of a scheduled move of ``want`` to ``pool``."""
    v, rules = want.volume, want.rules
    action = Action(want.target.value)
    decision = Decision(
        v.name,
        rules.name,
        action,
        action.value,
        want.score,
        want.current,
        want.target,
        pool.name,
        want.detail,
    )
    migration = PlannedMigration(
        volume=v.name,
        volume_id=v.volume_id,
        policy=rules.name,
        from_tier=want.current,
        to_tier=want.target,
        target_pool=pool.name,
        source_pools=tuple(sorted({r.pool for r in v.replicas})),
        score=want.score,
        size_bytes=v.size_bytes or 0,
        timeout_seconds=rules.migration_timeout_seconds,
        backend_volume=v.backend_name or v.name,
        target_topology=MappingProxyType(tier_topology(rules, want.target, pool.labels)),
        group=group,
    )
    return decision, migration


def tier_topology(rules: PolicyRules, tier: Tier, pool_labels: Mapping[str, str]) -> dict[str, str]:
    """The topology labels that keep a volume's replicas on ``tier``: the keys the tier's selector requires
    (by equality or set membership), with the chosen pool's values."""
    keys = [
        req.key
        for t, selector in rules.pool_selectors
        if t is tier
        for req in selector
        if req.op in ("=", "in")
    ]
    return {key: pool_labels[key] for key in keys if key in pool_labels}


def policy_plan(
    policy: PolicyRules | PolicyProblem,
    chosen: Sequence[VolumeView],
    decisions: Sequence[Decision],
    counts: dict[Tier, int],
    in_flight: Collection[str],
    started: Sequence[PlannedMigration],
    tier_fill: Mapping[Tier, float] | None = None,
) -> PolicyPlan:
    """The plan of ``policy``, whose ``i``-th selected volume (of ``chosen``) got the ``i``-th decision."""
    own = tuple(decisions)
    conflicts = {
        d.volume: tuple(d.reason.removeprefix("conflict:").split(","))
        for d in own
        if d.reason.startswith("conflict:")
    }
    return PolicyPlan(
        policy=policy.name,
        generation=policy.generation,
        problem=policy if isinstance(policy, PolicyProblem) else None,
        enabled=policy.enabled if isinstance(policy, PolicyRules) else False,
        dry_run=policy.dry_run if isinstance(policy, PolicyRules) else False,
        decisions=own,
        tier_counts=MappingProxyType(counts),
        conflicts=MappingProxyType(conflicts),
        in_flight=sum(v.name in in_flight for v in chosen) if in_flight else 0,
        migrations=tuple(m for m in started if m.policy == policy.name),
        unreadable=MappingProxyType({v.name: v.unreadable for v in chosen if v.unreadable is not None}),
        tier_fill=MappingProxyType(dict(tier_fill or {})),
    )
