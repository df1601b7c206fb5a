"""An emulated cluster with the operator running on it: API server emulator, Mayastor simulator, a simulated
workload scraped by a real Prometheus, and the operator built from the same settings as ``couchestor run``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from couchestor import settings as settings_mod
from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.operator import Operator
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.mayastor_rest import RestSimulator
from couchestor.sim.mayastor_rest.cluster import start_rest_cluster
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, populate
from couchestor.sim.workload import ExportOptions, Kind, Pattern, Workload, serve_workload
from k8s_schemas import DiskPool, MayastorVolume
from k8s_schemas.annotations import MIGRATION_INTENT
from k8s_schemas.core import PersistentVolume
from k8s_schemas.storage_policy import StoragePolicy

NS = "mayastor"
HOT_IOPS = 8000.0
WARMISH_IOPS = 2000.0


def policy_body(name: str = "tiering", **spec: Any) -> dict[str, Any]:
    """A StoragePolicy selecting every volume of the ``mayastor`` class, tuned for a fast test."""
    base: dict[str, Any] = {
        "storageClassName": "mayastor",
        "highWatermarkIOPS": 5000,
        "lowWatermarkIOPS": 500,
        # Short: a volume is judged once half its window is scraped (1 s scrapes), and every test waits for it.
        "samplingWindow": "6s",
        "cooldownPeriod": "1h",
        "migrationTimeout": "2m",
        "maxConcurrentMigrations": 2,
    }
    base.update(spec)
    return {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "metadata": {"name": name},
        "spec": base,
    }


def cluster_spec(loads: Mapping[str, tuple[Any, ...]], replicas: int = 1) -> ClusterSpec:
    """Two hot and two cold pools; one volume per entry of ``loads``: name -> (initial tier, IOPS[, group])
    (the group is the PVC label ``group``)."""
    pools = (
        PoolSpec("pool-hot-1", "node-1", "hot", 500 * GI),
        PoolSpec("pool-hot-2", "node-2", "hot", 500 * GI),
        PoolSpec("pool-cold-1", "node-3", "cold", 500 * GI),
        PoolSpec("pool-cold-2", "node-4", "cold", 500 * GI),
    )
    volumes = tuple(
        VolumeSpec(
            f"pvc-{name}",
            f"vol-{name}",
            "apps",
            f"data-{name}",
            10 * GI,
            load[0],
            {"app": name, **({"group": load[2]} if len(load) > 2 else {})},
        )
        for name, load in sorted(loads.items())
    )
    return ClusterSpec(pools, volumes, replicas=replicas)


def operator_settings(prometheus_url: str, **overrides: str) -> settings_mod.Settings:
    environ = {
        "COUCHESTOR_PROMETHEUS_URL": prometheus_url,
        "COUCHESTOR_METRICS_ADDR": "127.0.0.1:0",
        "COUCHESTOR_SCORE_TTL": "1s",
        "COUCHESTOR_RESYNC": "2s",
        "COUCHESTOR_SCRAPE_INTERVAL": "1s",
        "COUCHESTOR_LEADER_ELECTION": "false",
        "COUCHESTOR_IDENTITY": "test-operator",
    }
    environ.update({f"COUCHESTOR_{k.upper()}": v for k, v in overrides.items()})
    return settings_mod.resolve(argparse.Namespace(), environ)


class WrappedBackend:
    """A volume backend forwarding every call to ``inner`` (the one the operator would use); fault-injecting
    stand-ins override the calls they meddle with, whichever backend is underneath."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Env:
    client: KubeClient
    simulator: Any  # MayastorSimulator, or RestSimulator for Mayastor 2.x
    workload: Workload
    prometheus_url: str
    spec: ClusterSpec
    nursery: trio.Nursery
    prometheus: Any = None
    operators: list[tuple[Operator, trio.CancelScope]] = field(default_factory=list)
    _done: list[trio.Event] = field(default_factory=list)

    @property
    def rest(self) -> bool:
        """Whether the cluster plays Mayastor 2.x (REST API, intent on the PV) rather than MayastorVolumes."""
        return isinstance(self.simulator, RestSimulator)

    @property
    def model(self) -> Any:
        """The simulated control plane's volumes and pools (the same model behind both simulators)."""
        return self.simulator.plane.cluster if self.rest else self.simulator.cluster

    async def start_operator(
        self, *, factory: Callable[..., Operator] = Operator, **overrides: str
    ) -> Operator:
        """Start an operator (built by ``factory(settings, client)``) in the test's nursery; on a Mayastor 2.x
        cluster it runs with ``--backend mayastor-rest`` against the simulator unless told otherwise."""
        if self.rest:
            overrides = {
                "backend": "mayastor-rest",
                "mayastor_rest_url": self.simulator.url,
                "mayastor_rest_interval": "2s",
                **overrides,
            }
        operator = factory(operator_settings(self.prometheus_url, **overrides), self.client)
        scope = trio.CancelScope()
        done = trio.Event()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await operator.run(task_status=task_status)
            finally:
                done.set()

        await self.nursery.start(run)
        self.operators.append((operator, scope))
        self._done.append(done)
        return operator

    async def stop_all(self) -> None:
        """Cancel every operator and wait until each has finished (a shielded Lease release included)."""
        for _, scope in self.operators:
            scope.cancel()
        with trio.move_on_after(15):
            for done in self._done:
                await done.wait()

    async def start_operator_with_backend(
        self, make: Callable[[Operator, Any], Any], **overrides: str
    ) -> tuple[Operator, list[Any]]:
        """Start an operator whose volume backend is ``make(operator, backend)`` (a fault-injecting stand-in
        around the ``backend`` the operator would use); the list receives each backend as the operator builds
        it (once per leadership)."""
        backends: list[Any] = []

        def factory(settings: settings_mod.Settings, client: KubeClient) -> Operator:
            operator = Operator(settings, client)

            def make_backend(stores: Any, rest: Any) -> Any:
                backends.append(make(operator, Operator.make_backend(operator, stores, rest)))
                return backends[-1]

            operator.make_backend = make_backend  # type: ignore[method-assign]
            return operator

        return await self.start_operator(factory=factory, **overrides), backends

    def kill(self, operator: Operator) -> None:
        """Cancel ``operator`` as a crash would: wherever its tasks are, nothing more is written."""
        self.scope_of(operator).cancel()

    async def wait_stopped(self, operator: Operator, timeout: float = 15.0) -> None:
        """Wait until ``operator`` (killed or stopped) has finished running."""
        index = next(i for i, (op, _) in enumerate(self.operators) if op is operator)
        with trio.fail_after(timeout):
            await self._done[index].wait()

    def scope_of(self, operator: Operator) -> trio.CancelScope:
        return next(scope for op, scope in self.operators if op is operator)

    def stop_operator(self, operator: Operator) -> None:
        for op, scope in self.operators:
            if op is operator:
                scope.cancel()

    async def apply_policy(self, body: dict[str, Any]) -> StoragePolicy:
        return await self.client.create(resources.STORAGE_POLICY, body, type=StoragePolicy)

    async def status(self, name: str = "tiering") -> Any:
        return (await self.policy(name)).status or None

    async def conditions(self, name: str = "tiering") -> dict[str, Any]:
        status = await self.status(name)
        return {c.type: c for c in (status.conditions or [])} if status else {}

    async def policy(self, name: str = "tiering") -> StoragePolicy:
        return await self.client.get(resources.STORAGE_POLICY, name, type=StoragePolicy)

    def slow_rebuilds(self, bytes_per_second: float) -> None:
        """Rebuild onto every pool at ``bytes_per_second`` (per simulated second)."""
        for pool in self.model.pools.values():
            pool.rebuild_bandwidth = bytes_per_second

    async def intent(self, name: str) -> str | None:
        """The migration intent annotation of the volume: on the MayastorVolume, or on the PV for Mayastor 2.x."""
        obj = await self.pv(name) if self.rest else await self.volume(name)
        return (obj.metadata.annotations or {}).get(MIGRATION_INTENT)

    async def replica_count(self, name: str) -> int:
        """The volume's requested number of replicas, as its control plane holds it."""
        if self.rest:
            return int(self.model.volumes[f"vol-{name}"].num_replicas)
        return (await self.volume(name)).spec.num_replicas

    async def syncing_pool(self, name: str) -> str | None:
        """The pool of the volume's replica being rebuilt, if one is."""
        if self.rest:
            volume = self.model.volumes[f"vol-{name}"]
            return next((r.pool for r in volume.replicas if r.sync_state == "Syncing"), None)
        vol = await self.volume(name)
        return next((r.pool for r in vol.replicas if r.sync_state == "Syncing"), None)

    async def volume(self, name: str) -> MayastorVolume:
        return await self.client.get(resources.MAYASTOR_VOLUME, f"vol-{name}", NS, type=MayastorVolume)

    async def pv(self, name: str) -> PersistentVolume:
        return await self.client.get(resources.PERSISTENT_VOLUME, f"pvc-{name}", type=PersistentVolume)

    async def pool_tier(self, pool: str) -> str:
        obj = await self.client.get(resources.DISK_POOL, pool, NS, type=DiskPool)
        return obj.topology_labels.get("tier", "")

    async def tiers(self, name: str) -> list[str]:
        """The tiers of the volume's healthy replicas, sorted."""
        if isinstance(self.simulator, RestSimulator):
            cluster = self.simulator.plane.cluster
            volume = cluster.volumes[f"vol-{name}"]
            return sorted(cluster.pools[r.pool].labels.get("tier", "") for r in volume.replicas if r.healthy)
        vol = await self.volume(name)
        return sorted([await self.pool_tier(r.pool) for r in vol.replicas if r.healthy])

    async def eventually(
        self, check: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.2, what: str = ""
    ) -> Any:
        """Poll the async ``check`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
        last: Any = None
        with trio.move_on_after(timeout):
            while True:
                last = await check()
                if last:
                    return last
                await trio.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value {last!r}")


def pattern_for(iops: float) -> Pattern:
    return Pattern(Kind.IDLE, base=0.0) if iops <= 0 else Pattern(Kind.CONSTANT, base=iops, noise=0.02)


async def open_env(
    nursery: trio.Nursery,
    apiserver: Any,
    prometheus_factory: Any,
    loads: Mapping[str, tuple[Any, ...]],
    *,
    replicas: int = 1,
    time_scale: float = 60.0,
    backend: str = "crd",
) -> Env:
    client = KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0)
    spec = cluster_spec(loads, replicas)
    simulator: Any
    if backend == "rest":
        simulator = await start_rest_cluster(nursery, client, spec, time_scale=time_scale, tick=0.05)
    else:
        await populate(client, spec)
        simulator = MayastorSimulator(client, namespace=NS, time_scale=time_scale, tick=0.05)
        await nursery.start(simulator.run)
    workload = Workload(seed=11)
    for name, load in loads.items():
        workload.add_volume(f"pvc-{name}", pattern_for(load[1]))
    # A Prometheus started ahead (its first scrape of a new target comes about 5 s after its start), scraping
    # the port it kept for this exporter every second.
    kept, prometheus = await prometheus_factory.warm()
    port = kept.getsockname()[1]
    kept.close()
    await nursery.start(
        lambda task_status: serve_workload(
            # Mayastor 2.x's io-engine exports counters (read by the operator's mayastor-2x preset).
            workload,
            options=ExportOptions(gauges=backend != "rest", counters=backend == "rest"),
            step=1.0,
            port=port,
            task_status=task_status,
        )
    )
    env = Env(client, simulator, workload, prometheus.url, spec, nursery, prometheus)

    async def placed() -> bool:
        if backend == "rest":
            return all([len(await env.tiers(name)) == 1 for name in loads])
        listed = await client.list_all(resources.MAYASTOR_VOLUME, NS, type=MayastorVolume)
        return len(listed.items) == len(loads) and all(
            len(v.replicas) == v.spec.num_replicas and all(r.healthy for r in v.replicas)
            for v in listed.items
        )

    await env.eventually(placed, timeout=30, what="every volume placed and synced")
    return env
