"""The ``couchestor`` command line.

Each subcommand lives in the module of its concern and registers itself through a function
``add_parser(subparsers)`` that sets ``func`` on its parser: ``func(args) -> int`` runs it. Errors a user can
fix are :class:`~couchestor.errors.UserError`; they are printed as one line, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from couchestor import __version__
from couchestor.errors import UserError


def build_parser(prog: str = "couchestor") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Storage tiering for OpenEBS Mayastor volumes: hot volumes to NVMe, cold ones to SATA.",
    )
    parser.add_argument("--version", action="version", version=f"couchestor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from couchestor import approvals, demo, explain, operator, preview, soak
    from couchestor.sim import cli as sim_cli
    from couchestor.volumes import cli as volumes_cli

    operator.add_parser(sub)
    demo.add_parser(sub)
    sim_cli.add_parser(sub)
    soak.add_parser(sub)
    volumes_cli.add_parser(sub)
    approvals.add_parser(sub)
    explain.add_parser(sub)
    preview.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "couchestor") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """The ``kubectl-couchestor`` executable: kubectl runs it for ``kubectl couchestor ...`` (a kubectl plugin
    is any executable named ``kubectl-<name>`` on PATH), with the same subcommands."""
    return main(argv, prog="kubectl couchestor")
