"""Core (``v1``), ``coordination.k8s.io/v1`` and ``events.k8s.io/v1`` kinds, as far as CoucheStor uses them.

The PV and PVC declare only the fields the operator (or the simulators) read: the watch caches hold one of
each per volume, so every field declared is kept, decoded, 100,000 times (fields not declared are skipped
when decoding; the operator changes these objects only by merge patches, so nothing it writes loses them).
Structs stand where the API has a map of a few known keys (a PV's capacity): a dict of one entry costs
about 240 bytes more."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from k8s_schemas.meta import Base, CachedObjectMeta, ObjectMeta, ObjectReference
from k8s_schemas.quantity import parse_quantity


class CSIPersistentVolumeSource(Base):
    driver: str
    volume_handle: str


class Capacity(Base):
    """A PV's ``spec.capacity`` (a ResourceList): only ``storage`` means anything for a PV."""

    storage: str | UnsetType = UNSET


class ClaimReference(Base):
    """A PV's ``spec.claimRef``: the claim it is bound to (``uid`` tells a claim recreated under the same name)."""

    namespace: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    uid: str | UnsetType = UNSET


class PersistentVolumeSpec(Base):
    storage_class_name: str | UnsetType = UNSET
    capacity: Capacity | UnsetType = UNSET
    csi: CSIPersistentVolumeSource | UnsetType = UNSET
    claim_ref: ClaimReference | UnsetType = UNSET


class PersistentVolume(Base):
    # Literals: every decoded object shares the one string instead of holding its own copy.
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolume"] = "PersistentVolume"
    metadata: CachedObjectMeta = msgspec.field(default_factory=CachedObjectMeta)
    spec: PersistentVolumeSpec = msgspec.field(default_factory=PersistentVolumeSpec)

    @property
    def volume_handle(self) -> str | None:
        """The CSI volume handle (for Mayastor: the volume UUID), or None for a non-CSI volume."""
        return None if self.spec.csi is UNSET else self.spec.csi.volume_handle

    @property
    def capacity_bytes(self) -> int | None:
        """``spec.capacity.storage`` in bytes, or None when absent or not a quantity."""
        capacity = self.spec.capacity
        if capacity is UNSET or capacity.storage is UNSET:
            return None
        try:
            return parse_quantity(capacity.storage)
        except ValueError:
            return None


class PersistentVolumeClaimSpec(Base):
    storage_class_name: str | UnsetType = UNSET
    volume_name: str | UnsetType = UNSET


class PersistentVolumeClaimStatus(Base):
    phase: str | UnsetType = UNSET


class PersistentVolumeClaim(Base):
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolumeClaim"] = "PersistentVolumeClaim"
    metadata: CachedObjectMeta = msgspec.field(default_factory=CachedObjectMeta)
    spec: PersistentVolumeClaimSpec = msgspec.field(default_factory=PersistentVolumeClaimSpec)
    status: PersistentVolumeClaimStatus | UnsetType = UNSET


class ProtectablePersistentVolumeClaim(PersistentVolumeClaim):
    """A PVC with its finalizers: the replication layer protects the claims it replicates with one (its own
    watch, over the claims of its namespace, decodes this; the operator's cache of every claim does not)."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


class StorageClass(Base):
    api_version: str = "storage.k8s.io/v1"
    kind: str = "StorageClass"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    provisioner: str = ""
    parameters: dict[str, str] | UnsetType = UNSET
    reclaim_policy: str | UnsetType = UNSET
    volume_binding_mode: str | UnsetType = UNSET
    allow_volume_expansion: bool | UnsetType = UNSET


class EventSource(Base):
    component: str | UnsetType = UNSET
    host: str | UnsetType = UNSET


class Event(Base):
    """A core/v1 Event; ``kubectl describe`` shows these under the involved object."""

    api_version: str = "v1"
    kind: str = "Event"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    involved_object: ObjectReference = msgspec.field(default_factory=ObjectReference)
    reason: str = ""
    message: str = ""
    type: Literal["Normal", "Warning"] = "Normal"
    source: EventSource | UnsetType = UNSET
    first_timestamp: str | UnsetType = UNSET
    last_timestamp: str | UnsetType = UNSET
    count: int | UnsetType = UNSET
    action: str | UnsetType = UNSET
    reporting_component: str | UnsetType = UNSET
    reporting_instance: str | UnsetType = UNSET


class LeaseSpec(Base):
    holder_identity: str | UnsetType = UNSET
    lease_duration_seconds: int | UnsetType = UNSET
    # MicroTime: RFC 3339 with microseconds, e.g. "2026-01-02T03:04:05.000000Z".
    acquire_time: str | UnsetType = UNSET
    renew_time: str | UnsetType = UNSET
    lease_transitions: int | UnsetType = UNSET


class Lease(Base):
    api_version: str = "coordination.k8s.io/v1"
    kind: str = "Lease"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: LeaseSpec = msgspec.field(default_factory=LeaseSpec)


class Namespace(Base):
    api_version: str = "v1"
    kind: str = "Namespace"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
