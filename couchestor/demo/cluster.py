"""The embedded emulated cluster the demo runs on, in the caller's nursery.

:func:`start_cluster` serves the Kubernetes API server emulator, writes a kubeconfig for it, fills it with the
story's pools and volumes, and starts the Mayastor simulator and the workload simulator (whose
Prometheus-compatible query endpoint stands in for Prometheus). Every part is an ordinary HTTP server or
client, so ``kubectl --kubeconfig <path>`` sees what the operator sees while the demo runs. Cancelling the
nursery stops them all; the caller closes :attr:`EmbeddedCluster.client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio

from couchestor.demo import scenario
from couchestor.demo.scenario import DemoVolume
from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.reflector import Reflector
from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import populate
from couchestor.sim.workload import ExportOptions, Workload, serve_workload
from k8s_schemas.mayastor import MayastorVolume

#: Seconds between the samples the query endpoint serves, as a Prometheus scraping every second would hold.
SCRAPE_STEP = 1.0
#: How long the simulator may take to place every new volume before the demo gives up.
PLACEMENT_TIMEOUT = 30.0


class ClusterStartError(Exception):
    """The embedded cluster did not come up (a volume was never placed)."""


@dataclass
class EmbeddedCluster:
    """The running parts; ``client`` is the simulators' own (unthrottled) client of the emulator."""

    url: str
    kubeconfig: Path
    query_url: str
    client: KubeClient
    simulator: MayastorSimulator
    workload: Workload
    volumes: tuple[DemoVolume, ...]

    def tier_of(self, volume: DemoVolume) -> str:
        """Where the volume's data is, from the simulator: ``hot``, ``cold``, ``cold+hot`` while it is
        copied, ``?`` before it is placed."""
        model = self.simulator.cluster.volumes.get(volume.uuid)
        if model is None:
            return "?"
        tiers = set()
        for replica in model.replicas:
            pool = self.simulator.cluster.pools.get(replica.pool)
            if pool is not None and replica.healthy:
                tiers.add(pool.labels.get("tier", "?"))
        return "+".join(sorted(tiers)) or "?"

    def at_rest(self, volume: DemoVolume) -> bool:
        """Every requested replica is placed and Synced (the simulator's view, no API read)."""
        model = self.simulator.cluster.volumes.get(volume.uuid)
        if model is None:
            return False
        return len(model.replicas) == model.num_replicas and all(r.healthy for r in model.replicas)

    def set_load(self, volume: DemoVolume, iops: float) -> None:
        self.workload.set_pattern(volume.pv, scenario.pattern(iops))


async def start_cluster(
    nursery: trio.Nursery,
    kubeconfig: Path,
    volumes: tuple[DemoVolume, ...] = scenario.VOLUMES,
) -> EmbeddedCluster:
    """Start everything in ``nursery`` and return once every volume is placed and Synced.

    Raises :class:`ClusterStartError` when placement does not finish within :data:`PLACEMENT_TIMEOUT`.
    """
    url: str = await nursery.start(serve, ApiServer(bookmark_interval=5.0))
    write_kubeconfig(kubeconfig, url, context="couchestor-demo")
    client = KubeClient(load_kubeconfig([kubeconfig]), qps=0)
    try:
        await populate(client, scenario.cluster_spec(volumes))
        simulator = MayastorSimulator(
            client, namespace=scenario.MAYASTOR_NAMESPACE, time_scale=scenario.TIME_SCALE, tick=0.05
        )
        await nursery.start(simulator.run)
        workload = Workload(seed=7)
        for v in volumes:
            workload.add_volume(v.pv, scenario.pattern(v.iops))
        query_url: str = await nursery.start(
            lambda task_status: serve_workload(
                workload, options=ExportOptions(), step=SCRAPE_STEP, task_status=task_status
            )
        )
        with trio.move_on_after(PLACEMENT_TIMEOUT):
            await _wait_placed(client, len(volumes))
            return EmbeddedCluster(url, kubeconfig, query_url, client, simulator, workload, volumes)
        raise ClusterStartError(f"the simulator did not place every volume within {PLACEMENT_TIMEOUT:g}s")
    except BaseException:
        # Also when cancelled: closing pooled loopback connections is quick, so shield it (bounded).
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await client.aclose()
        raise


async def _wait_placed(client: KubeClient, count: int) -> None:
    """Return once ``count`` MayastorVolumes report all their replicas Online and Synced (as the API shows)."""
    reflector = Reflector.for_resource(
        client, resources.MAYASTOR_VOLUME, MayastorVolume, namespace=scenario.MAYASTOR_NAMESPACE
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reflector.run)
        async for _ in reflector.store.subscribe():
            placed = [
                v
                for v in reflector.store.list()
                if len(v.replicas) == v.spec.num_replicas and all(r.healthy for r in v.replicas)
            ]
            if len(placed) >= count:
                break
        nursery.cancel_scope.cancel()


__all__ = ["ClusterStartError", "EmbeddedCluster", "start_cluster"]
