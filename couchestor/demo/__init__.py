"""``couchestor demo``: the operator's main job on the embedded emulated cluster, in one command.

The story (:mod:`.scenario`) runs on an emulated cluster started in-process (:mod:`.cluster`), with the very
operator ``couchestor run`` starts; :mod:`.story` drives it, :mod:`.progress` folds what the operator publishes
into what is shown, :mod:`.view` prints it line by line and :mod:`.live` draws it with ``rich``.
No Prometheus is needed: the workload simulator answers the operator's PromQL queries.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from couchestor.errors import UserError


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the operator on the embedded emulated cluster and show what it does",
        description=(
            "Start an emulated Kubernetes cluster with simulated Mayastor pools and volumes and a simulated "
            "workload, run the operator on it, apply a StoragePolicy, and show the volumes being tiered. "
            "Ends by itself once the story is told (about half a minute)."
        ),
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep the cluster running this many seconds in all (to explore it with kubectl)",
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

    from couchestor.demo.story import DemoOptions, run_demo

    if args.duration is not None and not args.duration > 0:
        raise UserError(f"--duration must be a positive number of seconds, not {args.duration:g}")
    with tempfile.TemporaryDirectory(prefix="couchestor-demo-") as tmp:
        kubeconfig = Path(args.kubeconfig_out) if args.kubeconfig_out else Path(tmp) / "kubeconfig"
        if not kubeconfig.parent.is_dir():
            raise UserError(f"--kubeconfig-out: directory {kubeconfig.parent} does not exist")
        view = make_view(headless=args.headless)
        options = DemoOptions(
            kubeconfig=kubeconfig,
            kubeconfig_kept=bool(args.kubeconfig_out),
            duration=args.duration,
            narrate_steps=view.narrate_steps,
        )
        with view:
            result = trio.run(run_demo, options, view)
    view.finish(result)
    if result.ok:
        return 0
    return 130 if result.interrupted else 1


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
