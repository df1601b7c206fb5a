"""``couchestor demo``: the operator's main job on the embedded emulated cluster, in one command.

The story (:mod:`.scenario`) runs on an emulated cluster started in-process (:mod:`.cluster`), with the very
operator ``couchestor run`` starts; :mod:`.story` drives it, :mod:`.progress` folds what the operator publishes
into what is shown, :mod:`.view` prints it line by line and :mod:`.live` draws it with ``rich``.
Heat scores come from a real Prometheus when one is on PATH, else from the workload simulator's own query
endpoint (:mod:`.heat_source`); the demo says which.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from couchestor.demo.scenario import DEFAULT_VOLUMES, MAX_VOLUMES, VOLUMES, population
from couchestor.errors import UserError


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the operator on the embedded emulated cluster and show what it does",
        description=(
            "Start an emulated Kubernetes cluster with simulated Mayastor pools and volumes and a simulated "
            "workload, run the operator on it, apply a StoragePolicy, and show the volumes being tiered. "
            "Ends by itself once the story is told (about a minute)."
        ),
    )
    parser.add_argument(
        "--volumes",
        default=str(DEFAULT_VOLUMES),
        metavar="N",
        help=(
            f"volumes in the cluster: the story's {len(VOLUMES)} named ones and N-{len(VOLUMES)} background "
            f"volumes ({len(VOLUMES)} to {MAX_VOLUMES}; default {DEFAULT_VOLUMES})"
        ),
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep the cluster running this many seconds in all (to explore it with kubectl)",
    )
    parser.add_argument(
        "--backend",
        default="mayastor-crd",
        metavar="BACKEND",
        help=(
            "the simulated storage: mayastor-crd (the MayastorVolume resource) or mayastor-rest (Mayastor 2.x's "
            "control-plane REST API; the workload then exports 2.x's io-engine counters); default mayastor-crd"
        ),
    )
    parser.add_argument(
        "--prometheus",
        default="auto",
        metavar="auto|simulator|PATH",
        help=(
            "where heat scores come from: auto (a real prometheus if one is on PATH, else the workload "
            "simulator's query endpoint), simulator (always the query endpoint), or the prometheus binary to "
            "run; a Prometheus that fails to start is reported and the query endpoint used instead"
        ),
    )
    parser.add_argument("--headless", action="store_true", help="plain log lines instead of the live view")
    parser.add_argument(
        "--kubeconfig-out",
        default=None,
        metavar="PATH",
        help="write the emulated cluster's kubeconfig here (default: a temporary file, removed at the end)",
    )
    parser.set_defaults(func=run)


class _View(Protocol):
    """What :func:`run` needs of a view, besides :class:`couchestor.demo.story.View`."""

    narrate_steps: bool

    def __enter__(self) -> Any: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def say(self, line: str) -> None: ...

    def show(self, snapshot: Any) -> None: ...

    def finish(self, result: Any) -> None: ...


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the story completed with no invariant violation, 130 if interrupted, else 1."""
    import trio

    from couchestor.demo.cluster import BACKENDS
    from couchestor.demo.heat_source import choose
    from couchestor.demo.story import DemoOptions, run_demo

    if args.duration is not None and not args.duration > 0:
        raise UserError(f"--duration must be a positive number of seconds, not {args.duration:g}")
    volumes = population(_volume_count(args.volumes))
    if args.backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, not {args.backend!r}")
    heat = choose(args.prometheus)
    with tempfile.TemporaryDirectory(prefix="couchestor-demo-") as tmp:
        kubeconfig = Path(args.kubeconfig_out) if args.kubeconfig_out else Path(tmp) / "kubeconfig"
        if not kubeconfig.parent.is_dir():
            raise UserError(f"--kubeconfig-out: directory {kubeconfig.parent} does not exist")
        view = make_view(headless=args.headless)
        options = DemoOptions(
            kubeconfig=kubeconfig,
            kubeconfig_kept=bool(args.kubeconfig_out),
            duration=args.duration,
            volumes=volumes,
            backend=args.backend,
            heat=heat,
            narrate_steps=view.narrate_steps,
        )
        with view:
            result = trio.run(run_demo, options, view)
    view.finish(result)
    if result.ok:
        return 0
    return 130 if result.interrupted else 1


def _volume_count(text: str) -> int:
    """``--volumes``: a whole number within the range the story supports; :class:`UserError` otherwise."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if not len(VOLUMES) <= count <= MAX_VOLUMES:
        raise UserError(
            f"--volumes must be a whole number from {len(VOLUMES)} to {MAX_VOLUMES}, not {text!r}"
        )
    return count


def make_view(*, headless: bool) -> _View:
    """The live view when asked for, on a terminal, with ``rich`` installed; else the headless one."""
    from couchestor.demo.view import HeadlessView

    if headless:
        return HeadlessView()
    if not sys.stdout.isatty():
        print("couchestor demo: stdout is not a terminal; printing plain lines (as --headless)", flush=True)
        return HeadlessView()
    try:
        from couchestor.demo.live import LiveView
    except ImportError:
        print(
            "couchestor demo: the live view needs rich (pip install -e '.[dev]'); printing plain lines",
            flush=True,
        )
        return HeadlessView()
    return LiveView()


__all__ = ["add_parser", "make_view", "run"]
