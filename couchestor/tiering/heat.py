"""Heat scores from Prometheus: query building, response decoding and score snapshots, without I/O.

A volume's heat score is its average IOPS over a policy's sampling window. For each distinct window the
score cache sends the few instant queries :func:`build_queries` returns (one per metric plus one for sample
coverage, never one per volume), decodes each answer with :func:`decode_response` and combines them with
:func:`build_snapshot` into a :class:`ScoreSnapshot`. When Prometheus cannot be asked or answers badly it
records :meth:`ScoreSnapshot.failed` instead, and no tier decision is made from that window.

Metric kinds. A *gauge* already is IOPS, so its score is ``avg_over_time`` over the window. A *counter* is a
cumulative operation count (real Mayastor 2.x exports ``volume_num_read_ops``/``volume_num_write_ops``, which
reset when io-engine restarts), so its score is ``rate`` over the window, which handles the resets. Series are
summed per volume label value (a volume exported as several series, e.g. per node, counts once in total);
several score metrics (read + write) are added up per volume.

Coverage. ``count_over_time`` over the window, divided by the samples the window should hold at the scrape
interval (``window / scrape_interval``), capped at 1. This is absolute on purpose: measuring against the
best-covered series instead would call every volume fully covered right after Prometheus lost its data or
started afresh, exactly when too little is known to decide anything. Set ``scrape_interval_seconds`` to the
real scrape interval of the volume metrics.

Idle periods (a policy's ``coldAfterIdle``). For each distinct period, one more query per refresh,
:func:`build_idle_query`: the peak of the same per-volume IOPS over the whole period (``max_over_time`` of a
subquery) and, in the same answer, how many of the subquery's steps had a value (its coverage, guarded like
the window's). :func:`build_peaks` turns the answer into a :class:`PeakSnapshot`.

Missing versus unusable. A volume absent from a healthy answer did no I/O Prometheus knows of and scores 0.
A volume whose value is NaN or infinite (an exporter reporting NaN, a division by zero in a recording rule)
is present but unusable: its :attr:`HeatScore.score` is None and no decision is made for it, rather than
calling it cold.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

import msgspec

from couchestor.errors import CoucheStorError

MetricKind = Literal["gauge", "counter"]
MatchOp = Literal["=", "!=", "=~", "!~"]
QueryRole = Literal["score", "read", "write", "latency", "coverage", "idle"]

DEFAULT_SCRAPE_INTERVAL_SECONDS = 15.0

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal.

    Backslashes and quotes are escaped, and so is every control character (``\\n``, ``\\t``, ``\\u001b`` ...),
    in forms Go's string unquoting (which PromQL uses) and JSON both read back to the same text.
    """
    return '"' + _NEEDS_ESCAPE.sub(_escape, value) + '"'


_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f]')
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One extra label matcher added to every query, e.g. ``job="mayastor"``."""

    label: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if not _LABEL_NAME.fullmatch(self.label):
            raise ValueError(f"invalid label name {self.label!r} in a metric selector")

    def render(self) -> str:
        return f"{self.label}{self.op}{promql_string(self.value)}"


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse ``job="mayastor",namespace!~"test-.*"`` (the inside of a PromQL ``{...}``; braces optional).

    Raises :class:`ValueError` saying what is expected. An empty string gives no matchers.
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1].strip()
    out: list[Matcher] = []
    pos = 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if m is None:
            raise ValueError(
                f"invalid metric selector {text!r} near position {pos}: expected "
                'comma-separated label="value" matchers (operators =, !=, =~, !~; values double-quoted)'
            )
        label, op, raw_value = m.groups()
        try:
            value = json.loads(f'"{raw_value}"')
        except json.JSONDecodeError:
            raise ValueError(f"invalid escape in metric selector value {raw_value!r}") from None
        out.append(Matcher(label, op, value))  # type: ignore[arg-type]  # the pattern admits only MatchOp
        pos = m.end()
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MetricSource:
    """Where heat comes from: metric name(s), the label holding the volume, and how to read them.

    ``score_metrics`` are added up per volume to form the score; ``read_metric``/``write_metric`` (same kind)
    and ``latency_metric`` (always a gauge, averaged) are optional details kept on the score. A read or write
    metric that is also a score metric costs no extra query. Raises :class:`ValueError` for invalid names.
    """

    preset: str
    kind: MetricKind
    label: str
    score_metrics: tuple[str, ...]
    read_metric: str | None = None
    write_metric: str | None = None
    latency_metric: str | None = None
    matchers: tuple[Matcher, ...] = ()
    scrape_interval_seconds: float = DEFAULT_SCRAPE_INTERVAL_SECONDS

    def __post_init__(self) -> None:
        if self.kind not in ("gauge", "counter"):
            raise ValueError(f"invalid metric kind {self.kind!r}: expected gauge or counter")
        if not _LABEL_NAME.fullmatch(self.label):
            raise ValueError(f"invalid volume label name {self.label!r}: expected a Prometheus label name")
        if not self.score_metrics:
            raise ValueError("at least one score metric is needed")
        for name in (*self.score_metrics, self.read_metric, self.write_metric, self.latency_metric):
            if name is not None and not _METRIC_NAME.fullmatch(name):
                raise ValueError(f"invalid metric name {name!r}: expected a Prometheus metric name")
        if self.latency_metric is not None and self.latency_metric in _rate_metrics(self):
            raise ValueError(
                f"latency metric {self.latency_metric!r} cannot also be a score/read/write metric"
            )
        if not (math.isfinite(self.scrape_interval_seconds) and self.scrape_interval_seconds > 0):
            raise ValueError(f"invalid scrape interval {self.scrape_interval_seconds!r}: must be positive")


def _rate_metrics(source: MetricSource) -> tuple[str, ...]:
    """Score, read and write metrics without repeats, in that order: one query each."""
    names = (*source.score_metrics, source.read_metric, source.write_metric)
    return tuple(dict.fromkeys(name for name in names if name is not None))


PRESETS: Mapping[str, MetricSource] = {
    # The seeds' metric: a per-volume IOPS gauge labelled with the volume.
    "openebs": MetricSource(
        preset="openebs", kind="gauge", label="volume_id", score_metrics=("openebs_volume_iops",)
    ),
    # Real Mayastor 2.x io-engine exporter: cumulative read/write operation totals labelled pv_name.
    "mayastor-2x": MetricSource(
        preset="mayastor-2x",
        kind="counter",
        label="pv_name",
        score_metrics=("volume_num_read_ops", "volume_num_write_ops"),
        read_metric="volume_num_read_ops",
        write_metric="volume_num_write_ops",
    ),
}


def metric_source(
    preset: str = "openebs",
    *,
    metric: str | None = None,
    label: str | None = None,
    kind: MetricKind | None = None,
    selector: str = "",
    read_metric: str | None = None,
    write_metric: str | None = None,
    latency_metric: str | None = None,
    scrape_interval_seconds: float | None = None,
) -> MetricSource:
    """A preset (``openebs``, the default, or ``mayastor-2x``) with the given settings overriding it.

    ``metric`` replaces the preset's score metrics with that one metric; ``selector`` is parsed with
    :func:`parse_matchers`. Raises :class:`ValueError` naming the bad setting and what is accepted.
    """
    base = PRESETS.get(preset)
    if base is None:
        raise ValueError(f"unknown metric preset {preset!r}: expected one of {', '.join(sorted(PRESETS))}")
    changes: dict[str, object] = {"matchers": parse_matchers(selector)}
    if metric is not None:
        changes.update(score_metrics=(metric,), read_metric=None, write_metric=None)
    for name, value in (
        ("label", label),
        ("kind", kind),
        ("read_metric", read_metric),
        ("write_metric", write_metric),
        ("latency_metric", latency_metric),
        ("scrape_interval_seconds", scrape_interval_seconds),
    ):
        if value is not None:
            changes[name] = value
    return replace(base, **changes)  # type: ignore[arg-type]  # keys are MetricSource fields


@dataclass(frozen=True, slots=True)
class HeatQuery:
    """One instant query of a refresh: its PromQL, the metric it reads and what its answer is used for."""

    metric: str
    roles: frozenset[QueryRole]
    promql: str


def promql_duration(seconds: int) -> str:
    """A PromQL range duration in the largest single unit that divides ``seconds`` (``3600`` -> ``1h``)."""
    if seconds <= 0:
        raise ValueError(f"a range must be positive, not {seconds}s")
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def build_queries(source: MetricSource, window_seconds: int) -> tuple[HeatQuery, ...]:
    """The queries of one refresh for one window: one per distinct metric, plus one for coverage.

    At most five, whatever the number of volumes, e.g. for the default source and a 1h window::

        sum by (volume_id) (avg_over_time(openebs_volume_iops[1h]))
        max by (volume_id) (count_over_time(openebs_volume_iops[1h]))
    """
    window = promql_duration(window_seconds)
    selector = "{" + ",".join(m.render() for m in source.matchers) + "}" if source.matchers else ""
    by = f"by ({source.label})"
    func = "rate" if source.kind == "counter" else "avg_over_time"
    queries: list[HeatQuery] = []
    for metric in _rate_metrics(source):
        roles: set[QueryRole] = set()
        if metric in source.score_metrics:
            roles.add("score")
        if metric == source.read_metric:
            roles.add("read")
        if metric == source.write_metric:
            roles.add("write")
        queries.append(
            HeatQuery(metric, frozenset(roles), f"sum {by} ({func}({metric}{selector}[{window}]))")
        )
    if source.latency_metric is not None:
        latency = source.latency_metric
        queries.append(
            HeatQuery(
                latency, frozenset({"latency"}), f"avg {by} (avg_over_time({latency}{selector}[{window}]))"
            )
        )
    first = source.score_metrics[0]
    # max, not sum: a volume whose series changed labels mid-window (nexus moved) must not look better covered
    # than its best single series, and duplicate series must not make a gap look covered.
    queries.append(
        HeatQuery(first, frozenset({"coverage"}), f"max {by} (count_over_time({first}{selector}[{window}]))")
    )
    return tuple(queries)


#: The label :func:`build_idle_query` adds to tell its two halves apart.
IDLE_STAT_LABEL = "couchestor_idle"


def idle_step_seconds(source: MetricSource) -> int:
    """The resolution of an idle period's subquery: a minute, or four scrapes when scrapes are rarer (a
    counter's rate needs at least two samples in its range)."""
    return max(60, math.ceil(4 * source.scrape_interval_seconds))


def volume_iops_expr(source: MetricSource, rate_seconds: int) -> str:
    """The per-volume IOPS now, as one instant vector labelled by the volume: the score metrics added up.

    Several metrics are joined with ``or``, each tagged with its name first: a counter's ``rate`` drops the
    metric name, and the read and write series of one volume would otherwise have the same labels.
    """
    selector = "{" + ",".join(m.render() for m in source.matchers) + "}" if source.matchers else ""
    parts = []
    for metric in source.score_metrics:
        series = f"{metric}{selector}"
        if source.kind == "counter":
            series = f"rate({series}[{promql_duration(rate_seconds)}])"
        if len(source.score_metrics) > 1:
            series = f'label_replace({series}, "{IDLE_STAT_LABEL}_metric", "{metric}", "", "")'
        parts.append(series)
    return f"sum by ({source.label}) ({' or '.join(parts)})"


def build_idle_query(source: MetricSource, period_seconds: int) -> HeatQuery:
    """The one query of a refresh for an idle period: per volume, its peak IOPS over the period and the
    number of subquery steps with a value, told apart by :data:`IDLE_STAT_LABEL` (``peak``/``samples``).

    E.g. for the default source and a 7d period::

        label_replace(max_over_time((sum by (volume_id) (openebs_volume_iops))[7d:1m]), "couchestor_idle",
        "peak", "", "") or label_replace(count_over_time((...)[7d:1m]), "couchestor_idle", "samples", "", "")
    """
    step = idle_step_seconds(source)
    inner = f"({volume_iops_expr(source, step)})[{promql_duration(period_seconds)}:{promql_duration(step)}]"
    halves = [
        f'label_replace({func}({inner}), "{IDLE_STAT_LABEL}", "{stat}", "", "")'
        for func, stat in (("max_over_time", "peak"), ("count_over_time", "samples"))
    ]
    return HeatQuery(source.score_metrics[0], frozenset({"idle"}), " or ".join(halves))


# --- Prometheus /api/v1/query responses -------------------------------------------------------------------


class PromSample(msgspec.Struct, frozen=True, gc=False):
    """One element of an instant vector: the series' labels and ``[unix time, "value"]``."""

    metric: dict[str, str]
    value: tuple[float, str]


class PromData(msgspec.Struct, frozen=True, rename="camel"):
    result_type: str
    # Raw until the type is known: a scalar or string result is a single pair, a matrix has "values".
    result: msgspec.Raw


class PromResponse(msgspec.Struct, frozen=True, rename="camel"):
    """The envelope of every Prometheus HTTP API answer, success or error."""

    status: Literal["success", "error"]
    data: PromData | None = None
    error_type: str | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()


class PrometheusResponseError(CoucheStorError):
    """A Prometheus answer that cannot be used; ``reason`` says why, ``error_type`` is Prometheus' own."""

    def __init__(
        self,
        reason: Literal["bad-json", "error-status", "unexpected-result", "bad-value"],
        message: str,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A decoded instant vector: per sample its labels and value (NaN and ±Inf kept as floats)."""

    samples: tuple[tuple[Mapping[str, str], float], ...]
    warnings: tuple[str, ...] = ()


_response_decoder = msgspec.json.Decoder(PromResponse)
_vector_decoder = msgspec.json.Decoder(list[PromSample])


def decode_response(body: bytes) -> QueryResult:
    """Decode an ``/api/v1/query`` answer body that must hold an instant vector.

    Raises :class:`PrometheusResponseError` when the body is not a Prometheus answer (``bad-json``), reports
    ``status: error`` (``error-status``, with ``errorType`` and ``error``), holds something other than a vector
    (``unexpected-result``) or a value that is not a number (``bad-value``). Values ``NaN``, ``+Inf`` and
    ``-Inf`` are valid Prometheus numbers and are returned as such; :func:`build_snapshot` decides what they
    mean. Warnings (Prometheus sends them for partial answers) are returned for the caller to judge.
    """
    try:
        response = _response_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise PrometheusResponseError("bad-json", f"not a Prometheus API response: {exc}") from None
    if response.status == "error":
        raise PrometheusResponseError(
            "error-status",
            f"Prometheus error ({response.error_type or 'unknown'}): {response.error or 'no message'}",
            response.error_type,
        )
    if response.data is None:
        raise PrometheusResponseError("unexpected-result", "Prometheus answered success without data")
    if response.data.result_type != "vector":
        raise PrometheusResponseError(
            "unexpected-result", f"expected an instant vector, got a {response.data.result_type!r} result"
        )
    try:
        raw_samples = _vector_decoder.decode(response.data.result)
    except msgspec.DecodeError as exc:
        raise PrometheusResponseError("bad-json", f"malformed vector result: {exc}") from None
    try:
        samples = tuple([(sample.metric, float(sample.value[1])) for sample in raw_samples])
    except ValueError:
        bad = next(s.value[1] for s in raw_samples if not _is_number(s.value[1]))
        raise PrometheusResponseError("bad-value", f"sample value {bad!r} is not a number") from None
    return QueryResult(samples, response.warnings)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- Scores -----------------------------------------------------------------------------------------------


class HeatScore(msgspec.Struct, frozen=True, gc=False):
    """The heat of one volume over one window. ``volume`` is the Prometheus label value (PV name or UUID).

    ``score`` is the average IOPS, or None when Prometheus returned a non-finite value for it. The details
    are None when their metric is not configured, the volume has no series of it, or the value is not finite.
    ``coverage`` is the fraction (0..1) of the window's expected samples present; ``samples`` their count.

    (A frozen Struct rather than a frozen dataclass: a refresh builds one per volume, and a Struct is built
    ten times faster and is not tracked by the garbage collector.)
    """

    volume: str
    score: float | None
    read_iops: float | None
    write_iops: float | None
    latency_us: float | None
    coverage: float
    samples: int
    window_seconds: int
    computed_at: datetime
    source_metric: str


@dataclass(frozen=True, slots=True)
class ScoreSnapshot:
    """Every volume's heat for one window, as of one refresh.

    When ``healthy`` is False (Prometheus unreachable, erroring, partial or undecodable; ``error`` says
    which), ``scores`` is empty and nothing may be decided from it. When healthy, a volume missing from
    ``scores`` had no series at all and counts as 0 IOPS. ``scores`` is keyed by label value; treat it as
    read-only.
    """

    window_seconds: int
    healthy: bool
    fetched_at: datetime
    scores: Mapping[str, HeatScore] = field(default_factory=dict)
    error: str | None = None
    #: The idle periods' peaks (period in seconds -> snapshot), fetched beside the windows.
    peaks: Mapping[int, PeakSnapshot] = field(default_factory=dict)
    #: The best sample coverage of any volume: below the minimum, Prometheus has not collected a window's
    #: worth of data yet (just started, or lost its storage), so a missing volume proves nothing.
    max_coverage: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        best = max((h.coverage for h in self.scores.values()), default=0.0)
        object.__setattr__(self, "max_coverage", best)

    @classmethod
    def failed(cls, window_seconds: int, fetched_at: datetime, error: str) -> ScoreSnapshot:
        """An unhealthy snapshot: Prometheus could not be asked, or its answer could not be used."""
        return cls(window_seconds=window_seconds, healthy=False, fetched_at=fetched_at, error=error)


def lookup(snapshot: ScoreSnapshot, pv_name: str, volume_handle: str | None) -> HeatScore | None:
    """The score of a volume labelled either by its PV name or by its CSI volume handle (PV name first).

    None when neither label value is in the snapshot; this does not look at ``snapshot.healthy``.
    """
    found = snapshot.scores.get(pv_name)
    if found is None and volume_handle is not None:
        found = snapshot.scores.get(volume_handle)
    return found


class PeakScore(msgspec.Struct, frozen=True, gc=False):
    """One volume's highest IOPS over an idle period (None: not finite) and the period's coverage (0..1)."""

    peak: float | None
    coverage: float


@dataclass(frozen=True, slots=True)
class PeakSnapshot:
    """Every volume's peak IOPS over one idle period, as of one refresh. As with :class:`ScoreSnapshot`, a
    volume missing from a healthy snapshot had no series and peaks at 0, unless no volume has the period's
    coverage (``max_coverage``): then its absence proves nothing."""

    period_seconds: int
    healthy: bool
    fetched_at: datetime
    peaks: Mapping[str, PeakScore] = field(default_factory=dict)
    error: str | None = None
    max_coverage: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        best = max((p.coverage for p in self.peaks.values()), default=0.0)
        object.__setattr__(self, "max_coverage", best)

    def lookup(self, pv_name: str, volume_handle: str | None) -> PeakScore | None:
        found = self.peaks.get(pv_name)
        if found is None and volume_handle is not None:
            found = self.peaks.get(volume_handle)
        return found


def build_peaks(
    source: MetricSource, period_seconds: int, result: QueryResult | None, fetched_at: datetime
) -> PeakSnapshot:
    """The answer to :func:`build_idle_query` as a snapshot; unhealthy when missing or partial."""
    if result is None:
        return PeakSnapshot(period_seconds, False, fetched_at, error="no answer for the idle-period query")
    if result.warnings:
        return PeakSnapshot(
            period_seconds,
            False,
            fetched_at,
            error=f"partial idle-period answer: {'; '.join(result.warnings)}",
        )
    peak: dict[str, float] = {}
    samples: dict[str, float] = {}
    for labels, value in result.samples:
        volume = labels.get(source.label)
        stat = labels.get(IDLE_STAT_LABEL)
        if volume and stat in ("peak", "samples"):
            (peak if stat == "peak" else samples)[volume] = value
    expected = max(period_seconds / idle_step_seconds(source), 1.0)
    peaks = {
        volume: PeakScore(
            peak[volume] if math.isfinite(peak.get(volume, 0.0)) else None,
            min(max(count, 0.0) / expected, 1.0) if math.isfinite(count) else 0.0,
        )
        for volume in sorted(peak.keys() | samples.keys())
        for count in (samples.get(volume, 0.0),)
    }
    return PeakSnapshot(period_seconds, True, fetched_at, peaks)


def sample_coverage(samples: int, window_seconds: int, scrape_interval_seconds: float) -> float:
    """``samples`` as a fraction of the samples a ``window_seconds`` window holds at the scrape interval (<= 1)."""
    expected = max(window_seconds / scrape_interval_seconds, 1.0)
    return min(max(samples, 0) / expected, 1.0)


def build_snapshot(
    source: MetricSource,
    window_seconds: int,
    results: Mapping[HeatQuery, QueryResult],
    fetched_at: datetime,
) -> ScoreSnapshot:
    """Combine the decoded answers to ``build_queries(source, window_seconds)`` into a snapshot.

    Unhealthy when an answer is missing or carries warnings (a partial answer, e.g. a remote-read or
    federated source that did not respond, must not pass for complete data).
    """
    queries = build_queries(source, window_seconds)
    for query in queries:
        if query not in results:
            return ScoreSnapshot.failed(window_seconds, fetched_at, f"no answer for query {query.promql}")
        if results[query].warnings:
            warnings = "; ".join(results[query].warnings)
            return ScoreSnapshot.failed(
                window_seconds, fetched_at, f"partial answer to {query.promql}: {warnings}"
            )
    by_role: dict[QueryRole, list[dict[str, float]]] = {}
    for query in queries:
        values = _by_volume(source.label, results[query].samples)
        for role in query.roles:
            by_role.setdefault(role, []).append(values)
    coverage = by_role["coverage"][0]
    score_maps = by_role.get("score", [])
    volumes = set(coverage).union(*score_maps)
    read_maps, write_maps = by_role.get("read", []), by_role.get("write", [])
    latency_maps = by_role.get("latency", [])
    source_metric = "+".join(source.score_metrics)
    isfinite = math.isfinite
    scores: dict[str, HeatScore] = {}
    # One pass over every volume of the cluster per refresh: kept to plain lookups.
    for volume in sorted(volumes):
        score: float | None
        if len(score_maps) == 1:  # the common case: one score metric
            value = score_maps[0].get(volume, 0.0)
            score = value if isfinite(value) else None
        else:
            parts = [values[volume] for values in score_maps if volume in values]
            score = math.fsum(parts) if all(isfinite(p) for p in parts) else None
        count = coverage.get(volume, 0.0)
        samples = int(count) if isfinite(count) else 0
        scores[volume] = HeatScore(
            volume,
            score,
            _detail(read_maps, volume) if read_maps else None,
            _detail(write_maps, volume) if write_maps else None,
            _detail(latency_maps, volume) if latency_maps else None,
            sample_coverage(samples, window_seconds, source.scrape_interval_seconds),
            samples,
            window_seconds,
            fetched_at,
            source_metric,
        )
    return ScoreSnapshot(
        window_seconds=window_seconds,
        healthy=True,
        fetched_at=fetched_at,
        scores=scores,
    )


def _by_volume(label: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> dict[str, float]:
    # Samples without the volume label (series that never had it) belong to no volume and are dropped.
    return {labels[label]: value for labels, value in samples if labels.get(label)}


def _detail(maps: list[dict[str, float]], volume: str) -> float | None:
    for values in maps:
        value = values.get(volume)
        if value is not None and math.isfinite(value):
            return value
    return None
