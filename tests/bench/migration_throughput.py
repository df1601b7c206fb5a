"""Migration throughput on the simulator: volumes moved per minute of simulated time, by concurrency.

For each concurrency limit, a fresh emulated cluster holds ``volumes`` volumes on the cold tier that all run hot;
the operator (global ``--max-concurrent-migrations`` = the limit, policy limit the same) moves every one of
them to NVMe. The Mayastor simulator runs ``time_scale`` times faster than the wall clock and rebuilds at its
default bandwidth, so simulated minutes include the operator's own latency multiplied by the time scale — the
figures are an upper bound of the operator's overhead, not a property of Mayastor.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import trio

from couchestor import settings as settings_mod
from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.operator import Operator
from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, populate
from couchestor.sim.workload import ExportOptions, Kind, Pattern, Workload, serve_workload
from k8s_schemas.storage_policy import StoragePolicy


def _spec(volumes: int) -> ClusterSpec:
    pools = tuple(PoolSpec(f"pool-hot-{i}", f"node-h{i}", "hot", 2000 * GI) for i in range(8)) + tuple(
        PoolSpec(f"pool-cold-{i}", f"node-c{i}", "cold", 2000 * GI) for i in range(4)
    )
    vols = tuple(
        VolumeSpec(f"pvc-t{i}", f"vol-t{i}", "apps", f"data-{i}", 10 * GI, "cold", {"app": "bench"})
        for i in range(volumes)
    )
    return ClusterSpec(pools, vols)


async def _one(concurrency: int, volumes: int, time_scale: float) -> dict[str, Any]:
    spec = _spec(volumes)
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve, ApiServer())
            write_kubeconfig(kubeconfig, url)
            client = KubeClient(load_kubeconfig([kubeconfig]), qps=0)
            await populate(client, spec)
            simulator = MayastorSimulator(client, namespace="mayastor", time_scale=time_scale, tick=0.05)
            await nursery.start(simulator.run)
            workload = Workload(seed=1)
            for volume in spec.volumes:
                workload.add_volume(volume.pv, Pattern(Kind.CONSTANT, base=9000.0))
            prom_url = await nursery.start(
                lambda task_status: serve_workload(
                    workload, options=ExportOptions(), step=15.0, task_status=task_status
                )
            )
            policy = {
                "apiVersion": "storage.billyronks.io/v1",
                "kind": "StoragePolicy",
                "metadata": {"name": "bench"},
                "spec": {
                    "storageClassName": spec.storage_class,
                    "highWatermarkIOPS": 5000,
                    "lowWatermarkIOPS": 500,
                    "samplingWindow": "5m",
                    "maxConcurrentMigrations": concurrency,
                    "migrationTimeout": "1h",
                },
            }
            await client.create(resources.STORAGE_POLICY, policy, type=dict)
            environ = {
                "COUCHESTOR_PROMETHEUS_URL": prom_url,
                "COUCHESTOR_METRICS_ADDR": "127.0.0.1:0",
                "COUCHESTOR_SCORE_TTL": "5s",
                "COUCHESTOR_RESYNC": "1s",
                "COUCHESTOR_LEADER_ELECTION": "false",
                "COUCHESTOR_MAX_CONCURRENT_MIGRATIONS": str(concurrency),
                "COUCHESTOR_LOG_LEVEL": "warning",
            }
            simulator.checker.max_in_flight = concurrency
            operator = Operator(settings_mod.resolve(argparse.Namespace(), environ), client)
            await nursery.start(operator.run)
            started_sim = simulator.now()
            started_wall = trio.current_time()
            with trio.fail_after(600):
                while True:
                    obj = await client.get(resources.STORAGE_POLICY, "bench", type=StoragePolicy)
                    status = obj.status if obj.status else None
                    done = len(status.migration_history) if status and status.migration_history else 0
                    if done >= volumes:
                        break
                    await trio.sleep(0.2)
            sim_minutes = (simulator.now() - started_sim) / 60
            wall = trio.current_time() - started_wall
            result = {
                "concurrency": concurrency,
                "volumes": volumes,
                "simulated_minutes": round(sim_minutes, 2),
                "wall_seconds": round(wall, 1),
                "volumes_per_sim_minute": round(volumes / sim_minutes, 2),
                "peak_in_flight": simulator.checker.peak_in_flight,
                "violations": len(simulator.checker.violations),
            }
            nursery.cancel_scope.cancel()
    return result


def run(
    concurrencies: tuple[int, ...] = (1, 2, 4, 8), volumes: int = 8, time_scale: float = 20.0
) -> dict[str, Any]:
    rows = [trio.run(_one, c, volumes, time_scale) for c in concurrencies]
    return {"time_scale": time_scale, "rows": rows}


def report(result: dict[str, Any]) -> str:
    lines = [f"Migration throughput (10 GiB volumes, simulator at {result['time_scale']:g}x)"]
    base = result["rows"][0]["volumes_per_sim_minute"]
    for row in result["rows"]:
        lines.append(
            f"  concurrency {row['concurrency']}: {row['volumes_per_sim_minute']} volumes/sim-min"
            f" ({row['volumes_per_sim_minute'] / base:.1f}x), peak in flight {row['peak_in_flight']},"
            f" {row['violations']} invariant violations, {row['wall_seconds']} s wall"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
