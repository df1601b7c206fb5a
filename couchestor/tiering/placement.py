"""Where a move can land: the pools of one pass with their tiers matched once (:class:`Pools`), a move that
passed every per-volume rule (:class:`Wanted`), and the pool a move would use (:func:`pick_pool`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from couchestor.labels import includes
from couchestor.tiering.policy import PolicyRules, Tier
from couchestor.tiering.views import PoolView, VolumeView


class Pools(dict[str, PoolView]):
    """The pools of one pass by name, with each pool's tiers under each policy matched once: matching label
    selectors per replica of every volume was the costliest step of a pass."""

    def __init__(self, pools: Iterable[PoolView]) -> None:
        super().__init__((p.name, p) for p in sorted(pools, key=lambda p: p.name))
        self._tiers: dict[str, dict[str, frozenset[Tier]]] = {}

    def tier_map(self, policy: PolicyRules) -> dict[str, frozenset[Tier]]:
        """Pool name -> the tiers whose pool selectors of ``policy`` match the pool (more than one:
        ambiguous), for every pool."""
        found = self._tiers.get(policy.name)
        if found is None:
            found = self._tiers[policy.name] = {
                name: policy.tiers_matching(pool.labels) for name, pool in self.items()
            }
        return found

    def tiers(self, policy: PolicyRules, pool: PoolView) -> frozenset[Tier]:
        """The tiers whose pool selectors of ``policy`` match ``pool`` (more than one: ambiguous)."""
        return self.tier_map(policy)[pool.name]


class Wanted(msgspec.Struct, frozen=True, gc=False):
    """A move that passed every per-volume rule and now competes for a slot and for pool room.

    (An untracked Struct: a score refresh at 100,000 volumes makes tens of thousands, and each tracked
    object adds to the garbage collector's work; a move refers to no object that could refer back to it.)
    """

    rules: PolicyRules
    volume: VolumeView
    current: Tier
    target: Tier
    score: float
    detail: str
    #: The storage fixes the volume's topology at creation: only pools it satisfies can take the replica.
    fixed_topology: bool = False

    @property
    def order(self) -> tuple[int, float, str]:
        if self.target.rank > self.current.rank:
            return (0, -self.score, self.volume.name)
        return (1, self.score, self.volume.name)


def placeable(v: VolumeView, pool: PoolView) -> bool:
    """Whether ``pool`` satisfies ``v``'s creation topology: its pool labels and its allowed nodes."""
    return includes(pool.labels, v.inclusion) and (v.allowed_nodes is None or pool.node in v.allowed_nodes)


def pick_pool(want: Wanted, pools: Pools, reserved: Mapping[str, int]) -> PoolView | None:
    """The Online target-tier pool with the most room for the volume, or None when none has enough."""
    size = want.volume.size_bytes or 0
    used_nodes = {r.node for r in want.volume.replicas if r.node is not None}
    own_pools = {r.pool for r in want.volume.replicas}
    fitting = [
        pool
        for pool in pools.values()
        if pool.online
        and pool.free_bytes is not None
        and pool.name not in own_pools
        and pools.tiers(want.rules, pool) == {want.target}
        and pool.free_bytes - reserved.get(pool.name, 0) >= size
        and (not want.fixed_topology or placeable(want.volume, pool))
    ]
    if not fitting:
        return None
    return min(
        fitting,
        key=lambda p: (p.node in used_nodes, -((p.free_bytes or 0) - reserved.get(p.name, 0)), p.name),
    )
