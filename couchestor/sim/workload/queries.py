"""The workload's sample history as a :class:`~couchestor.sim.promql.SeriesSource` for the demo query endpoint.

A Prometheus scraping the simulator every ``step`` seconds holds one sample per series per scrape. This source
computes those samples on demand instead of storing them: the grid times ``k * step`` (wall milliseconds), each
valued as a scrape at that instant would see it. :func:`~.exposition.write_history` writes the very same points,
so a Prometheus backfilled from that history and this source answer the same queries with the same numbers.
Values at past times never change (the workload's history is append-only), so answers are stable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from couchestor.sim.promql import Labels, Matcher, Sample
from couchestor.sim.workload.exposition import ExportOptions, Family, families
from couchestor.sim.workload.model import Workload


class WorkloadSamples:
    """Serves the samples a Prometheus scraping ``workload`` every ``step`` seconds would hold.

    Cost: one pattern evaluation per returned sample (a 1h range at a 15 s step is 241 per series).
    """

    def __init__(self, workload: Workload, options: ExportOptions, *, step: float = 15.0) -> None:
        self._step_ms = round(step * 1000)
        if self._step_ms <= 0:
            raise ValueError(f"sample step must be at least 1ms, not {step}")
        self._workload = workload
        self._families = families(options)

    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> Iterator[tuple[Labels, Sequence[Sample]]]:
        first = -(-start_ms // self._step_ms) * self._step_ms
        grid = range(first, end_ms + 1, self._step_ms)
        name_matchers = [m for m in matchers if m.name == "__name__"]
        for family in self._families:
            if not all(m.matches({"__name__": family.name}) for m in name_matchers):
                continue
            for info in self._workload.volumes():
                labels = {
                    "__name__": family.name,
                    **dict(zip(family.label_names, family.labels(info), strict=True)),
                }
                if not all(m.matches(labels) for m in matchers):
                    continue
                samples = self._samples(family, info.name, grid)
                if samples:
                    yield labels, samples

    def _samples(self, family: Family, name: str, grid: range) -> list[Sample]:
        kept, columns = self._workload.columns(name, [t_ms / 1000 for t_ms in grid], (family.column,))
        return [(round(wall * 1000), value) for wall, value in zip(kept, columns[family.column], strict=True)]
