"""The workload as Prometheus metrics: live ``/metrics`` exposition and OpenMetrics history for backfilling.

Metric families (see :class:`ExportOptions`):

- gauges, labelled ``volume_id="<volume>"`` (the seeds' convention): ``openebs_volume_iops`` (reads + writes),
  and with ``split_gauges`` also ``openebs_volume_read_iops``, ``openebs_volume_write_iops`` and
  ``openebs_volume_latency_us`` (mean latency). The names follow ``iops_metric``: its ``_iops`` suffix is
  replaced by ``_read_iops``, ``_write_iops`` and ``_latency_us``.
- with ``counters``, real Mayastor 2.x's io-engine families, labelled ``node``, ``pv_name``:
  ``volume_num_read_ops``, ``volume_num_write_ops``, ``volume_read_latency_us``, ``volume_write_latency_us``.
  Like the real exporter they are typed *gauge* although they hold cumulative totals.

History (:func:`write_history`) is OpenMetrics text as ``promtool tsdb create-blocks-from openmetrics`` reads
it: a ``# HELP``/``# TYPE`` header per family, each family's samples contiguous and within it each series'
samples contiguous and in time order, timestamps in seconds, ``# EOF`` at the end. The samples are those a
scrape at each grid time ``k * step`` would see, the same points :class:`WorkloadSamples` serves queries from.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from couchestor.sim.workload.model import TOTAL_COLUMNS, VolumeInfo, Workload


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """Which metric families the workload exports, and under which names."""

    gauges: bool = True
    split_gauges: bool = True
    counters: bool = False
    iops_metric: str = "openebs_volume_iops"
    volume_label: str = "volume_id"


@dataclass(frozen=True, slots=True)
class Family:
    """One exported metric family: its name, help, label names, how a volume maps to label values, and the
    workload column (:data:`~.model.RATE_COLUMNS` or :data:`~.model.TOTAL_COLUMNS`) it exports."""

    name: str
    documentation: str
    label_names: tuple[str, ...]
    labels: Callable[[VolumeInfo], tuple[str, ...]]
    column: str

    @property
    def counter(self) -> bool:
        return self.column in TOTAL_COLUMNS


def families(options: ExportOptions) -> list[Family]:
    """The families ``options`` export, in exposition order."""
    out: list[Family] = []
    if options.gauges:
        label = (options.volume_label,)

        def by_volume(info: VolumeInfo) -> tuple[str, ...]:
            return (info.name,)

        stem = options.iops_metric.removesuffix("_iops")
        out.append(Family(options.iops_metric, "Volume IOPS (reads + writes).", label, by_volume, "iops"))
        if options.split_gauges:
            out += [
                Family(f"{stem}_read_iops", "Volume read IOPS.", label, by_volume, "read_iops"),
                Family(f"{stem}_write_iops", "Volume write IOPS.", label, by_volume, "write_iops"),
                Family(f"{stem}_latency_us", "Volume mean I/O latency (us).", label, by_volume, "latency_us"),
            ]
    if options.counters:
        names = ("node", "pv_name")

        def by_target(info: VolumeInfo) -> tuple[str, ...]:
            return (info.node, info.name)

        out += [
            Family("volume_num_read_ops", "Read operations (total).", names, by_target, "read_ops"),
            Family("volume_num_write_ops", "Write operations (total).", names, by_target, "write_ops"),
            Family("volume_read_latency_us", "Read latency (total us).", names, by_target, "read_latency_us"),
            Family(
                "volume_write_latency_us", "Write latency (total us).", names, by_target, "write_latency_us"
            ),
        ]
    return out


class WorkloadCollector(Collector):
    """A prometheus-client collector that samples the workload at scrape time.

    One collector over the whole workload instead of a ``Gauge`` child per volume: nothing to keep in sync
    when volumes come and go, and a scrape costs one pass over the volumes. ``at`` pins the sample time
    (tests); by default each collection samples the workload's clock.
    """

    def __init__(self, workload: Workload, options: ExportOptions, *, at: float | None = None) -> None:
        self._workload = workload
        self._families = families(options)
        self._at = at

    def collect(self) -> Iterable[Metric]:
        wall = self._workload.now() if self._at is None else self._at
        built = [GaugeMetricFamily(f.name, f.documentation, labels=f.label_names) for f in self._families]
        totals = any(f.counter for f in self._families)
        for info, rates, counted in self._workload.sample(wall, totals=totals):
            for family, metric in zip(self._families, built, strict=True):
                source = counted if family.counter else rates
                metric.add_metric(family.labels(info), getattr(source, family.column))
        return built


def metrics_registry(workload: Workload, options: ExportOptions) -> CollectorRegistry:
    """A registry holding only the workload's collector (no process or platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkloadCollector(workload, options))
    return registry


def render_metrics(workload: Workload, options: ExportOptions, *, at: float | None = None) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of the workload at wall time ``at`` (default: now)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkloadCollector(workload, options, at=at))
    return generate_latest(registry)


def history_times(start: float, end: float, step: float) -> list[int]:
    """Grid times in milliseconds: every multiple of ``step`` within ``[start, end]``.

    Raises :class:`ValueError` for a non-positive step or an end before the start.
    """
    step_ms = round(step * 1000)
    if step_ms <= 0:
        raise ValueError(f"history step must be at least 1ms, not {step}")
    if end < start:
        raise ValueError(f"history end ({end}) is before its start ({start})")
    first = -(-round(start * 1000) // step_ms) * step_ms
    return list(range(first, round(end * 1000) + 1, step_ms))


def write_history(
    workload: Workload,
    out: IO[str],
    *,
    start: float,
    end: float,
    step: float,
    options: ExportOptions,
) -> int:
    """Write the samples of grid times ``k * step`` in ``[start, end]`` (wall seconds) to ``out`` as OpenMetrics.

    Families after the first are spooled to temporary files and appended, so memory stays flat however long
    the history. Returns the number of samples written.
    """
    exported = families(options)
    times = history_times(start, end, step)
    spools: list[IO[str]] = [out] + [_spool(out) for _ in exported[1:]]
    try:
        for family, spool in zip(exported, spools, strict=True):
            spool.write(f"# HELP {family.name} {family.documentation}\n# TYPE {family.name} gauge\n")
        written = _write_samples(workload, exported, spools, times)
        for spool in spools[1:]:
            spool.seek(0)
            shutil.copyfileobj(spool, out, 1 << 20)
        out.write("# EOF\n")
    finally:
        for spool in spools[1:]:
            spool.close()
    return written


def _write_samples(
    workload: Workload, exported: Sequence[Family], spools: Sequence[IO[str]], times: list[int]
) -> int:
    # Series-major: OpenMetrics wants each series' samples together (and in time order), and evaluating one
    # volume over all times at once is also the cheapest way to compute them.
    stamps = {t_ms / 1000: f" {_seconds(t_ms)}\n" for t_ms in times}
    walls = list(stamps)
    wanted = {family.column for family in exported}
    written = 0
    for info in workload.volumes():
        kept, columns = workload.columns(info.name, walls, wanted)
        suffixes = [stamps[wall] for wall in kept]
        for family, spool in zip(exported, spools, strict=True):
            prefix = _series(family, info) + " "
            spool.writelines(
                [
                    prefix + repr(value) + suffix
                    for value, suffix in zip(columns[family.column], suffixes, strict=True)
                ]
            )
            written += len(kept)
    return written


def _spool(out: IO[str]) -> IO[str]:
    # Next to the output when it is a real file (same disk, no surprise /tmp exhaustion), else the default.
    name = getattr(out, "name", None)
    directory = (
        os.path.dirname(os.path.abspath(name)) if isinstance(name, str) and os.path.exists(name) else None
    )
    return tempfile.TemporaryFile("w+", encoding="utf-8", dir=directory)


def _series(family: Family, info: VolumeInfo) -> str:
    pairs = ",".join(
        f'{name}="{_escape(value)}"'
        for name, value in zip(family.label_names, family.labels(info), strict=True)
    )
    return f"{family.name}{{{pairs}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _seconds(t_ms: int) -> str:
    whole, ms = divmod(t_ms, 1000)
    return str(whole) if ms == 0 else f"{whole}.{ms:03d}"
