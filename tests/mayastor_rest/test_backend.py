"""RestBackend end to end on the API server emulator and the simulated Mayastor 2.x control plane."""

import httpx
import msgspec
import pytest
import trio
from msgspec import UNSET

from couchestor.kube import resources
from couchestor.mayastor_rest import CORDON_RECORD, MayastorRestClient, MayastorRestError
from couchestor.migration.backend import BackendError, IntentConflict
from couchestor.sim.populate import PoolSpec, diskpool
from k8s_schemas.annotations import MIGRATION_INTENT
from k8s_schemas.mayastor import DiskPool
from tests.mayastor_rest.harness import GI, HOT, NS, PV, VOL, Patched, intent


async def start(env):
    state = await env.backend.read(VOL)
    assert [r.pool for r in state.replicas] == ["pool-cold-1"]
    return await env.backend.write_intent(VOL, intent(), expected_version=state.version)


async def test_add_then_remove_moves_the_volume_and_leaves_no_cordon(env):
    state = await start(env)
    assert state.intent is not None
    state = await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    assert env.sim.plane.pool_cordons == {}
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None
    await env.wait_synced(2)
    state = await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    assert [r.pool for r in state.replicas] == ["pool-hot-2"]
    assert env.sim.plane.node_cordons == {}  # the steering cordon on node-3 was lifted
    # Idempotent: repeating the step changes nothing.
    again = await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    assert [r.pool for r in again.replicas] == ["pool-hot-2"]
    await env.backend.write_intent(VOL, None, expected_version=again.version)
    assert (await env.pv()).metadata.annotation(MIGRATION_INTENT) is None
    env.sim.checker.assert_clean()
    # The simulator keeps the DiskPools' real-schema status current.
    with trio.fail_after(10):
        while True:
            pool = await env.client.get(resources.DISK_POOL, "pool-hot-2", NS, type=DiskPool)
            if pool.used_bytes == GI:
                break
            await trio.sleep(0.05)
    assert pool.health == "Online"
    assert pool.free_bytes == 99 * GI


async def test_stale_version_is_an_intent_conflict(env):
    state = await env.backend.read(VOL)
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME, PV, {"metadata": {"labels": {"touched": "yes"}}}, type=dict
    )
    with pytest.raises(IntentConflict):
        await env.backend.write_intent(VOL, intent(), expected_version=state.version)


async def test_crash_while_cordoned_then_recovery_lifts_the_cordons(env):
    await start(env)
    placing = trio.Event()

    async def hang(volume, count):
        placing.set()
        await trio.sleep_forever()

    async def killed(*args):
        pass  # a killed process runs no cleanup at all

    env.backend.rest = Patched(env.rest, set_replica_count=hang)
    env.backend._lift = killed
    cancel = trio.CancelScope()

    async def migrate():
        with cancel:
            await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)

    env.nursery.start_soon(migrate)
    with trio.fail_after(10):
        await placing.wait()
    cancel.cancel()
    # Cordoned and recorded, as the dead operator left it: every eligible pool but the target.
    assert sorted(p for p, c in env.sim.plane.pool_cordons.items() if c.replicas) == [
        "pool-cold-2",
        "pool-hot-1",
    ]
    record = msgspec.json.decode((await env.pv()).metadata.annotation(CORDON_RECORD))
    assert record["pools"] == ["pool-cold-2", "pool-hot-1"]
    with trio.fail_after(10):
        while CORDON_RECORD not in (env.pvs.get(PV).metadata.annotations or {}):
            await trio.sleep(0.02)

    restarted = env.new_backend()
    assert [s.name for s in restarted.intents()] == [VOL]
    assert await restarted.recover() == 1
    assert env.sim.plane.pool_cordons == {}
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None
    # The restarted operator carries on: the replica goes where it was meant to.
    state = await restarted.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    env.sim.checker.assert_clean()


async def test_read_lifts_cordons_left_behind(env):
    await start(env)
    await env.rest.cordon_pool("pool-hot-1")
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME,
        PV,
        {
            "metadata": {
                "annotations": {
                    CORDON_RECORD: msgspec.json.encode({"volume": VOL, "pools": ["pool-hot-1"]}).decode()
                }
            }
        },
        type=dict,
    )
    await env.backend.read(VOL)
    assert env.sim.plane.pool_cordons == {}


async def test_cordons_of_others_are_never_lifted(env):
    await start(env)
    await env.rest.cordon_pool("pool-cold-2")  # an administrator's maintenance cordon
    await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert set(env.sim.plane.pool_cordons) == {"pool-cold-2"}


async def test_mayastor_removing_the_new_replica_is_repaired(env):
    await start(env)
    await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    await env.wait_synced(2)
    env.sim.plane.misremove = 1  # the control plane drops the newest replica, whatever the rules say
    state = await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    # Repaired: the replica on pool-hot-2 is being re-added; the old one was never at risk.
    assert state.num_replicas == 2
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    assert msgspec.json.decode((await env.pv()).metadata.annotation(CORDON_RECORD))["repairs"] == 1
    await env.wait_synced(2)
    state = await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    assert [r.pool for r in state.replicas] == ["pool-hot-2"]
    env.sim.checker.assert_clean()


async def test_repairs_are_bounded(env):
    env.backend.max_repairs = 1
    await start(env)
    await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    await env.wait_synced(2)
    env.sim.plane.misremove = 10
    await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    await env.wait_synced(2)
    with pytest.raises(BackendError, match="removed"):
        await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    state = await env.backend.read(VOL)
    assert [r.pool for r in state.replicas] == ["pool-cold-1"]  # never below the original healthy count
    with pytest.raises(BackendError, match="not adding another"):
        await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    env.sim.checker.assert_clean()


async def test_removal_refused_while_the_new_replica_is_not_yet_synced(env):
    await start(env)
    env.sim.stall_rebuilds("pool-hot-2")
    await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    with pytest.raises(BackendError, match="healthy"):
        await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    assert len((await env.backend.read(VOL)).replicas) == 2


async def test_without_pool_cordon_the_replica_is_steered_by_node_cordon(env):
    env.sim.plane.release = "2.7"  # a release without pool cordon
    await start(env)
    await env.rest.cordon_node("node-1", "maintenance")  # an administrator's, on a node the fence needs
    placing = []

    async def scale(volume, count):
        placing.append({n: sorted(labels) for n, labels in env.sim.plane.node_cordons.items()})
        return await env.rest.set_replica_count(volume, count)

    env.backend.rest = Patched(env.rest, set_replica_count=scale)
    state = await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    # While the count was raised: the nodes of every other pool that could take it, under the volume's label.
    ours = f"couchestor-{VOL}"
    assert placing == [{"node-1": sorted(["maintenance", ours]), "node-4": [ours]}]
    assert env.backend.steering == "node cordon"
    assert env.sim.plane.node_cordons == {"node-1": {"maintenance"}}, "ours lifted, the administrator's kept"
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None
    env.sim.checker.assert_clean()


async def test_with_pool_cordon_the_replica_is_steered_by_pool_cordon(env):
    await start(env)
    await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert env.backend.steering == "pool cordon"
    assert env.sim.plane.node_cordons == {}


async def test_without_pool_cordon_a_target_sharing_its_node_is_placed_unsteered_and_undone(env):
    env.sim.plane.release = "2.7"
    # The roomiest pool, on the target's node: a node cordon cannot fence it off without fencing the target.
    await env.client.create(
        resources.DISK_POOL, diskpool(PoolSpec("pool-hot-3", "node-2", "hot", 900 * GI), NS), type=dict
    )
    with trio.fail_after(10):
        while "pool-hot-3" not in {p.id for p in await env.rest.list_pools()}:
            await trio.sleep(0.05)
    await start(env)
    with pytest.raises(BackendError, match="landed on pool-hot-3 instead of pool-hot-2"):
        await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    state = await env.backend.read(VOL)
    assert state.num_replicas == 1
    assert [r.pool for r in state.replicas] == ["pool-cold-1"]
    assert env.sim.plane.node_cordons == {}
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None
    env.sim.checker.assert_clean()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", [0, 1, 2])  # cordon node-1, cordon node-4, raise the count
async def test_a_crash_at_any_step_of_node_cordon_steering_leaves_no_cordon_after_restart(env, step, when):
    env.sim.plane.release = "2.7"
    await start(env)
    calls = []
    crashed = trio.Event()

    def crashing(name, real):
        async def call(*args):
            n = len(calls)
            calls.append(name)
            if n == step and when == "before":
                crashed.set()
                await trio.sleep_forever()
            result = await real(*args)
            if n == step and when == "after":
                crashed.set()
                await trio.sleep_forever()
            return result

        return call

    async def killed(*args):
        pass  # a killed process runs no cleanup at all

    env.backend.rest = Patched(
        env.rest,
        cordon_node=crashing("cordon", env.rest.cordon_node),
        set_replica_count=crashing("scale", env.rest.set_replica_count),
    )
    env.backend._lift = killed
    cancel = trio.CancelScope()

    async def migrate():
        with cancel:
            await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)

    env.nursery.start_soon(migrate)
    with trio.fail_after(10):
        await crashed.wait()
    cancel.cancel()
    assert calls == ["cordon", "cordon", "scale"][: step + 1]
    cordoned = {n for n, labels in env.sim.plane.node_cordons.items() if labels}
    expected = ["node-1", "node-4"][: min(step + (when == "after"), 2)]
    assert sorted(cordoned) == expected
    # The record names every node that may be cordoned, written before the first cordon.
    record = msgspec.json.decode((await env.pv()).metadata.annotation(CORDON_RECORD))
    assert record["nodes"] == ["node-1", "node-4"]
    with trio.fail_after(10):
        while CORDON_RECORD not in (env.pvs.get(PV).metadata.annotations or {}):
            await trio.sleep(0.02)

    restarted = env.new_backend()
    assert await restarted.recover() == 1
    assert env.sim.plane.node_cordons == {}
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None
    state = await restarted.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    assert env.sim.plane.node_cordons == {}
    env.sim.checker.assert_clean()


async def test_recovery_lifts_only_our_node_cordon_label(env):
    env.sim.plane.release = "2.7"
    await start(env)
    await env.rest.cordon_node("node-1", "maintenance")  # an administrator's
    await env.rest.cordon_node("node-1", f"couchestor-{VOL}")  # ours, left by a crash and recorded
    record = msgspec.json.encode(
        {"volume": VOL, "nodes": ["node-1", "node-4"]}
    ).decode()  # node-4: never placed
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME, PV, {"metadata": {"annotations": {CORDON_RECORD: record}}}, type=dict
    )
    with trio.fail_after(10):
        while CORDON_RECORD not in (env.pvs.get(PV).metadata.annotations or {}):
            await trio.sleep(0.02)
    assert await env.new_backend().recover() == 1
    assert env.sim.plane.node_cordons == {"node-1": {"maintenance"}}
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None


async def test_run_lifts_cordons_left_by_a_dead_operator(env):
    await env.rest.cordon_pool("pool-hot-1")
    record = msgspec.json.encode({"volume": VOL, "pools": ["pool-hot-1"]}).decode()
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME, PV, {"metadata": {"annotations": {CORDON_RECORD: record}}}, type=dict
    )
    with trio.fail_after(10):
        while CORDON_RECORD not in (env.pvs.get(PV).metadata.annotations or {}):
            await trio.sleep(0.02)
    env.nursery.start_soon(env.new_backend().run)
    with trio.fail_after(10):
        while env.sim.plane.pool_cordons or (await env.pv()).metadata.annotation(CORDON_RECORD) is not None:
            await trio.sleep(0.02)


async def test_rollback_removes_the_new_replica_even_where_mayastor_would_keep_it(env):
    state = await start(env)
    await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    state = await env.wait_synced(2)
    env.sim.plane.volume(VOL).nexus_node = "node-2"  # the target moved next to the new replica
    state = await env.backend.write_intent(
        VOL, intent(phase="rolling-back", abort_reason="test"), expected_version=state.version
    )
    state = await env.backend.remove_replica(VOL, count=1, pool="pool-hot-2", topology={})
    assert [r.pool for r in state.replicas] == ["pool-cold-1"]
    assert env.sim.plane.node_cordons == {}
    env.sim.checker.assert_clean()


def hiding_cordons(rest):
    """A control plane whose pool listing does not show cordons (no published document fixes the field)."""

    async def list_pools():
        pools = await rest.list_pools()
        return [
            p
            if p.spec is UNSET
            else msgspec.structs.replace(p, spec=msgspec.structs.replace(p.spec, cordon_drain=UNSET))
            for p in pools
        ]

    return Patched(rest, list_pools=list_pools)


async def test_a_cordon_someone_else_holds_blocks_but_is_not_lifted(env):
    await start(env)
    await env.rest.cordon_pool("pool-cold-2")  # an administrator's, unseen in the listing
    env.backend.rest = hiding_cordons(env.rest)
    state = await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    assert set(env.sim.plane.pool_cordons) == {"pool-cold-2"}, "the administrator's cordon stays"
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None


async def test_a_cordon_of_an_earlier_attempt_answers_already_exists_and_is_lifted(env):
    await start(env)
    for pool in ("pool-cold-2", "pool-hot-1"):  # what a crashed attempt cordoned and recorded
        await env.rest.cordon_pool(pool)
    record = {"volume": VOL, "pools": ["pool-cold-2", "pool-hot-1"]}
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME,
        PV,
        {"metadata": {"annotations": {CORDON_RECORD: msgspec.json.encode(record).decode()}}},
        type=dict,
    )
    with trio.fail_after(10):
        while CORDON_RECORD not in (env.pvs.get(PV).metadata.annotations or {}):
            await trio.sleep(0.02)
    env.backend.rest = hiding_cordons(env.rest)
    state = await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    assert env.sim.plane.pool_cordons == {}, "its own cordons lifted"
    env.sim.checker.assert_clean()


async def test_a_replica_count_already_set_is_success(env):
    """A call repeated after its answer was lost: the control plane answers 412, the count is already right."""
    await start(env)
    refused = []

    async def repeated(volume, count):
        await env.rest.set_replica_count(volume, count)
        try:
            return await env.rest.set_replica_count(volume, count)
        except MayastorRestError as exc:
            refused.append((exc.status, exc.kind))
            raise

    env.backend.rest = Patched(env.rest, set_replica_count=repeated)
    state = await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    await env.wait_synced(2)
    state = await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
    assert [r.pool for r in state.replicas] == ["pool-hot-2"]
    assert refused == [(412, "FailedPrecondition")] * 2
    assert env.sim.plane.node_cordons == {}
    env.sim.checker.assert_clean()


async def test_a_volume_that_is_not_online_is_waited_for(env):
    await start(env)
    plane = env.sim.plane
    for pool in plane.cluster.pools:
        env.sim.stall_rebuilds(pool)
    plane.volume(VOL).num_replicas = 2  # Mayastor rebuilds a replica of its own: the volume is Degraded
    with trio.fail_after(10):
        while (await env.rest.get_volume(VOL)).state.status != "Degraded":
            await trio.sleep(0.02)
    with pytest.raises(BackendError) as err:
        await env.backend.add_replica(VOL, count=3, pool="pool-hot-2", topology=HOT)
    assert err.value.retryable
    assert "is Degraded" in str(err.value)
    assert plane.volume(VOL).num_replicas == 2
    assert plane.pool_cordons == {}
    for pool in plane.cluster.pools:
        env.sim.stall_rebuilds(pool, False)
    await env.wait_synced(2)
    state = await env.backend.add_replica(VOL, count=3, pool="pool-hot-2", topology=HOT)
    assert "pool-hot-2" in {r.pool for r in state.replicas}


async def test_a_volume_that_degrades_before_the_call_is_waited_for(env):
    """The control plane refuses to add a replica to a volume that is not Online (412): wait, do not fail."""
    await start(env)

    async def degrading(volume, count):
        env.sim.plane.fault_replica(VOL, "pool-cold-1", env.sim.now())
        return await env.rest.set_replica_count(volume, count)

    env.backend.rest = Patched(env.rest, set_replica_count=degrading)
    with pytest.raises(BackendError) as err:
        await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert err.value.retryable
    assert "waiting until it is Online" in str(err.value)
    assert env.sim.plane.volume(VOL).num_replicas == 1
    assert env.sim.plane.pool_cordons == {}


class LosingCordonReplies(httpx.AsyncBaseTransport):
    """The network to the control plane: the first ``PUT .../cordon`` reaches it and is applied, then the
    connection breaks before the answer arrives."""

    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport()
        self.lost: list[str] = []

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        real = path.endswith("/cordon") and "couchestor-probe" not in path  # not the release probe
        if request.method == "PUT" and real and not self.lost:
            await response.aread()
            await response.aclose()
            self.lost.append(request.url.path)
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    async def aclose(self):
        await self.inner.aclose()


async def test_a_cordon_whose_reply_was_lost_is_still_lifted(env):
    # Issue 25, defect 4: the retried cordon answered AlreadyExists, the backend took its own cordon for
    # someone else's and dropped it from the record, and nothing ever lifted it.
    await start(env)
    network = LosingCordonReplies()
    async with MayastorRestClient(env.sim.url, transport=network) as rest:
        env.backend.rest = rest
        state = await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    assert network.lost, "a cordon reply was lost"
    assert sorted(r.pool for r in state.replicas) == ["pool-cold-1", "pool-hot-2"]
    assert env.sim.plane.pool_cordons == {}, "the cordon whose reply was lost was lifted too"
    assert (await env.pv()).metadata.annotation(CORDON_RECORD) is None


async def test_a_removal_decided_before_the_new_replica_faulted_is_not_made(env):
    # Issue 25, defect 5 on Mayastor 2.x: the decision was made with both replicas healthy.
    await start(env)
    await env.backend.add_replica(VOL, count=2, pool="pool-hot-2", topology=HOT)
    decided = await env.wait_synced(2)
    env.sim.fault_replica(VOL, "pool-hot-2")
    with pytest.raises(IntentConflict):
        await env.backend.remove_replica(
            VOL, count=1, pool="pool-cold-1", topology=HOT, expected_version=decided.version
        )
    assert env.sim.plane.volume(VOL).num_replicas == 2
    env.sim.checker.assert_clean()


async def test_a_late_record_write_never_wipes_a_newer_record(env):
    # Issue 25, defect 2: the record was written without a precondition ("ours alone"), so a deposed leader's
    # late clean-up could wipe the record of the leader after it, whose cordons then leaked.
    from couchestor.mayastor_rest.backend import CordonRecord

    stale = await env.pv()
    newer = {"volume": VOL, "pools": ["pool-hot-1"]}
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME,
        PV,
        {"metadata": {"annotations": {CORDON_RECORD: msgspec.json.encode(newer).decode()}}},
        type=dict,
    )
    with pytest.raises(IntentConflict):
        await env.backend._write_record(stale, CordonRecord(volume=VOL))
    assert msgspec.json.decode((await env.pv()).metadata.annotation(CORDON_RECORD)) == newer
