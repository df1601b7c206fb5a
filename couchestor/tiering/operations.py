"""The TierMigration side of a reconcile pass, as pure functions over one pass's plain data.

:func:`new_objects` gives the TierMigrations to create: one per planned move whose volume has no unfinished
one and is not migrating. :func:`operate` then judges every unfinished TierMigration whose move has not
started (no intent on the volume, not held by the runner): its verdict (:func:`~.tiermigration.approval_verdict`),
the target pool and the :class:`~couchestor.tiering.plan.PlannedMigration` it would run, admission
(:func:`~.admission.admit`: pause, approval, windows, global/policy/node/pool limits, FIFO per policy), and the
status each object should show. It returns what the reconciler must do (:class:`Operations`): the moves to
start (each naming its TierMigration, which its intent records), the ``/status`` patches, the finalizers to
add or drop, the finished objects to delete beyond their policy's history, and each policy's next window.

:func:`window_holds` and :func:`held_plan` say the same outside a maintenance window where decisions are
shown: a move its policy's schedule holds now is labelled ``skip:outside-window`` (the plan's migrations are
kept: their TierMigrations are created and wait, reason ``OutsideWindow``). The rewrite follows
:func:`~couchestor.tiering.decide.decide` rather than living in it, so the incremental planner and a full
recompute stay equal and the clock decides only this one step.

A move that has started is the runner's: its status is computed from the intent (see
:mod:`couchestor.migration.runner`), never here. Nothing here performs I/O or remembers anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from msgspec import UNSET, structs

from couchestor.durations import parse_time
from couchestor.tiering.admission import (
    AWAITING_APPROVAL,
    OUTSIDE_WINDOW,
    Hold,
    Running,
    Waiting,
    admit,
    gate_of,
    policy_hold,
)
from couchestor.tiering.pins import refusal
from couchestor.tiering.placement import Pools, Wanted, pick_pool
from couchestor.tiering.plan import Action, Decision, Plan, PlannedMigration
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier
from couchestor.tiering.schedule import move as scheduled_move
from couchestor.tiering.tiermigration import (
    FINALIZER,
    AwaitApproval,
    Cancel,
    Facts,
    Move,
    Ready,
    Verdict,
    approval_verdict,
    finished_status,
    history_to_delete,
    is_finished,
    object_name,
    status_patch,
    waiting_status,
)
from couchestor.tiering.views import PoolView, VolumeView
from k8s_schemas.annotations import POLICY_GENERATION, POLICY_LABEL
from k8s_schemas.storage_policy import GROUP, VERSION
from k8s_schemas.tier_migration import KIND, TierMigration, TierMigrationStatus

#: Decisions that say "not now" rather than "not this move": the move waits (reason ``Undecided``) instead of
#: being cancelled, so a Prometheus outage or a replica resyncing does not throw away pending approvals.
TRANSIENT = frozenset(
    {
        "metrics-unavailable",
        "low-coverage",
        "no-score",
        "degraded",
        "in-flight",
        "size-unknown",
        "tier-unknown",
        "cooldown",
        "mixed-tier",
    }
)
#: Decisions under which a user's request cannot run (the volume or its policy is in no state to move it).
REFUSED = frozenset(
    {"disabled", "invalid-policy", "deleting", "no-mayastor-volume", "topology-pinned", "pin-conflict"}
)
#: On a TierMigration showing a move a dry-run policy would make (phase ``Planned``): never started; cancelled
#: once the policy would no longer make it, or leaves dry-run.
DRY_RUN = f"{GROUP}/dry-run"
#: The hold reason of a move whose decision is transiently undecided.
UNDECIDED = "undecided"
#: The hold reason of an approved group member whose group cannot start whole (another member waits).
GROUP_BLOCKED = "group-blocked"
#: The hold reason of a request whose named target pool cannot take the volume now.
NO_CAPACITY = "no-capacity"


@dataclass(frozen=True, slots=True)
class RunningMove:
    """A migration the runner holds (queued, or with an intent on its volume)."""

    volume: str
    policy: str
    source_pools: tuple[str, ...]
    target_pool: str
    #: The name of its TierMigration ('' for a move started without one).
    request: str = ""
    #: A rollback past its deadline: it gave its concurrency slot back, so admission does not count it.
    stuck: bool = False


@dataclass(frozen=True, slots=True)
class Start:
    """A move admitted now, and the TierMigration its intent names."""

    request: str
    migration: PlannedMigration


@dataclass(frozen=True, slots=True)
class Operations:
    """What one pass must do about TierMigrations (names are TierMigration names)."""

    #: Moves to start, in admission order.
    starts: tuple[Start, ...] = ()
    #: ``/status`` merge patches, and the status each one writes (to compare the next pass against).
    statuses: Mapping[str, tuple[dict[str, Any], TierMigrationStatus]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: Unfinished objects without the finalizer (a user's request): add it, so deletion cancels safely.
    adopt: tuple[str, ...] = ()
    #: Objects whose finalizer goes: cancelled before they started, or finished (after their status).
    release: tuple[str, ...] = ()
    #: Finished objects beyond their policy's ``tierMigrationHistoryLimit``.
    delete: tuple[str, ...] = ()
    #: Policy -> when its next maintenance window opens, while some of its moves wait outside one.
    next_windows: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))


def new_objects(
    plan: Plan,
    migrations: Sequence[TierMigration],
    running: Mapping[str, RunningMove],
    rules: Sequence[PolicyRules | PolicyProblem],
    now: datetime,
) -> list[dict[str, Any]]:
    """The TierMigrations to create: one per planned move of ``plan`` whose volume has no unfinished one and
    is not migrating, and for moves a dry-run policy would make (annotated :data:`DRY_RUN`, shown in phase
    ``Planned``, never started) as many as the policy would start at once (``maxConcurrentMigrations`` open
    ones, as a live policy's slots bound its planned moves: a dry-run policy over a large cluster must not
    create thousands); labelled with its policy, annotated with the policy's generation, with the finalizer."""
    open_volumes = {tm.spec.volume for tm in migrations if not is_finished(tm)}
    generations = {r.name: r.generation for r in rules}
    shown = Counter(
        tm.spec.policy
        for tm in migrations
        if not is_finished(tm) and tm.metadata.annotation(DRY_RUN) == "true"
    )
    room = {r.name: r.max_concurrent_migrations - shown[r.name] for r in rules if isinstance(r, PolicyRules)}
    moves = [(m.volume, m.policy, m.to_tier, False) for m in plan.migrations]
    moves += [
        (d.volume, d.policy, d.target_tier, True)
        for d in plan.decisions
        if d.reason == "dry-run" and d.target_tier is not None and d.current_tier is not None
    ]
    bodies = []
    for volume, policy, tier, dry_run in moves:
        if volume in open_volumes or volume in running or (dry_run and room.get(policy, 0) <= 0):
            continue
        open_volumes.add(volume)
        if dry_run:
            room[policy] -= 1
        generation = generations.get(policy)
        metadata: dict[str, Any] = {
            "name": object_name(volume, tier.value, now),
            "finalizers": [FINALIZER],
        }
        if len(policy) <= 63:  # a label value; longer policy names are in spec.policy only
            metadata["labels"] = {POLICY_LABEL: policy}
        annotations = {} if generation is None else {POLICY_GENERATION: str(generation)}
        if dry_run:
            annotations[DRY_RUN] = "true"
        if annotations:
            metadata["annotations"] = annotations
        bodies.append(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "metadata": metadata,
                "spec": {"volume": volume, "targetTier": tier.value, "policy": policy},
            }
        )
    return bodies


@dataclass(frozen=True, slots=True)
class _Candidate:
    tm: TierMigration
    name: str
    policy: str
    verdict: Verdict
    move: Move
    migration: PlannedMigration | None
    hold: Hold | None  # set when the move cannot go to admission (undecided, no target pool)
    dry_run: bool = False  # shown in phase Planned, never admitted


def operate(
    rules: Sequence[PolicyRules | PolicyProblem],
    plan: Plan,
    views: Mapping[str, VolumeView],
    pools: Mapping[str, PoolView],
    migrations: Sequence[TierMigration],
    running: Mapping[str, RunningMove],
    *,
    global_limit: int,
    now: datetime,
    paused: bool = False,
    fixed_topology: bool = False,
    written: Mapping[str, TierMigrationStatus] | None = None,
) -> Operations:
    """Judge every unfinished, unstarted TierMigration and admit the ready ones (see the module doc).

    ``running`` is keyed by volume. ``written`` holds the status last written per object when the watch may
    not have delivered it yet (a patch is computed against it rather than against the stored one).
    """
    written = written or {}
    by_name = {r.name: r for r in rules}
    valid = {r.name: r for r in rules if isinstance(r, PolicyRules)}
    decisions: dict[str, list[Decision]] = {}
    for d in plan.decisions:
        decisions.setdefault(d.volume, []).append(d)
    planned = {m.volume: m for m in plan.migrations}
    pool_index = Pools(pools.values())
    reserved: dict[str, int] = {}
    statuses: dict[str, tuple[dict[str, Any], TierMigrationStatus]] = {}
    adopt: list[str] = []
    release: list[str] = []

    def write(tm: TierMigration, name: str, new: TierMigrationStatus) -> None:
        old = written.get(name, None if tm.status is UNSET else tm.status)
        patch = status_patch(old, new)
        if patch is not None:
            statuses[name] = (patch, new)

    running_requests = {r.request for r in running.values() if r.request}
    candidates: list[_Candidate] = []
    seen_volumes: set[str] = set()
    for tm in sorted(migrations, key=_queue_key):
        name = "" if tm.metadata.name is UNSET else tm.metadata.name
        finalizers = () if tm.metadata.finalizers is UNSET else tm.metadata.finalizers
        if is_finished(tm):
            if FINALIZER in finalizers and name not in running_requests:
                release.append(name)
            continue
        volume = tm.spec.volume
        if volume in running or name in running_requests:
            continue  # started: its status is the runner's
        deleting = tm.metadata.deletion_timestamp is not UNSET
        if FINALIZER not in finalizers and not deleting:
            adopt.append(name)
        policy = tm.spec.policy or _selecting_policy(decisions.get(volume, []))
        judge = _judge_dry_run if tm.metadata.annotation(DRY_RUN) == "true" else _judge
        candidate = judge(
            tm,
            name,
            policy,
            rules=by_name.get(policy),
            decision=next((d for d in decisions.get(volume, []) if d.policy == policy), None),
            view=views.get(volume),
            planned=planned.get(volume),
            pools=pool_index,
            reserved=reserved,
            duplicate=volume in seen_volumes,
            fixed_topology=fixed_topology,
            now=now,
        )
        seen_volumes.add(volume)
        if isinstance(candidate.verdict, Cancel):
            write(
                tm,
                name,
                finished_status(
                    "cancelled", now=now, reason=candidate.verdict.reason, detail=candidate.verdict.message
                ),
            )
            if FINALIZER in finalizers:
                release.append(name)
            continue
        candidates.append(candidate)

    # Unanswered moves go to admission too: a volume group whose member awaits approval then waits whole.
    waiting = [
        Waiting(
            key=c.name,
            policy=c.policy,
            order=_order(c.tm),
            nodes=_nodes(c.move, pools),
            pools=frozenset((*c.move.source_pools, *((c.move.target_pool,) if c.move.target_pool else ()))),
            approved=c.tm.spec.approved is True,
            group=c.migration.group if c.migration is not None else "",
        )
        for c in candidates
        if isinstance(c.verdict, (Ready, AwaitApproval))
        and c.hold is None
        and c.migration is not None
        and not c.dry_run
    ]
    # A volume group moves all or none: when a member cannot even queue (pending decision, no pool), none does.
    members = Counter(c.migration.group for c in candidates if c.migration is not None and c.migration.group)
    queued = Counter(w.group for w in waiting if w.group)
    blocked = {g for g, n in members.items() if queued[g] < n}
    waiting = [w for w in waiting if w.group not in blocked]
    admission = admit(
        waiting,
        [
            Running(
                r.request or r.volume,
                r.policy,
                _nodes(Move(r.policy, None, "", r.source_pools, r.target_pool), pools),
                frozenset((*r.source_pools, r.target_pool)),
            )
            for r in running.values()
            if not r.stuck
        ],
        [gate_of(r) for r in valid.values()],
        global_limit=global_limit,
        now=now,
        paused=paused,
    )
    by_key = {c.name: c for c in candidates}
    starts = []
    for key in admission.start:
        c = by_key[key]
        assert c.migration is not None
        starts.append(Start(key, c.migration))
    next_windows: dict[str, datetime] = {}
    for c in candidates:
        if c.name in admission.start:
            continue
        hold = c.hold or admission.held.get(c.name)
        group = c.migration.group if c.migration is not None else ""
        if hold is None and group in blocked:
            hold = Hold(GROUP_BLOCKED, f"volume group {group} moves all or none: a member cannot start now")
        if hold is not None and hold.reason == AWAITING_APPROVAL and isinstance(c.verdict, Ready):
            # Approved, held for the group's other members' approval.
            hold = Hold(GROUP_BLOCKED, hold.detail)
        if hold is not None and hold.reason == OUTSIDE_WINDOW and hold.next_window is not None:
            known = next_windows.get(c.policy)
            next_windows[c.policy] = hold.next_window if known is None else min(known, hold.next_window)
        write(c.tm, c.name, waiting_status(c.move, verdict=c.verdict, hold=hold, dry_run=c.dry_run))

    limits = {r.name: r.tier_migration_history_limit for r in valid.values()}
    doomed = [n for n in history_to_delete(migrations, limits) if n not in release]
    return Operations(
        starts=tuple(starts),
        statuses=MappingProxyType(statuses),
        adopt=tuple(adopt),
        release=tuple(release),
        delete=tuple(doomed),
        next_windows=MappingProxyType(next_windows),
    )


def window_holds(
    rules: Sequence[PolicyRules | PolicyProblem], now: datetime, *, paused: bool = False
) -> dict[str, Hold]:
    """Policy -> its ``outside-window`` hold, for every valid policy whose maintenance windows or blackouts
    allow no new move at ``now``. A paused policy (or operator) is left out: admission holds its moves as
    ``paused`` first, and its decisions keep their label."""
    out = {}
    for r in rules:
        if isinstance(r, PolicyRules) and not r.dry_run:
            hold = policy_hold(gate_of(r), now, paused)
            if hold is not None and hold.reason == OUTSIDE_WINDOW:
                out[r.name] = hold
    return out


def held_decision(decision: Decision, holds: Mapping[str, Hold]) -> Decision:
    """``decision`` as shown: a move (``hot``/``warm``/``cold``) its policy holds outside a window becomes
    ``skip:outside-window``, keeping its tiers, pool and score, its detail saying when the window opens."""
    hold = holds.get(decision.policy)
    if hold is None or decision.action not in _MOVES:
        return decision
    return structs.replace(
        decision, action=Action.SKIP, reason=OUTSIDE_WINDOW, detail=f"{decision.detail}; held {hold.detail}"
    )


def held_plan(plan: Plan, holds: Mapping[str, Hold]) -> Plan:
    """``plan`` with every decision as :func:`held_decision` shows it (the migrations unchanged)."""
    if not holds:
        return plan
    policies = tuple(
        replace(
            p, decisions=tuple(d if d.action not in _MOVES else held_decision(d, holds) for d in p.decisions)
        )
        if p.policy in holds and p.migrations  # a move decision always comes with its planned migration
        else p
        for p in plan.policies
    )
    return replace(plan, policies=policies)


_MOVES = frozenset({Action.HOT, Action.WARM, Action.COLD})


def shown_changes(
    changes: Sequence[tuple[Decision | None, Decision]],
    plan: Plan,
    before: Mapping[str, Hold],
    holds: Mapping[str, Hold],
) -> list[tuple[Decision | None, Decision]]:
    """The decision changes as shown: the planner's ``changes`` (before, after) with the last pass's holds
    ``before`` and this pass's ``holds`` applied, and, for a policy whose window opened or closed since, every
    move of ``plan`` whose label changed with the clock alone (the planner saw no change in it)."""
    out = [(None if b is None else held_decision(b, before), held_decision(d, holds)) for b, d in changes]
    flipped = holds.keys() ^ before.keys()
    if flipped:
        listed = {(d.policy, d.volume) for _, d in changes}
        for p in plan.policies:
            if p.policy not in flipped:
                continue
            for d in p.decisions:
                pair = (held_decision(d, before), held_decision(d, holds))
                if (d.policy, d.volume) not in listed and pair[0].label != pair[1].label:
                    out.append(pair)
    return out


def _judge(
    tm: TierMigration,
    name: str,
    policy: str,
    *,
    rules: PolicyRules | PolicyProblem | None,
    decision: Decision | None,
    view: VolumeView | None,
    planned: PlannedMigration | None,
    pools: Pools,
    reserved: dict[str, int],
    duplicate: bool,
    fixed_topology: bool,
    now: datetime,
) -> _Candidate:
    """The verdict on one unstarted move, the move its status shows and, when it may be admitted, the
    planned migration it would run."""
    target = Tier(tm.spec.target_tier)
    requested = tm.metadata.annotation(POLICY_GENERATION) is None  # a user's request, not a planned move
    valid = rules if isinstance(rules, PolicyRules) else None
    still, why_not, transient = _still_wanted(decision, target, requested=requested, view=view, now=now)
    if duplicate:
        still, why_not = False, "another TierMigration of the volume is older"
    planned_generation = _int(tm.metadata.annotation(POLICY_GENERATION))
    facts = Facts(
        approved=tm.spec.approved,
        cancel=tm.spec.cancel,
        deleting=tm.metadata.deletion_timestamp is not UNSET,
        created_at=_created(tm, now),
        manual=valid is not None and valid.manual_approval,
        ttl_seconds=valid.approval_ttl_seconds if valid is not None else 0,
        planned_generation=planned_generation,
        # A policy read without a generation (never from an API server) counts as unchanged.
        policy_generation=None if valid is None else _first(valid.generation, planned_generation, 0),
        still_wanted=still,
        why_not=why_not,
    )
    verdict = approval_verdict(facts, now)
    current = decision.current_tier if decision is not None else None
    migration: PlannedMigration | None = None
    hold: Hold | None = None
    if not isinstance(verdict, Cancel) and valid is not None and view is not None:
        if transient:  # shown with its pool, never admitted while the decision is pending
            hold = Hold(UNDECIDED, f"the decision is pending: {why_not}")
        if current is not None:
            migration = _migration(
                valid,
                view,
                decision,
                current,
                target,
                tm.spec.target_pool,
                planned,
                pools,
                reserved,
                fixed_topology,
            )
        if migration is None and hold is None and tm.spec.target_pool is not None:
            hold = Hold(NO_CAPACITY, f"pool {tm.spec.target_pool} cannot take the volume now")
    target_pool = migration.target_pool if migration is not None else tm.spec.target_pool
    move = _shown_move(policy, decision, view, target, target_pool, pools, valid)
    return _Candidate(tm, name, policy, verdict, move, migration, hold)


def _judge_dry_run(
    tm: TierMigration,
    name: str,
    policy: str,
    *,
    rules: PolicyRules | PolicyProblem | None,
    decision: Decision | None,
    view: VolumeView | None,
    planned: PlannedMigration | None,
    pools: Pools,
    reserved: dict[str, int],
    duplicate: bool,
    fixed_topology: bool,
    now: datetime,
) -> _Candidate:
    """A dry-run policy's move: shown in phase ``Planned`` while the policy would still make it, else
    cancelled with the reason (never approved, admitted or started)."""
    del planned, reserved, fixed_topology, now  # a shown move is never placed for real
    target = Tier(tm.spec.target_tier)
    valid = rules if isinstance(rules, PolicyRules) else None
    verdict: Verdict = Ready()
    if tm.spec.cancel or tm.metadata.deletion_timestamp is not UNSET:
        verdict = Cancel("Cancelled", "cancelled by the user (a dry-run move is never started)")
    elif valid is None:
        verdict = Cancel("PolicyGone", "its StoragePolicy was deleted or is invalid")
    elif duplicate:
        verdict = Cancel("DecisionChanged", "another TierMigration of the volume is older")
    elif decision is not None and decision.reason != "dry-run" and not valid.dry_run:
        verdict = Cancel("DryRunEnded", "the policy left dry-run: its moves are planned for real from now on")
    elif decision is not None and decision.reason in TRANSIENT:
        pass  # still shown while the decision is pending
    elif decision is None or decision.reason != "dry-run" or decision.target_tier is not target:
        why = "the volume is gone" if view is None else (decision.detail if decision else "not selected")
        verdict = Cancel("DecisionChanged", f"the decision no longer holds: {why}")
    target_pool = decision.target_pool if decision is not None else None
    move = _shown_move(policy, decision, view, target, target_pool, pools, valid)
    return _Candidate(tm, name, policy, verdict, move, None, None, dry_run=True)


def _shown_move(
    policy: str,
    decision: Decision | None,
    view: VolumeView | None,
    target: Tier,
    target_pool: str | None,
    pools: Pools,
    valid: PolicyRules | None,
) -> Move:
    """The move a TierMigration's status shows, from this pass's decision and view of the volume."""
    current = decision.current_tier if decision is not None else None
    return Move(
        policy=policy,
        from_tier=None if current is None else current.value,
        to_tier=target.value,
        source_pools=tuple(sorted({r.pool for r in view.replicas})) if view is not None else (),
        target_pool=target_pool,
        size_bytes=view.size_bytes if view is not None else None,
        trigger_iops=decision.score if decision is not None else None,
        target_free_bytes=pools[target_pool].free_bytes
        if target_pool is not None and target_pool in pools
        else None,
        policy_generation=valid.generation if valid is not None else None,
    )


def _still_wanted(
    decision: Decision | None,
    target: Tier,
    *,
    requested: bool,
    view: VolumeView | None,
    now: datetime,
) -> tuple[bool, str, bool]:
    """(still wanted, why not, only transiently undecided) for a move to ``target`` given this pass's
    decision on the volume under the move's policy."""
    if view is None:
        return False, "the volume is gone", False
    if requested:
        # A user's request is no way around the claim's pin or opt-out.
        refused = refusal(view.pin, view.pin_error, target, now)
        if refused is not None:
            return False, refused, False
    if decision is None:
        return False, "the policy does not select the volume", False
    if decision.reason == "dry-run":
        return False, "the policy is in dry-run", False
    if decision.reason in TRANSIENT:
        return True, decision.detail or decision.reason, True
    if requested:
        if (
            decision.reason in REFUSED
            or decision.reason.startswith("conflict:")
            or decision.current_tier is None
        ):
            return False, decision.detail or decision.label, False
        if decision.current_tier is target:
            return False, f"the volume is on the {target} tier already", False
        return True, "", False
    if decision.target_tier is not target:
        return False, decision.detail or decision.label, False
    return True, "", False


def _migration(
    rules: PolicyRules,
    view: VolumeView,
    decision: Decision | None,
    current: Tier,
    target: Tier,
    target_pool: str | None,
    planned: PlannedMigration | None,
    pools: Pools,
    reserved: dict[str, int],
    fixed_topology: bool,
) -> PlannedMigration | None:
    """The migration the move would run: the pass's planned one when it is this move, else one placed now
    (on ``target_pool`` when the object names one); None when no pool of the target tier can take it."""
    if (
        planned is not None
        and planned.to_tier is target
        and (target_pool is None or planned.target_pool == target_pool)
    ):
        return planned
    want = Wanted(
        rules=rules,
        volume=view,
        current=current,
        target=target,
        score=decision.score if decision is not None and decision.score is not None else 0.0,
        detail=f"requested move to {target}",
        fixed_topology=fixed_topology,
    )
    choice = pools if target_pool is None else Pools(p for p in pools.values() if p.name == target_pool)
    pool = pick_pool(want, choice, reserved)
    if pool is None:
        return None
    reserved[pool.name] = reserved.get(pool.name, 0) + (view.size_bytes or 0)
    return scheduled_move(want, pool)[1]


def _selecting_policy(decisions: Sequence[Decision]) -> str:
    """The policy of a request that names none: the one policy selecting the volume ('' for none or many)."""
    names = {d.policy for d in decisions}
    return next(iter(names)) if len(names) == 1 else ""


def _nodes(move: Move, pools: Mapping[str, PoolView]) -> frozenset[str]:
    names = (*move.source_pools, *((move.target_pool,) if move.target_pool else ()))
    return frozenset(node for p in names if p in pools and (node := pools[p].node) is not None)


def _created(tm: TierMigration, now: datetime) -> datetime:
    stamp = tm.metadata.creation_timestamp
    if not stamp:
        return now
    try:
        return parse_time(stamp)
    except ValueError:
        return now


def _order(tm: TierMigration) -> float:
    stamp = tm.metadata.creation_timestamp
    try:
        return parse_time(stamp).timestamp() if stamp else float("inf")
    except ValueError:
        return float("inf")


def _queue_key(tm: TierMigration) -> tuple[float, str]:
    return (_order(tm), "" if tm.metadata.name is UNSET else tm.metadata.name)


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


__all__ = [
    "DRY_RUN",
    "UNDECIDED",
    "Operations",
    "RunningMove",
    "Start",
    "held_decision",
    "held_plan",
    "new_objects",
    "operate",
    "shown_changes",
    "window_holds",
]
