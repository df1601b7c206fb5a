"""Filling an in-process emulator directly gives the cluster that populating it over HTTP gives."""

import pytest
import trio
import trio.lowlevel

from couchestor.kube import KubeClient, load_kubeconfig
from couchestor.sim.apiserver import ApiServer
from couchestor.sim.bulk import BulkError, populate_local
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, default_spec, populate

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
