"""Per-volume IOPS patterns as plain data, and the pure functions that evaluate them.

A :class:`Pattern` describes one volume's load over *simulated* time (unix seconds):

- ``constant``: ``base`` IOPS.
- ``idle``: no I/O at all.
- ``diurnal``: ``base + amplitude * sin(2π (t + phase) / period)``, a day/night cycle by default.
- ``bursty``: ``base``, plus ``amplitude`` during the first ``burst_duration`` seconds of every ``period``
  (shifted by ``phase``): a square wave, so bursts are predictable and their average is known exactly.
- ``ramp``: ``base`` until ``ramp_start``, then linearly to ``target`` at ``ramp_end``, ``target`` after;
  a ramp up when ``target > base``, down otherwise (the demo heats volumes up and cools them down this way).

Every pattern splits its IOPS into reads (``read_fraction``) and writes, and has a mean ``latency_us``.
``noise`` adds reproducible jitter to the *instantaneous* values: each simulated second gets a pseudo-random
unit in [-1, 1) from :func:`noise_unit` (a hash of a seed and the second, no random generator state), and the
level becomes ``level * (1 + noise * unit)``. :func:`ops_between` integrates the noise-free level in closed
form; cumulative operation counters are built from it, so their ``rate`` is the pattern's exact mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

_TWO_PI = 2.0 * math.pi
_MASK64 = (1 << 64) - 1
_2_52 = float(1 << 52)


class Kind(StrEnum):
    """The shape of a pattern."""

    CONSTANT = "constant"
    IDLE = "idle"
    DIURNAL = "diurnal"
    BURSTY = "bursty"
    RAMP = "ramp"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One volume's load; see the module docstring for each kind's formula. Times are simulated unix seconds.

    Raises :class:`ValueError` naming the field for values that cannot describe a load (negative IOPS, a
    non-positive period, a read fraction outside [0, 1], a ramp ending before it starts, noise outside [0, 1)).
    """

    kind: Kind = Kind.CONSTANT
    base: float = 100.0
    amplitude: float = 0.0
    period: float = 86_400.0
    phase: float = 0.0
    burst_duration: float = 60.0
    target: float = 0.0
    ramp_start: float = 0.0
    ramp_end: float = 0.0
    read_fraction: float = 0.7
    latency_us: float = 500.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        for name in ("base", "amplitude", "period", "phase", "burst_duration", "target"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"pattern {name} must be a finite number, not {getattr(self, name)!r}")
        if self.base < 0 or self.amplitude < 0 or self.target < 0 or self.latency_us < 0:
            raise ValueError("pattern base, amplitude, target and latency_us must not be negative")
        if self.period <= 0:
            raise ValueError(f"pattern period must be positive, not {self.period}")
        if not 0 <= self.burst_duration <= self.period:
            raise ValueError(f"pattern burst_duration must be within [0, period], not {self.burst_duration}")
        if self.kind is Kind.DIURNAL and self.amplitude > self.base:
            raise ValueError(
                f"a diurnal amplitude ({self.amplitude}) larger than its base ({self.base}) would go negative"
            )
        if self.ramp_end < self.ramp_start:
            raise ValueError(f"pattern ramp_end ({self.ramp_end}) is before ramp_start ({self.ramp_start})")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError(f"pattern read_fraction must be within [0, 1], not {self.read_fraction}")
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"pattern noise must be within [0, 1), not {self.noise}")


@dataclass(frozen=True, slots=True)
class Rates:
    """Instantaneous load of one volume: read and write IOPS and mean latency in microseconds."""

    read_iops: float
    write_iops: float
    latency_us: float

    @property
    def iops(self) -> float:
        return self.read_iops + self.write_iops


def level_at(pattern: Pattern, t: float) -> float:
    """The noise-free total IOPS of ``pattern`` at simulated time ``t``."""
    kind = pattern.kind
    if kind is Kind.CONSTANT:
        return pattern.base
    if kind is Kind.IDLE:
        return 0.0
    if kind is Kind.DIURNAL:
        return pattern.base + pattern.amplitude * math.sin(_TWO_PI * (t + pattern.phase) / pattern.period)
    if kind is Kind.BURSTY:
        in_burst = (t + pattern.phase) % pattern.period < pattern.burst_duration
        return pattern.base + pattern.amplitude if in_burst else pattern.base
    # RAMP
    if t <= pattern.ramp_start:
        return pattern.base
    if t >= pattern.ramp_end:
        return pattern.target
    progress = (t - pattern.ramp_start) / (pattern.ramp_end - pattern.ramp_start)
    return pattern.base + (pattern.target - pattern.base) * progress


def iops_at(pattern: Pattern, t: float, noise_unit: float = 0.0) -> Rates:
    """Read/write IOPS and latency of ``pattern`` at simulated time ``t``.

    ``noise_unit`` in [-1, 1] (usually :func:`noise_unit` of the volume's seed and ``t``) scales the jitter;
    0 gives the noise-free values. IOPS never go below zero.
    """
    jitter = 1.0 + pattern.noise * noise_unit
    total = max(0.0, level_at(pattern, t) * jitter)
    reads = total * pattern.read_fraction
    return Rates(reads, total - reads, pattern.latency_us * jitter)


def levels(pattern: Pattern, ts: Sequence[float]) -> list[float]:
    """:func:`level_at` for many times at once (same results, without a function call per time)."""
    kind, base = pattern.kind, pattern.base
    if kind is Kind.CONSTANT:
        return [base] * len(ts)
    if kind is Kind.IDLE:
        return [0.0] * len(ts)
    amplitude, period, phase = pattern.amplitude, pattern.period, pattern.phase
    if kind is Kind.DIURNAL:
        sin = math.sin
        return [base + amplitude * sin(_TWO_PI * (t + phase) / period) for t in ts]
    if kind is Kind.BURSTY:
        high, duration = base + amplitude, pattern.burst_duration
        return [high if (t + phase) % period < duration else base for t in ts]
    return [level_at(pattern, t) for t in ts]


def noise_units(seed: int, ts: Sequence[float]) -> list[float]:
    """:func:`noise_unit` for many times at once (same results)."""
    out: list[float] = []
    start = seed * 0x9E3779B97F4A7C15 + 0x94D049BB133111EB
    floor = math.floor
    for t in ts:
        z = (start + floor(t) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
        out.append((z >> 11) / _2_52 - 1.0)
    return out


def ops_since(pattern: Pattern, a: float, ts: Sequence[float]) -> list[float]:
    """:func:`ops_between` from ``a`` to each of ``ts`` (same results)."""
    if pattern.kind is Kind.CONSTANT:
        base = pattern.base
        return [base * (t - a) if t > a else 0.0 for t in ts]
    if pattern.kind is Kind.IDLE:
        return [0.0] * len(ts)
    return [ops_between(pattern, a, t) for t in ts]


def ops_between(pattern: Pattern, a: float, b: float) -> float:
    """Operations ``pattern`` performs from simulated time ``a`` to ``b`` (the integral of its noise-free level).

    Closed form for every kind, so counters over hours cost the same as over seconds.
    """
    if b <= a:
        return 0.0
    kind = pattern.kind
    if kind is Kind.CONSTANT:
        return pattern.base * (b - a)
    if kind is Kind.IDLE:
        return 0.0
    if kind is Kind.DIURNAL:
        scale = pattern.amplitude * pattern.period / _TWO_PI
        cos_b = math.cos(_TWO_PI * (b + pattern.phase) / pattern.period)
        cos_a = math.cos(_TWO_PI * (a + pattern.phase) / pattern.period)
        return pattern.base * (b - a) - scale * (cos_b - cos_a)
    if kind is Kind.BURSTY:
        bursting = _burst_seconds(pattern, b) - _burst_seconds(pattern, a)
        return pattern.base * (b - a) + pattern.amplitude * bursting
    return _ramp_ops(pattern, a, b)


def noise_unit(seed: int, t: float) -> float:
    """A reproducible pseudo-random number in [-1, 1) for ``seed`` and the simulated second containing ``t``.

    A splitmix64 hash of the two, so any second can be evaluated on its own, in any order, at no state cost.
    """
    z = (seed * 0x9E3779B97F4A7C15 + 0x94D049BB133111EB + math.floor(t) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z >> 11) / _2_52 - 1.0


def _burst_seconds(pattern: Pattern, t: float) -> float:
    """Seconds spent bursting from the cycle containing time 0 (shifted by phase) up to ``t``."""
    x = t + pattern.phase
    cycles = math.floor(x / pattern.period)
    return cycles * pattern.burst_duration + min(x - cycles * pattern.period, pattern.burst_duration)


def _ramp_ops(pattern: Pattern, a: float, b: float) -> float:
    start, end = pattern.ramp_start, pattern.ramp_end
    total = 0.0
    # Before the ramp: flat at base.
    if a < start:
        total += pattern.base * (min(b, start) - a)
    # On the ramp: trapezoid between the levels at the clipped ends.
    lo, hi = max(a, start), min(b, end)
    if hi > lo:
        total += (level_at(pattern, lo) + level_at(pattern, hi)) / 2.0 * (hi - lo)
    # After the ramp: flat at target.
    if b > end:
        total += pattern.target * (b - max(a, end))
    return total
