"""What the soak reads from the operators it runs: their ``/metrics``, their JSON log lines and their RSS.

Plain functions over text, so they are tested without processes. Counters restart from zero with each process
(an operator SIGKILLed and started again), so :class:`Counters` keeps the last value each process lifetime
showed and sums the lifetimes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

#: The operator counters a soak reports, by metric family name (``_total`` is the sample suffix).
COUNTERS = (
    "storage_operator_migrations",
    "storage_operator_api_writes",
    "storage_operator_events_not_recorded",
    "storage_operator_watch_restarts",
)

_DECISION = re.compile(r"^Volume \S+ heat score: ")
_ACQUIRED = "acquired leadership of Lease"
_RELEASED = "released leadership of Lease"


def parse_counters(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The :data:`COUNTERS` samples of a ``/metrics`` page: (family, sorted labels) -> value."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in COUNTERS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[(family.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@dataclass
class Counters:
    """Counter totals over many process lifetimes: :meth:`update` with each scrape of lifetime ``life``."""

    _last: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = field(default_factory=dict)

    def update(self, life: str, sample: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
        self._last[life] = sample

    def total(self, family: str, **labels: str) -> float:
        """The sum over lifetimes of ``family``'s samples whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for sample in self._last.values()
            for (name, got), value in sample.items()
            if name == family and wanted <= set(got)
        )

    def by_label(self, family: str, label: str) -> dict[str, float]:
        """``family``'s totals grouped by the value of ``label``."""
        out: dict[str, float] = {}
        for sample in self._last.values():
            for (name, got), value in sample.items():
                if name == family:
                    key = dict(got).get(label, "")
                    out[key] = out.get(key, 0.0) + value
        return out


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float  # unix seconds
    msg: str


def read_log(path: Path) -> Iterator[LogLine]:
    """The JSON log lines of one operator process; other lines (a traceback, a torn last line) are skipped."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return
    for line in lines:
        try:
            record = json.loads(line)
            at = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
            yield LogLine(at, str(record["msg"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue


def leadership(lines: Iterable[LogLine], died_at: float) -> list[tuple[float, float]]:
    """The intervals one process believed it led: from each "acquired" to the next "released", or to
    ``died_at`` (its exit, a SIGKILL included) when none followed."""
    intervals: list[tuple[float, float]] = []
    since: float | None = None
    for line in lines:
        if line.msg.startswith(_ACQUIRED) and since is None:
            since = line.at
        elif line.msg.startswith(_RELEASED) and since is not None:
            intervals.append((since, line.at))
            since = None
    if since is not None:
        intervals.append((since, max(since, died_at)))
    return intervals


def decisions(lines: Iterable[LogLine]) -> list[float]:
    """When the process logged a decision made from a heat score (a fresh score, so Prometheus answered)."""
    return [line.at for line in lines if _DECISION.match(line.msg)]


def longest_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """The longest time both interval lists cover at once (0.0 when they never overlap)."""
    best = 0.0
    for a0, a1 in a:
        for b0, b1 in b:
            best = max(best, min(a1, b1) - max(a0, b0))
    return best


def rss_bytes(pid: int) -> int | None:
    """The resident set size of process ``pid`` (``VmRSS``), or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None with fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx
