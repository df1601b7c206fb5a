"""``couchestor sim``: run parts of the emulated cluster.

Subcommands register under the ``sim`` parser; each sets ``func(args) -> int``: ``sim apiserver`` (the API
server emulator), ``sim up`` (a whole emulated cluster) and ``sim mayastor`` (simulated Mayastor on any API
server, e.g. kind's).
"""

from __future__ import annotations

import argparse
import math
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
    _add_mayastor(sim_sub)
    _add_replication(sim_sub)


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
        default=60.0,
        metavar="SECONDS",
        help="seconds between watch BOOKMARK events once the resource has changed (default: %(default)s)",
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


def _add_cluster_shape(p: argparse.ArgumentParser, *, volumes: int, pools: int, time_scale: float) -> None:
    """The flags shaping a simulated Mayastor cluster (``sim up`` and ``sim mayastor``)."""
    p.add_argument("--volumes", type=int, default=volumes, help="number of volumes (default: %(default)s)")
    p.add_argument("--hot-pools", type=int, default=pools, help="NVMe pools (default: %(default)s)")
    p.add_argument("--warm-pools", type=int, default=0, help="warm pools (default: %(default)s)")
    p.add_argument("--cold-pools", type=int, default=pools, help="SATA pools (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=1, help="random seed of volumes and loads (default: %(default)s)"
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=time_scale,
        help="simulated seconds per second, for rebuilds and loads (default: %(default)s)",
    )
    p.add_argument(
        "--sample-interval",
        type=_interval,
        default=SAMPLE_INTERVAL,
        metavar="DURATION",
        help="spacing of the samples /api/v1/query answers from, as a Prometheus scraping this often would "
        "hold them; give the operator the same --scrape-interval (default: 5s)",
    )


#: The query endpoint's sample spacing: the scrape interval docs/kind.md configures, so an operator pointed at
#: the simulator instead of Prometheus, with the guide's --scrape-interval, sees full sample coverage.
SAMPLE_INTERVAL = 5.0


def _interval(text: str) -> float:
    from couchestor.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_cluster_shape(args: argparse.Namespace) -> None:
    if args.volumes < 0:
        raise UserError(f"--volumes must be 0 or more, not {args.volumes}")
    if min(args.hot_pools, args.warm_pools, args.cold_pools) < 0 or args.hot_pools + args.cold_pools == 0:
        raise UserError("pool counts must be 0 or more, with at least one hot or cold pool")
    if not args.time_scale > 0:
        raise UserError("--time-scale must be positive")


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
    _add_cluster_shape(p, volumes=200, pools=3, time_scale=60.0)
    p.add_argument("--kubeconfig-out", type=Path, metavar="PATH", help="write a kubeconfig for the cluster")
    p.set_defaults(
        func=run_up, backend="crd", namespace="mayastor", metrics_addr="127.0.0.1:0", rest_addr="127.0.0.1:0"
    )


def run_up(args: argparse.Namespace) -> int:
    _check_cluster_shape(args)
    return _report_invariant(trio.run(_up_until_signal, args))


async def _up_until_signal(args: argparse.Namespace) -> Any:
    import tempfile

    from couchestor.kube import KubeClient, load_kubeconfig
    from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig

    checker = None
    with (
        tempfile.TemporaryDirectory(prefix="couchestor-sim-") as tmp,
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        kubeconfig = args.kubeconfig_out or Path(tmp) / "kubeconfig"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
            api = ApiServer()
            url: str = await nursery.start(serve, api)
            write_kubeconfig(kubeconfig, url)
            print(f"API server emulator listening on {url}", flush=True)
            async with KubeClient(load_kubeconfig([kubeconfig]), qps=0) as client:
                checker = await _play_mayastor(nursery, args, client, f"--kubeconfig {kubeconfig}", api)
                if args.kubeconfig_out is None:
                    print("(the kubeconfig is removed on exit; --kubeconfig-out PATH keeps it)", flush=True)
                await trio.sleep(math.inf)  # until a signal cancels the nursery
    return checker


def _add_mayastor(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "mayastor",
        help="play Mayastor on any Kubernetes API server (kind, or the emulator)",
        description=(
            "Create simulated DiskPools and volumes (StorageClass, PVCs, PVs, and MayastorVolumes or, with "
            "--backend rest, Mayastor 2.x's control-plane REST API) in the cluster of the kubeconfig, play "
            "Mayastor's control plane on them (placement, rebuilds at a bandwidth, DiskPool status), and export "
            "each volume's simulated I/O on --metrics-addr as Mayastor's metrics exporter does, for a "
            "Prometheus to scrape (its /api/v1/query also answers the operator's PromQL directly). Runs until "
            "Ctrl-C or SIGTERM; what it created stays in the cluster."
        ),
    )
    _add_cluster_arguments(p)
    p.add_argument(
        "--backend",
        choices=("crd", "rest"),
        default="crd",
        help="'crd': MayastorVolume objects (the seeds' Mayastor); 'rest': Mayastor 2.x, volumes behind a "
        "REST API on --rest-addr, real-schema DiskPools (default: %(default)s)",
    )
    p.add_argument(
        "--namespace",
        default="mayastor",
        help="namespace of DiskPools and MayastorVolumes (default: %(default)s)",
    )
    _add_cluster_shape(p, volumes=50, pools=2, time_scale=30.0)
    p.add_argument(
        "--metrics-addr",
        default="127.0.0.1:9502",
        metavar="HOST:PORT",
        help="where to serve /metrics and /api/v1/query (default: %(default)s, the io-engine exporter's port)",
    )
    p.add_argument(
        "--rest-addr",
        default="127.0.0.1:8081",
        metavar="HOST:PORT",
        help="where to serve Mayastor 2.x's REST API with --backend rest (default: %(default)s)",
    )
    p.add_argument(
        "--mayastor-release",
        choices=("2.7", "2.8+"),
        default="2.8+",
        help="the Mayastor 2.x release played with --backend rest: '2.7' (and earlier) has no pool cordon, "
        "'2.8+' has it (default: %(default)s)",
    )
    p.add_argument(
        "--mixed-volumes",
        action="store_true",
        help="with --backend rest, also unpublished volumes (no target), Degraded volumes (a replica faulted) "
        "and volumes Mayastor itself is rebuilding (one replica short), one in ten of each",
    )
    p.set_defaults(func=run_mayastor)


def run_mayastor(args: argparse.Namespace) -> int:
    _check_cluster_shape(args)
    for flag, value in (("--metrics-addr", args.metrics_addr), ("--rest-addr", args.rest_addr)):
        _host_port(flag, value)
    from couchestor.kube import load_config

    config = load_config(args.kubeconfig, args.context)
    try:
        checker = trio.run(_mayastor_until_signal, args, config)
    except OSError as exc:
        raise UserError(f"cannot serve: {exc.strerror or exc}") from exc
    return _report_invariant(checker)


async def _mayastor_until_signal(args: argparse.Namespace, config: Any) -> Any:
    from couchestor.kube import KubeClient

    checker = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery, KubeClient(config, qps=0) as client:
            nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
            where = f"--kubeconfig {args.kubeconfig}" if args.kubeconfig else ""
            checker = await _play_mayastor(nursery, args, client, where)
            await trio.sleep(math.inf)  # until a signal cancels the nursery
    return checker


def _report_invariant(checker: Any) -> int:
    """Say on exit whether the no-data-loss invariant held (exit status 1 when it did not)."""
    if checker is None:
        return 0
    print(f"no-data-loss invariant: {len(checker.violations)} violations", flush=True)
    for violation in checker.violations[:20]:
        print(f"  violation: {violation}", flush=True)
    return 1 if checker.violations else 0


async def _play_mayastor(
    nursery: trio.Nursery, args: argparse.Namespace, client: Any, where: str, api: Any = None
) -> Any:
    """Create the cluster ``args`` describe through ``client`` (or, given the emulator ``api`` of this
    process, directly in it), start the Mayastor simulator (``args.backend``) and the workload in ``nursery``
    (they run until it is cancelled), and say how to look at it; ``where`` is the kubeconfig flag to print in
    the example commands. Returns the simulator's invariant checker."""
    from couchestor.kube.errors import KubeError
    from couchestor.sim.bulk import populate_local
    from couchestor.sim.mayastor.controller import MayastorSimulator
    from couchestor.sim.mayastor_rest.cluster import start_rest_cluster
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
        mayastor_namespace=args.namespace,
    )
    started = trio.current_time()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(total // 10, 1) == 0:
            print(f"created {done}/{total} volumes", flush=True)

    rest_url = ""
    try:
        if args.backend == "rest":
            simulator = await start_rest_cluster(
                nursery,
                client,
                spec,
                time_scale=args.time_scale,
                address=args.rest_addr,
                progress=progress,
                release=args.mayastor_release,
                mixed=args.mixed_volumes,
            )
            rest_url = simulator.url
            checker = simulator.checker
        else:
            # The simulator starts first so that placing volumes overlaps creating them.
            crd_simulator = MayastorSimulator(
                client, namespace=spec.mayastor_namespace, time_scale=args.time_scale
            )
            nursery.start_soon(crd_simulator.run)
            checker = crd_simulator.checker
            if api is not None:
                await populate_local(api, spec, progress=progress)
            else:
                await populate(client, spec, progress=progress)
    except (KubeError, TimeoutError, RuntimeError) as exc:
        raise UserError(f"cannot create the simulated cluster: {exc}") from None
    workload = Workload(seed=args.seed, scale=args.time_scale)
    for volume, (_, pattern) in zip(
        spec.volumes, generate_volumes(args.volumes, seed=args.seed), strict=True
    ):
        workload.add_volume(volume.pv, pattern)
    rest = args.backend == "rest"
    host, port = _host_port("--metrics-addr", args.metrics_addr)
    workload_url: str = await nursery.start(
        lambda task_status: serve_workload(
            workload,
            # Mayastor 2.x's io-engine exports counters; the seeds' cluster an IOPS gauge.
            options=ExportOptions(gauges=not rest, counters=rest),
            host=host,
            port=port,
            step=args.sample_interval,
            task_status=task_status,
        )
    )
    print(f"cluster of {args.volumes} volumes on {len(spec.pools)} pools created in "
          f"{trio.current_time() - started:.1f}s", flush=True)  # fmt: skip
    if rest:
        print(f"Mayastor 2.x REST API on {rest_url}/v0", flush=True)
    print(f"workload metrics on {workload_url}/metrics (PromQL: {workload_url}/api/v1/query)")
    kinds = "diskpools" if rest else "diskpools,mayastorvolumes"
    print(f"kubectl {where} get {kinds} -n {spec.mayastor_namespace}".replace("  ", " "))
    backend = f" --backend mayastor-rest --mayastor-rest-url {rest_url}" if rest else ""
    print(
        f"couchestor run {where} --prometheus-url {workload_url} --mayastor-namespace "
        f"{spec.mayastor_namespace}{backend} --no-leader-election --scrape-interval {args.sample_interval:g}s "
        "--metrics-addr 127.0.0.1:0".replace("  ", " "),
        flush=True,
    )
    return checker


def _add_replication(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replication",
        help="play the replication backends (Ceph, Trident, Dell) on any Kubernetes API server",
        description=(
            "Install the backend resources (csi-addons VolumeReplication, TridentMirrorRelationship, "
            "DellCSIReplicationGroup) as simulation CRDs in the cluster of the kubeconfig when missing, and play "
            "each vendor's controller on them: promotions, demotions and resyncs complete after "
            "--transition-seconds, as the vendors report them. Runs until Ctrl-C or SIGTERM; the CRDs stay."
        ),
    )
    _add_cluster_arguments(p)
    p.add_argument(
        "--transition-seconds",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long a promotion, demotion, resync or first mirror takes (default: %(default)s)",
    )
    p.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="NAME",
        help="make NAME fail its transitions (a claim for Ceph and Trident, '<namespace>.<name>' of a group "
        "for Dell); repeatable",
    )
    p.set_defaults(func=run_replication)


def run_replication(args: argparse.Namespace) -> int:
    if not args.transition_seconds >= 0:
        raise UserError(f"--transition-seconds must be 0 or more, not {args.transition_seconds}")
    from couchestor.kube import load_config
    from couchestor.kube.errors import KubeError
    from couchestor.sim.replication.run import play

    config = load_config(args.kubeconfig, args.context)
    try:
        trio.run(lambda: play(config, transition_seconds=args.transition_seconds, failing=args.fail))
    except KubeError as exc:
        raise UserError(f"cannot simulate the replication backends: {exc}") from None
    return 0


def _host_port(flag: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"{flag}: expected HOST:PORT, not {value!r}")
    return host, int(port)


async def _stop_on_signal(signals: Any, scope: trio.CancelScope) -> None:
    async for _ in signals:
        print("shutting down", file=sys.stderr, flush=True)
        scope.cancel()
        return


def _add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """``--kubeconfig`` and ``--context``: the cluster a simulator plays on."""
    p.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig of the cluster (default: $KUBECONFIG, else ~/.kube/config)",
    )
    p.add_argument("--context", help="kubeconfig context to use (default: its current-context)")
