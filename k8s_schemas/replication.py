"""Volume replication kinds of ``replication.unified.io`` (seed 003), compatible with kubernetes-csi-addons.

- ``v1alpha2`` (current): :class:`VolumeReplication` (short names ``vr``, ``volrep``),
  :class:`VolumeGroupReplication` (``vgr``, ``volgrouprep``), both namespaced with a ``/status`` subresource,
  and the cluster-scoped classes :class:`VolumeReplicationClass` (``vrc``, ``volrepclass``) and
  :class:`VolumeGroupReplicationClass` (``vgrc``, ``volgrouprepclass``).
- ``v1alpha1`` (legacy): :class:`UnifiedVolumeReplication` (``uvr``, ``unifiedvr``), served so existing objects
  stay readable; :func:`legacy_replication_state` maps its role-based states onto the v1alpha2 enum.

Field names and enums follow seed 003, whose shapes are those of csi-addons
(``replication.storage.openshift.io/v1alpha1``) with two documented differences the seed made: a
VolumeReplication names its PVC in ``pvcName`` (csi-addons: ``dataSource``, also accepted here when its kind is
``PersistentVolumeClaim``), and a VolumeGroupReplication has ``volumeGroupReplicationClass`` and a top-level
``selector`` (csi-addons: ``volumeGroupReplicationClassName`` and ``source.selector``). Status shapes are
csi-addons' (``VolumeReplicationStatus``, plus ``persistentVolumeClaimsRefList`` for groups).

Like csi-addons, the class reference, the PVC reference and the selector are immutable (CEL
``self == oldSelf``); ``replicationState`` and ``autoResync`` are what users change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from k8s_schemas.meta import Base, Condition, LabelSelector, ObjectMeta

GROUP = "replication.unified.io"
VERSION = "v1alpha2"
LEGACY_VERSION = "v1alpha1"

ReplicationState = Literal["primary", "secondary", "resync"]
"""What the user asks for (csi-addons ``ReplicationState``)."""

State = Literal["Primary", "Secondary", "Unknown"]
"""What was observed (csi-addons ``State``)."""


def _immutable(name: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": f"{name} is immutable"}]}


NonEmpty = Annotated[str, Meta(min_length=1)]


class TypedLocalObjectReference(Base):
    """``corev1.TypedLocalObjectReference``: an object in the same namespace."""

    kind: NonEmpty
    name: NonEmpty
    api_group: str | UnsetType = UNSET


class LocalObjectReference(Base):
    """``corev1.LocalObjectReference``."""

    name: str


# --- v1alpha2: single volumes --------------------------------------------------------------------------


class VolumeReplicationSpec(Base):
    volume_replication_class: Annotated[
        NonEmpty,
        Meta(
            description="Name of the VolumeReplicationClass (its provisioner picks the backend).",
            extra_json_schema=_immutable("volumeReplicationClass"),
        ),
    ]
    replication_state: Annotated[
        ReplicationState, Meta(description="primary, secondary or resync: the state to bring the volume to.")
    ]
    pvc_name: (
        Annotated[
            NonEmpty,
            Meta(
                description="The PersistentVolumeClaim to replicate, in this namespace.",
                extra_json_schema=_immutable("pvcName"),
            ),
        ]
        | UnsetType
    ) = UNSET
    data_source: (
        Annotated[
            TypedLocalObjectReference,
            Meta(
                description=(
                    "csi-addons spelling of what is replicated: a PersistentVolumeClaim, or a "
                    "VolumeGroupReplication (the whole group), in this namespace."
                ),
                extra_json_schema=_immutable("dataSource"),
            ),
        ]
        | UnsetType
    ) = UNSET
    auto_resync: Annotated[
        bool, Meta(description="Resync automatically when the volume is secondary and falls out of sync.")
    ] = False
    replication_handle: str | UnsetType = UNSET

    @property
    def pvc(self) -> str | None:
        """The replicated claim's name: ``pvcName``, else a PersistentVolumeClaim ``dataSource``."""
        if self.pvc_name is not UNSET:
            return self.pvc_name
        if self.data_source is not UNSET and self.data_source.kind == "PersistentVolumeClaim":
            return self.data_source.name
        return None

    @property
    def group(self) -> str | None:
        """The name of the VolumeGroupReplication a ``dataSource`` of that kind names (csi-addons: the volume
        replication of a whole group), else None."""
        if self.data_source is not UNSET and self.data_source.kind == "VolumeGroupReplication":
            return self.data_source.name
        return None


VOLUME_REPLICATION_RULES = [
    {
        "rule": "has(self.pvcName) || (has(self.dataSource) && (self.dataSource.kind == 'PersistentVolumeClaim'"
        " || self.dataSource.kind == 'VolumeGroupReplication'))",
        "message": "pvcName, or a dataSource of kind PersistentVolumeClaim or VolumeGroupReplication, is required",
    },
    {
        "rule": "!(has(self.pvcName) && has(self.dataSource))",
        "message": "give either pvcName or dataSource, not both",
    },
]


class VolumeReplicationStatus(Base):
    """csi-addons ``VolumeReplicationStatus``; times are RFC 3339, durations Go-style (``1m30s``)."""

    state: State | UnsetType = UNSET
    message: str | UnsetType = UNSET
    conditions: list[Condition] | UnsetType = UNSET
    observed_generation: int | UnsetType = UNSET
    last_start_time: str | UnsetType = UNSET
    last_completion_time: str | UnsetType = UNSET
    last_sync_time: str | UnsetType = UNSET
    last_sync_bytes: int | UnsetType = UNSET
    last_sync_duration: str | UnsetType = UNSET


class VolumeReplication(Base, kw_only=True):
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = "VolumeReplication"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: VolumeReplicationSpec
    status: VolumeReplicationStatus | UnsetType = UNSET


class VolumeReplicationClassSpec(Base):
    provisioner: Annotated[
        NonEmpty,
        Meta(
            description="The CSI driver that replicates (it selects the backend adapter).",
            extra_json_schema=_immutable("provisioner"),
        ),
    ]
    parameters: (
        Annotated[
            dict[str, str],
            Meta(
                description="Backend parameters (see docs/replication.md).",
                extra_json_schema=_immutable("parameters"),
            ),
        ]
        | UnsetType
    ) = UNSET


class VolumeReplicationClass(Base, kw_only=True):
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = "VolumeReplicationClass"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: VolumeReplicationClassSpec


# --- v1alpha2: volume groups ---------------------------------------------------------------------------


class VolumeGroupReplicationSpec(Base):
    volume_group_replication_class: Annotated[
        NonEmpty,
        Meta(
            description="Name of the VolumeGroupReplicationClass.",
            extra_json_schema=_immutable("volumeGroupReplicationClass"),
        ),
    ]
    selector: Annotated[
        LabelSelector,
        Meta(
            description="The PersistentVolumeClaims of this namespace that form the group.",
            extra_json_schema=_immutable("selector"),
        ),
    ]
    replication_state: Annotated[
        ReplicationState, Meta(description="The state every volume of the group is brought to, together.")
    ]
    auto_resync: bool = False
    source: TypedLocalObjectReference | UnsetType = UNSET


class VolumeGroupReplicationStatus(VolumeReplicationStatus):
    persistent_volume_claims_ref_list: list[LocalObjectReference] | UnsetType = UNSET


class VolumeGroupReplication(Base, kw_only=True):
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = "VolumeGroupReplication"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: VolumeGroupReplicationSpec
    status: VolumeGroupReplicationStatus | UnsetType = UNSET


class VolumeGroupReplicationClassSpec(VolumeReplicationClassSpec):
    pass


class VolumeGroupReplicationClass(Base, kw_only=True):
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = "VolumeGroupReplicationClass"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: VolumeGroupReplicationClassSpec


# --- v1alpha1 (legacy) ---------------------------------------------------------------------------------

LegacyState = Literal["source", "replica", "promoting", "demoting", "syncing", "failed"]
LegacyDuration = Annotated[str, Meta(pattern=r"^[0-9]+(s|m|h|d)$")]


class Endpoint(Base):
    cluster: NonEmpty
    region: NonEmpty
    storage_class: NonEmpty


class LegacyVolumeSource(Base):
    pvc_name: NonEmpty
    namespace: NonEmpty


class LegacyVolumeDestination(Base):
    volume_handle: NonEmpty
    namespace: NonEmpty


class VolumeMapping(Base):
    source: LegacyVolumeSource
    destination: LegacyVolumeDestination


class Schedule(Base, kw_only=True):
    rpo: LegacyDuration | UnsetType = UNSET
    rto: LegacyDuration | UnsetType = UNSET
    mode: Literal["continuous", "interval", "manual"]


class CephExtensions(Base):
    mirroring_mode: Literal["journal", "snapshot"] | UnsetType = UNSET


class TridentAction(Base):
    type: Literal["mirror-update"]
    snapshot_handle: str | UnsetType = UNSET


class TridentExtensions(Base):
    actions: list[TridentAction] | UnsetType = UNSET


class PowerStoreExtensions(Base):
    rpo_settings: Literal["Five_Minutes", "Fifteen_Minutes", "Thirty_Minutes", "One_Hour"] | UnsetType = UNSET


class Extensions(Base):
    ceph: CephExtensions | UnsetType = UNSET
    trident: TridentExtensions | UnsetType = UNSET
    powerstore: PowerStoreExtensions | UnsetType = UNSET


class UnifiedVolumeReplicationSpec(Base):
    source_endpoint: Endpoint
    destination_endpoint: Endpoint
    volume_mapping: VolumeMapping
    replication_state: LegacyState
    replication_mode: Literal["synchronous", "asynchronous", "eventual"]
    schedule: Schedule
    extensions: Extensions | UnsetType = UNSET


class BackendInfo(Base):
    name: str
    type: Literal["ceph-csi", "trident", "powerstore"]
    available: bool
    capabilities: list[str] | UnsetType = UNSET


class UnifiedVolumeReplicationStatus(Base):
    conditions: list[Condition] | UnsetType = UNSET
    observed_generation: int | UnsetType = UNSET
    discovered_backends: list[BackendInfo] | UnsetType = UNSET


class UnifiedVolumeReplication(Base, kw_only=True):
    api_version: str = f"{GROUP}/{LEGACY_VERSION}"
    kind: str = "UnifiedVolumeReplication"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: UnifiedVolumeReplicationSpec
    status: UnifiedVolumeReplicationStatus | UnsetType = UNSET


LEGACY_ENDPOINT_RULES = [
    {
        "rule": "!(self.sourceEndpoint.cluster == self.destinationEndpoint.cluster"
        " && self.sourceEndpoint.region == self.destinationEndpoint.region"
        " && self.sourceEndpoint.storageClass == self.destinationEndpoint.storageClass)",
        "message": "source and destination endpoints cannot be identical",
    },
    {
        "rule": "self.schedule.mode != 'interval' || has(self.schedule.rpo)",
        "message": "schedule.rpo is required when schedule.mode is interval",
        "fieldPath": ".schedule.rpo",
    },
]

_LEGACY_STATES: dict[str, ReplicationState | None] = {
    "source": "primary",
    "promoting": "primary",
    "replica": "secondary",
    "demoting": "secondary",
    "syncing": "resync",
    "failed": None,
}


def legacy_replication_state(state: LegacyState) -> ReplicationState | None:
    """The v1alpha2 ``replicationState`` equivalent to a v1alpha1 one; None for ``failed`` (no intent)."""
    return _LEGACY_STATES[state]
