"""``couchestor demo``: the operator's main job on the embedded emulated cluster."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the operator on the embedded emulated cluster and show what it does"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--headless", action="store_true", help="plain log lines instead of the live view")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("couchestor demo: the emulated cluster and the operator are not built yet; nothing to show.")
    return 0
