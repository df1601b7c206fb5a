"""A VolumeReplication whose ``dataSource`` is a VolumeGroupReplication: csi-addons' way of replicating a whole
group through one VolumeReplication.

The VolumeReplication drives the group: it owns it (the group's annotation
``replication.unified.io/volume-replication-name``, one driver per group, as csi-addons annotates the group with
its VolumeReplication), its ``replicationState`` and ``autoResync`` become the group's, and it reports the
group's outcome as its own once the group has observed that request. The group's class and members do the
replicating; the VolumeReplication's own class is not used. Pure functions; the controller does the I/O.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from couchestor.replication.model import Phase
from couchestor.replication.resources import VOLUME_REPLICATION_OWNER
from couchestor.replication.status import Summary
from couchestor.tiering.status import Wanted
from k8s_schemas.replication import State, VolumeGroupReplication, VolumeReplication


def check_group(vr: VolumeReplication, group: VolumeGroupReplication | None, name: str) -> str | None:
    """Why ``vr`` cannot drive the group ``name`` (found as ``group``), or None."""
    ns = vr.metadata.namespace
    if group is None:
        return f"VolumeGroupReplication {ns}/{name} not found"
    owner = group.metadata.annotation(VOLUME_REPLICATION_OWNER)
    if owner and owner != vr.metadata.name:
        return f"VolumeGroupReplication {ns}/{name} is already owned by VolumeReplication {owner!r}"
    if group.metadata.deletion_timestamp is not UNSET and not owner:
        return f"VolumeGroupReplication {ns}/{name} is marked for deletion"
    return None


def group_patch(vr: VolumeReplication, group: VolumeGroupReplication) -> dict[str, Any] | None:
    """The merge-patch that makes ``group`` owned and driven by ``vr``, or None when it already is."""
    metadata: dict[str, Any] = {}
    if group.metadata.annotation(VOLUME_REPLICATION_OWNER) != vr.metadata.name:
        metadata["annotations"] = {VOLUME_REPLICATION_OWNER: vr.metadata.name}
    spec: dict[str, Any] = {}
    if group.spec.replication_state != vr.spec.replication_state:
        spec["replicationState"] = vr.spec.replication_state
    if group.spec.auto_resync != vr.spec.auto_resync:
        spec["autoResync"] = vr.spec.auto_resync
    if not metadata and not spec:
        return None
    metadata["resourceVersion"] = group.metadata.resource_version
    return {"metadata": metadata, **({"spec": spec} if spec else {})}


def mirror(vr: VolumeReplication, group: VolumeGroupReplication, previous: State) -> Summary:
    """``vr``'s status from its group's: the group's state, message and conditions once the group reports on
    the state ``vr`` asks for (its current generation), else waiting with the last known state."""
    status = group.status
    name = group.metadata.name
    fresh = (
        group.spec.replication_state == vr.spec.replication_state
        and status is not UNSET
        and status.observed_generation == group.metadata.generation
        and status.conditions is not UNSET
    )
    if not fresh or status is UNSET or status.conditions is UNSET:
        message = f"waiting for VolumeGroupReplication {name}"
        return Summary(
            state=previous,
            phase="Progressing",
            message=message,
            conditions=(
                Wanted("Completed", "False", "Progressing", message),
                Wanted("Validated", "True", "PrerequisiteMet", f"VolumeGroupReplication {name} found"),
            ),
            last_sync_time=None,
        )
    conditions = {c.type: c for c in status.conditions}
    completed = conditions.get("Completed")
    degraded = conditions.get("Degraded")
    phase: Phase = "Progressing"
    if completed is not None and completed.status == "True":
        phase = "Completed" if degraded is None or degraded.status == "False" else "Progressing"
    elif degraded is not None and degraded.status == "True":
        phase = "Failed"
    state = previous if status.state is UNSET else status.state
    return Summary(
        state=state,
        phase=phase,
        message=f"VolumeGroupReplication {name}: {'' if status.message is UNSET else status.message}",
        conditions=tuple(Wanted(c.type, c.status, c.reason, c.message) for c in status.conditions),
        last_sync_time=None if status.last_sync_time is UNSET else status.last_sync_time,
        clear_last_sync=vr.spec.replication_state == "secondary",
    )
