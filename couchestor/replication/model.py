"""The plain data the replication controllers reason about, independent of any backend.

A :class:`Request` is one VolumeReplication or VolumeGroupReplication reduced to what an adapter needs (a
VolumeReplication is a group of one). An adapter answers with the backend objects it wants to exist
(:class:`BackendObject`) and, from the objects it finds, one :class:`MemberStatus` per PVC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from couchestor.kube.resources import Resource
from k8s_schemas.replication import ReplicationState, State

JSON = dict[str, Any]
Kind = Literal["VolumeReplication", "VolumeGroupReplication"]
Phase = Literal["Progressing", "Completed", "Failed"]


@dataclass(frozen=True, slots=True)
class Request:
    """What one replication object asks of its backend, with its PVCs resolved."""

    kind: Kind
    namespace: str
    name: str
    uid: str
    generation: int
    state: ReplicationState
    auto_resync: bool
    class_name: str
    provisioner: str
    parameters: Mapping[str, str]
    members: tuple[str, ...]

    @property
    def is_group(self) -> bool:
        return self.kind == "VolumeGroupReplication"


@dataclass(frozen=True, slots=True)
class BackendObject:
    """A backend object as the adapter wants it: ``spec`` holds only the fields the adapter owns (compared
    and merge-patched one by one), ``annotations`` likewise; ``namespace`` is None for a cluster-scoped kind."""

    resource: Resource
    namespace: str | None
    name: str
    spec: JSON
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One PVC as its backend reports it.

    ``phase`` is relative to the request: ``Completed`` once the backend reached the requested state for the
    request's current spec, ``Failed`` when it reports an error doing so, ``Progressing`` otherwise (including
    a backend status older than the last spec change). ``degraded``: it reached the requested secondary state
    but is not in sync with its peer yet (csi-addons' ``VolumeDegraded``, until the resync is ready).
    """

    pvc: str
    state: State
    phase: Phase
    message: str = ""
    resyncing: bool = False
    last_sync_time: str | None = None
    degraded: bool = False
