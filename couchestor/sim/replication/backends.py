"""The three backend simulators: a shared loop (:class:`BackendSimulator`) around a pure step per backend.

Every ``tick`` the loop shows each object of its resource to :meth:`BackendSimulator.step`, together with how
long the object has wanted what it wants now; the step answers with the status the vendor's controller would
write at that moment (and, for Dell, the spec change it makes), and the loop writes what differs.

Knobs, settable at any time from a test or the demo:

- ``transition_seconds``: how long a promotion, demotion, resync or first mirror takes.
- ``failing``: names that fail their transition (PVC names for Ceph and Trident, which report per volume;
  replication group names for Dell) until removed, after which the transition completes.
- ``paused``: the vendor controller is down: nothing is written (statuses go stale).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from couchestor.durations import format_time
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import KubeError, NotFound
from couchestor.kube.objects import ObjectKey, object_key
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import Resource
from couchestor.replication.resources import (
    CSI_ADDONS_VOLUME_REPLICATION,
    DELL_REPLICATION_GROUP,
    TRIDENT_MIRROR_RELATIONSHIP,
)

log = logging.getLogger("couchestor.sim.replication")

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """What a vendor controller writes: a whole new ``status`` and/or a merge-patch of ``spec``."""

    status: JSON | None = None
    spec: JSON | None = None


def _get(obj: Any, *path: str) -> Any:
    for step in path:
        obj = obj.get(step) if isinstance(obj, dict) else None
    return obj


def _cond(type_: str, status: str, reason: str, message: str, now: str, generation: int) -> JSON:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "observedGeneration": generation,
    }


@dataclass
class BackendSimulator:
    """Base loop; subclasses set :attr:`resource` and implement :meth:`step` and :meth:`wants`."""

    client: KubeClient
    transition_seconds: float = 0.3
    tick: float = 0.05
    failing: set[str] = field(default_factory=set)
    paused: bool = False
    resource: Resource = field(init=False)
    _since: dict[ObjectKey, tuple[str, float]] = field(default_factory=dict, init=False)

    def wants(self, obj: JSON) -> str:
        """A fingerprint of what the object asks for now; the transition clock restarts when it changes."""
        raise NotImplementedError

    def step(self, obj: JSON, elapsed: float, now: str) -> Update:
        raise NotImplementedError

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Play the vendor controller until cancelled; ``started`` once the resource is listed."""
        reflector: Reflector[JSON] = Reflector.for_resource(self.client, self.resource, dict)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reflector.run)
            await reflector.store.wait_synced()
            task_status.started()
            while True:
                await trio.sleep(self.tick)
                if not self.paused:
                    await self._pass(reflector.store.list())

    async def _pass(self, objs: list[JSON]) -> None:
        clock = trio.current_time()
        now = format_time(datetime.now(UTC))
        seen = set()
        for obj in objs:
            key = object_key(obj)
            seen.add(key)
            fingerprint = self.wants(obj)
            since = self._since.get(key)
            if since is None or since[0] != fingerprint:
                since = self._since[key] = (fingerprint, clock)
            update = self.step(obj, clock - since[1], now)
            try:
                await self._write(obj, update)
            except NotFound:
                continue
            except KubeError as exc:
                log.warning("%s %s: %s", self.resource.kind, key, exc)
        for key in set(self._since) - seen:
            del self._since[key]

    async def _write(self, obj: JSON, update: Update) -> None:
        key = object_key(obj)
        ns = key.namespace or None
        if update.status is not None and update.status != (obj.get("status") or {}):
            # A whole status: null out what the new one drops, so the merge-patch replaces it.
            body = dict.fromkeys(obj.get("status") or {}) | update.status
            await self.client.patch_status(self.resource, key.name, {"status": body}, ns, type=dict)
        if update.spec is not None and any(_get(obj, "spec", k) != v for k, v in update.spec.items()):
            await self.client.merge_patch(self.resource, key.name, {"spec": update.spec}, ns, type=dict)


# --- Ceph RBD via csi-addons ---------------------------------------------------------------------------

_CEPH_DONE = {
    "primary": ("Primary", "Promoted", "volume is marked primary"),
    "secondary": ("Secondary", "Demoted", "volume is marked secondary"),
    "resync": ("Secondary", "Demoted", "volume is marked for resyncing"),
}
_CEPH_DEGRADED = {
    "secondary": "volume is marked secondary and is degraded",
    "resync": "volume is degraded",
}
_CEPH_FAILED = {"primary": "FailedToPromote", "secondary": "FailedToDemote", "resync": "FailedToResync"}


@dataclass
class CephCsiAddonsSimulator(BackendSimulator):
    """csi-addons' VolumeReplication controller over RBD mirroring: nothing is written while a transition
    runs (the status keeps its older ``observedGeneration``), then the new state with ``Completed`` True. A
    demotion or resync then stays ``Degraded`` (VolumeDegraded; ``Resyncing`` True for a resync) for another
    ``transition_seconds`` until the image is in sync, as csi-addons reports it. Only a primary has a
    ``lastSyncTime``."""

    resource: Resource = field(default=CSI_ADDONS_VOLUME_REPLICATION, init=False)

    def wants(self, obj: JSON) -> str:
        return f"{_get(obj, 'metadata', 'generation')}:{_get(obj, 'spec', 'replicationState')}"

    def step(self, obj: JSON, elapsed: float, now: str) -> Update:
        wanted = str(_get(obj, "spec", "replicationState"))
        generation = int(_get(obj, "metadata", "generation") or 0)
        status = obj.get("status") or {}
        pvc = str(_get(obj, "spec", "dataSource", "name"))
        if wanted not in _CEPH_DONE:
            return Update()
        state, reason, message = _CEPH_DONE[wanted]
        if pvc in self.failing:
            failure = f"failed to {wanted} {pvc}: rbd mirror peer unreachable (simulated)"
            if status.get("message") == failure and status.get("observedGeneration") == generation:
                return Update()
            return Update(
                status={
                    "state": status.get("state", "Unknown"),
                    "message": failure,
                    "observedGeneration": generation,
                    "conditions": [
                        _cond("Completed", "False", _CEPH_FAILED[wanted], failure, now, generation),
                        _cond("Degraded", "True", "Error", failure, now, generation),
                        _cond("Resyncing", "False", "NotResyncing", "not resyncing", now, generation),
                    ],
                }
            )
        if elapsed < self.transition_seconds:
            return Update()
        syncing = wanted != "primary" and elapsed < 2 * self.transition_seconds
        if syncing:
            message = _CEPH_DEGRADED[wanted]
        if (status.get("observedGeneration"), status.get("state"), status.get("message")) == (
            generation,
            state,
            message,
        ):
            return Update()  # settled: keep the status (and its times) as they are
        resyncing = syncing and wanted == "resync"
        body: JSON = {
            "state": state,
            "message": message,
            "observedGeneration": generation,
            "lastCompletionTime": now,
            "conditions": [
                _cond("Completed", "True", reason, _CEPH_DONE[wanted][2], now, generation),
                _cond("Degraded", "True", "VolumeDegraded", "volume is degraded", now, generation)
                if syncing
                else _cond("Degraded", "False", "Healthy", "volume is healthy", now, generation),
                _cond("Resyncing", "True", "ResyncTriggered", "resync is triggered", now, generation)
                if resyncing
                else _cond("Resyncing", "False", "NotResyncing", "volume is not resyncing", now, generation),
            ],
        }
        if wanted == "primary":
            body["lastSyncTime"] = now
        elif wanted == "resync" and "lastSyncTime" in status:
            body["lastSyncTime"] = status["lastSyncTime"]
        return Update(status=body)


# --- NetApp Trident ------------------------------------------------------------------------------------

_TRIDENT_TRANSITION = {
    "promoted": "promoting",
    "established": "establishing",
    "reestablished": "reestablishing",
}


@dataclass
class TridentSimulator(BackendSimulator):
    """Trident's TMR controller: per mapping, the ``-ing`` state during the transition, then the requested
    one; ``failed`` with a message for a failing PVC."""

    resource: Resource = field(default=TRIDENT_MIRROR_RELATIONSHIP, init=False)

    def wants(self, obj: JSON) -> str:
        return f"{_get(obj, 'metadata', 'generation')}:{_get(obj, 'spec', 'state')}"

    def step(self, obj: JSON, elapsed: float, now: str) -> Update:
        wanted = str(_get(obj, "spec", "state"))
        if wanted not in _TRIDENT_TRANSITION:
            return Update()
        generation = int(_get(obj, "metadata", "generation") or 0)
        old = {
            c.get("localPVCName"): c for c in _get(obj, "status", "conditions") or () if isinstance(c, dict)
        }
        conditions = []
        for mapping in _get(obj, "spec", "volumeMappings") or ():
            pvc = str(mapping.get("localPVCName"))
            if pvc in self.failing:
                state, message = "failed", f"SnapMirror update of {pvc} failed (simulated)"
            elif elapsed < self.transition_seconds:
                state, message = _TRIDENT_TRANSITION[wanted], ""
            else:
                state, message = wanted, ""
            before = old.get(pvc) or {}
            since = before.get("lastTransitionTime", now) if before.get("state") == state else now
            conditions.append(
                {
                    "state": state,
                    "message": message,
                    "lastTransitionTime": since,
                    "observedGeneration": generation,
                    "localPVCName": pvc,
                    "localVolumeHandle": f"sim-{pvc}",
                    "remoteVolumeHandle": mapping.get("remoteVolumeHandle", ""),
                    "replicationPolicy": _get(obj, "spec", "replicationPolicy") or "",
                    "replicationSchedule": _get(obj, "spec", "replicationSchedule") or "",
                }
            )
        return Update(status={"conditions": conditions})


# --- Dell PowerStore (CSM replication) -----------------------------------------------------------------

_DELL_ROLE = {"FAILOVER_LOCAL": True, "FAILOVER_REMOTE": False}


@dataclass
class DellSimulator(BackendSimulator):
    """Dell's replication-group controller: reports the link and role; runs ``spec.action`` for
    ``transition_seconds`` then clears it and records ``lastAction``; a group that became (or resyncs as) the
    destination reports its link ``SYNC_IN_PROGRESS`` for another ``transition_seconds``, then
    ``SYNCHRONIZED``. New groups start as the source (``initial_source``)."""

    initial_source: bool = True
    resource: Resource = field(default=DELL_REPLICATION_GROUP, init=False)

    def wants(self, obj: JSON) -> str:
        return str(_get(obj, "spec", "action") or "")

    def step(self, obj: JSON, elapsed: float, now: str) -> Update:
        status = obj.get("status") or {}
        name = str(_get(obj, "metadata", "name"))
        link = status.get("replicationLinkState")
        if not isinstance(link, dict):
            link = {"state": "SYNCHRONIZED", "isSource": self.initial_source, "lastSuccessfulUpdate": now}
            return Update(status={"state": "Ready", "replicationLinkState": link})
        action = str(_get(obj, "spec", "action") or "")
        if not action:
            if link.get("state") == "SYNC_IN_PROGRESS" and elapsed >= self.transition_seconds:
                return Update(status={**status, "replicationLinkState": {**link, "state": "SYNCHRONIZED"}})
            return Update()
        if name in self.failing:
            error = f"action {action} failed: remote system unreachable (simulated)"
            if status.get("state") == "Error" and _get(status, "lastAction", "errorMessage") == error:
                return Update()
            last = {"condition": f"Action {action} failed", "time": now, "errorMessage": error}
            return Update(status={**status, "state": "Error", "lastAction": last})
        if elapsed < self.transition_seconds:
            if status.get("state") == "Error":  # the failure cleared: back to working on the action
                return Update(
                    status={
                        **status,
                        "state": "Ready",
                        "lastAction": {"condition": f"Action {action} in progress", "time": now},
                    }
                )
            return Update()
        is_source = _DELL_ROLE.get(action, link.get("isSource"))
        # A new destination (or a resync) catches up for another transition before it is synchronized.
        link_state = "SYNCHRONIZED" if is_source else "SYNC_IN_PROGRESS"
        new_link = {"state": link_state, "isSource": is_source, "lastSuccessfulUpdate": now}
        last = {"condition": f"Action {action} succeeded", "time": now}
        return Update(
            status={"state": "Ready", "replicationLinkState": new_link, "lastAction": last},
            spec={"action": ""},
        )
