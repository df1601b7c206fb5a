"""Run a real Prometheus server (the ``prometheus`` binary) scraping given targets, as a child process.

:func:`open_prometheus` starts it on a free loopback port with its own configuration, log file and TSDB
directory (a temporary one unless ``home`` is given), optionally backfilled first from an OpenMetrics history
file with ``promtool tsdb create-blocks-from openmetrics`` (:func:`backfill`), waits until ``/-/ready`` answers
and, when asked, until every target has been scraped once, and stops it on exit: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`.
The stop is shielded from cancellation (bounded), so a cancelled caller never leaves a Prometheus behind.
Problems starting it are :class:`PrometheusStartError` with the end of its log.

``couchestor demo`` uses it when ``prometheus`` is on PATH; the tests' ``prometheus_factory`` fixture too.
No cancel scope or nursery spans the ``yield``, so the context may be exited from another task (fixtures).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec
import trio

#: How long Prometheus may take to open its TSDB and answer ``/-/ready``, and then to scrape every target.
READY_TIMEOUT = 30.0
#: How long SIGTERM is given before SIGKILL.
STOP_TIMEOUT = 10.0
#: Each HTTP probe's timeout.
PROBE_TIMEOUT = 2.0
_PORT_ATTEMPTS = 3


class PrometheusStartError(Exception):
    """Prometheus could not be started, or did not become ready (the message ends with its log's tail)."""


@dataclass
class RunningPrometheus:
    """A Prometheus started by :func:`open_prometheus`: base URL, version, files and the process."""

    url: str
    version: str
    home: Path
    data_dir: Path
    log_path: Path
    process: trio.Process = field(repr=False)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)


def find_prometheus(name: str = "prometheus") -> str | None:
    """The path of the ``prometheus`` binary (``name`` may be a path), or None when there is none."""
    return shutil.which(name)


def find_promtool(prometheus: str) -> str | None:
    """``promtool`` beside the ``prometheus`` binary (they ship together), else on PATH, else None."""
    beside = Path(prometheus).with_name("promtool")
    return shutil.which(str(beside)) or shutil.which("promtool")


async def backfill(history: Path, data_dir: Path, *, promtool: str = "promtool") -> None:
    """Write TSDB blocks for the OpenMetrics ``history`` file into ``data_dir`` (before Prometheus opens it).

    Raises :class:`PrometheusStartError` when promtool is missing or refuses the file (with its output).
    """
    path = shutil.which(promtool)
    if path is None:
        raise PrometheusStartError(f"{promtool} is not on PATH")
    result = await trio.run_process(
        [path, "tsdb", "create-blocks-from", "openmetrics", str(history), str(data_dir)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise PrometheusStartError(f"promtool could not backfill {history.name}:\n{output}")


def prometheus_config(targets: Sequence[str], scrape_interval: float, *, bare_series: bool = False) -> str:
    """A configuration scraping each target URL (e.g. ``http://127.0.0.1:8000/metrics``) every
    ``scrape_interval`` seconds: job ``workload``, and one more job per further scheme or metrics path.

    ``bare_series`` drops the ``job`` and ``instance`` labels Prometheus adds, so scraped series continue
    backfilled ones written without them (one series per volume, not two overlapping ones).
    """
    interval = f"{scrape_interval:g}s"
    jobs: dict[tuple[str, str], list[str]] = {}
    for url in targets:
        scheme, address, path = _target(url)
        jobs.setdefault((scheme, path), []).append(address)
    lines = [
        "global:",
        f"  scrape_interval: {interval}",
        f"  evaluation_interval: {interval}",
        f"  scrape_timeout: {interval}",
        "scrape_configs:",
    ]
    for n, ((scheme, path), addresses) in enumerate(jobs.items()):
        lines += [
            f"  - job_name: workload{'' if n == 0 else f'-{n}'}",
            f"    scheme: {scheme}",
            f"    metrics_path: {path}",
            "    static_configs:",
            f"      - targets: [{', '.join(repr(a) for a in addresses)}]",
        ]
        if bare_series:
            lines += [
                "    metric_relabel_configs:",
                "      - action: labeldrop",
                "        regex: job|instance",
            ]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def open_prometheus(
    targets: Sequence[str] = (),
    *,
    binary: str = "prometheus",
    home: Path | None = None,
    history: Path | None = None,
    scrape_interval: float = 1.0,
    bare_series: bool = False,
    wait_for_scrape: bool = True,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
    port: int | None = None,
) -> AsyncIterator[RunningPrometheus]:
    """Run Prometheus scraping ``targets`` for the duration of the ``async with`` block.

    ``home`` holds ``prometheus.yml``, ``prometheus.log`` and the TSDB in ``data/`` (existing blocks there
    are loaded); without it a temporary directory is used and removed afterwards. ``history`` (OpenMetrics)
    is backfilled into the TSDB first with the ``promtool`` beside the binary, so queries find it at once;
    ``bare_series`` (see :func:`prometheus_config`) makes the scraped series continue the backfilled ones.
    With ``wait_for_scrape`` (and targets) it returns only once each target has answered a scrape, so a
    query finds data. ``port`` fixes the loopback port (a restarted Prometheus keeps its URL: ``couchestor
    soak``); by default a free one is picked. Raises :class:`PrometheusStartError` when the binary (or promtool, for ``history``) is
    missing or fails, or Prometheus is not ready within ``ready_timeout`` seconds.
    """
    path = find_prometheus(binary)
    if path is None:
        raise PrometheusStartError(f"{binary} is not on PATH")
    with tempfile.TemporaryDirectory(prefix="couchestor-prometheus-") as scratch:
        root = home if home is not None else Path(scratch)
        data_dir = root / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        if history is not None:
            await backfill(history, data_dir, promtool=find_promtool(path) or "promtool")
        config = root / "prometheus.yml"
        config.write_text(prometheus_config(targets, scrape_interval, bare_series=bare_series))
        server = await _start(path, root, config, data_dir, extra_args, ready_timeout, port)
        try:
            if wait_for_scrape and targets:
                await _wait_scraped(server, len(targets), ready_timeout)
            yield server
        finally:
            with trio.CancelScope(shield=True):
                await stop_process(server.process)


async def stop_process(process: trio.Process, grace: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``process`` and wait up to ``grace`` seconds, then SIGKILL it; nothing if it has exited."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    with trio.move_on_after(grace):
        await process.wait()
        return
    process.kill()
    await process.wait()


def command(
    binary: str, config: Path, data_dir: Path, port: int, extra_args: Sequence[str] = ()
) -> list[str]:
    """The command line of a Prometheus reading ``config``, keeping its TSDB in ``data_dir`` and serving on
    the loopback ``port``."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        *extra_args,
    ]


async def _start(
    binary: str,
    home: Path,
    config: Path,
    data_dir: Path,
    extra_args: Sequence[str],
    ready_timeout: float,
    fixed_port: int | None = None,
) -> RunningPrometheus:
    log_path = home / "prometheus.log"
    # A free port can be taken between probing and binding: try another; a fixed port gets one attempt.
    for _attempt in range(1 if fixed_port else _PORT_ATTEMPTS):
        port = fixed_port or _free_port()
        with log_path.open("wb") as log:
            process = await trio.lowlevel.open_process(
                command(binary, config, data_dir, port, extra_args),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = RunningPrometheus(f"http://127.0.0.1:{port}", "", home, data_dir, log_path, process)
        try:
            version = await _wait_ready(server, ready_timeout)
        except BaseException:
            with trio.CancelScope(shield=True):
                await stop_process(process)
            raise
        if version is not None:
            server.version = version
            return server
        exited = process.poll()
        with trio.CancelScope(shield=True):
            await stop_process(process)
        if fixed_port or "address already in use" not in _tail(log_path, 100):
            why = (
                f"exited with status {exited}"
                if exited is not None
                else f"not ready within {ready_timeout:g}s"
            )
            raise PrometheusStartError(f"prometheus {why}:\n{_tail(log_path, 10)}")
    raise PrometheusStartError(f"prometheus could not bind a free loopback port in {_PORT_ATTEMPTS} attempts")


class _BuildInfo(msgspec.Struct):
    version: str = "?"


class _BuildInfoAnswer(msgspec.Struct):
    data: _BuildInfo


async def _wait_ready(server: RunningPrometheus, within: float) -> str | None:
    """Prometheus' version once ``/-/ready`` answers 200; None if it exits or ``within`` seconds pass first."""
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        with trio.move_on_after(within):
            while server.process.poll() is None:
                try:
                    if (await client.get(f"{server.url}/-/ready")).status_code == 200:
                        answer = await client.get(f"{server.url}/api/v1/status/buildinfo")
                        return msgspec.json.decode(answer.content, type=_BuildInfoAnswer).data.version
                except (httpx.TransportError, msgspec.DecodeError):
                    pass
                await trio.sleep(0.05)
    return None


class _Sample(msgspec.Struct):
    value: tuple[float, str]


class _Vector(msgspec.Struct):
    result: list[_Sample]


class _QueryAnswer(msgspec.Struct):
    data: _Vector


async def _wait_scraped(server: RunningPrometheus, targets: int, within: float) -> None:
    """Return once ``up`` is 1 for ``targets`` targets: each was scraped successfully at least once."""
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        with trio.move_on_after(within):
            while server.process.poll() is None:
                try:
                    answer = await client.post(f"{server.url}/api/v1/query", data={"query": "up == 1"})
                    result = msgspec.json.decode(answer.content, type=_QueryAnswer).data.result
                    if len(result) >= targets:
                        return
                except (httpx.TransportError, msgspec.DecodeError):
                    pass
                await trio.sleep(0.1)
    raise PrometheusStartError(
        f"prometheus did not scrape its {targets} target(s) within {within:g}s:\n{server.log_tail(10)}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _target(url: str) -> tuple[str, str, str]:
    """(scheme, host:port, metrics path) of a scrape target URL such as ``http://127.0.0.1:8000/metrics``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.scheme or "http", parts.netloc, (parts.path if parts.path not in ("", "/") else "/metrics")


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


__all__ = [
    "PrometheusStartError",
    "RunningPrometheus",
    "backfill",
    "command",
    "find_prometheus",
    "find_promtool",
    "open_prometheus",
    "prometheus_config",
    "stop_process",
]
