"""``couchestor sim``: run parts of the emulated cluster."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("sim", help="run the emulated cluster")
    parser.set_defaults(func=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:
    print("couchestor sim: not built yet.")
    return 1
