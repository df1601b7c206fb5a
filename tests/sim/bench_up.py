"""``python -m tests.sim.bench_up [--volumes N]``: start-up time and memory of the whole emulated cluster.

Does in one process what ``couchestor sim up --volumes N`` is to do: serves the API server emulator, creates
the CRDs, StorageClass, DiskPools, namespaces, PVs, PVCs and MayastorVolumes over HTTP (``populate``), runs
the Mayastor simulator until every volume is placed and Synced (as the API shows it), and serves the workload
simulator with one pattern per volume, scraping its ``/metrics`` once. Prints the time of each phase and the
process's resident memory; asserts nothing (benchmarks are not timed tests).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import httpx
import trio

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.reflector import Reflector
from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import GI, default_spec, populate
from couchestor.sim.workload import ExportOptions, Workload, generate_volumes, serve_workload
from k8s_schemas import MayastorVolume


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _wait_placed(client: KubeClient, namespace: str, count: int) -> None:
    """Return once ``count`` MayastorVolumes show all their replicas Online and Synced (counted per change)."""
    reflector = Reflector.for_resource(client, resources.MAYASTOR_VOLUME, MayastorVolume, namespace=namespace)
    placed: set[str] = set()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reflector.run)
        async for change in reflector.store.subscribe():
            v = reflector.store.get_key(change.key)
            if (
                v is not None
                and len(v.replicas) == v.spec.num_replicas
                and all(r.healthy for r in v.replicas)
            ):
                placed.add(change.key.name)
                if len(placed) >= count:
                    break
            else:
                placed.discard(change.key.name)
        nursery.cancel_scope.cancel()


async def bench(volumes: int, kubeconfig: Path) -> None:
    base_rss = _rss_mib()
    started = time.perf_counter()
    # Enough room on each tier for all its volumes (the default pools fit the demo's few hundred).
    spec = default_spec(volumes, pool_capacity=max(10_000, volumes * 20) * GI)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, ApiServer())
        write_kubeconfig(kubeconfig, url)
        async with KubeClient(load_kubeconfig([kubeconfig]), qps=0) as client:
            t0 = time.perf_counter()
            await populate(client, spec)
            t_populate = time.perf_counter() - t0
            print(f"populated in {t_populate:.1f} s", flush=True)
            t0 = time.perf_counter()
            simulator = MayastorSimulator(client, namespace=spec.mayastor_namespace, time_scale=60.0)
            await nursery.start(simulator.run)
            await _wait_placed(client, spec.mayastor_namespace, volumes)
            t_place = time.perf_counter() - t0
            t0 = time.perf_counter()
            workload = Workload(seed=1)
            patterns = generate_volumes(volumes, seed=1)
            for v, (_, pattern) in zip(spec.volumes, patterns, strict=True):
                workload.add_volume(v.pv, pattern)
            metrics_url = await nursery.start(
                lambda task_status: serve_workload(workload, options=ExportOptions(), task_status=task_status)
            )
            async with httpx.AsyncClient(timeout=60) as http:
                scrape = await http.get(f"{metrics_url}/metrics")
                scrape.raise_for_status()
            t_workload = time.perf_counter() - t0
            total = time.perf_counter() - started
            print(f"volumes: {volumes} (pools: {len(spec.pools)}, objects created: {volumes * 3} + fixtures)")
            print(
                f"populate over HTTP (CRDs, namespaces, SC, pools, PV+PVC+MayastorVolume): {t_populate:.1f} s"
            )
            print(f"Mayastor simulator: every volume placed and Synced: {t_place:.1f} s")
            print(f"workload simulator up + first /metrics scrape ({len(scrape.content) / 1e6:.1f} MB): "
                  f"{t_workload:.1f} s")  # fmt: skip
            print(f"total start-up: {total:.1f} s")
            print(f"resident memory: {_rss_mib():.0f} MiB now, {_peak_rss_mib():.0f} MiB peak "
                  f"(interpreter and imports before start: {base_rss:.0f} MiB)")  # fmt: skip
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(bench, args.volumes, Path(tmp) / "kubeconfig")


if __name__ == "__main__":
    main()
