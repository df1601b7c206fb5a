"""Fill an API server with a simulated Mayastor cluster: CRDs, StorageClass, DiskPools, PVs, PVCs and volumes.

Used by ``couchestor sim up``, ``couchestor demo`` and the tests. Objects are created through the API like any
client would (so it works against kind too), many requests at a time.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import AlreadyExists
from k8s_schemas.annotations import MAYASTOR_CSI_DRIVER
from k8s_schemas.crds import diskpool_crd, mayastor_volume_crd, storage_policy_crd, tier_migration_crd

GI = 2**30
#: DiskPool annotation giving a simulated pool's capacity (a quantity) when its status has none yet.
SIM_CAPACITY = "sim.couchestor.io/capacity"


@dataclass(frozen=True, slots=True)
class PoolSpec:
    name: str
    node: str
    tier: str
    capacity: int


@dataclass(frozen=True, slots=True)
class VolumeSpec:
    pv: str
    uuid: str
    namespace: str
    pvc: str
    size: int
    tier: str
    labels: dict[str, str]
    #: The PVC's annotations (a pin, say).
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What to create. ``volumes`` are spread over the tiers in ``volume_tiers`` round-robin."""

    pools: tuple[PoolSpec, ...]
    volumes: tuple[VolumeSpec, ...]
    storage_class: str = "mayastor"
    mayastor_namespace: str = "mayastor"
    replicas: int = 1


def default_spec(
    volumes: int = 200,
    *,
    seed: int = 1,
    hot_pools: int = 3,
    cold_pools: int = 3,
    warm_pools: int = 0,
    pool_capacity: int = 10_000 * GI,
    volume_sizes: Iterable[int] = (10 * GI, 20 * GI, 50 * GI),
    apps: Iterable[str] = ("web", "db", "cache", "logs"),
    replicas: int = 1,
    mayastor_namespace: str = "mayastor",
) -> ClusterSpec:
    """A reproducible cluster: pools on their own nodes, volumes of a few sizes and apps, half on each tier."""
    rng = random.Random(seed)
    pools: list[PoolSpec] = []
    node = 0
    for tier, count in (("hot", hot_pools), ("warm", warm_pools), ("cold", cold_pools)):
        for i in range(count):
            node += 1
            pools.append(PoolSpec(f"pool-{tier}-{i + 1}", f"node-{node}", tier, pool_capacity))
    tiers = [t for t, n in (("hot", hot_pools), ("cold", cold_pools)) if n] or ["cold"]
    sizes, app_names = list(volume_sizes), list(apps)
    vols = []
    for i in range(volumes):
        vol_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        app = app_names[i % len(app_names)]
        vols.append(
            VolumeSpec(
                pv=f"pvc-{vol_uuid}",
                uuid=vol_uuid,
                namespace=f"team-{app}",
                pvc=f"{app}-data-{i}",
                size=rng.choice(sizes),
                tier=tiers[i % len(tiers)],
                labels={"app": app, "workload": app},
            )
        )
    return ClusterSpec(tuple(pools), tuple(vols), replicas=replicas, mayastor_namespace=mayastor_namespace)


#: How long a new CRD may take to be served (a real API server establishes it a moment after creating it).
ESTABLISH_TIMEOUT = 60.0


async def install_crds(client: KubeClient) -> None:
    """Create the StoragePolicy and TierMigration CRDs and the simulation CRDs (MayastorVolume, DiskPool);
    existing ones stay.

    Returns once each is ``Established``; raises :class:`TimeoutError` naming the CRD after
    :data:`ESTABLISH_TIMEOUT` seconds.
    """
    crds = (storage_policy_crd(), tier_migration_crd(), mayastor_volume_crd(), diskpool_crd())
    for crd in crds:
        await _create(client, resources.CUSTOM_RESOURCE_DEFINITION, crd)
    for crd in crds:
        name = crd["metadata"]["name"]
        deadline = trio.current_time() + ESTABLISH_TIMEOUT
        while not await _established(client, name):
            if trio.current_time() > deadline:
                raise TimeoutError(
                    f"CustomResourceDefinition {name} not Established after {ESTABLISH_TIMEOUT:g}s"
                )
            await trio.sleep(0.1)


async def _established(client: KubeClient, name: str) -> bool:
    crd = await client.get(resources.CUSTOM_RESOURCE_DEFINITION, name, type=dict)
    conditions = (crd.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def populate(
    client: KubeClient,
    spec: ClusterSpec,
    *,
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Create everything in ``spec``; ``progress(done, total)`` is called as volumes are created."""
    await populate_pools(client, spec)
    await populate_volumes(client, spec, concurrency=concurrency, progress=progress)


async def populate_pools(client: KubeClient, spec: ClusterSpec) -> None:
    """Create the CRDs, the namespaces, the StorageClass and the DiskPools of ``spec``."""
    await install_crds(client)
    namespaces = {spec.mayastor_namespace} | {v.namespace for v in spec.volumes}
    for ns in sorted(namespaces):
        await _create(
            client, resources.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        )
    await _create(client, resources.STORAGE_CLASS, storage_class(spec.storage_class, spec.replicas))
    for pool in spec.pools:
        await _create(client, resources.DISK_POOL, diskpool(pool, spec.mayastor_namespace))


async def populate_volumes(
    client: KubeClient,
    spec: ClusterSpec,
    *,
    mayastor_volumes: bool = True,
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Create each volume's PVC and PV, and its MayastorVolume unless ``mayastor_volumes`` is false (Mayastor
    2.x keeps volumes behind its REST API); ``progress(done, total)`` is called as volumes are created."""
    limiter = trio.CapacityLimiter(concurrency)
    done = 0

    async def one(volume: VolumeSpec) -> None:
        nonlocal done
        async with limiter:
            for res, body in volume_objects(volume, spec):
                if mayastor_volumes or res is not resources.MAYASTOR_VOLUME:
                    await _create(client, res, body)
        done += 1
        if progress is not None:
            progress(done, len(spec.volumes))

    async with trio.open_nursery() as nursery:
        for volume in spec.volumes:
            nursery.start_soon(one, volume)


def storage_class(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": MAYASTOR_CSI_DRIVER,
        "parameters": {"repl": str(replicas), "protocol": "nvmf", "ioTimeout": "60"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def diskpool(pool: PoolSpec, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "openebs.io/v1beta2",
        "kind": "DiskPool",
        "metadata": {
            "name": pool.name,
            "namespace": namespace,
            "labels": {"tier": pool.tier},
            # A real pool learns its size from its disk; the simulated one reads it from here.
            "annotations": {SIM_CAPACITY: str(pool.capacity)},
        },
        "spec": {"node": pool.node, "disks": [f"aio:///dev/disk/by-id/{pool.name}"]},
    }


def volume_objects(volume: VolumeSpec, spec: ClusterSpec) -> list[tuple[resources.Resource, dict[str, Any]]]:
    """PVC, PV (bound to it) and MayastorVolume of one volume, in creation order."""
    size = f"{volume.size // GI}Gi"
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": volume.pvc,
            "namespace": volume.namespace,
            "labels": volume.labels,
            **({"annotations": dict(volume.annotations)} if volume.annotations else {}),
        },
        "spec": {
            "storageClassName": spec.storage_class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "volumeName": volume.pv,
        },
    }
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume.pv,
            "annotations": {"pv.kubernetes.io/provisioned-by": MAYASTOR_CSI_DRIVER},
        },
        "spec": {
            "storageClassName": spec.storage_class,
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "csi": {"driver": MAYASTOR_CSI_DRIVER, "volumeHandle": volume.uuid, "fsType": "ext4"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": volume.namespace,
                "name": volume.pvc,
            },
        },
    }
    msv = {
        "apiVersion": "openebs.io/v1",
        "kind": "MayastorVolume",
        "metadata": {"name": volume.uuid, "namespace": spec.mayastor_namespace},
        "spec": {
            "numReplicas": spec.replicas,
            "size": volume.size,
            "topology": {"pool": {"labelled": {"inclusion": {"tier": volume.tier}}}},
        },
    }
    return [
        (resources.PERSISTENT_VOLUME_CLAIM, pvc),
        (resources.PERSISTENT_VOLUME, pv),
        (resources.MAYASTOR_VOLUME, msv),
    ]


async def _create(client: KubeClient, res: resources.Resource, body: dict[str, Any]) -> None:
    try:
        await client.create(res, body, type=dict)
    except AlreadyExists:
        pass


__all__ = [
    "ClusterSpec",
    "PoolSpec",
    "VolumeSpec",
    "default_spec",
    "install_crds",
    "populate",
    "populate_pools",
    "populate_volumes",
]
