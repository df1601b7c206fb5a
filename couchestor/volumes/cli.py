"""``couchestor volumes``: apply the volume test suite and grade fio results."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("volumes", help="volume templates and test suite")
    parser.set_defaults(func=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:
    print("couchestor volumes: not built yet (templates and the fio grader are in progress).")
    return 1
