"""Per-volume tiering decisions and the migrations to start, as one pure function over plain data.

:func:`decide` takes compiled policies, volume and pool views (built from the watched Kubernetes objects by
:func:`~couchestor.tiering.views.build_volume_views` and :func:`~couchestor.tiering.views.build_pool_views`),
heat-score snapshots, the volumes already migrating, recent migrations and the current time, and returns a
:class:`~couchestor.tiering.plan.Plan`: for every policy, one :class:`~couchestor.tiering.plan.Decision` per volume it selects, placement counts per tier, its conflicts, and the migrations to
start now. It never performs I/O and gives the same plan for the same inputs in any order.

A volume is keyed everywhere by its PV name (``in_flight``, ``recent_migrations``, :attr:`~couchestor.tiering.plan.Decision.volume`).

Per policy and selected volume, the first rule that applies gives the decision:

1. ``conflict:<others>`` when another enabled (or invalid, see :class:`~couchestor.tiering.policy.PolicyProblem`)
   policy selects it too: reported on every such policy, never moved.
2. ``invalid-policy``, then ``disabled`` (a disabled policy claims nothing and moves nothing).
3. Facts about the volume: ``deleting``, ``no-mayastor-volume``, ``in-flight``, ``degraded`` (a replica not
   Online and Synced, or fewer replicas than ``numReplicas``), ``tier-unknown`` (a Synced replica on a pool
   that is unknown or that not exactly one of the policy's tier selectors matches), ``mixed-tier``.
   Then the claim's pin or opt-out (:mod:`~couchestor.tiering.pins`): ``pin-invalid`` (an annotation that
   cannot be read), ``excluded``, ``pin-conflict`` (group members pinned to different tiers). A volume pinned
   to a tier (its own active pin, else its group's) skips rules 4 and 5: on that tier, or on a tier the policy
   lacks, it is ``pinned``; otherwise it wants the move to it, and rule 6 applies.
4. Metrics: ``metrics-unavailable`` (no snapshot yet for the policy's window, an unhealthy one, or one older
   than ``max_score_age_seconds``), ``no-score`` (a non-finite value), ``low-coverage``. A volume absent from
   a healthy snapshot scores 0, unless no volume at all has ``min_coverage`` of the window (Prometheus just
   started or lost its data): then absence proves nothing and it is ``low-coverage`` too.
5. ``stay`` when :meth:`~couchestor.tiering.policy.PolicyRules.target_tier` says so (hysteresis is documented there).
6. A wanted move (``target_tier`` set on the decision even when skipped): ``topology-pinned`` when the
   storage cannot change topologies (``fixed_topology``) and no target-tier pool satisfies the volume's;
   ``cooldown`` while the last
   migration (PV annotation or ``recent_migrations``, the later one) is younger than ``cooldownPeriod``, or
   the annotation cannot be read;
   ``dry-run`` (with the pool it would use, without reserving it); ``size-unknown``; then scheduling.

Volume groups: when a policy has ``groupLabel``, volumes whose PVC labels share its value form a group (two
or more members). Each member is judged as above but on the group's combined score (the sum of the members'
scores); the group moves only if every member wants the same move (otherwise the wanting members get
``group-blocked``), takes one concurrency slot, and needs room for every member or none moves. The members'
pins pin the group (:func:`~couchestor.tiering.pins.group_pinning`).

Scheduling: every wanted move of every policy is ordered promotions first, hottest first, then demotions,
coldest first (ties by volume name), and taken in that order while the policy has a free slot
(``maxConcurrentMigrations`` minus its volumes already in flight; else ``concurrency-limit``) and the target
tier has an Online pool with room (else ``no-capacity``). The chosen pool is the one with most room left,
preferring nodes that hold none of the volume's replicas, then by name; its room is reserved at once, so no
two planned moves count the same free bytes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import cast

import msgspec

from couchestor.tiering.groups import GroupWanted, find_groups, group_score, group_verdict, schedule_group
from couchestor.tiering.heat import ScoreSnapshot
from couchestor.tiering.judge import current_tier, judge
from couchestor.tiering.pins import Pinning, group_pinning
from couchestor.tiering.placement import Pools, Wanted
from couchestor.tiering.plan import DecideOptions, Decision, Plan, PlannedMigration
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier
from couchestor.tiering.pressure import Pressure, fill_percents, pressure_order
from couchestor.tiering.schedule import held_back, policy_plan, schedule
from couchestor.tiering.views import PoolView, VolumeView


def decide(
    policies: Sequence[PolicyRules | PolicyProblem],
    volumes: Iterable[VolumeView],
    pools: Iterable[PoolView],
    scores: Mapping[int, ScoreSnapshot],
    in_flight: Collection[str],
    recent_migrations: Mapping[str, datetime],
    now: datetime,
    options: DecideOptions | None = None,
    groups: Mapping[str, str] | None = None,
    *,
    moving: Mapping[str, tuple[Tier, Tier]] | None = None,
) -> Plan:
    """Decide every selected volume of every policy and plan the migrations to start now.

    ``scores`` maps a sampling window in seconds to the latest snapshot for it; ``in_flight`` holds the PV
    names being migrated; ``recent_migrations`` maps PV names to when a migration of theirs last finished
    (or failed) and not yet written to the PV annotation; ``now`` and every time are timezone-aware.
    ``groups`` maps PV names to a group key from outside the policy (a VolumeGroupReplication): such volumes
    are grouped like those sharing the policy's ``groupLabel``, and that membership wins over the label.
    ``moving`` maps the PV names of running migrations to (from tier, to tier), for tier pressure (:mod:`~couchestor.tiering.pressure`).
    The rules are in the module docstring.
    """
    opts = options or DecideOptions()
    ordered = sorted(policies, key=lambda p: (p.name, p.generation or 0))
    vols = sorted(volumes, key=attrgetter("name"))
    pools_by_name = Pools(pools)
    # Per policy, the decision of its i-th selected volume at index i (None until a wanted move is
    # scheduled): lists rather than maps by name, as a map's every insertion and lookup reads the name, and
    # at 100,000 volumes the names are not in the CPU caches.
    decisions: dict[str, list[Decision | None]] = {p.name: [] for p in ordered}
    counts: dict[str, dict[Tier, int]] = {
        p.name: dict.fromkeys(p.tiers if isinstance(p, PolicyRules) else (), 0) for p in ordered
    }
    # Per policy, its wanted moves on their own: see ``wanted`` below.
    singles: dict[str, list[_Move]] = {p.name: [] for p in ordered}

    def judged(
        policy: PolicyRules | PolicyProblem,
        v: VolumeView,
        others: tuple[str, ...],
        group: tuple[str, float] | None = None,
        group_pin: Pinning | None = None,
    ) -> Decision | Wanted:
        # The volume's tier, once per policy: its status counts and its judging both need it.
        tier = current_tier(policy, v, pools_by_name) if isinstance(policy, PolicyRules) else None
        if tier is not None and tier[0] is not None:
            counts[policy.name][tier[0]] += 1
        return judge(
            policy,
            v,
            others,
            pools_by_name,
            scores,
            in_flight,
            recent_migrations,
            now,
            opts,
            group,
            tier,
            group_pin,
        )

    def alone(policy: PolicyRules | PolicyProblem, verdict: Decision | Wanted) -> None:
        """Record the verdict on the policy's next selected volume (a wanted move: its place)."""
        own = decisions[policy.name]
        if isinstance(verdict, Wanted):
            # (Its order, and its decision should its policy have no slot for it, taken now, while its
            # view is in the CPU caches: at 100,000 volumes most of a load shift's moves are held back.)
            place = len(own)
            singles[policy.name].append(
                _Move(*verdict.order, policy.name, 1, place, verdict, place, held_back(verdict))
            )
            own.append(None)
        else:
            own.append(verdict)

    # One sweep over the volumes selects for every policy and, without volume groups, judges too: at 100,000
    # volumes the views do not fit in the CPU caches, and each further sweep reads them from memory again.
    # Only a volume that more than one policy selects gets an entry in ``claimants`` (the claiming
    # policies: enabled or invalid ones).
    has_groups = bool(groups) or any(
        isinstance(p, PolicyRules) and p.group_label is not None for p in ordered
    )
    selected: dict[str, list[VolumeView]] = {p.name: [] for p in ordered}
    scoped = [(p.scope, selected[p.name], p) for p in ordered if p.scope is not None]
    claimants: dict[str, list[str]] = {}
    for v in vols:
        storage_class, labels = v.storage_class, v.pvc_labels
        hits = 0
        first: PolicyRules | PolicyProblem | None = None
        for scope, chosen, policy in scoped:
            if scope.selects(storage_class, labels):
                chosen.append(v)
                hits += 1
                if first is None:
                    first = policy
        if hits > 1:
            mine = [p for scope, _, p in scoped if scope.selects(storage_class, labels)]
            claimed = claimants[v.name] = [p.name for p in mine if _claims(p)]
            if not has_groups:
                for policy in mine:
                    alone(policy, judged(policy, v, tuple(n for n in claimed if n != policy.name)))
        elif first is not None and not has_groups:
            alone(first, judged(first, v, ()))

    wanted: list[_Move] = []
    # Per policy, the volumes in a group (tier pressure moves only volumes on their own).
    in_groups: dict[str, set[str]] = {p.name: set() for p in ordered}
    for policy in ordered:
        if has_groups:
            wanted += _judge_groups(
                policy,
                selected[policy.name],
                groups or {},
                claimants,
                judged,
                alone,
                scores,
                opts,
                now,
                decisions[policy.name],
                in_groups[policy.name],
            )
        wanted += singles[policy.name]

    slots = {
        p.name: p.max_concurrent_migrations
        - (sum(v.name in in_flight for v in selected[p.name]) if in_flight else 0)
        for p in ordered
        if isinstance(p, PolicyRules)
    }
    reserved: dict[str, int] = {}
    started: list[PlannedMigration] = []
    # (Pressure reads the views of the running moves only: no map of every volume for them.)
    moving = moving or {}
    pressure = Pressure(
        ordered, pools_by_name, moving, {v.name: v for v in vols if v.name in moving} if moving else {}
    )
    for move in _in_order(wanted, slots):
        own, want, place = decisions[move.policy], move.want, move.place
        if isinstance(want, GroupWanted):
            assert isinstance(place, dict)
            for decision, migration in schedule_group(want, slots, pools_by_name, reserved, pressure):
                own[place[decision.volume]] = decision
                if migration is not None:
                    started.append(migration)
            continue
        assert isinstance(place, int)
        if move.held is not None and slots[move.policy] <= 0:
            own[place] = move.held
            continue
        decision, migration = schedule(want, slots, pools_by_name, reserved, pressure)
        own[place] = decision
        if migration is not None:
            started.append(migration)
    # Tiers still over their mark after the pass's own moves send their coldest volumes down.
    for rules in pressure_order(ordered):
        own = decisions[rules.name]
        chosen, grouped = selected[rules.name], in_groups[rules.name]
        stays = [(v, d) for v, d in zip(chosen, _decided(own), strict=True) if v.name not in grouped]
        index: dict[str, int] | None = None
        for full in rules.tiers:
            for demotion in pressure.demotions(
                rules, full, stays, recent_migrations, now, opts.fixed_topology
            ):
                if isinstance(demotion, Wanted):
                    decision, migration = schedule(demotion, slots, pools_by_name, reserved, pressure)
                    if migration is not None:
                        started.append(migration)
                else:
                    decision = demotion
                if index is None:  # (a map of names, only for a policy whose tier is over its mark)
                    index = {v.name: i for i, v in enumerate(chosen)}
                own[index[decision.volume]] = decision

    plans = tuple(
        policy_plan(
            policy,
            selected[policy.name],
            _decided(decisions[policy.name]),
            counts[policy.name],
            in_flight,
            started,
            fill_percents(policy, pools_by_name),
        )
        for policy in ordered
    )
    return Plan(policies=plans, migrations=tuple(started))


def _in_order(wanted: list[_Move], slots: Mapping[str, int]) -> Iterator[_Move]:
    """``wanted`` in scheduling order, as far as the order can matter.

    A move whose policy has no slot left is skipped for that whatever its place, so once no policy has a
    slot the rest come in any order: with a few slots and thousands of wanted moves (a load shift), a heap
    finds the first few instead of sorting them all.
    """
    heap = wanted.copy()
    heapq.heapify(heap)
    taken: set[int] = set()
    while heap and any(n > 0 for n in slots.values()):
        move = heapq.heappop(heap)
        taken.add(id(move))
        yield move
    if heap:
        # The rest as found, which is the order of their objects in memory (the heap's is not).
        yield from (move for move in wanted if id(move) not in taken)


def _decided(own: list[Decision | None]) -> list[Decision]:
    """``own`` once every wanted move is scheduled: every place holds a decision then. (Not checked here,
    a walk over every decision; a place left empty fails the plan's first read of it.)"""
    return cast("list[Decision]", own)


class _Move(msgspec.Struct, frozen=True, order=True, gc=False):
    """A wanted move of the pass, compared in scheduling order: :attr:`Wanted.order` (promotions first, hottest
    first, then demotions, coldest first, then by name), then its policy, a group before a volume on its own,
    then as found, so no two compare equal. ``place`` is where its decision goes in the policy's list: an
    index, or for a group each member's. ``held`` is a single move's decision should its policy have no slot
    left (:func:`~couchestor.tiering.schedule.held_back`).

    (An untracked Struct compared field by field: a load shift wants tens of thousands of moves, and tuples
    for their keys fed the garbage collector.)
    """

    rank: int
    score_key: float
    name: str
    policy: str
    alone: int
    seq: int
    want: Wanted | GroupWanted
    place: int | dict[str, int]
    held: Decision | None = None


def _claims(policy: PolicyRules | PolicyProblem) -> bool:
    """Whether ``policy`` claims the volumes it selects (an enabled or an invalid one; a disabled one does not)."""
    return isinstance(policy, PolicyProblem) or policy.enabled


def _judge_groups(
    policy: PolicyRules | PolicyProblem,
    chosen: list[VolumeView],
    external: Mapping[str, str],
    claimants: Mapping[str, list[str]],
    judged: Callable[
        [
            PolicyRules | PolicyProblem,
            VolumeView,
            tuple[str, ...],
            tuple[str, float] | None,
            Pinning | None,
        ],
        Decision | Wanted,
    ],
    alone: Callable[[PolicyRules | PolicyProblem, Decision | Wanted], None],
    scores: Mapping[int, ScoreSnapshot],
    opts: DecideOptions,
    now: datetime,
    own: list[Decision | None],
    grouped_names: set[str],
) -> list[_Move]:
    """Judge the volumes ``policy`` selects when volume groups exist: a group's members are judged on the
    group's combined score and pin, and together. Volumes on their own go to ``alone``; a member's decision
    goes to its place in ``own`` (the policy's decisions, in ``chosen`` order); each group move wanted is
    returned with its members' places, and their names are added to ``grouped_names``."""
    groups_of = find_groups(policy, chosen, external)
    combined = {key: group_score(policy, members, scores, opts) for key, members in groups_of.items()}
    pinned = {
        key: group_pinning(key, [(v.name, v.pin) for v in group], now) for key, group in groups_of.items()
    }
    member_of = {v.name: key for key, group in groups_of.items() for v in group}
    grouped_names.update(member_of)
    verdicts: dict[str, Decision | Wanted] = {}
    place: dict[str, int] = {}
    for v in chosen:
        claimed = claimants.get(v.name)
        others = () if claimed is None else tuple(n for n in claimed if n != policy.name)
        key = member_of.get(v.name)
        combined_score = combined.get(key) if key is not None else None
        group = None if key is None or combined_score is None else (key, combined_score)
        verdict = judged(policy, v, others, group, None if key is None else pinned[key])
        if key is None:
            alone(policy, verdict)
        else:
            verdicts[v.name] = verdict
            place[v.name] = len(own)
            own.append(None)
    out: list[_Move] = []
    for key, members in groups_of.items():
        group_wants = group_verdict(key, [(v, verdicts[v.name]) for v in members])
        if isinstance(group_wants, GroupWanted):
            places = {v.name: place[v.name] for v in members}
            out.append(_Move(*group_wants.order, policy.name, 0, len(out), group_wants, places))
            for v in members:
                del verdicts[v.name]
        else:
            verdicts.update(group_wants)
    for name, verdict in verdicts.items():
        if isinstance(verdict, Wanted):
            out.append(
                _Move(*verdict.order, policy.name, 1, place[name], verdict, place[name], held_back(verdict))
            )
        else:
            own[place[name]] = verdict
    return out
