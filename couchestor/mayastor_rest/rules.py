"""Mayastor 2.x's placement and removal rules as the operator needs them: pure functions over wire data.

- :func:`replicas` turns a volume's ``replica_topology`` into the backend interface's replicas;
- :func:`pools_to_cordon`: the pools that could receive a new replica of a volume other than the chosen
  one (those are cordoned while the replica is placed, and only those);
- :func:`nodes_to_cordon`: the same fence by node, for releases without pool cordon;
- :func:`predicted_victim`: the replica the control plane would drop on scale-down.

Whether a volume's creation topology pins it to a tier is the decisions' rule (``skip:topology-pinned`` in
:mod:`couchestor.tiering.decide`, with ``fixed_topology``), fed by :mod:`.mirror`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping

import msgspec
from msgspec import UNSET

from couchestor.labels import includes
from couchestor.mayastor_rest import wire
from couchestor.migration.backend import ReplicaInfo

#: Pool states the control plane places replicas on (it skips Faulted and Unknown pools).
USABLE_POOL_STATES = frozenset({"Online", "Degraded"})
_UNHEALTH = {"Faulted": 0, "Unknown": 1, "Degraded": 2, "Online": 3}


def published(volume: wire.Volume) -> bool:
    """Whether the volume has (or is meant to have) a target: a publish asked for (``spec.target``) or a nexus
    running (``state.target``). Only a volume with neither is unpublished."""
    return volume.spec.target is not UNSET or volume.state.target is not UNSET


def replica_info(topo: wire.ReplicaTopology, *, is_published: bool = True) -> ReplicaInfo:
    """One replica as the backend interface sees it, synced as Mayastor means it.

    A published volume's replica is as its target sees the child (``child-status``): Online is Synced, Degraded
    is Syncing (with its rebuild progress), and a replica the target does not report on yet is Unknown, never a
    complete copy. An unpublished volume (``is_published`` False) has no target and no I/O, so nothing can make
    its replicas diverge and nothing rebuilds them: a replica that is Online is Synced. (On publish Mayastor
    opens the nexus on the replicas it last knew healthy and rebuilds the others; on scale-down it drops those
    first, so a replica added while unpublished is never kept in place of one that holds the data.)
    """
    child = topo.child_status if topo.child_status is not UNSET else None
    progress = topo.rebuild_progress if topo.rebuild_progress is not UNSET else None
    if not is_published and child is None:
        sync = "Synced" if topo.state == "Online" else "Unknown"
    elif child == "Online" and topo.state == "Online":
        sync = "Synced"
    elif child == "Degraded" and topo.state == "Online":
        sync = "Syncing"
    else:
        sync = "Unknown"
    return ReplicaInfo(
        pool=topo.pool if topo.pool is not UNSET else "",
        node=topo.node if topo.node is not UNSET else "",
        state=topo.state,
        sync_state=sync,
        progress=progress if sync == "Syncing" else None,
    )


def replicas(volume: wire.Volume) -> tuple[ReplicaInfo, ...]:
    """The volume's replicas (see :func:`replica_info`), by pool name."""
    is_published = published(volume)
    infos = (replica_info(t, is_published=is_published) for t in volume.state.replica_topology.values())
    return tuple(sorted(infos, key=lambda r: r.pool))


def digest(volume: wire.Volume) -> str:
    """A short fingerprint of everything about ``volume`` a migration looks at."""
    relevant = (volume.spec.num_replicas, volume.state.status, volume.state.replica_topology)
    return hashlib.sha256(msgspec.json.encode(relevant, order="sorted")).hexdigest()[:16]


def pools_to_cordon(volume: wire.Volume, pools: Iterable[wire.Pool], target: str) -> list[str]:
    """Pools besides ``target`` that could receive a new replica of ``volume`` and are not cordoned yet.

    Eligible as the control plane sees it: usable state, room for the volume, no replica of the volume yet,
    labels matching the volume's creation topology. Pools already cordoned (by anyone) are left alone, so
    lifting our cordons never lifts somebody else's.
    """
    held = {t.pool for t in volume.state.replica_topology.values() if t.pool is not UNSET}
    inclusion = volume.spec.pool_inclusion
    out = []
    for pool in pools:
        if pool.id == target or pool.id in held:
            continue
        if pool.spec is not UNSET and pool.spec.cordoned_for_replicas:
            continue
        if pool.status not in USABLE_POOL_STATES or pool.free < volume.spec.size:
            continue
        if includes(pool.labels, inclusion):
            out.append(pool.id)
    return sorted(out)


def pool_node(pool: wire.Pool) -> str:
    """The node a pool lives on (its state's, else its spec's; empty when neither says)."""
    if pool.state is not UNSET:
        return pool.state.node
    return pool.spec.node if pool.spec is not UNSET else ""


def nodes_to_cordon(volume: wire.Volume, pools: Iterable[wire.Pool], target: str) -> list[str] | None:
    """The nodes to cordon so that a new replica of ``volume`` can only go to ``target``, on a release without
    pool cordon: the node of every pool :func:`pools_to_cordon` names. None when one of them is ``target``'s own
    node (a node cordon blocks every pool of the node, the target too), or a pool's node is unknown: the replica
    cannot be steered then.
    """
    pools = list(pools)
    node_of = {p.id: pool_node(p) for p in pools}
    nodes = {node_of[p] for p in pools_to_cordon(volume, pools, target)}
    if "" in nodes or node_of.get(target, "") in nodes:
        return None
    return sorted(nodes)


def cordoned_nodes(nodes: Iterable[wire.Node]) -> set[str]:
    out = set()
    for node in nodes:
        spec = node.spec
        if spec is UNSET or spec.cordondrainstate is UNSET:
            continue
        if spec.cordondrainstate.cordon_labels:
            out.add(node.id)
    return out


def predicted_victim(
    volume: wire.Volume, pool_labels: Mapping[str, Mapping[str, str]], nodes_cordoned: Collection[str]
) -> str | None:
    """The pool of the replica Mayastor 2.x drops when the count goes down by one, or None if none can go.

    Its order: unhealthy first (Faulted, Unknown, then rebuilding, the least rebuilt first), then healthy replicas outside the creation topology,
    then those on cordoned nodes, then those remote from the target (nexus) before the local one; a healthy
    replica only goes while more healthy replicas than the new count remain. Ties (which upstream leaves to
    its internal ordering) are broken by replica id here; callers verify what actually happened.
    """
    target = volume.state.target
    nexus_node = target.node if target is not UNSET else None
    inclusion = volume.spec.pool_inclusion
    is_published = published(volume)
    unhealthy: list[tuple[int, int, str, str]] = []
    healthy: list[tuple[bool, bool, bool, str, str]] = []
    for rid, topo in volume.state.replica_topology.items():
        pool = topo.pool if topo.pool is not UNSET else ""
        node = topo.node if topo.node is not UNSET else ""
        progress = topo.rebuild_progress if topo.rebuild_progress is not UNSET else 0
        if replica_info(topo, is_published=is_published).sync_state == "Synced":
            fits = includes(pool_labels.get(pool, {}), inclusion)
            healthy.append((fits, node not in nodes_cordoned, node == nexus_node, rid, pool))
        else:
            unhealthy.append((_UNHEALTH.get(topo.state, 1), progress, rid, pool))
    if unhealthy:
        return min(unhealthy)[3]
    if len(healthy) > volume.spec.num_replicas - 1 and healthy:
        return min(healthy)[4]
    return None


__all__ = [
    "USABLE_POOL_STATES",
    "cordoned_nodes",
    "digest",
    "nodes_to_cordon",
    "pool_node",
    "pools_to_cordon",
    "predicted_victim",
    "published",
    "replica_info",
    "replicas",
]
