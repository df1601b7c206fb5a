"""The JSON shapes of Mayastor 2.x's control-plane REST API (``/v0``), as msgspec Structs.

Field names are the wire names of the public OpenAPI document (``control-plane/rest/openapi-specs/
v0_api_spec.yaml`` in ``openebs/mayastor-control-plane``): snake_case mostly, with a few kebab-case and
camelCase exceptions spelled out with ``name=``. Only what CoucheStor reads is declared as required; the rest
is optional so newer releases that add fields still decode. The simulator encodes the same Structs, so both
sides of the wire agree by construction and the tests pin the shapes.

Pool cordoning is in no published document (release/2.7 and develop of October 2024 lack it): it follows the
design accepted upstream (OEP 3903) and the control plane's REST handlers: ``PUT``/``DELETE
/v0/pools/{pool_id}/cordon`` with a :class:`PoolCordonReq` body (``replicas``, ``snapshots``, ``restores``,
``import``); a ``PUT`` asking for constraints the pool already has, or a ``DELETE`` of a pool that is not
cordoned, answers ``AlreadyExists``. Releases without it answer 404 on those routes. A pool reports its cordon
in ``spec.cordon_drain`` (a ``cordoned`` variant carrying the same four flags); no document shows that JSON, so
:attr:`PoolSpec.cordoned_for_replicas` reads it defensively.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

VolumeStatus = Literal["Unknown", "Online", "Degraded", "Faulted", "Shutdown"]
ReplicaState = Literal["Unknown", "Online", "Degraded", "Faulted"]
ChildState = Literal["Unknown", "Online", "Degraded", "Faulted"]
PoolStatus = Literal["Unknown", "Online", "Degraded", "Faulted"]
NodeStatus = Literal["Unknown", "Online", "Offline"]
SpecStatus = Literal["Creating", "Created", "Deleting", "Deleted"]


class _Wire(msgspec.Struct, kw_only=True):
    """Unknown fields are ignored on decode; optional fields left UNSET are absent on the wire, as upstream."""


# --- volumes ------------------------------------------------------------------------------------------------


class LabelledTopology(_Wire):
    exclusion: dict[str, str] = msgspec.field(default_factory=dict)
    inclusion: dict[str, str] = msgspec.field(default_factory=dict)


class PoolTopology(_Wire):
    labelled: LabelledTopology | UnsetType = UNSET


class ExplicitNodeTopology(_Wire):
    allowed_nodes: list[str] = msgspec.field(default_factory=list)
    preferred_nodes: list[str] = msgspec.field(default_factory=list)


class NodeTopology(_Wire):
    explicit: ExplicitNodeTopology | UnsetType = UNSET
    labelled: LabelledTopology | UnsetType = UNSET


class Topology(_Wire):
    node_topology: NodeTopology | UnsetType = UNSET
    pool_topology: PoolTopology | UnsetType = UNSET


class VolumePolicy(_Wire):
    self_heal: bool = True


class VolumeTarget(_Wire):
    node: str
    protocol: str | UnsetType = UNSET


class VolumeSpec(_Wire):
    uuid: str
    size: int
    num_replicas: int
    status: SpecStatus = "Created"
    policy: VolumePolicy = msgspec.field(default_factory=VolumePolicy)
    thin: bool = False
    num_snapshots: int = 0
    topology: Topology | UnsetType = UNSET
    target: VolumeTarget | UnsetType = UNSET
    labels: dict[str, str] | UnsetType = UNSET

    @property
    def pool_inclusion(self) -> dict[str, str]:
        """The pool-label inclusion the volume was created with (empty: any pool)."""
        if self.topology is UNSET or self.topology.pool_topology is UNSET:
            return {}
        labelled = self.topology.pool_topology.labelled
        return {} if labelled is UNSET else dict(labelled.inclusion)

    @property
    def allowed_nodes(self) -> list[str]:
        """The nodes an explicit node topology restricts the replicas to (empty: any node)."""
        if self.topology is UNSET or self.topology.node_topology is UNSET:
            return []
        explicit = self.topology.node_topology.explicit
        return [] if explicit is UNSET else list(explicit.allowed_nodes)


class Child(_Wire):
    uri: str
    state: ChildState
    rebuild_progress: int | UnsetType = msgspec.field(default=UNSET, name="rebuildProgress")


class Nexus(_Wire):
    uuid: str
    node: str
    state: str
    children: list[Child] = msgspec.field(default_factory=list)
    device_uri: str = msgspec.field(default="", name="deviceUri")
    rebuilds: int = 0
    protocol: str = "none"
    size: int = 0


class ReplicaTopology(_Wire):
    state: ReplicaState
    node: str | UnsetType = UNSET
    pool: str | UnsetType = UNSET
    child_status: ChildState | UnsetType = msgspec.field(default=UNSET, name="child-status")
    child_status_reason: str | UnsetType = msgspec.field(default=UNSET, name="child-status-reason")
    rebuild_progress: int | UnsetType = msgspec.field(default=UNSET, name="rebuild-progress")


class VolumeState(_Wire):
    uuid: str
    size: int
    status: VolumeStatus
    replica_topology: dict[str, ReplicaTopology] = msgspec.field(default_factory=dict)
    target: Nexus | UnsetType = UNSET


class Volume(_Wire):
    spec: VolumeSpec
    state: VolumeState


class Volumes(_Wire):
    """One page of ``GET /v0/volumes``; ``next_token`` is absent on the last page."""

    entries: list[Volume] = msgspec.field(default_factory=list)
    next_token: int | UnsetType = UNSET


class CreateVolumeBody(_Wire):
    policy: VolumePolicy
    replicas: int
    size: int
    thin: bool
    topology: Topology | UnsetType = UNSET
    labels: dict[str, str] | UnsetType = UNSET


# --- pools --------------------------------------------------------------------------------------------------


class PoolCordonReq(_Wire):
    """Which kinds of new resources a cordon blocks (``PUT``) or stops blocking (``DELETE``)."""

    replicas: bool = False
    snapshots: bool = False
    restores: bool = False
    imports: bool = msgspec.field(default=False, name="import")


class PoolSpec(_Wire):
    id: str
    node: str
    disks: list[str] = msgspec.field(default_factory=list)
    status: SpecStatus = "Created"
    labels: dict[str, str] | UnsetType = UNSET
    #: The pool's cordon (releases with pool cordon): ``{"cordoned": {"replicas": true, ...}}``; any JSON is
    #: accepted, since no document fixes its shape.
    cordon_drain: Any = UNSET

    @property
    def cordoned_for_replicas(self) -> bool:
        """True when the pool blocks new replicas; an unreadable ``cordon_drain`` counts as blocking (the safe
        reading: the pool is then neither cordoned nor uncordoned by the backend)."""
        return cordon_blocks_replicas(self.cordon_drain)


def cordon_blocks_replicas(cordon_drain: Any) -> bool:
    """Whether a pool spec's ``cordon_drain`` blocks new replicas, reading the shapes a release may send:
    ``{"cordoned": {"replicas": true, ...}}`` (a draining variant the same way), or an unknown non-empty value."""
    if cordon_drain is UNSET or cordon_drain is None or cordon_drain == {}:
        return False
    if isinstance(cordon_drain, dict):
        for variant in cordon_drain.values():
            if isinstance(variant, dict) and isinstance(variant.get("replicas"), bool):
                if variant["replicas"]:
                    return True
            else:
                return True
        return False
    return True


class PoolState(_Wire):
    id: str
    node: str
    status: PoolStatus
    capacity: int
    used: int
    disks: list[str] = msgspec.field(default_factory=list)
    committed: int | UnsetType = UNSET


class Pool(_Wire):
    id: str
    spec: PoolSpec | UnsetType = UNSET
    state: PoolState | UnsetType = UNSET

    @property
    def labels(self) -> dict[str, str]:
        return {} if self.spec is UNSET or self.spec.labels is UNSET else dict(self.spec.labels)

    @property
    def status(self) -> PoolStatus:
        return "Unknown" if self.state is UNSET else self.state.status

    @property
    def free(self) -> int:
        return 0 if self.state is UNSET else max(self.state.capacity - self.state.used, 0)


# --- nodes --------------------------------------------------------------------------------------------------


class CordonedState(_Wire):
    cordonlabels: list[str] = msgspec.field(default_factory=list)


class DrainState(_Wire):
    cordonlabels: list[str] = msgspec.field(default_factory=list)
    drainlabels: list[str] = msgspec.field(default_factory=list)


class CordonDrainState(_Wire):
    """One of: cordoned, draining (cordoned, replicas being moved off) or drained (cordoned, empty)."""

    cordonedstate: CordonedState | UnsetType = UNSET
    drainingstate: DrainState | UnsetType = UNSET
    drainedstate: DrainState | UnsetType = UNSET

    @property
    def cordon_labels(self) -> list[str]:
        """The node's cordon labels, whichever state carries them (a draining or drained node is cordoned)."""
        for state in (self.cordonedstate, self.drainingstate, self.drainedstate):
            if state is not UNSET:
                return list(state.cordonlabels)
        return []


class NodeSpec(_Wire):
    id: str
    grpc_endpoint: str = msgspec.field(default="", name="grpcEndpoint")
    labels: dict[str, str] | UnsetType = UNSET
    cordondrainstate: CordonDrainState | UnsetType = UNSET


class NodeState(_Wire):
    id: str
    status: NodeStatus
    grpc_endpoint: str = msgspec.field(default="", name="grpcEndpoint")


class Node(_Wire):
    id: str
    spec: NodeSpec | UnsetType = UNSET
    state: NodeState | UnsetType = UNSET


# --- errors -------------------------------------------------------------------------------------------------


class RestJsonError(_Wire):
    """The body of every 4xx/5xx answer."""

    kind: str
    details: str = ""
    message: str = ""


__all__ = [
    "Child",
    "CordonDrainState",
    "CordonedState",
    "CreateVolumeBody",
    "DrainState",
    "LabelledTopology",
    "Nexus",
    "Node",
    "NodeSpec",
    "NodeState",
    "NodeTopology",
    "Pool",
    "PoolCordonReq",
    "PoolSpec",
    "PoolState",
    "PoolTopology",
    "ReplicaTopology",
    "RestJsonError",
    "Topology",
    "Volume",
    "VolumePolicy",
    "VolumeSpec",
    "VolumeState",
    "VolumeTarget",
    "Volumes",
    "cordon_blocks_replicas",
]
