"""The score cache's refresh: a window's queries go to Prometheus at once; the first failure ends the refresh."""

from datetime import UTC, datetime

import pytest
import trio

from couchestor.endpoints import Health
from couchestor.metrics import OperatorMetrics
from couchestor.tiering.heat import PRESETS, QueryResult, build_queries
from couchestor.tiering.scores import PrometheusUnavailable, ScoreCache

AT = datetime(2026, 2, 1, 12, tzinfo=UTC)


class FakePrometheus:
    """Answers each query after ``delay`` seconds; ``fail`` names a query (substring) that fails instead."""

    def __init__(self, delay=1.0, fail=None):
        self.delay, self.fail = delay, fail
        self.in_flight = self.peak = 0
        self.cancelled = 0

    async def query(self, promql, at):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.fail and self.fail in promql:
                await trio.sleep(self.delay / 10)
                raise PrometheusUnavailable("http", "connection refused")
            await trio.sleep(self.delay)
            return QueryResult(samples=(({"pv_name": "pvc-a"}, 42.0),))
        except trio.Cancelled:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


def cache(prometheus):
    return ScoreCache(prometheus, PRESETS["mayastor-2x"], ttl=30, metrics=OperatorMetrics(), health=Health())


async def test_a_refresh_sends_its_queries_at_once(autojump_clock):
    prometheus = FakePrometheus(delay=1.0)
    scores = cache(prometheus)
    queries = build_queries(scores.source, 600)
    assert len(queries) >= 3  # reads, writes, coverage
    started = trio.current_time()
    results = await scores.query_all(queries, AT)
    assert set(results) == set(queries)
    assert prometheus.peak == len(queries)
    assert trio.current_time() - started == pytest.approx(1.0)  # the slowest one, not the sum (virtual clock)
    assert scores.queries_sent == len(queries)


async def test_the_first_failure_cancels_the_other_queries_and_is_raised(autojump_clock):
    prometheus = FakePrometheus(delay=5.0, fail="count_over_time")
    scores = cache(prometheus)
    queries = build_queries(scores.source, 600)
    with pytest.raises(PrometheusUnavailable, match="connection refused"):
        await scores.query_all(queries, AT)
    assert prometheus.cancelled == len(queries) - 1
    assert prometheus.in_flight == 0


async def test_a_failed_idle_period_query_leaves_the_windows_healthy(autojump_clock):
    """The idle-period query failing spoils only the peaks: the windows' scores are used as before, and the
    snapshots handed out carry the failure for the judge (nothing goes cold by the rule)."""
    scores = cache(FakePrometheus(delay=0.1, fail="max_over_time"))
    scores.want([600], [7 * 86_400])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scores.run)
        await scores.wait_refreshed()
        nursery.cancel_scope.cancel()
    assert scores.queries_sent == len(build_queries(scores.source, 600)) + 1
    snapshot = scores.snapshots[600]
    assert snapshot.healthy
    assert snapshot.scores["pvc-a"].score is not None
    peaks = snapshot.peaks[7 * 86_400]
    assert not peaks.healthy
    assert "connection refused" in (peaks.error or "")
    # Handed out as the same objects until the next refresh, so a pass sees nothing changed.
    assert scores.snapshots is scores.snapshots
    # A period no policy uses any more is dropped with its peaks.
    scores.want([600])
    assert scores.snapshots[600].peaks == {}
