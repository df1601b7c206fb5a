"""The MayastorVolume backend against the API server emulator and the Mayastor simulator: its writes are
conditional on the state a step was decided on."""

from __future__ import annotations

import pytest
import trio

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.reflector import Reflector
from couchestor.migration.backend import IntentConflict
from couchestor.migration.crd import CrdBackend
from couchestor.migration.intent import Intent
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, populate
from k8s_schemas.mayastor import MayastorVolume

NS = "mayastor"
VOL = "vol-1"
HOT = {"tier": "hot"}
COLD = {"tier": "cold"}


@pytest.fixture
async def cluster(apiserver):
    pools = (
        PoolSpec("pool-cold-1", "node-1", "cold", 100 * GI),
        PoolSpec("pool-cold-2", "node-2", "cold", 100 * GI),
        PoolSpec("pool-hot-1", "node-3", "hot", 100 * GI),
    )
    volumes = (VolumeSpec("pvc-1", VOL, "apps", "data-1", 2 * GI, "cold", {"app": "x"}),)
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        await populate(client, ClusterSpec(pools, volumes, replicas=2))
        sim = MayastorSimulator(client, namespace=NS, time_scale=60.0, tick=0.05)
        store = Reflector.for_resource(client, resources.MAYASTOR_VOLUME, MayastorVolume, namespace=NS)
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            nursery.start_soon(store.run)
            await store.store.wait_synced()
            backend = CrdBackend(client, NS, store.store)
            nursery.start_soon(backend.run)
            yield sim, backend
            nursery.cancel_scope.cancel()


async def until(backend, predicate, timeout=20.0):
    with trio.fail_after(timeout):
        while True:
            state = await backend.read(VOL)
            if predicate(state):
                return state
            await backend.wait_changed(VOL, state.version)


def intent(state):
    return Intent(
        pv="pvc-1",
        volume=VOL,
        policy="tiering",
        from_tier="cold",
        to_tier="hot",
        target_pool="pool-hot-1",
        source_pools=sorted(r.pool for r in state.replicas),
        original_replicas=2,
        original_inclusion=dict(state.inclusion),
        target_inclusion=HOT,
        started_at="2026-02-01T10:00:00Z",
        operator="test",
        trigger_iops=9000.0,
        timeout_seconds=600,
    )


async def test_a_scale_down_decided_before_the_new_replica_faulted_is_not_written(cluster):
    # Issue 25, defect 5: the decision "all n+1 replicas healthy" was made on an earlier read; the new replica
    # faults before the write, and an unconditional scale-down makes the control plane drop a healthy old
    # replica (off the new topology) and keep the faulted new one: n-1 healthy.
    sim, backend = cluster
    state = await until(backend, lambda s: s.healthy_count == 2)
    state = await backend.write_intent(VOL, intent(state), expected_version=state.version)
    await backend.add_replica(VOL, count=3, pool="pool-hot-1", topology=HOT)
    decided = await until(backend, lambda s: s.healthy_count == 3)  # the plan decides: remove one old replica
    sim.fault_replica(VOL, "pool-hot-1")
    await until(backend, lambda s: s.healthy_count == 2)
    with pytest.raises(IntentConflict):
        await backend.remove_replica(
            VOL, count=2, pool="pool-cold-1", topology=HOT, expected_version=decided.version
        )
    state = await backend.read(VOL)
    assert state.num_replicas == 3
    assert state.healthy_count == 2
    sim.checker.assert_clean()
