"""Tier pressure (``maxTierFillPercent``): how full each tier's pools are, and what that allows in one pass.

A tier's fill is the sum of ``used`` over the sum of ``capacity`` of the pools whose tier it is, as the pools
report them (pools that report neither do not count). :class:`Pressure` keeps, for one scheduling pass, the
bytes each tier will hold: the reported use, plus what the migrations already running will still bring in
or take away, plus every move scheduled so far in the pass. With it:

- a promotion into a tier that was over the mark when the pass began, or that would push the tier over it,
  is refused (:meth:`Pressure.refusal`, skip reason ``max-tier-fill``). A tier over the mark takes no
  promotion at all, so a volume demoted for pressure is not promoted back while the pressure holds;
- after the pass's own moves, a tier still over the mark sends its coldest volumes one tier down, even those
  between the watermarks, until it would be back under it (:meth:`Pressure.demotions`).

Both happen in the same pass, promotions first (so a promotion never counts bytes a demotion of the same
pass has yet to free) and in the full and the incremental pass alike, so no pass demotes a volume it then
promotes back. A volume's bytes on a tier are its size times its replicas there (a move takes every replica).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from couchestor.tiering.placement import Pools, Wanted, pick_pool
from couchestor.tiering.plan import Action, Decision, PlannedMigration
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier
from couchestor.tiering.views import VolumeView

#: The skip reason of a promotion refused because the target tier is, or would be, over the mark.
REASON = "max-tier-fill"


@dataclass(frozen=True, slots=True)
class Fill:
    """Bytes used and capacity of one tier's pools."""

    used: int
    capacity: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.capacity if self.capacity else 0.0


def tier_fill(rules: PolicyRules, pools: Pools) -> dict[Tier, Fill]:
    """Each of the policy's tiers with a pool reporting its size: the fill of those pools together."""
    used: dict[Tier, int] = {}
    capacity: dict[Tier, int] = {}
    for name, tiers in pools.tier_map(rules).items():
        pool = pools[name]
        if len(tiers) != 1 or pool.capacity_bytes is None or pool.used_bytes is None:
            continue
        (tier,) = tiers
        used[tier] = used.get(tier, 0) + pool.used_bytes
        capacity[tier] = capacity.get(tier, 0) + pool.capacity_bytes
    return {tier: Fill(used[tier], capacity[tier]) for tier in rules.tiers if capacity.get(tier)}


def fill_percents(policy: PolicyRules | PolicyProblem, pools: Pools) -> dict[Tier, float]:
    """The fill of each tier in percent, for the policy's status (none for an invalid policy)."""
    if not isinstance(policy, PolicyRules):
        return {}
    return {tier: fill.percent for tier, fill in tier_fill(policy, pools).items()}


def footprint(v: VolumeView) -> int:
    """The bytes ``v`` takes on the tier it is on: its size on each replica (at least ``numReplicas``)."""
    return (v.size_bytes or 0) * max(len(v.replicas), v.num_replicas or 1)


def _lower(rules: PolicyRules, tier: Tier) -> Tier | None:
    """The next tier down under ``rules`` (None for the coldest)."""
    tiers = rules.tiers  # hottest first
    i = tiers.index(tier)
    return tiers[i + 1] if i + 1 < len(tiers) else None


class Pressure:
    """The bytes each (policy, tier) will hold as a pass schedules its moves; see the module docstring.

    ``moving`` are the migrations running now (PV name -> (from tier, to tier)) and ``views`` the volume
    views they are looked up in: a running move still takes its replicas off its source tier and brings the
    missing ones to its target tier, which the pools' reported use does not show yet.
    """

    def __init__(
        self,
        policies: Iterable[PolicyRules | PolicyProblem],
        pools: Pools,
        moving: Mapping[str, tuple[Tier, Tier]],
        views: Mapping[str, VolumeView],
    ) -> None:
        self._pools = pools
        self._used: dict[tuple[str, Tier], int] = {}
        self._capacity: dict[tuple[str, Tier], int] = {}
        self._mark: dict[str, int] = {}
        self.over_at_start: set[tuple[str, Tier]] = set()
        for rules in policies:
            if not isinstance(rules, PolicyRules) or rules.max_fill_percent is None:
                continue
            self._mark[rules.name] = rules.max_fill_percent
            for tier, fill in tier_fill(rules, pools).items():
                self._used[(rules.name, tier)] = fill.used
                self._capacity[(rules.name, tier)] = fill.capacity
            tier_of = pools.tier_map(rules)
            for name, (source, target) in sorted(moving.items()):
                v = views.get(name)
                if v is None:
                    continue
                on = sum(tier_of.get(r.pool, frozenset()) == {source} for r in v.replicas)
                there = sum(tier_of.get(r.pool, frozenset()) == {target} for r in v.replicas)
                wanted = max(v.num_replicas or 1, on)
                self._add(rules.name, source, -(v.size_bytes or 0) * on)
                self._add(rules.name, target, (v.size_bytes or 0) * max(wanted - there, 0))
            self.over_at_start |= {
                key for key in self._capacity if key[0] == rules.name and self._over(key, 0)
            }

    def _add(self, policy: str, tier: Tier, delta: int) -> None:
        key = (policy, tier)
        if key in self._capacity:
            self._used[key] += delta

    def _over(self, key: tuple[str, Tier], extra: int) -> bool:
        # used / capacity > mark / 100, in integers.
        return (self._used[key] + extra) * 100 > self._mark[key[0]] * self._capacity[key]

    def over(self, policy: str) -> bool:
        """Whether some tier of the policy is over its mark now."""
        return any(self._over(key, 0) for key in self._capacity if key[0] == policy)

    def percent(self, policy: str, tier: Tier, extra: int = 0) -> float:
        key = (policy, tier)
        return 100.0 * (self._used[key] + extra) / self._capacity[key]

    def refusal(self, want: Wanted, size: int | None = None) -> str | None:
        """Why the promotion ``want`` may not start (None: it may, or it is no promotion). ``size``: the
        bytes it brings (a group's members together; default the volume's footprint)."""
        key = (want.rules.name, want.target)
        if want.target.rank <= want.current.rank or key not in self._capacity:
            return None
        mark = self._mark[key[0]]
        if key in self.over_at_start:
            return (
                f"{want.target} tier {self.percent(*key):.0f}% full, over maxTierFillPercent {mark}: no"
                " promotion into it until its coldest volumes moved down"
            )
        extra = footprint(want.volume) if size is None else size
        if self._over(key, extra):
            return f"would fill the {want.target} tier to {self.percent(*key, extra):.0f}%, over maxTierFillPercent {mark}"
        return None

    def record(self, migration: PlannedMigration, v: VolumeView) -> None:
        """Count a move scheduled in this pass."""
        size = footprint(v)
        self._add(migration.policy, migration.from_tier, -size)
        self._add(migration.policy, migration.to_tier, size)

    def demotions(
        self,
        rules: PolicyRules,
        stays: Iterable[tuple[VolumeView, Decision]],
        recent: Mapping[str, datetime],
        now: datetime,
        fixed_topology: bool,
    ) -> list[Wanted | Decision]:
        """The moves down that bring each of ``rules``' tiers back under the mark, coldest first.

        ``stays`` are the policy's volumes decided ``stay`` (every per-volume rule passed, between the
        watermarks) that stand alone (not in a volume group). A volume still in its cooldown is not taken.
        Returns a wanted move per volume to schedule, or for a dry-run policy the ``dry-run`` decision.
        """
        if rules.name not in self._mark:
            return []
        by_tier: dict[Tier, list[tuple[float, str, VolumeView]]] = {}
        for v, d in stays:
            if d.action is not Action.STAY or d.current_tier is None or d.score is None:
                continue
            key = (rules.name, d.current_tier)
            if key not in self._capacity or _lower(rules, d.current_tier) is None or v.size_bytes is None:
                continue
            last = max((t for t in (v.last_migration, recent.get(v.name)) if t is not None), default=None)
            if last is not None and (now - last).total_seconds() < rules.cooldown_seconds:
                continue
            by_tier.setdefault(d.current_tier, []).append((d.score, v.name, v))
        out: list[Wanted | Decision] = []
        for tier in rules.tiers:
            key = (rules.name, tier)
            target = _lower(rules, tier) if key in self._capacity else None
            if target is None or not self._over(key, 0):
                continue
            freed = 0
            for score, _, v in sorted(by_tier.get(tier, ()), key=lambda c: (c[0], c[1])):
                if not self._over(key, -freed):
                    break
                detail = (
                    f"{tier} tier {self.percent(*key):.0f}% full, over maxTierFillPercent {self._mark[rules.name]}:"
                    f" its coldest volumes move down (score {score:.1f}): {tier} -> {target}"
                )
                freed += footprint(v)
                want = Wanted(rules, v, tier, target, score, detail, fixed_topology)
                if rules.dry_run:
                    preview = pick_pool(want, self._pools, {})
                    where = f"pool {preview.name}" if preview else "no pool with room"
                    out.append(
                        Decision(
                            v.name,
                            rules.name,
                            Action.SKIP,
                            "dry-run",
                            score,
                            tier,
                            target,
                            preview.name if preview else None,
                            f"{detail}; dry run, would use {where}",
                        )
                    )
                else:
                    out.append(want)
        return out


def pressure_order(policies: Sequence[PolicyRules | PolicyProblem]) -> list[PolicyRules]:
    """The policies with a mark, in the order their pressure moves are scheduled (by name)."""
    return sorted(
        (p for p in policies if isinstance(p, PolicyRules) and p.max_fill_percent is not None and p.enabled),
        key=lambda p: p.name,
    )
