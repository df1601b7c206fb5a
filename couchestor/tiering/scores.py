"""The score cache: heat-score snapshots per sampling window, refreshed from Prometheus with a TTL.

One task (:meth:`ScoreCache.run`) owns all Prometheus traffic. For every sampling window some policy uses it
sends the few queries :func:`~couchestor.tiering.heat.build_queries` gives -- never one per volume -- and keeps the
resulting :class:`~couchestor.tiering.heat.ScoreSnapshot`. For every idle period some policy uses
(``coldAfterIdle``) it sends the one query :func:`~couchestor.tiering.heat.build_idle_query` gives, and hands
the peaks out with every window's snapshot (:attr:`ScoreSnapshot.peaks`). A failure of any kind (unreachable, timeout, HTTP error,
error answer, partial answer) produces an *unhealthy* snapshot: the decisions then move nothing, and the
``MetricsAvailable`` condition, the ``storage_operator_metrics_healthy`` gauge and a log line say so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import trio

from couchestor.endpoints import Health
from couchestor.metrics import OperatorMetrics
from couchestor.tiering.heat import (
    HeatQuery,
    MetricSource,
    PeakSnapshot,
    PrometheusResponseError,
    QueryResult,
    ScoreSnapshot,
    build_idle_query,
    build_peaks,
    build_queries,
    build_snapshot,
    decode_response,
)

log = logging.getLogger("couchestor.tiering.scores")

QUERY_TIMEOUT = 30.0  # seconds per query; Prometheus' own default limit is 2 minutes


class PrometheusClient:
    """``/api/v1/query`` over httpx with a timeout on every call; raises :class:`PrometheusUnavailable`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = QUERY_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def query(self, promql: str, at: datetime) -> QueryResult:
        try:
            response = await self._http.post(
                "/api/v1/query", data={"query": promql, "time": f"{at.timestamp():.3f}"}
            )
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(
                "unreachable", f"{self.base_url}: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code >= 500 and not response.content.startswith(b"{"):
            raise PrometheusUnavailable("http-error", f"{self.base_url} answered HTTP {response.status_code}")
        try:
            return decode_response(response.content)
        except PrometheusResponseError as exc:
            raise PrometheusUnavailable(exc.reason, str(exc)) from None


class PrometheusUnavailable(Exception):
    """Prometheus could not give a usable answer; ``reason`` is a short label for the error metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ScoreCache:
    """Snapshots by window (seconds), refreshed every ``ttl`` seconds for the windows in :meth:`want`."""

    def __init__(
        self,
        prometheus: PrometheusClient,
        source: MetricSource,
        *,
        ttl: float,
        metrics: OperatorMetrics,
        health: Health,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.prometheus = prometheus
        self.source = source
        self.ttl = ttl
        self.metrics = metrics
        self.health = health
        self._wall = wall_clock
        self._windows: frozenset[int] = frozenset()
        self._snapshots: dict[int, ScoreSnapshot] = {}
        self._fetched: dict[int, float] = {}  # window -> trio time of the last refresh
        self._periods: frozenset[int] = frozenset()
        self._peaks: dict[int, PeakSnapshot] = {}
        self._peaks_fetched: dict[int, float] = {}  # idle period -> trio time of the last refresh
        self._merged: dict[int, ScoreSnapshot] | None = None
        self._wake = trio.Event()
        self._refreshed = trio.Event()
        self.refreshes = 0
        self.queries_sent = 0
        self.healthy: bool | None = None  # None until the first answer
        health.gate("prometheus", "no answer from Prometheus yet")

    @property
    def snapshots(self) -> Mapping[int, ScoreSnapshot]:
        """The latest snapshot per window, each carrying the latest peaks of every idle period (the same
        objects until the next refresh, so a pass can tell nothing changed)."""
        if self._merged is None:
            peaks = dict(self._peaks)
            self._merged = {w: replace(s, peaks=peaks) if peaks else s for w, s in self._snapshots.items()}
        return self._merged

    def want(self, windows: Collection[int], periods: Collection[int] = ()) -> None:
        """Set the windows and idle periods to keep fresh; a new one is fetched at once."""
        wanted, idle = frozenset(windows), frozenset(periods)
        if wanted != self._windows or idle != self._periods:
            self._windows, self._periods = wanted, idle
            for gone in set(self._snapshots) - wanted:
                del self._snapshots[gone]
                self._fetched.pop(gone, None)
            for gone in set(self._peaks) - idle:
                del self._peaks[gone]
                self._peaks_fetched.pop(gone, None)
            self._merged = None
            self._wake.set()

    async def wait_refreshed(self) -> None:
        """Wait for the next refresh to finish (successful or not)."""
        await self._refreshed.wait()

    async def run(self) -> None:
        """Refresh forever; cancel to stop (an in-flight query is abandoned, nothing half-written)."""
        self.health.expect("score-cache", max_silence=max(self.ttl * 4, QUERY_TIMEOUT * 4))
        while True:
            now = trio.current_time()
            due = sorted(w for w in self._windows if now - self._fetched.get(w, -math.inf) >= self.ttl)
            for window in due:
                await self._refresh(window)
            due_periods = sorted(
                p for p in self._periods if now - self._peaks_fetched.get(p, -math.inf) >= self.ttl
            )
            for period in due_periods:
                await self._refresh_peaks(period)
            if due or due_periods:
                self.refreshes += 1
                self._refreshed.set()
                self._refreshed = trio.Event()
            self.health.beat("score-cache")
            next_due = min(
                [
                    *(self._fetched.get(w, now) + self.ttl for w in self._windows),
                    *(self._peaks_fetched.get(p, now) + self.ttl for p in self._periods),
                ],
                default=now + self.ttl,
            )
            with trio.move_on_at(max(next_due, trio.current_time() + 0.01)):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _refresh(self, window: int) -> None:
        at = self._wall()
        try:
            results = await self.query_all(build_queries(self.source, window), at)
            snapshot = build_snapshot(self.source, window, results, at)
        except PrometheusUnavailable as exc:
            self.metrics.query_errors.labels(reason=exc.reason).inc()
            snapshot = ScoreSnapshot.failed(window, at, str(exc))
        self._fetched[window] = trio.current_time()
        if window in self._windows:
            self._snapshots[window] = snapshot
            self._merged = None
        self._record(snapshot)

    async def _refresh_peaks(self, period: int) -> None:
        at = self._wall()
        query = build_idle_query(self.source, period)
        try:
            results = await self.query_all([query], at)
            peaks = build_peaks(self.source, period, results.get(query), at)
        except PrometheusUnavailable as exc:
            self.metrics.query_errors.labels(reason=exc.reason).inc()
            peaks = PeakSnapshot(period, False, at, error=str(exc))
        if not peaks.healthy:
            log.warning("idle-period peaks unavailable, no move to the cold tier by them: %s", peaks.error)
        self._peaks_fetched[period] = trio.current_time()
        if period in self._periods:
            self._peaks[period] = peaks
            self._merged = None

    async def query_all(self, queries: Iterable[HeatQuery], at: datetime) -> dict[HeatQuery, QueryResult]:
        """Send a refresh's queries at once (Prometheus evaluates them in parallel, so the refresh takes as
        long as the slowest, not their sum); the first failure cancels the others and is raised."""
        results: dict[HeatQuery, QueryResult] = {}
        failures: list[PrometheusUnavailable] = []

        async def one(query: HeatQuery) -> None:
            started = trio.current_time()
            self.queries_sent += 1
            try:
                results[query] = await self.prometheus.query(query.promql, at)
            except PrometheusUnavailable as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()
            finally:
                self.metrics.query_duration.observe(trio.current_time() - started)

        async with trio.open_nursery() as nursery:
            for query in queries:
                nursery.start_soon(one, query)
        if failures:
            raise failures[0]
        return results

    def _record(self, snapshot: ScoreSnapshot) -> None:
        healthy = snapshot.healthy
        if healthy != self.healthy:
            if healthy:
                log.info("Prometheus answers again: heat scores available")
            else:
                log.warning("heat scores unavailable, no tier decisions: %s", snapshot.error)
        self.healthy = healthy
        self.metrics.metrics_healthy.set(1 if healthy else 0)
        self.metrics.score_cache_age.set(0)
        if healthy:
            self.health.gate("prometheus", None)
            for score in snapshot.scores.values():
                if score.score is not None:
                    self.metrics.heat_scores.observe(score.score)
