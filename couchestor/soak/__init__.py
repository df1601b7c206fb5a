"""``couchestor soak``: the operator living a simulated month under the faults a real cluster has.

Two operator processes (leader election) run against a real control plane (etcd, kube-apiserver and
kube-controller-manager from ``KUBEBUILDER_ASSETS``), with simulated Mayastor (one backend per run), a simulated
workload with day/night and month-end loads scraped by a real Prometheus, and a seeded schedule of faults:
API server and etcd restarts, etcd compaction (resuming watches get 410 Gone), Prometheus gaps, the leader
SIGKILLed, replicas faulting while they rebuild, slow rebuilds. It ends with a quiet period and prints the report
(:mod:`.report`); the exit status is 0 when every check passed, 1 otherwise.

- :mod:`.schedule`: the seeded fault schedule and the loads (pure);
- :mod:`.observe`: reading the operators' metrics, logs and RSS (pure);
- :mod:`.run`: the run itself (trio);
- :mod:`.report`: the figures and the verdict.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

from couchestor.durations import parse_duration
from couchestor.errors import UserError

BACKENDS = ("mayastor-crd", "mayastor-rest")


def add_parser(sub: Any) -> None:
    # Only the light report module here: every `couchestor` command (the operator's `run` too) builds this parser.
    from couchestor.soak.report import RSS_SLOPE_BOUND, RSS_WARMUP

    parser: argparse.ArgumentParser = sub.add_parser(
        "soak",
        help="run the operator for a simulated month under real faults and report (needs KUBEBUILDER_ASSETS)",
        description=(
            "Run two operator processes against a real control plane (KUBEBUILDER_ASSETS), simulated Mayastor, "
            "a simulated day/night and month-end workload and a real Prometheus, inject a seeded schedule of "
            "faults, and report invariant violations, migrations, leftovers, RSS slope, recovery times, API "
            "writes and leadership overlap. Exit status 0 when every check passed, 1 otherwise."
        ),
    )
    parser.add_argument(
        "--backend", default="mayastor-crd", help=f"one of {', '.join(BACKENDS)} (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the fault schedule and loads (default: %(default)s)"
    )
    parser.add_argument("--duration", default="30m", help="wall time of the whole run (default: %(default)s)")
    parser.add_argument(
        "--warmup", default="90s", help="wall time before the first fault (default: %(default)s)"
    )
    parser.add_argument("--quiet", default="150s", help="fault-free time at the end (default: %(default)s)")
    parser.add_argument("--faults", type=int, default=21, help="faults to inject (default: %(default)s)")
    parser.add_argument(
        "--kinds",
        default="all",
        help=(
            "comma-separated fault kinds, or all (default): apiserver-restart, etcd-restart, compaction,"
            " prometheus-gap, operator-kill, replica-fault, slow-rebuild"
        ),
    )
    parser.add_argument(
        "--volumes", type=int, default=24, help="volumes in the cluster (default: %(default)s)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=720.0,
        help="simulated seconds per wall second; 720 plays 30 days per wall hour (default: %(default)s)",
    )
    parser.add_argument(
        "--rss-bound",
        type=float,
        default=RSS_SLOPE_BOUND,
        help="largest RSS slope after warm-up accepted, MiB per wall hour (default: %(default)s)",
    )
    parser.add_argument(
        "--rss-warmup",
        default=f"{RSS_WARMUP:g}s",
        help="time after each operator start its RSS is not judged on (default: %(default)s)",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="keep logs and data here (default: a temporary one)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON to this file")
    parser.set_defaults(func=main)


def options_from(args: argparse.Namespace, directory: Path) -> Any:
    """:class:`~.run.SoakOptions` from the command line; :class:`UserError` for anything unusable."""
    from couchestor.sim.controlplane import ENABLE_HINT, find_assets
    from couchestor.sim.prometheus import find_prometheus
    from couchestor.soak.run import SoakOptions
    from couchestor.soak.schedule import FaultKind

    assets = find_assets()
    if assets is None or assets.kube_controller_manager is None:
        raise UserError(f"soak needs a real control plane with kube-controller-manager: {ENABLE_HINT}")
    if find_prometheus() is None:
        raise UserError("soak needs the prometheus binary on PATH (Debian package prometheus)")
    backend = {"crd": "mayastor-crd", "rest": "mayastor-rest"}.get(args.backend, args.backend)
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, not {args.backend!r}")
    try:
        names = [k.strip() for k in args.kinds.split(",") if k.strip()]
        kinds = tuple(FaultKind) if names == ["all"] else tuple(FaultKind(k) for k in names)
    except ValueError as exc:
        raise UserError(f"--kinds: {exc}; known kinds: {', '.join(FaultKind)}") from None
    seconds = {}
    for name in ("duration", "warmup", "quiet", "rss_warmup"):
        try:
            seconds[name] = parse_duration(getattr(args, name))
        except ValueError as exc:
            raise UserError(f"--{name.replace('_', '-')}: {exc}") from None
    if seconds["warmup"] + seconds["quiet"] >= seconds["duration"]:
        raise UserError("--duration must be longer than --warmup and --quiet together")
    if not kinds or args.faults < len(kinds):
        raise UserError(f"--faults must be at least the number of fault kinds ({len(kinds)})")
    if args.volumes < 4:
        raise UserError(f"--volumes must be at least 4 (one of each load), not {args.volumes}")
    if not args.scale >= 1:
        raise UserError(f"--scale must be at least 1, not {args.scale:g}")
    return SoakOptions(
        directory=directory,
        assets=assets,
        seed=args.seed,
        backend=backend,
        duration=seconds["duration"],
        warmup=seconds["warmup"],
        quiet=seconds["quiet"],
        faults=args.faults,
        kinds=kinds,
        volumes=args.volumes,
        scale=args.scale,
        rss_bound=args.rss_bound,
        rss_warmup=seconds["rss_warmup"],
    )


def main(args: argparse.Namespace) -> int:
    from couchestor.logs import configure
    from couchestor.soak.report import problems, render, to_json
    from couchestor.soak.run import run_soak

    configure("text", "warning")
    logging.getLogger("couchestor.soak").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="couchestor-soak-") as tmp:
        directory = args.dir if args.dir is not None else Path(tmp)
        report = run_soak(options_from(args, directory))
    print(render(report), flush=True)
    if args.json is not None:
        args.json.write_text(to_json(report))
    return 1 if problems(report) else 0


__all__ = ["add_parser", "main"]
