"""The idle-period rule (``coldAfterIdle``) against the real Prometheus, on backfilled history: one batched
query per distinct period per refresh, beside one per (window, metric), giving each volume's peak IOPS over
the period and its coverage, and the decisions made from it."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import pytest
import trio

from couchestor.endpoints import Health
from couchestor.metrics import OperatorMetrics
from couchestor.sim.workload import ExportOptions, Kind, Pattern, Workload, write_history
from couchestor.tiering.decide import decide
from couchestor.tiering.heat import PRESETS, build_idle_query, build_queries, metric_source
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.policy import PolicyRules, compile_policy
from couchestor.tiering.scores import PrometheusClient, ScoreCache
from couchestor.tiering.views import PoolView, ReplicaView, VolumeView
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy

pytestmark = pytest.mark.prometheus

STEP = 15.0
HOURS = 3
GiB = 2**30
WINDOWS = (600, 3600)
PERIODS = (7200, 5400)


@pytest.fixture
def history(tmp_path):
    """Three hours at 15 s, ending a minute ago: an idle volume, a quiet one (5 IOPS), and one as quiet but
    with one 2-minute burst of 4000 IOPS 50 minutes ago (long before the 10-minute window)."""
    end = math.floor((time.time() - 60) / STEP) * STEP
    workload = Workload(seed=3, clock=lambda: end, origin=end)
    burst_at = end - 3000.0
    workload.add_volume("pvc-idle", Pattern(Kind.IDLE, base=0.0), node="node-0")
    workload.add_volume("pvc-quiet", Pattern(Kind.CONSTANT, base=5.0), node="node-0")
    workload.add_volume(
        "pvc-burst",
        Pattern(
            Kind.BURSTY, base=5.0, amplitude=4000.0, period=4 * 3600.0, burst_duration=120.0, phase=-burst_at
        ),
        node="node-1",
    )
    path = tmp_path / "history.om"
    with path.open("w") as out:
        write_history(
            workload, out, start=end - HOURS * 3600, end=end, step=STEP, options=ExportOptions(counters=True)
        )
    return path


def _policy(period: str) -> PolicyRules:
    spec = {
        "lowWatermarkIOPS": 500,
        "highWatermarkIOPS": 5000,
        "samplingWindow": "10m",
        "coldAfterIdle": {"period": period, "belowIOPS": 10},
    }
    rules = compile_policy(StoragePolicy(metadata=ObjectMeta(name="idle"), spec=spec))
    assert isinstance(rules, PolicyRules), rules
    return rules


def _on_hot(name: str) -> VolumeView:
    return VolumeView(
        name,
        None,
        "mayastor",
        size_bytes=GiB,
        num_replicas=1,
        replicas=(ReplicaView("hot-1", "node-0", "Online", "Synced"),),
    )


@pytest.mark.parametrize("preset", sorted(PRESETS))
async def test_one_query_per_idle_period_gives_the_peaks_the_decisions_use(
    prometheus_factory, history, preset
):
    prometheus = await prometheus_factory(history=history)
    source = metric_source(preset, scrape_interval_seconds=STEP)
    async with PrometheusClient(prometheus.url) as client:
        cache = ScoreCache(client, source, ttl=3600.0, metrics=OperatorMetrics(), health=Health())
        # Three policies' periods, two of them alike: one query each distinct period.
        cache.want(WINDOWS, [7200, 5400, 7200])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.run)
            with trio.fail_after(60):
                await cache.wait_refreshed()
            nursery.cancel_scope.cancel()
    per_window = sum(len(build_queries(source, w)) for w in WINDOWS)
    assert cache.refreshes == 1
    assert cache.queries_sent == per_window + len(PERIODS)
    snapshots = cache.snapshots
    assert set(snapshots) == set(WINDOWS)
    for window in WINDOWS:
        snapshot = snapshots[window]
        assert snapshot.healthy, snapshot.error
        assert set(snapshot.peaks) == set(PERIODS)
    peaks = snapshots[600].peaks[7200]
    assert peaks.healthy, peaks.error
    assert set(peaks.peaks) == {"pvc-idle", "pvc-quiet", "pvc-burst"}
    assert peaks.peaks["pvc-idle"].peak == pytest.approx(0.0, abs=1e-9)
    assert peaks.peaks["pvc-quiet"].peak == pytest.approx(5.0, rel=0.05)
    assert peaks.peaks["pvc-burst"].peak > 1000.0
    for name in peaks.peaks:
        # Three hours of history for a two-hour period: covered (a counter's last minute may be missing).
        assert peaks.peaks[name].coverage > 0.95, name
    # Over the 10-minute window the bursty volume is as quiet as the others.
    assert snapshots[600].scores["pvc-burst"].score < 10.0

    plan = decide(
        [_policy("2h")],
        [_on_hot(n) for n in ("pvc-idle", "pvc-quiet", "pvc-burst")],
        [
            PoolView("hot-1", "node-0", {"tier": "hot"}, "Online", 100 * GiB),
            PoolView("cold-1", "node-1", {"tier": "cold"}, "Online", 100 * GiB),
        ],
        snapshots,
        set(),
        {},
        datetime.now(UTC),
        DecideOptions(),
    )
    labels = {d.volume: d.label for d in plan.decisions}
    # Every one is under the low watermark over the window; the one busy within the period stays.
    assert labels == {"pvc-idle": "cold", "pvc-quiet": "cold", "pvc-burst": "stay"}
    burst = next(d for d in plan.decisions if d.volume == "pvc-burst")
    assert "coldAfterIdle" in burst.detail


async def test_the_idle_query_reads_each_half_apart(prometheus_factory, history):
    """The query's two halves (peak and samples) come back as separate series of the same volume."""
    prometheus = await prometheus_factory(history=history)
    source = metric_source("openebs", scrape_interval_seconds=STEP)
    result = await prometheus.vector(build_idle_query(source, 7200).promql)
    stats = sorted((item["metric"]["volume_id"], item["metric"]["couchestor_idle"]) for item in result)
    assert stats == sorted(
        (v, s) for v in ("pvc-burst", "pvc-idle", "pvc-quiet") for s in ("peak", "samples")
    )
