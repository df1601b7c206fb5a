"""Decode fio's JSON output (``fio --output-format=json``) into the per-job figures the grader needs.

Only fio 3.x output is understood (latencies in nanoseconds: ``lat_ns``/``clat_ns``). The Structs declare just
the fields that are read; everything else in fio's (large) document is skipped by the decoder.

Each job is classified as one of the suite's tests (:class:`FioTest`): by its name when it is one of the
suite's job names, otherwise from its options (``rw``, ``bs``, ``iodepth``; job options override the global
ones), so fio output from a user's own job file can be graded too. Jobs that match no test are kept as
"other" and reported, not graded.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

import msgspec

from couchestor.errors import UserError


class FioOutputError(UserError):
    """fio output that cannot be read: not JSON, not fio's document, or a field the grader needs is missing."""


class FioTest(enum.StrEnum):
    """The tests of the suite; the value is the fio job name the suite's job file uses."""

    SEQ_WRITE = "seq-write"
    SEQ_READ = "seq-read"
    RAND_READ_4K = "rand-read-4k"
    LATENCY_4K = "latency-4k"
    MIXED_4K = "mixed-4k"


class _Latency(msgspec.Struct):
    mean: float


class _CompletionLatency(msgspec.Struct):
    # Percentiles by fio's keys ("99.000000"); absent when the direction did no I/O or percentiles were off.
    percentile: dict[str, float] = msgspec.field(default_factory=dict)


class _Direction(msgspec.Struct):
    io_bytes: int
    bw: float  # KiB/s, as fio reports it
    iops: float
    lat_ns: _Latency
    clat_ns: _CompletionLatency = msgspec.field(default_factory=_CompletionLatency)


class _Job(msgspec.Struct):
    jobname: str
    read: _Direction
    write: _Direction
    error: int = 0
    options: dict[str, str] = msgspec.field(name="job options", default_factory=dict)


class _Output(msgspec.Struct):
    jobs: list[_Job]
    global_options: dict[str, str] = msgspec.field(name="global options", default_factory=dict)


_DECODER = msgspec.json.Decoder(_Output)


@dataclass(frozen=True, slots=True)
class DirectionFigures:
    """What one direction (read or write) of a job achieved."""

    io_bytes: int
    bandwidth_bytes_per_s: float
    iops: float
    mean_latency_ns: float
    p99_completion_latency_ns: float | None


@dataclass(frozen=True, slots=True)
class FioJobResult:
    """One fio job: its name, the test it measures (None: not one of the suite's tests), figures, error, and
    the fio run it belongs to (``run``: the source of its JSON document; jobs of one run ran together)."""

    name: str
    kind: FioTest | None
    read: DirectionFigures
    write: DirectionFigures
    error: int
    run: str = ""

    @property
    def failed(self) -> bool:
        """fio reported an error for this job, or the job did no I/O at all (e.g. its file was never created)."""
        return self.error != 0 or (self.read.io_bytes == 0 and self.write.io_bytes == 0)

    def failure_reason(self) -> str:
        """Why :attr:`failed` is true, in words."""
        if self.error != 0:
            return f"fio job {self.name!r} failed with error {self.error} ({os.strerror(self.error)})"
        return f"fio job {self.name!r} did no I/O (see fio's messages in the log)"


def parse_fio_json(data: bytes | str, *, source: str) -> tuple[FioJobResult, ...]:
    """Decode one fio JSON document; ``source`` names it in error messages.

    fio sometimes prints a line of notes before the document when its output goes to stdout; anything before
    the first ``{`` is skipped. Raises :class:`FioOutputError` for anything that is not fio 3.x JSON output.
    """
    raw = data.encode() if isinstance(data, str) else data
    start = raw.find(b"{")
    if start < 0:
        raise FioOutputError(f"{source}: no JSON object found; is this fio --output-format=json output?")
    try:
        output = _DECODER.decode(raw[start:])
    except msgspec.ValidationError as exc:
        raise FioOutputError(f"{source}: not fio 3.x JSON output: {exc}") from None
    except msgspec.DecodeError as exc:
        raise FioOutputError(f"{source}: malformed JSON: {exc}") from None
    if not output.jobs:
        raise FioOutputError(f"{source}: fio output lists no jobs")
    return tuple(_job_result(job, output.global_options, source) for job in output.jobs)


def _job_result(job: _Job, global_options: dict[str, str], run: str) -> FioJobResult:
    options = {**global_options, **job.options}
    return FioJobResult(
        name=job.jobname,
        kind=classify(job.jobname, options),
        read=_figures(job.read),
        write=_figures(job.write),
        error=job.error,
        run=run,
    )


def _figures(direction: _Direction) -> DirectionFigures:
    return DirectionFigures(
        io_bytes=direction.io_bytes,
        bandwidth_bytes_per_s=direction.bw * 1024.0,
        iops=direction.iops,
        mean_latency_ns=direction.lat_ns.mean,
        p99_completion_latency_ns=direction.clat_ns.percentile.get("99.000000"),
    )


_SIZE_SUFFIX = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}


def size_bytes(text: str) -> int | None:
    """A size as fio reads it (``4k``, ``2g``, ``1048576``: binary units, fio's default ``kb_base``); None when
    it is not one."""
    value = text.strip().lower()
    digits = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(digits) :]
    if not digits.isdigit() or unit not in _SIZE_SUFFIX:
        return None
    return int(digits) * _SIZE_SUFFIX[unit]


def _block_size(text: str | None) -> int | None:
    """fio's default block size spelling (``4k``, ``4096``, ``1m``): binary units, as fio's default ``kb_base``."""
    if text is None:
        return 4096
    return size_bytes(text)  # None for e.g. a per-direction list "4k,64k": not a shape the grader classifies


def classify(jobname: str, options: dict[str, str]) -> FioTest | None:
    """The test a job measures: its suite name if it has one, else what its ``rw``/``bs``/``iodepth`` say.

    Sequential read/write at any block size of 64 KiB or more measure throughput; 4 KiB random reads measure
    IOPS, or latency when run at queue depth 1; 4 KiB random read/write mixes are the mixed test.
    """
    try:
        return FioTest(jobname)
    except ValueError:
        pass
    rw = options.get("rw", options.get("readwrite", "read")).split(":")[0]
    bs = _block_size(options.get("bs"))
    depth = options.get("iodepth", "1")
    if bs is None:
        return None
    if rw == "write" and bs >= 65536:
        return FioTest.SEQ_WRITE
    if rw == "read" and bs >= 65536:
        return FioTest.SEQ_READ
    if rw == "randread" and bs == 4096:
        return FioTest.LATENCY_4K if depth == "1" else FioTest.RAND_READ_4K
    if rw in ("randrw", "rw", "readwrite") and bs == 4096:
        return FioTest.MIXED_4K
    return None
