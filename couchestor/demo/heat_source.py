"""Where the demo's operator gets heat scores: a real Prometheus scraping the workload simulator, or the
workload simulator's own Prometheus-compatible query endpoint.

``--prometheus auto`` (the default) uses the ``prometheus`` on PATH when there is one; ``simulator`` always
uses the query endpoint; anything else names the Prometheus binary to run. A Prometheus that cannot start is
told in one line and the query endpoint is used instead: the demo never fails for want of Prometheus.
:func:`serve_heat_source` says which source it chose in :attr:`HeatSource.description`.

Prometheus is given the workload's last :data:`HISTORY_SECONDS` first (backfilled with ``promtool``), as a
Prometheus that had been scraping for a while would hold: the query endpoint serves the same history, so the
operator can decide at once with either source instead of waiting until half a sampling window is scraped.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio

from couchestor.errors import UserError
from couchestor.sim.prometheus import PrometheusStartError, find_prometheus, find_promtool, open_prometheus
from couchestor.sim.workload import ExportOptions, Workload, write_history

AUTO = "auto"
SIMULATOR = "simulator"
#: Seconds of the workload's past given to Prometheus before it starts (more than the demo's window).
HISTORY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class HeatChoice:
    """What ``--prometheus`` asked for: a binary to run (None: the query endpoint) and why."""

    binary: str | None
    why: str


@dataclass(frozen=True, slots=True)
class HeatSource:
    """The URL the operator queries, the Prometheus version (None for the query endpoint), and a line saying
    which source it is."""

    url: str
    prometheus_version: str | None
    description: str


#: The workload simulator's query endpoint, as ``--prometheus simulator`` asks.
QUERY_ENDPOINT = HeatChoice(None, "--prometheus simulator")


def choose(value: str) -> HeatChoice:
    """Resolve ``--prometheus``; :class:`UserError` when it names a binary that is not there."""
    if value == SIMULATOR:
        return QUERY_ENDPOINT
    if value == AUTO:
        found = find_prometheus()
        return HeatChoice(found, "prometheus on PATH") if found else HeatChoice(None, "no prometheus on PATH")
    found = find_prometheus(value)
    if found is None:
        raise UserError(
            f"--prometheus: no executable {value!r} (give auto, simulator, or the path of a prometheus binary)"
        )
    return HeatChoice(found, f"--prometheus {value}")


async def serve_heat_source(
    choice: HeatChoice,
    workload: Workload,
    exported: ExportOptions,
    query_url: str,
    *,
    scrape_interval: float,
    task_status: trio.TaskStatus[HeatSource] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start the chosen source; ``task_status.started`` gets it once it can answer queries.

    With a binary, Prometheus scrapes the workload simulator's ``/metrics`` (served at ``query_url``, the
    families ``exported``) every ``scrape_interval`` seconds and runs until this task is cancelled (then it
    is stopped). Otherwise, or when Prometheus fails to start, the source is ``query_url`` and the task
    returns at once.
    """
    endpoint = f"the workload simulator's query endpoint at {query_url}"
    if choice.binary is None:
        task_status.started(HeatSource(query_url, None, f"heat scores from {endpoint} ({choice.why})"))
        return
    with tempfile.TemporaryDirectory(prefix="couchestor-demo-history-") as scratch:
        history: Path | None = None
        if find_promtool(choice.binary) is not None:
            history = Path(scratch) / "history.om"
            now = workload.now()
            with history.open("w") as out:
                write_history(
                    workload,
                    out,
                    start=now - HISTORY_SECONDS,
                    end=now,
                    step=scrape_interval,
                    options=exported,
                )
        try:
            async with open_prometheus(
                [f"{query_url}/metrics"],
                binary=choice.binary,
                history=history,
                scrape_interval=scrape_interval,
                bare_series=True,
            ) as prometheus:
                backfilled = "" if history is not None else "; no promtool to give it history"
                task_status.started(
                    HeatSource(
                        prometheus.url,
                        prometheus.version,
                        f"heat scores from Prometheus {prometheus.version} ({choice.why}) at {prometheus.url}, "
                        f"scraping the workload simulator every {scrape_interval:g}s{backfilled}",
                    )
                )
                await trio.sleep_forever()
        except PrometheusStartError as exc:
            reason = str(exc).splitlines()[0].rstrip(":")
            task_status.started(
                HeatSource(
                    query_url, None, f"Prometheus did not start ({reason}); heat scores from {endpoint}"
                )
            )


__all__ = ["AUTO", "QUERY_ENDPOINT", "SIMULATOR", "HeatChoice", "HeatSource", "choose", "serve_heat_source"]
