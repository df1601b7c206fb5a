"""The workload: the patterns of many volumes over time, and what they read as at any wall-clock time.

Two time axes. *Wall* time is what Prometheus stamps samples with (unix seconds); *simulated* time is what
patterns are written in. They meet at ``origin`` and simulated time runs ``scale`` times faster:
``sim = origin + scale * (wall - origin)``, so a demo can compress hours of load into minutes while a real
Prometheus keeps scraping in real time. Every public method takes and returns wall times.

Each volume has a timeline of segments (a pattern from a wall time on). :meth:`Workload.set_pattern` appends a
segment (the demo heats a volume up this way); history is append-only, so values at past times never change
and a query over the past answers the same before and after the change.

Cumulative counters (what Mayastor 2.x exports): operations and summed latency since the volume's counters
started, integrated in closed form from the noise-free levels (see :func:`~.patterns.ops_between`), floored to
whole operations as an exporter would report them. They count per wall second, so ``rate`` over them reads
the same IOPS as the gauges whatever the time scale. :meth:`Workload.reset_counters` plays an io-engine restart.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

from couchestor.sim.workload.patterns import (
    Kind,
    Pattern,
    Rates,
    iops_at,
    levels,
    noise_unit,
    noise_units,
    ops_between,
    ops_since,
)

RATE_COLUMNS = ("iops", "read_iops", "write_iops", "latency_us")
"""Instantaneous columns: total, read and write IOPS, mean latency (microseconds)."""
TOTAL_COLUMNS = ("read_ops", "write_ops", "read_latency_us", "write_latency_us")
"""Cumulative columns: operations and summed latency since the counters started, floored."""

# Counters start this long before the workload's origin by default, so history can be generated backwards.
DEFAULT_HISTORY_SPAN = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class Totals:
    """Cumulative counters of one volume: operations and summed latency (microseconds) since their start."""

    read_ops: float
    write_ops: float
    read_latency_us: float
    write_latency_us: float


@dataclass(frozen=True, slots=True)
class _Segment:
    since: float  # wall time this segment starts
    pattern: Pattern
    base: Totals  # counters (unfloored) at `since`


class _Volume:
    __slots__ = ("name", "node", "removed_at", "seed", "segments", "starts")

    def __init__(self, name: str, node: str, seed: int, first: _Segment) -> None:
        self.name = name
        self.node = node
        self.seed = seed
        self.segments = [first]
        self.starts = [first.since]
        self.removed_at: float | None = None

    def segment_at(self, wall: float) -> _Segment | None:
        if wall >= self.starts[-1]:  # the common case: now
            return self.segments[-1]
        index = bisect.bisect_right(self.starts, wall) - 1
        return self.segments[index] if index >= 0 else None


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """A volume's identity as the exporters label it."""

    name: str
    node: str


class Workload:
    """The load of many volumes, reproducible from ``seed``.

    ``clock`` gives the wall time (``time.time`` by default; tests pass a fake). ``origin`` is where the wall
    and simulated axes meet (default: the clock at construction). ``epoch`` is when counters of volumes added
    without ``since`` start (default: a week before ``origin``, so history can be written backwards).
    Not thread-safe: it belongs to one trio task tree.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        origin: float | None = None,
        epoch: float | None = None,
    ) -> None:
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"time scale must be a positive number, not {scale!r}")
        self.seed = seed
        self.scale = scale
        self.clock = clock
        self.origin = clock() if origin is None else origin
        self.epoch = self.origin - DEFAULT_HISTORY_SPAN if epoch is None else epoch
        self._volumes: dict[str, _Volume] = {}

    # --- time ---------------------------------------------------------------------------------------------

    def now(self) -> float:
        """The current wall time."""
        return self.clock()

    def sim_time(self, wall: float) -> float:
        """The simulated time at wall time ``wall``."""
        return self.origin + self.scale * (wall - self.origin)

    def wall_time(self, sim: float) -> float:
        """The wall time at which simulated time reaches ``sim``."""
        return self.origin + (sim - self.origin) / self.scale

    # --- volumes ------------------------------------------------------------------------------------------

    def add_volume(
        self, name: str, pattern: Pattern, *, node: str = "node-1", since: float | None = None
    ) -> None:
        """Add volume ``name`` with ``pattern`` from wall time ``since`` (default: the workload's ``epoch``).

        Its series exist (and its counters count from zero) from ``since`` on. Raises :class:`ValueError` for a
        name already present.
        """
        if name in self._volumes:
            raise ValueError(f"volume {name!r} already exists")
        start = self.epoch if since is None else since
        zero = Totals(0.0, 0.0, 0.0, 0.0)
        self._volumes[name] = _Volume(
            name, node, _volume_seed(self.seed, name), _Segment(start, pattern, zero)
        )

    def set_pattern(self, name: str, pattern: Pattern, *, at: float | None = None) -> None:
        """Give volume ``name`` ``pattern`` from wall time ``at`` on (default: now); counters continue.

        Raises :class:`KeyError` for an unknown volume and :class:`ValueError` for a time before the volume's
        latest change (history is append-only).
        """
        volume = self._get(name)
        when = self.now() if at is None else at
        self._append(volume, when, pattern, self._totals(volume, volume.segments[-1], when))

    def reset_counters(self, name: str, *, at: float | None = None) -> None:
        """Restart volume ``name``'s counters from zero at wall time ``at`` (default: now), like an io-engine
        restart; its pattern is unchanged."""
        volume = self._get(name)
        when = self.now() if at is None else at
        self._append(volume, when, volume.segments[-1].pattern, Totals(0.0, 0.0, 0.0, 0.0))

    def remove_volume(self, name: str, *, at: float | None = None) -> None:
        """End volume ``name``'s series at wall time ``at`` (default: now): no samples from then on."""
        volume = self._get(name)
        when = self.now() if at is None else at
        if when < volume.starts[-1]:
            raise ValueError(f"volume {name!r} changed at {volume.starts[-1]}, cannot remove it at {when}")
        volume.removed_at = when

    def volumes(self) -> list[VolumeInfo]:
        """Every volume ever added (removed ones included), in insertion order."""
        return [VolumeInfo(v.name, v.node) for v in self._volumes.values()]

    def __len__(self) -> int:
        return len(self._volumes)

    def pattern(self, name: str, at: float | None = None) -> Pattern | None:
        """Volume ``name``'s pattern at wall time ``at`` (default: now); None when it does not exist then."""
        volume = self._get(name)
        segment = self._live_segment(volume, self.now() if at is None else at)
        return None if segment is None else segment.pattern

    # --- values -------------------------------------------------------------------------------------------

    def rates_at(self, name: str, wall: float) -> Rates | None:
        """Volume ``name``'s load at wall time ``wall``; None when it does not exist then."""
        volume = self._get(name)
        segment = self._live_segment(volume, wall)
        return None if segment is None else self._rates(volume, segment, wall)

    def totals_at(self, name: str, wall: float) -> Totals | None:
        """Volume ``name``'s cumulative counters at wall time ``wall``, floored to whole units as exported;
        None when it does not exist then."""
        volume = self._get(name)
        segment = self._live_segment(volume, wall)
        return None if segment is None else _floored(self._totals(volume, segment, wall))

    def columns(
        self, name: str, walls: Sequence[float], wanted: Collection[str]
    ) -> tuple[list[float], dict[str, list[float]]]:
        """Volume ``name``'s ``wanted`` columns (:data:`RATE_COLUMNS`, :data:`TOTAL_COLUMNS`) at each of ``walls``
        (ascending), skipping times when it does not exist: (the times kept, column -> values at those times).

        The batch form of :meth:`rates_at`/:meth:`totals_at` with identical values, one pass over the volume's
        timeline: what history generation and range queries read.
        """
        unknown = set(wanted) - set(RATE_COLUMNS) - set(TOTAL_COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}: expected {RATE_COLUMNS + TOTAL_COLUMNS}")
        volume = self._get(name)
        kept: list[float] = []
        out: dict[str, list[float]] = {column: [] for column in wanted}
        want_rates = any(c in out for c in RATE_COLUMNS)
        want_totals = any(c in out for c in TOTAL_COLUMNS)
        origin, scale = self.origin, self.scale
        for segment, batch in _batches(volume, walls):
            kept += batch
            sims = [origin + scale * (wall - origin) for wall in batch]
            if want_rates:
                _rate_columns(segment.pattern, volume.seed, sims, out)
            if want_totals:
                _total_columns(segment, self.sim_time(segment.since), scale, sims, out)
        return kept, out

    def sample(
        self, wall: float, *, totals: bool = False
    ) -> Iterator[tuple[VolumeInfo, Rates, Totals | None]]:
        """Every volume alive at wall time ``wall`` with its load, and its floored counters when ``totals``.

        This is what one scrape sees; it is the hot loop of ``/metrics`` and history generation.
        """
        sim = self.sim_time(wall)
        for volume in self._volumes.values():
            segment = self._live_segment(volume, wall)
            if segment is None:
                continue
            pattern = segment.pattern
            unit = noise_unit(volume.seed, sim) if pattern.noise else 0.0
            rates = iops_at(pattern, sim, unit)
            counted = _floored(self._totals(volume, segment, wall)) if totals else None
            yield VolumeInfo(volume.name, volume.node), rates, counted

    # --- internals ----------------------------------------------------------------------------------------

    def _get(self, name: str) -> _Volume:
        try:
            return self._volumes[name]
        except KeyError:
            raise KeyError(f"no volume {name!r} in the workload") from None

    @staticmethod
    def _live_segment(volume: _Volume, wall: float) -> _Segment | None:
        if volume.removed_at is not None and wall >= volume.removed_at:
            return None
        return volume.segment_at(wall)

    def _append(self, volume: _Volume, when: float, pattern: Pattern, base: Totals) -> None:
        if when < volume.starts[-1]:
            raise ValueError(
                f"volume {volume.name!r} already changed at {volume.starts[-1]}; changes must not go back in time"
            )
        if volume.removed_at is not None:
            raise ValueError(f"volume {volume.name!r} was removed")
        if when == volume.starts[-1]:  # replace a change made at the same instant
            volume.segments.pop()
            volume.starts.pop()
        volume.segments.append(_Segment(when, pattern, base))
        volume.starts.append(when)

    def _rates(self, volume: _Volume, segment: _Segment, wall: float) -> Rates:
        sim = self.sim_time(wall)
        unit = noise_unit(volume.seed, sim) if segment.pattern.noise else 0.0
        return iops_at(segment.pattern, sim, unit)

    def _totals(self, volume: _Volume, segment: _Segment, wall: float) -> Totals:
        pattern, base = segment.pattern, segment.base
        # Counters advance per wall second: the simulated integral divided by the time scale.
        ops = ops_between(pattern, self.sim_time(segment.since), self.sim_time(wall)) / self.scale
        reads = ops * pattern.read_fraction
        writes = ops - reads
        return Totals(
            base.read_ops + reads,
            base.write_ops + writes,
            base.read_latency_us + reads * pattern.latency_us,
            base.write_latency_us + writes * pattern.latency_us,
        )


def generate_volumes(count: int, *, seed: int = 0, start: float = 0.0) -> list[tuple[str, Pattern]]:
    """``count`` volumes named like PVs (``pvc-<uuid>``) with a reproducible mix of every pattern kind.

    Mostly cold or diurnal volumes, some bursty, a few hot; ramps start at simulated time ``start`` (default 0)
    and last up to an hour. Meant for demos and benchmarks; tests that check values build their own patterns.
    """
    rng = random.Random(seed)
    volumes: list[tuple[str, Pattern]] = []
    for _ in range(count):
        name = f"pvc-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        roll = rng.random()
        common = {
            "read_fraction": round(rng.uniform(0.3, 0.9), 2),
            "latency_us": round(rng.uniform(80, 900), 1),
        }
        noise = round(rng.uniform(0.0, 0.2), 2)
        if roll < 0.1:
            pattern = Pattern(Kind.IDLE, base=0.0, **common)
        elif roll < 0.4:
            pattern = Pattern(Kind.CONSTANT, base=round(rng.uniform(10, 400), 1), noise=noise, **common)
        elif roll < 0.7:
            base = round(rng.uniform(200, 3000), 1)
            pattern = Pattern(
                Kind.DIURNAL,
                base=base,
                amplitude=round(base * rng.uniform(0.2, 0.9), 1),
                phase=round(rng.uniform(0, 86_400)),
                noise=noise,
                **common,
            )
        elif roll < 0.9:
            period = float(rng.choice((300, 600, 1800, 3600)))
            pattern = Pattern(
                Kind.BURSTY,
                base=round(rng.uniform(50, 500), 1),
                amplitude=round(rng.uniform(2000, 9000), 1),
                period=period,
                burst_duration=round(period * rng.uniform(0.05, 0.3)),
                phase=round(rng.uniform(0, period)),
                noise=noise,
                **common,
            )
        else:
            up = rng.random() < 0.5
            low, high = round(rng.uniform(50, 400), 1), round(rng.uniform(5500, 12000), 1)
            pattern = Pattern(
                Kind.RAMP,
                base=low if up else high,
                target=high if up else low,
                ramp_start=start,
                ramp_end=start + round(rng.uniform(600, 3600)),
                noise=noise,
                **common,
            )
        volumes.append((name, pattern))
    return volumes


def _batches(volume: _Volume, walls: Sequence[float]) -> Iterator[tuple[_Segment, list[float]]]:
    """Runs of ``walls`` (ascending) that fall in the same segment of ``volume``'s life."""
    starts, segments = volume.starts, volume.segments
    until = math.inf if volume.removed_at is None else volume.removed_at
    index = -1
    batch: list[float] = []
    for wall in walls:
        if wall < starts[0] or wall >= until:
            continue
        if index + 1 < len(starts) and starts[index + 1] <= wall:
            if batch:
                yield segments[index], batch
                batch = []
            while index + 1 < len(starts) and starts[index + 1] <= wall:
                index += 1
        batch.append(wall)
    if batch:
        yield segments[index], batch


def _rate_columns(pattern: Pattern, seed: int, sims: list[float], out: dict[str, list[float]]) -> None:
    # The same arithmetic as iops_at, element by element, so batch and single values are identical.
    noise = pattern.noise
    jitters = [1.0 + noise * u for u in noise_units(seed, sims)] if noise else [1.0] * len(sims)
    totals = [max(0.0, level * jitter) for level, jitter in zip(levels(pattern, sims), jitters, strict=True)]
    fraction = pattern.read_fraction
    reads = [total * fraction for total in totals]
    writes = [total - read for total, read in zip(totals, reads, strict=True)]
    if "iops" in out:
        out["iops"] += [read + write for read, write in zip(reads, writes, strict=True)]
    if "read_iops" in out:
        out["read_iops"] += reads
    if "write_iops" in out:
        out["write_iops"] += writes
    if "latency_us" in out:
        latency = pattern.latency_us
        out["latency_us"] += [latency * jitter for jitter in jitters]


def _total_columns(
    segment: _Segment, since: float, scale: float, sims: list[float], out: dict[str, list[float]]
) -> None:
    # The same arithmetic as Workload._totals followed by _floored.
    pattern, base = segment.pattern, segment.base
    ops = [count / scale for count in ops_since(pattern, since, sims)]
    fraction, latency = pattern.read_fraction, pattern.latency_us
    reads = [count * fraction for count in ops]
    writes = [count - read for count, read in zip(ops, reads, strict=True)]
    floor = math.floor
    if "read_ops" in out:
        out["read_ops"] += [float(floor(base.read_ops + read)) for read in reads]
    if "write_ops" in out:
        out["write_ops"] += [float(floor(base.write_ops + write)) for write in writes]
    if "read_latency_us" in out:
        out["read_latency_us"] += [float(floor(base.read_latency_us + read * latency)) for read in reads]
    if "write_latency_us" in out:
        out["write_latency_us"] += [float(floor(base.write_latency_us + write * latency)) for write in writes]


def _volume_seed(seed: int, name: str) -> int:
    digest = hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _floored(totals: Totals) -> Totals:
    return Totals(
        float(math.floor(totals.read_ops)),
        float(math.floor(totals.write_ops)),
        float(math.floor(totals.read_latency_us)),
        float(math.floor(totals.write_latency_us)),
    )
