"""Scaling curve: the whole operator's resident memory and reconcile CPU against the number of volumes.

For each volume count, two processes of their own (so that neither a larger earlier point nor the emulator
is in the operator's figures):

- the **cluster** (``python -m tests.bench.operator_curve cluster N DIR``): the emulated cluster of
  :func:`tests.bench.operator_scale.cluster` (API server emulator, Mayastor and workload simulators, one
  dry-run policy over every volume), which writes ``DIR/cluster.json`` once populated;
- the **operator** (``python -m tests.bench.operator_curve operator DIR PASSES``): the real operator against
  it, run until the cluster is steady (every replica placed, the first start's writes done), then
  ``PASSES`` explicit reconcile passes. It prints one JSON line: its resident set size (after a full
  collection) before the operator started and once steady, and the CPU time of each pass's decision part.
- the **first start** (``python -m tests.bench.operator_curve first-start DIR``), for a cluster too large to
  wait for steady: the operator's resident set right after its first pass, and 15 and 35 s later.

The slopes per 1,000 volumes are least-squares fits over the points. The resident figure is the whole
process (interpreter, imports, the operator's caches of PVs, PVCs, MayastorVolumes, pools and scores).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from tests.bench.processes import rss_bytes, stop

_ROOT = Path(__file__).resolve().parents[2]
_READY = "cluster.json"


async def _serve_cluster(n: int, directory: Path) -> None:
    from tests.bench.operator_scale import cluster

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with cluster(n) as built:
            ready = {
                "kubeconfig": str(built.kubeconfig),
                "prometheus_url": built.prometheus_url,
                "populate_seconds": built.populate_seconds,
            }
            (directory / f"{_READY}.tmp").write_text(json.dumps(ready))
            (directory / f"{_READY}.tmp").rename(directory / _READY)
            async for _ in signals:
                break


async def _measure_operator(directory: Path, passes: int) -> dict[str, Any]:
    from couchestor.kube import KubeClient, load_kubeconfig
    from tests.bench.operator_scale import reconcile_cpu, steady_operator

    ready = json.loads((directory / _READY).read_text())
    rss_before = rss_bytes()
    async with (
        KubeClient(load_kubeconfig([Path(ready["kubeconfig"])]), qps=0) as client,
        trio.open_nursery() as nursery,
    ):
        started = time.perf_counter()
        # Its own process, as `couchestor run`: the heap is frozen as the operator does it.
        steady = await steady_operator(nursery, client, ready["prometheus_url"], freeze_heap=True)
        settle_seconds = time.perf_counter() - started
        full_cpu = await reconcile_cpu(steady.reconciler, passes, full=True)
        cpu = await reconcile_cpu(steady.reconciler, passes)
        rss = rss_bytes()
        plan = steady.reconciler.last_plan
        nursery.cancel_scope.cancel()
    return {
        "decisions": len(plan.decisions) if plan else 0,
        "rss_before_bytes": rss_before,
        "rss_bytes": rss,
        "reconcile_cpu_seconds": cpu,
        "full_pass_cpu_seconds": full_cpu,
        "first_pass_seconds": steady.first_pass_seconds,
        "settle_seconds": settle_seconds,
        "populate_seconds": ready["populate_seconds"],
    }


async def _first_start(directory: Path) -> dict[str, Any]:
    """The operator's resident set at its first start on a cluster too large to wait for steady (100,000
    volumes: the simulator places them for an hour): right after its first pass, then 15 and 35 s later (the
    first start's tier labels written, the simulator still placing). Heap frozen as ``couchestor run`` does."""
    from couchestor import settings as settings_mod
    from couchestor.kube import KubeClient, load_kubeconfig
    from couchestor.operator import Operator

    ready = json.loads((directory / _READY).read_text())
    out: dict[str, Any] = {"rss_before_mib": rss_bytes() / 2**20}
    async with (
        KubeClient(load_kubeconfig([Path(ready["kubeconfig"])]), qps=0) as client,
        trio.open_nursery() as nursery,
    ):
        environ = {
            "COUCHESTOR_PROMETHEUS_URL": ready["prometheus_url"],
            "COUCHESTOR_METRICS_ADDR": "127.0.0.1:0",
            "COUCHESTOR_SCORE_TTL": "3600s",
            "COUCHESTOR_RESYNC": "3600s",
            "COUCHESTOR_LEADER_ELECTION": "false",
        }
        settings = settings_mod.resolve(argparse.Namespace(), environ)
        operator = Operator(settings, client, freeze_heap_after_sync=True)
        started, cpu = time.perf_counter(), time.process_time()
        await nursery.start(operator.run)
        while operator.reconciler is None or operator.reconciler.passes < 1:
            await trio.sleep(0.05)
        plan = operator.reconciler.last_plan
        out["first_pass_seconds"] = time.perf_counter() - started
        out["cpu_to_first_pass_seconds"] = time.process_time() - cpu
        out["decisions"] = len(plan.decisions) if plan else 0
        out["rss_after_first_pass_mib"] = rss_bytes() / 2**20
        await trio.sleep(15)
        out["rss_15s_later_mib"] = rss_bytes() / 2**20
        await trio.sleep(20)
        out["rss_35s_later_mib"] = rss_bytes() / 2**20
        nursery.cancel_scope.cancel()
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}


def _point(n: int, passes: int, timeout: float) -> dict[str, Any]:
    """One volume count: start the cluster process, measure the operator in another, stop the cluster."""
    with tempfile.TemporaryDirectory(prefix="couchestor-curve-") as tmp:
        directory = Path(tmp)
        log_path = directory / "cluster.log"
        with log_path.open("w") as log:
            cluster = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.operator_curve", "cluster", str(n), tmp],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=_ROOT,
            )
        try:
            deadline = time.monotonic() + timeout
            while not (directory / _READY).exists():
                if cluster.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the cluster of {n} volumes did not start: {log_path.read_text()[-2000:]}"
                    )
                time.sleep(0.2)
            proc = subprocess.run(
                [sys.executable, "-m", "tests.bench.operator_curve", "operator", tmp, str(passes)],
                capture_output=True,
                text=True,
                cwd=_ROOT,
                timeout=timeout,
                check=False,
            )
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise PointFailed(
                    f"the operator at {n} volumes failed ({proc.returncode}): {_cause(proc.stderr)}",
                    proc.stderr[-4000:],
                )
            got: dict[str, Any] = json.loads(lines[-1])
        finally:
            stop(cluster, timeout=30)
    cpu = got["reconcile_cpu_seconds"]
    full = got["full_pass_cpu_seconds"]
    return {
        "volumes": n,
        "decisions": got["decisions"],
        "populate_seconds": round(got["populate_seconds"], 1),
        "settle_seconds": round(got["settle_seconds"], 1),
        "rss_before_mib": round(got["rss_before_bytes"] / 2**20, 1),
        "rss_mib": round(got["rss_bytes"] / 2**20, 1),
        "reconcile_cpu_mean_ms": round(statistics.fmean(cpu) * 1000, 1),
        "reconcile_cpu_min_ms": round(min(cpu) * 1000, 1),
        "full_pass_cpu_mean_ms": round(statistics.fmean(full) * 1000, 1),
        "first_pass_seconds": round(got["first_pass_seconds"], 1),
    }


class PointFailed(RuntimeError):
    """A volume count that gave no figures; ``log`` is the end of the operator's stderr."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def _cause(stderr: str) -> str:
    """The line of a traceback that says what went wrong (the innermost ``Error: message``)."""
    lines = [line.strip(" |") for line in stderr.splitlines()]
    for line in reversed(lines):
        if line.startswith("tests.bench.operator_scale.NotSteady:"):
            return line.split(": ", 1)[1]
    return next((line for line in reversed(lines) if line and not line.startswith(("+", "-"))), "no output")


def _slope_per_1000(points: list[dict[str, Any]], field: str) -> float:
    """Least-squares slope of ``field`` against volumes, per 1,000 volumes."""
    xs = [p["volumes"] / 1000 for p in points]
    ys = [p[field] for p in points]
    if len(xs) < 2:
        return 0.0
    return statistics.linear_regression(xs, ys).slope


def run(
    counts: tuple[int, ...] = (1_000, 5_000, 10_000), passes: int = 3, timeout: float = 3600
) -> dict[str, Any]:
    """Every count in turn; a count that fails is reported with its error and left out of the slopes."""
    points: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for n in counts:
        try:
            points.append(_point(n, passes, timeout))
        except PointFailed as exc:
            failed.append({"volumes": n, "error": str(exc), "log": exc.log})
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed.append({"volumes": n, "error": str(exc)})
    return {
        "points": points,
        "failed": failed,
        "passes": passes,
        "rss_mib_per_1000": round(_slope_per_1000(points, "rss_mib"), 2),
        "reconcile_cpu_ms_per_1000": round(_slope_per_1000(points, "reconcile_cpu_mean_ms"), 1),
        "full_pass_cpu_ms_per_1000": round(_slope_per_1000(points, "full_pass_cpu_mean_ms"), 1),
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        f"Scaling curve: the operator in its own process, steady cluster, {r['passes']} reconcile passes per point",
        f"  {'volumes':>8} {'RSS':>9} {'RSS at start':>13} {'steady pass CPU':>16} {'full pass CPU':>14}"
        f" {'populate':>9} {'1st pass':>9} {'settle':>8}",
    ]
    for p in r["points"]:
        lines.append(
            f"  {p['volumes']:>8,} {p['rss_mib']:>7.1f}Mi {p['rss_before_mib']:>11.1f}Mi"
            f" {p['reconcile_cpu_mean_ms']:>13.1f} ms {p['full_pass_cpu_mean_ms']:>11.1f} ms"
            f" {p['populate_seconds']:>8.1f}s {p['first_pass_seconds']:>8.1f}s {p['settle_seconds']:>7.1f}s"
        )
    for f in r.get("failed", ()):
        lines.append(f"  {f['volumes']:>8,} FAILED: {f['error'].splitlines()[0][:300]}")
    if len(r["points"]) < 2:
        lines.append("  (no slope: it needs two or more volume counts)")
    else:
        lines.append(
            f"  slope per 1,000 volumes: RSS {r['rss_mib_per_1000']:.2f} MiB,"
            f" steady pass CPU {r['reconcile_cpu_ms_per_1000']:.1f} ms, full pass CPU"
            f" {r['full_pass_cpu_ms_per_1000']:.1f} ms (least squares over the points)"
        )
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    if argv[:1] == ["cluster"] and len(argv) == 3:
        trio.run(_serve_cluster, int(argv[1]), Path(argv[2]))
    elif argv[:1] == ["operator"] and len(argv) == 3:
        # Stage times and the operator's warnings (watch restarts, ...) go to stderr, kept if the point fails.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("bench.operator").setLevel(logging.INFO)
        print(json.dumps(trio.run(_measure_operator, Path(argv[1]), int(argv[2]))), flush=True)
    elif argv[:1] == ["first-start"] and len(argv) == 2:
        print(json.dumps(trio.run(_first_start, Path(argv[1]))), flush=True)
    elif argv[:1] == ["curve"]:
        print(report(run(tuple(int(n) for n in argv[1:]) or (1_000, 5_000, 10_000))))
    else:
        raise SystemExit(
            "usage: python -m tests.bench.operator_curve cluster N DIR | operator DIR PASSES | first-start DIR"
            " | curve [N ...]"
        )


if __name__ == "__main__":
    _main(sys.argv[1:])
