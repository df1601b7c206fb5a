"""``couchestor sim``: run parts of the emulated cluster.

Subcommands register under the ``sim`` parser; each sets ``func(args) -> int``. Today: ``sim apiserver``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from couchestor.errors import UserError


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("sim", help="run the emulated cluster")
    sim_sub = parser.add_subparsers(dest="sim_command", metavar="PART", required=True)
    _add_apiserver(sim_sub)


def _add_apiserver(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "apiserver",
        help="serve the Kubernetes API server emulator",
        description="Serve the in-memory Kubernetes API server emulator until Ctrl-C or SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    p.add_argument("--kubeconfig-out", type=Path, metavar="PATH", help="write a kubeconfig for this server")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed certificate")
    p.add_argument(
        "--history",
        type=int,
        default=20_000,
        metavar="N",
        help="changes retained for watch resume and continue tokens (default: %(default)s)",
    )
    p.add_argument(
        "--bookmark-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between watch BOOKMARK events (default: %(default)s)",
    )
    p.set_defaults(func=run_apiserver)


def run_apiserver(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, not {args.port}")
    if args.history < 1:
        raise UserError(f"--history must be at least 1, not {args.history}")
    if args.bookmark_interval <= 0:
        raise UserError("--bookmark-interval must be positive")
    try:
        trio.run(_serve_until_signal, args)
    except OSError as exc:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return 0


async def _serve_until_signal(args: argparse.Namespace) -> None:
    from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig

    api = ApiServer(history_limit=args.history, bookmark_interval=args.bookmark_interval)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            url: str = await nursery.start(
                lambda task_status: serve(
                    api, host=args.host, port=args.port, tls=args.tls, task_status=task_status
                )
            )
            print(f"API server emulator listening on {url}", flush=True)
            if args.kubeconfig_out is not None:
                write_kubeconfig(args.kubeconfig_out, url, ca_data=api.ca_pem)
                print(f"kubeconfig written to {args.kubeconfig_out}", flush=True)
            async for _ in signals:
                print("shutting down", file=sys.stderr, flush=True)
                nursery.cancel_scope.cancel()
                break
