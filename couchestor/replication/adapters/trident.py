"""NetApp Trident: one ``TridentMirrorRelationship`` (``trident.netapp.io/v1``) per request, with one
``volumeMappings`` entry per PVC, so Trident moves a group's volumes as one relationship.

``spec.state``: primary -> ``promoted``; secondary -> ``established`` for a new relationship and
``reestablished`` once it was promoted (Trident distinguishes the first mirror from a re-mirror after a
failover); resync -> ``reestablished``. Each mapping needs the remote volume handle ``<svm>:<volume>``: the
class parameter ``remoteVolume`` (single volume only) or ``remoteSVM`` (the remote volume is named like the
PVC). Class parameters ``replicationPolicy`` and ``replicationSchedule`` pass through.

Trident reports one ``status.conditions`` entry per mapping (``localPVCName``, ``state``, ``message``,
``observedGeneration``); the ``-ing`` states are transitions, ``failed``/``invalid`` errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from couchestor.replication.adapters.base import dig, generation_seen
from couchestor.replication.model import JSON, BackendObject, MemberStatus, Request
from couchestor.replication.resources import TRIDENT_MIRROR_RELATIONSHIP
from k8s_schemas.replication import State

_DONE: dict[str, State] = {"promoted": "Primary", "established": "Secondary", "reestablished": "Secondary"}
_TRANSITIONS = {"promoting", "establishing", "reestablishing"}
_ERRORS = {"failed", "invalid"}


def remote_handle(req: Request, pvc: str) -> str | None:
    """``<svm>:<volume>`` of ``pvc``'s peer, from the class parameters; None when they do not say."""
    if not req.is_group and req.parameters.get("remoteVolume"):
        return req.parameters["remoteVolume"]
    svm = req.parameters.get("remoteSVM")
    return f"{svm}:{pvc}" if svm else None


def mirror_state(req: Request, current: JSON | None) -> str:
    """The TMR ``spec.state`` for the request, given the relationship as it is."""
    if req.state == "primary":
        return "promoted"
    if req.state == "resync":
        return "reestablished"
    if current is None:
        return "established"
    was_promoted = dig(current, "spec", "state") in ("promoted", "reestablished") or any(
        isinstance(c, dict) and c.get("state") in ("promoted", "promoting")
        for c in dig(current, "status", "conditions") or ()
    )
    return "reestablished" if was_promoted else "established"


class TridentAdapter:
    name = "trident"
    resource = TRIDENT_MIRROR_RELATIONSHIP
    provisioner_hint = "csi.trident.netapp.io"

    def serves(self, provisioner: str) -> bool:
        return provisioner == "csi.trident.netapp.io"

    def validate(self, req: Request) -> str | None:
        if req.members and remote_handle(req, req.members[0]) is None:
            return "class parameter remoteSVM (or remoteVolume for a single volume) is required by Trident"
        return None

    def desired(self, req: Request, current: Mapping[str, JSON]) -> list[BackendObject]:
        spec: JSON = {
            "state": mirror_state(req, current.get(req.name)),
            "volumeMappings": [
                {"localPVCName": pvc, "remoteVolumeHandle": remote_handle(req, pvc) or ""}
                for pvc in req.members
            ],
        }
        for key in ("replicationPolicy", "replicationSchedule"):
            if key in req.parameters:
                spec[key] = req.parameters[key]
        return [BackendObject(self.resource, req.namespace, req.name, spec)]

    def observe(self, req: Request, current: Mapping[str, JSON]) -> list[MemberStatus]:
        obj = current.get(req.name)
        if obj is None:
            return [
                MemberStatus(p, "Unknown", "Progressing", "TridentMirrorRelationship not created yet")
                for p in req.members
            ]
        wanted = mirror_state(req, obj)
        fresh_spec = dig(obj, "spec", "state") == wanted
        by_pvc = {
            c.get("localPVCName"): c for c in dig(obj, "status", "conditions") or () if isinstance(c, dict)
        }
        out = []
        for pvc in req.members:
            cond = by_pvc.get(pvc)
            if cond is None or not fresh_spec or not generation_seen(obj, cond.get("observedGeneration")):
                out.append(MemberStatus(pvc, "Unknown", "Progressing", "waiting for Trident"))
                continue
            state = str(cond.get("state", ""))
            message = str(cond.get("message") or f"mirror {state}")
            if state in _ERRORS:
                out.append(MemberStatus(pvc, "Unknown", "Failed", message))
            elif state == wanted or (state in _DONE and _DONE[state] == _DONE[wanted]):
                out.append(MemberStatus(pvc, _DONE[state], "Completed", message))
            elif wanted != "promoted" and state in ("establishing", "reestablishing"):
                # Already the mirror's destination (demoted), still transferring: degraded until in sync.
                resync = state == "reestablishing"
                out.append(MemberStatus(pvc, "Secondary", "Completed", message, resync, degraded=True))
            else:
                resync = state == "reestablishing"
                out.append(MemberStatus(pvc, "Unknown", "Progressing", message, resyncing=resync))
        return out

    def member_labels(self, req: Request) -> Mapping[str, str]:
        return {}
