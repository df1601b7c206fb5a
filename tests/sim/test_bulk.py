"""Filling an in-process emulator directly gives the cluster that populating it over HTTP gives."""

import pytest
import trio
import trio.lowlevel

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.sim.apiserver import ApiServer
from couchestor.sim.bulk import BulkError, populate_local
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, default_spec, populate
from k8s_schemas.mayastor import DiskPool, MayastorVolume

#: What differs between two fills of the same spec: identities and times.
_VOLATILE = ("uid", "creationTimestamp", "resourceVersion")


def _objects(api: ApiServer) -> dict[str, dict[tuple[str, str], dict]]:
    out = {}
    for name in api.cluster.store.buckets:
        bucket = api.cluster.store.bucket(name)
        objs = {}
        for key, record in bucket.entries.items():
            obj = record.obj()
            for field in _VOLATILE:
                obj["metadata"].pop(field, None)
            obj.get("status", {}).pop("conditions", None)  # CRD conditions carry their transition times
            objs[key] = obj
        out[name] = objs
    return out


async def test_populate_local_creates_what_populate_over_http_creates(apiserver):
    spec = default_spec(12, hot_pools=2, cold_pools=1)
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        await populate(client, spec)
    local = ApiServer()
    seen: list[tuple[int, int]] = []
    await populate_local(local, spec, progress=lambda done, total: seen.append((done, total)))
    over_http, direct = _objects(apiserver.api), _objects(local)
    assert direct == over_http
    assert len(direct["persistentvolumes"]) == len(direct["persistentvolumeclaims"]) == 12
    assert seen[-1] == (12, 12)
    # Filling again leaves what exists as it is, as populate does.
    await populate_local(local, spec)
    assert _objects(local) == direct


async def test_populate_local_without_mayastor_volumes():
    api = ApiServer()
    await populate_local(api, default_spec(3), mayastor_volumes=False)
    assert "mayastorvolumes.openebs.io" not in {
        n for n in api.cluster.store.buckets if api.cluster.store.bucket(n).entries
    }
    assert len(api.cluster.store.bucket("persistentvolumes").entries) == 3


async def test_an_object_the_emulator_refuses_is_a_clear_error():
    bad = ClusterSpec(
        (PoolSpec("pool-1", "node-1", "hot", 100 * GI),),
        (VolumeSpec("pvc-1", "vol-1", "apps", "Not_A_Valid_Name", 10 * GI, "hot", {}),),
    )
    with pytest.raises(BulkError, match="PersistentVolumeClaim Not_A_Valid_Name"):
        await populate_local(ApiServer(), bad)


async def test_the_emulator_keeps_serving_while_it_fills(apiserver):
    """Filling runs in slices with checkpoints: another task gets to run before it ends."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        await populate_local(apiserver.api, default_spec(1000))
        filled_with = ticks
        nursery.cancel_scope.cancel()
    # Five slices: the other task ran between them (without the checkpoints it could not run at all).
    assert filled_with >= 3


async def test_a_placed_fill_is_adopted_by_the_simulator_as_it_is(apiserver):
    """``placed``: replicas synced on pools of the volume's tier, pools' use written; the Mayastor simulator
    takes them over without rewriting one volume status, and still writes the next real change."""
    spec = default_spec(30, hot_pools=2, cold_pools=2, replicas=2)
    await populate_local(apiserver.api, spec, placed=True)
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        volumes = (await client.list_all(resources.MAYASTOR_VOLUME, "mayastor", type=MayastorVolume)).items
        pools = {
            p.metadata.name: p
            for p in (await client.list_all(resources.DISK_POOL, "mayastor", type=DiskPool)).items
        }
        tier_of = {v.uuid: v.tier for v in spec.volumes}
        used: dict[str, int] = {}
        for vol in volumes:
            assert len(vol.replicas) == 2
            assert all(r.healthy for r in vol.replicas)
            assert len({r.node for r in vol.replicas}) == 2
            assert {pools[r.pool].metadata.labels["tier"] for r in vol.replicas} == {
                tier_of[vol.metadata.name]
            }
            for r in vol.replicas:
                used[r.pool] = used.get(r.pool, 0) + vol.spec.size
        assert len(volumes) == 30
        assert {name: pool.used_bytes for name, pool in pools.items() if name in used} == used

        simulator = MayastorSimulator(client, namespace="mayastor", time_scale=60.0, tick=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(simulator.run)
            await trio.sleep(0.5)  # ten ticks
            assert simulator.status_writes == len(spec.pools)  # its pools, once; no volume
            assert len(simulator.cluster.volumes) == 30
            name = volumes[0].metadata.name
            patch = {"spec": {"numReplicas": 1}}
            await client.merge_patch(resources.MAYASTOR_VOLUME, name, patch, "mayastor", type=dict)

            async def replicas() -> int:
                vol = await client.get(resources.MAYASTOR_VOLUME, name, "mayastor", type=MayastorVolume)
                return len(vol.replicas)

            with trio.fail_after(10):
                while await replicas() != 1:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
