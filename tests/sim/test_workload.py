"""The workload simulator's pure parts: patterns, the workload timeline, exposition and history."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import httpx
import pytest
from hypothesis import given, settings, strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from couchestor.sim.workload import (
    ExportOptions,
    Kind,
    Pattern,
    Workload,
    WorkloadApp,
    generate_volumes,
    iops_at,
    noise_unit,
    ops_between,
    render_metrics,
    serve_workload,
    write_history,
)
from couchestor.sim.workload.exposition import history_times
from couchestor.sim.workload.model import RATE_COLUMNS, TOTAL_COLUMNS
from couchestor.sim.workload.patterns import level_at

T0 = 1_800_000_000.0


def _total(rates):
    return rates.read_iops + rates.write_iops


# --- patterns ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"base": -1.0}, "must not be negative"),
        ({"period": 0.0}, "period must be positive"),
        ({"burst_duration": 100.0, "period": 60.0}, "burst_duration"),
        ({"kind": "diurnal", "base": 10.0, "amplitude": 11.0}, "would go negative"),
        ({"ramp_start": 10.0, "ramp_end": 5.0}, "before ramp_start"),
        ({"read_fraction": 1.5}, "read_fraction"),
        ({"noise": 1.0}, "noise"),
        ({"base": math.nan}, "finite"),
        ({"kind": "sawtooth"}, "sawtooth"),
    ],
)
def test_invalid_patterns_are_rejected_with_the_field_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Pattern(**kwargs)


def test_constant_and_idle_levels():
    assert level_at(Pattern(Kind.CONSTANT, base=321.0), T0) == 321.0
    idle = iops_at(Pattern(Kind.IDLE, base=500.0), T0)
    assert (idle.read_iops, idle.write_iops) == (0.0, 0.0)


def test_diurnal_peaks_a_quarter_period_in_and_averages_to_its_base():
    pattern = Pattern(Kind.DIURNAL, base=1000.0, amplitude=400.0, period=3600.0, phase=0.0)
    start = math.floor(T0 / 3600.0) * 3600.0  # a cycle boundary
    assert level_at(pattern, start + 900.0) == pytest.approx(1400.0)
    assert level_at(pattern, start + 2700.0) == pytest.approx(600.0)
    assert level_at(pattern, start + 1800.0) == pytest.approx(1000.0)
    assert ops_between(pattern, start + 123.0, start + 123.0 + 3600.0) / 3600.0 == pytest.approx(1000.0)
    shifted = Pattern(Kind.DIURNAL, base=1000.0, amplitude=400.0, period=3600.0, phase=900.0)
    assert level_at(shifted, start) == pytest.approx(1400.0)


def test_bursty_is_a_square_wave_with_a_known_average():
    pattern = Pattern(Kind.BURSTY, base=100.0, amplitude=5000.0, period=600.0, burst_duration=60.0, phase=0.0)
    start = math.floor(T0 / 600.0) * 600.0
    assert level_at(pattern, start + 10.0) == 5100.0
    assert level_at(pattern, start + 60.0) == 100.0
    assert level_at(pattern, start + 599.0) == 100.0
    assert ops_between(pattern, start + 7.0, start + 7.0 + 6000.0) == pytest.approx(
        10 * (100.0 * 600 + 5000.0 * 60)
    )


def test_ramps_go_up_and_down_linearly_between_their_ends():
    up = Pattern(Kind.RAMP, base=100.0, target=900.0, ramp_start=T0, ramp_end=T0 + 800.0)
    assert level_at(up, T0 - 50.0) == 100.0
    assert level_at(up, T0 + 400.0) == pytest.approx(500.0)
    assert level_at(up, T0 + 10_000.0) == 900.0
    down = Pattern(Kind.RAMP, base=900.0, target=100.0, ramp_start=T0, ramp_end=T0 + 800.0)
    assert level_at(down, T0 + 200.0) == pytest.approx(700.0)
    step = Pattern(Kind.RAMP, base=10.0, target=20.0, ramp_start=T0, ramp_end=T0)
    assert (level_at(step, T0 - 1), level_at(step, T0 + 1)) == (10.0, 20.0)
    assert ops_between(step, T0 - 10.0, T0 + 10.0) == pytest.approx(10.0 * 10 + 20.0 * 10)


@given(st.floats(0.0, 1.0), st.floats(0.0, 20_000.0), st.floats(0.0, 5_000.0))
def test_reads_and_writes_split_the_total_by_the_read_fraction(fraction, base, latency):
    rates = iops_at(Pattern(Kind.CONSTANT, base=base, read_fraction=fraction, latency_us=latency), T0)
    assert rates.read_iops == pytest.approx(base * fraction)
    assert rates.read_iops + rates.write_iops == pytest.approx(base)
    assert rates.write_iops >= 0.0
    assert rates.latency_us == latency


def test_noise_is_reproducible_bounded_and_seed_dependent():
    units = [noise_unit(42, T0 + s) for s in range(500)]
    assert units == [noise_unit(42, T0 + s + 0.5) for s in range(500)]  # one value per simulated second
    assert all(-1.0 <= u < 1.0 for u in units)
    assert min(units) < -0.8
    assert max(units) > 0.8
    assert abs(math.fsum(units) / len(units)) < 0.1  # centred
    assert units != [noise_unit(43, T0 + s) for s in range(500)]
    noisy = Pattern(Kind.CONSTANT, base=1000.0, noise=0.2)
    for unit in (-1.0, -0.3, 0.0, 0.7):
        assert _total(iops_at(noisy, T0, unit)) == pytest.approx(1000.0 * (1 + 0.2 * unit))


patterns = st.one_of(
    st.builds(Pattern, kind=st.just(Kind.CONSTANT), base=st.floats(0, 1e4)),
    st.builds(Pattern, kind=st.just(Kind.IDLE)),
    st.builds(
        lambda base, frac, period, phase: Pattern(
            Kind.DIURNAL, base=base, amplitude=base * frac, period=period, phase=phase
        ),
        st.floats(0, 1e4),
        st.floats(0, 1),
        st.floats(60, 86_400),
        st.floats(0, 86_400),
    ),
    st.builds(
        lambda base, amp, period, duty, phase: Pattern(
            Kind.BURSTY, base=base, amplitude=amp, period=period, burst_duration=period * duty, phase=phase
        ),
        st.floats(0, 1e4),
        st.floats(0, 1e4),
        st.floats(10, 3600),
        st.floats(0, 1),
        st.floats(0, 3600),
    ),
    st.builds(
        lambda base, target, start, length: Pattern(
            Kind.RAMP, base=base, target=target, ramp_start=T0 + start, ramp_end=T0 + start + length
        ),
        st.floats(0, 1e4),
        st.floats(0, 1e4),
        st.floats(-500, 500),
        st.floats(0, 1000),
    ),
)


@settings(max_examples=60, deadline=None)
@given(patterns, st.floats(-1000, 1000), st.floats(1, 1000), st.floats(1, 1000))
def test_ops_between_integrates_the_level_and_is_additive(pattern, offset, first, second):
    a, b, c = T0 + offset, T0 + offset + first, T0 + offset + first + second
    whole = ops_between(pattern, a, c)
    assert ops_between(pattern, a, b) + ops_between(pattern, b, c) == pytest.approx(whole, rel=1e-6, abs=1e-2)
    # Midpoint rule on a fine grid; bursts and ramp corners cost at most a step's worth of error each.
    steps = 4000
    width = (c - a) / steps
    numeric = math.fsum(level_at(pattern, a + (k + 0.5) * width) for k in range(steps)) * width
    peak = max(pattern.base + pattern.amplitude, pattern.target)
    corners = 2 * ((c - a) / pattern.period + 2) if pattern.kind is Kind.BURSTY else 4
    assert whole == pytest.approx(numeric, rel=1e-3, abs=peak * width * corners + 1e-6)


# --- the workload -----------------------------------------------------------------------------------------


def _workload(seed=1, count=40, **kwargs):
    workload = Workload(seed=seed, clock=lambda: T0, origin=T0, **kwargs)
    for name, pattern in generate_volumes(count, seed=5, start=T0 - 600):
        workload.add_volume(name, pattern)
    return workload


def test_same_seed_same_samples_other_seed_other_noise():
    first = [(info, rates) for info, rates, _ in _workload(seed=1).sample(T0 + 17.0)]
    again = [(info, rates) for info, rates, _ in _workload(seed=1).sample(T0 + 17.0)]
    other = [(info, rates) for info, rates, _ in _workload(seed=2).sample(T0 + 17.0)]
    assert first == again
    assert first != other
    assert [info for info, _ in first] == [info for info, _ in other]  # same volumes, different jitter


def test_generated_volumes_are_reproducible_and_mix_every_kind():
    volumes = generate_volumes(200, seed=9)
    assert volumes == generate_volumes(200, seed=9)
    assert volumes != generate_volumes(200, seed=10)
    assert {pattern.kind for _, pattern in volumes} == set(Kind)
    assert len({name for name, _ in volumes}) == 200
    assert all(name.startswith("pvc-") for name, _ in volumes)


def test_time_scale_compresses_simulated_time_but_counters_count_per_wall_second():
    now = [T0]
    workload = Workload(scale=60.0, clock=lambda: now[0], origin=T0)
    ramp = Pattern(Kind.RAMP, base=0.0, target=6000.0, ramp_start=T0, ramp_end=T0 + 3600.0, read_fraction=0.5)
    workload.add_volume("pvc-a", ramp)
    workload.add_volume("pvc-c", Pattern(Kind.CONSTANT, base=200.0, read_fraction=0.5))
    assert workload.sim_time(T0 + 30.0) == T0 + 1800.0
    assert workload.wall_time(T0 + 1800.0) == T0 + 30.0
    # Half the simulated hour has passed after 30 wall seconds.
    assert _total(workload.rates_at("pvc-a", T0 + 30.0)) == pytest.approx(3000.0)
    first, second = workload.totals_at("pvc-c", T0 + 10.0), workload.totals_at("pvc-c", T0 + 20.0)
    assert (second.read_ops - first.read_ops) + (second.write_ops - first.write_ops) == pytest.approx(
        2000.0, abs=2
    )
    with pytest.raises(ValueError, match="positive"):
        Workload(scale=0.0)


def test_pattern_changes_apply_from_their_time_and_keep_counters_continuous():
    workload = Workload(clock=lambda: T0, origin=T0)
    workload.add_volume("pvc-x", Pattern(Kind.CONSTANT, base=100.0, read_fraction=1.0, latency_us=50.0))
    before = workload.totals_at("pvc-x", T0)
    workload.set_pattern("pvc-x", Pattern(Kind.CONSTANT, base=9000.0, read_fraction=1.0, latency_us=20.0))
    assert _total(workload.rates_at("pvc-x", T0 - 1.0)) == 100.0
    assert _total(workload.rates_at("pvc-x", T0 + 1.0)) == 9000.0
    assert workload.totals_at("pvc-x", T0) == before
    after = workload.totals_at("pvc-x", T0 + 10.0)
    assert after.read_ops - before.read_ops == pytest.approx(90_000.0, abs=1)
    assert after.read_latency_us - before.read_latency_us == pytest.approx(90_000.0 * 20.0, abs=1)
    assert workload.pattern("pvc-x", at=T0 - 5.0).base == 100.0
    with pytest.raises(ValueError, match="back in time"):
        workload.set_pattern("pvc-x", Pattern(), at=T0 - 60.0)
    with pytest.raises(KeyError, match="pvc-nope"):
        workload.set_pattern("pvc-nope", Pattern())


def test_counter_reset_removal_and_late_volumes():
    workload = Workload(clock=lambda: T0, origin=T0)
    workload.add_volume("pvc-r", Pattern(Kind.CONSTANT, base=10.0))
    workload.add_volume("pvc-late", Pattern(Kind.CONSTANT, base=10.0), since=T0 + 100.0)
    workload.add_volume("pvc-gone", Pattern(Kind.CONSTANT, base=10.0))
    assert workload.totals_at("pvc-r", T0 - 1.0).read_ops > 1_000_000  # counting since the epoch
    workload.reset_counters("pvc-r", at=T0)
    reset = workload.totals_at("pvc-r", T0 + 10.0)
    assert reset.read_ops + reset.write_ops == pytest.approx(100.0, abs=2)
    workload.remove_volume("pvc-gone", at=T0 + 50.0)
    alive = {info.name for info, _, _ in workload.sample(T0 + 60.0)}
    assert alive == {"pvc-r"}
    assert {info.name for info, _, _ in workload.sample(T0 + 120.0)} == {"pvc-r", "pvc-late"}
    assert workload.rates_at("pvc-late", T0) is None
    assert workload.totals_at("pvc-late", T0 + 100.0).read_ops == 0.0
    kept, columns = workload.columns("pvc-gone", [T0 + 40.0, T0 + 50.0, T0 + 60.0], ["iops"])
    assert (kept, columns) == ([T0 + 40.0], {"iops": [10.0]})
    with pytest.raises(ValueError, match="unknown columns"):
        workload.columns("pvc-r", [T0], ["qps"])
    with pytest.raises(ValueError, match="already exists"):
        workload.add_volume("pvc-r", Pattern())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(patterns, min_size=1, max_size=4),
    st.lists(st.floats(-3000, 3000), min_size=0, max_size=3),
    st.floats(0, 0.5),
    st.sampled_from([1.0, 60.0, 0.5]),
)
def test_batch_columns_equal_single_evaluations(segments, changes, noise, scale):
    workload = Workload(seed=11, scale=scale, clock=lambda: T0, origin=T0)
    first, *rest = [replace(pattern, noise=noise) for pattern in segments]
    workload.add_volume("pvc-b", first, since=T0 - 4000.0)
    for when, pattern in zip(sorted(changes), rest, strict=False):
        workload.set_pattern("pvc-b", pattern, at=T0 + when)
    workload.reset_counters("pvc-b", at=T0 + 3500.0)
    walls = [T0 - 4500.0 + 7.5 * k for k in range(1200)]
    wanted = [*RATE_COLUMNS, *TOTAL_COLUMNS]
    kept, columns = workload.columns("pvc-b", walls, wanted)
    assert kept == [wall for wall in walls if wall >= T0 - 4000.0]
    for index, wall in enumerate(kept):
        rates, totals = workload.rates_at("pvc-b", wall), workload.totals_at("pvc-b", wall)
        assert columns["iops"][index] == _total(rates)
        for column in RATE_COLUMNS[1:]:
            assert columns[column][index] == getattr(rates, column)
        for column in TOTAL_COLUMNS:
            assert columns[column][index] == getattr(totals, column)


# --- exposition and history -------------------------------------------------------------------------------


def test_metrics_exposition_parses_and_matches_the_patterns():
    workload = _workload()
    text = render_metrics(workload, ExportOptions(counters=True), at=T0 + 5.0).decode()
    families = {family.name: family for family in parse_text(text)}
    assert set(families) == {
        "openebs_volume_iops",
        "openebs_volume_read_iops",
        "openebs_volume_write_iops",
        "openebs_volume_latency_us",
        "volume_num_read_ops",
        "volume_num_write_ops",
        "volume_read_latency_us",
        "volume_write_latency_us",
    }
    assert {family.type for family in families.values()} == {"gauge"}
    iops = {s.labels["volume_id"]: s.value for s in families["openebs_volume_iops"].samples}
    assert len(iops) == len(workload)
    for name, value in iops.items():
        assert value == pytest.approx(_total(workload.rates_at(name, T0 + 5.0)))
    reads = {
        (s.labels["node"], s.labels["pv_name"]): s.value for s in families["volume_num_read_ops"].samples
    }
    for (node, name), value in reads.items():
        assert node == "node-1"
        assert value == workload.totals_at(name, T0 + 5.0).read_ops
        assert value == math.floor(value)


def test_metric_names_follow_the_configured_gauge_and_label():
    workload = _workload()
    options = ExportOptions(iops_metric="tier_volume_iops", volume_label="pv", counters=False)
    families = {
        family.name: family for family in parse_text(render_metrics(workload, options, at=T0).decode())
    }
    assert set(families) == {
        "tier_volume_iops",
        "tier_volume_read_iops",
        "tier_volume_write_iops",
        "tier_volume_latency_us",
    }
    assert {tuple(s.labels) for s in families["tier_volume_iops"].samples} == {("pv",)}
    only = ExportOptions(split_gauges=False)
    assert [f.name for f in parse_text(render_metrics(workload, only, at=T0).decode())] == [
        "openebs_volume_iops"
    ]


def test_history_is_openmetrics_promtool_can_read():
    workload = _workload(count=12)
    out = io.StringIO()
    start, end = T0 - 1800.0, T0
    written = write_history(
        workload, out, start=start, end=end, step=15.0, options=ExportOptions(counters=True)
    )
    text = out.getvalue()
    assert text.endswith("# EOF\n")
    families = list(parse_openmetrics(text))  # the OpenMetrics parser rejects interleaved families
    assert len(families) == 8
    assert sum(len(f.samples) for f in families) == written == 8 * len(workload) * 121
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == [f.name for f in families]
    iops = next(f for f in families if f.name == "openebs_volume_iops")
    for sample in iops.samples[::7]:
        wall = float(sample.timestamp)
        assert wall % 15.0 == 0.0
        assert start <= wall <= end
        assert sample.value == _total(workload.rates_at(sample.labels["volume_id"], wall))
    writes = next(f for f in families if f.name == "volume_num_write_ops")
    for sample in writes.samples[::7]:
        assert sample.value == workload.totals_at(sample.labels["pv_name"], float(sample.timestamp)).write_ops


def test_history_to_a_file_and_fractional_grid(tmp_path):
    workload = _workload()
    path = tmp_path / "h.om"
    with path.open("w") as out:
        written = write_history(workload, out, start=T0, end=T0 + 2.0, step=0.5, options=ExportOptions())
    stamps = sorted(
        {line.rsplit(" ", 1)[1] for line in path.read_text().splitlines() if not line.startswith("#")}
    )
    assert stamps == [
        f"{int(T0)}",
        f"{int(T0)}.500",
        f"{int(T0) + 1}",
        f"{int(T0) + 1}.500",
        f"{int(T0) + 2}",
    ]
    assert written == 4 * len(workload) * 5
    assert history_times(0.2, 1.0, 0.25) == [250, 500, 750, 1000]
    with pytest.raises(ValueError, match="before its start"):
        history_times(2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least 1ms"):
        history_times(0.0, 1.0, 0.0)


# --- the HTTP app -----------------------------------------------------------------------------------------


@pytest.fixture
async def client():
    workload = _workload()
    app = WorkloadApp(workload, ExportOptions(counters=True), step=15.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client, workload


async def test_app_serves_metrics_in_both_formats(client):
    client, workload = client
    plain = await client.get("/metrics")
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain")
    assert len(next(iter(parse_text(plain.text))).samples) == len(workload)
    accept = {"accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"}
    openmetrics = await client.get("/metrics", headers=accept)
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert len(list(parse_openmetrics(openmetrics.text))) == 8
    assert (await client.post("/metrics")).status_code == 405


async def test_app_answers_queries_by_get_and_post_and_errors_like_prometheus(client):
    client, workload = client
    query = "count_over_time(openebs_volume_iops[1h])"
    by_get = await client.get("/api/v1/query", params={"query": query, "time": str(T0)})
    by_post = await client.post("/api/v1/query", data={"query": query, "time": str(T0)})
    assert by_get.status_code == by_post.status_code == 200
    assert by_get.json() == by_post.json()
    result = by_get.json()["data"]["result"]
    assert len(result) == len(workload)
    assert {item["value"][1] for item in result} == {"241"}
    bad = await client.post("/api/v1/query", data={"query": "rate(x[5m]) * 2"})
    assert bad.status_code == 400
    assert bad.json()["status"] == "error"
    assert bad.json()["errorType"] == "bad_data"
    assert (await client.get("/api/v1/query")).json()["errorType"] == "bad_data"
    assert (await client.delete("/api/v1/query")).status_code == 405
    too_big = await client.post(
        "/api/v1/query",
        content=b"query=" + b"x" * (1 << 20),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413
    assert (await client.get("/-/ready")).status_code == 200
    assert (await client.get("/nope")).status_code == 404


async def test_serve_workload_reports_its_real_port(nursery):
    workload = _workload()
    url = await nursery.start(lambda task_status: serve_workload(workload, task_status=task_status))
    assert not url.endswith(":0")
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert "openebs_volume_iops" in response.text
