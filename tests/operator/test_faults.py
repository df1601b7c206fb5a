"""Migrations under faults, end to end: every scenario ends with the migration completed or rolled back,
zero invariant violations, and status consistent with what happened.

Every scenario runs on both storage backends: MayastorVolume objects (``crd``) and Mayastor 2.x's REST API
(``rest``, the intent on the PV, placement steered by pool cordons)."""

from __future__ import annotations

import pytest
import trio

from couchestor.kube import resources
from couchestor.migration import runner as runner_module
from couchestor.migration.backend import BackendError
from tests.operator.harness import WrappedBackend, policy_body

pytestmark = pytest.mark.prometheus

MIB = 2**20


@pytest.fixture
def loads():
    return {"heavy": ("cold", 8000.0), "middle": ("hot", 2000.0)}


@pytest.fixture(params=["crd", "rest"])
def backend(request):
    return request.param


def slow_rebuilds(env, bytes_per_second=60 * MIB):
    env.slow_rebuilds(bytes_per_second)


async def history(env, name="tiering"):
    status = await env.status(name)
    return list(status.migration_history) if status and status.migration_history else []


async def intent_of(env, name):
    return await env.intent(name)


async def wait_recorded(env, count=1, timeout=90.0):
    async def recorded():
        entries = await history(env)
        return len(entries) >= count and entries

    return await env.eventually(recorded, timeout=timeout, what=f"{count} history entries")


async def assert_at_rest(env, name, tiers):
    async def rest():
        return await intent_of(env, name) is None and await env.tiers(name) == tiers

    await env.eventually(rest, what=f"{name} at rest on {tiers}")
    assert await env.replica_count(name) == 1
    assert env.simulator.checker.violations == []
    if env.rest:
        assert not env.simulator.plane.pool_cordons, "every cordon lifted"


# --- 1. the operator dies at each step boundary, then a new one finishes the job -----------------------------


class CrashingBackend(WrappedBackend):
    """A backend that kills its operator at one step boundary (``after-*``: once the call returned;
    ``before-*``: before the call reaches the API)."""

    def __init__(self, inner, *, boundary, crash):
        super().__init__(inner)
        self.boundary, self.crash, self.crashed = boundary, crash, []

    def _die(self) -> None:
        if not self.crashed:
            self.crashed.append(self.boundary)
            self.crash()

    async def write_intent(self, volume, intent, *, expected_version):
        if intent is None and self.boundary == "before-intent-clear":
            self._die()
            await trio.lowlevel.checkpoint()
        state = await self.inner.write_intent(volume, intent, expected_version=expected_version)
        if intent is not None and intent.phase == "forward" and self.boundary == "after-intent":
            self._die()
        return state

    async def add_replica(self, volume, **kw):
        state = await self.inner.add_replica(volume, **kw)
        if self.boundary == "after-scale-up":
            self._die()
        return state

    async def remove_replica(self, volume, **kw):
        state = await self.inner.remove_replica(volume, **kw)
        if self.boundary == "after-scale-down":
            self._die()
        return state

    async def read(self, volume):
        state = await self.inner.read(volume)
        if self.boundary == "mid-sync" and any(r.sync_state == "Syncing" for r in state.replicas):
            self._die()
        if (
            self.boundary == "before-history"
            and state.intent is not None
            and len(state.replicas) == state.intent.original_replicas
            and not any(r.pool in state.intent.source_pools for r in state.replicas)
        ):
            self._die()
        return state


BOUNDARIES = [
    "after-intent",
    "after-scale-up",
    "mid-sync",
    "after-scale-down",
    "before-history",
    "before-intent-clear",
]


@pytest.mark.parametrize("boundary", BOUNDARIES)
async def test_operator_killed_at_a_step_boundary_is_finished_by_the_next_one(env, boundary):
    slow_rebuilds(env)
    await env.apply_policy(policy_body())
    first, backends = await env.start_operator_with_backend(
        lambda operator, inner: CrashingBackend(inner, boundary=boundary, crash=lambda: env.kill(operator))
    )

    async def crashed():
        return backends and backends[0].crashed

    await env.eventually(crashed, timeout=60, what=f"the crash {boundary}")
    await env.eventually(lambda: _true_after(0.5), what="the crash to settle")
    assert first.runner is not None
    assert await intent_of(env, "heavy") is not None, "the intent must survive the crash"
    entries_before = await history(env)
    assert entries_before == [] or boundary == "before-intent-clear"

    await env.start_operator(identity="second-operator")
    entries = await wait_recorded(env)
    await assert_at_rest(env, "heavy", ["hot"])
    await trio.sleep(1)
    entries = await history(env)
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]
    status = await env.status()
    assert status.total_migrations == 1
    assert status.failed_migrations in (0, None) or status.failed_migrations == 0


async def _true_after(seconds):
    await trio.sleep(seconds)
    return True


# --- 2. watch streams dropped and 410 Gone during a sync ---------------------------------------------------------


async def test_dropped_watches_and_gone_during_sync(env, apiserver):
    slow_rebuilds(env, 30 * MIB)
    await env.apply_policy(policy_body())
    operator = await env.start_operator()

    async def syncing():
        return await env.syncing_pool("heavy")

    await env.eventually(syncing, what="the new replica syncing")
    for _ in range(3):
        apiserver.api.chaos.gone_on_next_watch()
        apiserver.api.chaos.drop_watches()
        await trio.sleep(0.5)
    apiserver.api.chaos.compact()
    apiserver.api.chaos.drop_watches()
    entries = await wait_recorded(env)
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]
    await assert_at_rest(env, "heavy", ["hot"])
    restarts = sum(
        s.value
        for m in operator.metrics.watch_restarts.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert restarts >= 1


# --- 3. the target pool faults mid-rebuild; a rebuild stalls until the timeout -----------------------------------


async def test_target_pool_fault_mid_rebuild_rolls_back(env):
    slow_rebuilds(env, 20 * MIB)
    await env.apply_policy(policy_body())
    await env.start_operator()

    async def syncing_pool():
        return await env.syncing_pool("heavy")

    pool = await env.eventually(syncing_pool, what="the new replica syncing")
    env.simulator.set_pool_state(pool, "Faulted")
    entries = await wait_recorded(env)
    assert entries[0].success is False
    assert "pool" in entries[0].error
    await assert_at_rest(env, "heavy", ["cold"])
    status = await env.status()
    assert status.failed_migrations == 1


async def test_stalled_rebuild_times_out_and_rolls_back(env):
    await env.apply_policy(policy_body(migrationTimeout="4s"))
    for pool in ("pool-hot-1", "pool-hot-2"):
        env.simulator.stall_rebuilds(pool=pool)
    await env.start_operator()
    entries = await wait_recorded(env)
    assert entries[0].success is False
    assert "timed out" in entries[0].error
    await assert_at_rest(env, "heavy", ["cold"])


# --- 4. a concurrent writer on the MayastorVolume; 429 and 500 bursts from the API server ------------------------


async def test_concurrent_writer_and_api_error_bursts(env, apiserver):
    slow_rebuilds(env)
    await env.apply_policy(policy_body())
    # Another writer keeps touching the object that holds the intent: the MayastorVolume, or on Mayastor 2.x
    # the PV; the API server throttles and fails calls on it, and Mayastor's REST API fails a burst too.
    if env.rest:
        res, name, namespace, path = resources.PERSISTENT_VOLUME, "pvc-heavy", None, "persistentvolumes"
    else:
        res, name, namespace, path = resources.MAYASTOR_VOLUME, "vol-heavy", "mayastor", "mayastorvolumes"
    chaos = apiserver.api.chaos
    chaos.add_fault(status=429, retry_after=1, method="PATCH", path_regex=path, count=3)
    chaos.add_fault(status=500, method="GET", path_regex=f"{path}/{name}", count=3)
    stop = trio.Event()

    async def meddler():
        n = 0
        while not stop.is_set():
            n += 1
            patch = {"metadata": {"annotations": {"example.com/touched": str(n)}}}
            await env.client.merge_patch(res, name, patch, namespace, type=dict)
            await trio.sleep(0.05)

    env.nursery.start_soon(meddler)
    await env.start_operator()
    if env.rest:
        await env.eventually(lambda: env.syncing_pool("heavy"), what="the new replica syncing")
        env.simulator.app.fail_next.extend([500, 503, 500, 503, 500])
    entries = await wait_recorded(env)
    stop.set()
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]
    await assert_at_rest(env, "heavy", ["hot"])
    if env.rest:
        assert not env.simulator.app.fail_next, "every injected REST failure was met"


# --- 5. Prometheus down during a migration --------------------------------------------------------------------


@pytest.mark.parametrize("loads", [{"heavy": ("cold", 8000.0), "later": ("cold", 100.0)}])
async def test_prometheus_down_mid_migration_finishes_it_and_starts_nothing_new(env):
    slow_rebuilds(env, 30 * MIB)
    await env.apply_policy(policy_body(lowWatermarkIOPS=50))
    operator = await env.start_operator()

    async def syncing():
        return await env.syncing_pool("heavy")

    await env.eventually(syncing, what="the migration syncing")
    env.prometheus.process.kill()
    await env.prometheus.process.wait()
    env.workload.set_pattern("pvc-later", env.workload.pattern("pvc-heavy"))  # would be hot if anyone looked
    entries = await wait_recorded(env)
    assert [(e.volume_name, e.success) for e in entries] == [("pvc-heavy", True)]

    async def unhealthy():
        cond = (await env.conditions()).get("MetricsAvailable")
        return cond and cond.status == "False"

    await env.eventually(unhealthy, what="MetricsAvailable=False")
    await trio.sleep(3)
    assert not operator.runner.in_flight
    assert await env.tiers("later") == ["cold"]
    assert len(await history(env)) == 1


# --- 6. the policy is switched to dry run, disabled, or deleted mid-migration ------------------------------------


@pytest.mark.parametrize("edit", ["dryRun", "disable", "delete"])
async def test_policy_changed_mid_migration_aborts_and_rolls_back(env, edit):
    slow_rebuilds(env, 20 * MIB)
    await env.apply_policy(policy_body())
    operator = await env.start_operator()

    async def syncing():
        return await env.syncing_pool("heavy")

    await env.eventually(syncing, what="the migration syncing")
    if edit == "delete":
        await env.client.delete(resources.STORAGE_POLICY, "tiering")
    else:
        spec = {"dryRun": True} if edit == "dryRun" else {"enabled": False}
        await env.client.merge_patch(resources.STORAGE_POLICY, "tiering", {"spec": spec}, type=dict)
    await assert_at_rest(env, "heavy", ["cold"])
    aborted = sum(
        s.value
        for m in operator.metrics.migrations_total.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("status") == "aborted"
    )
    assert aborted == 1
    if edit != "delete":
        entries = await wait_recorded(env)
        assert entries[0].success is False
        assert edit.lower()[:3] in entries[0].error.replace("-", "").lower()


# --- 7. many volumes heat up at once ----------------------------------------------------------------------------


@pytest.mark.parametrize("loads", [{f"v{i}": ("cold", 8000.0) for i in range(8)}])
async def test_many_hot_volumes_respect_the_concurrency_limit(env):
    slow_rebuilds(env, 120 * MIB)
    env.simulator.checker.max_in_flight = 2
    await env.apply_policy(policy_body(maxConcurrentMigrations=3))
    await env.start_operator(max_concurrent_migrations="2")
    await wait_recorded(env, count=8, timeout=120)
    assert env.simulator.checker.peak_in_flight == 2
    assert env.simulator.checker.violations == []
    for i in range(8):
        assert await env.tiers(f"v{i}") == ["hot"]


class FailingAdds(WrappedBackend):
    """A storage API that keeps refusing to add replicas (as a 503 past every retry would)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.attempts = 0

    async def add_replica(self, volume, **kw):
        self.attempts += 1
        raise BackendError("cannot add a replica: 503 ServiceUnavailable", retryable=True)


@pytest.fixture
def quick_backoff(monkeypatch):
    """The runner's retry delays a tenth as long (0.05 s doubling): what is tested is the retry bound and what
    follows it, not the waits between attempts, which were most of the test's time."""
    real = runner_module._backoff
    monkeypatch.setattr(runner_module, "_backoff", lambda failures: real(failures) / 10)


async def test_storage_api_failing_past_the_retry_bound_aborts_and_records_it(env, quick_backoff):
    await env.apply_policy(policy_body())
    _, backends = await env.start_operator_with_backend(lambda operator, inner: FailingAdds(inner))
    entries = await wait_recorded(env, timeout=120)
    assert entries[0].success is False
    assert "storage API kept failing" in entries[0].error
    assert backends[0].attempts >= 6
    await assert_at_rest(env, "heavy", ["cold"])
