"""Tier pressure (``maxTierFillPercent``): how full each tier's pools are, and what that allows in one pass.

A tier's fill is the sum of ``used`` over the sum of ``capacity`` of the pools whose tier it is, as the pools
report them (pools that report neither do not count). :class:`Pressure` keeps, for one scheduling pass, the
bytes each tier will hold: the reported use, plus what the migrations already running will still bring in
or take away, plus every move scheduled so far in the pass. With it:

- a promotion into a tier that was over the mark when the pass began, or that would push the tier over it,
  is refused (:meth:`Pressure.refusal`, skip reason ``max-tier-fill``). A tier over the mark takes no
  promotion at all, so a volume demoted for pressure is not promoted back while the pressure holds. Bytes
  that a move of this pass takes off the tier make no room for a promotion of the same pass: a move removes
  its old replica only once the new one is synced, so until then the tier holds both;
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


def tier_pools(rules: PolicyRules, pools: Pools) -> dict[Tier, frozenset[str]]:
    """Each of the policy's tiers with a pool reporting its size: the names of those pools."""
    out: dict[Tier, set[str]] = {}
    for name, tiers in pools.tier_map(rules).items():
        pool = pools[name]
        if len(tiers) == 1 and pool.capacity_bytes is not None and pool.used_bytes is not None:
            out.setdefault(next(iter(tiers)), set()).add(name)
    return {tier: frozenset(out[tier]) for tier in rules.tiers if tier in out}


def tier_fill(rules: PolicyRules, pools: Pools) -> dict[Tier, Fill]:
    """Each of the policy's tiers with a pool reporting its size: the fill of those pools together."""
    out = {}
    for tier, names in tier_pools(rules, pools).items():
        used = sum(pools[n].used_bytes or 0 for n in names)
        capacity = sum(pools[n].capacity_bytes or 0 for n in names)
        if capacity:
            out[tier] = Fill(used, capacity)
    return out


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
    """The bytes each tier will hold as a pass schedules its moves; see the module docstring.

    A tier is counted by its pools: policies whose selectors pick the same pools for a tier share its count
    (one policy's moves fill or free the tier for the others), each against its own mark. ``moving`` are the
    migrations running now (PV name -> (from tier, to tier)) and ``views`` the volume views they are looked
    up in: a running move still takes its replicas off its source tier and brings the missing ones to its
    target tier, which the pools' reported use does not show yet.
    """

    def __init__(
        self,
        policies: Iterable[PolicyRules | PolicyProblem],
        pools: Pools,
        moving: Mapping[str, tuple[Tier, Tier]],
        views: Mapping[str, VolumeView],
    ) -> None:
        self._pools = pools
        #: (policy, tier) -> the pools of that tier (every valid policy: its moves count for the others).
        self._pools_of: dict[tuple[str, Tier], frozenset[str]] = {}
        self._used: dict[frozenset[str], int] = {}
        #: Bytes the moves scheduled in this pass will take off each tier's pools, not yet gone.
        self._leaving: dict[frozenset[str], int] = {}
        self._capacity: dict[frozenset[str], int] = {}
        self._mark: dict[str, int] = {}
        self.over_at_start: set[tuple[str, Tier]] = set()
        valid = [p for p in policies if isinstance(p, PolicyRules)]
        for rules in valid:
            for tier, names in tier_pools(rules, pools).items():
                self._pools_of[(rules.name, tier)] = names
        for rules in valid:
            if rules.max_fill_percent is None:
                continue
            self._mark[rules.name] = rules.max_fill_percent
            for tier in rules.tiers:
                found = self._pools_of.get((rules.name, tier))
                if found is None or found in self._capacity:
                    continue
                self._capacity[found] = sum(pools[n].capacity_bytes or 0 for n in found)
                self._used[found] = sum(pools[n].used_bytes or 0 for n in found) + _running(
                    tier, found, moving, views
                )
        for (policy, tier), names in self._pools_of.items():
            if policy in self._mark and self._capacity.get(names) and self._over(policy, tier, 0):
                self.over_at_start.add((policy, tier))

    def _tracked(self, policy: str, tier: Tier) -> frozenset[str] | None:
        """The pools of a tier with a mark to hold (the policy has one, and the pools report a size)."""
        names = self._pools_of.get((policy, tier))
        if policy not in self._mark or names is None or not self._capacity.get(names):
            return None
        return names

    def _over(self, policy: str, tier: Tier, extra: int) -> bool:
        # used / capacity > mark / 100, in integers.
        names = self._pools_of[(policy, tier)]
        return (self._used[names] + extra) * 100 > self._mark[policy] * self._capacity[names]

    def over(self, policy: str) -> bool:
        """Whether some tier of the policy is over its mark now."""
        return any(
            self._tracked(p, tier) is not None and self._over(p, tier, 0)
            for p, tier in self._pools_of
            if p == policy
        )

    def percent(self, policy: str, tier: Tier, extra: int = 0) -> float:
        names = self._pools_of[(policy, tier)]
        return 100.0 * (self._used[names] + extra) / self._capacity[names]

    def refusal(self, want: Wanted, size: int | None = None) -> str | None:
        """Why the promotion ``want`` may not start (None: it may, or it is no promotion). ``size``: the
        bytes it brings (a group's members together; default the volume's footprint)."""
        policy, tier = want.rules.name, want.target
        if tier.rank <= want.current.rank or self._tracked(policy, tier) is None:
            return None
        mark = self._mark[policy]
        if (policy, tier) in self.over_at_start:
            return (
                f"{tier} tier {self.percent(policy, tier):.0f}% full, over maxTierFillPercent {mark}: no"
                " promotion into it until its coldest volumes moved down"
            )
        extra = (footprint(want.volume) if size is None else size) + self._leaving.get(
            self._pools_of[(policy, tier)], 0
        )
        if self._over(policy, tier, extra):
            return f"would fill the {tier} tier to {self.percent(policy, tier, extra):.0f}%, over maxTierFillPercent {mark}"
        return None

    def record(self, migration: PlannedMigration, v: VolumeView) -> None:
        """Count a move scheduled in this pass (of any policy: pools may be shared)."""
        size = footprint(v)
        for tier, delta in ((migration.from_tier, -size), (migration.to_tier, size)):
            names = self._pools_of.get((migration.policy, tier))
            if names is not None and names in self._used:
                self._used[names] += delta
                if delta < 0:
                    self._leaving[names] = self._leaving.get(names, 0) - delta

    def demotions(
        self,
        rules: PolicyRules,
        tier: Tier,
        stays: Iterable[tuple[VolumeView, Decision]],
        recent: Mapping[str, datetime],
        now: datetime,
        fixed_topology: bool,
    ) -> list[Wanted | Decision]:
        """The moves down that bring ``tier`` back under ``rules``' mark, coldest first. Called tier by
        tier, hottest first, each tier's moves scheduled (and counted) before the next: a move down into the
        warm tier is counted before the warm tier is looked at.

        ``stays`` are the policy's volumes decided ``stay`` (every per-volume rule passed, between the
        watermarks) that stand alone (not in a volume group). A volume still in its cooldown is not taken.
        Returns a wanted move per volume to schedule, or for a dry-run policy the ``dry-run`` decision.
        """
        target = _lower(rules, tier)
        if target is None or self._tracked(rules.name, tier) is None or not self._over(rules.name, tier, 0):
            return []
        candidates: list[tuple[float, str, VolumeView]] = []
        for v, d in stays:
            if d.action is not Action.STAY or d.current_tier is not tier or d.score is None:
                continue
            if v.size_bytes is None:
                continue
            last = max((t for t in (v.last_migration, recent.get(v.name)) if t is not None), default=None)
            if last is not None and (now - last).total_seconds() < rules.cooldown_seconds:
                continue
            candidates.append((d.score, v.name, v))
        out: list[Wanted | Decision] = []
        freed = 0
        for score, _, v in sorted(candidates, key=lambda c: (c[0], c[1])):
            if not self._over(rules.name, tier, -freed):
                break
            detail = (
                f"{tier} tier {self.percent(rules.name, tier):.0f}% full, over maxTierFillPercent"
                f" {self._mark[rules.name]}: its coldest volumes move down (score {score:.1f}): {tier} -> {target}"
            )
            freed += footprint(v)
            want = Wanted(rules, v, tier, target, score, detail, fixed_topology)
            if not rules.dry_run:
                out.append(want)
                continue
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
        return out


def _running(
    tier: Tier,
    names: frozenset[str],
    moving: Mapping[str, tuple[Tier, Tier]],
    views: Mapping[str, VolumeView],
) -> int:
    """The bytes the running moves will still take off (negative) or bring to ``tier``'s pools ``names``."""
    delta = 0
    for name, (source, target) in sorted(moving.items()):
        v = views.get(name)
        if v is None or tier not in (source, target):
            continue
        here = sum(r.pool in names for r in v.replicas)
        if tier is source:
            delta -= (v.size_bytes or 0) * here
        else:
            wanted = max(v.num_replicas or 1, len(v.replicas) - here)
            delta += (v.size_bytes or 0) * max(wanted - here, 0)
    return delta


def pressure_order(policies: Sequence[PolicyRules | PolicyProblem]) -> list[PolicyRules]:
    """The policies with a mark, in the order their pressure moves are scheduled (by name)."""
    return sorted(
        (p for p in policies if isinstance(p, PolicyRules) and p.max_fill_percent is not None and p.enabled),
        key=lambda p: p.name,
    )
