"""The Mayastor simulator through the API server emulator: volumes for bare PVs, status fields, and the fault
knobs not covered elsewhere (node down, a pool faulting in the middle of a rebuild)."""

from __future__ import annotations

import pytest
import trio

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.errors import NotFound
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, populate
from k8s_schemas.annotations import MAYASTOR_CSI_DRIVER, MIGRATION_INTENT

NS = "mayastor"
MIB = 2**20


def _cluster() -> ClusterSpec:
    pools = (
        PoolSpec("pool-hot-1", "node-1", "hot", 100 * GI),
        PoolSpec("pool-hot-2", "node-2", "hot", 100 * GI),
        PoolSpec("pool-cold-1", "node-3", "cold", 100 * GI),
    )
    vols = tuple(
        VolumeSpec(f"pvc-{i}", f"vol-{i}", "apps", f"data-{i}", 10 * GI, "cold", {"app": "x"})
        for i in range(2)
    )
    return ClusterSpec(pools, vols)


@pytest.fixture
async def sim(apiserver):
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        await populate(client, _cluster())
        simulator = MayastorSimulator(client, namespace=NS, time_scale=60.0, tick=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(simulator.run)
            yield client, simulator
            nursery.cancel_scope.cancel()


async def _raw(client, res, name):
    return await client.get(res, name, NS, type=dict)


async def _until(client, res, name, predicate, timeout=20.0):
    """The object once ``predicate(object as a dict)`` holds, polling through the API."""
    with trio.fail_after(timeout):
        while True:
            try:
                obj = await _raw(client, res, name)
            except NotFound:  # not created yet
                obj = None
            if obj is not None and predicate(obj):
                return obj
            await trio.sleep(0.05)


def _replicas(obj):
    return (obj.get("status") or {}).get("replicas") or []


def _placed(obj):
    reps = _replicas(obj)
    return bool(reps) and all(r["state"] == "Online" and r["syncState"] == "Synced" for r in reps)


async def test_a_bare_mayastor_pv_gets_a_volume_named_by_its_handle(sim):
    client, _ = sim
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pvc-bare"},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "mayastor",
            "csi": {"driver": MAYASTOR_CSI_DRIVER, "volumeHandle": "vol-bare"},
        },
    }
    await client.create(resources.PERSISTENT_VOLUME, pv, type=dict)
    msv = await _until(client, resources.MAYASTOR_VOLUME, "vol-bare", _placed)
    assert msv["spec"]["numReplicas"] >= 1
    assert msv["status"]["state"] == "Online"


async def test_status_carries_nexus_uris_and_rebuild_progress(sim):
    client, simulator = sim
    await _until(client, resources.MAYASTOR_VOLUME, "vol-0", _placed)
    for pool in ("pool-hot-1", "pool-hot-2"):
        simulator.set_bandwidth(pool, 20 * MIB)  # 10 GiB at 20 MiB/s: ~8.5 s of wall time at time_scale 60
    await client.merge_patch(
        resources.MAYASTOR_VOLUME, "vol-0",
        {"metadata": {"annotations": {MIGRATION_INTENT: "{}"}},
         "spec": {"numReplicas": 2, "topology": {"pool": {"labelled": {"inclusion": {"tier": "hot"}}}}}},
        NS, type=dict,
    )  # fmt: skip

    def rebuilding(obj):
        return any(0 < r.get("rebuildProgress", 0) < 100 for r in _replicas(obj))

    obj = await _until(client, resources.MAYASTOR_VOLUME, "vol-0", rebuilding)
    status = obj["status"]
    assert status["state"] == "Degraded"
    assert status["nexus"]["node"] == "node-3"
    new = next(r for r in status["replicas"] if r["syncState"] == "Syncing")
    assert new["pool"].startswith("pool-hot-")
    assert new["uri"].startswith(f"nvmf://{new['node']}:")
    # Mid-rebuild, the target pool faults: the new replica is Faulted, the old copy stays Synced.
    simulator.set_pool_state(new["pool"], "Faulted")

    def target_faulted(obj):
        return any(r["pool"] == new["pool"] and r["state"] == "Faulted" for r in _replicas(obj))

    obj = await _until(client, resources.MAYASTOR_VOLUME, "vol-0", target_faulted)
    old = next(r for r in obj["status"]["replicas"] if r["pool"] == "pool-cold-1")
    assert (old["state"], old["syncState"]) == ("Online", "Synced")
    assert obj["status"]["state"] == "Degraded"
    pool = await _until(
        client, resources.DISK_POOL, new["pool"], lambda p: (p.get("status") or {}).get("state") == "Faulted"
    )
    assert pool["status"]["pool_status"] == "Faulted"
    simulator.checker.assert_clean()


async def test_node_down_takes_its_pools_and_replicas_with_it(sim):
    client, simulator = sim
    await _until(client, resources.MAYASTOR_VOLUME, "vol-1", _placed)
    simulator.node_down("node-3")
    pool = await _until(
        client,
        resources.DISK_POOL,
        "pool-cold-1",
        lambda p: (p.get("status") or {}).get("state") == "Offline",
    )
    assert pool["status"]["pool_status"] == "Unknown"
    vol = await _until(
        client,
        resources.MAYASTOR_VOLUME,
        "vol-1",
        lambda v: (v.get("status") or {}).get("state") == "Faulted",
    )
    assert [r["state"] for r in _replicas(vol)] == ["Faulted"]
    simulator.node_down("node-3", down=False)
    await _until(
        client, resources.DISK_POOL, "pool-cold-1", lambda p: (p.get("status") or {}).get("state") == "Online"
    )
