"""Mayastor resources: ``MayastorVolume`` (the seeds' backend) and ``DiskPool`` (real Mayastor 2.x).

``MayastorVolume`` (``openebs.io/v1``, namespaced, default namespace ``mayastor``) is the volume resource of
Mayastor's older MOAC control plane that the seeds describe; its name is the PV's CSI volume handle (the
volume UUID). Current Mayastor 2.x has no such resource: its volumes live behind the control-plane REST API.

``DiskPool`` (``openebs.io/v1beta2``, namespaced, short name ``dsp``) is the real 2.x resource. Its status is
snake_case on the wire (``pool_status``, ``cr_state``); the seeds' simplified ``status.state`` with quantity
strings is accepted too, so either shape decodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from k8s_schemas.meta import Base, CachedObjectMeta, ObjectMeta
from k8s_schemas.quantity import parse_quantity

GROUP = "openebs.io"
MAYASTOR_VOLUME_VERSION = "v1"
DISKPOOL_VERSION = "v1beta2"

_NO_LABELS: Mapping[str, str] = MappingProxyType({})

ReplicaState = Literal["Online", "Degraded", "Faulted", "Unknown"]
SyncState = Literal["Unknown", "Syncing", "Synced"]


class LabelledTopology(Base):
    inclusion: dict[str, str] | UnsetType = UNSET
    exclusion: dict[str, str] | UnsetType = UNSET


class PoolTopology(Base):
    labelled: LabelledTopology | UnsetType = UNSET


class ExplicitNodeTopology(Base):
    allowed_nodes: list[str] | UnsetType = UNSET


class NodeTopology(Base):
    explicit: ExplicitNodeTopology | UnsetType = UNSET


class VolumeTopology(Base):
    pool: PoolTopology | UnsetType = UNSET
    node: NodeTopology | UnsetType = UNSET


class MayastorVolumeSpec(Base):
    num_replicas: int = 1
    size: int | UnsetType = UNSET
    topology: VolumeTopology | UnsetType = UNSET

    @property
    def inclusion(self) -> Mapping[str, str]:
        """The pool-label inclusion of the topology (empty when the volume has none). Not a copy: the views of
        100,000 volumes share their objects' mappings, as they share their claims' labels."""
        if self.topology is UNSET or self.topology.pool is UNSET or self.topology.pool.labelled is UNSET:
            return _NO_LABELS
        inc = self.topology.pool.labelled.inclusion
        return _NO_LABELS if inc is UNSET else inc

    @property
    def allowed_nodes(self) -> frozenset[str] | None:
        """The only nodes the volume's replicas may be placed on, or None when any node will do."""
        if self.topology is UNSET or self.topology.node is UNSET or self.topology.node.explicit is UNSET:
            return None
        nodes = self.topology.node.explicit.allowed_nodes
        return None if nodes is UNSET or not nodes else frozenset(nodes)


class ReplicaStatus(Base):
    """One replica as the operator reads it: where it is and whether it holds a complete copy."""

    pool: str
    node: str | UnsetType = UNSET
    state: ReplicaState = "Unknown"
    sync_state: SyncState = "Unknown"
    rebuild_progress: int | UnsetType = UNSET

    @property
    def healthy(self) -> bool:
        """Online and fully synced: a complete copy of the data."""
        return self.state == "Online" and self.sync_state == "Synced"


class MayastorVolumeStatus(Base):
    """The status the operator decodes: what it decides on. The control plane writes more (each replica's
    ``uuid`` and ``uri``, the ``nexus``), which decoding skips: at 100,000 cached volumes those strings would
    cost tens of MiB and nothing reads them. The full shape, for the CRD schema, is
    :class:`MayastorVolumeStatusSchema`."""

    state: str | UnsetType = UNSET
    size: int | UnsetType = UNSET
    replicas: tuple[ReplicaStatus, ...] = ()


# A replica as the control plane writes it (see :class:`MayastorVolumeStatus`).
class PublishedReplicaStatus(ReplicaStatus):
    uuid: str | UnsetType = UNSET
    uri: str | UnsetType = UNSET


class NexusStatus(Base):
    node: str | UnsetType = UNSET
    state: str | UnsetType = UNSET


class MayastorVolumeStatusSchema(MayastorVolumeStatus):
    """``status`` as the control plane writes it: the CRD's schema (see :class:`MayastorVolumeStatus`)."""

    replicas: tuple[PublishedReplicaStatus, ...] = ()
    nexus: NexusStatus | UnsetType = UNSET


class MayastorVolume(Base):
    # Literals (the one version the operator reads): every cached volume shares the two strings instead of
    # holding its own copies. Kept equal to GROUP and MAYASTOR_VOLUME_VERSION (tests/unit/test_schemas.py).
    api_version: Literal["openebs.io/v1"] = "openebs.io/v1"
    kind: Literal["MayastorVolume"] = "MayastorVolume"
    metadata: CachedObjectMeta = msgspec.field(default_factory=CachedObjectMeta)
    spec: MayastorVolumeSpec = msgspec.field(default_factory=MayastorVolumeSpec)
    status: MayastorVolumeStatus | UnsetType = UNSET

    @property
    def replicas(self) -> tuple[ReplicaStatus, ...]:
        return () if self.status is UNSET else self.status.replicas


class PublishedMayastorVolume(MayastorVolume):
    """A MayastorVolume with everything its control plane writes in ``status`` (the simulator reads the
    replicas' UUIDs when it adopts a volume it did not create)."""

    status: MayastorVolumeStatusSchema | UnsetType = UNSET


class DiskPoolTopology(Base):
    labelled: dict[str, str] | UnsetType = UNSET


class DiskPoolSpec(Base):
    node: str = ""
    disks: list[str] = msgspec.field(default_factory=list)
    topology: DiskPoolTopology | UnsetType = UNSET


PoolState = Literal["Unknown", "Online", "Degraded", "Faulted", "Offline"]


class DiskPoolStatus(Base, rename=None):
    """Pool health and size. Real 2.x names are snake_case; state is the seeds' spelling of pool_status."""

    cr_state: str | UnsetType = UNSET
    pool_status: PoolState | UnsetType = UNSET
    state: PoolState | UnsetType = UNSET
    capacity: int | str | UnsetType = UNSET
    used: int | str | UnsetType = UNSET
    available: int | str | UnsetType = UNSET


class DiskPool(Base):
    api_version: str = f"{GROUP}/{DISKPOOL_VERSION}"
    kind: str = "DiskPool"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: DiskPoolSpec = msgspec.field(default_factory=DiskPoolSpec)
    status: DiskPoolStatus | UnsetType = UNSET

    @property
    def health(self) -> PoolState:
        """``pool_status`` (2.x) or ``state`` (seeds); Unknown when neither is reported yet."""
        if self.status is UNSET:
            return "Unknown"
        if self.status.pool_status is not UNSET:
            return self.status.pool_status
        return "Unknown" if self.status.state is UNSET else self.status.state

    def _bytes(self, value: int | str | UnsetType) -> int | None:
        if value is UNSET:
            return None
        try:
            return parse_quantity(value)
        except ValueError:
            return None

    @property
    def capacity_bytes(self) -> int | None:
        return None if self.status is UNSET else self._bytes(self.status.capacity)

    @property
    def used_bytes(self) -> int | None:
        return None if self.status is UNSET else self._bytes(self.status.used)

    @property
    def free_bytes(self) -> int | None:
        """Bytes still free: ``available`` when reported, else capacity - used; None when unknown."""
        if self.status is UNSET:
            return None
        available = self._bytes(self.status.available)
        if available is not None:
            return available
        capacity, used = self.capacity_bytes, self.used_bytes
        return None if capacity is None or used is None else max(capacity - used, 0)

    @property
    def topology_labels(self) -> dict[str, str]:
        """Labels Mayastor's topology matching sees: the metadata labels overlaid by ``spec.topology.labelled``."""
        labels = {} if self.metadata.labels is UNSET else dict(self.metadata.labels)
        if self.spec.topology is not UNSET and self.spec.topology.labelled is not UNSET:
            labels.update(self.spec.topology.labelled)
        return labels
