"""Grade one StorageClass's measurements against its criteria: pure functions over plain data.

Each criterion is strict, as the volume guide states them: a minimum passes when the measured value is above
it (``> 500 MB/s``), a maximum when below it (``< 30 s``). A criterion whose fio job failed fails with the
job's error. A criterion with no measurement is "not measured": it fails the class when ``require_all`` is
set (a cluster run, which always measures everything) and is only reported otherwise (grading files).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from couchestor.volumes.fio import FioJobResult, FioTest
from couchestor.volumes.measurements import Measurements
from couchestor.volumes.thresholds import ClassThresholds


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "FAIL"
    MISSING = "not measured"


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One line of the report: what was required, what was measured, and the verdict."""

    label: str
    unit: str
    comparator: Literal["<", ">", ">="]
    required: float
    measured: float | None
    verdict: Verdict
    note: str = ""


@dataclass(frozen=True, slots=True)
class ClassReport:
    """The graded result of one StorageClass. ``passed`` is the class's overall verdict."""

    storage_class: str
    criteria: tuple[CriterionResult, ...]
    notes: tuple[str, ...]
    problems: tuple[str, ...]
    passed: bool


@dataclass(frozen=True, slots=True)
class _Figure:
    value: float | None
    failure: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Criterion:
    label: str
    unit: str
    comparator: Literal["<", ">"]
    threshold: Callable[[ClassThresholds], float | None]
    measure: Callable[[Measurements], _Figure]


def _jobs(measurements: Measurements, kind: FioTest) -> list[FioJobResult]:
    return [job for job in measurements.fio_jobs if job.kind is kind]


def _fio_figure(
    kind: FioTest,
    extract: Callable[[Sequence[FioJobResult]], float],
    worst: Callable[[Iterable[float]], float],
) -> Callable[[Measurements], _Figure]:
    """The figure of ``kind``: ``extract`` combines the jobs of one fio run (clones that ran side by side);
    separate runs of the same test (a log holding two runs, two files) are repeats, not parallel load, so the
    criterion takes the ``worst`` of them rather than adding them up."""

    def measure(measurements: Measurements) -> _Figure:
        jobs = _jobs(measurements, kind)
        if not jobs:
            return _Figure(None, note=f"no {kind.value} job in the results")
        failed = [job for job in jobs if job.failed]
        if failed:
            return _Figure(None, failure="; ".join(job.failure_reason() for job in failed))
        runs: dict[str, list[FioJobResult]] = {}
        for job in jobs:
            runs.setdefault(job.run, []).append(job)
        names = ", ".join(sorted({job.name for job in jobs}))
        note = f"fio job {names}" if len(runs) == 1 else f"fio job {names}; worst of {len(runs)} runs"
        return _Figure(worst(extract(run) for run in runs.values()), note=note)

    return measure


def _total_bandwidth_mbps(direction: Literal["read", "write"]) -> Callable[[Sequence[FioJobResult]], float]:
    # Jobs of one run and the same test (numjobs > 1 without group_reporting) ran side by side: rates add up.
    return lambda jobs: sum(getattr(job, direction).bandwidth_bytes_per_s for job in jobs) / 1e6


def _total_read_iops(jobs: Sequence[FioJobResult]) -> float:
    return sum(job.read.iops for job in jobs)


def _mean_read_latency_ms(jobs: Sequence[FioJobResult]) -> float:
    # Mean over every I/O of every job: weight each job's mean by the I/O it did.
    weight = sum(job.read.io_bytes for job in jobs)
    if weight == 0:
        return sum(job.read.mean_latency_ns for job in jobs) / len(jobs) / 1e6
    return sum(job.read.mean_latency_ns * job.read.io_bytes for job in jobs) / weight / 1e6


def _p99_read_latency(measurements: Measurements) -> _Figure:
    """The 99th percentile completion latency of the latency test; fio's percentiles cannot be merged, so
    with several jobs or runs the highest counts."""
    jobs = _jobs(measurements, FioTest.LATENCY_4K)
    if not jobs:
        return _Figure(None, note=f"no {FioTest.LATENCY_4K.value} job in the results")
    failed = [job for job in jobs if job.failed]
    if failed:
        return _Figure(None, failure="; ".join(job.failure_reason() for job in failed))
    values = [job.read.p99_completion_latency_ns for job in jobs]
    known = [value for value in values if value is not None]
    if len(known) != len(values):
        return _Figure(
            None, note="fio reported no completion latency percentiles (percentile_list or clat off?)"
        )
    names = ", ".join(sorted({job.name for job in jobs}))
    highest = "" if len(jobs) == 1 else f"; highest of {len(jobs)}"
    return _Figure(max(known) / 1e6, note=f"fio job {names}, completion latency{highest}")


def _timing(name: Literal["pvc_bound_seconds", "pod_mount_seconds"]) -> Callable[[Measurements], _Figure]:
    def measure(measurements: Measurements) -> _Figure:
        value: float | None = getattr(measurements, name)
        return _Figure(value, note="" if value is not None else "timed only by `volumes test`")

    return measure


def _integrity(measurements: Measurements) -> _Figure:
    verdict = measurements.integrity
    if verdict is None:
        return _Figure(None, note="no integrity verdict in the results")
    note = f"{verdict.verified} of {verdict.expected} files verified"
    if verdict.files != verdict.expected:
        note += f" ({verdict.files} checksums found)"
    return _Figure(verdict.percent, note=note)


_CRITERIA: tuple[_Criterion, ...] = (
    _Criterion("PVC bound", "s", "<", lambda t: t.pvc_bound_seconds, _timing("pvc_bound_seconds")),
    _Criterion("pod volume mounted", "s", "<", lambda t: t.pod_mount_seconds, _timing("pod_mount_seconds")),
    _Criterion(
        "sequential write",
        "MB/s",
        ">",
        lambda t: t.seq_write_mbps,
        _fio_figure(FioTest.SEQ_WRITE, _total_bandwidth_mbps("write"), min),
    ),
    _Criterion(
        "sequential read",
        "MB/s",
        ">",
        lambda t: t.seq_read_mbps,
        _fio_figure(FioTest.SEQ_READ, _total_bandwidth_mbps("read"), min),
    ),
    _Criterion(
        "4K random read",
        "IOPS",
        ">",
        lambda t: t.random_read_4k_iops,
        _fio_figure(FioTest.RAND_READ_4K, _total_read_iops, min),
    ),
    _Criterion(
        "4K read latency (mean)",
        "ms",
        "<",
        lambda t: t.latency_ms,
        _fio_figure(FioTest.LATENCY_4K, _mean_read_latency_ms, max),
    ),
    _Criterion("4K read latency (p99)", "ms", "<", lambda t: t.latency_p99_ms, _p99_read_latency),
)

# Integrity is "100% consistency": 100 must be reached, not exceeded, so it is graded as "at least".
_INTEGRITY_LABEL = "data integrity after remount"


def grade(measurements: Measurements, criteria: ClassThresholds, *, require_all: bool) -> ClassReport:
    """The report of one StorageClass. See the module docstring for how each verdict is reached."""
    results: list[CriterionResult] = []
    for criterion in _CRITERIA:
        required = criterion.threshold(criteria)
        if required is None:
            continue
        figure = criterion.measure(measurements)
        results.append(_judge(criterion.label, criterion.unit, criterion.comparator, required, figure))
    if criteria.integrity_percent is not None:
        figure = _integrity(measurements)
        if figure.value is None:
            verdict = Verdict.MISSING
        else:
            verdict = Verdict.PASS if figure.value >= criteria.integrity_percent else Verdict.FAIL
        results.append(
            CriterionResult(
                _INTEGRITY_LABEL, "%", ">=", criteria.integrity_percent, figure.value, verdict, figure.note
            )
        )
    notes = _informational(measurements)
    graded = [r for r in results if r.verdict is not Verdict.MISSING]
    passed = (
        not measurements.problems
        and bool(graded)
        and all(r.verdict is Verdict.PASS for r in graded)
        and not (require_all and len(graded) != len(results))
    )
    if not graded:
        notes += (
            "nothing could be graded: the results hold none of the measurements this class has criteria for",
        )
    return ClassReport(
        storage_class=measurements.storage_class,
        criteria=tuple(results),
        notes=notes,
        problems=measurements.problems,
        passed=passed,
    )


def _judge(
    label: str, unit: str, comparator: Literal["<", ">"], required: float, figure: _Figure
) -> CriterionResult:
    if figure.failure is not None:
        return CriterionResult(label, unit, comparator, required, None, Verdict.FAIL, figure.failure)
    if figure.value is None:
        return CriterionResult(label, unit, comparator, required, None, Verdict.MISSING, figure.note)
    ok = figure.value < required if comparator == "<" else figure.value > required
    return CriterionResult(
        label, unit, comparator, required, figure.value, Verdict.PASS if ok else Verdict.FAIL, figure.note
    )


def _informational(measurements: Measurements) -> tuple[str, ...]:
    """Figures reported without a criterion: the mixed workload, the latency tail, jobs that match no test."""
    notes: list[str] = []
    for job in _jobs(measurements, FioTest.MIXED_4K):
        if job.failed:
            notes.append(f"mixed 4K: {job.failure_reason()}")
            continue
        notes.append(
            f"mixed 4K ({job.name}): {job.read.iops:,.0f} read + {job.write.iops:,.0f} write IOPS, "
            f"mean latency {job.read.mean_latency_ns / 1e6:.3f} ms read / {job.write.mean_latency_ns / 1e6:.3f} ms write"
        )
    for job in _jobs(measurements, FioTest.LATENCY_4K):
        p99 = job.read.p99_completion_latency_ns
        if not job.failed and p99 is not None:
            notes.append(f"latency 4K ({job.name}): 99th percentile completion latency {p99 / 1e6:.3f} ms")
    for job in measurements.fio_jobs:
        if job.kind is None:
            notes.append(f"fio job {job.name!r} matches none of the suite's tests; not graded")
    return tuple(notes)
