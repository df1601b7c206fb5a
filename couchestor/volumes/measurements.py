"""What was measured for one StorageClass, gathered from fio documents, result blocks and timings.

:class:`Measurements` is the grader's input. It is built either from a cluster run (``volumes test``, which
also knows PVC bound and pod mount times) or from files (``volumes report``: fio JSON documents, or logs that
hold result blocks). Merging is pure; reading files is the caller's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from couchestor.errors import UserError
from couchestor.volumes.fio import FioJobResult, FioOutputError, parse_fio_json
from couchestor.volumes.markers import ResultBlock, extract_blocks


class IntegrityVerdict(msgspec.Struct):
    """What the integrity verifier printed: checksummed files found, verified, failed, and expected."""

    files: int
    verified: int
    failed: int
    expected: int

    @property
    def percent(self) -> float:
        """Share of the expected files that verified, 0 to 100 (a missing checksum list counts as 0)."""
        if self.expected <= 0:
            return 0.0
        return 100.0 * min(self.verified, self.expected) / self.expected


@dataclass(frozen=True, slots=True)
class Measurements:
    """Everything measured for one StorageClass. ``None`` means "not measured"."""

    storage_class: str
    fio_jobs: tuple[FioJobResult, ...] = ()
    integrity: IntegrityVerdict | None = None
    pvc_bound_seconds: float | None = None
    pod_mount_seconds: float | None = None
    problems: tuple[str, ...] = ()  # failures that are not a fio job's or a criterion's (timeouts, exits)

    def merged(self, other: Measurements) -> Measurements:
        """Both sets of measurements together; ``other``'s scalar figures win where both have one."""
        return dataclasses.replace(
            self,
            fio_jobs=self.fio_jobs + other.fio_jobs,
            integrity=other.integrity if other.integrity is not None else self.integrity,
            pvc_bound_seconds=_last(self.pvc_bound_seconds, other.pvc_bound_seconds),
            pod_mount_seconds=_last(self.pod_mount_seconds, other.pod_mount_seconds),
            problems=self.problems + other.problems,
        )


def _last(a: float | None, b: float | None) -> float | None:
    return b if b is not None else a


def merge_by_class(items: Iterable[Measurements]) -> dict[str, Measurements]:
    """Measurements combined per StorageClass, in order of first appearance."""
    out: dict[str, Measurements] = {}
    for item in items:
        previous = out.get(item.storage_class)
        out[item.storage_class] = item if previous is None else previous.merged(item)
    return out


_VERDICT = msgspec.json.Decoder(IntegrityVerdict)


def from_blocks(
    blocks: Sequence[ResultBlock], *, source: str, storage_class: str | None
) -> list[Measurements]:
    """Measurements from a log's result blocks. A block names its StorageClass; ``storage_class`` (from the
    command line) applies to blocks that do not, and a block with neither is an error."""
    out: list[Measurements] = []
    for block in blocks:
        where = f"{source}: block at line {block.line}"
        klass = block.attributes.get("storage-class") or storage_class
        if not klass:
            raise UserError(f"{where} names no StorageClass; pass --storage-class NAME")
        if block.kind == "fio":
            problems: tuple[str, ...] = ()
            exit_status = block.attributes.get("exit", "0")
            if exit_status != "0":
                problems = (f"fio exited with status {exit_status} ({where})",)
            try:
                jobs = parse_fio_json(block.body, source=where)
            except FioOutputError:
                if exit_status == "0":
                    raise
                raise UserError(
                    f"{where}: fio exited with status {exit_status} without results; its messages are in the log"
                ) from None
            out.append(Measurements(storage_class=klass, fio_jobs=jobs, problems=problems))
        elif block.kind == "integrity-verify":
            try:
                verdict = _VERDICT.decode(block.body.strip())
            except msgspec.DecodeError as exc:
                raise UserError(f"{where}: unreadable integrity verdict: {exc}") from None
            out.append(Measurements(storage_class=klass, integrity=verdict))
        # Other kinds (integrity-write) are progress notes, not results.
    return out


def from_file_text(text: str, *, source: str, storage_class: str | None) -> list[Measurements]:
    """Measurements from one file given to ``volumes report``: a log with result blocks, or one fio JSON
    document (which then needs ``storage_class``)."""
    blocks = extract_blocks(text, source=source)
    if blocks:
        found = from_blocks(blocks, source=source, storage_class=storage_class)
        if not found:
            raise UserError(f"{source}: its result blocks hold no fio results or integrity verdicts")
        return found
    jobs = parse_fio_json(text, source=source)
    if not storage_class:
        raise UserError(
            f"{source} is plain fio output, which names no StorageClass; pass --storage-class NAME"
        )
    return [Measurements(storage_class=storage_class, fio_jobs=jobs)]
