"""StoragePolicy validation and the tier rules a valid policy stands for, as pure functions.

:func:`compile_policy` turns a :class:`~k8s_schemas.storage_policy.StoragePolicy` into either
:class:`PolicyRules` (every default applied, every duration in seconds, every selector compiled) or a
:class:`PolicyProblem` listing **all** the problems found, each naming the wire field, so one status
condition tells the user everything to fix at once.

Tier vocabulary: CoucheStor speaks of ``hot``, ``warm`` and ``cold`` everywhere it writes (status counts,
migration history ``fromTier``/``toTier``, the PV label, logs). The seeds also say ``nvme``/``sata`` for
hot/cold; :meth:`Tier.parse` reads those words too, so history written by older operators still makes sense.

Which pools form a tier is the policy's business: a DiskPool is ``hot`` when ``nvmePoolSelector`` (alias
``hotPoolSelector``) matches its labels, ``cold`` for ``sataPoolSelector`` (alias ``coldPoolSelector``),
``warm`` for ``warmPoolSelector``. A policy that sets no hot selector uses ``matchLabels: {tier: hot}``, no cold
selector ``{tier: cold}``, and a warm band without a warm selector ``{tier: warm}``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from msgspec import UNSET

from couchestor.durations import parse_duration
from couchestor.labels import Requirement, Selector, SelectorError, check_key, from_label_selector, matches
from couchestor.tiering.windows import (
    ALWAYS,
    Blackout,
    Schedule,
    Window,
    WindowError,
    compile_blackout,
    load_zone,
    parse_cron,
)
from k8s_schemas.annotations import PAUSED
from k8s_schemas.meta import LabelSelector
from k8s_schemas.storage_policy import (
    DEFAULT_MAX_REBUILDS_PER_NODE,
    DEFAULT_MAX_REBUILDS_PER_POOL,
    DEFAULT_TIER_MIGRATION_HISTORY_LIMIT,
    SpecError,
    StoragePolicy,
    StoragePolicySpec,
    parse_spec,
)


class Tier(enum.StrEnum):
    """A storage tier; the value is the word written to status, history, labels and logs."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"

    @property
    def rank(self) -> int:
        """Speed order: cold 0 < warm 1 < hot 2 (a move to a higher rank is a promotion)."""
        return _RANKS[self]

    @classmethod
    def parse(cls, word: str) -> Tier | None:
        """The tier a word names (``hot``/``nvme``, ``warm``, ``cold``/``sata``, any case), or None."""
        return _WORDS.get(word.strip().lower())


_RANKS = {Tier.COLD: 0, Tier.WARM: 1, Tier.HOT: 2}
_WORDS = {"hot": Tier.HOT, "nvme": Tier.HOT, "warm": Tier.WARM, "cold": Tier.COLD, "sata": Tier.COLD}

DEFAULT_POOL_SELECTORS: Mapping[Tier, Selector] = {
    tier: (Requirement("tier", "=", (tier.value,)),) for tier in Tier
}


@dataclass(frozen=True, slots=True)
class VolumeScope:
    """Which PVs a policy claims: those of ``storage_class`` whose bound PVC's labels match ``volume_selector``."""

    storage_class: str
    volume_selector: Selector

    def selects(self, storage_class: str | None, pvc_labels: Mapping[str, str] | None) -> bool:
        return storage_class == self.storage_class and matches(self.volume_selector, pvc_labels)


@dataclass(frozen=True, slots=True)
class IdleRule:
    """``coldAfterIdle``: a move to the cold tier needs the volume's IOPS under ``below_iops`` for all of
    ``period_seconds`` (its peak over the period, :mod:`couchestor.tiering.heat`)."""

    period_seconds: int
    below_iops: int


@dataclass(frozen=True, slots=True)
class PolicyRules:
    """A valid policy with every default applied. IOPS thresholds are strict: above ``high_iops`` is hot,
    below ``low_iops`` is cold; ``warm_iops`` is None when the policy has no warm tier."""

    name: str
    generation: int | None
    scope: VolumeScope
    high_iops: int
    low_iops: int
    warm_iops: int | None
    window_seconds: int
    cooldown_seconds: int
    migration_timeout_seconds: int
    max_concurrent_migrations: int
    enabled: bool
    dry_run: bool
    # (tier, selector) pairs, hottest first; warm only when the policy has a warm band.
    pool_selectors: tuple[tuple[Tier, Selector], ...]
    #: PVC label key grouping volumes that are tiered together (None: every volume on its own).
    group_label: str | None = None
    #: ``approval: Manual``: every planned move waits for ``spec.approved`` on its TierMigration.
    manual_approval: bool = False
    #: How long a move waits for approval before it is cancelled as expired.
    approval_ttl_seconds: int = 86_400
    #: When moves may start (maintenance windows and blackouts); the empty schedule allows any time.
    schedule: Schedule = ALWAYS
    #: Rebuilds at once on one node / one pool, counting moves from and to it, of every policy.
    max_rebuilds_per_node: int = DEFAULT_MAX_REBUILDS_PER_NODE
    max_rebuilds_per_pool: int = DEFAULT_MAX_REBUILDS_PER_POOL
    #: Finished TierMigrations kept for the policy.
    tier_migration_history_limit: int = DEFAULT_TIER_MIGRATION_HISTORY_LIMIT
    #: The ``storage.billyronks.io/paused: "true"`` annotation: no new move starts.
    paused: bool = False
    #: ``maxTierFillPercent``: the highest fill of a tier's pools before its coldest volumes move down.
    max_fill_percent: int | None = None
    #: ``coldAfterIdle``: how long a volume must have been idle before it may go to the cold tier.
    idle: IdleRule | None = None

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return tuple(tier for tier, _ in self.pool_selectors)

    def tiers_matching(self, pool_labels: Mapping[str, str]) -> frozenset[Tier]:
        """Every tier whose pool selector matches ``pool_labels`` (more than one means the pool is ambiguous)."""
        return frozenset(tier for tier, selector in self.pool_selectors if matches(selector, pool_labels))

    def target_tier(self, score: float, current: Tier) -> Tier | None:
        """The tier a volume on ``current`` with heat ``score`` should move to, or None to stay.

        Two tiers: above high -> hot, below low -> cold, in between stay (the gap is the hysteresis).

        Three tiers (``warm_iops`` set, low < warm < high): above high -> hot and below low -> cold from
        anywhere. In between, a warm volume stays warm, a hot volume steps down to warm only once the score
        drops below ``warm_iops``, and a cold volume steps up to warm only once it rises above ``warm_iops``.
        So every move has its own way back across a *different* watermark: hot -> warm at < warm, back at
        > high; cold -> warm at > warm, back at < low; warm -> hot at > high, back at < warm; warm -> cold at
        < low, back at > warm. No pair of opposite moves shares a threshold, so a score wobbling around any
        one watermark cannot make a volume flip back and forth (cooldown comes on top of that).
        """
        if score > self.high_iops:
            wanted = Tier.HOT
        elif score < self.low_iops:
            wanted = Tier.COLD
        elif self.warm_iops is None:
            return None
        elif current is Tier.HOT:
            wanted = Tier.WARM if score < self.warm_iops else Tier.HOT
        elif current is Tier.COLD:
            wanted = Tier.WARM if score > self.warm_iops else Tier.COLD
        else:
            return None
        return None if wanted is current else wanted


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with a spec: ``field`` is the wire path (``spec.lowWatermarkIOPS``)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """A policy that cannot be used, with every problem found (at least one).

    ``scope`` is which volumes the policy still claims when its storage class and volume selector could be
    read despite the other problems (else None): CoucheStor keeps those volumes still rather than let another
    policy move them while this one is broken.
    """

    name: str
    generation: int | None
    problems: tuple[FieldProblem, ...]
    scope: VolumeScope | None

    @property
    def field(self) -> str:
        """The field of the first problem (e.g. for a condition's reason)."""
        return self.problems[0].field

    @property
    def message(self) -> str:
        """All problems on one line, e.g. for a status condition's message."""
        return "; ".join(str(problem) for problem in self.problems)


def compile_policy(policy: StoragePolicy, *, operations_enforced: bool = True) -> PolicyRules | PolicyProblem:
    """Validate ``policy`` and return its rules, or a :class:`PolicyProblem` with every problem found.

    ``operations_enforced`` says whether the caller enforces approvals, maintenance windows, blackouts and the
    pause annotation, as the operator does through TierMigrations (the default). A caller that does not
    (a reconciler run without the TierMigration store) passes False: a policy asking for any of them
    (``approval: Manual``, ``maintenanceWindows``, ``blackouts``, ``paused: "true"``) is then a problem, reported
    in phase Error, and starts nothing (running moves finish) rather than move volumes outside what it asks.
    The rebuild limits and history limit only ever hold moves back, so they are accepted either way.

    Checked: the spec's types and ranges (by the schema), low < high, low < warm < high (``warmWatermarkIOPS:
    0`` means no warm tier, as in the seeds), a warm pool selector only with a warm watermark, each duration,
    each selector, alias pairs that disagree (``nvmePoolSelector`` vs ``hotPoolSelector``), pool
    selectors that cannot tell tiers apart (empty, or two tiers with the same selector), each maintenance
    window's cron schedule, duration and time zone (an unknown zone is a problem: the policy never acts on
    a window it cannot read), each blackout's bounds, and the ``storage.billyronks.io/paused`` annotation
    (``"true"`` or ``"false"``).
    """
    name = "" if policy.metadata.name is UNSET else policy.metadata.name
    generation = None if policy.metadata.generation is UNSET else policy.metadata.generation
    try:
        spec = parse_spec(policy.spec)
    except SpecError as exc:
        return PolicyProblem(
            name, generation, (FieldProblem(exc.field, exc.problem),), _salvage_scope(policy.spec)
        )
    compiler = _Compiler(name, generation, spec, policy.metadata.annotation(PAUSED))
    if not operations_enforced:
        compiler.refuse_unenforced()
    return compiler.run()


class _Compiler:
    """Collects every problem of one parsed spec while building its rules."""

    def __init__(
        self, name: str, generation: int | None, spec: StoragePolicySpec, paused: str | None = None
    ) -> None:
        self.name, self.generation, self.spec = name, generation, spec
        self.paused_annotation = paused
        self.problems: list[FieldProblem] = []

    def fail(self, field: str, message: str) -> None:
        self.problems.append(FieldProblem(f"spec.{field}", message))

    def duration(self, field: str, text: str) -> int:
        try:
            return int(parse_duration(text))
        except ValueError as exc:
            self.fail(field, str(exc))
            return 0

    def selector(self, field: str, selector: LabelSelector | None) -> Selector | None:
        try:
            return from_label_selector(selector)
        except SelectorError as exc:
            self.fail(field, str(exc))
            return None

    def pool_selector(self, tier: Tier, field: str, alias: str | None) -> Selector | None:
        chosen, chosen_field = getattr(self.spec, _snake(field)), field
        if alias is not None:
            other = getattr(self.spec, _snake(alias))
            if chosen is not None and other is not None and chosen != other:
                self.fail(alias, f"conflicts with {field}; they are aliases, set only one")
            elif chosen is None:
                chosen, chosen_field = other, alias
        if chosen is None:
            return DEFAULT_POOL_SELECTORS[tier]
        compiled = self.selector(chosen_field, chosen)
        if compiled == ():
            self.fail(chosen_field, "an empty selector matches every pool, so tiers could not be told apart")
            return None
        return compiled

    def run(self) -> PolicyRules | PolicyProblem:
        spec = self.spec
        high, low = spec.high_watermark_iops, spec.low_watermark_iops
        warm = spec.warm_watermark_iops or None  # 0 switches the warm tier off, as in the seeds
        if low >= high:
            self.fail("lowWatermarkIOPS", f"must be lower than highWatermarkIOPS ({low} >= {high})")
        if warm is not None and not low < warm < high:
            self.fail(
                "warmWatermarkIOPS",
                f"must lie strictly between lowWatermarkIOPS and highWatermarkIOPS ({warm} is not in ({low}, {high}))",
            )
        if warm is None and spec.warm_pool_selector is not None:
            self.fail("warmPoolSelector", "needs a warm tier: set warmWatermarkIOPS (above 0) too")
        window = self.duration("samplingWindow", spec.sampling_window)
        cooldown = self.duration("cooldownPeriod", spec.cooldown_period)
        timeout = self.duration("migrationTimeout", spec.migration_timeout)
        volume_selector = self.selector("volumeSelector", spec.volume_selector)
        if spec.group_label is not None:
            try:
                check_key(spec.group_label)
            except SelectorError as exc:
                self.fail("groupLabel", str(exc))
        pools = [
            (Tier.HOT, self.pool_selector(Tier.HOT, "nvmePoolSelector", "hotPoolSelector")),
            (Tier.COLD, self.pool_selector(Tier.COLD, "sataPoolSelector", "coldPoolSelector")),
        ]
        if warm is not None:
            pools.insert(1, (Tier.WARM, self.pool_selector(Tier.WARM, "warmPoolSelector", None)))
        compiled = [(tier, sel) for tier, sel in pools if sel is not None]
        for i, (tier, sel) in enumerate(compiled):
            for other, other_sel in compiled[i + 1 :]:
                if set(sel) == set(other_sel):
                    self.fail(_FIELDS[other], f"selects the same pools as the {tier} tier's selector")
        approval_ttl = self.duration("approvalTTL", spec.approval_ttl)
        max_fill = spec.max_tier_fill_percent
        if max_fill is not None and not 1 <= max_fill <= 100:
            self.fail("maxTierFillPercent", f"must lie between 1 and 100, not {max_fill}")
        idle = None
        if spec.cold_after_idle is not None:
            period = self.duration("coldAfterIdle.period", spec.cold_after_idle.period)
            if period:  # 0: unparsable, already a problem
                idle = IdleRule(period, spec.cold_after_idle.below_iops)
        schedule = self.schedule()
        paused = self.paused()
        scope = None if volume_selector is None else VolumeScope(spec.storage_class_name, volume_selector)
        if self.problems or scope is None:
            return PolicyProblem(self.name, self.generation, tuple(self.problems), scope)
        return PolicyRules(
            name=self.name,
            generation=self.generation,
            scope=scope,
            high_iops=high,
            low_iops=low,
            warm_iops=warm,
            window_seconds=window,
            cooldown_seconds=cooldown,
            migration_timeout_seconds=timeout,
            max_concurrent_migrations=spec.max_concurrent_migrations,
            enabled=spec.enabled,
            dry_run=spec.dry_run,
            pool_selectors=tuple(compiled),
            group_label=spec.group_label,
            manual_approval=spec.approval == "Manual",
            approval_ttl_seconds=approval_ttl,
            schedule=schedule,
            max_rebuilds_per_node=spec.max_rebuilds_per_node,
            max_rebuilds_per_pool=spec.max_rebuilds_per_pool,
            tier_migration_history_limit=spec.tier_migration_history_limit,
            paused=paused,
            max_fill_percent=max_fill,
            idle=idle,
        )

    def schedule(self) -> Schedule:
        """The maintenance windows and blackouts; each unreadable part is a problem naming its field (a
        policy never acts on a window it cannot read)."""
        windows: list[Window] = []
        for i, w in enumerate(self.spec.maintenance_windows or ()):
            where = f"maintenanceWindows[{i}]"
            try:
                cron = parse_cron(w.schedule)
            except WindowError as exc:
                self.fail(f"{where}.schedule", str(exc))
                cron = None
            seconds = self.duration(f"{where}.duration", w.duration)
            try:
                zone = load_zone(w.time_zone)
            except WindowError as exc:
                self.fail(f"{where}.timeZone", str(exc))
                zone = None
            if cron is not None and zone is not None and seconds:
                windows.append(Window(cron, timedelta(seconds=seconds), zone, w.time_zone))
        blackouts: list[Blackout] = []
        for i, b in enumerate(self.spec.blackouts or ()):
            try:
                blackouts.append(compile_blackout(b.start, b.end, b.time_zone, b.reason or ""))
            except WindowError as exc:
                self.fail(f"blackouts[{i}]", str(exc))
        return Schedule(tuple(windows), tuple(blackouts))

    def refuse_unenforced(self) -> None:
        """Report each operational field the caller reads and validates but does not act on."""
        why = "is not enforced without TierMigrations; the policy starts no move rather than ignore it"
        if self.spec.approval == "Manual":
            self.fail("approval", f"Manual {why}")
        if self.spec.maintenance_windows:
            self.fail("maintenanceWindows", why)
        if self.spec.blackouts:
            self.fail("blackouts", why)
        if (self.paused_annotation or "").strip().lower() == "true":
            self.problems.append(FieldProblem(f"metadata.annotations[{PAUSED}]", why))

    def paused(self) -> bool:
        value = self.paused_annotation
        if value is None or value.strip().lower() == "false":
            return False
        if value.strip().lower() == "true":
            return True
        self.problems.append(
            FieldProblem(f"metadata.annotations[{PAUSED}]", f'must be "true" or "false", not {value!r}')
        )
        return True


_FIELDS = {Tier.HOT: "nvmePoolSelector", Tier.WARM: "warmPoolSelector", Tier.COLD: "sataPoolSelector"}


def _snake(field: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in field)


def _salvage_scope(raw: Mapping[str, Any]) -> VolumeScope | None:
    """The volumes a spec that failed to parse still claims, when those two fields can be read on their own."""
    storage_class = raw.get("storageClassName", "mayastor")
    if not isinstance(storage_class, str):
        return None
    try:
        selector = msgspec.convert(raw.get("volumeSelector"), LabelSelector | None)
        return VolumeScope(storage_class, from_label_selector(selector))
    except (msgspec.ValidationError, SelectorError):
        return None
