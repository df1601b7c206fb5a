"""The status of a replication object as a pure function of its members' statuses.

Group rule: the group reports a state only when every member reports it (``Unknown`` otherwise, with the
members per state in the message), so a partial failover is never shown as done. Any failed or missing member
makes the group ``Degraded`` (and the controller retries); ``Completed`` is True only when all members reached
the requested state. Condition types and reasons are csi-addons' (Completed, Degraded, Resyncing, Validated),
and so are their values after a demotion (``Completed=True/Demoted`` with ``Degraded=True/VolumeDegraded``
until the resync is ready, ``Resyncing=True/ResyncTriggered`` while it runs) and on a missing prerequisite
(the last known state is kept).

:func:`status_patch` returns None when nothing the user can see would change, so a steady state makes no
writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from couchestor.replication.model import MemberStatus, Phase
from couchestor.tiering.status import Wanted, merge_conditions
from k8s_schemas.replication import (
    LocalObjectReference,
    ReplicationState,
    State,
    VolumeGroupReplicationStatus,
)

_MAX_LISTED = 10

_DONE_REASON = {"primary": "Promoted", "secondary": "Demoted", "resync": "Demoted"}
_FAILED_REASON = {"primary": "FailedToPromote", "secondary": "FailedToDemote", "resync": "FailedToResync"}
_NOT_RESYNCING = Wanted("Resyncing", "False", "NotResyncing", "not resyncing")


@dataclass(frozen=True, slots=True)
class Summary:
    """What a replication object's status says: see the module doc for the rules. ``last_sync_time`` None
    keeps the reported one, unless ``clear_last_sync`` (a secondary has no last sync, as in csi-addons)."""

    state: State
    phase: Phase
    message: str
    conditions: tuple[Wanted, ...]
    last_sync_time: str | None
    clear_last_sync: bool = False


def _names(pvcs: Sequence[str]) -> str:
    shown = ", ".join(pvcs[:_MAX_LISTED])
    return shown + (f" and {len(pvcs) - _MAX_LISTED} more" if len(pvcs) > _MAX_LISTED else "")


def summarize(
    requested: ReplicationState,
    members: Sequence[MemberStatus],
    problem: str | None = None,
    errors: Sequence[str] = (),
    *,
    previous: State = "Unknown",
) -> Summary:
    """Aggregate member statuses. ``problem`` is a prerequisite that is not met (no class, no PVC ...): the
    state stays ``previous``, the last known one, as in csi-addons; ``errors`` are failed writes of backend
    objects, which degrade the object like a failed member."""
    if problem is not None:
        return Summary(
            state=previous,
            phase="Failed",
            message=problem,
            conditions=(
                Wanted("Completed", "False", _FAILED_REASON[requested], problem),
                Wanted("Degraded", "True", "Error", problem),
                _NOT_RESYNCING,
                Wanted("Validated", "False", "PrerequisiteNotMet", problem),
            ),
            last_sync_time=None,
        )
    states = {m.state for m in members}
    # Nothing observed (a write failed before the backend was read): the last known state stands.
    state: State = (states.pop() if len(states) == 1 else "Unknown") if members else previous
    failed = [m for m in members if m.phase == "Failed"]
    progressing = [m for m in members if m.phase == "Progressing"]
    degraded_members = [m.pvc for m in members if m.degraded and m.phase == "Completed"]
    count = len(members)
    done = count - len(failed) - len(progressing)
    verb = {"primary": "promoted", "secondary": "demoted", "resync": "resynced"}[requested]
    if errors:
        phase: Phase = "Failed"
        message = f"cannot update the backend: {'; '.join(errors[:_MAX_LISTED])}; retrying"
        completed = Wanted("Completed", "False", _FAILED_REASON[requested], message)
        degraded = Wanted("Degraded", "True", "Error", message)
    elif failed:
        phase = "Failed"
        details = "; ".join(f"{m.pvc}: {m.message}" for m in failed[:_MAX_LISTED])
        message = f"{len(failed)} of {count} volumes failed ({details}); {done} {verb}, retrying"
        completed = Wanted("Completed", "False", _FAILED_REASON[requested], message)
        degraded = Wanted("Degraded", "True", "VolumeDegraded", message)
    elif progressing:
        phase = "Progressing"
        message = f"{done} of {count} volumes {verb}; waiting for {_names([m.pvc for m in progressing])}"
        completed = Wanted("Completed", "False", "Progressing", message)
        degraded = Wanted("Degraded", "False", "Healthy", "no volume reports an error")
    elif degraded_members:
        # csi-addons: demoted (Completed) but degraded until the resync is ready; followed until then.
        phase = "Progressing"
        done_message = f"all {count} volumes demoted" if count != 1 else "volume demoted"
        message = f"{done_message}; degraded until {_names(degraded_members)} resync"
        completed = Wanted("Completed", "True", _DONE_REASON[requested], done_message)
        degraded = Wanted(
            "Degraded", "True", "VolumeDegraded", f"resync not ready: {_names(degraded_members)}"
        )
    else:
        phase = "Completed"
        message = f"all {count} volumes {verb}" if count != 1 else f"volume {verb}"
        completed = Wanted("Completed", "True", _DONE_REASON[requested], message)
        degraded = Wanted("Degraded", "False", "Healthy", "volumes are healthy")
    resyncing_members = [m.pvc for m in members if m.resyncing]
    resyncing = (
        Wanted("Resyncing", "True", "ResyncTriggered", f"resyncing {_names(resyncing_members)}")
        if resyncing_members
        else _NOT_RESYNCING
    )
    if len({m.state for m in members}) > 1:
        by_state: dict[str, list[str]] = {}
        for m in members:
            by_state.setdefault(m.state, []).append(m.pvc)
        message += " (" + "; ".join(f"{s}: {_names(p)}" for s, p in sorted(by_state.items())) + ")"
    syncs = [m.last_sync_time for m in members]
    # The group is as fresh as its stalest member; unknown as long as one member never synced. Only a primary
    # reports it (csi-addons clears it on secondary and leaves it alone during a resync).
    last_sync = None if not syncs or any(s is None for s in syncs) else min(s for s in syncs if s)
    return Summary(
        state=state,
        phase=phase,
        message=message,
        conditions=(
            completed,
            degraded,
            resyncing,
            Wanted("Validated", "True", "PrerequisiteMet", "class and volumes found"),
        ),
        last_sync_time=last_sync if requested == "primary" else None,
        clear_last_sync=requested == "secondary" and phase != "Failed",
    )


def _visible(status: VolumeGroupReplicationStatus) -> dict[str, Any]:
    return {
        "state": status.state,
        "message": status.message,
        "generation": status.observed_generation,
        "sync": status.last_sync_time,
        "pvcs": None
        if status.persistent_volume_claims_ref_list is UNSET
        else [r.name for r in status.persistent_volume_claims_ref_list],
        "conditions": None
        if status.conditions is UNSET
        else [(c.type, c.status, c.reason, c.message) for c in status.conditions],
    }


def status_patch(
    summary: Summary,
    current: VolumeGroupReplicationStatus,
    *,
    generation: int,
    members: Sequence[str] | None,
    now: str,
) -> dict[str, Any] | None:
    """The ``{"status": {...}}`` merge-patch to send, or None when nothing visible changes.

    ``members`` is None for a VolumeReplication (no PVC list). ``lastStartTime`` moves when the requested
    state (generation) changes, ``lastCompletionTime`` when the object first reaches Completed after that.
    """
    conditions = merge_conditions(
        [] if current.conditions is UNSET else current.conditions, summary.conditions, now, generation
    )
    desired = VolumeGroupReplicationStatus(
        state=summary.state,
        message=summary.message,
        conditions=conditions,
        observed_generation=generation,
    )
    if summary.last_sync_time is not None:
        desired.last_sync_time = summary.last_sync_time
    elif current.last_sync_time is not UNSET and not summary.clear_last_sync:
        desired.last_sync_time = current.last_sync_time
    if members is not None:
        desired.persistent_volume_claims_ref_list = [LocalObjectReference(name=n) for n in members]
    if _visible(desired) == _visible(current):
        return None
    body: dict[str, Any] = {
        "state": desired.state,
        "message": desired.message,
        "conditions": desired.conditions,
        "observedGeneration": generation,
    }
    if desired.last_sync_time is not UNSET:
        body["lastSyncTime"] = desired.last_sync_time
    elif current.last_sync_time is not UNSET:
        body["lastSyncTime"] = None
    if members is not None:
        # An empty list is written as null: merge-patch would otherwise keep the old members.
        body["persistentVolumeClaimsRefList"] = desired.persistent_volume_claims_ref_list or None
    new_request = current.observed_generation is UNSET or current.observed_generation != generation
    if new_request:
        body["lastStartTime"] = now
        body["lastCompletionTime"] = None
    if summary.phase == "Completed" and (new_request or current.last_completion_time is UNSET):
        body["lastCompletionTime"] = now
    return {"status": body}
