"""A soak run's report: the figures, and the checks that decide whether the run passed.

:func:`problems` is the verdict (an empty list is a pass); ``couchestor soak`` exits 1 when it is not empty and
the CI test asserts it is empty. :func:`render` prints the report for a human; :func:`to_json` for tools.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

#: Seconds of a process's life its RSS is not judged on (imports, first lists, caches filling).
RSS_WARMUP = 120.0
#: A lifetime must be sampled this long after its warm-up for its RSS slope to count.
RSS_MIN_SPAN = 120.0
#: The asserted bound on the RSS slope after warm-up, MiB per wall hour (see docs/operations.md).
RSS_SLOPE_BOUND = 30.0


@dataclass
class FaultRecord:
    """One injected fault and what followed it (seconds from the run's start; recovery times from ``ended``)."""

    kind: str
    at: float
    hold: float
    ended: float
    detail: str = ""
    store_synced_after: float | None = None  # the probe edit came back in the policy status
    decision_after: float | None = None  # the next decision made from a fresh heat score


@dataclass
class RssSegment:
    """One operator process lifetime's RSS after warm-up.

    ``slope_mib_per_hour`` is judged: the least-squares slope over the *second half* of the samples after
    warm-up, so growth that levels off (allocator arenas, caches filling, the first migrations) is not taken
    for a leak, while a leak, which grows at a steady rate, shows the same there as anywhere.
    ``slope_all_mib_per_hour`` is over all of them, for comparison. ``samples`` are (run seconds, MiB).
    """

    identity: str
    life: int
    span: float  # seconds sampled after warm-up
    first_mib: float
    last_mib: float
    slope_mib_per_hour: float | None
    slope_all_mib_per_hour: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Report:
    seed: int
    backend: str
    scale: float
    volumes: int
    wall_seconds: float = 0.0
    warmup_seconds: float = 0.0
    transitions: int = 0
    violations: list[str] = field(default_factory=list)
    migrations_started: int = 0
    migrations: dict[str, float] = field(default_factory=dict)  # by status: success, failed, aborted
    intents_at_end: list[str] = field(default_factory=list)
    stale_intents_at_end: list[str] = field(default_factory=list)
    cordons_at_end: list[str] = field(default_factory=list)
    quiet_seconds: float = 0.0
    rss: list[RssSegment] = field(default_factory=list)
    rss_bound_mib_per_hour: float = RSS_SLOPE_BOUND
    rss_warmup_seconds: float = RSS_WARMUP
    #: Whether a run without an operator that led long enough to judge its RSS fails (a short run whose faults
    #: move the leadership around may not have one; the long run must).
    rss_required: bool = True
    faults: list[FaultRecord] = field(default_factory=list)
    api_writes_per_hour: dict[str, float] = field(default_factory=dict)
    api_writes_per_hour_quiet: dict[str, float] = field(default_factory=dict)
    events_not_recorded: dict[str, float] = field(default_factory=dict)
    watch_restarts: dict[str, float] = field(default_factory=dict)
    leadership_changes: int = 0
    leader_overlap_seconds: float = 0.0
    operator_starts: int = 0
    notes: list[str] = field(default_factory=list)  # what the run had to work around (not failures)
    errors: list[str] = field(
        default_factory=list
    )  # the soak's own troubles (a component that never came back)

    @property
    def simulated_days(self) -> float:
        return self.wall_seconds * self.scale / 86_400.0

    @property
    def rss_judged(self) -> list[RssSegment]:
        return [s for s in self.rss if s.span >= RSS_MIN_SPAN and s.slope_mib_per_hour is not None]


def problems(report: Report) -> list[str]:
    """Every check the run failed, one line each; empty when it passed."""
    out = list(report.errors)
    if report.violations:
        out.append(
            f"{len(report.violations)} no-data-loss invariant violation(s), first: {report.violations[0]}"
        )
    if report.migrations_started == 0:
        out.append("no migration started: the run exercised nothing")
    if report.stale_intents_at_end:
        out.append(f"intents older than their timeout at the end: {', '.join(report.stale_intents_at_end)}")
    if report.intents_at_end:
        out.append(f"intents left after the quiet period: {', '.join(report.intents_at_end)}")
    if report.cordons_at_end:
        out.append(f"cordons left after the quiet period: {', '.join(report.cordons_at_end)}")
    if report.leader_overlap_seconds > 0:
        out.append(f"two operators both believed they led for {report.leader_overlap_seconds:.3f}s")
    judged = report.rss_judged
    if not judged and report.rss_required:
        out.append(
            f"RSS slope not measured: no operator lived {report.rss_warmup_seconds + RSS_MIN_SPAN:.0f}s"
        )
    for seg in judged:
        assert seg.slope_mib_per_hour is not None
        if seg.slope_mib_per_hour > report.rss_bound_mib_per_hour:
            out.append(
                f"RSS of {seg.identity} (life {seg.life}) grew {seg.slope_mib_per_hour:.1f} MiB/h in the second half"
                " of its life after warm-up"
                f" (bound {report.rss_bound_mib_per_hour:g})"
            )
    for fault in report.faults:
        if fault.store_synced_after is None:
            out.append(
                f"{fault.kind} at {fault.at:.0f}s: the operator's store never caught up with the server"
            )
    return out


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


def render(report: Report) -> str:
    """The report as the lines ``couchestor soak`` prints."""
    r = report
    lines = [
        f"soak: seed {r.seed}, backend {r.backend}, {r.volumes} volumes, time scale {r.scale:g}x",
        f"  ran {r.wall_seconds / 60:.1f} min wall = {r.simulated_days:.1f} simulated days"
        f" (warm-up {r.warmup_seconds:.0f}s, quiet period {r.quiet_seconds:.0f}s)",
        f"  replica transitions {r.transitions}, invariant violations {len(r.violations)}",
        f"  migrations started {r.migrations_started}, succeeded {r.migrations.get('success', 0):.0f},"
        f" failed and rolled back {r.migrations.get('failed', 0):.0f} (timeout, fault, errors),"
        f" aborted and rolled back {r.migrations.get('aborted', 0):.0f} (on purpose)",
        f"  at the end: intents {len(r.intents_at_end)} (older than their timeout {len(r.stale_intents_at_end)}),"
        f" cordons {len(r.cordons_at_end)}",
        f"  leadership changes {r.leadership_changes}, operator starts {r.operator_starts},"
        f" longest time two operators both led {r.leader_overlap_seconds:.3f}s",
        "  API writes per hour, operator-counted, from warm-up to the end: "
        + (", ".join(f"{k} {v:.0f}" for k, v in sorted(r.api_writes_per_hour.items())) or "none"),
        "  API writes per hour in steady state (second half of the quiet period): "
        + (", ".join(f"{k} {v:.0f}" for k, v in sorted(r.api_writes_per_hour_quiet.items())) or "none"),
        "  Events not recorded: "
        + (", ".join(f"{k} {v:.0f}" for k, v in sorted(r.events_not_recorded.items())) or "none"),
        "  watch restarts: "
        + (", ".join(f"{k} {v:.0f}" for k, v in sorted(r.watch_restarts.items())) or "none"),
        f"  RSS after {r.rss_warmup_seconds:.0f}s warm-up (bound {r.rss_bound_mib_per_hour:g} MiB/h, lifetimes sampled"
        f" {RSS_MIN_SPAN:.0f}s or more):",
    ]
    for seg in r.rss:
        slope = "n/a" if seg.slope_mib_per_hour is None else f"{seg.slope_mib_per_hour:+.1f} MiB/h"
        if seg.slope_all_mib_per_hour is not None:
            slope += f" (over all of it {seg.slope_all_mib_per_hour:+.1f})"
        judged = "" if seg in r.rss_judged else " (too short to judge)"
        lines.append(
            f"    {seg.identity} life {seg.life}: {seg.first_mib:.1f} -> {seg.last_mib:.1f} MiB over"
            f" {seg.span:.0f}s, slope of the second half {slope}{judged}"
        )
    lines.append("  faults (recovery from the end of each fault: store == server / next decision):")
    for f in r.faults:
        lines.append(
            f"    {f.at:7.1f}s {f.kind:<18} hold {f.hold:5.1f}s  store {_seconds(f.store_synced_after):>7}"
            f"  decision {_seconds(f.decision_after):>7}  {f.detail}"
        )
    lines += [f"  note: {n}" for n in r.notes]
    verdict = problems(r)
    lines.append("  PASS" if not verdict else "  FAIL:")
    lines += [f"    - {p}" for p in verdict]
    return "\n".join(lines)


def to_json(report: Report) -> str:
    data = asdict(report)
    data["simulated_days"] = report.simulated_days
    data["problems"] = problems(report)
    return json.dumps(data, indent=2)
