"""Incremental decisions: re-judge only the volumes whose inputs changed, keep every other verdict.

:class:`IncrementalPlanner` gives the same :class:`~couchestor.tiering.plan.Plan` as
:func:`~couchestor.tiering.decide.decide` over the same inputs (decisions compared per policy and volume; their
order within a policy is not kept), but after its first call it re-judges a (policy, volume) pair only when
something that verdict depends on changed:

- the volume's view (the caller says which, from :class:`~couchestor.tiering.views.ViewIndex`);
- its heat score or coverage in its policy's snapshot (found by comparing the old snapshot with the new one),
  or its peak over an idle period (``coldAfterIdle``), or the state of that snapshot or of its idle-period
  peaks as a whole (missing, unhealthy, too old, enough coverage anywhere): then every volume of that
  window's policies;
- whether it is in flight or recently migrated, its external group (VolumeGroupReplication);
- another member of its volume group (a group is judged as a whole);
- time: verdicts that depend on the clock (``cooldown``, and any verdict of a volume whose pin has an end) are
  re-judged on every call;
- pool capacity or health: ``dry-run`` verdicts (they name the pool a move would use).

Tier pressure (:mod:`~couchestor.tiering.pressure`) is a matter of scheduling, so it is worked out again on
every call as in :func:`~couchestor.tiering.decide.decide`: it refuses promotions as they are scheduled and,
while a tier is over its mark, turns the ``stay`` verdicts of its coldest volumes into moves down for that
call only (the kept verdicts stay as judged). Only a policy with a tier over its mark has its verdicts looked
through.

A change of the policies, of the pools' names, nodes or labels, or of the options, re-judges everything, as
does ``changed=None`` (the caller's periodic full pass). Scheduling (slots, pool room) runs over all wanted
moves on every call, as in :func:`~couchestor.tiering.decide.decide`: the moves compete with each other.

After each call, :attr:`IncrementalPlanner.changes` holds (before, after) for every decision that differs
from the previous call's (before is None for a pair not decided then) and :attr:`IncrementalPlanner.removed`
the last decisions of the (policy, volume) pairs no longer decided, so reporting is incremental too. Policy names are unique
(StoragePolicies are cluster-scoped). The equality with a full :func:`~couchestor.tiering.decide.decide` after any sequence of changes
is a property test (``tests/unit/test_incremental.py``).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from types import MappingProxyType

from couchestor.tiering.groups import GroupWanted, group_score, group_verdict, schedule_group
from couchestor.tiering.heat import ScoreSnapshot
from couchestor.tiering.judge import (
    current_tier,
    judge as _judge,  # a module attribute, so a test can count who is re-judged
    metrics_problem,
)
from couchestor.tiering.pins import Pinning, group_pinning
from couchestor.tiering.placement import Pools, Wanted
from couchestor.tiering.plan import Action, DecideOptions, Decision, Plan, PlannedMigration, PolicyPlan
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier
from couchestor.tiering.pressure import Pressure, fill_percents, pressure_order
from couchestor.tiering.schedule import schedule
from couchestor.tiering.views import PoolView, VolumeView

Policy = PolicyRules | PolicyProblem
#: (decide()'s order of a move, policy rank, group 0 / single 1, volume name or group key)
_SortKey = tuple[tuple[int, float, str], int, int, str]
_Verdict = Decision | Wanted
#: Policy name -> volume name -> a decision (None: none).
_ByPolicy = dict[str, dict[str, Decision | None]]


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What one call judges against, besides the policies and pools (see :meth:`IncrementalPlanner.plan`)."""

    views: Mapping[str, VolumeView]
    scores: Mapping[int, ScoreSnapshot]
    in_flight: Collection[str]
    recent: Mapping[str, datetime]
    now: datetime
    opts: DecideOptions
    #: PV name -> external group key (VolumeGroupReplication).
    external: Mapping[str, str]


class _PolicyState:
    """What is kept of one policy between calls."""

    __slots__ = (
        "conflicts",
        "gwanted",
        "members",
        "rules",
        "selected",
        "static",
        "tier_of",
        "unreadable",
        "wanted",
    )

    def __init__(self, rules: Policy) -> None:
        self.rules = rules
        self.selected: set[str] = set()
        #: Final decisions that scheduling does not touch (every verdict that is not a wanted move).
        self.static: dict[str, Decision] = {}
        self.wanted: dict[str, Wanted] = {}
        #: Group key -> a wanted group move; group key -> member names (groups of any size).
        self.gwanted: dict[str, GroupWanted] = {}
        self.members: dict[str, set[str]] = {}
        self.tier_of: dict[str, Tier] = {}
        self.conflicts: dict[str, tuple[str, ...]] = {}
        #: Selected volumes with an annotation that cannot be read, and what it is.
        self.unreadable: dict[str, str] = {}

    def group_key(self, v: VolumeView, external: Mapping[str, str]) -> str | None:
        rules = self.rules
        if not isinstance(rules, PolicyRules):
            return None
        value = external.get(v.name)
        if not value and rules.group_label is not None:
            value = v.pvc_labels.get(rules.group_label)
        return value or None


class IncrementalPlanner:
    """See the module docstring. One instance per reconciler; not shared between tasks."""

    def __init__(self) -> None:
        self.changes: list[tuple[Decision | None, Decision]] = []
        self.removed: list[Decision] = []
        self._policies: tuple[Policy, ...] | None = None
        self._options: DecideOptions | None = None
        self._state: dict[str, _PolicyState] = {}
        self._pool_shape: tuple[tuple[str, str | None, tuple[tuple[str, str], ...]], ...] = ()
        self._pool_room: tuple[tuple[str, str, int | None], ...] = ()
        self._snapshots: dict[int, ScoreSnapshot] = {}
        self._snapshot_state: dict[int, tuple[object, ...]] = {}
        self._in_flight: frozenset[str] = frozenset()
        self._recent: dict[str, datetime] = {}
        self._groups: dict[str, str] = {}
        #: (policy, volume) -> the volume's group key under that policy, for selected volumes that have one.
        self._group_keys: dict[tuple[str, str], str] = {}
        #: At a full pass, the decisions the last call showed, by policy and volume (see :meth:`_reset`).
        self._shown_before: dict[str, dict[str, Decision]] = {}
        self._volatile: set[str] = set()  # volumes with a clock-dependent verdict (cooldown, a pin's end)
        self._dry: set[str] = set()  # volumes with a dry-run verdict (they name a pool)
        #: The last call's decisions from scheduling, by policy and volume.
        self._scheduled: dict[str, dict[str, Decision]] = {}
        #: The last call's pressure decisions, by (policy, volume): they stand in for kept ``stay`` verdicts.
        self._pressed: dict[tuple[str, str], Decision] = {}
        self._pools = Pools(())
        # Every wanted move in decide()'s scheduling order, kept sorted as moves come and go, so a call
        # does not sort them all again: sort key -> the move, and (policy, volume or group key) -> sort key.
        self._order: list[_SortKey] = []
        self._order_added: list[_SortKey] = []
        self._order_dropped: list[_SortKey] = []
        self._moves: dict[_SortKey, Wanted | GroupWanted] = {}
        self._order_of: dict[tuple[str, str, bool], _SortKey] = {}
        self._rank: dict[str, int] = {}
        # Moves held back by their policy's concurrency limit, with the decision(s) given them: a move that
        # is still the same object and still held back gets the same decisions without building them again.
        self._held: dict[_SortKey, tuple[Wanted | GroupWanted, list[Decision]]] = {}
        self._moves_per_policy: Counter[str] = Counter()
        #: The moves added since the last call's scheduling, and the first move of its tail (None: no tail).
        self._added_now: list[_SortKey] = []
        self._cut: _SortKey | None = None

    def plan(
        self,
        policies: Sequence[Policy],
        views: Mapping[str, VolumeView],
        pools: Sequence[PoolView],
        scores: Mapping[int, ScoreSnapshot],
        in_flight: Collection[str],
        recent_migrations: Mapping[str, datetime],
        now: datetime,
        options: DecideOptions | None = None,
        groups: Mapping[str, str] | None = None,
        *,
        changed: Collection[str] | None = None,
        handle_names: Callable[[str], Collection[str]] | None = None,
        moving: Mapping[str, tuple[Tier, Tier]] | None = None,
    ) -> Plan:
        """The plan for these inputs. ``views`` maps PV names to their views; ``changed`` names the volumes
        whose view changed since the last call (None: unknown, re-judge everything); ``handle_names`` gives
        the PV names of a volume handle (:meth:`ViewIndex.names_with_handle`; without it, a scan of the
        views when a score labelled by handle changed); ``moving`` the running migrations, as for
        :func:`~couchestor.tiering.decide.decide`."""
        opts = options or DecideOptions()
        groups = dict(groups or {})
        ordered = tuple(sorted(policies, key=lambda p: (p.name, p.generation or 0)))
        shape = tuple((p.name, p.node, tuple(sorted(p.labels.items()))) for p in pools)
        room = tuple((p.name, p.health, p.free_bytes) for p in pools)
        full = (
            changed is None or ordered != self._policies or opts != self._options or shape != self._pool_shape
        )
        self._pools = Pools(pools)
        # Volumes whose view (or external group) changed: their selection, groups and tiers are redone;
        # volumes whose other inputs changed (score, flight, clock, ...) are only judged again.
        reshaped: set[str] = set()
        rejudged: set[str] = set()
        if full:
            self._reset(ordered, opts)
        else:
            assert changed is not None
            reshaped = set(changed)
            reshaped |= {
                k for k in groups.keys() | self._groups.keys() if groups.get(k) != self._groups.get(k)
            }
            rejudged |= self._volatile
            if room != self._pool_room:
                rejudged |= self._dry
            rejudged |= frozenset(in_flight) ^ self._in_flight
            rejudged |= {
                k
                for k in recent_migrations.keys() | self._recent.keys()
                if recent_migrations.get(k) != self._recent.get(k)
            }
            rejudged |= self._score_changes(
                ordered, scores, now, opts, views, handle_names or _Handles(views)
            )
        self._pool_shape, self._pool_room = shape, room
        self._in_flight = frozenset(in_flight)
        self._recent = dict(recent_migrations)
        self._groups = groups
        self._snapshots = dict(scores)
        self._snapshot_state = {w: _snapshot_state(scores.get(w), w, now, opts) for w in _windows(ordered)}
        inputs = _Inputs(views, scores, in_flight, recent_migrations, now, opts, groups)
        old_final = None
        if full:
            self._judge_all(ordered, inputs)
        else:
            old_final = self._judge_dirty(ordered, reshaped, rejudged, inputs)
        pressure = Pressure(ordered, self._pools, moving or {}, views)
        return self._finish(ordered, in_flight, old_final, pressure, views, recent_migrations, now, opts)

    # -- what changed --------------------------------------------------------------------------------------

    def _reset(self, ordered: tuple[Policy, ...], opts: DecideOptions) -> None:
        old = self._state
        self._policies, self._options = ordered, opts
        self._state = {p.name: _PolicyState(p) for p in ordered}
        self._volatile, self._dry = set(), set()
        self._group_keys = {}
        # Every decision of the old state is "removed" unless decided again (see _full_changes).
        self._shown_before = {
            name: {**st.static, **self._scheduled.get(name, {})} for name, st in old.items()
        }
        for (name, volume), pressed in self._pressed.items():
            self._shown_before[name][volume] = pressed
        self._scheduled = {}
        self._order, self._moves, self._order_of, self._held = [], {}, {}, {}
        self._order_added, self._order_dropped = [], []
        self._moves_per_policy, self._added_now, self._cut = Counter(), [], None
        self._rank = {p.name: i for i, p in enumerate(ordered)}

    def _add_move(self, policy: str, ident: str, move: Wanted | GroupWanted) -> None:
        # decide() sorts stably a list built policy by policy, groups (by key) before single volumes (by
        # name): the rank, kind and name in the key give ties that same order.
        group = isinstance(move, GroupWanted)
        key: _SortKey = (move.order, self._rank[policy], 0 if group else 1, ident)
        self._drop_move(policy, ident, group)
        self._moves[key] = move
        self._order_of[(policy, ident, group)] = key
        self._order_added.append(key)
        self._moves_per_policy[policy] += 1

    def _drop_move(self, policy: str, ident: str, group: bool) -> None:
        key = self._order_of.pop((policy, ident, group), None)
        if key is not None:
            del self._moves[key]
            self._held.pop(key, None)
            self._order_dropped.append(key)
            self._moves_per_policy[policy] -= 1

    def _sorted_moves(self) -> list[_SortKey]:
        """The sort keys of every wanted move in order: a few changes are put in place, many re-sort."""
        added, dropped = self._order_added, self._order_dropped
        self._order_added, self._order_dropped = [], []
        self._added_now = added
        if len(added) + len(dropped) > 64:
            self._order = sorted(self._moves)
            return self._order
        order = self._order
        for key in set(dropped):
            i = bisect.bisect_left(order, key)
            if i < len(order) and order[i] == key:
                del order[i]
        for key in set(added):
            if key in self._moves:
                bisect.insort(order, key)
        return order

    def _score_changes(
        self,
        ordered: tuple[Policy, ...],
        scores: Mapping[int, ScoreSnapshot],
        now: datetime,
        opts: DecideOptions,
        views: Mapping[str, VolumeView],
        handle_names: Callable[[str], Collection[str]],
    ) -> set[str]:
        out: set[str] = set()
        for window in _windows(ordered):
            new, old = scores.get(window), self._snapshots.get(window)
            if _snapshot_state(new, window, now, opts) != self._snapshot_state.get(window):
                return set(views) | {v for st in self._state.values() for v in st.selected}
            if new is None or old is None or new is old:
                continue
            a, b = old.scores, new.scores
            if list(a) == list(b):
                # The same volumes in the same order (the usual refresh): compare side by side, no lookups.
                for key, x, y in zip(a, a.values(), b.values(), strict=True):
                    if x.score != y.score or x.coverage != y.coverage:
                        out.add(key)
                        out.update(handle_names(key))
            else:
                for key in a.keys() | b.keys():
                    was, now_ = a.get(key), b.get(key)
                    if (
                        was is None
                        or now_ is None
                        or was.score != now_.score
                        or was.coverage != now_.coverage
                    ):
                        out.add(key)
                        out.update(handle_names(key))
            # Idle-period peaks: their presence and health are in the snapshot state; here, each volume's.
            for period in old.peaks.keys() & new.peaks.keys():
                p, q = old.peaks[period].peaks, new.peaks[period].peaks
                if p is q:
                    continue
                for key in p.keys() | q.keys():
                    if p.get(key) != q.get(key):
                        out.add(key)
                        out.update(handle_names(key))
        return out

    # -- judging -------------------------------------------------------------------------------------------

    def _judge_dirty(
        self,
        ordered: tuple[Policy, ...],
        reshaped: set[str],
        rejudged: set[str],
        inputs: _Inputs,
    ) -> _ByPolicy:
        """Redo selection, groups and tiers of the ``reshaped`` volumes and judge them and the ``rejudged``
        ones again under every policy; returns the final decisions the judged ones had before, by policy."""
        views, external = inputs.views, inputs.external
        states = [self._state[p.name] for p in ordered]
        previous: _ByPolicy = {}
        selecting: dict[str, list[_PolicyState]] = {}

        def selectors(name: str) -> list[_PolicyState]:
            found = selecting.get(name)
            if found is None:
                v = views.get(name)
                found = selecting[name] = [] if v is None else [s for s in states if _selects(s.rules, v)]
            return found

        def others_of(st: _PolicyState, name: str) -> tuple[str, ...]:
            # A volume not reshaped is selected by the same policies as before: their sets say which.
            claim = selectors(name) if name in reshaped else [o for o in states if name in o.selected]
            return tuple(o.rules.name for o in claim if o is not st and _claims(o.rules))

        touched = reshaped | rejudged
        self._volatile -= touched
        self._dry -= touched
        for st in states:
            name_of = st.rules.name
            grouped = _grouped(st.rules, external)
            judge = rejudged & st.selected
            touched_groups: set[str] = set()
            if grouped:
                for name in judge:
                    key = self._group_key_of(st, name)
                    if key is not None:
                        touched_groups.add(key)
            for name in reshaped:
                now_in = st in selectors(name)
                if not now_in and name not in st.selected:
                    continue
                judge.add(name)
                st.tier_of.pop(name, None)
                old_key = self._group_key_of(st, name)
                if old_key is not None:
                    touched_groups.add(old_key)
                    st.members[old_key].discard(name)
                    if not st.members[old_key]:
                        del st.members[old_key]
                st.unreadable.pop(name, None)
                if now_in:
                    st.selected.add(name)
                    v = views[name]
                    if v.unreadable is not None:
                        st.unreadable[name] = v.unreadable
                    new_key = st.group_key(v, external)
                    if new_key is not None:
                        st.members.setdefault(new_key, set()).add(name)
                        touched_groups.add(new_key)
                    if isinstance(st.rules, PolicyRules):
                        tier, _ = current_tier(st.rules, v, self._pools)
                        if tier is not None:
                            st.tier_of[name] = tier
                else:
                    st.selected.discard(name)
            for key in touched_groups:
                judge |= st.members.get(key, set())
                if st.gwanted.pop(key, None) is not None:
                    self._drop_move(name_of, key, True)
            scheduled = self._scheduled.get(name_of, {})
            in_order = _in_views_order(judge, views)
            before = previous[name_of] = {}
            for name in in_order:
                before[name] = scheduled.get(name) or st.static.get(name)
                st.static.pop(name, None)
                if st.wanted.pop(name, None) is not None:
                    self._drop_move(name_of, name, False)
                st.conflicts.pop(name, None)
            self._group_index(st, judge & reshaped, views, external)
            chosen = [n for n in in_order if n in st.selected]
            verdicts = self._judge_names(st, chosen, grouped, others_of, inputs)
            self._keep(st, self._group_verdicts(st, touched_groups, verdicts, views).items())
        return previous

    def _judge_all(self, ordered: tuple[Policy, ...], inputs: _Inputs) -> None:
        """The full pass, on the empty state :meth:`_reset` left: one sweep over the views selects and
        indexes every volume for every policy, and judges it under each policy without volume groups (as
        decide() does: at 100,000 volumes every further sweep reads the views from memory again); a policy
        with groups judges its volumes after the sweep, once every group is whole."""
        views, scores, external = inputs.views, inputs.scores, inputs.external
        in_flight, recent, now, opts = inputs.in_flight, inputs.recent, inputs.now, inputs.opts
        states = [self._state[p.name] for p in ordered]
        scoped = [(st, st.rules.scope) for st in states if st.rules.scope is not None]
        grouped = {st.rules.name for st in states if _grouped(st.rules, external)}
        verdicts: dict[str, list[tuple[str, _Verdict]]] = {st.rules.name: [] for st in states}
        later: dict[str, list[str]] = {name: [] for name in grouped}
        #: The claiming policies of each volume that more than one policy selects.
        claimants: dict[str, list[str]] = {}
        pools, group_keys = self._pools, self._group_keys
        for name, v in views.items():
            storage_class, labels = v.storage_class, v.pvc_labels
            mine = [st for st, scope in scoped if scope.selects(storage_class, labels)]
            if not mine:
                continue
            claimed: list[str] = []
            if len(mine) > 1:
                claimed = claimants[name] = [st.rules.name for st in mine if _claims(st.rules)]
            unreadable = v.unreadable
            if v.pin is not None and v.pin.until is not None:
                self._volatile.add(name)
            for st in mine:
                rules = st.rules
                st.selected.add(name)
                if unreadable is not None:
                    st.unreadable[name] = unreadable
                tier = None
                if isinstance(rules, PolicyRules):
                    tier = current_tier(rules, v, pools)
                    if tier[0] is not None:
                        st.tier_of[name] = tier[0]
                if rules.name in grouped:
                    key = st.group_key(v, external)
                    if key is not None:
                        st.members.setdefault(key, set()).add(name)
                        group_keys[(rules.name, name)] = key
                    later[rules.name].append(name)
                    continue
                others = tuple(n for n in claimed if n != rules.name)
                verdicts[rules.name].append(
                    (name, _judge(rules, v, others, pools, scores, in_flight, recent, now, opts, None, tier))
                )

        def others_of(st: _PolicyState, name: str) -> tuple[str, ...]:
            return tuple(n for n in claimants.get(name, ()) if n != st.rules.name)

        for st in states:
            if st.rules.name in grouped:
                own = self._judge_names(st, later[st.rules.name], True, others_of, inputs)
                self._keep(st, self._group_verdicts(st, set(st.members), own, views).items())
            else:
                self._keep(st, verdicts[st.rules.name])

    def _judge_names(
        self,
        st: _PolicyState,
        names: Collection[str],
        grouped: bool,
        others_of: Callable[[_PolicyState, str], tuple[str, ...]],
        inputs: _Inputs,
    ) -> dict[str, _Verdict]:
        """The verdicts on ``names`` (selected by the policy, its groups indexed) under the policy, each
        volume of a group of two or more judged with its group's score and pin."""
        views, scores, now, opts = inputs.views, inputs.scores, inputs.now, inputs.opts
        verdicts: dict[str, _Verdict] = {}
        combined: dict[str, float | None] = {}
        pinned: dict[str, Pinning | None] = {}
        for name in names:
            v = views[name]
            gkey = self._group_key_of(st, name) if grouped else None
            group = None
            if gkey is not None and len(st.members.get(gkey, ())) > 1:
                if gkey not in combined:
                    # The members' scores are summed in name order, as decide() sums them.
                    combined[gkey] = group_score(
                        st.rules, [views[n] for n in sorted(st.members[gkey])], scores, opts
                    )
                score = combined[gkey]
                group = None if score is None else (gkey, score)
                if gkey not in pinned:
                    pinned[gkey] = group_pinning(
                        gkey, [(n, views[n].pin) for n in sorted(st.members[gkey])], now
                    )
            verdicts[name] = _judge(
                st.rules,
                v,
                others_of(st, name),
                self._pools,
                scores,
                inputs.in_flight,
                inputs.recent,
                now,
                opts,
                group,
                group_pin=None if gkey is None else pinned.get(gkey),
            )
            if v.pin is not None and v.pin.until is not None:
                self._volatile.add(name)
        return verdicts

    def _group_verdicts(
        self,
        st: _PolicyState,
        keys: Collection[str],
        verdicts: dict[str, _Verdict],
        views: Mapping[str, VolumeView],
    ) -> dict[str, _Verdict]:
        """``verdicts`` with the groups ``keys`` (of two or more, every member judged) judged as a whole:
        a group that moves is kept as one wanted group move, and its members leave ``verdicts``."""
        for key in sorted(keys):
            members = sorted(st.members.get(key, ()))
            if len(members) < 2:
                continue
            together = group_verdict(key, [(views[n], verdicts[n]) for n in members])
            if isinstance(together, GroupWanted):
                st.gwanted[key] = together
                self._add_move(st.rules.name, key, together)
                for n in members:
                    del verdicts[n]
            else:
                verdicts.update(together)
        return verdicts

    def _keep(self, st: _PolicyState, verdicts: Iterable[tuple[str, _Verdict]]) -> None:
        """Keep the verdicts (name, verdict): wanted moves for scheduling, every other one as a final
        decision."""
        for name, verdict in verdicts:
            if isinstance(verdict, Wanted):
                st.wanted[name] = verdict
                self._add_move(st.rules.name, name, verdict)
                continue
            st.static[name] = verdict
            reason = verdict.reason
            if reason == "cooldown":
                self._volatile.add(name)
            elif reason == "dry-run":
                self._dry.add(name)
            elif reason.startswith("conflict:"):
                st.conflicts[name] = tuple(reason.removeprefix("conflict:").split(","))

    def _in_group(self, st: _PolicyState, name: str) -> bool:
        """Whether ``name`` is in a volume group of two or more under the policy."""
        key = self._group_key_of(st, name)
        return key is not None and len(st.members.get(key, ())) > 1

    def _group_key_of(self, st: _PolicyState, name: str) -> str | None:
        return self._group_keys.get((st.rules.name, name))

    def _group_index(
        self, st: _PolicyState, names: set[str], views: Mapping[str, VolumeView], external: Mapping[str, str]
    ) -> None:
        keys = self._group_keys
        for name in names:
            k = (st.rules.name, name)
            keys.pop(k, None)
            if name in st.selected:
                key = st.group_key(views[name], external)
                if key is not None:
                    keys[k] = key

    # -- scheduling and the plan ---------------------------------------------------------------------------

    def _finish(
        self,
        ordered: tuple[Policy, ...],
        in_flight: Collection[str],
        previous: _ByPolicy | None,
        pressure: Pressure,
        views: Mapping[str, VolumeView],
        recent: Mapping[str, datetime],
        now: datetime,
        opts: DecideOptions,
    ) -> Plan:
        flying = set(in_flight)
        slots = {
            p.name: p.max_concurrent_migrations - len(flying & self._state[p.name].selected)
            for p in ordered
            if isinstance(p, PolicyRules)
        }
        reserved: dict[str, int] = {}
        started: list[PlannedMigration] = []
        kept = self._scheduled
        # The decisions that may differ from the last call's, by policy, with that decision (None: none then).
        # A full pass (previous is None) compares everything, policy by policy, in _full_changes.
        candidates: _ByPolicy = {}
        pressed_before, self._pressed = self._pressed, {}
        if previous is not None:
            # Re-judged volumes are scheduled again below if they still want to move.
            for policy, judged in previous.items():
                scheduled_before = kept.get(policy)
                if scheduled_before:
                    for volume in judged:
                        scheduled_before.pop(volume, None)
            candidates = previous
            # What the last call showed for a pressed pair was its pressure decision, not the kept verdict.
            for (policy, volume), shown in pressed_before.items():
                candidates.setdefault(policy, {})[volume] = shown

        def record(policy: str, decision: Decision) -> None:
            own = kept.setdefault(policy, {})
            before = own.get(decision.volume)
            if before is not decision:
                if previous is not None:
                    candidates.setdefault(policy, {}).setdefault(decision.volume, before)
                own[decision.volume] = decision

        def place(key: _SortKey) -> None:
            want = self._moves[key]
            policy = _policy_of(want)
            if slots[policy] <= 0:
                cached = self._held.get(key)
                if cached is not None and cached[0] is want:
                    for decision in cached[1]:
                        record(policy, decision)
                    return
            if isinstance(want, GroupWanted):
                results = schedule_group(want, slots, self._pools, reserved, pressure)
            else:
                results = [schedule(want, slots, self._pools, reserved, pressure)]
            if all(m is None and d.reason == "concurrency-limit" for d, m in results):
                self._held[key] = (want, [d for d, _ in results])
            else:
                self._held.pop(key, None)
            for decision, migration in results:
                record(policy, decision)
                if migration is not None:
                    started.append(migration)

        # Moves in order until every policy is out of slots or of moves; every move after that point (the
        # tail) is held back by its policy's limit, and keeps its decision from the last call unless it is
        # new in the tail.
        order = self._sorted_moves()
        remaining = dict(self._moves_per_policy)
        active = {p for p, n in remaining.items() if n > 0 and slots.get(p, 0) > 0}
        cut = 0
        while cut < len(order) and active:
            key = order[cut]
            policy = _policy_of(self._moves[key])
            place(key)
            remaining[policy] -= 1
            if slots[policy] <= 0 or remaining[policy] == 0:
                active.discard(policy)
            cut += 1
        old_cut = self._cut
        end = len(order) if old_cut is None else bisect.bisect_left(order, old_cut)
        for key in order[cut:end]:
            place(key)  # held back now, scheduled further up the last time
        if old_cut is not None and cut < len(order):
            # New in the tail, beyond the range above: moves added since the last call.
            first = max(order[cut], old_cut)
            for key in set(self._added_now):
                if key in self._moves and key >= first:
                    place(key)
        self._cut = order[cut] if cut < len(order) else None
        pressed = self._pressed
        for rules in pressure_order(ordered):
            if not pressure.over(rules.name):
                continue
            st = self._state[rules.name]
            stays = [
                (views[name], d)
                for name, d in st.static.items()
                if d.action is Action.STAY and not self._in_group(st, name)
            ]
            for tier in rules.tiers:
                for demotion in pressure.demotions(rules, tier, stays, recent, now, opts.fixed_topology):
                    if isinstance(demotion, Decision):
                        pressed[(rules.name, demotion.volume)] = demotion
                        continue
                    decision, migration = schedule(demotion, slots, self._pools, reserved, pressure)
                    pressed[(rules.name, decision.volume)] = decision
                    if migration is not None:
                        started.append(migration)
        pressed_in = {policy for policy, _ in pressed}
        if previous is None:
            self._full_changes(ordered, pressed, pressed_in)
        else:
            for policy, volume in pressed:
                candidates.setdefault(policy, {}).setdefault(volume, self._state[policy].static.get(volume))
            self._changes_among(candidates, pressed_in)
        scheduled = kept
        plans = []
        for p in ordered:
            st = self._state[p.name]
            # The verdicts kept and the scheduled ones are disjoint: a wanted move is never kept as final.
            # Pressure decisions stand in for kept verdicts (looked up only for a policy that has any).
            static = (
                tuple(pressed.get((p.name, name), d) for name, d in st.static.items())
                if p.name in pressed_in
                else tuple(st.static.values())
            )
            own = static + tuple(scheduled.get(p.name, {}).values())
            counts = dict.fromkeys(p.tiers if isinstance(p, PolicyRules) else (), 0)
            if isinstance(p, PolicyRules):
                counts.update(Counter(st.tier_of.values()))
            plans.append(
                PolicyPlan(
                    policy=p.name,
                    generation=p.generation,
                    problem=p if isinstance(p, PolicyProblem) else None,
                    enabled=p.enabled if isinstance(p, PolicyRules) else False,
                    dry_run=p.dry_run if isinstance(p, PolicyRules) else False,
                    decisions=own,
                    tier_counts=MappingProxyType(counts),
                    conflicts=MappingProxyType(dict(st.conflicts)),
                    unreadable=MappingProxyType(dict(st.unreadable)),
                    in_flight=len(flying & st.selected),
                    migrations=tuple(m for m in started if m.policy == p.name),
                    tier_fill=MappingProxyType(fill_percents(p, self._pools)),
                )
            )
        return Plan(policies=tuple(plans), migrations=tuple(started))

    def _changes_among(self, candidates: _ByPolicy, pressed_in: set[str]) -> None:
        """Set :attr:`changes` and :attr:`removed` from the ``candidates`` (policy -> volume -> the decision
        the last call showed), the only decisions that may differ: policy by policy in name order, each
        policy's volumes sorted by name (a key read back from every decision would visit 100,000 of them
        again, out of the CPU caches; the volumes come mostly in the views' order, so the sort is short)."""
        changes: list[tuple[Decision | None, Decision]] = []
        removed: list[Decision] = []
        by_volume = itemgetter(0)
        for policy in sorted(candidates):
            owner = self._state.get(policy)
            static: Mapping[str, Decision] = owner.static if owner is not None else {}
            own = self._scheduled.get(policy, {})
            pressed = self._pressed if policy in pressed_in else None
            for volume, before in sorted(candidates[policy].items(), key=by_volume):
                after = (
                    (pressed.get((policy, volume)) if pressed is not None else None)
                    or own.get(volume)
                    or static.get(volume)
                )
                if after is None:
                    if before is not None:
                        removed.append(before)
                elif after != before:
                    changes.append((before, after))
        self.changes = changes
        self.removed = removed

    def _full_changes(
        self, ordered: tuple[Policy, ...], pressed: Mapping[tuple[str, str], Decision], pressed_in: set[str]
    ) -> None:
        """Set :attr:`changes` and :attr:`removed` after a full pass, against what :meth:`_reset` kept of the
        last call: policy by policy in name order (``ordered``'s), each policy's volumes sorted by name (they
        come in the views' order, mostly sorted already, so the sort is about one pass; one sort of every
        (policy, volume) pair would compare each about log2(n) times)."""
        before_all, self._shown_before = self._shown_before, {}
        changes: list[tuple[Decision | None, Decision]] = []
        removed: list[tuple[tuple[str, str], Decision]] = []
        by_volume = itemgetter(0)
        for p in ordered:
            name = p.name
            st = self._state[name]
            own = self._scheduled.get(name, {})
            olds = before_all.pop(name, {})
            pressed_here = name in pressed_in
            decided = [*st.static.items(), *own.items()]
            decided.sort(key=by_volume)
            for volume, after in decided:
                if pressed_here:
                    after = pressed.get((name, volume), after)
                before = olds.pop(volume, None) if olds else None
                if before is None or after != before:
                    changes.append((before, after))
            removed.extend(((name, v), d) for v, d in olds.items())
        for name, olds in before_all.items():
            removed.extend(((name, v), d) for v, d in olds.items())
        removed.sort(key=itemgetter(0))
        self.changes = changes
        self.removed = [before for _, before in removed]


class _Handles:
    """PV names by volume handle, from a scan of the views made at the first question."""

    def __init__(self, views: Mapping[str, VolumeView]) -> None:
        self._views = views
        self._names: dict[str, list[str]] | None = None

    def __call__(self, handle: str) -> Collection[str]:
        if self._names is None:
            self._names = {}
            for v in self._views.values():
                if v.volume_id is not None:
                    self._names.setdefault(v.volume_id, []).append(v.name)
        return self._names.get(handle, ())


def _in_views_order(names: set[str], views: Mapping[str, VolumeView]) -> Collection[str]:
    """``names``, when they are many, in the views' order (then those without a view): the order of the views,
    their names and verdicts in memory, where the set's hash order makes every read a cache miss at 100,000
    volumes. A few names stay in the set, rather than walk every view for them."""
    if len(names) * 8 <= len(views):
        return names
    found = [n for n in views if n in names]
    if len(found) < len(names):
        found += names.difference(found)
    return found


def _policy_of(move: Wanted | GroupWanted) -> str:
    return move.members[0].rules.name if isinstance(move, GroupWanted) else move.rules.name


def _selects(rules: Policy, v: VolumeView) -> bool:
    scope = rules.scope
    return scope is not None and scope.selects(v.storage_class, v.pvc_labels)


def _grouped(rules: Policy, external: Mapping[str, str]) -> bool:
    """Whether the policy's volumes may form groups (its ``groupLabel``, or any external group)."""
    return isinstance(rules, PolicyRules) and (rules.group_label is not None or bool(external))


def _claims(rules: Policy) -> bool:
    """Whether a policy selecting a volume makes it a conflict for the others (enabled, or invalid)."""
    return isinstance(rules, PolicyProblem) or rules.enabled


def _windows(ordered: Sequence[Policy]) -> set[int]:
    return {p.window_seconds for p in ordered if isinstance(p, PolicyRules)}


def _snapshot_state(
    snapshot: ScoreSnapshot | None, window: int, now: datetime, opts: DecideOptions
) -> tuple[object, ...]:
    """What every verdict of a window depends on besides each volume's own score."""
    if snapshot is None:
        return (None,)
    problem = metrics_problem(snapshot, window, now, opts)
    peaks = tuple(
        (
            period,
            p.healthy,
            (now - p.fetched_at).total_seconds() > opts.max_score_age_seconds,
            p.max_coverage < opts.min_coverage,
        )
        for period, p in sorted(snapshot.peaks.items())
    )
    return (problem, snapshot.max_coverage < opts.min_coverage, peaks)


__all__ = ["IncrementalPlanner"]
