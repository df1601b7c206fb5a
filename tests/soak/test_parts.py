"""The soak's pure parts: the seeded schedule and loads, what it reads from operators, and its verdict."""

from __future__ import annotations

import json

import pytest

from couchestor.sim.workload.patterns import level_at
from couchestor.soak import observe
from couchestor.soak.report import RSS_MIN_SPAN, FaultRecord, Report, RssSegment, problems, render
from couchestor.soak.schedule import DAY, MONTH, FaultKind, make_loads, make_schedule


def test_schedule_is_a_function_of_the_seed_and_covers_every_kind():
    first = make_schedule(7, start=60, end=1660, count=16)
    assert first == make_schedule(7, start=60, end=1660, count=16)
    assert first != make_schedule(8, start=60, end=1660, count=16)
    assert {f.kind for f in first[: len(FaultKind)]} == set(FaultKind)
    slot = 1600 / 16
    for i, fault in enumerate(first):
        assert 60 + i * slot <= fault.at <= 60 + i * slot + slot / 3 + 0.1
        assert fault.hold <= slot * (0.75 if fault.kind is FaultKind.SLOW_REBUILD else 0.5)


def test_schedule_refuses_too_few_faults_and_an_empty_window():
    with pytest.raises(ValueError, match="cannot cover"):
        make_schedule(1, start=0, end=100, count=2)
    with pytest.raises(ValueError, match="empty"):
        make_schedule(1, start=100, end=100, count=len(FaultKind))


def test_loads_swing_by_day_and_surge_at_month_end():
    origin = 1_800_000_000.0
    month_end = origin + 10 * DAY
    loads = {x.name.split("-")[0]: x.pattern for x in make_loads(3, 8, origin=origin, month_end_at=month_end)}
    day = [level_at(loads["day"], origin + h * 3600) for h in range(24)]
    assert min(day) < 500 < 5000 < max(day)  # crosses both watermarks every day
    month = loads["month"]
    assert level_at(month, month_end - 3600) == 300
    assert level_at(month, month_end + 3600) == 8300
    assert level_at(month, month_end + 4 * DAY) == 300
    assert level_at(month, month_end + MONTH + 3600) == 8300  # and again a month later


METRICS = """\
# HELP storage_operator_migrations_total Migrations finished, by outcome.
# TYPE storage_operator_migrations_total counter
storage_operator_migrations_total{status="success"} 3.0
storage_operator_migrations_total{status="aborted"} 1.0
# HELP storage_operator_migrations_created Migrations finished, by outcome.
# TYPE storage_operator_migrations_created gauge
storage_operator_migrations_created{status="success"} 1.7e9
# HELP storage_operator_api_writes_total Writes.
# TYPE storage_operator_api_writes_total counter
storage_operator_api_writes_total{kind="Event"} 10.0
# HELP storage_operator_reconcile_total Reconcile passes completed.
# TYPE storage_operator_reconcile_total counter
storage_operator_reconcile_total 99.0
"""


def test_counters_sum_process_lifetimes_and_ignore_other_families():
    counters = observe.Counters()
    counters.update("a.1", observe.parse_counters(METRICS))
    counters.update("a.1", observe.parse_counters(METRICS.replace("3.0", "4.0")))  # same life, later scrape
    counters.update("b.1", observe.parse_counters(METRICS))
    assert counters.by_label("storage_operator_migrations", "status") == {"success": 7.0, "aborted": 2.0}
    assert counters.total("storage_operator_api_writes", kind="Event") == 20.0
    assert counters.total("storage_operator_reconcile") == 0.0


def _line(ts: str, msg: str) -> str:
    return json.dumps({"ts": ts, "level": "info", "logger": "couchestor.leader", "msg": msg})


def test_leadership_intervals_from_logs_end_at_release_or_death(tmp_path):
    log = tmp_path / "a.log"
    log.write_text(
        "\n".join(
            [
                _line("2026-12-06T10:00:00.000Z", "acquired leadership of Lease kube-system/l as a"),
                _line("2026-12-06T10:00:05.000Z", "Volume pvc-x heat score: 6500.0"),
                _line("2026-12-06T10:00:10.000Z", "released leadership of Lease kube-system/l as a"),
                "Traceback (most recent call last):",
                _line("2026-12-06T10:00:20.000Z", "acquired leadership of Lease kube-system/l as a"),
            ]
        )
    )
    lines = list(observe.read_log(log))
    base = lines[0].at
    intervals = observe.leadership(lines, died_at=base + 30)
    assert [(a - base, b - base) for a, b in intervals] == [(0, 10), (20, 30)]
    assert [t - base for t in observe.decisions(lines)] == [5]


def test_longest_overlap():
    assert observe.longest_overlap([(0, 10)], [(10, 20)]) == 0.0
    assert observe.longest_overlap([(0, 10), (30, 40)], [(8, 20), (32, 33)]) == 2.0
    assert observe.longest_overlap([(0, 10)], [(20, 30)]) == 0.0


def test_slope_of_a_line_and_of_too_little():
    assert observe.slope([(0, 1.0), (10, 3.0), (20, 5.0)]) == pytest.approx(0.2)
    assert observe.slope([(5, 1.0)]) is None
    assert observe.slope([(5, 1.0), (5, 2.0)]) is None


def test_rss_of_this_process_is_read_and_of_no_process_is_none():
    import os

    assert (observe.rss_bytes(os.getpid()) or 0) > 1_000_000
    assert observe.rss_bytes(2**22 + 12345) is None


def _passing() -> Report:
    report = Report(seed=1, backend="mayastor-crd", scale=720, volumes=8, wall_seconds=600)
    report.migrations_started = 5
    report.rss = [RssSegment("soak-a", 1, RSS_MIN_SPAN + 1, 80.0, 80.5, 2.0)]
    report.faults = [
        FaultRecord("etcd-restart", 100.0, 3.0, 104.0, store_synced_after=2.5, decision_after=4.0)
    ]
    return report


def test_a_clean_run_passes_and_says_so():
    report = _passing()
    assert problems(report) == []
    assert "PASS" in render(report)
    assert "5.0 simulated days" in render(report)


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda r: r.violations.append("t=1s vol-x: lost its last Synced replica"), "invariant"),
        (lambda r: setattr(r, "migrations_started", 0), "exercised nothing"),
        (lambda r: r.stale_intents_at_end.append("vol-x"), "older than their timeout"),
        (lambda r: r.intents_at_end.append("vol-x"), "intents left"),
        (lambda r: r.cordons_at_end.append("pool pool-hot-1"), "cordons left"),
        (lambda r: setattr(r, "leader_overlap_seconds", 0.2), "both believed they led"),
        (lambda r: setattr(r.rss[0], "slope_mib_per_hour", 99.0), "grew 99.0 MiB/h in the second half"),
        (lambda r: setattr(r.rss[0], "span", 10.0), "RSS slope not measured"),
        (lambda r: setattr(r.faults[0], "store_synced_after", None), "never caught up"),
        (lambda r: r.errors.append("operator soak-a exited by itself"), "exited by itself"),
    ],
)
def test_each_failed_check_is_reported(spoil, expected):
    report = _passing()
    spoil(report)
    found = problems(report)
    assert len(found) == 1
    assert expected in found[0]
    assert "FAIL" in render(report)


def test_a_short_run_may_leave_rss_unjudged_but_never_over_its_bound():
    report = _passing()
    report.rss_required = False
    report.rss[0].span = 10.0  # no operator led long enough
    assert problems(report) == []
    report.rss[0].span = 500.0
    report.rss[0].slope_mib_per_hour = 99.0  # judged: the bound holds
    assert any("grew 99.0 MiB/h" in p for p in problems(report))


def test_soak_without_assets_says_how_to_enable_them_in_one_line(monkeypatch, capsys):
    from couchestor.cli import main

    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    assert main(["soak", "--duration", "5m"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "KUBEBUILDER_ASSETS" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backend", "ceph"], "--backend must be one of mayastor-crd, mayastor-rest"),
        (["--kinds", "compaction,meteor"], "'meteor' is not a valid"),
        (["--duration", "3m", "--warmup", "2m", "--quiet", "1m"], "--duration must be longer"),
        (["--kinds", "compaction", "--faults", "0"], "--faults must be at least"),
        (["--duration", "soon"], "--duration:"),
    ],
)
def test_bad_soak_options_are_one_line_errors(monkeypatch, capsys, args, expected):
    from couchestor.cli import main
    from couchestor.sim.controlplane import find_assets

    if find_assets() is None:
        pytest.skip("the options are checked after the assets (KUBEBUILDER_ASSETS unset)")
    assert main(["soak", *args]) == 2
    assert expected in capsys.readouterr().err


def test_rss_is_judged_on_the_second_half_after_warm_up(tmp_path):
    from couchestor.soak.run import _Life, _rss_segment

    def life(curve) -> _Life:
        lived = _Life("soak-a", 1, 1, started=0.0, log_path=tmp_path / "x.log")
        lived.rss = [(float(t), curve(t)) for t in range(0, 1200, 2)]
        return lived

    settling = _rss_segment(life(lambda t: 50 + min(t, 500) / 100), warmup=120)  # +3.8 MiB, then flat
    assert settling.slope_mib_per_hour == pytest.approx(0.0, abs=1e-6)
    assert settling.slope_all_mib_per_hour is not None
    assert settling.slope_all_mib_per_hour > 10
    leaking = _rss_segment(life(lambda t: 50 + t / 360), warmup=120)  # 10 MiB per hour, steadily
    assert leaking.slope_mib_per_hour == pytest.approx(10.0)
    assert leaking.span == pytest.approx(1078.0)


def test_rss_warm_up_counts_from_when_the_lifetime_began_to_lead(tmp_path):
    from couchestor.soak.run import _Life, _rss_segment

    lived = _Life("soak-a", 1, 1, started=0.0, log_path=tmp_path / "x.log")
    # Standby at 49 MiB for 800 s, then leads: +3 MiB over its first minute, flat afterwards.
    lived.rss = [(float(t), 49.0 + (0 if t < 800 else min(t - 800, 60) / 20)) for t in range(0, 1200, 2)]
    from_start = _rss_segment(lived, warmup=120)
    from_leading = _rss_segment(lived, warmup=120, since=800.0)
    assert from_start.slope_mib_per_hour is not None
    assert from_start.slope_mib_per_hour > 10  # the step of becoming leader, taken for growth
    assert from_leading.slope_mib_per_hour == pytest.approx(0.0, abs=1e-6)
