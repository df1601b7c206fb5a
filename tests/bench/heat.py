"""Heat-score refresh on a real Prometheus: one batched query per metric vs one query per volume.

Setup (not timed): the workload simulator writes an hour of ``openebs_volume_iops{volume_id}`` history for
``volumes`` volumes at a 15 s step, ``promtool`` backfills it into a fresh TSDB, and ``prometheus`` serves it
with no scrape targets. Then, against the same server:

- **one batched query**: the score query of :func:`couchestor.tiering.heat.build_queries` for a 1h window,
  ``sum by (volume_id) (avg_over_time(...[1h]))``, through :class:`couchestor.tiering.scores.PrometheusClient`: the
  same answer as the per-volume queries, for every volume at once (the issue's comparison);
- **the operator's refresh**: that query plus the coverage query for all volumes, sent at once as the score
  cache does (:meth:`couchestor.tiering.scores.ScoreCache.query_all`), then :func:`couchestor.tiering.heat.build_snapshot`;
- **per volume** (the seeds' design): ``avg_over_time(openebs_volume_iops{volume_id="<pv>"}[1h])`` once per
  volume, one after the other, through the same client.

All are timed on a warm server: one untimed run of each batched kind first reads the backfilled blocks into
memory (the first query on a fresh server pays for that, and whichever contender ran first would carry it).
The batched figures are medians of ``refreshes`` interleaved runs, as the operator repeats a refresh every
TTL; the per-volume one is a single pass (10,000 queries: its own variation averages out).

Requests and bytes (request bodies plus response bodies) are counted by the HTTP transport. The two answers
are checked to agree before any figure is printed.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from couchestor.endpoints import Health
from couchestor.metrics import OperatorMetrics
from couchestor.sim.prometheus import open_prometheus
from couchestor.sim.workload import ExportOptions, Workload, generate_volumes, write_history
from couchestor.tiering.heat import build_queries, build_snapshot, metric_source, promql_string
from couchestor.tiering.scores import PrometheusClient, ScoreCache

STEP = 15.0
WINDOW = 3600


class _Counting(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.requests = 0
        self.bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        await response.aread()
        self.requests += 1
        self.bytes += len(request.content) + len(response.content)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _batched(url: str, at: datetime) -> tuple[dict[str, float], dict[str, float]]:
    """One refresh as the score cache does it: its time, requests and bytes, and the scores."""
    source = metric_source()
    transport = _Counting()
    async with PrometheusClient(url, transport=transport, timeout=60) as client:
        cache = ScoreCache(client, source, ttl=WINDOW, metrics=OperatorMetrics(), health=Health())
        start = time.perf_counter()
        # As the operator's score cache sends them: a window's queries at once.
        results = await cache.query_all(build_queries(source, WINDOW), at)
        snapshot = build_snapshot(source, WINDOW, results, at)
        took = time.perf_counter() - start
    assert snapshot.healthy, snapshot.error
    scores = {k: h.score for k, h in snapshot.scores.items() if h.score is not None}
    return scores, {"seconds": took, "requests": transport.requests, "bytes": transport.bytes}


async def _score_query(url: str, at: datetime) -> tuple[dict[str, float], dict[str, float]]:
    """The one batched query that answers what the per-volume queries do: every volume's average IOPS."""
    source = metric_source()
    query = next(q for q in build_queries(source, WINDOW) if "score" in q.roles)
    transport = _Counting()
    async with PrometheusClient(url, transport=transport, timeout=60) as client:
        start = time.perf_counter()
        result = await client.query(query.promql, at)
        scores = {labels[source.label]: value for labels, value in result.samples}
        took = time.perf_counter() - start
    return scores, {"seconds": took, "requests": transport.requests, "bytes": transport.bytes}


Contender = Callable[[str, datetime], Awaitable[tuple[dict[str, float], dict[str, float]]]]


async def _medians(
    url: str, at: datetime, contenders: dict[str, Contender], runs: int
) -> dict[str, tuple[dict[str, float], dict[str, Any]]]:
    """Each contender's first scores and figures with the median time of ``runs`` runs (interleaved, after
    one untimed warm-up that reads the history into memory)."""
    for fn in contenders.values():
        await fn(url, at)
    results: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            results[name].append(await fn(url, at))
    medians = {}
    for name, got in results.items():
        scores, figures = got[0]
        times = [f["seconds"] for _, f in got]
        medians[name] = (
            scores,
            {**figures, "seconds": statistics.median(times), "runs": [round(t, 4) for t in times]},
        )
    return medians


async def _per_volume(url: str, at: datetime, names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    transport = _Counting()
    scores: dict[str, float] = {}
    async with PrometheusClient(url, transport=transport, timeout=60) as client:
        start = time.perf_counter()
        for name in names:
            promql = f"avg_over_time(openebs_volume_iops{{volume_id={promql_string(name)}}}[1h])"
            result = await client.query(promql, at)
            for _labels, value in result.samples:
                scores[name] = value
        took = time.perf_counter() - start
    return scores, {"seconds": took, "requests": transport.requests, "bytes": transport.bytes}


def run(volumes: int = 10_000, refreshes: int = 5) -> dict[str, Any]:
    end = math.floor((time.time() - 120) / STEP) * STEP
    workload = Workload(seed=1, clock=lambda: end, origin=end)
    names = []
    for name, pattern in generate_volumes(volumes, seed=1, start=end - WINDOW):
        workload.add_volume(name, pattern)
        names.append(name)
    with tempfile.TemporaryDirectory(prefix="couchestor-bench-") as tmp:
        home = Path(tmp)
        history = home / "history.om"
        setup = time.perf_counter()
        with history.open("w") as out:
            samples = write_history(
                workload,
                out,
                start=end - WINDOW,
                end=end,
                step=STEP,
                options=ExportOptions(split_gauges=False),
            )
        at = datetime.fromtimestamp(end, UTC)

        async def measure() -> tuple[float, Any, Any]:
            # No scrape targets: the backfilled history is all there is to query.
            async with open_prometheus(home=home, history=history, scrape_interval=STEP) as server:
                setup_seconds = time.perf_counter() - setup
                batched = await _medians(
                    server.url, at, {"query": _score_query, "refresh": _batched}, refreshes
                )
                return setup_seconds, batched, await _per_volume(server.url, at, names)

        setup_seconds, medians, (single_scores, single) = trio.run(measure)
    (query_scores, query), (batched_scores, batched) = medians["query"], medians["refresh"]
    for what, scores in (("batched query", query_scores), ("batched refresh", batched_scores)):
        mismatched = [
            n for n in names if not math.isclose(scores.get(n, 0.0), single_scores.get(n, 0.0), rel_tol=1e-9)
        ]
        if mismatched:
            raise AssertionError(f"{what} and per-volume scores differ for {len(mismatched)} volumes")
    return {
        "volumes": volumes,
        "samples_backfilled": samples,
        "setup_seconds": round(setup_seconds, 1),
        "batched_query": {k: round(v, 4) if isinstance(v, float) else v for k, v in query.items()},
        "batched": {k: round(v, 4) if isinstance(v, float) else v for k, v in batched.items()},
        "refreshes": refreshes,
        "per_volume": {k: round(v, 4) if isinstance(v, float) else v for k, v in single.items()},
        "speedup": round(single["seconds"] / query["seconds"], 1),
        "request_ratio": round(single["requests"] / query["requests"], 1),
        "byte_ratio": round(single["bytes"] / query["bytes"], 2),
        "refresh_speedup": round(single["seconds"] / batched["seconds"], 1),
    }


def report(r: dict[str, Any]) -> str:
    q, b, p = r["batched_query"], r["batched"], r["per_volume"]

    def row(name: str, f: dict[str, Any]) -> str:
        runs = f"  (median of {', '.join(f'{t:.3f}' for t in f['runs'])} s)" if "runs" in f else ""
        return f"  {name:44} {f['requests']:>9,} {f['bytes']:>12,} {f['seconds']:9.3f}s{runs}"

    return "\n".join(
        [
            f"Heat-score refresh, {r['volumes']:,} volumes, 1h window, real Prometheus "
            f"({r['samples_backfilled']:,} backfilled samples; setup {r['setup_seconds']:.1f}s, not timed)",
            f"  {'':44} {'requests':>9} {'bytes':>12} {'wall':>10}",
            row("one batched query (every volume's IOPS)", q),
            row("operator's refresh (+ coverage, snapshot)", b),
            row("one query per volume (seeds' design)", p),
            f"  the batched query is {r['speedup']:.1f}x faster than one query per volume, with "
            f"{r['request_ratio']:,.0f}x fewer requests and {r['byte_ratio']:.2f}x fewer bytes, same scores;",
            f"  the operator's whole refresh, which also asks for each volume's sample coverage (the seeds do not),"
            f" is {r['refresh_speedup']:.1f}x faster",
        ]
    )
