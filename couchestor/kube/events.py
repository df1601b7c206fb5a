"""Kubernetes Events (``core/v1``) about the operator's objects, as ``kubectl describe`` shows them.

Events of cluster-scoped objects (PersistentVolumes, StoragePolicies) are written to the ``default``
namespace, as the kubelet and controllers do. They are best effort, as client-go's recorder makes them:
:meth:`EventRecorder.emit` never waits for the API server (a reconcile pass deciding about 50,000 volumes
must not wait for 50,000 POSTs), a bounded queue drops Events the server cannot take fast enough, and a
per-object token bucket keeps one object from flooding it. Each Event is one POST, never retried once sent
(so never duplicated).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any, Literal

import trio

from couchestor.kube import objects
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import KubeError
from couchestor.kube.resources import EVENT, Resource

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]


def event_body(
    resource: Resource,
    obj: object,
    *,
    type: EventType,
    reason: str,
    message: str,
    component: str = "couchestor",
    instance: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The body of an Event about ``obj`` (a Struct with ``metadata`` or a dict) of ``resource``."""
    key = objects.object_key(obj)
    involved: dict[str, Any] = {"apiVersion": resource.api_version, "kind": resource.kind, "name": key.name}
    if key.namespace:
        involved["namespace"] = key.namespace
    if uid := objects.uid(obj):
        involved["uid"] = uid
    rv = objects.resource_version(obj)
    if rv:
        involved["resourceVersion"] = rv
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{key.name}.", "namespace": key.namespace or "default"},
        "involvedObject": involved,
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance or component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


#: What became of an emitted Event: written, or not — ``throttled`` by the per-object spam filter, ``dropped``
#: because the queue was full, ``failed`` because the API server refused it or did not answer in time.
Outcome = Literal["written", "throttled", "dropped", "failed"]


class SpamFilter:
    """Per-object token buckets, with client-go's defaults (``EventSourceObjectSpamFilter``): ``burst`` Events
    about one object at once, then one more every ``1 / rate`` seconds. Only the ``capacity`` objects seen
    last keep a bucket (least recently used first out), so memory stays bounded however many objects there
    are; an object pushed out starts again with a full bucket."""

    def __init__(self, *, burst: int = 25, rate: float = 1 / 300, capacity: int = 4096) -> None:
        self.burst = burst
        self.rate = rate
        self.capacity = capacity
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def allow(self, key: Hashable, now: float) -> bool:
        """Take a token from ``key``'s bucket at time ``now`` (seconds); False when it is empty."""
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)
        return allowed


class EventRecorder:
    """Writes Events in the background, one at a time and in the order emitted.

    :meth:`emit` queues an Event and returns at once; :meth:`run` (a task of the caller's nursery) sends
    them. Emitting before ``run`` starts is fine: the Events wait in the queue. ``on_outcome`` (optional) is
    called with the :data:`Outcome` of every emitted Event, for metrics. Events still queued when ``run`` is
    cancelled are not written.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        component: str = "couchestor",
        instance: str = "",
        queue_size: int = 1000,
        spam_filter: SpamFilter | None = None,
        timeout: float = 10.0,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.client = client
        self.component = component
        self.instance = instance
        self.timeout = timeout
        self.spam_filter = spam_filter or SpamFilter()
        self._on_outcome = on_outcome
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](queue_size)
        self._dropped = 0  # since the queue last overflowed

    def emit(self, resource: Resource, obj: object, *, type: EventType, reason: str, message: str) -> None:
        """Queue an Event about ``obj`` (a Struct with ``metadata`` or a dict) of ``resource``; never blocks,
        never raises."""
        body = event_body(
            resource,
            obj,
            type=type,
            reason=reason,
            message=message,
            component=self.component,
            instance=self.instance,
        )
        involved = body["involvedObject"]
        key = (
            resource.api_version,
            resource.kind,
            involved.get("namespace"),
            involved["name"],
            involved.get("uid"),
        )
        if not self.spam_filter.allow(key, trio.current_time()):
            self._outcome("throttled")
            return
        try:
            self._send.send_nowait(body)
        except trio.WouldBlock:
            if not self._dropped:
                log.warning("Too many Events waiting to be written: dropping new ones until the queue drains")
            self._dropped += 1
            self._outcome("dropped")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write queued Events until cancelled."""
        task_status.started()
        async for body in self._receive:
            try:
                with trio.fail_after(self.timeout):
                    await self.client.create(EVENT, body, body["metadata"]["namespace"], type=dict)
                self._outcome("written")
            except (KubeError, trio.TooSlowError) as exc:
                involved = body["involvedObject"]
                log.debug(
                    "Event %s about %s %s not recorded: %s",
                    body["reason"],
                    involved["kind"],
                    involved["name"],
                    exc,
                )
                self._outcome("failed")
            if self._dropped and self._receive.statistics().current_buffer_used == 0:
                log.warning("%d Events were dropped while the queue was full", self._dropped)
                self._dropped = 0

    def _outcome(self, outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)
