"""Workload simulator costs: ``/metrics`` rendering, history writing, promtool backfill, demo queries.

Run with ``python -m tests.sim.bench_workload [--volumes 1000,10000] [--hours 6] [--step 15]``. Prints
times and sizes; asserts nothing (benchmarks are not timed tests).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from couchestor.sim.promql import query_response
from couchestor.sim.workload import ExportOptions, Workload, WorkloadSamples, generate_volumes, render_metrics
from couchestor.sim.workload.exposition import metrics_registry, write_history

NOW = 1_800_000_000.0


def _workload(count: int) -> Workload:
    workload = Workload(seed=1, clock=lambda: NOW, origin=NOW)
    for name, pattern in generate_volumes(count, seed=1, start=NOW - 3600):
        workload.add_volume(name, pattern)
    return workload


def _timed(label: str, func, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<58} {best * 1000:9.1f} ms")
    return result


def bench_metrics(count: int) -> None:
    workload = _workload(count)
    for name, options in (
        ("iops gauge only", ExportOptions(split_gauges=False)),
        ("4 gauges", ExportOptions()),
    ):
        registry = metrics_registry(workload, options)
        body = _timed(f"/metrics {count} volumes, {name} (collector)", lambda r=registry: generate_latest(r))
        print(f"{'':<58} {len(body) / 1e6:9.2f} MB")
    counters = ExportOptions(counters=True)
    _timed(f"/metrics {count} volumes, 4 gauges + 4 counters", lambda: render_metrics(workload, counters))
    # The alternative: one Gauge child per volume, updated before each scrape.
    registry = CollectorRegistry(auto_describe=False)
    gauge = Gauge("openebs_volume_iops", "Volume IOPS.", ["volume_id"], registry=registry)

    def children() -> bytes:
        for info, rates, _ in workload.sample(workload.now()):
            gauge.labels(info.name).set(rates.read_iops + rates.write_iops)
        return generate_latest(registry)

    _timed(f"/metrics {count} volumes, iops gauge only (Gauge children)", children)


def bench_history(count: int, hours: float, step: float, backfill: bool) -> None:
    workload = _workload(count)
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in (
            ("iops gauge", ExportOptions(split_gauges=False)),
            ("iops gauge + read/write counters", ExportOptions(split_gauges=False, counters=True)),
        ):
            path = Path(tmp) / "history.om"
            start = time.perf_counter()
            with path.open("w") as out:
                samples = write_history(
                    workload, out, start=NOW - hours * 3600, end=NOW, step=step, options=options
                )
            took = time.perf_counter() - start
            print(
                f"history {count} volumes {hours:g} h @ {step:g} s, {name}: {samples:,} samples, "
                f"{path.stat().st_size / 1e6:.1f} MB, {took:.1f} s"
            )
            if backfill and shutil.which("promtool"):
                blocks = Path(tmp) / "data"
                start = time.perf_counter()
                subprocess.run(
                    ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(path), str(blocks)],
                    check=True,
                    capture_output=True,
                )
                size = sum(f.stat().st_size for f in blocks.rglob("*") if f.is_file())
                print(f"  promtool backfill: {time.perf_counter() - start:.1f} s, blocks {size / 1e6:.1f} MB")
                shutil.rmtree(blocks)
            path.unlink()


def bench_queries(count: int) -> None:
    workload = _workload(count)
    source = WorkloadSamples(workload, ExportOptions(counters=True), step=15.0)
    for query in (
        "sum by (volume_id) (avg_over_time(openebs_volume_iops[1h]))",
        "max by (volume_id) (count_over_time(openebs_volume_iops[1h]))",
        "sum by (pv_name) (rate(volume_num_read_ops[1h]))",
    ):
        _timed(
            f"query {count} volumes: {query[:40]}", lambda q=query: query_response(source, {"query": q}), 1
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", default="1000,10000")
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--step", type=float, default=15.0)
    parser.add_argument("--skip", default="", help="comma-separated: metrics,history,queries")
    args = parser.parse_args()
    counts = [int(c) for c in args.volumes.split(",")]
    skip = set(args.skip.split(","))
    for count in counts:
        if "metrics" not in skip:
            bench_metrics(count)
        if "history" not in skip:
            bench_history(count, args.hours, args.step, backfill=count <= 1000)
        if "queries" not in skip:
            bench_queries(count)


if __name__ == "__main__":
    main()
