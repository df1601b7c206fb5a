"""The workload simulator against the real Prometheus: live scraping, backfilled history, and the demo query
endpoint giving the same answers as Prometheus on the same data."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from couchestor.sim.workload import ExportOptions, Kind, Pattern, Workload, serve_workload, write_history

pytestmark = pytest.mark.prometheus

STEP = 15.0
HOURS = 3


def _volumes(now: float) -> list[tuple[str, Pattern]]:
    """~50 volumes covering every kind, with noise; ramps and bursts inside the queried hour."""
    out: list[tuple[str, Pattern]] = []
    for n in range(50):
        kind = list(Kind)[n % len(Kind)]
        base = 50.0 + 37.0 * n
        pattern = {
            Kind.CONSTANT: Pattern(Kind.CONSTANT, base=base, noise=0.1),
            Kind.IDLE: Pattern(Kind.IDLE, base=0.0),
            Kind.DIURNAL: Pattern(
                Kind.DIURNAL, base=base, amplitude=base / 2, period=7200.0, phase=n * 100.0
            ),
            Kind.BURSTY: Pattern(
                Kind.BURSTY, base=base, amplitude=4000.0, period=600.0, burst_duration=90.0, noise=0.05
            ),
            Kind.RAMP: Pattern(
                Kind.RAMP, base=base, target=6000.0 - base, ramp_start=now - 2400.0, ramp_end=now - 600.0
            ),
        }[kind]
        out.append((f"pvc-{n:04d}", pattern))
    return out


def _history_workload(end: float) -> Workload:
    workload = Workload(seed=7, clock=lambda: end, origin=end)
    for name, pattern in _volumes(end):
        workload.add_volume(name, pattern, node=f"node-{int(name[-1]) % 3}")
    # A volume that heats up mid-history and one whose counters reset (an io-engine restart) in the window.
    workload.set_pattern("pvc-0000", Pattern(Kind.CONSTANT, base=7000.0, noise=0.1), at=end - 1000.0)
    workload.reset_counters("pvc-0003", at=end - 1234.5)
    return workload


def _expected_avg(workload: Workload, name: str, at: float, window: float) -> float:
    """avg_over_time from the pure functions: the mean over the grid samples in [at - window, at]."""
    first = math.ceil((at - window) / STEP)
    values = []
    for k in range(first, math.floor(at / STEP) + 1):
        rates = workload.rates_at(name, k * STEP)
        if rates is not None:
            values.append(rates.read_iops + rates.write_iops)
    return math.fsum(values) / len(values)


@pytest.fixture
def history(tmp_path):
    """Three hours of history for ~50 volumes at 15 s, ending a minute ago on the step grid."""
    end = math.floor((time.time() - 60) / STEP) * STEP
    workload = _history_workload(end)
    path = tmp_path / "history.om"
    with path.open("w") as out:
        write_history(
            workload, out, start=end - HOURS * 3600, end=end, step=STEP, options=ExportOptions(counters=True)
        )
    return workload, end, path


def _by(result, label):
    return {item["metric"][label]: float(item["value"][1]) for item in result}


async def test_real_prometheus_scrapes_the_simulator_live(prometheus_factory, nursery):
    workload = Workload(seed=3)
    for n in range(20):
        workload.add_volume(f"pvc-live-{n}", Pattern(Kind.CONSTANT, base=100.0 * (n + 1), read_fraction=0.25))
    url = await nursery.start(
        lambda task_status: serve_workload(
            workload, options=ExportOptions(counters=True), step=1.0, task_status=task_status
        )
    )
    prometheus = await prometheus_factory([f"{url}/metrics"], scrape_interval="1s")
    result = await prometheus.wait_for("openebs_volume_iops", 20)
    assert {item["metric"]["job"] for item in result} == {"workload"}
    assert _by(result, "volume_id") == {f"pvc-live-{n}": 100.0 * (n + 1) for n in range(20)}
    reads = _by(await prometheus.vector("openebs_volume_read_iops"), "volume_id")
    assert reads["pvc-live-3"] == pytest.approx(100.0)
    # Cumulative counters: once a 5 s range is full of scrapes, rate() reads the pattern's IOPS (flooring to
    # whole operations makes each 1 s delta off by at most one operation). With fewer samples Prometheus
    # extrapolates only half a scrape interval, so the range must be full first.
    await prometheus.wait_for("min(count_over_time(volume_num_read_ops[5s])) >= 5", 1)
    rates = _by(
        await prometheus.vector(
            "sum by (pv_name) (rate(volume_num_read_ops[5s]) + rate(volume_num_write_ops[5s]))"
        ),
        "pv_name",
    )
    assert rates.keys() == {f"pvc-live-{n}" for n in range(20)}
    for n in range(20):
        assert rates[f"pvc-live-{n}"] == pytest.approx(100.0 * (n + 1), rel=0.05)


async def test_backfilled_history_answers_avg_over_time_as_the_patterns_say(prometheus_factory, history):
    workload, end, path = history
    prometheus = await prometheus_factory(history=path)
    for at in (end, end - 1800.0, end - 7.5):
        result = _by(await prometheus.vector("avg_over_time(openebs_volume_iops[1h])", at), "volume_id")
        expected = {info.name: _expected_avg(workload, info.name, at, 3600.0) for info in workload.volumes()}
        assert result.keys() == expected.keys()
        for name, value in expected.items():
            assert result[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    # The heated-up volume shows its change: the last 1000 s at ~7000 IOPS.
    assert result["pvc-0000"] > 0.25 * 7000.0


QUERIES = [
    "avg_over_time(openebs_volume_iops[1h])",
    'sum by (volume_id) (avg_over_time(openebs_volume_iops{volume_id=~"pvc-00[0-2].*"}[30m]))',
    "max by (volume_id) (count_over_time(openebs_volume_iops[1h]))",
    "count_over_time(volume_num_read_ops[17m])",
    "sum by (pv_name) (rate(volume_num_read_ops[1h]) + rate(volume_num_write_ops[1h]))",
    'sum by (pv_name) (rate(volume_num_write_ops{node!="node-1"}[5m]))',
    "avg by (node) (rate(volume_num_read_ops[20m]))",
    "sum(count_over_time(openebs_volume_latency_us[1h]))",
]


async def test_demo_query_endpoint_agrees_with_prometheus(prometheus_factory, history, nursery):
    workload, end, path = history
    prometheus = await prometheus_factory(history=path)
    url = await nursery.start(
        lambda task_status: serve_workload(
            workload, options=ExportOptions(counters=True), step=STEP, task_status=task_status
        )
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for query in QUERIES:
            # On the grid, between grid points, and just after the counter reset and the pattern change.
            for at in (end, end - 7.5, end - 1234.0, end - 995.0):
                theirs = await prometheus.vector(query, at)
                assert theirs, (query, at)
                response = await client.post("/api/v1/query", data={"query": query, "time": repr(at)})
                assert response.status_code == 200, response.text
                ours = response.json()["data"]["result"]
                assert _keyed(ours).keys() == _keyed(theirs).keys(), query
                for labels, value in _keyed(theirs).items():
                    assert _keyed(ours)[labels] == pytest.approx(value, rel=1e-9, abs=1e-9), (
                        query,
                        at,
                        labels,
                    )
                assert {item["value"][0] for item in ours} == {item["value"][0] for item in theirs}


def _keyed(result):
    return {tuple(sorted(item["metric"].items())): float(item["value"][1]) for item in result}
