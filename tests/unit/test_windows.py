"""Maintenance windows: the cron parser, windows in IANA time zones across daylight-saving changes, blackouts,
"may a move start now" and "when may the next one", each held to a brute-force minute-by-minute oracle."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings, strategies as st

from couchestor.tiering.windows import (
    Schedule,
    WindowError,
    compile_blackout,
    compile_window,
    load_zone,
    parse_cron,
)

MINUTE = timedelta(minutes=1)
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- cron ---------------------------------------------------------------------------------------------------


def test_cron_fields_lists_ranges_steps_and_names():
    cron = parse_cron("*/15 8-18/2 1,15 JAN-mar mon-FRI")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {8, 10, 12, 14, 16, 18}
    assert cron.days_of_month == {1, 15}
    assert cron.months == {1, 2, 3}
    assert cron.days_of_week == {1, 2, 3, 4, 5}
    assert parse_cron("5/20 * * * 7").minutes == {5, 25, 45}
    assert parse_cron("0 0 * * 7").days_of_week == {0}  # 7 is Sunday, as 0 is
    assert parse_cron("@daily").minutes == {0}
    assert parse_cron("@weekly").days_of_week == {0}
    assert parse_cron("@hourly").hours == set(range(24))


def test_day_fields_combine_as_in_vixie_cron():
    both = parse_cron("0 3 1 * MON")  # restricted twice: the 1st OR a Monday
    assert both.matches(datetime(2026, 6, 1, 3, 0))  # a Monday and the 1st
    assert both.matches(datetime(2026, 6, 8, 3, 0))  # a Monday
    assert both.matches(datetime(2026, 7, 1, 3, 0))  # a Wednesday, the 1st
    assert not both.matches(datetime(2026, 7, 2, 3, 0))
    stepped = parse_cron("0 3 */2 * MON")  # a day field beginning with * does not restrict: AND
    assert stepped.matches(datetime(2026, 6, 1, 3, 0))
    assert not stepped.matches(datetime(2026, 6, 8, 3, 0))  # Monday, but an even day


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 22 * *", "expected 5 fields"),
        ("60 * * * *", "minute 60 is outside 0-59"),
        ("0 18-8 * * *", "hour range '18-8' runs backwards"),
        ("*/0 * * * *", "step must be at least 1"),
        ("0 0 * * FUNDAY", "day-of-week 'FUNDAY' is not 0-7 or a name"),
        ("0 0 30 FEB *", "day-of-month 30 never occurs in FEB"),
        ("0 0 * * 1,,2", "is not a value, range"),
        ("@fortnightly", "unknown macro"),
    ],
)
def test_cron_errors_say_what_is_wrong(text, message):
    with pytest.raises(WindowError) as error:
        parse_cron(text)
    assert message in str(error.value)
    assert repr(text) in str(error.value)


@given(
    st.lists(st.frozensets(st.integers(0, 59), min_size=1), min_size=1, max_size=1),
    st.frozensets(st.integers(0, 23), min_size=1),
    st.frozensets(st.integers(1, 28), min_size=1),
    st.frozensets(st.integers(1, 12), min_size=1),
)
def test_any_list_of_values_parses_back_to_itself(minutes, hours, days, months):
    text = " ".join(",".join(map(str, sorted(s))) for s in (minutes[0], hours, days, months)) + " *"
    cron = parse_cron(text)
    assert (cron.minutes, cron.hours, cron.days_of_month, cron.months) == (minutes[0], hours, days, months)


# --- windows against an oracle ------------------------------------------------------------------------------

crons = st.sampled_from(
    [
        "30 2 * * *",
        "0 3 * * *",
        "0 1 * * *",
        "15 0-3 * * *",
        "*/20 2 * * *",
        "0 22 * * MON-FRI",
        "0 0 1,15 * *",
        "45 23 * * SUN",
        "0 2 8-14 3 SUN",
        "30 0 * * *",
        "*/10 * * * *",
        "@hourly",
    ]
)
durations = st.sampled_from(["5m", "30m", "1h", "2h", "90m", "1d"])
# The daylight-saving changes of 2026 in the zones above, each with its zone, and plain days anywhere.
_CHANGES = [
    ("America/New_York", utc(2026, 3, 8, 7)),  # springs forward
    ("America/New_York", utc(2026, 11, 1, 6)),  # falls back
    ("Europe/Paris", utc(2026, 3, 29, 1)),  # springs forward
    ("Europe/Paris", utc(2026, 10, 25, 1)),  # falls back
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),  # falls back half an hour
    ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),  # springs forward half an hour
    ("America/Santiago", utc(2026, 4, 5, 3)),  # falls back at midnight
    ("America/Santiago", utc(2026, 9, 6, 4)),  # springs forward at midnight
]
zoned_anchors = st.one_of(
    st.sampled_from(_CHANGES),
    st.tuples(st.sampled_from(ZONES), st.just(utc(2026, 6, 15, 12))),
)
offsets = st.integers(-36 * 60, 36 * 60).map(lambda m: timedelta(minutes=m))


def _local(moment: datetime, zone_name: str) -> datetime:
    return moment.astimezone(load_zone(zone_name)).replace(tzinfo=None)


def oracle_starts(cron_text: str, zone_name: str, after: datetime, until: datetime) -> set[datetime]:
    """Window openings found minute by minute: a minute whose wall-clock time fires the cron and is that
    time's first occurrence, or the first minute after a forward jump of the clocks that skipped a firing."""
    cron = parse_cron(cron_text)
    zone = load_zone(zone_name)
    found = set()
    moment = after.replace(second=0, microsecond=0) + MINUTE
    while moment <= until:
        wall = _local(moment, zone_name)
        earlier = moment - MINUTE
        first_occurrence = all(
            _local(moment - k * MINUTE * 30, zone_name) < wall for k in range(1, 7)
        )  # the wall clock did not show this time in the last 3 hours
        if cron.matches(wall) and first_occurrence:
            found.add(moment)
        jump = wall - _local(earlier, zone_name)
        if jump > MINUTE:  # the clocks jumped forward: wall times in between never happened
            skipped = _local(earlier, zone_name) + MINUTE
            while skipped < wall:
                if cron.matches(skipped):
                    found.add(moment)
                skipped += MINUTE
        moment += MINUTE
    del zone
    return found


@settings(max_examples=150, deadline=None)
@given(crons, zoned_anchors, offsets, st.integers(60, 2 * 24 * 60))
def test_window_openings_match_the_oracle(cron_text, zoned, offset, span_minutes):
    zone_name, anchor = zoned
    after = anchor + offset
    until = after + timedelta(minutes=span_minutes)
    window = compile_window(cron_text, "1h", zone_name)
    got = list(window.starts(after, until))
    assert got == sorted(set(got)), "openings in order, each once"
    assert set(got) == oracle_starts(cron_text, zone_name, after, until)


@settings(max_examples=150, deadline=None)
@given(crons, durations, zoned_anchors, st.integers(-6 * 60, 6 * 60), st.booleans())
def test_allows_matches_the_oracle(cron_text, duration, zoned, offset_minutes, with_blackout):
    zone_name, anchor = zoned
    offset = timedelta(minutes=offset_minutes)
    moment = (anchor + offset).replace(second=0)
    window = compile_window(cron_text, duration, zone_name)
    blackouts = (compile_blackout("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),)
    if with_blackout:
        blackouts = (
            compile_blackout(
                (moment - timedelta(minutes=40)).isoformat(), (moment + timedelta(minutes=20)).isoformat()
            ),
        )
    schedule = Schedule((window,), blackouts)
    opened = oracle_starts(cron_text, zone_name, moment - window.duration, moment)
    assert schedule.allows(moment) == (bool(opened) and not with_blackout)


@settings(max_examples=40, deadline=None)
@given(crons, durations, zoned_anchors, offsets, st.integers(0, 600), st.integers(0, 600))
def test_next_opening_is_the_first_allowed_minute(
    cron_text, duration, zoned, offset, blackout_in, blackout_len
):
    zone_name, anchor = zoned
    moment = (anchor + offset).replace(second=0)
    start = moment + timedelta(minutes=blackout_in)
    blackout = compile_blackout(start.isoformat(), (start + timedelta(minutes=blackout_len + 1)).isoformat())
    schedule = Schedule((compile_window(cron_text, duration, zone_name),), (blackout,))
    opening = schedule.next_opening(moment)
    assert opening is not None
    assert opening >= moment
    assert schedule.allows(opening)
    assume(opening - moment <= timedelta(days=2))
    probe = moment
    while probe < opening:
        assert not schedule.allows(probe), probe
        probe += MINUTE


# --- daylight saving, spelled out ----------------------------------------------------------------------------


def test_a_start_the_clocks_skip_opens_at_the_jump_for_the_full_duration():
    # Paris, 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 never happens.
    schedule = Schedule((compile_window("30 2 * * *", "2h", "Europe/Paris"),))
    assert schedule.next_opening(utc(2026, 3, 28, 23)) == utc(2026, 3, 29, 1, 0)
    assert schedule.allows(utc(2026, 3, 29, 2, 59))
    assert not schedule.allows(utc(2026, 3, 29, 3, 0))
    # The next day it opens at 02:30 CEST again.
    assert schedule.next_opening(utc(2026, 3, 29, 3)) == utc(2026, 3, 30, 0, 30)


def test_a_start_the_clocks_repeat_opens_once_and_lasts_elapsed_time():
    # Paris, 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice.
    window = compile_window("30 2 * * *", "2h", "Europe/Paris")
    day = list(window.starts(utc(2026, 10, 24, 12), utc(2026, 10, 25, 12)))
    assert day == [utc(2026, 10, 25, 0, 30)]  # the first 02:30 (CEST)
    schedule = Schedule((window,))
    assert schedule.allows(utc(2026, 10, 25, 2, 29))  # 2 elapsed hours, to the second 02:30 (CET)
    assert not schedule.allows(utc(2026, 10, 25, 2, 30))


def test_half_hour_daylight_saving_and_half_hour_offsets():
    # Lord Howe springs forward by 30 minutes at 02:00 local on 4 October 2026: 02:15 never happens.
    lord_howe = compile_window("15 2 * * *", "1h", "Australia/Lord_Howe")
    assert next(lord_howe.starts(utc(2026, 10, 3, 12), utc(2026, 10, 4, 12))) == utc(2026, 10, 3, 15, 30)
    kolkata = compile_window("0 9 * * *", "1h", "Asia/Kolkata")
    assert next(kolkata.starts(utc(2026, 6, 1), utc(2026, 6, 2))) == utc(2026, 6, 1, 3, 30)


# --- blackouts, zones, horizon ------------------------------------------------------------------------------


def test_blackout_days_are_whole_local_days_and_win_over_windows():
    blackout = compile_blackout("2026-12-24", "2026-12-26", "Europe/Paris", "holidays")
    assert blackout.start == utc(2026, 12, 23, 23)
    assert blackout.end == utc(2026, 12, 26, 23)  # the 26th is included
    nightly = Schedule((compile_window("0 22 * * *", "6h", "Europe/Paris"),), (blackout,))
    assert not nightly.allows(utc(2026, 12, 24, 22))
    # The window that opened on the 26th at 22:00 is still open when the blackout ends at midnight.
    assert nightly.next_opening(utc(2026, 12, 24, 12)) == utc(2026, 12, 26, 23)


def test_no_windows_means_any_time_but_blackouts():
    blackout = compile_blackout("2026-05-01T08:00:00+02:00", "2026-05-01T18:00:00+02:00")
    schedule = Schedule((), (blackout,))
    assert schedule.allows(utc(2026, 5, 1, 5, 59))
    assert not schedule.allows(utc(2026, 5, 1, 6))
    assert schedule.next_opening(utc(2026, 5, 1, 9)) == utc(2026, 5, 1, 16)
    assert Schedule().allows(utc(2026, 5, 1, 9))


def test_a_window_only_inside_blackouts_has_no_opening_within_the_horizon():
    schedule = Schedule(
        (compile_window("0 12 24 DEC *", "1h"),),
        (compile_blackout("2026-12-01", "2027-12-31"),),
    )
    assert schedule.next_opening(utc(2026, 12, 1), horizon=timedelta(days=400)) is None
    leap = Schedule((compile_window("0 0 29 FEB *", "1h"),))
    assert leap.next_opening(utc(2026, 3, 1)) == utc(2028, 2, 29)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-12-26", "2026-12-24", "is not after its start"),
        ("2026-02-30", "2026-03-01", "is not a real date"),
        ("tomorrow", "2026-03-01", "expected a day (YYYY-MM-DD) or an RFC 3339 instant"),
    ],
)
def test_blackout_errors(start, end, message):
    with pytest.raises(WindowError) as error:
        compile_blackout(start, end)
    assert message in str(error.value)


def test_an_unknown_zone_is_an_error_and_a_missing_database_says_so(monkeypatch):
    with pytest.raises(WindowError) as unknown:
        compile_window("0 1 * * *", "1h", "Mars/Olympus_Mons")
    assert "unknown time zone 'Mars/Olympus_Mons'" in str(unknown.value)

    def not_found(name):
        raise zoneinfo.ZoneInfoNotFoundError(name)

    monkeypatch.setattr(zoneinfo, "ZoneInfo", not_found)
    monkeypatch.setattr(zoneinfo, "available_timezones", set)
    with pytest.raises(WindowError) as missing:
        load_zone("Europe/Paris")
    assert "no time-zone database is installed" in str(missing.value)
    assert load_zone("UTC") is UTC  # UTC needs no database


def test_bad_duration_is_an_error():
    with pytest.raises(WindowError) as error:
        compile_window("0 1 * * *", "6 hours")
    assert "invalid duration '6 hours'" in str(error.value)
