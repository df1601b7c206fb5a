"""``python -m tests.bench [--smoke] [--large] [--only NAME ...]``: run the benchmarks, print one table per
benchmark, and write the figures with versions and machine to ``bench/results.json``.

Every benchmark compares, in the same run on the same machine, what CoucheStor does against what a user would
use instead, and prints the ratio. Nothing here is asserted against a target: the figures are reported as
measured (``tests/bench/test_smoke.py`` runs the smoke sizes so the code does not rot).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.bench import (
    decide,
    decode,
    heat,
    incremental,
    migration_throughput,
    operator_curve,
    operator_scale,
    sync,
    watch,
)

# name -> (run at smoke size, run at full size, run with --large, report)
Bench = tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any], Callable[[Any], str]]
BENCHES: dict[str, Bench] = {
    "decode": (
        lambda: decode.run(200, 1),
        lambda: decode.run(10_000, 5),
        lambda: decode.run(10_000, 5),
        decode.report,
    ),
    "sync": (
        lambda: sync.run(200, 1, 50),
        lambda: sync.run(10_000, 3, 1_000),
        lambda: sync.run(50_000, 3, 1_000),
        sync.report,
    ),
    "watch": (
        lambda: watch.run(100, 500, 1),
        lambda: watch.run(5_000, 50_000, 5),
        lambda: watch.run(5_000, 50_000, 5),
        watch.report,
    ),
    "heat": (lambda: heat.run(50, 2), lambda: heat.run(10_000), lambda: heat.run(10_000), heat.report),
    "decide": (
        lambda: decide.run((100, 300), 1),
        lambda: decide.run((1_000, 10_000, 50_000), 5),
        lambda: decide.run((1_000, 10_000, 100_000), 5),
        decide.report,
    ),
    "incremental": (
        lambda: incremental.run((100, 300), 1),
        lambda: incremental.run((1_000, 10_000, 50_000), 3),
        lambda: incremental.run((1_000, 10_000, 100_000), 3),
        incremental.report,
    ),
    "operator": (
        lambda: operator_scale.run(200, 2),
        lambda: operator_scale.run(10_000, 5),
        lambda: operator_scale.run(10_000, 5),
        operator_scale.report,
    ),
    "scaling": (
        lambda: operator_curve.run((50, 150), 1, timeout=120),
        lambda: operator_curve.run((1_000, 5_000, 10_000), 3),
        lambda: operator_curve.run((1_000, 5_000, 10_000, 50_000, 100_000), 3),
        operator_curve.report,
    ),
    "migrations": (
        lambda: migration_throughput.run((1, 2), 2),
        lambda: migration_throughput.run((1, 2, 4, 8), 8),
        lambda: migration_throughput.run((1, 2, 4, 8), 8),
        migration_throughput.report,
    ),
}


def _figure(figures: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((f for f in figures if f["name"].startswith(name)), None)


def summary(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what is compared, measured, the issue's target) for every ratio the issue sets a target for."""
    rows: list[tuple[str, str, str]] = []
    if "decode" in results:
        figures = results["decode"]["figures"]
        loads = _figure(figures, "json.loads")
        k8s = _figure(figures, "kubernetes")
        if k8s:
            rows.append(
                ("decode: kubernetes client time / msgspec", f"{k8s['time_ratio_vs_typed']:.1f}x", ">= 30x")
            )
            rows.append(
                ("decode: kubernetes client peak / msgspec", f"{k8s['peak_ratio_vs_typed']:.1f}x", ">= 4x")
            )
        if loads:
            rows.append(
                ("decode: json.loads time / msgspec", f"{loads['time_ratio_vs_typed']:.1f}x", ">= 8x")
            )
    if "sync" in results:
        figures = results["sync"]["figures"]
        ours = _figure(figures, "couchestor")
        k8s = _figure(figures, "kubernetes")
        if ours:
            rows.append(
                ("initial sync: Reflector time / raw download", f"{ours['time_vs_floor']:.2f}x", "<= 2x")
            )
        if k8s:
            rows.append(
                (
                    "initial sync: kubernetes client / Reflector memory",
                    f"{k8s['retained_vs_couchestor']:.2f}x",
                    ">= 3x",
                )
            )
        for f in results["sync"]["resident"]["figures"][1:]:
            rows.append(
                (
                    f"initial sync RSS/object: {f['name'].split()[0]} / Reflector",
                    f"{f['per_object_vs_couchestor']:.2f}x",
                    ">= 3x",
                )
            )
        scaling = results["sync"]["resident"].get("scaling")
        if scaling:
            rows.append(
                ("scaling: PV Reflector process RSS per 1,000 PVs", f"{scaling['mib_per_1000']:.2f} MiB", "-")
            )
    if "watch" in results:
        fraction = results["watch"]["reflector_fraction_of_bare"]
        rows.append(("watch: reflector path / bare decode rate", f"{fraction:.0%}", ">= 65%"))
        one_pass = results["watch"]["reflector_fraction_of_one_pass"]
        rows.append(("watch: reflector path / one-pass decode rate", f"{one_pass:.0%}", "-"))
    if "heat" in results:
        heat_result = results["heat"]
        rows.append(
            ("heat: per-volume queries / one batched query, wall", f"{heat_result['speedup']:.1f}x", ">= 50x")
        )
        rows.append(
            (
                "heat: per-volume / operator's refresh (+coverage)",
                f"{heat_result['refresh_speedup']:.1f}x",
                "-",
            )
        )
    if "decide" in results:
        decide_rows = results["decide"]["rows"]
        for r in decide_rows:
            rows.append(
                (
                    f"decide(): CPU at {r['volumes']:,} volumes, 3 policies",
                    f"{r['cpu_seconds'] * 1000:.0f} ms",
                    "-",
                )
            )
        first, last = decide_rows[0], decide_rows[-1]
        rows.append(
            (
                f"decide(): CPU growth {first['volumes']:,} -> {last['volumes']:,} volumes vs linear",
                f"{results['decide']['growth']:.2f}x",
                "<= 1.15x",
            )
        )
    if "incremental" in results:
        rows_ = results["incremental"]["rows"]
        first, last = rows_[0], rows_[-1]
        n = f"{last['volumes']:,}"
        rows += [
            (
                f"first (full) decision pass, CPU growth {first['volumes']:,} -> {n} volumes vs linear",
                f"{results['incremental']['growth']:.2f}x",
                "-",
            ),
            (
                f"one volume's heat changed, decided: CPU at {n} volumes",
                f"{last['one_heat_cpu_ms']:.1f} ms",
                "<= 50 ms",
            ),
            (
                f"one volume's PVC labels changed, decided: CPU at {n} volumes",
                f"{last['one_label_cpu_ms']:.1f} ms",
                "<= 50 ms",
            ),
            (
                f"every score changed, decided: CPU at {n} volumes",
                f"{last['every_score_cpu_seconds']:.2f} s",
                "<= 2 s",
            ),
        ]
    if "operator" in results:
        r = results["operator"]
        rows.append(
            (
                f"operator, {r['volumes']:,} volumes: PromQL queries per refresh (seed design: {r['volumes']:,})",
                f"{r['queries_per_refresh']:g}",
                f"{r.get('expected_queries_per_refresh', '-')}: 1 per (window, metric), 1 per window's"
                " coverage, 1 per coldAfterIdle period",
            )
        )
        rows.append(
            (
                f"operator, {r['volumes']:,} volumes: reconcile CPU per pass",
                f"{r['reconcile_cpu_mean_ms']} ms",
                "-",
            )
        )
        rows.append(
            (
                "operator: API writes per steady-state pass",
                f"{r['steady_writes'] / r['steady_passes']:g}",
                "0",
            )
        )
    if "scaling" in results:
        r = results["scaling"]
        span = f"{r['points'][0]['volumes']:,} -> {r['points'][-1]['volumes']:,}"
        rows.append(
            (f"scaling: operator RSS per 1,000 volumes ({span})", f"{r['rss_mib_per_1000']:.2f} MiB", "-")
        )
        rows.append(
            (
                f"scaling: steady reconcile pass CPU per 1,000 volumes ({span})",
                f"{r['reconcile_cpu_ms_per_1000']:.1f} ms",
                "-",
            )
        )
        largest = r["points"][-1]
        rows.append(
            (
                f"scaling: operator RSS at {largest['volumes']:,} volumes",
                f"{largest['rss_mib']:.0f} MiB",
                "<= 768 MiB at 100,000",
            )
        )
        rows.append(
            (
                f"scaling: first decisions after start, {largest['volumes']:,} volumes",
                f"{largest['first_pass_seconds']:.1f} s",
                "<= 60 s at 100,000",
            )
        )
        rows.append(
            (
                f"scaling: populating the emulated cluster, {largest['volumes']:,} volumes",
                f"{largest['populate_seconds']:.1f} s",
                "<= 60 s at 50,000, <= 150 s at 100,000",
            )
        )
    if "migrations" in results:
        for r in results["migrations"]["rows"]:
            rows.append(
                (
                    f"migrations at concurrency {r['concurrency']}: volumes per simulated minute",
                    f"{r['volumes_per_sim_minute']}",
                    "-",
                )
            )
    return rows


def _summary_table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["Summary (measured in this run; targets from the benchmark issue)"]
    lines.append(f"  {'compared':58} {'measured':>10} {'target':>8}")
    lines += [f"  {what:58} {measured:>10} {target:>8}" for what, measured, target in rows]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("couchestor", "msgspec", "trio", "httpx", "kubernetes", "kopf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count() or 1,
        "load_average_at_start": [round(x, 2) for x in load],
    }


def _run_apart(name: str, mode: str) -> Any:
    """Run one benchmark in a process of its own (its table goes straight to our output) and return its
    figures: what one benchmark leaves in the heap (50,000 decoded objects, a client library's imports) must
    not weigh on the next one's figures."""
    flags = {"smoke": ["--smoke"], "large": ["--large"], "full": []}[mode]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        command = [
            sys.executable,
            "-m",
            "tests.bench",
            *flags,
            "--in-process",
            "--only",
            name,
            "--out",
            str(out),
        ]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None
            for line in child.stdout:  # passed on as it comes: a long benchmark shows its progress
                print(line, end="", flush=True)
        if child.returncode != 0:
            raise SystemExit(f"benchmark {name} failed (exit status {child.returncode})")
        return json.loads(out.read_text())["results"][name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="just bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmarks still run")
    parser.add_argument(
        "--large", action="store_true", help="also 50,000 objects: the initial sync and the scaling curve"
    )
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these benchmarks")
    parser.add_argument("--out", default="bench/results.json", help="where to write the figures")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "large" if args.large else "full"
    names = args.only or list(BENCHES)
    machine = _machine()
    if not args.in_process:
        print(
            f"machine: {machine['platform']}, {machine['cpus']} CPUs, load average"
            f" {machine['load_average_at_start']} at start (figures on a shared machine vary; ratios within one"
            " run are the comparison)\n"
        )
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name in names:
        smoke, full, large, report = BENCHES[name]
        started = time.perf_counter()
        if args.in_process or len(names) == 1:
            results[name] = (smoke if args.smoke else large if args.large else full)()
            print(report(results[name]), end="\n\n", flush=True)
        else:
            results[name] = _run_apart(name, mode)
        seconds[name] = round(time.perf_counter() - started, 1)
    table = summary(results)
    if not args.in_process:
        print(_summary_table(table))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "summary": [{"compared": w, "measured": m, "target": t} for w, m, t in table],
        "machine": machine,
        "versions": _versions(),
        "mode": mode,
        "bench_seconds": seconds,
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.in_process:
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
