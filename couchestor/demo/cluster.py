"""The embedded emulated cluster the demo runs on, in the caller's nursery.

:func:`start_cluster` serves the Kubernetes API server emulator, writes a kubeconfig for it, fills it with the
story's pools and volumes, and starts a Mayastor simulator, the workload simulator and the heat source
(:mod:`.heat_source`: a real Prometheus scraping the workload, or the workload's own query endpoint). Two
Mayastor simulators can play the storage (``backend``):

- ``mayastor-crd``: the MayastorVolume resource of the seeds' Mayastor; the workload exports the seeds'
  ``openebs_volume_iops`` gauge;
- ``mayastor-rest``: Mayastor 2.x, volumes only behind its control-plane REST API (real-schema DiskPools and
  PVs in Kubernetes); the workload exports the 2.x io-engine counters ``volume_num_read_ops`` and
  ``volume_num_write_ops`` labelled ``pv_name``.

Every part is an ordinary HTTP server or client, so ``kubectl --kubeconfig <path>`` sees what the operator
sees while the demo runs. Prometheus starts while the cluster is being filled (it needs a few seconds before
its first scrape). Cancelling the nursery stops them all; the caller closes :attr:`EmbeddedCluster.client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio

from couchestor.demo import scenario
from couchestor.demo.heat_source import QUERY_ENDPOINT, HeatChoice, HeatSource, serve_heat_source
from couchestor.demo.scenario import DemoVolume
from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.reflector import Reflector
from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
from couchestor.sim.bulk import populate_local
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.mayastor.invariant import InvariantChecker
from couchestor.sim.mayastor.model import Cluster
from couchestor.sim.mayastor_rest import RestSimulator
from couchestor.sim.mayastor_rest.cluster import start_rest_cluster
from couchestor.sim.populate import ClusterSpec
from couchestor.sim.workload import ExportOptions, Workload, serve_workload
from k8s_schemas.mayastor import MayastorVolume

#: The storage the demo can simulate, as ``couchestor run --backend`` names it.
BACKENDS = ("mayastor-crd", "mayastor-rest")
#: Seconds between samples: Prometheus scrapes this often, and the query endpoint serves this grid.
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
    backend: str
    heat: HeatSource
    client: KubeClient
    simulator: MayastorSimulator | RestSimulator
    workload: Workload
    volumes: tuple[DemoVolume, ...]

    @property
    def checker(self) -> InvariantChecker:
        return self.simulator.checker

    @property
    def rest_url(self) -> str:
        """The Mayastor 2.x REST API's URL (empty with the CRD simulator)."""
        return self.simulator.url if isinstance(self.simulator, RestSimulator) else ""

    @property
    def _model(self) -> Cluster:
        if isinstance(self.simulator, RestSimulator):
            return self.simulator.plane.cluster
        return self.simulator.cluster

    def tier_of(self, volume: DemoVolume) -> str:
        """Where the volume's data is, from the simulator: ``hot``, ``cold``, ``cold+hot`` while it is
        copied, ``?`` before it is placed."""
        model = self._model
        placed = model.volumes.get(volume.uuid)
        if placed is None:
            return "?"
        tiers = set()
        for replica in placed.replicas:
            pool = model.pools.get(replica.pool)
            if pool is not None and replica.healthy:
                tiers.add(pool.labels.get("tier", "?"))
        return "+".join(sorted(tiers)) or "?"

    def at_rest(self, volume: DemoVolume) -> bool:
        """Every requested replica is placed and Synced (the simulator's view, no API read)."""
        placed = self._model.volumes.get(volume.uuid)
        if placed is None:
            return False
        return len(placed.replicas) == placed.num_replicas and all(r.healthy for r in placed.replicas)

    def set_load(self, volume: DemoVolume, iops: float) -> None:
        self.workload.set_pattern(volume.pv, scenario.pattern(iops))


async def start_cluster(
    nursery: trio.Nursery,
    kubeconfig: Path,
    volumes: tuple[DemoVolume, ...] = scenario.VOLUMES,
    *,
    backend: str = "mayastor-crd",
    heat: HeatChoice = QUERY_ENDPOINT,
) -> EmbeddedCluster:
    """Start everything in ``nursery`` and return once every volume is placed and Synced and the heat source
    answers queries.

    Raises :class:`ClusterStartError` (in an exception group) when placement does not finish within
    :data:`PLACEMENT_TIMEOUT`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    api = ApiServer(bookmark_interval=5.0)
    url: str = await nursery.start(serve, api)
    write_kubeconfig(kubeconfig, url, context="couchestor-demo")
    client = KubeClient(load_kubeconfig([kubeconfig]), qps=0)
    try:
        workload = Workload(seed=7)
        for v in volumes:
            workload.add_volume(v.pv, scenario.pattern(v.iops))
        exported = (
            ExportOptions(gauges=False, counters=True)
            if backend == "mayastor-rest"
            else ExportOptions(split_gauges=False)
        )
        query_url: str = await nursery.start(
            lambda task_status: serve_workload(
                workload, options=exported, step=SCRAPE_STEP, task_status=task_status
            )
        )
        spec = scenario.cluster_spec(volumes)
        sources: list[HeatSource] = []
        simulator: MayastorSimulator | RestSimulator
        async with trio.open_nursery() as setup:
            # Prometheus takes seconds to its first scrape: let it start while the cluster is filled.
            setup.start_soon(_start_heat_source, nursery, sources, heat, workload, exported, query_url)
            if backend == "mayastor-rest":
                simulator = await _fill_rest(client, spec, nursery)
            else:
                simulator = await _fill_crd(client, api, spec, nursery)
        return EmbeddedCluster(url, kubeconfig, backend, sources[0], client, simulator, workload, volumes)
    except BaseException:
        # Also when cancelled: closing pooled loopback connections is quick, so shield it (bounded).
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await client.aclose()
        raise


async def _start_heat_source(
    nursery: trio.Nursery,
    started: list[HeatSource],
    heat: HeatChoice,
    workload: Workload,
    exported: ExportOptions,
    query_url: str,
) -> None:
    """Start the heat source in ``nursery`` (it outlives this task) and append it to ``started``."""
    source: HeatSource = await nursery.start(
        lambda task_status: serve_heat_source(
            heat, workload, exported, query_url, scrape_interval=SCRAPE_STEP, task_status=task_status
        )
    )
    started.append(source)


async def _fill_crd(
    client: KubeClient, api: ApiServer, spec: ClusterSpec, nursery: trio.Nursery
) -> MayastorSimulator:
    """The seeds' Mayastor: create every object (MayastorVolumes included) in the embedded emulator, start
    the simulator in ``nursery`` and return it once it has placed every volume."""
    await populate_local(api, spec)
    simulator = MayastorSimulator(
        client, namespace=spec.mayastor_namespace, time_scale=scenario.TIME_SCALE, tick=0.05
    )
    await nursery.start(simulator.run)
    with trio.move_on_after(PLACEMENT_TIMEOUT):
        await _wait_placed(client, len(spec.volumes))
        return simulator
    raise ClusterStartError(f"the simulator did not place every volume within {PLACEMENT_TIMEOUT:g}s")


async def _fill_rest(client: KubeClient, spec: ClusterSpec, nursery: trio.Nursery) -> RestSimulator:
    """Mayastor 2.x: DiskPools, PVs and PVCs in Kubernetes, each volume created in the control plane on its
    starting tier before its PV (as CSI would); the simulator runs in ``nursery``."""
    try:
        return await start_rest_cluster(nursery, client, spec, time_scale=scenario.TIME_SCALE, tick=0.05)
    except RuntimeError as exc:  # a DiskPool the simulator could not take in
        raise ClusterStartError(str(exc)) from exc


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


__all__ = ["BACKENDS", "ClusterStartError", "EmbeddedCluster", "start_cluster"]
