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
    _add_up(sim_sub)


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


def _add_up(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="run a whole emulated cluster: API server, Mayastor, workload",
        description=(
            "Serve the API server emulator with CRDs, StorageClass, DiskPools, PVs, PVCs and MayastorVolumes, "
            "the Mayastor control-plane simulator and the workload simulator (Prometheus /metrics and a "
            "PromQL-compatible /api/v1/query), until Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument("--volumes", type=int, default=200, help="number of volumes (default: %(default)s)")
    p.add_argument("--hot-pools", type=int, default=3, help="NVMe pools (default: %(default)s)")
    p.add_argument("--warm-pools", type=int, default=0, help="warm pools (default: %(default)s)")
    p.add_argument("--cold-pools", type=int, default=3, help="SATA pools (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=1, help="random seed of volumes and loads (default: %(default)s)"
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=60.0,
        help="simulated seconds per second, for rebuilds and loads (default: %(default)s)",
    )
    p.add_argument("--kubeconfig-out", type=Path, metavar="PATH", help="write a kubeconfig for the cluster")
    p.set_defaults(func=run_up)


def run_up(args: argparse.Namespace) -> int:
    if args.volumes < 0:
        raise UserError(f"--volumes must be 0 or more, not {args.volumes}")
    if min(args.hot_pools, args.warm_pools, args.cold_pools) < 0 or args.hot_pools + args.cold_pools == 0:
        raise UserError("pool counts must be 0 or more, with at least one hot or cold pool")
    if not args.time_scale > 0:
        raise UserError("--time-scale must be positive")
    trio.run(_up_until_signal, args)
    return 0


async def _up_until_signal(args: argparse.Namespace) -> None:
    import tempfile

    from couchestor.kube import KubeClient, load_kubeconfig
    from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
    from couchestor.sim.mayastor.controller import MayastorSimulator
    from couchestor.sim.populate import GI, default_spec, populate
    from couchestor.sim.workload import ExportOptions, Workload, generate_volumes, serve_workload

    spec = default_spec(
        args.volumes,
        seed=args.seed,
        hot_pools=args.hot_pools,
        warm_pools=args.warm_pools,
        cold_pools=args.cold_pools,
        # Room on each tier for all of its volumes, however many.
        pool_capacity=max(10_000, args.volumes * 20) * GI,
    )
    with (
        tempfile.TemporaryDirectory(prefix="couchestor-sim-") as tmp,
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        kubeconfig = args.kubeconfig_out or Path(tmp) / "kubeconfig"
        async with trio.open_nursery() as nursery:
            url: str = await nursery.start(serve, ApiServer())
            write_kubeconfig(kubeconfig, url)
            print(f"API server emulator listening on {url}", flush=True)
            async with KubeClient(load_kubeconfig([kubeconfig]), qps=0) as client:
                # The simulator starts first so that placing volumes overlaps creating them.
                simulator = MayastorSimulator(
                    client, namespace=spec.mayastor_namespace, time_scale=args.time_scale
                )
                nursery.start_soon(simulator.run)
                started = trio.current_time()

                def progress(done: int, total: int) -> None:
                    if done == total or done % max(total // 10, 1) == 0:
                        print(f"created {done}/{total} volumes", flush=True)

                nursery.start_soon(lambda: _stop_on_signal(signals, nursery.cancel_scope))
                await populate(client, spec, progress=progress)
                workload = Workload(seed=args.seed, scale=args.time_scale)
                for volume, (_, pattern) in zip(
                    spec.volumes, generate_volumes(args.volumes, seed=args.seed), strict=True
                ):
                    workload.add_volume(volume.pv, pattern)
                workload_url: str = await nursery.start(
                    lambda task_status: serve_workload(
                        workload, options=ExportOptions(), task_status=task_status
                    )
                )
                print(f"cluster of {args.volumes} volumes on {len(spec.pools)} pools created in "
                      f"{trio.current_time() - started:.1f}s", flush=True)  # fmt: skip
                print(f"workload metrics on {workload_url}/metrics (PromQL: {workload_url}/api/v1/query)")
                where = f"--kubeconfig {kubeconfig}"
                print(f"kubectl {where} get diskpools,mayastorvolumes -n {spec.mayastor_namespace}")
                print(
                    f"couchestor run {where} --prometheus-url {workload_url} --mayastor-namespace "
                    f"{spec.mayastor_namespace} --no-leader-election --metrics-addr 127.0.0.1:0",
                    flush=True,
                )
                if args.kubeconfig_out is None:
                    print("(the kubeconfig is removed on exit; --kubeconfig-out PATH keeps it)", flush=True)
                await trio.sleep_forever()


async def _stop_on_signal(signals: Any, scope: trio.CancelScope) -> None:
    async for _ in signals:
        print("shutting down", file=sys.stderr, flush=True)
        scope.cancel()
        return
