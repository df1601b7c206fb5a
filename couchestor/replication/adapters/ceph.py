"""Ceph RBD through csi-addons: one ``VolumeReplication`` (``replication.storage.openshift.io/v1alpha1``)
per PVC, which the csi-addons controller turns into RBD mirroring calls.

The request's state passes through unchanged (same enum). The csi-addons class named in the class parameter
``volumeReplicationClass`` is used, else a csi-addons class of the same name as ours. A group becomes one
object per member, named ``<group>-<pvc>``; csi-addons reports ``status.state`` and the conditions
``Completed``, ``Degraded`` and ``Resyncing`` for the spec generation in ``status.observedGeneration``.
"""

from __future__ import annotations

from collections.abc import Mapping

from couchestor.replication.adapters.base import dig, generation_seen
from couchestor.replication.model import JSON, BackendObject, MemberStatus, Phase, Request
from couchestor.replication.resources import CSI_ADDONS_VOLUME_REPLICATION
from k8s_schemas.replication import State

_STATES: dict[str, State] = {"Primary": "Primary", "Secondary": "Secondary"}


def object_name(req: Request, pvc: str) -> str:
    """The csi-addons VolumeReplication for ``pvc``: the request's own name, or ``<group>-<pvc>``."""
    return f"{req.name}-{pvc}" if req.is_group else req.name


def _condition(obj: JSON, type_: str) -> JSON | None:
    for cond in dig(obj, "status", "conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


class CephAdapter:
    name = "ceph-rbd"
    resource = CSI_ADDONS_VOLUME_REPLICATION
    provisioner_hint = "rbd.csi.ceph.com"

    def serves(self, provisioner: str) -> bool:
        return provisioner == "rbd.csi.ceph.com" or provisioner.endswith(".rbd.csi.ceph.com")

    def validate(self, req: Request) -> str | None:
        return None

    def desired(self, req: Request, current: Mapping[str, JSON]) -> list[BackendObject]:
        klass = req.parameters.get("volumeReplicationClass") or req.class_name
        return [
            BackendObject(
                resource=self.resource,
                namespace=req.namespace,
                name=object_name(req, pvc),
                spec={
                    "volumeReplicationClass": klass,
                    "replicationState": req.state,
                    "dataSource": {"kind": "PersistentVolumeClaim", "name": pvc},
                    "autoResync": req.auto_resync,
                },
            )
            for pvc in req.members
        ]

    def observe(self, req: Request, current: Mapping[str, JSON]) -> list[MemberStatus]:
        return [self._member(req, pvc, current.get(object_name(req, pvc))) for pvc in req.members]

    def _member(self, req: Request, pvc: str, obj: JSON | None) -> MemberStatus:
        if obj is None:
            return MemberStatus(pvc, "Unknown", "Progressing", "csi-addons VolumeReplication not created yet")
        state = _STATES.get(str(dig(obj, "status", "state")), "Unknown")
        sync = dig(obj, "status", "lastSyncTime")
        last_sync = sync if isinstance(sync, str) else None
        resync = _condition(obj, "Resyncing")
        resyncing = bool(resync and resync.get("status") == "True")
        if dig(obj, "spec", "replicationState") != req.state or not generation_seen(
            obj, dig(obj, "status", "observedGeneration")
        ):
            return MemberStatus(pvc, state, "Progressing", "waiting for csi-addons", resyncing, last_sync)
        completed = _condition(obj, "Completed")
        message = str(dig(obj, "status", "message") or (completed or {}).get("message") or "")
        degraded_cond = _condition(obj, "Degraded")
        # csi-addons: a demoted volume is Degraded (VolumeDegraded) until its resync is ready.
        degraded = bool(
            req.state != "primary"
            and degraded_cond
            and degraded_cond.get("status") == "True"
            and degraded_cond.get("reason") == "VolumeDegraded"
        )
        phase: Phase = "Progressing"
        if completed is not None and completed.get("status") == "True":
            phase = "Completed"
        elif completed is not None and completed.get("status") == "False":
            reason = str(completed.get("reason", ""))
            phase = "Failed" if reason.startswith("Failed") or reason == "Error" else "Progressing"
        return MemberStatus(pvc, state, phase, message, resyncing, last_sync, degraded)

    def member_labels(self, req: Request) -> Mapping[str, str]:
        return {}
