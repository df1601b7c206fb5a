"""Policy durations and RFC 3339 timestamps: what is accepted, what is refused and how it reads back."""

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, strategies as st

from couchestor.durations import format_duration, format_time, parse_duration, parse_time
from couchestor.tiering.views import LAST_MIGRATION_ANNOTATION, build_volume_views
from k8s_schemas.core import PersistentVolume


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 15 * 60),
        ("1h", 3600),
        ("24h", 86_400),
        ("7d", 7 * 86_400),
        ("1h30m", 5400),
        ("30m1h", 5400),
        ("1d2h3m4s", 86_400 + 2 * 3600 + 3 * 60 + 4),
        ("0h5m", 300),
    ],
)
def test_parse_duration_accepts_whole_units_alone_or_combined(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", " ", "0s", "0h0m", "5", "1.5h", "-1h", "+1h", "1H", "1w", "1hour", "h", "1h ", "1 h"]
)
def test_parse_duration_refuses_with_a_message_saying_what_is_accepted(text):
    with pytest.raises(ValueError, match=r"units d, h, m or s") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


def test_parse_duration_refuses_non_strings():
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(3600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.34, "0.3s"),
        (2.5, "2.5s"),
        (42, "42s"),
        (252, "4m12s"),
        (3600, "1h"),
        (3605, "1h5s"),
        (93_784, "1d2h3m4s"),
        (59.96, "1m"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration_is_compact(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_refuses_non_finite_values():
    with pytest.raises(ValueError, match="non-finite"):
        format_duration(float("nan"))


@given(st.integers(min_value=1, max_value=10**9))
def test_formatted_whole_seconds_parse_back(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_parts_add_up_in_any_order(hours, minutes):
    assert (
        parse_duration(f"{hours}h{minutes}m")
        == parse_duration(f"{minutes}m{hours}h")
        == hours * 3600 + minutes * 60
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-01T10:00:00Z", datetime(2026, 2, 1, 10, tzinfo=UTC)),
        ("2026-02-01t10:00:00z", datetime(2026, 2, 1, 10, tzinfo=UTC)),
        ("2026-02-01T10:00:00.5Z", datetime(2026, 2, 1, 10, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-02-01T10:00:00.123456789Z", datetime(2026, 2, 1, 10, 0, 0, 123_456, tzinfo=UTC)),
        ("2026-02-01T12:00:00+02:00", datetime(2026, 2, 1, 10, tzinfo=UTC)),
        # RFC 3339 section 5.6 lets a space stand for the "T".
        ("2026-02-01 13:00:00Z", datetime(2026, 2, 1, 13, tzinfo=UTC)),
        ("2026-02-01 15:00:00.25+02:00", datetime(2026, 2, 1, 13, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_rfc3339_into_utc(text, expected):
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-02-01",
        "2026-02-01T10:00:00",
        "2026-02-01 10:00:00",
        "2026-02-01  10:00:00Z",
        " 2026-02-01T10:00:00Z",
        "2026-02-30T10:00:00Z",
        "yesterday",
    ],
)
def test_parse_time_refuses_anything_else(text):
    with pytest.raises(ValueError, match="timestamp"):
        parse_time(text)


def test_format_time_writes_utc_seconds_with_z():
    moment = datetime(2026, 2, 1, 12, 0, 7, 900_000, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-02-01T10:00:07Z"


def test_format_time_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 2, 1, 10))


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)))
def test_timestamps_round_trip_to_the_second(moment):
    assert parse_time(format_time(moment)) == moment.replace(microsecond=0)


def test_a_last_migration_written_with_a_space_counts_for_the_cooldown():
    """The PV annotation the decisions read: a space-separated timestamp is a migration, not "never migrated"."""
    pv = msgspec.convert(
        {
            "metadata": {
                "name": "pvc-a",
                "annotations": {LAST_MIGRATION_ANNOTATION: "2026-02-01 13:00:00Z"},
            },
            "spec": {"storageClassName": "mayastor"},
        },
        PersistentVolume,
    )
    (view,) = build_volume_views([pv], [], [])
    assert view.last_migration == datetime(2026, 2, 1, 13, tzinfo=UTC)
