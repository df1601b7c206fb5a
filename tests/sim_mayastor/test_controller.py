"""The Mayastor simulator as a client of the API server emulator: scale-up/down cycles, faults, the invariant."""

import msgspec
import pytest
import trio

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, populate
from k8s_schemas import DiskPool, MayastorVolume
from k8s_schemas.annotations import MIGRATION_INTENT

NS = "mayastor"


def small_cluster() -> ClusterSpec:
    pools = (
        PoolSpec("pool-hot-1", "node-1", "hot", 100 * GI),
        PoolSpec("pool-hot-2", "node-2", "hot", 100 * GI),
        PoolSpec("pool-cold-1", "node-3", "cold", 100 * GI),
    )
    vols = tuple(
        VolumeSpec(f"pvc-{i}", f"vol-{i}", "apps", f"data-{i}", 10 * GI, "cold", {"app": "x"})
        for i in range(3)
    )
    return ClusterSpec(pools, vols)


@pytest.fixture
async def sim(apiserver):
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        await populate(client, small_cluster())
        simulator = MayastorSimulator(client, namespace=NS, time_scale=60.0, tick=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(simulator.run)
            yield client, simulator
            nursery.cancel_scope.cancel()


async def get_volume(client, name):
    return await client.get(resources.MAYASTOR_VOLUME, name, NS, type=MayastorVolume)


async def wait_for(client, name, predicate, timeout=10.0):
    with trio.fail_after(timeout):
        while True:
            vol = await get_volume(client, name)
            if predicate(vol):
                return vol
            await trio.sleep(0.05)


async def test_new_volumes_are_placed_synced_on_their_tier(sim):
    client, _ = sim
    vol = await wait_for(client, "vol-0", lambda v: v.replicas and all(r.healthy for r in v.replicas))
    assert [r.pool for r in vol.replicas] == ["pool-cold-1"]
    assert vol.status.state == "Online"
    pool = await client.get(resources.DISK_POOL, "pool-cold-1", NS, type=DiskPool)
    await trio.sleep(0.2)
    pool = await client.get(resources.DISK_POOL, "pool-cold-1", NS, type=DiskPool)
    assert pool.used_bytes == 30 * GI
    assert pool.health == "Online"


async def test_safe_scale_up_then_down_moves_the_volume_and_keeps_the_invariant(sim):
    client, simulator = sim
    await wait_for(client, "vol-1", lambda v: v.replicas and v.replicas[0].healthy)
    await client.merge_patch(
        resources.MAYASTOR_VOLUME, "vol-1",
        {"metadata": {"annotations": {MIGRATION_INTENT: "{}"}},
         "spec": {"numReplicas": 2, "topology": {"pool": {"labelled": {"inclusion": {"tier": "hot"}}}}}},
        NS, type=dict,
    )  # fmt: skip
    seen_syncing = False

    def synced_twice(v):
        nonlocal seen_syncing
        seen_syncing = seen_syncing or any(r.sync_state == "Syncing" for r in v.replicas)
        return len(v.replicas) == 2 and all(r.healthy for r in v.replicas)

    vol = await wait_for(client, "vol-1", synced_twice)
    assert seen_syncing
    assert {r.pool for r in vol.replicas} == {"pool-cold-1", "pool-hot-1"} or {
        r.pool for r in vol.replicas
    } == {
        "pool-cold-1",
        "pool-hot-2",
    }
    await client.merge_patch(
        resources.MAYASTOR_VOLUME, "vol-1",
        {"metadata": {"annotations": {MIGRATION_INTENT: None}}, "spec": {"numReplicas": 1}}, NS, type=dict,
    )  # fmt: skip
    vol = await wait_for(client, "vol-1", lambda v: len(v.replicas) == 1)
    assert vol.replicas[0].pool.startswith("pool-hot")
    assert vol.replicas[0].healthy
    simulator.checker.assert_clean()


async def test_checker_catches_scale_down_before_sync(sim):
    client, simulator = sim
    simulator.stall_rebuilds(pool="pool-hot-1")
    simulator.stall_rebuilds(pool="pool-hot-2")
    await wait_for(client, "vol-2", lambda v: v.replicas and v.replicas[0].healthy)
    await client.merge_patch(
        resources.MAYASTOR_VOLUME, "vol-2",
        {"metadata": {"annotations": {MIGRATION_INTENT: "{}"}},
         "spec": {"numReplicas": 2, "topology": {"pool": {"labelled": {"inclusion": {"tier": "hot"}}}}}},
        NS, type=dict,
    )  # fmt: skip
    await wait_for(client, "vol-2", lambda v: any(r.sync_state == "Syncing" for r in v.replicas))
    # Unsafe: scale down while the new replica is still rebuilding, and fault the old one's pool.
    await client.merge_patch(resources.MAYASTOR_VOLUME, "vol-2", {"spec": {"numReplicas": 1}}, NS, type=dict)
    simulator.set_pool_state("pool-cold-1", "Faulted")
    await wait_for(client, "vol-2", lambda v: v.status.state == "Faulted")  # no Synced copy left
    with pytest.raises(AssertionError, match="lost its last Synced replica"):
        simulator.checker.assert_clean()


async def test_fault_knobs_show_in_status(sim):
    client, simulator = sim
    await wait_for(client, "vol-0", lambda v: v.replicas and v.replicas[0].healthy)
    simulator.fault_replica("vol-0", "pool-cold-1")
    vol = await wait_for(client, "vol-0", lambda v: v.replicas[0].state == "Faulted")
    assert vol.status.state == "Faulted"
    simulator.set_pool_state("pool-hot-2", "Offline")
    with trio.fail_after(5):
        while (await client.get(resources.DISK_POOL, "pool-hot-2", NS, type=DiskPool)).health != "Unknown":
            await trio.sleep(0.05)
    raw = await client.get(resources.DISK_POOL, "pool-hot-2", NS, type=dict)
    assert msgspec.convert(raw["status"], dict)["state"] == "Offline"


async def test_a_status_write_the_api_server_refused_is_written_again(sim, apiserver):
    # A real control plane keeps trying to publish a volume's state; an API server restart mid-rebuild must not
    # leave the MayastorVolume showing a rebuild that finished long ago (the operator would wait on it forever).
    client, simulator = sim
    await wait_for(client, "vol-2", lambda v: v.replicas and v.replicas[0].healthy)
    chaos = apiserver.api.chaos
    chaos.add_fault(status=403, method="PATCH", path_regex="mayastorvolumes/vol-2/status", count=-1)
    await client.merge_patch(
        resources.MAYASTOR_VOLUME, "vol-2",
        {"spec": {"numReplicas": 2, "topology": {"pool": {"labelled": {"inclusion": {"tier": "hot"}}}}}},
        NS, type=dict,
    )  # fmt: skip
    model = simulator.cluster.volumes["vol-2"]
    with trio.fail_after(10):
        while not (len(model.replicas) == 2 and all(r.healthy for r in model.replicas)):
            await trio.sleep(0.05)
    await trio.sleep(0.3)  # several ticks with nothing left to change
    chaos.clear()
    vol = await wait_for(
        client, "vol-2", lambda v: len(v.replicas) == 2 and all(r.healthy for r in v.replicas)
    )
    assert vol.status.state == "Online"
