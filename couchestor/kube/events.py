"""Kubernetes Events (``core/v1``) about the operator's objects, as ``kubectl describe`` shows them.

Events of cluster-scoped objects (PersistentVolumes, StoragePolicies) are written to the ``default``
namespace, as the kubelet and controllers do. Recording an Event is best effort for callers: it is a POST
(never retried once sent, so never duplicated) and a failure should be logged, not propagated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from couchestor.kube import objects
from couchestor.kube.client import KubeClient
from couchestor.kube.resources import EVENT, Resource

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


async def record_event(
    client: KubeClient,
    resource: Resource,
    obj: object,
    *,
    type: EventType,
    reason: str,
    message: str,
    component: str = "couchestor",
    instance: str = "",
) -> dict[str, Any]:
    """Create an Event about ``obj``; returns the created Event. Raises like :meth:`KubeClient.create`."""
    body = event_body(
        resource, obj, type=type, reason=reason, message=message, component=component, instance=instance
    )
    created: dict[str, Any] = await client.create(EVENT, body, body["metadata"]["namespace"], type=dict)
    return created
