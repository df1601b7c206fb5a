"""What the demo shows, folded from what the operator publishes: its plans and its migration feed.

:class:`Progress` is plain state with no I/O. :meth:`Progress.on_plan` takes the reconciler's latest
:class:`~couchestor.tiering.plan.Plan`, :meth:`Progress.on_feed` one JSON message of the operator's feed; both
return the lines worth narrating (volumes held back, a migration's start, steps and outcome);
:meth:`Progress.on_scores` keeps the latest heat of every volume.
:meth:`Progress.rows` gives one :class:`VolumeRow` per volume; :func:`overview` sums them up (volumes by
tier, decisions by reason, the hottest and the coldest) and :func:`table_rows` picks the ones worth a table row
when there are hundreds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from couchestor.demo.scenario import DemoVolume
from couchestor.tiering.heat import ScoreSnapshot
from couchestor.tiering.plan import Action, Decision, Plan

#: Feed steps that end a migration, and whether the volume moved.
OUTCOMES = {"success": True, "failed": False, "aborted": False}


@dataclass(slots=True)
class Migration:
    """One migration as the feed reported it; ``outcome`` is set once it ended."""

    pv: str
    from_tier: str
    to_tier: str
    step: str = "queued"
    progress: int | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeRow:
    pv: str
    role: str
    heat: float | None
    tier: str
    decision: str
    migration: Migration | None
    featured: bool = True


@dataclass(frozen=True, slots=True)
class Overview:
    """All volumes at a glance: counts by tier and by latest decision, and the extremes of heat."""

    tiers: dict[str, int]
    decisions: dict[str, int]
    hottest: list[VolumeRow]
    coldest: list[VolumeRow]


def overview(rows: list[VolumeRow], *, extremes: int = 5) -> Overview:
    """Sum up ``rows`` (hottest first, as :meth:`Progress.rows` gives them); ``coldest`` is coldest first."""
    tiers: dict[str, int] = {}
    decisions: dict[str, int] = {}
    for row in rows:
        tiers[row.tier] = tiers.get(row.tier, 0) + 1
        decisions[row.decision] = decisions.get(row.decision, 0) + 1
    scored = [r for r in rows if r.heat is not None]
    coldest = scored[::-1][:extremes] if len(scored) > extremes else []
    return Overview(tiers, decisions, scored[:extremes], coldest)


def table_rows(rows: list[VolumeRow], *, finished: bool) -> list[VolumeRow]:
    """The featured volumes and the others with a running migration (and, if ``finished``, an ended one)."""
    return [
        r
        for r in rows
        if r.featured or (r.migration is not None and (finished or r.migration.outcome is None))
    ]


@dataclass
class Progress:
    """The demo's view of the operator's work for one policy."""

    policy: str
    #: Whether :meth:`on_feed` tells every step and rebuild quarter, or only starts and outcomes.
    narrate_steps: bool = True
    #: Running migrations by PV name, and the ended ones in the order they ended.
    migrations: dict[str, Migration] = field(default_factory=dict)
    finished: list[Migration] = field(default_factory=list)
    #: True when the latest plan moves nothing and skips nothing but pinned volumes on their tier: every
    #: volume stays where it is.
    steady: bool = False
    #: The tier each pinned volume's claim names, by PV name.
    pins: dict[str, str] = field(default_factory=dict)
    _decisions: dict[str, Decision] = field(default_factory=dict)
    _heat: dict[str, float] = field(default_factory=dict)
    _labels: dict[str, str] = field(default_factory=dict)
    _last_plan: Plan | None = None

    @property
    def completed(self) -> int:
        return sum(1 for m in self.finished if m.outcome == "success")

    @property
    def failed(self) -> int:
        return sum(1 for m in self.finished if m.outcome != "success")

    def on_plan(self, plan: Plan | None) -> list[str]:
        """Take the reconciler's latest plan; lines for decisions not to move a volume that wants to.

        Moves are told by :meth:`on_feed` when they start; volumes skipped for the same reason in one pass
        are told together.
        """
        if plan is None or plan is self._last_plan:
            return []
        self._last_plan = plan
        skipped: dict[str, list[Decision]] = {}
        lines: list[str] = []
        for policy_plan in plan.policies:
            if policy_plan.policy != self.policy:
                continue
            if policy_plan.problem is not None:
                lines.append(f"policy {self.policy}: {policy_plan.problem}")
            self.steady = all(
                d.action is Action.STAY or (d.action is Action.SKIP and d.reason == "pinned")
                for d in policy_plan.decisions
            )
            for decision in policy_plan.decisions:
                self._decisions[decision.volume] = decision
                label = decision.label
                if self._labels.get(decision.volume) != label and _worth_telling(decision):
                    skipped.setdefault(decision.reason, []).append(decision)
                self._labels[decision.volume] = label
        for reason, decisions in skipped.items():
            names = ", ".join(d.volume for d in decisions)
            details = {d.detail for d in decisions}
            why = f"{reason}: {decisions[0].detail}" if len(details) == 1 else reason
            if len(decisions) == 1:
                lines.append(f"{names}: not moving yet ({why})")
            else:
                listed = f": {names}" if len(decisions) <= 4 else ""
                lines.append(f"{len(decisions)} volumes not moving yet ({why}){listed}")
        return lines

    def on_scores(self, snapshot: ScoreSnapshot | None) -> None:
        """Take the operator's latest heat scores (a healthy snapshot lists every volume with a series)."""
        if snapshot is None or not snapshot.healthy:
            return
        for name, heat in snapshot.scores.items():
            if heat.score is not None:
                self._heat[name] = heat.score

    def on_feed(self, text: str) -> list[str]:
        """Take one feed message; lines for a new migration step, rebuild progress by quarters, outcomes."""
        try:
            event: Any = json.loads(text)
        except ValueError:
            return []
        if not isinstance(event, dict) or event.get("type") != "migration":
            return []
        if event.get("policy") != self.policy:
            return []
        pv, step, progress = str(event.get("volume")), str(event.get("step")), event.get("progress")
        current = self.migrations.get(pv)
        lines: list[str] = []
        if current is None:
            current = self.migrations[pv] = Migration(pv, str(event.get("from")), str(event.get("to")))
            heat, pin = self._heat.get(pv), self.pins.get(pv)
            because = f" (heat {heat:,.0f} IOPS)" if heat is not None else ""
            if pin is not None:
                because = f" (its claim is pinned to {pin})"
            lines.append(f"{pv}: migrating {current.from_tier} -> {current.to_tier}{because}")
        if event.get("final"):
            current.outcome, current.step, current.progress = step, step, None
            self.finished.append(self.migrations.pop(pv))
            moved = OUTCOMES.get(step, False)
            lines.append(f"{pv}: migration {step}, now on {current.to_tier if moved else current.from_tier}")
            return lines
        quarter = _quarter(progress)
        changed = step != current.step or (quarter is not None and quarter != _quarter(current.progress))
        if self.narrate_steps and changed:
            lines.append(f"{pv}: {step}" + (f" {progress}%" if isinstance(progress, int) else ""))
        current.step = step
        current.progress = progress if isinstance(progress, int) else None
        return lines

    def rows(self, volumes: Iterable[DemoVolume], tier_of: Callable[[DemoVolume], str]) -> list[VolumeRow]:
        """One row per volume, hottest first; its migration is the running one, else the last that ended."""
        last = {m.pv: m for m in self.finished}
        rows = [
            VolumeRow(
                v.pv,
                v.role,
                self._heat.get(v.pv),
                tier_of(v),
                _short(self._decisions.get(v.pv)),
                self.migrations.get(v.pv) or last.get(v.pv),
                v.featured,
            )
            for v in volumes
        ]
        return sorted(rows, key=lambda r: (-(r.heat if r.heat is not None else -1.0), r.pv))


def _worth_telling(decision: Decision) -> bool:
    """Skips a user should hear about; moves are told as they start, stays and in-flight are on the table."""
    return decision.action is Action.SKIP and decision.reason not in ("in-flight", "cooldown", "pinned")


def _short(decision: Decision | None) -> str:
    if decision is None:
        return "-"
    if decision.action is Action.SKIP:
        return "migrating" if decision.reason == "in-flight" else decision.reason
    if decision.action is Action.STAY:
        return "stay"
    return f"move to {decision.action.value}"


def _quarter(progress: object) -> int | None:
    return progress // 25 if isinstance(progress, int) else None


__all__ = ["Migration", "Overview", "Progress", "VolumeRow", "overview", "table_rows"]
