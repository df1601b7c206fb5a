"""Heat-score queries, Prometheus answer decoding and score snapshots."""

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, strategies as st

from couchestor.tiering.heat import (
    PRESETS,
    HeatQuery,
    Matcher,
    MetricSource,
    PrometheusResponseError,
    QueryResult,
    ScoreSnapshot,
    build_queries,
    build_snapshot,
    decode_response,
    lookup,
    metric_source,
    parse_matchers,
    promql_duration,
    promql_string,
    sample_coverage,
)

NOW = datetime(2026, 2, 1, 10, tzinfo=UTC)


def vector(samples, warnings=None):
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1769940000.5, v]} for m, v in samples],
        },
    }
    if warnings:
        body["warnings"] = warnings
    return json.dumps(body).encode()


def answers(source, window, by_metric, coverage):
    """Decoded answers to every query: ``by_metric`` maps metric -> {label value: value string}."""
    out = {}
    for query in build_queries(source, window):
        values = coverage if "coverage" in query.roles else by_metric.get(query.metric, {})
        out[query] = decode_response(vector([({source.label: k, "job": "x"}, v) for k, v in values.items()]))
    return out


# --- PromQL text ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", '"plain"'),
        ('a"b', r'"a\"b"'),
        ("back\\slash", r'"back\\slash"'),
        ("new\nline", r'"new\nline"'),
    ],
)
def test_promql_strings_are_escaped(value, literal):
    assert promql_string(value) == literal


@given(st.text())
def test_escaped_strings_read_back(value):
    # PromQL string escapes are a superset of JSON's for the characters escaped here.
    assert json.loads(promql_string(value)) == value


def test_parse_matchers():
    assert parse_matchers("") == ()
    assert parse_matchers('{job="mayastor", ns!~"test-.*"}') == (
        Matcher("job", "=", "mayastor"),
        Matcher("ns", "!~", "test-.*"),
    )
    assert parse_matchers(r'a="q\"uote"') == (Matcher("a", "=", 'q"uote'),)
    for bad in ["job=mayastor", 'job=="x"', '1job="x"', 'job="x" ns="y"', 'job="x",,']:
        with pytest.raises(ValueError, match="metric selector"):
            parse_matchers(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1h"), (86_400, "1d"), (5400, "90m"), (90, "90s"), (172_800, "2d"), (61, "61s")],
)
def test_range_durations_use_one_unit(seconds, text):
    assert promql_duration(seconds) == text


def test_default_source_is_the_seeds_gauge():
    queries = build_queries(PRESETS["openebs"], 3600)
    assert [q.promql for q in queries] == [
        "sum by (volume_id) (avg_over_time(openebs_volume_iops[1h]))",
        "max by (volume_id) (count_over_time(openebs_volume_iops[1h]))",
    ]
    assert [q.roles for q in queries] == [{"score"}, {"coverage"}]


def test_mayastor_preset_rates_read_and_write_counters_once_each():
    queries = build_queries(PRESETS["mayastor-2x"], 1800)
    assert [q.promql for q in queries] == [
        "sum by (pv_name) (rate(volume_num_read_ops[30m]))",
        "sum by (pv_name) (rate(volume_num_write_ops[30m]))",
        "max by (pv_name) (count_over_time(volume_num_read_ops[30m]))",
    ]
    assert [q.roles for q in queries] == [{"score", "read"}, {"score", "write"}, {"coverage"}]


def test_custom_source_with_selector_details_and_latency():
    source = metric_source(
        metric="my_iops",
        label="volume",
        selector='job="io", cluster="a\\"b"',
        read_metric="my_read_iops",
        latency_metric="my_latency_us",
    )
    queries = build_queries(source, 600)
    sel = '{job="io",cluster="a\\"b"}'
    assert [q.promql for q in queries] == [
        f"sum by (volume) (avg_over_time(my_iops{sel}[10m]))",
        f"sum by (volume) (avg_over_time(my_read_iops{sel}[10m]))",
        f"avg by (volume) (avg_over_time(my_latency_us{sel}[10m]))",
        f"max by (volume) (count_over_time(my_iops{sel}[10m]))",
    ]
    assert source.preset == "openebs"
    assert source.read_metric == "my_read_iops"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"preset": "nope"}, "unknown metric preset"),
        ({"metric": "bad-name"}, "invalid metric name"),
        ({"label": "0label"}, "invalid volume label name"),
        ({"kind": "histogram"}, "invalid metric kind"),
        ({"selector": "job"}, "metric selector"),
        ({"scrape_interval_seconds": 0}, "scrape interval"),
        ({"latency_metric": "openebs_volume_iops"}, "latency metric"),
    ],
)
def test_bad_metric_settings_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        metric_source(**kwargs)


def test_a_source_needs_a_score_metric():
    with pytest.raises(ValueError, match="score metric"):
        MetricSource(preset="custom", kind="gauge", label="v", score_metrics=())


@given(
    st.sampled_from(sorted(PRESETS)),
    st.integers(min_value=1, max_value=30 * 86_400),
    st.booleans(),
)
def test_query_count_is_a_small_constant(preset, window, latency):
    source = metric_source(preset, latency_metric="lat_us" if latency else None)
    queries = build_queries(source, window)
    assert 2 <= len(queries) <= 5
    assert len({q.promql for q in queries}) == len(queries)
    assert all(f"[{promql_duration(window)}]" in q.promql for q in queries)


# --- Decoding ------------------------------------------------------------------------------------------------


def test_decode_a_vector():
    result = decode_response(vector([({"volume_id": "pvc-a"}, "5234.56"), ({"volume_id": "pvc-b"}, "0")]))
    assert result.samples == (({"volume_id": "pvc-a"}, 5234.56), ({"volume_id": "pvc-b"}, 0.0))
    assert result.warnings == ()


def test_decode_keeps_non_finite_values_and_warnings():
    result = decode_response(
        vector(
            [({"v": "a"}, "NaN"), ({"v": "b"}, "+Inf"), ({"v": "c"}, "-Inf")], warnings=["partial response"]
        )
    )
    values = [value for _, value in result.samples]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf]
    assert result.warnings == ("partial response",)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502 Bad Gateway</html>", "bad-json"),
        (b'{"status": "maybe"}', "bad-json"),
        (b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}', "bad-json"),
        (b'{"status":"success"}', "unexpected-result"),
        (b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "unexpected-result"),
        (b'{"status":"success","data":{"resultType":"scalar","result":[1, "2"]}}', "unexpected-result"),
        (
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}',
            "bad-value",
        ),
    ],
)
def test_decode_refuses_unusable_answers(body, reason):
    with pytest.raises(PrometheusResponseError) as info:
        decode_response(body)
    assert info.value.reason == reason


def test_decode_reports_prometheus_errors():
    body = b'{"status":"error","errorType":"bad_data","error":"parse error at char 5"}'
    with pytest.raises(PrometheusResponseError, match="parse error at char 5") as info:
        decode_response(body)
    assert (info.value.reason, info.value.error_type) == ("error-status", "bad_data")


# --- Snapshots -----------------------------------------------------------------------------------------------


def test_counter_scores_add_read_and_write():
    source = PRESETS["mayastor-2x"]
    results = answers(
        source,
        3600,
        {"volume_num_read_ops": {"pvc-a": "100", "pvc-b": "7"}, "volume_num_write_ops": {"pvc-a": "50"}},
        {"pvc-a": "240", "pvc-b": "60"},
    )
    snap = build_snapshot(source, 3600, results, NOW)
    assert snap.healthy
    a, b = snap.scores["pvc-a"], snap.scores["pvc-b"]
    assert (a.score, a.read_iops, a.write_iops, a.coverage, a.samples) == (150.0, 100.0, 50.0, 1.0, 240)
    assert (b.score, b.read_iops, b.write_iops, b.coverage) == (7.0, 7.0, None, 0.25)
    assert a.computed_at == NOW
    assert a.window_seconds == 3600
    assert a.source_metric == "volume_num_read_ops+volume_num_write_ops"


def test_non_finite_scores_are_unusable_not_cold():
    source = PRESETS["openebs"]
    results = answers(
        source, 3600, {"openebs_volume_iops": {"a": "NaN", "b": "+Inf"}}, {"a": "240", "b": "240"}
    )
    snap = build_snapshot(source, 3600, results, NOW)
    assert snap.scores["a"].score is None
    assert snap.scores["b"].score is None


def test_samples_without_the_volume_label_are_dropped():
    source = PRESETS["openebs"]
    score_q, coverage_q = build_queries(source, 3600)
    results = {
        score_q: decode_response(vector([({}, "9000"), ({"volume_id": "a"}, "5")])),
        coverage_q: decode_response(vector([({"volume_id": "a"}, "240")])),
    }
    snap = build_snapshot(source, 3600, results, NOW)
    assert list(snap.scores) == ["a"]


def test_partial_or_missing_answers_make_the_snapshot_unhealthy():
    source = PRESETS["openebs"]
    score_q, coverage_q = build_queries(source, 3600)
    ok = QueryResult(((({"volume_id": "a"}), 1.0),))
    partial = build_snapshot(source, 3600, {score_q: ok, coverage_q: QueryResult((), ("store down",))}, NOW)
    assert not partial.healthy
    assert "store down" in (partial.error or "")
    assert partial.scores == {}
    missing = build_snapshot(source, 3600, {score_q: ok}, NOW)
    assert not missing.healthy
    assert coverage_q.promql in (missing.error or "")


def test_failed_snapshot():
    snap = ScoreSnapshot.failed(3600, NOW, "connection refused")
    assert (snap.healthy, snap.error, snap.window_seconds, dict(snap.scores)) == (
        False,
        "connection refused",
        3600,
        {},
    )


def test_lookup_matches_pv_name_or_volume_handle():
    source = PRESETS["openebs"]
    results = answers(source, 3600, {"openebs_volume_iops": {"pvc-a": "1", "uuid-b": "2"}}, {})
    snap = build_snapshot(source, 3600, results, NOW)
    assert lookup(snap, "pvc-a", "uuid-a").score == 1.0
    assert lookup(snap, "pvc-b", "uuid-b").score == 2.0
    assert lookup(snap, "pvc-c", "uuid-c") is None
    assert lookup(snap, "pvc-c", None) is None
    # Present in the score answer but not in the coverage answer: no samples counted, coverage 0.
    assert lookup(snap, "pvc-a", None).coverage == 0.0


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=0.1, max_value=600),
)
def test_coverage_is_a_fraction_growing_with_samples(samples, window, interval):
    coverage = sample_coverage(samples, window, interval)
    assert 0.0 <= coverage <= 1.0
    assert sample_coverage(samples + 1, window, interval) >= coverage
    if samples >= window / interval:
        assert coverage == 1.0


def test_queries_are_hashable_keys():
    query = build_queries(PRESETS["openebs"], 60)[0]
    assert {query: 1}[HeatQuery(query.metric, query.roles, query.promql)] == 1
