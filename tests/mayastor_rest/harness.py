"""Shared setup of the REST backend tests: the API server emulator with DiskPools and a PV, the simulated
Mayastor 2.x control plane, and a RestBackend over both.

Volume ``VOL`` starts with one replica on ``pool-cold-1`` (node-3, which also hosts its target), so Mayastor's
own rules would drop the *new* remote replica on scale-down: the backend has to steer and verify.
"""

from datetime import UTC, datetime

import trio

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.reflector import Reflector
from couchestor.mayastor_rest import MayastorRestClient, RestBackend
from couchestor.mayastor_rest.backend import PV_INDEXERS
from couchestor.migration.intent import Intent
from couchestor.sim.mayastor_rest import RestSimulator
from couchestor.sim.populate import GI, PoolSpec, diskpool, install_crds
from k8s_schemas.annotations import MAYASTOR_CSI_DRIVER
from k8s_schemas.core import PersistentVolume

NS = "mayastor"
VOL = "0b5d4c55-6c0e-4f0e-9a55-5f3a5c4b2a01"
PV = f"pvc-{VOL}"
HOT = {"tier": "hot"}


class Env:
    def __init__(self, client, sim, rest, pvs, backend, nursery):
        self.client, self.sim, self.rest, self.pvs, self.backend = client, sim, rest, pvs, backend
        #: Tasks a test starts go here, so they stop before the clients close.
        self.nursery = nursery

    def new_backend(self, **kw):
        return RestBackend(self.rest, self.client, self.pvs, poll_interval=0.05, **kw)

    async def pv(self):
        return await self.client.get(resources.PERSISTENT_VOLUME, PV, type=PersistentVolume)

    async def wait_synced(self, count):
        with trio.fail_after(20):
            while True:
                state = await self.backend.read(VOL)
                if len(state.replicas) == count and state.healthy_count == count:
                    return state
                await self.backend.wait_changed(VOL, state.version)


def intent(**kw):
    fields = {
        "pv": PV,
        "volume": VOL,
        "policy": "tiering",
        "from_tier": "cold",
        "to_tier": "hot",
        "target_pool": "pool-hot-2",
        "source_pools": ["pool-cold-1"],
        "original_replicas": 1,
        "original_inclusion": {},
        "target_inclusion": HOT,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "operator": "test",
        "trigger_iops": 9000.0,
        "timeout_seconds": 600,
    }
    fields.update(kw)
    return Intent(**fields)


async def add_volume(client, sim, volume, pool, *, published=True):
    """A 1 GiB volume with one replica on ``pool``, and its PV ``pvc-<volume>``; ``published``: with a target."""
    sim.plane.create_volume(
        volume, size=GI, replicas=1, topology=None, now=sim.now(), pools=[pool], published=published
    )
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{volume}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "csi": {"driver": MAYASTOR_CSI_DRIVER, "volumeHandle": volume},
        },
    }
    await client.create(resources.PERSISTENT_VOLUME, pv, type=dict)


async def wait_for_pv(store, name):
    with trio.fail_after(10):
        while store.get(name) is None:
            await trio.sleep(0.02)


async def open_env(apiserver, *, release="2.8+", transport=None):
    """Everything runs in a nursery of its own, cancelled before the clients close. ``release``: the Mayastor
    release the simulator plays; ``transport``: the REST client's (e.g. a spec-checking one)."""
    async with (
        KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client,
        trio.open_nursery() as nursery,
    ):
        await install_crds(client)
        await client.create(
            resources.NAMESPACE,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            type=dict,
        )
        # pool-hot-1 has the most room: unsteered, Mayastor would put the new replica there.
        for pool in (
            PoolSpec("pool-hot-1", "node-1", "hot", 500 * GI),
            PoolSpec("pool-hot-2", "node-2", "hot", 100 * GI),
            PoolSpec("pool-cold-1", "node-3", "cold", 100 * GI),
            PoolSpec("pool-cold-2", "node-4", "cold", 100 * GI),
        ):
            await client.create(resources.DISK_POOL, diskpool(pool, NS), type=dict)
        sim = RestSimulator(client, namespace=NS, time_scale=60.0, tick=0.05, release=release)
        await nursery.start(sim.run)
        await add_volume(client, sim, VOL, "pool-cold-1")
        pvs = Reflector.for_resource(
            client, resources.PERSISTENT_VOLUME, PersistentVolume, indexers=PV_INDEXERS
        )
        nursery.start_soon(pvs.run)
        await pvs.store.wait_synced()
        await wait_for_pv(pvs.store, PV)
        async with MayastorRestClient(sim.url, transport=transport) as rest:
            backend = RestBackend(rest, client, pvs.store, poll_interval=0.05)
            yield Env(client, sim, rest, pvs.store, backend, nursery)
        nursery.cancel_scope.cancel()


class Patched:
    """``rest`` with some methods replaced (fault injection)."""

    def __init__(self, rest, **methods):
        self._rest, self._methods = rest, methods

    def __getattr__(self, name):
        return self._methods.get(name) or getattr(self._rest, name)
