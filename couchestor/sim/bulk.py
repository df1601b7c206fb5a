"""Fill an API server emulator in its own process: the objects of :mod:`couchestor.sim.populate`, created
through the emulator's own create operation instead of over HTTP.

Each object goes through exactly what a POST goes through (name and schema validation, defaults, the
protection finalizers, a resourceVersion and a watch event): only the HTTP round trip, the JSON encoding on
both sides and the client's retries are left out, which is where populating 50,000 volumes over loopback
spent its minutes. Used by the embedded cluster of ``couchestor demo``, ``couchestor sim up`` and the
benchmarks, whose emulator runs in the same process; a cluster reached over HTTP (kind, a real API server,
an emulator in another process) is filled with :func:`couchestor.sim.populate.populate` instead.

With ``placed``, every MayastorVolume is created with its replicas already placed and synced, and every
DiskPool with its use, as a cluster that has run for a while: the Mayastor simulator adopts them as they are
instead of writing 100,000 statuses over HTTP.

The work is synchronous, so it runs in slices of :data:`SLICE` volumes with a trio checkpoint between them:
the emulator keeps serving requests (the operator's watches, the simulator) while it fills.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import trio

from couchestor.kube import resources
from couchestor.sim.apiserver import ApiServer
from couchestor.sim.apiserver.errors import ApiError
from couchestor.sim.apiserver.resources import ResourceType
from couchestor.sim.mayastor.controller import pool_status, volume_status
from couchestor.sim.mayastor.model import Cluster, Pool, Volume
from couchestor.sim.populate import ClusterSpec, diskpool, storage_class, volume_objects
from k8s_schemas.crds import diskpool_crd, mayastor_volume_crd, storage_policy_crd, tier_migration_crd

#: Volumes created between two checkpoints.
SLICE = 200


class BulkError(RuntimeError):
    """The emulator refused an object; the message names it and says why."""


def _type(api: ApiServer, res: resources.Resource) -> ResourceType:
    rt = api.cluster.registry.get(res.group, res.version, res.plural)
    if rt is None:
        raise BulkError(f"the emulator does not serve {res.plural}.{res.group or 'core'}/{res.version}")
    return rt


def _create(api: ApiServer, res: resources.Resource, body: dict[str, Any]) -> None:
    namespace = body["metadata"].get("namespace", "") if res.namespaced else ""
    try:
        api.cluster.create(_type(api, res), namespace, body)
    except ApiError as exc:
        if exc.reason == "AlreadyExists":
            return
        name = body["metadata"].get("name")
        raise BulkError(f"cannot create {res.kind} {name}: {exc.message}") from None


async def populate_local(
    api: ApiServer,
    spec: ClusterSpec,
    *,
    mayastor_volumes: bool = True,
    placed: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Create everything in ``spec`` in ``api`` (CRDs, namespaces, StorageClass, DiskPools, then each
    volume's PVC, PV and MayastorVolume unless ``mayastor_volumes`` is false); existing objects are left as
    they are; with ``placed``, the MayastorVolumes' replicas are placed and synced (see the module
    docstring). ``progress(done, total)`` is called after each slice. Raises :class:`BulkError` when the
    emulator refuses an object."""
    for crd in (storage_policy_crd(), tier_migration_crd(), mayastor_volume_crd(), diskpool_crd()):
        _create(api, resources.CUSTOM_RESOURCE_DEFINITION, crd)
    for ns in sorted({spec.mayastor_namespace} | {v.namespace for v in spec.volumes}):
        _create(api, resources.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    _create(api, resources.STORAGE_CLASS, storage_class(spec.storage_class, spec.replicas))
    for pool in spec.pools:
        _create(api, resources.DISK_POOL, diskpool(pool, spec.mayastor_namespace))
    model = Cluster(pools={p.name: Pool(p.name, p.node, {"tier": p.tier}, p.capacity) for p in spec.pools})
    total = len(spec.volumes)
    for start in range(0, total, SLICE):
        for volume in spec.volumes[start : start + SLICE]:
            for res, body in volume_objects(volume, spec):
                if mayastor_volumes or res is not resources.MAYASTOR_VOLUME:
                    _create(api, res, body)
            if placed and mayastor_volumes:
                _place(api, model, spec, volume.uuid, volume.size, volume.tier)
        if progress is not None:
            progress(min(start + SLICE, total), total)
        await trio.lowlevel.checkpoint()
    if placed and mayastor_volumes:
        for used in model.pools.values():
            _set_status(api, resources.DISK_POOL, spec.mayastor_namespace, used.name, pool_status(used))


def _place(api: ApiServer, model: Cluster, spec: ClusterSpec, name: str, size: int, tier: str) -> None:
    """Place a new volume's replicas by the simulator's own rules and write them as its status."""
    volume = Volume(name, spec.mayastor_namespace, size, spec.replicas, {"tier": tier})
    model.reconcile(volume, 0.0)
    for replica in volume.replicas:  # stable and unique, unlike the model's counter (the simulator's own)
        replica.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{replica.pool}"))
    _set_status(api, resources.MAYASTOR_VOLUME, spec.mayastor_namespace, name, volume_status(volume))


def _set_status(api: ApiServer, res: resources.Resource, namespace: str, name: str, status: Any) -> None:
    raw = json.dumps({"status": status}).encode()
    try:
        api.cluster.patch(
            _type(api, res), namespace, name, "application/merge-patch+json", raw, subresource="status"
        )
    except ApiError as exc:
        raise BulkError(f"cannot write the status of {res.kind} {name}: {exc.message}") from None


__all__ = ["BulkError", "populate_local"]
