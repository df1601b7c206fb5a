"""The simulated Mayastor 2.x control plane: volumes, pools, nodes and cordons, as plain state (no I/O).

It reuses the placement, rebuild and fault model of :mod:`couchestor.sim.mayastor.model` and adds what 2.x
does differently:

- a volume's pool topology is fixed when it is created; only the replica count changes
  (``set_replica_count``, one step at a time, like ``PUT /v0/volumes/{id}/replica_count/{n}``);
- a new replica never goes to a pool cordoned for replicas (pool cordon, newer releases) or a cordoned node;
- on scale-down the control plane picks the victim itself
  (:func:`~couchestor.sim.mayastor.model.choose_victims_2x`): unhealthy first, then outside the topology, then
  on cordoned nodes, then remote from the volume target;
- ``misremove`` is a fault knob: the next scale-downs drop the newest replica whatever the rules say, as an
  unmodelled criterion of a real release could;
- ``release`` plays one of two releases: ``"2.7"`` (and earlier) has no pool cordon, so its routes answer 404
  with an empty body, as an unknown route does; ``"2.8+"`` has it and reports it in the pool spec as
  ``cordon_drain: {"cordoned": {...}}``;
- an unpublished volume (``published=False``: no target, so no nexus) reports its replicas' states only; a
  replica added to it is complete as soon as it is open, since there is no nexus to rebuild it through.

Every mutation returns normally or raises :class:`RestError` carrying the HTTP status and the ``kind`` of
upstream's ``RestJsonError``, with the status the control plane maps that kind to (:data:`STATUS_OF`): a
precondition not met (the replica count already set, a change by more than one, a scale-up of a volume that is
not Online, a node cordon label already there or not there) is 412 FailedPrecondition; a pool cordon already
placed, or lifting one that is not there, 422 AlreadyExists. ``changed`` collects the volumes and pools whose state changed, for the caller to
publish (DiskPool status, the invariant checker).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from msgspec import UNSET

from couchestor.mayastor_rest import wire
from couchestor.sim.mayastor.model import (
    FAULTED_GRACE,
    Cluster,
    Pool,
    Replica,
    Volume,
    choose_pool,
    choose_victims_2x,
)

__all__ = ["RELEASES", "STATUS_OF", "ControlPlane", "Release", "RestError"]

Release = Literal["2.7", "2.8+"]
#: The releases the simulator plays: without pool cordon (2.7 and earlier) and with it (later).
RELEASES: tuple[Release, ...] = ("2.7", "2.8+")

#: HTTP status of each error kind, as the control plane's REST service maps them.
STATUS_OF = {
    "InvalidArgument": 400,
    "Deserialize": 400,
    "Unauthenticated": 401,
    "NotFound": 404,
    "Conflict": 409,
    "FailedPrecondition": 412,
    "AlreadyExists": 422,
    "Internal": 500,
    "Unavailable": 503,
    "ResourceExhausted": 507,
}

_REPLICA_NS = uuid.UUID("9b7f1f5e-3f43-4c36-8a37-7d0a1c2e6b10")


class RestError(Exception):
    """An error answer; the status is the one :data:`STATUS_OF` maps ``kind`` to unless given."""

    def __init__(self, kind: str, details: str, status: int | None = None) -> None:
        super().__init__(details)
        self.status = STATUS_OF[kind] if status is None else status
        self.kind = kind
        self.details = details

    def body(self) -> wire.RestJsonError:
        return wire.RestJsonError(kind=self.kind, details=self.details, message=self.details)


@dataclass
class _VolumeExtra:
    topology: wire.Topology | None
    thin: bool = False


@dataclass
class ControlPlane:
    """All simulated control-plane state; ``now`` is simulated seconds supplied by the caller."""

    cluster: Cluster = field(default_factory=Cluster)
    pool_cordons: dict[str, wire.PoolCordonReq] = field(default_factory=dict)
    node_cordons: dict[str, set[str]] = field(default_factory=dict)
    #: Fault knob: this many coming scale-downs remove the newest replica, ignoring the rules.
    misremove: int = 0
    #: The release played: "2.7" has no pool cordon (its routes answer 404), "2.8+" has it.
    release: Release = "2.8+"
    changed_volumes: set[str] = field(default_factory=set)
    changed_pools: set[str] = field(default_factory=set)
    _extra: dict[str, _VolumeExtra] = field(default_factory=dict)

    # --- pools and nodes ----------------------------------------------------------------------------------

    def add_pool(self, pool: Pool) -> None:
        self.cluster.pools[pool.name] = pool
        self.changed_pools.add(pool.name)

    def pool(self, pool_id: str) -> Pool:
        pool = self.cluster.pools.get(pool_id)
        if pool is None:
            raise RestError("NotFound", f"Pool '{pool_id}' not found")
        return pool

    def cordon_pool(self, pool_id: str, req: wire.PoolCordonReq) -> None:
        self._cordon_support()
        self.pool(pool_id)
        old = self.pool_cordons.get(pool_id, wire.PoolCordonReq())
        if all(getattr(old, f) for f in ("replicas", "snapshots", "restores", "imports") if getattr(req, f)):
            raise RestError("AlreadyExists", f"Pool '{pool_id}' is already cordoned for these resources")
        self.pool_cordons[pool_id] = wire.PoolCordonReq(
            replicas=old.replicas or req.replicas,
            snapshots=old.snapshots or req.snapshots,
            restores=old.restores or req.restores,
            imports=old.imports or req.imports,
        )

    def uncordon_pool(self, pool_id: str, req: wire.PoolCordonReq) -> None:
        """Lift the cordons ``req`` names; a request naming none lifts them all (as the plugin does)."""
        self._cordon_support()
        self.pool(pool_id)
        old = self.pool_cordons.get(pool_id)
        if old is None:
            raise RestError("AlreadyExists", f"Pool '{pool_id}' is not cordoned")
        if not (req.replicas or req.snapshots or req.restores or req.imports):
            req = wire.PoolCordonReq(replicas=True, snapshots=True, restores=True, imports=True)
        new = wire.PoolCordonReq(
            replicas=old.replicas and not req.replicas,
            snapshots=old.snapshots and not req.snapshots,
            restores=old.restores and not req.restores,
            imports=old.imports and not req.imports,
        )
        if new == wire.PoolCordonReq():
            del self.pool_cordons[pool_id]
        else:
            self.pool_cordons[pool_id] = new

    @property
    def cordon_supported(self) -> bool:
        return self.release != "2.7"

    def _cordon_support(self) -> None:
        if not self.cordon_supported:
            raise RestError("NotFound", "", status=404)  # an unknown route: the app answers an empty body

    def nodes(self) -> list[str]:
        return sorted({p.node for p in self.cluster.pools.values()} | set(self.node_cordons))

    def cordon_node(self, node: str, label: str) -> None:
        if node not in self.nodes():
            raise RestError("NotFound", f"Node '{node}' not found")
        if label in self.node_cordons.get(node, ()):
            raise RestError("FailedPrecondition", f"Node '{node}' is already cordoned with label '{label}'")
        self.node_cordons.setdefault(node, set()).add(label)

    def uncordon_node(self, node: str, label: str) -> None:
        if node not in self.nodes():
            raise RestError("NotFound", f"Node '{node}' not found")
        labels = self.node_cordons.get(node)
        if labels is None or label not in labels:
            raise RestError("FailedPrecondition", f"Node '{node}' is not cordoned with label '{label}'")
        labels.discard(label)
        if not labels:
            del self.node_cordons[node]

    def cordoned_nodes(self) -> set[str]:
        return {node for node, labels in self.node_cordons.items() if labels}

    # --- volumes ------------------------------------------------------------------------------------------

    def create_volume(
        self,
        volume_id: str,
        *,
        size: int,
        replicas: int,
        topology: wire.Topology | None,
        now: float,
        pools: Sequence[str] = (),
        published: bool = True,
    ) -> Volume:
        """A new (empty) volume with its replicas placed and in sync at once; idempotent for an existing id.

        ``pools`` places the first replicas on those pools (a test and demo convenience: real placement is
        what a StorageClass topology or chance made of it); the rest are placed by the rules. ``published``:
        the volume has a target (a nexus on its first replica's node), as while an application uses it.
        """
        existing = self.cluster.volumes.get(volume_id)
        if existing is not None:
            return existing
        if replicas < 1:
            raise RestError("InvalidArgument", "a volume needs at least one replica")
        inclusion = _inclusion(topology)
        volume = Volume(volume_id, "", size, replicas, inclusion)
        for i in range(replicas):
            pool = self.cluster.pools.get(pools[i]) if i < len(pools) else self._placement(volume)
            if pool is None:
                self._drop(volume)
                raise RestError("ResourceExhausted", f"Not enough suitable pools for volume {volume_id}")
            replica = Replica(self.cluster.new_uuid(volume_id), pool.name, pool.node, "Online", "Synced")
            replica.copied, replica.created_at = size, now
            volume.replicas.append(replica)
            pool.used += size
        volume.provisioned = True
        volume.nexus_node = volume.replicas[0].node if published else None
        self.cluster.volumes[volume_id] = volume
        self._extra[volume_id] = _VolumeExtra(topology)
        self._touch(volume)
        return volume

    def delete_volume(self, volume_id: str) -> None:
        """Destroy a volume and free its replicas (what ``DELETE /v0/volumes/{id}`` does); idempotent."""
        volume = self.cluster.volumes.pop(volume_id, None)
        if volume is not None:
            self._drop(volume)
            self._extra.pop(volume_id, None)

    def volume(self, volume_id: str) -> Volume:
        volume = self.cluster.volumes.get(volume_id)
        if volume is None:
            raise RestError("NotFound", f"Volume '{volume_id}' not found")
        return volume

    def set_replica_count(self, volume_id: str, count: int, now: float) -> Volume:
        """Change the replica count by one, placing or removing one replica as the 2.x rules say."""
        volume = self.volume(volume_id)
        if count < 1 or count > 255:
            raise RestError("InvalidArgument", f"invalid replica count {count}")
        if count == volume.num_replicas:
            raise RestError("FailedPrecondition", f"Volume '{volume_id}' already has {count} replicas")
        if abs(count - volume.num_replicas) != 1:
            raise RestError(
                "FailedPrecondition", "the replica count can only change by one replica at a time"
            )
        if count > volume.num_replicas and volume.state != "Online":
            raise RestError(
                "FailedPrecondition",
                f"Volume '{volume_id}' is {volume.state}: replicas are added only when Online",
            )
        if count > volume.num_replicas:
            pool = self._placement(volume)
            if pool is None:
                raise RestError("ResourceExhausted", f"Not enough suitable pools for volume {volume_id}")
            volume.num_replicas = count
            volume.replicas.append(
                Replica(self.cluster.new_uuid(volume_id), pool.name, pool.node, created_at=now)
            )
            pool.used += volume.size
            self.changed_pools.add(pool.name)
        else:
            volume.num_replicas = count  # the victim rules count healthy replicas against the new count
            victims = self._victims(volume, 1)
            if not victims:
                volume.num_replicas = count + 1
                raise RestError(
                    "FailedPrecondition", f"no replica of volume '{volume_id}' can be removed safely"
                )
            self._remove(volume, victims[0])
        self._touch(volume)
        return volume

    def _victims(self, volume: Volume, count: int) -> list[Replica]:
        if self.misremove > 0:
            self.misremove -= 1
            return volume.replicas[-count:]
        return choose_victims_2x(
            volume,
            self.cluster.pools,
            count,
            nexus_node=volume.nexus_node,
            cordoned_nodes=self.cordoned_nodes(),
        )

    def _placement(self, volume: Volume) -> Pool | None:
        cordoned = self.cordoned_nodes()
        candidates = [
            p
            for p in self.cluster.pools.values()
            if not self.pool_cordons.get(p.name, wire.PoolCordonReq()).replicas
            and p.node not in cordoned
            and p.node not in self.cluster.down_nodes
        ]
        return choose_pool(volume, candidates)

    def _remove(self, volume: Volume, replica: Replica) -> None:
        volume.replicas.remove(replica)
        pool = self.cluster.pools.get(replica.pool)
        if pool is not None:
            pool.used = max(pool.used - volume.size, 0)
            self.changed_pools.add(pool.name)

    def _drop(self, volume: Volume) -> None:
        for replica in list(volume.replicas):
            self._remove(volume, replica)

    def _touch(self, volume: Volume) -> None:
        self.changed_volumes.add(volume.name)

    # --- time and faults ----------------------------------------------------------------------------------

    def advance(self, now: float, dt: float) -> None:
        """Rebuild progress and faults for ``dt`` simulated seconds, then self-healing (replace faulted
        replicas after their grace period, place missing ones)."""
        for volume in self.cluster.volumes.values():
            before = _fingerprint(volume)
            self.cluster.advance(volume, now, dt)
            if volume.nexus_node is None:
                # No nexus, nothing to rebuild through: an open replica of an unpublished volume is complete.
                for replica in volume.replicas:
                    if replica.state == "Online" and replica.sync_state == "Syncing":
                        replica.sync_state, replica.copied = "Synced", volume.size
            self._heal(volume, now)
            if _fingerprint(volume) != before:
                self._touch(volume)

    def _heal(self, volume: Volume, now: float) -> None:
        for replica in list(volume.replicas):
            if replica.faulted_at is not None and now - replica.faulted_at >= FAULTED_GRACE:
                self._remove(volume, replica)
        for _ in range(max(volume.num_replicas - len(volume.replicas), 0)):
            pool = self._placement(volume)
            if pool is None:
                break
            volume.replicas.append(
                Replica(self.cluster.new_uuid(volume.name), pool.name, pool.node, created_at=now)
            )
            pool.used += volume.size
            self.changed_pools.add(pool.name)

    def fault_replica(self, volume_id: str, pool: str, now: float) -> None:
        self.cluster.fault_replica(volume_id, pool, now)
        self._touch(self.volume(volume_id))

    # --- rendering ----------------------------------------------------------------------------------------

    def replica_id(self, replica: Replica) -> str:
        return str(uuid.uuid5(_REPLICA_NS, replica.uuid))

    def render_volume(self, volume: Volume) -> wire.Volume:
        extra = self._extra.get(volume.name) or _VolumeExtra(_topology_of(volume.inclusion))
        topology: dict[str, wire.ReplicaTopology] = {}
        children: list[wire.Child] = []
        for r in volume.replicas:
            child_state = _child_state(r)
            progress = volume.progress(r) if r.sync_state == "Syncing" else None
            published = volume.nexus_node is not None
            topology[self.replica_id(r)] = wire.ReplicaTopology(
                state=r.state if r.state != "Degraded" else "Online",
                node=r.node,
                pool=r.pool,
                # Only a target reports on its children: an unpublished volume has replica states alone.
                child_status=child_state if published else UNSET,
                rebuild_progress=UNSET if progress is None or not published else progress,
            )
            uri = f"nvmf://{r.node}:8420/nqn.2019-05.io.openebs:{self.replica_id(r)}"
            children.append(
                wire.Child(
                    uri=uri, state=child_state, rebuild_progress=UNSET if progress is None else progress
                )
            )
        status = volume.state
        spec = wire.VolumeSpec(
            uuid=volume.name,
            size=volume.size,
            num_replicas=volume.num_replicas,
            thin=extra.thin,
            topology=UNSET if extra.topology is None else extra.topology,
            target=wire.VolumeTarget(node=volume.nexus_node, protocol="nvmf") if volume.nexus_node else UNSET,
        )
        state = wire.VolumeState(uuid=volume.name, size=volume.size, status=status, replica_topology=topology)  # type: ignore[arg-type]
        if volume.nexus_node:
            state.target = wire.Nexus(
                uuid=str(uuid.uuid5(_REPLICA_NS, "nexus/" + volume.name)),
                node=volume.nexus_node,
                state=status if status != "Faulted" else "Faulted",
                children=children,
                device_uri=f"nvmf://{volume.nexus_node}:8420/nqn.2019-05.io.openebs:{volume.name}",
                rebuilds=sum(1 for r in volume.replicas if r.sync_state == "Syncing"),
                protocol="nvmf",
                size=volume.size,
            )
        return wire.Volume(spec=spec, state=state)

    def volumes_page(self, max_entries: int, starting_token: int) -> wire.Volumes:
        """Volumes in id order from offset ``starting_token``; ``max_entries`` 0 means all of them."""
        ids = sorted(self.cluster.volumes)
        end = len(ids) if max_entries <= 0 else starting_token + max_entries
        page = wire.Volumes(
            entries=[self.render_volume(self.cluster.volumes[i]) for i in ids[starting_token:end]]
        )
        if end < len(ids):
            page.next_token = end
        return page

    def render_pool(self, pool: Pool) -> wire.Pool:
        cordon = self.pool_cordons.get(pool.name)
        disks = [f"aio:///dev/disk/by-id/{pool.name}"]
        spec = wire.PoolSpec(id=pool.name, node=pool.node, disks=disks, labels=dict(pool.labels))
        if cordon is not None:
            spec.cordon_drain = {"cordoned": msgspec.to_builtins(cordon)}
        status: wire.PoolStatus = pool.state if pool.state != "Offline" else "Unknown"
        state = wire.PoolState(
            id=pool.name,
            node=pool.node,
            status=status,
            capacity=pool.capacity,
            used=pool.used,
            disks=disks,
            committed=pool.used,
        )
        return wire.Pool(id=pool.name, spec=spec, state=state)

    def render_node(self, node: str) -> wire.Node:
        labels = sorted(self.node_cordons.get(node, ()))
        spec = wire.NodeSpec(id=node, grpc_endpoint=f"{node}:10124")
        if labels:
            spec.cordondrainstate = wire.CordonDrainState(
                cordonedstate=wire.CordonedState(cordonlabels=labels)
            )
        status: wire.NodeStatus = "Offline" if node in self.cluster.down_nodes else "Online"
        return wire.Node(
            id=node, spec=spec, state=wire.NodeState(id=node, status=status, grpc_endpoint=f"{node}:10124")
        )

    def pools_rendered(self, names: Iterable[str] | None = None) -> list[wire.Pool]:
        chosen = sorted(self.cluster.pools) if names is None else names
        return [self.render_pool(self.cluster.pools[n]) for n in chosen if n in self.cluster.pools]


def _inclusion(topology: wire.Topology | None) -> dict[str, str]:
    if topology is None:
        return {}
    return wire.VolumeSpec(uuid="", size=0, num_replicas=1, topology=topology).pool_inclusion


def _topology_of(inclusion: dict[str, str]) -> wire.Topology | None:
    """The creation topology of a volume made outside the API (tests), from its pool inclusion."""
    if not inclusion:
        return None
    labelled = wire.LabelledTopology(inclusion=dict(inclusion))
    return wire.Topology(pool_topology=wire.PoolTopology(labelled=labelled))


def _child_state(replica: Replica) -> wire.ChildState:
    if replica.state == "Faulted":
        return "Faulted"
    if replica.healthy:
        return "Online"
    return "Degraded" if replica.state == "Online" else "Unknown"


def _fingerprint(volume: Volume) -> tuple[object, ...]:
    return (
        volume.num_replicas,
        tuple((r.uuid, r.state, r.sync_state, volume.progress(r)) for r in volume.replicas),
    )
