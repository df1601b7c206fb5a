"""Which waiting moves may start now, and why each other one waits: one pure function, :func:`admit`.

Inputs are plain data: the moves waiting (:class:`Waiting`, each with its policy and its place in that
policy's queue), the rebuilds running (:class:`Running`), each policy's gate (:class:`PolicyGate`: its
limits, maintenance windows, pause and approval mode), the operator-wide limit and pause, and the time.
The result (:class:`Admission`) lists the moves to start, in start order, and a :class:`Hold` for every
other waiting move. Nothing here performs I/O or remembers anything between calls.

A move may start when, checked in this order (the first that fails is its hold reason):

1. ``paused``: neither the operator (``couchestor run --paused``) nor its policy (annotation) is paused;
2. ``awaiting-approval``: its policy's approval is Automatic, or the move is approved (checked before the
   window: an approval may be given at any time, and the move then starts when a window opens);
3. ``outside-window``: its policy's schedule allows a start now (the hold says when the next window opens,
   and whether a blackout is the cause);
4. ``global-limit``: fewer than ``global_limit`` rebuilds run or were admitted in this call;
5. ``policy-limit``: fewer than its policy's ``max_concurrent`` moves of that policy run or were admitted;
6. ``node-limit`` / ``pool-limit``: on every node and every pool the move touches, as source or target,
   fewer than its policy's ``max_rebuilds_per_node`` / ``max_rebuilds_per_pool`` rebuilds run or were
   admitted, counting the rebuilds of every policy.

Queues. Each policy's waiting moves are taken in their ``order`` (FIFO). A move held by a per-move reason
(approval, or a node or pool that is busy) does not hold back the moves behind it: they may start, so one
busy node or one unanswered approval does not stop a whole policy. A shared limit (global, policy) once
reached stays reached for the rest of the call (loads only grow), so it holds every later move too: a later
move never takes a slot before an earlier one of its policy.

Volume groups: the members of a group (same ``group``) are one unit, queued at the place of their first
member: all approved, one free global and policy slot (a group takes one, as in the decisions), and room on
every node and pool for all members at once — then all start, else all wait with the same hold. A group
whose members alone exceed a node's or pool's limit waits (``node-limit``/``pool-limit``) until the limit is
raised: the limit is never exceeded.

Fairness across policies: admission goes in rounds; each round offers one start to every policy that has
moves left, the policies with fewest rebuilds running (then the oldest head of queue, then the name) first.
So a policy with a long queue cannot take every global slot while another one waits.

Running moves are never stopped here: a move that started inside a window finishes after it closes.

How the operator calls it (:func:`couchestor.tiering.operations.operate`): on each reconcile pass, after
:func:`couchestor.tiering.decide.decide` and before starting migrations, build one :class:`Waiting` per planned (or user-requested) move
that is not running, with ``order`` from its TierMigration's creation (creationTimestamp, then name), one
:class:`Running` per intent found on a volume (source pools and nodes from the intent, target from its
target pool), and one :class:`PolicyGate` per compiled policy (:func:`gate_of`); start exactly
``Admission.start`` and write each hold on its TierMigration (:mod:`couchestor.tiering.tiermigration`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from couchestor.durations import format_time
from couchestor.tiering.policy import PolicyRules
from couchestor.tiering.windows import ALWAYS, Schedule


@dataclass(frozen=True, slots=True)
class Waiting:
    """A move waiting to start. ``order`` is its place in its policy's queue (lower first; ties by key).

    ``nodes`` and ``pools`` are every node and pool the move's rebuild touches: the pools holding the
    volume's replicas (the rebuild may read from any of them) and the target pool, with their nodes.
    ``approved`` is True once the move's TierMigration says ``approved: true``. Moves sharing a non-empty
    ``group`` (a volume group of one policy) are admitted together or not at all.
    """

    key: str
    policy: str
    order: float
    nodes: frozenset[str]
    pools: frozenset[str]
    approved: bool = False
    group: str = ""


@dataclass(frozen=True, slots=True)
class Running:
    """A rebuild in progress (an intent on a volume), with every node and pool it touches."""

    key: str
    policy: str
    nodes: frozenset[str]
    pools: frozenset[str]


@dataclass(frozen=True, slots=True)
class PolicyGate:
    """What one policy lets through: its limits, schedule, pause and approval mode."""

    name: str
    max_concurrent: int
    max_rebuilds_per_node: int
    max_rebuilds_per_pool: int
    schedule: Schedule = ALWAYS
    paused: bool = False
    manual_approval: bool = False


def gate_of(rules: PolicyRules) -> PolicyGate:
    """The gate of a compiled policy."""
    return PolicyGate(
        name=rules.name,
        max_concurrent=rules.max_concurrent_migrations,
        max_rebuilds_per_node=rules.max_rebuilds_per_node,
        max_rebuilds_per_pool=rules.max_rebuilds_per_pool,
        schedule=rules.schedule,
        paused=rules.paused,
        manual_approval=rules.manual_approval,
    )


#: Hold reasons, as written on the TierMigration (``status.reason`` spells them in CamelCase).
PAUSED = "paused"
AWAITING_APPROVAL = "awaiting-approval"
OUTSIDE_WINDOW = "outside-window"
GLOBAL_LIMIT = "global-limit"
POLICY_LIMIT = "policy-limit"
NODE_LIMIT = "node-limit"
POOL_LIMIT = "pool-limit"
NO_POLICY = "no-policy"
#: Reasons that concern one move only: they never hold back the moves queued behind it.
PER_MOVE = frozenset({AWAITING_APPROVAL, NODE_LIMIT, POOL_LIMIT})


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a waiting move does not start now: ``reason`` (one of the constants above), one sentence of
    ``detail``, and for ``outside-window`` when the next window opens (None: none within the horizon)."""

    reason: str
    detail: str
    next_window: datetime | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The moves to start now (keys, in start order) and the hold of every other waiting move."""

    start: tuple[str, ...]
    held: Mapping[str, Hold] = field(default_factory=lambda: MappingProxyType({}))


def admit(
    waiting: Iterable[Waiting],
    running: Iterable[Running],
    gates: Iterable[PolicyGate],
    *,
    global_limit: int,
    now: datetime,
    paused: bool = False,
) -> Admission:
    """Decide which of ``waiting`` start now; see the module doc for the rules. ``now`` is timezone-aware."""
    by_policy = {g.name: g for g in gates}
    active = list(running)
    node_load: dict[str, int] = {}
    pool_load: dict[str, int] = {}
    policy_load: dict[str, int] = {}
    for r in active:
        _count(r.nodes, r.pools, r.policy, node_load, pool_load, policy_load)
    total = len(active)

    held: dict[str, Hold] = {}
    queues: dict[str, list[Waiting]] = {}
    for move in sorted(waiting, key=lambda w: (w.order, w.key)):
        gate = by_policy.get(move.policy)
        if gate is None:
            held[move.key] = Hold(NO_POLICY, f"no valid StoragePolicy named {move.policy!r}")
        else:
            queues.setdefault(move.policy, []).append(move)

    # Policy-wide holds first: pause, then the window (an unapproved move says it awaits approval instead,
    # as the user can give that at any time).
    for name, queue in list(queues.items()):
        gate = by_policy[name]
        hold = policy_hold(gate, now, paused)
        if hold is not None:
            for move in queue:
                approval = _approval_hold([move], gate)
                held[move.key] = approval if approval is not None and hold.reason != PAUSED else hold
            del queues[name]

    started: list[str] = []
    while queues:
        # One start per policy per round; the least busy policy first.
        for name in sorted(
            queues, key=lambda n: (policy_load.get(n, 0), queues[n][0].order, queues[n][0].key, n)
        ):
            gate, queue = by_policy[name], queues[name]
            while queue:
                unit = [queue.pop(0)]
                if unit[0].group:  # a volume group is one unit: all members start together or none
                    unit += [m for m in queue if m.group == unit[0].group]
                    queue[:] = [m for m in queue if m.group != unit[0].group]
                hold = _approval_hold(unit, gate)
                if hold is None:
                    hold = _limit_hold(unit, gate, total, global_limit, policy_load, node_load, pool_load)
                if hold is None:
                    for m in unit:
                        started.append(m.key)
                        _count(m.nodes, m.pools, name, node_load, pool_load, policy_load)
                    total += len(unit)
                    break
                held.update(dict.fromkeys((m.key for m in unit), hold))
            if not queue:
                del queues[name]
    return Admission(tuple(started), MappingProxyType(held))


def _count(
    nodes: Iterable[str],
    pools: Iterable[str],
    policy: str,
    node_load: dict[str, int],
    pool_load: dict[str, int],
    policy_load: dict[str, int],
) -> None:
    for n in nodes:
        node_load[n] = node_load.get(n, 0) + 1
    for p in pools:
        pool_load[p] = pool_load.get(p, 0) + 1
    policy_load[policy] = policy_load.get(policy, 0) + 1


def policy_hold(gate: PolicyGate, now: datetime, paused: bool = False) -> Hold | None:
    """The hold on every new move of ``gate``'s policy at ``now`` (pause, then the schedule), or None."""
    if paused:
        return Hold(PAUSED, "the operator is paused (couchestor run --paused): no new move starts")
    if gate.paused:
        return Hold(PAUSED, f"policy {gate.name} is paused by its storage.billyronks.io/paused annotation")
    if not gate.schedule.allows(now):
        opening = gate.schedule.next_opening(now)
        when = f"the next window opens at {format_time(opening)}" if opening else "no window opens ahead"
        blackout = gate.schedule.blackout_at(now)
        if blackout is None:
            why = "outside the policy's maintenance windows"
        else:
            why = f"in a blackout ({blackout.reason})" if blackout.reason else "in a blackout"
        return Hold(OUTSIDE_WINDOW, f"{why}; {when}", opening)
    return None


def _approval_hold(unit: Sequence[Waiting], gate: PolicyGate) -> Hold | None:
    if not gate.manual_approval:
        return None
    waiting_for = [m.key for m in unit if not m.approved]
    if not waiting_for:
        return None
    if len(unit) == 1:
        return Hold(AWAITING_APPROVAL, "the policy's approval is Manual: set spec.approved: true to start it")
    return Hold(
        AWAITING_APPROVAL,
        f"volume group {unit[0].group} moves all or none: waiting for the approval of {', '.join(waiting_for)}",
    )


def _limit_hold(
    unit: Sequence[Waiting],
    gate: PolicyGate,
    total: int,
    global_limit: int,
    policy_load: Mapping[str, int],
    node_load: Mapping[str, int],
    pool_load: Mapping[str, int],
) -> Hold | None:
    """Why ``unit`` (one move, or a volume group's members) cannot start under the limits, or None.

    A unit needs one free global and one free policy slot (a volume group takes one, as in the decisions);
    on nodes and pools every member counts: after the unit starts, none may carry more than the limit."""
    what = "" if len(unit) == 1 else f"volume group {unit[0].group}: "
    if total >= global_limit:
        return Hold(
            GLOBAL_LIMIT,
            f"{what}{global_limit} migration(s) running cluster-wide (--max-concurrent-migrations)",
        )
    if policy_load.get(gate.name, 0) >= gate.max_concurrent:
        return Hold(
            POLICY_LIMIT,
            f"{what}{gate.max_concurrent} migration(s) of policy {gate.name} running (maxConcurrentMigrations)",
        )
    for reason, kind, setting, limit, needs, load in (
        (NODE_LIMIT, "node", "maxRebuildsPerNode", gate.max_rebuilds_per_node, _unit_nodes(unit), node_load),
        (POOL_LIMIT, "pool", "maxRebuildsPerPool", gate.max_rebuilds_per_pool, _unit_pools(unit), pool_load),
    ):
        # A group needing more than the limit on one node or pool by itself never fits: say so, not "busy".
        alone = sorted(f"{n} ({k})" for n, k in needs.items() if k > limit)
        if alone:
            return Hold(
                reason,
                f"{what}needs more rebuilds at once on {kind} {', '.join(alone)} than {setting} {limit} allows;"
                f" it starts only once {setting} is raised",
            )
        busy = sorted(n for n, k in needs.items() if load.get(n, 0) + k > limit)
        if busy:
            return Hold(
                reason, f"{what}{kind} {', '.join(busy)} would carry more than {limit} rebuild(s) ({setting})"
            )
    return None


def _unit_nodes(unit: Sequence[Waiting]) -> Counter[str]:
    """How many rebuilds ``unit`` puts on each node."""
    return Counter(n for m in unit for n in m.nodes)


def _unit_pools(unit: Sequence[Waiting]) -> Counter[str]:
    """How many rebuilds ``unit`` puts on each pool."""
    return Counter(p for m in unit for p in m.pools)


def reason_word(reason: str) -> str:
    """The CamelCase ``status.reason`` of a hold reason (``node-limit`` -> ``NodeLimit``)."""
    return "".join(part.capitalize() for part in reason.split("-"))


__all__ = [
    "Admission",
    "Hold",
    "PolicyGate",
    "Running",
    "Waiting",
    "admit",
    "gate_of",
    "policy_hold",
    "reason_word",
]
