"""Dell PowerStore through Dell CSM replication: one cluster-scoped ``DellCSIReplicationGroup``
(``replication.storage.dell.com/v1``) per request, named ``<namespace>.<name>``; member PVCs carry the label
``replication.storage.dell.com/replicationGroupName`` naming it, which is how Dell associates volumes with a
group.

Dell is driven by one-shot actions in ``spec.action``, which its controller clears when done: primary on a
group that is not the source -> ``FAILOVER_LOCAL``; secondary on a source -> ``FAILOVER_REMOTE``; resync ->
``SYNC`` once per request generation (remembered in an annotation, since an action leaves no other trace).
An action in flight is never replaced. The role is ``status.replicationLinkState.isSource``; an error shows as
``status.state`` ``Error`` or a ``lastAction.errorMessage`` while the action is still pending.

Class parameters: ``remoteClusterId`` (required), ``protectionGroupId`` and ``remoteProtectionGroupId``
(default: the group's name); the rest pass through as ``protectionGroupAttributes``.
"""

from __future__ import annotations

from collections.abc import Mapping

from couchestor.replication.adapters.base import dig
from couchestor.replication.model import JSON, BackendObject, MemberStatus, Request
from couchestor.replication.resources import DELL_REPLICATION_GROUP
from k8s_schemas.replication import State

GROUP_LABEL = "replication.storage.dell.com/replicationGroupName"
SYNC_GENERATION = "replication.unified.io/sync-generation"
_OWN_PARAMETERS = {"remoteClusterId", "protectionGroupId", "remoteProtectionGroupId"}


def group_name(req: Request) -> str:
    # Namespaces cannot contain dots, so "<namespace>.<name>" never collides across namespaces.
    return f"{req.namespace}.{req.name}"


def next_action(req: Request, current: JSON | None) -> str:
    """The ``spec.action`` to write: the pending one, or the one the request needs now, or ""."""
    if current is None:
        return ""  # wait for the driver to report the group's role first
    pending = dig(current, "spec", "action")
    if pending:
        return str(pending)
    is_source = dig(current, "status", "replicationLinkState", "isSource")
    if not isinstance(is_source, bool):
        return ""
    if req.state == "primary" and not is_source:
        return "FAILOVER_LOCAL"
    if req.state == "secondary" and is_source:
        return "FAILOVER_REMOTE"
    if req.state == "resync" and dig(current, "metadata", "annotations", SYNC_GENERATION) != str(
        req.generation
    ):
        return "SYNC"
    return ""


class DellAdapter:
    name = "dell-powerstore"
    resource = DELL_REPLICATION_GROUP
    provisioner_hint = "csi-powerstore.dellemc.com"

    def serves(self, provisioner: str) -> bool:
        return provisioner == "csi-powerstore.dellemc.com"

    def validate(self, req: Request) -> str | None:
        if not req.parameters.get("remoteClusterId"):
            return "class parameter remoteClusterId is required by Dell PowerStore replication"
        if len(group_name(req)) > 63:
            # The name is also the value of the member label, which holds at most 63 characters.
            return f"namespace and name together must not exceed 62 characters for Dell (got {group_name(req)!r})"
        return None

    def desired(self, req: Request, current: Mapping[str, JSON]) -> list[BackendObject]:
        name = group_name(req)
        obj = current.get(name)
        action = next_action(req, obj)
        annotations: dict[str, str] = {}
        if action == "SYNC" or (
            obj is not None and dig(obj, "metadata", "annotations", SYNC_GENERATION) == str(req.generation)
        ):
            annotations[SYNC_GENERATION] = str(req.generation)
        attributes = {k: v for k, v in req.parameters.items() if k not in _OWN_PARAMETERS}
        spec: JSON = {
            "driverName": req.provisioner,
            "action": action,
            "remoteClusterId": req.parameters.get("remoteClusterId", ""),
            "protectionGroupId": req.parameters.get("protectionGroupId", name),
            "remoteProtectionGroupId": req.parameters.get("remoteProtectionGroupId", name),
        }
        if attributes:
            spec["protectionGroupAttributes"] = attributes
        return [BackendObject(self.resource, None, name, spec, annotations)]

    def observe(self, req: Request, current: Mapping[str, JSON]) -> list[MemberStatus]:
        status = self._group(req, current.get(group_name(req)))
        return [
            MemberStatus(
                p,
                status.state,
                status.phase,
                status.message,
                status.resyncing,
                status.last_sync_time,
                status.degraded,
            )
            for p in req.members
        ]

    def _group(self, req: Request, obj: JSON | None) -> MemberStatus:
        if obj is None:
            return MemberStatus("", "Unknown", "Progressing", "DellCSIReplicationGroup not created yet")
        link = dig(obj, "status", "replicationLinkState") or {}
        is_source = link.get("isSource") if isinstance(link, dict) else None
        state: State = "Unknown"
        if isinstance(is_source, bool):
            state = "Primary" if is_source else "Secondary"
        sync = link.get("lastSuccessfulUpdate") if isinstance(link, dict) else None
        last_sync = sync if isinstance(sync, str) else None
        pending = dig(obj, "spec", "action") or ""
        error = dig(obj, "status", "lastAction", "errorMessage")
        if dig(obj, "status", "state") == "Error" or (pending and error):
            return MemberStatus(
                "", state, "Failed", f"{pending or 'group'}: {error or 'error'}", False, last_sync
            )
        wanted = next_action(req, obj)
        link_state = link.get("state", "") if isinstance(link, dict) else ""
        if state == "Secondary" and req.state != "primary" and (pending == "SYNC" or wanted == "SYNC"):
            # Demoted, resync running: csi-addons' Demoted + VolumeDegraded + ResyncTriggered.
            return MemberStatus("", state, "Completed", "resync in progress", True, last_sync, degraded=True)
        if pending or wanted or state == "Unknown":
            message = f"action {pending} in progress" if pending else "waiting for the replication group"
            return MemberStatus("", state, "Progressing", message, pending == "SYNC", last_sync)
        # A secondary whose link is not synchronized yet is degraded until it is.
        behind = state == "Secondary" and link_state not in ("", "SYNCHRONIZED")
        message = f"link {link_state or 'up'}"
        return MemberStatus("", state, "Completed", message, False, last_sync, degraded=behind)

    def member_labels(self, req: Request) -> Mapping[str, str]:
        return {GROUP_LABEL: group_name(req)}
