"""A small, explicit subset of PromQL and a Prometheus-compatible ``/api/v1/query`` handler over it.

``couchestor demo`` uses this when no Prometheus binary is installed: the workload simulator answers the
operator's heat-score queries itself, from the same samples a Prometheus scraping it would hold. The tests
check its answers against the real Prometheus (2.42) on identical data.

Supported (anything else is answered with Prometheus' ``bad_data`` error, HTTP 400)::

    query       := expr
    expr        := term ( "+" term )*
    term        := aggregation | function | "(" expr ")"
    aggregation := AGG [ grouping ] "(" expr ")" [ grouping ]      AGG: sum | avg | max | min | count
    grouping    := "by" "(" [ label ( "," label )* [ "," ] ] ")"
    function    := FUNC "(" selector "[" duration "]" ")"         FUNC: avg_over_time | count_over_time | rate
    selector    := [ metric ] [ "{" [ matcher ( "," matcher )* [ "," ] ] "}" ]
    matcher     := label ( "=" | "!=" | "=~" | "!~" ) string     strings: "..." '...' or `...`
    duration    := ( integer ( "ms" | "s" | "m" | "h" | "d" | "w" | "y" ) )+

e.g. ``sum by (volume_id) (avg_over_time(openebs_volume_iops[1h]))``,
``max by (pv_name) (count_over_time(volume_num_read_ops{node="n1"}[30m]))`` and
``sum by (pv_name) (rate(volume_num_read_ops[1h]) + rate(volume_num_write_ops[1h]))``.

Semantics follow Prometheus 2.x: a range ``[w]`` at time ``t`` holds the samples with ``t - w <= ts <= t``
(both ends closed; Prometheus 3 made the start open); functions drop the metric name; ``rate`` uses
Prometheus' extrapolation (counter resets, extrapolation to the range ends within 1.1 average sample
intervals, never below zero for counters) and needs two samples; ``a + b`` matches series one-to-one on all
labels, and a label set that appears twice on one side is an ``execution`` error (HTTP 422), as in Prometheus.
Aggregations keep only the ``by`` labels that have a value. Regular expressions are fully anchored.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, NoReturn, Protocol
from urllib.parse import parse_qsl

import msgspec

from couchestor.durations import parse_time

MatchOp = Literal["=", "!=", "=~", "!~"]
Labels = Mapping[str, str]
Sample = tuple[int, float]  # (unix milliseconds, value)

FUNCTIONS = ("avg_over_time", "count_over_time", "rate")
AGGREGATIONS = ("sum", "avg", "max", "min", "count")
_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}


class PromQLError(ValueError):
    """A query outside the supported subset, or malformed; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class ExecutionError(Exception):
    """A well-formed query that cannot be evaluated on the data (e.g. duplicate series on one side of ``+``)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """A label matcher; a missing label matches as the empty string, as in Prometheus."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", re.compile(self.value))

    def matches(self, labels: Labels) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True, slots=True)
class Selector:
    """``metric{matchers}[range]``; the metric name is folded into the matchers as ``__name__``."""

    matchers: tuple[Matcher, ...]
    range_ms: int


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    selector: Selector


@dataclass(frozen=True, slots=True)
class Aggregation:
    op: str
    by: tuple[str, ...] | None
    expr: Expr


@dataclass(frozen=True, slots=True)
class Add:
    left: Expr
    right: Expr


Expr = Function | Aggregation | Add


class SeriesSource(Protocol):
    """Where the evaluator reads samples from: the workload simulator, or a list in tests."""

    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> Iterable[tuple[Labels, Sequence[Sample]]]:
        """Every series matching all ``matchers`` (labels include ``__name__``) with its samples in
        ``[start_ms, end_ms]`` in time order; series without samples there may be left out."""
        ...


# --- parsing ----------------------------------------------------------------------------------------------


def parse(text: str) -> Expr:
    """The expression ``text`` as a tree; raises :class:`PromQLError` saying where and what is wrong."""
    parser = _Parser(text)
    expr = parser.expr()
    parser.skip_space()
    if parser.pos < len(text):
        parser.fail(f"unexpected {parser.describe()} after the expression")
    return expr


def parse_duration_ms(text: str) -> int:
    """A PromQL duration (``1h30m``, ``90s``, ``500ms``) in milliseconds; raises :class:`ValueError`."""
    parser = _Parser(text)
    try:
        value = parser.duration()
    except PromQLError as e:
        raise ValueError(e.message) from None
    if parser.pos != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- scanning helpers

    def fail(self, message: str, at: int | None = None) -> NoReturn:
        raise PromQLError(message, self.pos if at is None else at)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def describe(self) -> str:
        self.skip_space()
        if self.pos >= len(self.text):
            return "end of input"
        return repr(self.text[self.pos : self.pos + 12])

    def expect(self, char: str) -> None:
        if self.peek() != char:
            self.fail(f"expected {char!r}, found {self.describe()}")
        self.pos += 1

    def identifier(self) -> str:
        self.skip_space()
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isascii() and (self.text[self.pos].isalnum() or self.text[self.pos] in "_:")
        ):
            self.pos += 1
        word = self.text[start : self.pos]
        if not word or word[0].isdigit():
            self.pos = start
            self.fail(f"expected a name, found {self.describe()}")
        return word

    def label_name(self) -> str:
        start = self.pos
        name = self.identifier()
        if ":" in name:
            self.fail(f"invalid label name {name!r}", start)
        return name

    # -- grammar

    def expr(self) -> Expr:
        left = self.term()
        while self.peek() == "+":
            self.pos += 1
            left = Add(left, self.term())
        if self.peek() in ("-", "*", "/", "%", "^", "=", "!", "<", ">"):
            self.fail("only the + operator is supported")
        return left

    def term(self) -> Expr:
        if self.peek() == "(":
            self.pos += 1
            inner = self.expr()
            self.expect(")")
            return inner
        start = self.pos
        if self.peek() in ("", "{"):
            self.fail(
                "expected an aggregation (sum, avg, max, min, count) or a function "
                f"({', '.join(FUNCTIONS)}), found {self.describe()}"
            )
        if not (self.peek().isalpha() or self.peek() == "_"):
            self.fail(f"unexpected {self.describe()}")
        word = self.identifier()
        if word in AGGREGATIONS:
            return self.aggregation(word)
        if word in FUNCTIONS:
            self.expect("(")
            selector = self.selector(need_range=True)
            self.expect(")")
            return Function(word, selector)
        if self.peek() == "(":
            self.fail(
                f"unsupported function {word!r}: expected one of {', '.join(FUNCTIONS + AGGREGATIONS)}", start
            )
        raise PromQLError(
            f"unsupported expression at {word!r}: only aggregations and {', '.join(FUNCTIONS)} over a range "
            "selector are supported",
            start,
        )

    def aggregation(self, op: str) -> Aggregation:
        by = self.grouping()
        self.expect("(")
        inner = self.expr()
        self.expect(")")
        self.skip_space()
        after_at = self.pos
        after = self.grouping()
        if by is not None and after is not None:
            self.fail("an aggregation takes one by (...) clause", after_at)
        return Aggregation(op, by if by is not None else after, inner)

    def grouping(self) -> tuple[str, ...] | None:
        self.skip_space()
        start = self.pos
        if not self.text.startswith(("by", "without"), self.pos):
            return None
        word = self.identifier()
        if word == "without":
            self.fail("without (...) is not supported; use by (...)", start)
        if word != "by":
            self.pos = start
            return None
        self.expect("(")
        labels: list[str] = []
        while self.peek() != ")":
            labels.append(self.label_name())
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != ")":
                self.fail(f"expected ',' or ')' in by (...), found {self.describe()}")
        self.pos += 1
        return tuple(labels)

    def selector(self, *, need_range: bool) -> Selector:
        start = self.pos
        matchers: list[Matcher] = []
        if self.peek() != "{":
            matchers.append(Matcher("__name__", "=", self.identifier()))
        if self.peek() == "{":
            self.pos += 1
            while self.peek() != "}":
                matchers.append(self.matcher())
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "}":
                    self.fail(f"expected ',' or '}}' in the label matchers, found {self.describe()}")
            self.pos += 1
        if not any(not m.matches({}) for m in matchers):
            self.fail("vector selector must contain at least one non-empty matcher", start)
        if self.peek() != "[":
            if need_range:
                self.fail(f"expected a range like [1h] after the selector, found {self.describe()}")
            return Selector(tuple(matchers), 0)
        self.pos += 1
        self.skip_space()
        range_ms = self.duration()
        if self.peek() == ":":
            self.fail("subqueries are not supported")
        self.expect("]")
        self.skip_space()
        if self.text.startswith(("offset", "@"), self.pos):
            self.fail("offset and @ modifiers are not supported")
        return Selector(tuple(matchers), range_ms)

    def matcher(self) -> Matcher:
        name = self.label_name()
        self.skip_space()
        for op in ("=~", "!~", "!=", "="):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                break
        else:
            self.fail(f"expected a matcher operator (=, !=, =~, !~), found {self.describe()}")
        value_at = self.pos
        value = self.string()
        try:
            return Matcher(name, op, value)
        except re.error as e:
            raise PromQLError(f"invalid regular expression {value!r}: {e}", value_at) from None

    def string(self) -> str:
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            self.fail(f"expected a quoted string, found {self.describe()}")
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == quote:
                return "".join(out)
            if char == "\\" and quote != "`":
                out.append(self.escape())
            elif char == "\n" and quote != "`":
                break
            else:
                out.append(char)
        raise PromQLError("unterminated quoted string", start)

    def escape(self) -> str:
        simple = {
            "n": "\n",
            "t": "\t",
            "r": "\r",
            "\\": "\\",
            '"': '"',
            "'": "'",
            "a": "\a",
            "b": "\b",
            "f": "\f",
            "v": "\v",
        }
        if self.pos >= len(self.text):
            self.fail("unterminated escape sequence")
        char = self.text[self.pos]
        self.pos += 1
        if char in simple:
            return simple[char]
        widths = {"x": 2, "u": 4, "U": 8}
        if char in widths:
            digits = self.text[self.pos : self.pos + widths[char]]
            if len(digits) == widths[char] and all(c in "0123456789abcdefABCDEF" for c in digits):
                self.pos += widths[char]
                return chr(int(digits, 16))
        raise PromQLError(f"unknown escape sequence '\\{char}'", self.pos - 2)

    def duration(self) -> int:
        start = self.pos
        total = 0
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            digits_at = self.pos
            while self.pos < len(self.text) and self.text[self.pos].isdigit():
                self.pos += 1
            amount = int(self.text[digits_at : self.pos])
            unit = "ms" if self.text.startswith("ms", self.pos) else self.text[self.pos : self.pos + 1]
            if unit not in _UNITS_MS:
                self.fail(f"invalid duration unit {unit!r}: expected ms, s, m, h, d, w or y", self.pos)
            self.pos += len(unit)
            total += amount * _UNITS_MS[unit]
        if self.pos == start:
            self.fail(f"expected a duration like 5m or 1h, found {self.describe()}")
        if total <= 0:
            self.fail("a range must be longer than zero", start)
        return total


# --- evaluation -------------------------------------------------------------------------------------------


def evaluate(expr: Expr, source: SeriesSource, at_ms: int) -> list[tuple[dict[str, str], float]]:
    """The instant vector ``expr`` evaluates to at ``at_ms``: (labels, value) pairs, in no particular order.

    Raises :class:`ExecutionError` for data the expression cannot combine.
    """
    if isinstance(expr, Function):
        return _function(expr, source, at_ms)
    if isinstance(expr, Aggregation):
        return _aggregate(expr.op, expr.by, evaluate(expr.expr, source, at_ms))
    return _add(evaluate(expr.left, source, at_ms), evaluate(expr.right, source, at_ms))


def _function(call: Function, source: SeriesSource, at_ms: int) -> list[tuple[dict[str, str], float]]:
    selector = call.selector
    start = at_ms - selector.range_ms
    out: list[tuple[dict[str, str], float]] = []
    for labels, samples in source.select(selector.matchers, start, at_ms):
        if call.name == "rate":
            value = extrapolated_rate(samples, start, at_ms)
            if value is None:
                continue
        elif not samples:
            continue
        elif call.name == "count_over_time":
            value = float(len(samples))
        else:
            value = math.fsum(v for _, v in samples) / len(samples)
        # An empty label is no label in Prometheus; dropping it keeps matching and grouping the same.
        out.append(({k: v for k, v in labels.items() if k != "__name__" and v}, value))
    return out


def extrapolated_rate(samples: Sequence[Sample], start_ms: int, end_ms: int) -> float | None:
    """Prometheus' ``rate`` of a counter's ``samples`` in the range ``[start_ms, end_ms]``; None below two samples.

    The increase between the first and last sample (adding back the value before every reset) is extrapolated
    towards each range end that lies within 1.1 average sample intervals (else by half an interval), but not
    past the point where the counter would have been zero, then divided by the range in seconds.
    """
    if len(samples) < 2:
        return None
    first_t, first_v = samples[0]
    last_t, last_v = samples[-1]
    increase = last_v - first_v
    previous = 0.0
    for _, value in samples:
        if value < previous:
            increase += previous
        previous = value
    to_start = (first_t - start_ms) / 1000
    to_end = (end_ms - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / (len(samples) - 1)
    if increase > 0 and first_v >= 0:
        to_zero = sampled * (first_v / increase)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return increase * (interval / sampled) / ((end_ms - start_ms) / 1000)


def _aggregate(
    op: str, by: tuple[str, ...] | None, vector: list[tuple[dict[str, str], float]]
) -> list[tuple[dict[str, str], float]]:
    groups: dict[tuple[str, ...], list[float]] = {}
    keys: dict[tuple[str, ...], dict[str, str]] = {}
    names = by or ()
    for labels, value in vector:
        key = tuple(labels.get(name, "") for name in names)
        groups.setdefault(key, []).append(value)
        if key not in keys:
            keys[key] = {name: v for name, v in zip(names, key, strict=True) if v}
    reduce: Callable[[list[float]], float] = _REDUCERS[op]
    return [(keys[key], reduce(values)) for key, values in groups.items()]


def _max(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return max(real) if real else math.nan


def _min(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return min(real) if real else math.nan


_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "avg": lambda values: math.fsum(values) / len(values),
    "max": _max,
    "min": _min,
    "count": lambda values: float(len(values)),
}


def _add(
    left: list[tuple[dict[str, str], float]], right: list[tuple[dict[str, str], float]]
) -> list[tuple[dict[str, str], float]]:
    def index(
        side: list[tuple[dict[str, str], float]], name: str
    ) -> dict[tuple[tuple[str, str], ...], float]:
        out: dict[tuple[tuple[str, str], ...], float] = {}
        for labels, value in side:
            key = tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
            if key in out:
                raise ExecutionError(
                    f"found duplicate series for the match group {dict(key)} on the {name} hand-side of the "
                    "operation; many-to-many matching not allowed"
                )
            out[key] = value
        return out

    lhs, rhs = index(left, "left"), index(right, "right")
    return [(dict(key), value + rhs[key]) for key, value in lhs.items() if key in rhs]


# --- the HTTP API -----------------------------------------------------------------------------------------


def query_response(
    source: SeriesSource, params: Mapping[str, str], *, now: float | None = None
) -> tuple[int, bytes]:
    """The HTTP status and JSON body Prometheus' ``/api/v1/query`` would give for ``params``.

    ``params`` are the request's ``query`` and optional ``time`` (unix seconds or RFC 3339; default ``now``,
    which defaults to the wall clock). Errors use Prometheus' envelope: ``bad_data`` (400) for bad parameters
    or an unsupported query, ``execution`` (422) for a query the data cannot satisfy.
    """
    text = params.get("query", "")
    if not text.strip():
        return _error(400, "bad_data", 'invalid parameter "query": no expression found in input')
    try:
        at_ms = _parse_time_ms(params.get("time"), time.time() if now is None else now)
    except ValueError as e:
        return _error(400, "bad_data", f'invalid parameter "time": {e}')
    try:
        expr = parse(text)
    except PromQLError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        return _error(
            400, "bad_data", f'invalid parameter "query": {line}:{column}: parse error: {e.message}'
        )
    try:
        vector = evaluate(expr, source, at_ms)
    except ExecutionError as e:
        return _error(422, "execution", str(e))
    stamp: float | int = at_ms // 1000 if at_ms % 1000 == 0 else at_ms / 1000
    result = [{"metric": labels, "value": [stamp, format_value(value)]} for labels, value in vector]
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return 200, msgspec.json.encode(body)


def form_params(query_string: bytes, body: bytes = b"") -> dict[str, str]:
    """Request parameters from a URL query string and an ``application/x-www-form-urlencoded`` body.

    The body wins over the URL for a parameter given in both, as Go's ``Request.FormValue`` does.
    """
    params = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return params


def format_value(value: float) -> str:
    """``value`` as Prometheus writes sample values: shortest round-trip digits, no exponent, ``NaN``/``±Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def error_body(error_type: str, message: str) -> bytes:
    """Prometheus' JSON error envelope."""
    return msgspec.json.encode({"status": "error", "errorType": error_type, "error": message})


def _error(status: int, error_type: str, message: str) -> tuple[int, bytes]:
    return status, error_body(error_type, message)


def _parse_time_ms(raw: str | None, now: float) -> int:
    if raw is None or raw == "":
        return round(now * 1000)
    try:
        seconds = float(raw)
    except ValueError:
        try:
            return round(parse_time(raw).timestamp() * 1000)
        except ValueError:
            raise ValueError(f"cannot parse {raw!r} to a valid timestamp") from None
    if not math.isfinite(seconds):
        raise ValueError(f"cannot parse {raw!r} to a valid timestamp")
    return round(seconds * 1000)
