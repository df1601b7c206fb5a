"""What a soak run does and when, as plain data: the seeded fault schedule and the volumes' loads.

Everything here is a pure function of the seed and the options, so a run is replayed by giving the same seed:
the same faults at the same offsets with the same hold times, and the same loads.

Times are wall seconds from the start of the run. Loads are written in *simulated* time (the workload
simulator's axis, ``scale`` times faster than the wall clock): a day/night cycle per simulated day and a surge
over the last days of each simulated 30-day month.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from couchestor.sim.workload import Kind, Pattern

DAY = 86_400.0
MONTH = 30 * DAY
#: The days at the end of a month that the month-end volumes surge over.
MONTH_END_DAYS = 3


class FaultKind(StrEnum):
    """The faults a soak injects; each says what it does in :data:`FAULT_HELP`."""

    APISERVER_RESTART = "apiserver-restart"
    ETCD_RESTART = "etcd-restart"
    COMPACTION = "compaction"
    PROMETHEUS_GAP = "prometheus-gap"
    OPERATOR_KILL = "operator-kill"
    REPLICA_FAULT = "replica-fault"
    SLOW_REBUILD = "slow-rebuild"


FAULT_HELP: dict[FaultKind, str] = {
    FaultKind.APISERVER_RESTART: "kube-apiserver stopped (SIGTERM) for the hold time, then started again",
    FaultKind.ETCD_RESTART: "etcd killed (SIGKILL) for the hold time, then started again on the same data",
    FaultKind.COMPACTION: (
        "etcd compacted to its current revision and restarted: the API server's watch caches find their etcd"
        " watches compacted and relist, so every client watch ends and resumes into 410 Gone"
    ),
    FaultKind.PROMETHEUS_GAP: "Prometheus stopped for the hold time (a scrape gap), then started on the same TSDB",
    FaultKind.OPERATOR_KILL: "the leading operator SIGKILLed, restarted after the hold time (the standby takes over)",
    FaultKind.REPLICA_FAULT: (
        "a replica being rebuilt for a migration faulted (else one of a volume at rest), as a failed disk would"
    ),
    FaultKind.SLOW_REBUILD: "every pool rebuilds so slowly for the hold time that migrations outlive their timeout",
}

#: Hold time range (wall seconds) per kind: how long the component stays down, the gap or the slow period.
HOLD: dict[FaultKind, tuple[float, float]] = {
    FaultKind.APISERVER_RESTART: (2.0, 10.0),
    FaultKind.ETCD_RESTART: (2.0, 10.0),
    FaultKind.COMPACTION: (0.0, 0.0),
    FaultKind.PROMETHEUS_GAP: (15.0, 45.0),
    FaultKind.OPERATOR_KILL: (5.0, 20.0),
    FaultKind.REPLICA_FAULT: (0.0, 0.0),
    FaultKind.SLOW_REBUILD: (60.0, 120.0),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault: ``at`` wall seconds after the run started, held for ``hold`` seconds."""

    at: float
    kind: FaultKind
    hold: float


def make_schedule(
    seed: int, *, start: float, end: float, count: int, kinds: tuple[FaultKind, ...] = tuple(FaultKind)
) -> tuple[Fault, ...]:
    """``count`` faults between ``start`` and ``end`` (wall seconds), one per equal slot at a random offset in
    its first third. Holds are capped at half a slot (three quarters for a slow rebuild, so that it can outlast
    a migration timeout); the soak runs faults one after another, so one still held delays the next.

    Every kind in ``kinds`` comes once, in a seeded order, before any comes twice; the rest are drawn at random.
    Raises :class:`ValueError` when ``count`` cannot cover every kind or the window is empty.
    """
    if not kinds:
        raise ValueError("a soak needs at least one fault kind")
    if count < len(kinds):
        raise ValueError(
            f"{count} faults cannot cover the {len(kinds)} fault kinds; give at least {len(kinds)}"
        )
    if not end > start:
        raise ValueError(f"the fault window is empty ({start:g}s to {end:g}s)")
    rng = random.Random(seed)
    order = list(kinds)
    rng.shuffle(order)
    order += [rng.choice(kinds) for _ in range(count - len(kinds))]
    slot = (end - start) / count
    faults = []
    for i, kind in enumerate(order):
        low, high = HOLD[kind]
        hold = min(rng.uniform(low, high), slot * (0.75 if kind is FaultKind.SLOW_REBUILD else 0.5))
        faults.append(Fault(round(start + i * slot + rng.uniform(0, slot / 3), 1), kind, round(hold, 1)))
    return tuple(faults)


@dataclass(frozen=True, slots=True)
class Load:
    """A volume's name suffix, the tier it starts on and its pattern (simulated time)."""

    name: str
    tier: str
    pattern: Pattern


def make_loads(seed: int, volumes: int, *, origin: float, month_end_at: float) -> tuple[Load, ...]:
    """``volumes`` loads, in turn: day (busy by day), month-end, night (busy by night), steady hot or cold.

    Day and night volumes swing across both watermarks (500 and 5000 IOPS) every simulated day, each at its own
    phase. Month-end volumes idle at 300 IOPS and surge to 8300 over the last :data:`MONTH_END_DAYS` days of each
    month; the first surge begins at simulated time ``month_end_at``. ``origin`` is the simulated time at the
    start of the run (day phases are drawn from the seed relative to it).
    """
    rng = random.Random(seed ^ 0x5A5A)
    surge = MONTH_END_DAYS * DAY
    # Bursty patterns burst in the first `surge` seconds of each period: shift so one begins at month_end_at.
    month_phase = (-month_end_at) % MONTH
    loads = []
    for i in range(volumes):
        shape = i % 4
        day_phase = (-origin + rng.uniform(0, DAY / 4)) % DAY
        if shape == 0:
            pattern = Pattern(
                Kind.DIURNAL, base=3000, amplitude=2900, period=DAY, phase=day_phase, noise=0.05
            )
            loads.append(Load(f"day-{i}", "hot", pattern))
        elif shape == 1:
            pattern = Pattern(
                Kind.BURSTY, base=300, amplitude=8000, period=MONTH, burst_duration=surge, phase=month_phase
            )
            loads.append(Load(f"month-end-{i}", "cold", pattern))
        elif shape == 2:
            pattern = Pattern(
                Kind.DIURNAL,
                base=2600,
                amplitude=2500,
                period=DAY,
                phase=(day_phase + DAY / 2) % DAY,
                noise=0.05,
            )
            loads.append(Load(f"night-{i}", "cold", pattern))
        else:
            hot = (i // 4) % 2 == 0
            pattern = Pattern(Kind.CONSTANT, base=7000 if hot else 150, noise=0.05)
            loads.append(Load(f"steady-{i}", "hot" if hot else "cold", pattern))
    return tuple(loads)


#: The quiet period's load: between the watermarks, so nothing new moves while in-flight work settles.
QUIET = Pattern(Kind.CONSTANT, base=2500.0)
