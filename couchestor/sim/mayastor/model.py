"""Simulated Mayastor state and the control plane's rules, as plain data and functions (no I/O).

Time is simulated seconds supplied by the caller, so the same rules run at real speed, compressed for the demo,
or under trio's MockClock in tests.

Rules (MOAC-era MayastorVolume backend, as the seeds describe it):

- **Scale-up** places each missing replica on an Online pool whose topology labels include the volume's
  ``topology.pool.labelled.inclusion``, with free space for the whole volume, holding no replica of this volume
  yet; among those, a node without a replica of the volume first, then the most free space, then the name
  (or, with ``Cluster.placement_rng``, any of them: tests must not depend on the simulator's preference).
- A new replica starts ``Unknown``; once opened it is ``Online``/``Syncing`` and copies from a Synced replica
  at its pool's rebuild bandwidth; at 100 % it is ``Synced``. With no Synced source the rebuild cannot progress.
- **Scale-down** removes, in order: replicas that do not satisfy the topology, then the least healthy
  (Faulted, Unknown, Syncing with the least progress), never the last Synced replica.
- **Faults**: a Faulted/Offline pool (or a down node) faults its replicas; a stalled rebuild makes no progress.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from couchestor.labels import includes

PoolState = Literal["Online", "Degraded", "Faulted", "Offline"]
ReplicaState = Literal["Online", "Degraded", "Faulted", "Unknown"]
SyncState = Literal["Unknown", "Syncing", "Synced"]

# How long a new replica stays Unknown before its rebuild starts (simulated seconds).
OPEN_DELAY = 2.0
# How long a Faulted replica is kept (visible in status) before it is dropped and replaced, like Mayastor's
# --faulted-child-wait-period (10 minutes by default).
FAULTED_GRACE = 600.0


@dataclass
class Pool:
    name: str
    node: str
    labels: dict[str, str]
    capacity: int
    used: int = 0
    state: PoolState = "Online"
    rebuild_bandwidth: float = 200 * 2**20  # bytes per simulated second
    stalled: bool = False  # rebuilds onto this pool make no progress

    @property
    def free(self) -> int:
        return max(self.capacity - self.used, 0)

    @property
    def usable(self) -> bool:
        return self.state == "Online"


@dataclass
class Replica:
    uuid: str
    pool: str
    node: str
    state: ReplicaState = "Unknown"
    sync_state: SyncState = "Unknown"
    copied: int = 0  # bytes rebuilt so far
    created_at: float = 0.0
    faulted_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "Online" and self.sync_state == "Synced"


@dataclass
class Volume:
    name: str
    namespace: str
    size: int
    num_replicas: int
    inclusion: dict[str, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    nexus_node: str | None = None
    stalled: bool = False
    # False until the first replicas exist: those of a brand-new (empty) volume need no rebuild.
    provisioned: bool = False

    def __post_init__(self) -> None:
        self.provisioned = self.provisioned or bool(self.replicas)

    @property
    def synced(self) -> int:
        return sum(1 for r in self.replicas if r.healthy)

    def progress(self, replica: Replica) -> int:
        """Rebuild progress of ``replica`` in whole percent."""
        return 100 if replica.sync_state == "Synced" else min(99, replica.copied * 100 // max(self.size, 1))

    @property
    def state(self) -> str:
        synced = self.synced
        if synced == 0:
            return "Faulted"
        if synced >= self.num_replicas and len(self.replicas) == synced:
            return "Online"
        return "Degraded"


def matches_topology(pool: Pool, inclusion: Mapping[str, str]) -> bool:
    """True when every inclusion label is on the pool with the same value."""
    return includes(pool.labels, inclusion)


def eligible_pools(volume: Volume, pools: Iterable[Pool]) -> list[Pool]:
    """Every pool that may take a new replica of ``volume``: usable, room for it, none of its replicas yet,
    matching its topology."""
    held = {r.pool for r in volume.replicas}
    return [
        p
        for p in pools
        if p.usable and p.name not in held and p.free >= volume.size and matches_topology(p, volume.inclusion)
    ]


def choose_pool(volume: Volume, pools: Iterable[Pool], rng: random.Random | None = None) -> Pool | None:
    """The pool a new replica of ``volume`` goes to, or None when no pool qualifies.

    Without ``rng``, the simulator's preference (a node without a replica of the volume, the most free space,
    the name); with it, any eligible pool, since the real control plane's choice is not a contract.
    """
    candidates = eligible_pools(volume, pools)
    if not candidates:
        return None
    if rng is not None:
        return rng.choice(sorted(candidates, key=lambda p: p.name))
    nodes = {r.node for r in volume.replicas}
    return min(candidates, key=lambda p: (p.node in nodes, -p.free, p.name))


_UNHEALTH = {"Faulted": 0, "Unknown": 1, "Degraded": 2, "Online": 3}


def choose_victims(volume: Volume, pools: Mapping[str, Pool], count: int) -> list[Replica]:
    """Up to ``count`` replicas to remove, in removal order, never the last Synced replica."""

    def badness(r: Replica) -> tuple[bool, int, int, str]:
        pool = pools.get(r.pool)
        fits = pool is not None and matches_topology(pool, volume.inclusion)
        return (fits, _UNHEALTH[r.state] + (r.sync_state == "Synced") * 10, r.copied, r.uuid)

    victims: list[Replica] = []
    synced_left = volume.synced
    for replica in sorted(volume.replicas, key=badness):
        if len(victims) == count:
            break
        if replica.healthy:
            if synced_left <= 1:
                continue
            synced_left -= 1
        victims.append(replica)
    return victims


def choose_victims_2x(
    volume: Volume,
    pools: Mapping[str, Pool],
    count: int,
    *,
    nexus_node: str | None = None,
    cordoned_nodes: Collection[str] = (),
) -> list[Replica]:
    """Up to ``count`` replicas Mayastor 2.x's control plane removes on scale-down, in removal order.

    Its order: unhealthy replicas first (not Online and Synced; a replica still rebuilding is unhealthy), the
    least rebuilt first; then healthy replicas outside the volume's pool topology, then those on cordoned
    nodes, then those remote from the volume target (nexus) before the one local to it. A healthy replica is
    only removed while more healthy replicas than ``volume.num_replicas`` remain.
    """

    def unhealthy_order(r: Replica) -> tuple[int, int, str]:
        # What the control plane sees: the child's state, then its rebuild progress (only while rebuilding).
        return (_UNHEALTH[r.state], volume.progress(r) if r.sync_state == "Syncing" else 0, r.uuid)

    def healthy_order(r: Replica) -> tuple[bool, bool, bool, str]:
        pool = pools.get(r.pool)
        fits = pool is not None and matches_topology(pool, volume.inclusion)
        return (fits, r.node not in cordoned_nodes, r.node == nexus_node, r.uuid)

    unhealthy = sorted((r for r in volume.replicas if not r.healthy), key=unhealthy_order)
    healthy = sorted((r for r in volume.replicas if r.healthy), key=healthy_order)
    victims = unhealthy[:count]
    spare = len(healthy) - volume.num_replicas
    victims.extend(healthy[: max(min(count - len(victims), spare), 0)])
    return victims


@dataclass
class Cluster:
    """All simulated state. Mutated only through the methods below, which report what changed."""

    pools: dict[str, Pool] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    down_nodes: set[str] = field(default_factory=set)
    #: When set, new replicas (Mayastor's own replacements included) land on any eligible pool, drawn from it.
    placement_rng: random.Random | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def new_uuid(self, volume: str) -> str:
        return f"{volume[:8]}-r{next(self._ids)}"

    def reconcile(self, volume: Volume, now: float) -> bool:
        """Add or remove replicas until the count matches ``num_replicas`` (as far as rules allow)."""
        changed = False
        for replica in list(volume.replicas):
            if replica.faulted_at is not None and now - replica.faulted_at >= FAULTED_GRACE:
                self._remove(volume, replica)
                changed = True
        # A Faulted replica keeps its slot until its grace period ends (it may come back), then is replaced.
        missing = volume.num_replicas - len(volume.replicas)
        for _ in range(max(missing, 0)):
            pool = choose_pool(volume, self.pools.values(), self.placement_rng)
            if pool is None:
                break
            replica = Replica(self.new_uuid(volume.name), pool.name, pool.node, created_at=now)
            if not volume.provisioned:
                replica.state, replica.sync_state, replica.copied = "Online", "Synced", volume.size
            volume.replicas.append(replica)
            pool.used += volume.size
            changed = True
        if volume.replicas:
            volume.provisioned = True
        excess = len(volume.replicas) - volume.num_replicas
        if excess > 0:
            for victim in choose_victims(volume, self.pools, excess):
                self._remove(volume, victim)
                changed = True
        if volume.nexus_node is None and volume.replicas:
            volume.nexus_node = volume.replicas[0].node
            changed = True
        return changed

    def _remove(self, volume: Volume, replica: Replica) -> None:
        volume.replicas.remove(replica)
        pool = self.pools.get(replica.pool)
        if pool is not None:
            pool.used = max(pool.used - volume.size, 0)

    def advance(self, volume: Volume, now: float, dt: float) -> bool:
        """Move ``volume``'s replicas ``dt`` simulated seconds forward; True when anything changed."""
        changed = False
        has_source = volume.synced > 0
        for replica in volume.replicas:
            pool = self.pools.get(replica.pool)
            if pool is None or not pool.usable or replica.node in self.down_nodes:
                if replica.state != "Faulted":
                    _fault(replica, now)
                    changed = True
                continue
            if replica.state == "Unknown" and now - replica.created_at >= OPEN_DELAY:
                replica.state, replica.sync_state = "Online", "Syncing"
                changed = True
            if replica.sync_state == "Syncing" and has_source and not (pool.stalled or volume.stalled):
                before = volume.progress(replica)
                replica.copied = min(volume.size, replica.copied + int(pool.rebuild_bandwidth * dt))
                if replica.copied >= volume.size:
                    replica.sync_state = "Synced"
                changed = changed or volume.progress(replica) != before or replica.sync_state == "Synced"
        return changed

    def fault_replica(self, volume: str, pool: str, now: float) -> None:
        for replica in self.volumes[volume].replicas:
            if replica.pool == pool:
                _fault(replica, now)

    def set_pool_state(self, pool: str, state: PoolState) -> None:
        self.pools[pool].state = state


def _fault(replica: Replica, now: float) -> None:
    replica.state, replica.sync_state, replica.faulted_at = "Faulted", "Unknown", now
