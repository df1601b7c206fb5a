"""What a decision pass gives: its options, one :class:`Decision` per (policy, volume), the migrations to start
(:class:`PlannedMigration`), per-policy :class:`PolicyPlan` and the whole :class:`Plan`. Plain data, no logic."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from couchestor.tiering.policy import PolicyProblem, Tier


@dataclass(frozen=True, slots=True)
class DecideOptions:
    """Operator-wide settings of :func:`~couchestor.tiering.decide.decide`."""

    min_coverage: float = 0.5
    max_score_age_seconds: float = 300.0
    #: The storage system cannot change a volume's pool topology (Mayastor 2.x): a volume whose creation
    #: topology no pool of the target tier satisfies is ``topology-pinned``, never moved.
    fixed_topology: bool = False


class Action(enum.StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"
    STAY = "stay"
    SKIP = "skip"


class Decision(msgspec.Struct, frozen=True, gc=False):
    """What was decided for one volume under one policy.

    ``action`` is the tier to move to (``hot``/``warm``/``cold``, a migration is planned), ``stay``, or
    ``skip``; ``reason`` is the action's word, or for a skip the reason (``cooldown``, ``conflict:b`` ...).
    ``target_tier`` is the tier the volume should be on when a move was wanted, also on skips after the
    thresholds were applied (``cooldown``, ``dry-run``, ``no-capacity`` ...); ``target_pool`` is the pool
    chosen (or, in dry-run, the pool that would be). ``detail`` is one human-readable sentence.
    """

    volume: str
    policy: str
    action: Action
    reason: str
    score: float | None = None
    current_tier: Tier | None = None
    target_tier: Tier | None = None
    target_pool: str | None = None
    detail: str = ""

    @property
    def label(self) -> str:
        """``hot``, ``warm``, ``cold``, ``stay`` or ``skip:<reason>``, as logged and counted."""
        return f"skip:{self.reason}" if self.action is Action.SKIP else self.action.value


@dataclass(frozen=True, slots=True)
class PlannedMigration:
    """A migration to start now. ``source_pools`` hold the volume's replicas, all on ``from_tier``."""

    volume: str
    volume_id: str | None
    policy: str
    from_tier: Tier
    to_tier: Tier
    target_pool: str
    source_pools: tuple[str, ...]
    score: float
    size_bytes: int
    timeout_seconds: int
    #: The MayastorVolume to change, and the pool labels its topology gets (the target tier's selector
    #: resolved against the chosen pool's labels).
    backend_volume: str = ""
    target_topology: Mapping[str, str] = field(default_factory=dict)
    #: Non-empty for a member of a volume group: every member moves in the same batch, or none does.
    group: str = ""


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """One policy's share of a plan: ``decisions`` (by volume name) cover every volume the policy selects.

    ``tier_counts`` counts those volumes by the tier their Synced replicas are on (for ``hotVolumes`` etc.);
    ``conflicts`` maps each conflicting volume to the other policies selecting it; ``in_flight`` counts the
    selected volumes already migrating; ``migrations`` are this policy's planned ones, in start order;
    ``unreadable`` maps each selected volume with an annotation that cannot be read (a pin, an opt-out, its
    last migration) to what it is: such a volume is not moved until it is fixed.
    """

    policy: str
    generation: int | None
    problem: PolicyProblem | None
    enabled: bool
    dry_run: bool
    decisions: tuple[Decision, ...]
    tier_counts: Mapping[Tier, int]
    conflicts: Mapping[str, tuple[str, ...]]
    in_flight: int
    migrations: tuple[PlannedMigration, ...]
    unreadable: Mapping[str, str] = field(default_factory=dict)
    #: How full each tier's pools are, in percent, as they report it (tiers whose pools report no size
    #: are left out).
    tier_fill: Mapping[Tier, float] = field(default_factory=dict)

    @property
    def watched(self) -> int:
        return len(self.decisions)

    @property
    def phase(self) -> str:
        """``Error``, ``Disabled`` or ``Active``, for ``status.phase``."""
        if self.problem is not None:
            return "Error"
        return "Active" if self.enabled else "Disabled"


@dataclass(frozen=True, slots=True)
class Plan:
    """Every policy's plan (by policy name) and all migrations to start, in start order."""

    policies: tuple[PolicyPlan, ...]
    migrations: tuple[PlannedMigration, ...]

    def policy(self, name: str) -> PolicyPlan | None:
        return next((p for p in self.policies if p.policy == name), None)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return tuple(d for p in self.policies for d in p.decisions)
