"""The workload simulator: per-volume IOPS patterns, exported for Prometheus and as backfill history.

- :mod:`.patterns`: :class:`Pattern` and the pure functions that evaluate it.
- :mod:`.model`: :class:`Workload`, many volumes' pattern timelines on a (possibly compressed) clock.
- :mod:`.exposition`: ``/metrics`` rendering and OpenMetrics history for ``promtool``.
- :mod:`.queries`: the workload's samples as a source for the PromQL subset (:mod:`couchestor.sim.promql`).
- :mod:`.app`: the ASGI app and :func:`serve_workload`.
"""

from couchestor.sim.workload.app import WorkloadApp, serve_workload
from couchestor.sim.workload.exposition import ExportOptions, render_metrics, write_history
from couchestor.sim.workload.model import Totals, VolumeInfo, Workload, generate_volumes
from couchestor.sim.workload.patterns import Kind, Pattern, Rates, iops_at, noise_unit, ops_between
from couchestor.sim.workload.queries import WorkloadSamples

__all__ = [
    "ExportOptions",
    "Kind",
    "Pattern",
    "Rates",
    "Totals",
    "VolumeInfo",
    "Workload",
    "WorkloadApp",
    "WorkloadSamples",
    "generate_volumes",
    "iops_at",
    "noise_unit",
    "ops_between",
    "render_metrics",
    "serve_workload",
    "write_history",
]
