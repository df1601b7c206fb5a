"""The operator at scale on the emulated cluster: PromQL queries per refresh and reconcile CPU per pass.

An in-process API server emulator holds ``n`` volumes (PV, PVC, MayastorVolume) on hot and cold pools, the
Mayastor simulator places their replicas, the workload simulator answers PromQL for all of them, and the real
operator runs with one dry-run policy selecting every volume (so the figures are about deciding, not moving).
Measured: API objects listed, queries sent per score refresh, and the CPU time of one reconcile pass (the mean
and the worst of the passes after the first), which is the operator's steady-state cost per resync.

The queries per refresh do not grow with the volumes: per sampling window, one per metric plus one for
coverage (:func:`~couchestor.tiering.heat.build_queries`), and one per distinct ``coldAfterIdle`` period
(:func:`~couchestor.tiering.heat.build_idle_query`). The report prints that expected count beside the measured
one. ``cold_after_idle`` gives the policy an idle period; the workload simulator's query endpoint does not
evaluate the idle query (a subquery), so that query is sent and counted but answered with an error, and the
report says so (against a real Prometheus it is answered).

The seeds' design sends one Prometheus query per volume per reconcile; the ratio printed is against that.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from couchestor import operator as couchestor_operator, settings as settings_mod
from couchestor.durations import parse_duration
from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.operator import Operator
from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
from couchestor.sim.bulk import populate_local
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.populate import default_spec
from couchestor.sim.workload import ExportOptions, Kind, Pattern, Workload, serve_workload
from couchestor.tiering.heat import build_queries
from couchestor.tiering.reconcile import Reconciler
from couchestor.tiering.scores import ScoreCache

log = logging.getLogger("bench.operator")

POLICY = {
    "apiVersion": "storage.billyronks.io/v1",
    "kind": "StoragePolicy",
    "metadata": {"name": "all"},
    "spec": {
        "highWatermarkIOPS": 5000,
        "lowWatermarkIOPS": 500,
        "samplingWindow": "10m",
        "dryRun": True,
    },
}


@dataclass(frozen=True)
class Cluster:
    """A populated emulated cluster: its kubeconfig, the workload's PromQL URL, how long populating took."""

    kubeconfig: Path
    prometheus_url: str
    populate_seconds: float


@asynccontextmanager
async def cluster(n: int, cold_after_idle: str | None = None) -> AsyncIterator[Cluster]:
    """Serve the emulator with ``n`` volumes placed (as a cluster that has run a while: the Mayastor simulator
    adopts them instead of writing every status over HTTP), the workload simulator
    answering PromQL for them, and one dry-run policy selecting every volume (with ``coldAfterIdle`` of that
    period when ``cold_after_idle`` is given); all stop when the block ends."""
    # Room for every volume: half of them per tier, 4 pools per tier, volumes of 10-50 GiB (26.7 on average).
    # (A fixed 100,000 GiB per pool held only about 30,000 volumes: the rest could never be placed.)
    spec = default_spec(n, hot_pools=4, cold_pools=4, pool_capacity=max(100_000, n * 25) * 2**30)
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        async with trio.open_nursery() as nursery:
            api = ApiServer()
            url = await nursery.start(serve, api)
            write_kubeconfig(kubeconfig, url)
            async with KubeClient(load_kubeconfig([kubeconfig]), qps=0) as client:
                started = time.perf_counter()
                # The emulator is in this process: its objects are created in it, not over HTTP.
                await populate_local(api, spec, placed=True)
                populate_seconds = time.perf_counter() - started
                simulator = MayastorSimulator(client, namespace="mayastor", time_scale=60.0, tick=0.5)
                await nursery.start(simulator.run)
                workload = Workload(seed=5)
                for i, volume in enumerate(spec.volumes):
                    iops = (0.0, 300.0, 2500.0, 9000.0)[i % 4]
                    pattern = Pattern(Kind.IDLE, base=0.0) if iops == 0 else Pattern(Kind.CONSTANT, base=iops)
                    workload.add_volume(volume.pv, pattern)
                prom_url = await nursery.start(
                    lambda task_status: serve_workload(
                        workload, options=ExportOptions(), step=15.0, task_status=task_status
                    )
                )
                policy = {**POLICY, "spec": {**POLICY["spec"], "storageClassName": spec.storage_class}}
                if cold_after_idle is not None:
                    policy["spec"]["coldAfterIdle"] = {"period": cold_after_idle, "belowIOPS": 100}
                await client.create(resources.STORAGE_POLICY, policy, type=dict)
                yield Cluster(kubeconfig, prom_url, populate_seconds)
                nursery.cancel_scope.cancel()


#: How long each stage of :func:`steady_operator` may take.
STAGE_SECONDS = 900


class NotSteady(RuntimeError):
    """A stage of :func:`steady_operator` did not finish in time."""


@contextmanager
def _stage(what: str, state: Callable[[], str] = lambda: "") -> Iterator[None]:
    started = time.perf_counter()
    try:
        with trio.fail_after(STAGE_SECONDS):
            yield
    except trio.TooSlowError:
        detail = state()
        raise NotSteady(f"not {what} within {STAGE_SECONDS} s{f' ({detail})' if detail else ''}") from None
    log.info("steady: %s after %.1f s", what, time.perf_counter() - started)


@dataclass
class Steady:
    """A running operator whose cluster is steady: every replica placed, the first start's writes done."""

    operator: Operator
    reconciler: Reconciler
    scores: ScoreCache
    writes: float  # API writes so far (the first start's)
    first_pass_seconds: float  # from the operator's start to the end of its first reconcile pass


async def steady_operator(
    nursery: trio.Nursery, client: KubeClient, prometheus_url: str, *, freeze_heap: bool = False
) -> Steady:
    """Start the operator in ``nursery`` (dry run, resync and score TTL of an hour so only explicit passes
    run) and return once its cluster is steady. Raises :class:`NotSteady` after :data:`STAGE_SECONDS` in a stage.

    ``freeze_heap``: as ``couchestor run`` does (the operator's own process only): freeze after the initial
    sync, and once more when steady, as its periodic re-freeze would by then (the first start's label writes
    replaced every PV)."""
    environ = {
        "COUCHESTOR_PROMETHEUS_URL": prometheus_url,
        "COUCHESTOR_METRICS_ADDR": "127.0.0.1:0",
        "COUCHESTOR_SCORE_TTL": "3600s",
        "COUCHESTOR_RESYNC": "3600s",
        "COUCHESTOR_LEADER_ELECTION": "false",
    }
    operator = Operator(
        settings_mod.resolve(argparse.Namespace(), environ), client, freeze_heap_after_sync=freeze_heap
    )
    started = time.perf_counter()
    await nursery.start(operator.run)
    with _stage("the first reconcile pass and score refresh"):
        while operator.reconciler is None or operator.reconciler.passes < 1:
            await trio.sleep(0.05)
        first_pass_seconds = time.perf_counter() - started
        reconciler = operator.reconciler
        scores = operator.scores
        assert scores is not None
        while scores.refreshes < 1:
            await trio.sleep(0.1)
    # Steady state: every replica placed and synced (the simulator is still placing at first) ...
    degraded = -1
    with _stage("every replica placed and synced", lambda: f"{degraded} volumes still degraded"):
        while degraded != 0:
            await reconciler.reconcile_once()
            plan = reconciler.last_plan
            degraded = -1 if plan is None else sum(d.reason == "degraded" for d in plan.decisions)
            if degraded:
                await trio.sleep(1.0)
    # ... and the first start's writes (a tier label on every PV, status, events) all done.
    quiet_since, last = trio.current_time(), _writes(operator)
    with _stage("the first start's writes done", lambda: f"{_writes(operator):.0f} writes so far"):
        while trio.current_time() - quiet_since < 3.0:
            await trio.sleep(0.5)
            if _writes(operator) != last:
                quiet_since, last = trio.current_time(), _writes(operator)
    if freeze_heap:
        couchestor_operator.freeze_heap()
    return Steady(operator, reconciler, scores, last, first_pass_seconds)


async def reconcile_cpu(reconciler: Reconciler, passes: int, *, full: bool = False) -> list[float]:
    """CPU seconds of the decision part of ``passes`` explicit reconcile passes (``full``: each one a full
    pass, every view rebuilt and every volume judged; else as they come, incremental in a steady cluster)."""
    cpu: list[float] = []
    for _ in range(passes):
        if full:
            reconciler.request_full_pass()
        await reconciler.reconcile_once()
        cpu.append(reconciler.last_decide_cpu_seconds)
    return cpu


async def _measure(n: int, passes: int, cold_after_idle: str | None) -> dict[str, Any]:
    async with (
        cluster(n, cold_after_idle) as built,
        KubeClient(load_kubeconfig([built.kubeconfig]), qps=0) as client,
        trio.open_nursery() as nursery,
    ):
        steady = await steady_operator(nursery, client, built.prometheus_url)
        cpu = await reconcile_cpu(steady.reconciler, passes)
        await trio.sleep(1.0)  # anything a pass started (labels, events) has time to be written
        steady_writes = _writes(steady.operator) - steady.writes
        plan = steady.reconciler.last_plan
        decided = len(plan.decisions) if plan else 0
        labels = {d.label for d in plan.decisions} if plan else set()
        windows = {int(parse_duration(str(POLICY["spec"]["samplingWindow"])))}
        periods = set() if cold_after_idle is None else {int(parse_duration(cold_after_idle))}
        source = steady.scores.source
        peaks = [p for s in steady.scores.snapshots.values() for p in s.peaks.values()]
        result = {
            "volumes": n,
            "cold_after_idle": cold_after_idle,
            "per_window_queries": len(build_queries(source, next(iter(windows)))),
            "expected_queries_per_refresh": sum(len(build_queries(source, w)) for w in windows)
            + len(periods),
            "idle_query_errors": sorted({p.error or "" for p in peaks if not p.healthy}),
            "populate_seconds": round(built.populate_seconds, 1),
            "decisions": decided,
            "decision_kinds": sorted(labels),
            "queries_per_refresh": steady.scores.queries_sent / max(steady.scores.refreshes, 1),
            "seed_design_queries_per_refresh": n,
            "reconcile_cpu_mean_ms": round(statistics.fmean(cpu) * 1000, 1),
            "reconcile_cpu_max_ms": round(max(cpu) * 1000, 1),
            "first_start_writes": steady.writes,
            "steady_passes": passes,
            "steady_writes": steady_writes,
        }
        nursery.cancel_scope.cancel()
    return result


def _writes(operator: Operator) -> float:
    return sum(
        sample.value
        for metric in operator.metrics.api_writes.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def run(n: int = 10_000, passes: int = 5, cold_after_idle: str | None = None) -> dict[str, Any]:
    return trio.run(_measure, n, passes, cold_after_idle)


def report(result: dict[str, Any]) -> str:
    q = result["queries_per_refresh"]
    idle = result.get("cold_after_idle")
    periods = 0 if idle is None else 1
    expected = (
        f"expected {result['expected_queries_per_refresh']}: {result['per_window_queries']} for the sampling"
        f" window (one per metric, one for coverage) + {periods} for the coldAfterIdle period"
        + ("" if idle is None else f" ({idle})")
    )
    unanswered = result.get("idle_query_errors") or []
    return "\n".join(
        [
            f"Operator at {result['volumes']} volumes ({result['decisions']} decisions per pass)",
            f"  PromQL queries per score refresh: {q:g} ({expected}; seed design:"
            f" {result['seed_design_queries_per_refresh']}, {result['seed_design_queries_per_refresh'] / q:,.0f}x more)",
            *(
                [f"  the idle query was sent and counted, but not answered: {unanswered[0]}"]
                if unanswered
                else []
            ),
            f"  reconcile pass CPU: mean {result['reconcile_cpu_mean_ms']} ms,"
            f" worst {result['reconcile_cpu_max_ms']} ms",
            f"  API writes: {result['first_start_writes']:.0f} at first start (tier labels, status, events),"
            f" {result['steady_writes']:.0f} over {result['steady_passes']} steady-state passes",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="The operator at scale (one size; see the module docstring)."
    )
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--cold-after-idle", metavar="PERIOD", help="give the policy coldAfterIdle, e.g. 7d")
    args = parser.parse_args()
    print(report(run(args.volumes, args.passes, args.cold_after_idle)))
