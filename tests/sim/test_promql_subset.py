"""The PromQL subset: parsing, errors, evaluation semantics and the /api/v1/query answer format."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, strategies as st

from couchestor.sim.promql import (
    Add,
    Aggregation,
    ExecutionError,
    Function,
    Matcher,
    PromQLError,
    Selector,
    evaluate,
    extrapolated_rate,
    form_params,
    format_value,
    parse,
    parse_duration_ms,
    query_response,
)

HOUR = 3_600_000
NOW = 1_800_000_000_000  # ms


class ListSource:
    """Series given as labels -> samples; select filters like a TSDB would."""

    def __init__(self, series):
        self.series = series

    def select(self, matchers, start_ms, end_ms):
        for labels, samples in self.series:
            if all(m.matches(labels) for m in matchers):
                yield labels, [(t, v) for t, v in samples if start_ms <= t <= end_ms]


def name(metric):
    return Matcher("__name__", "=", metric)


# --- parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        (
            "avg_over_time(openebs_volume_iops[1h])",
            Function("avg_over_time", Selector((name("openebs_volume_iops"),), HOUR)),
        ),
        (
            'sum by (volume_id) (avg_over_time(m{job="a", x!~`b.*`,}[1h30m]))',
            Aggregation(
                "sum",
                ("volume_id",),
                Function(
                    "avg_over_time",
                    Selector((name("m"), Matcher("job", "=", "a"), Matcher("x", "!~", "b.*")), 90 * 60_000),
                ),
            ),
        ),
        (
            "max(count_over_time({__name__='m', pv_name=~\"pvc-.+\"}[90s])) by (pv_name, node)",
            Aggregation(
                "max",
                ("pv_name", "node"),
                Function(
                    "count_over_time",
                    Selector((Matcher("__name__", "=", "m"), Matcher("pv_name", "=~", "pvc-.+")), 90_000),
                ),
            ),
        ),
        (
            "sum by (pv_name) (rate(r[5m]) + rate(w[5m]))",
            Aggregation(
                "sum",
                ("pv_name",),
                Add(
                    Function("rate", Selector((name("r"),), 300_000)),
                    Function("rate", Selector((name("w"),), 300_000)),
                ),
            ),
        ),
        ("  ( rate( a:b_c [ 500ms ] ) )  ", Function("rate", Selector((name("a:b_c"),), 500))),
        (
            "count by () (rate(x[1d]))",
            Aggregation("count", (), Function("rate", Selector((name("x"),), 86_400_000))),
        ),
    ],
)
def test_supported_queries_parse(text, tree):
    assert parse(text) == tree


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("avg_over_time(m[1h]", 19, "expected ')'"),
        ("rate(m[5m]) * 2", 12, "only the + operator"),
        ("irate(m[5m])", 0, "unsupported function 'irate'"),
        ("m", 0, "unsupported expression"),
        ("rate(m)", 6, "expected a range"),
        ("rate(m[5x])", 8, "invalid duration unit"),
        ("rate(m[0s])", 7, "longer than zero"),
        ("rate(m[5m:1m])", 9, "subqueries"),
        ("rate(m[5m] offset 1m)", 11, "offset"),
        ('rate({job=""}[5m])', 5, "non-empty matcher"),
        ('rate(m{job~"a"}[5m])', 10, "matcher operator"),
        ('rate(m{job="a}[5m])', 11, "unterminated"),
        ('rate(m{job=~"("}[5m])', 12, "invalid regular expression"),
        ('rate(m{job="\\q"}[5m])', 12, "unknown escape"),
        ("sum without (a) (rate(m[5m]))", 4, "without"),
        ("sum by (a) (rate(m[5m])) by (b)", 25, "one by"),
        ("sum by (a:b) (rate(m[5m]))", 8, "invalid label name"),
        ("rate(m[5m]) rate(m[5m])", 12, "after the expression"),
        ("", 0, "expected an aggregation"),
    ],
)
def test_unsupported_or_malformed_queries_say_where_and_why(text, position, words):
    with pytest.raises(PromQLError) as caught:
        parse(text)
    assert words in caught.value.message
    assert caught.value.position == position


def test_string_escapes_and_durations():
    tree = parse("rate(m{a=\"q\\\"\\n\\u00e9\\x41\", b='it\\'s', c=`raw\\n`}[1w2d])")
    assert [m.value for m in tree.selector.matchers[1:]] == ['q"\néA', "it's", "raw\\n"]
    assert tree.selector.range_ms == 9 * 86_400_000
    assert parse_duration_ms("1h30m") == 90 * 60_000
    assert parse_duration_ms("1y") == 365 * 86_400_000
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms("1h ")


# --- evaluation -------------------------------------------------------------------------------------------


def _gauge(labels, values, step=15_000, end=NOW):
    """A series whose last sample is at ``end``."""
    count = len(values)
    return labels, [(end - (count - 1 - k) * step, v) for k, v in enumerate(values)]


def _vector(text, series, at=NOW):
    return {
        tuple(sorted(labels.items())): value
        for labels, value in evaluate(parse(text), ListSource(series), at)
    }


def test_ranges_include_both_ends_and_functions_drop_the_name():
    values = [float(v) for v in range(10)]  # 9 intervals of 15 s = 135 s
    series = [_gauge({"__name__": "m", "v": "a"}, values)]
    assert _vector("count_over_time(m[135s])", series) == {(("v", "a"),): 10.0}  # first sample at t - 135 s
    assert _vector("count_over_time(m[134s])", series) == {(("v", "a"),): 9.0}
    assert _vector("avg_over_time(m[135s])", series) == {(("v", "a"),): math.fsum(values) / 10}
    assert _vector("avg_over_time(m[1m])", series) == {(("v", "a"),): math.fsum(values[-5:]) / 5}
    assert _vector("avg_over_time(m[1m])", series, at=NOW - 1000 * 3600) == {}  # no samples, no series


def test_label_matchers():
    series = [
        _gauge({"__name__": "m", "pv": "pvc-1", "node": "n1"}, [1.0]),
        _gauge({"__name__": "m", "pv": "pvc-2", "node": "n2"}, [2.0]),
        _gauge({"__name__": "m", "pv": "xpvc-3"}, [3.0]),
        _gauge({"__name__": "other", "pv": "pvc-4"}, [4.0]),
    ]

    def pvs(text):
        return sorted(dict(key)["pv"] for key in _vector(text, series))

    assert pvs('count_over_time(m{pv=~"pvc-.*"}[1m])') == ["pvc-1", "pvc-2"]  # anchored
    assert pvs('count_over_time(m{pv!~"pvc-1|xpvc-3"}[1m])') == ["pvc-2"]
    assert pvs('count_over_time(m{node=""}[1m])') == ["xpvc-3"]  # missing label matches ""
    assert pvs('count_over_time(m{node!="n1"}[1m])') == ["pvc-2", "xpvc-3"]
    assert pvs('count_over_time({__name__=~"m|other", pv=~".*4"}[1m])') == ["pvc-4"]


def test_rate_of_a_steady_counter_is_its_slope_wherever_the_samples_sit():
    slope = 250.0  # per second
    for offset in (0, 3_000, 7_500, 14_999):
        samples = [(t, slope * (t / 1000 - 1e9)) for t in range(NOW - HOUR + offset, NOW + 1, 15_000)]
        assert extrapolated_rate(samples, NOW - HOUR, NOW) == pytest.approx(slope, rel=1e-9)


def test_rate_handles_counter_resets_and_does_not_extrapolate_below_zero():
    # +10 per 10 s, reset to 0 in the middle: the increase keeps counting across the reset.
    before = [(NOW - 60_000 + k * 10_000, 1000.0 + 10.0 * k) for k in range(4)]  # 1000..1030
    after = [(NOW - 20_000 + k * 10_000, 5.0 + 10.0 * k) for k in range(3)]  # 5..25
    samples = before + after
    increase = (1030.0 - 1000.0) + 25.0  # both runs' growth (the reset adds back its last value)
    assert extrapolated_rate(samples, NOW - 60_000, NOW) == pytest.approx(increase / 60.0)
    # A counter that started 2 s before its first sample: extrapolating 9 s back would go below zero.
    young = [(NOW - 50_000 + k * 10_000, 2.0 + 1.0 * k * 10) for k in range(6)]  # 1/s from 2
    rate = extrapolated_rate(young, NOW - 59_000, NOW)
    assert rate == pytest.approx((52.0 - 2.0) * (50 + 2) / 50 / 59)
    assert extrapolated_rate(young[:1], NOW - 59_000, NOW) is None


def test_rate_extrapolates_only_half_an_interval_towards_a_far_range_end():
    samples = [(NOW - 30_000 + k * 10_000, 100.0 + 10.0 * k) for k in range(4)]  # 1/s, the last 30 s only
    # Start is 30 s away (> 1.1 intervals): extrapolate 5 s; end is exact.
    assert extrapolated_rate(samples, NOW - 60_000, NOW) == pytest.approx(30.0 * (30 + 5) / 30 / 60)


def test_aggregations_group_by_their_labels():
    series = [
        _gauge({"__name__": "m", "pv": "a", "node": "n1"}, [1.0]),
        _gauge({"__name__": "m", "pv": "a", "node": "n2"}, [5.0]),
        _gauge({"__name__": "m", "pv": "b", "node": "n1"}, [2.0]),
        _gauge({"__name__": "m", "node": "n3"}, [7.0]),
    ]
    inner = "avg_over_time(m[1m])"
    assert _vector(f"sum by (pv) ({inner})", series) == {(("pv", "a"),): 6.0, (("pv", "b"),): 2.0, (): 7.0}
    assert _vector(f"max by (pv) ({inner})", series)[(("pv", "a"),)] == 5.0
    assert _vector(f"min({inner}) by (pv)", series)[(("pv", "a"),)] == 1.0
    assert _vector(f"avg by (node) ({inner})", series)[(("node", "n1"),)] == 1.5
    assert _vector(f"count({inner})", series) == {(): 4.0}


def test_addition_matches_series_one_to_one_and_rejects_duplicates():
    reads = [
        _gauge({"__name__": "r", "pv": p, "node": "n"}, [float(k), float(k) + 60])
        for k, p in enumerate("abc")
    ]
    writes = [_gauge({"__name__": "w", "pv": p, "node": "n"}, [0.0, 30.0]) for p in "ab"]
    result = _vector("sum by (pv) (avg_over_time(r[1m]) + avg_over_time(w[1m]))", reads + writes)
    assert result == {(("pv", "a"),): 30.0 + 15.0, (("pv", "b"),): 31.0 + 15.0}  # c has no write series
    duplicated = [*writes, _gauge({"__name__": "w2", "pv": "a", "node": "n"}, [1.0])]
    with pytest.raises(ExecutionError, match="many-to-many"):
        _vector('avg_over_time(r[1m]) + avg_over_time({__name__=~"w.*"}[1m])', reads + duplicated)


# --- the API answer ---------------------------------------------------------------------------------------


def test_query_response_is_prometheus_shaped():
    source = ListSource([_gauge({"__name__": "m", "pv": "a"}, [1.0, 2.0], step=1000)])
    status, body = query_response(source, {"query": "avg_over_time(m[1m])", "time": str(NOW / 1000)})
    assert status == 200
    assert json.loads(body) == {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"pv": "a"}, "value": [NOW // 1000, "1.5"]}]},
    }
    _, body = query_response(source, {"query": "avg_over_time(m[1m])", "time": "2027-01-15T08:00:00.25Z"})
    assert json.loads(body)["data"]["result"][0]["value"] == [NOW / 1000 + 0.25, "1.5"]
    _, body = query_response(source, {"query": "avg_over_time(m[1m])", "time": "2027-01-15T09:00:00+01:00"})
    assert json.loads(body)["data"]["result"][0]["value"][0] == NOW // 1000
    _, body = query_response(source, {"query": "count_over_time(m[1m])"}, now=NOW / 1000 + 0.5)
    assert json.loads(body)["data"]["result"][0]["value"] == [NOW / 1000 + 0.5, "2"]


@pytest.mark.parametrize(
    ("params", "status", "kind", "words"),
    [
        ({}, 400, "bad_data", 'invalid parameter "query": no expression'),
        (
            {"query": "rate(m[5m]) / 2"},
            400,
            "bad_data",
            'invalid parameter "query": 1:13: parse error: only the +',
        ),
        ({"query": "rate(m[5m])\n+ irate(m[5m])"}, 400, "bad_data", "2:3: parse error: unsupported function"),
        ({"query": "rate(m[5m])", "time": "yesterday"}, 400, "bad_data", 'invalid parameter "time"'),
        ({"query": "rate(m[5m])", "time": "nan"}, 400, "bad_data", 'invalid parameter "time"'),
        ({"query": "rate(m[1m]) + rate(m[1m])"}, 422, "execution", "many-to-many"),
    ],
)
def test_errors_use_prometheus_envelope(params, status, kind, words):
    source = ListSource(
        [
            _gauge({"__name__": "m", "a": "1"}, [1.0, 2.0]),
            _gauge({"__name__": "m", "a": "1", "b": ""}, [1.0, 2.0]),
        ]
    )
    got_status, body = query_response(source, params, now=NOW / 1000)
    decoded = json.loads(body)
    assert got_status == status
    assert decoded["status"] == "error"
    assert decoded["errorType"] == kind
    assert words in decoded["error"]


def test_values_are_written_like_go_formats_them():
    assert format_value(12.0) == "12"
    assert format_value(0.1) == "0.1"
    assert format_value(1e21) == "1000000000000000000000"
    assert format_value(1.5e-7) == "0.00000015"
    assert format_value(math.nan) == "NaN"
    assert (format_value(math.inf), format_value(-math.inf)) == ("+Inf", "-Inf")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_formatted_values_read_back_exactly(value):
    text = format_value(value)
    assert "e" not in text.lower()
    assert float(text) == value


def test_form_body_overrides_url_parameters():
    assert form_params(b"query=a&time=1", b"query=b") == {"query": "b", "time": "1"}
    assert form_params(b"query=rate%28m%5B1m%5D%29") == {"query": "rate(m[1m])"}
