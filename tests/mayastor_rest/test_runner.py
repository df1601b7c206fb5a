"""The migration runner driving RestBackend: full migrations on the simulated Mayastor 2.x, with faults."""

import trio

from couchestor.kube import resources
from couchestor.kube.events import EventRecorder
from couchestor.kube.reflector import Reflector
from couchestor.metrics import OperatorMetrics
from couchestor.migration.runner import MigrationRunner, RunnerOptions
from couchestor.tiering.plan import PlannedMigration
from couchestor.tiering.policy import PolicyRules, Tier, compile_policy
from k8s_schemas.annotations import LAST_MIGRATION, MIGRATION_INTENT
from k8s_schemas.mayastor import DiskPool
from k8s_schemas.storage_policy import StoragePolicy
from tests.mayastor_rest.harness import GI, HOT, PV, VOL, Patched, add_volume, wait_for_pv
from tests.operator.harness import policy_body


async def run_migration(env, backend=None, *, wait=True, migrations=None, timeout="10m"):
    body = policy_body(migrationTimeout=timeout)
    policy = await env.client.create(resources.STORAGE_POLICY, body, type=StoragePolicy)
    rules = compile_policy(policy)
    assert isinstance(rules, PolicyRules)
    pools = Reflector.for_resource(env.client, resources.DISK_POOL, DiskPool, namespace="mayastor")
    policies = Reflector.for_resource(env.client, resources.STORAGE_POLICY, StoragePolicy)
    for reflector in (pools, policies):
        env.nursery.start_soon(reflector.run)
        await reflector.store.wait_synced()
    with trio.fail_after(10):
        while any(p.health != "Online" for p in pools.store.list()) or not policies.store.list():
            await trio.sleep(0.05)
    runner = MigrationRunner(
        backend or env.backend,
        env.client,
        pools=pools.store,
        policies=policies.store,
        events=await _events(env, "test"),
        metrics=OperatorMetrics(),
        options=RunnerOptions(identity="test"),
    )
    await env.nursery.start(runner.run)
    if migrations is None:
        migrations = [planned(rules, VOL, "pool-cold-1", "pool-hot-2")]
    else:
        migrations = migrations(rules)
    for migration in migrations:
        assert runner.start([migration], rules)
    if wait:
        await finished(runner)
    return runner


async def _events(env, identity):
    recorder = EventRecorder(env.client, instance=identity)
    await env.nursery.start(recorder.run)
    return recorder


def planned(rules, volume, source, target):
    return PlannedMigration(
        volume=f"pvc-{volume}",
        volume_id=volume,
        policy=rules.name,
        from_tier=Tier("cold"),
        to_tier=Tier("hot"),
        target_pool=target,
        source_pools=(source,),
        score=9000.0,
        size_bytes=GI,
        timeout_seconds=rules.migration_timeout_seconds,
        backend_volume=volume,
        target_topology=HOT,
    )


async def finished(runner):
    with trio.fail_after(60):
        while runner.in_flight:
            await trio.sleep(0.05)


def to(target, volume=VOL, source="pool-cold-1"):
    return lambda rules: [planned(rules, volume, source, target)]


async def test_runner_moves_the_volume_through_a_wrong_removal(release_env):
    env, target = release_env, "pool-hot-2"  # not the pool Mayastor would pick (pool-hot-1)
    env.sim.plane.misremove = 1  # Mayastor drops the new replica on the first scale-down
    runner = await run_migration(env, migrations=to(target))
    state = await env.backend.read(VOL)
    assert [r.pool for r in state.replicas] == [target]
    assert state.intent is None
    pv = await env.pv()
    assert pv.metadata.annotation(LAST_MIGRATION) is not None
    assert pv.metadata.annotation(MIGRATION_INTENT) is None
    assert env.sim.plane.pool_cordons == {}
    assert env.sim.plane.node_cordons == {}
    assert runner.metrics.migrations_total.labels(status="success")._value.get() == 1
    env.sim.checker.assert_clean()


async def test_operator_killed_while_cordons_are_held_then_restarted(release_env):
    env = release_env
    placing = trio.Event()

    async def hang(volume, count):
        placing.set()
        await trio.sleep_forever()

    async def killed(*args):
        pass  # a killed process runs no cleanup

    first = env.new_backend()
    first.rest = Patched(env.rest, set_replica_count=hang)
    first._lift = killed
    scope = trio.CancelScope()

    async def first_operator(task_status=trio.TASK_STATUS_IGNORED):
        with scope:
            await run_migration(env, first, wait=False)
            task_status.started()
            await trio.sleep_forever()

    await env.nursery.start(first_operator)
    with trio.fail_after(20):
        await placing.wait()
    scope.cancel()
    if env.sim.plane.release == "2.7":  # steered by node cordon
        assert sorted(env.sim.plane.node_cordons) == ["node-1", "node-4"]
    else:
        assert any(c.replicas for c in env.sim.plane.pool_cordons.values())
    with trio.fail_after(10):
        while MIGRATION_INTENT not in (env.pvs.get(PV).metadata.annotations or {}):
            await trio.sleep(0.02)

    second = env.new_backend()
    runner = MigrationRunner(
        second,
        env.client,
        pools=await _store(env, resources.DISK_POOL, DiskPool, "mayastor"),
        policies=await _store(env, resources.STORAGE_POLICY, StoragePolicy, None),
        events=await _events(env, "second"),
        metrics=OperatorMetrics(),
        options=RunnerOptions(identity="second"),
    )
    await env.nursery.start(runner.run)  # resumes the intent it finds
    await finished(runner)
    state = await second.read(VOL)
    assert [r.pool for r in state.replicas] == ["pool-hot-2"]
    assert state.intent is None
    assert env.sim.plane.pool_cordons == {}
    assert env.sim.plane.node_cordons == {}
    env.sim.checker.assert_clean()


async def _store(env, resource, kind, namespace):
    reflector = Reflector.for_resource(env.client, resource, kind, namespace=namespace)
    env.nursery.start_soon(reflector.run)
    await reflector.store.wait_synced()
    return reflector.store


async def test_concurrent_migrations_steer_each_replica_to_its_own_target(env):
    other = "0b5d4c55-6c0e-4f0e-9a55-5f3a5c4b2a02"
    await add_volume(env.client, env.sim, other, "pool-cold-2")
    await wait_for_pv(env.pvs, f"pvc-{other}")
    env.sim.checker.max_in_flight = 2

    def both(rules):
        return [
            planned(rules, VOL, "pool-cold-1", "pool-hot-2"),
            planned(rules, other, "pool-cold-2", "pool-hot-1"),
        ]

    runner = await run_migration(env, migrations=both)
    assert [r.pool for r in (await env.backend.read(VOL)).replicas] == ["pool-hot-2"]
    assert [r.pool for r in (await env.backend.read(other)).replicas] == ["pool-hot-1"]
    assert runner.metrics.migrations_total.labels(status="success")._value.get() == 2
    assert env.sim.plane.pool_cordons == {}
    assert env.sim.plane.node_cordons == {}
    assert env.sim.checker.peak_in_flight == 2
    env.sim.checker.assert_clean()


async def test_timeout_rolls_back_and_keeps_the_old_replica(release_env):
    env, target = release_env, "pool-hot-2"  # not the pool Mayastor would pick (pool-hot-1)
    env.sim.stall_rebuilds(target)  # the new replica never finishes its rebuild
    runner = await run_migration(env, timeout="2s", migrations=to(target))
    state = await env.backend.read(VOL)
    assert [r.pool for r in state.replicas] == ["pool-cold-1"]
    assert state.num_replicas == 1
    assert state.intent is None
    assert runner.metrics.migrations_total.labels(status="failed")._value.get() == 1
    assert env.sim.plane.pool_cordons == {}
    env.sim.checker.assert_clean()


async def test_target_pool_faulting_mid_rebuild_rolls_back(release_env):
    env, target = release_env, "pool-hot-2"  # not the pool Mayastor would pick (pool-hot-1)
    env.sim.stall_rebuilds(target)
    runner = await run_migration(env, wait=False, migrations=to(target))
    with trio.fail_after(20):
        while len((await env.backend.read(VOL)).replicas) < 2:
            await trio.sleep(0.05)
    env.sim.set_pool_state(target, "Faulted")
    await finished(runner)
    state = await env.backend.read(VOL)
    assert [r.pool for r in state.replicas] == ["pool-cold-1"]
    assert state.intent is None
    assert runner.metrics.migrations_total.labels(status="failed")._value.get() == 1
    assert env.sim.plane.pool_cordons == {}
    env.sim.checker.assert_clean()


async def test_an_unpublished_volume_moves(release_env):
    env, target = release_env, "pool-hot-2"  # not the pool Mayastor would pick (pool-hot-1)
    idle = "0b5d4c55-6c0e-4f0e-9a55-5f3a5c4b2a03"  # its application is scaled down: no target, no nexus
    await add_volume(env.client, env.sim, idle, "pool-cold-2", published=False)
    await wait_for_pv(env.pvs, f"pvc-{idle}")
    before = await env.backend.read(idle)
    assert [(r.pool, r.sync_state) for r in before.replicas] == [("pool-cold-2", "Synced")]
    runner = await run_migration(env, migrations=to(target, idle, "pool-cold-2"))
    state = await env.backend.read(idle)
    assert [r.pool for r in state.replicas] == [target]
    assert state.intent is None
    assert runner.metrics.migrations_total.labels(status="success")._value.get() == 1
    env.sim.checker.assert_clean()


async def test_api_error_bursts_are_ridden_out(release_env):
    env, target = release_env, "pool-hot-2"  # not the pool Mayastor would pick (pool-hot-1)
    env.sim.stall_rebuilds(target)  # the second burst comes while the new replica rebuilds
    env.sim.app.fail_next[:] = [503] * 4  # more than one call's retries: the runner's own retry takes over
    runner = await run_migration(env, wait=False, migrations=to(target))
    with trio.fail_after(20):
        while len((await env.backend.read(VOL)).replicas) < 2:
            await trio.sleep(0.05)
    env.sim.app.fail_next[:] = [500, 503, 502, 503]
    env.sim.stall_rebuilds(target, False)
    await finished(runner)
    state = await env.backend.read(VOL)
    assert [r.pool for r in state.replicas] == [target]
    assert runner.metrics.migrations_total.labels(status="success")._value.get() == 1
    assert env.sim.plane.pool_cordons == {}
    assert env.sim.plane.node_cordons == {}
    env.sim.checker.assert_clean()
