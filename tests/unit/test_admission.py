"""Admission: which waiting moves start, and why the others wait. Property tests hold the limits (never more
than N rebuilds on a node or pool, counting source and target), FIFO within a policy, no start outside a
window or without approval, and that every hold given is true."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings, strategies as st

from couchestor.tiering.admission import (
    AWAITING_APPROVAL,
    GLOBAL_LIMIT,
    NO_POLICY,
    NODE_LIMIT,
    OUTSIDE_WINDOW,
    PAUSED,
    PER_MOVE,
    POLICY_LIMIT,
    POOL_LIMIT,
    PolicyGate,
    Running,
    Waiting,
    admit,
    gate_of,
    reason_word,
)
from couchestor.tiering.policy import PolicyRules, compile_policy
from couchestor.tiering.windows import Schedule, compile_blackout, compile_window
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
POOLS = [f"p{i}" for i in range(6)]
NODE_OF = {p: f"n{i % 4}" for i, p in enumerate(POOLS)}
POLICIES = ["a", "b", "c"]
CLOSED = Schedule((compile_window("0 3 * * *", "1h"),))  # 03:00-04:00 UTC: closed at noon
OPEN = Schedule((compile_window("0 11 * * *", "2h"),))


def move(key, policy="a", order=0.0, pools=("p0", "p1"), approved=False):
    return Waiting(key, policy, order, frozenset(NODE_OF[p] for p in pools), frozenset(pools), approved)


def gate(name="a", concurrent=10, per_node=10, per_pool=10, **kw):
    return PolicyGate(name, concurrent, per_node, per_pool, **kw)


# --- examples -----------------------------------------------------------------------------------------------


def test_a_busy_pool_holds_only_the_moves_that_touch_it():
    running = [Running("r", "a", frozenset({"n0"}), frozenset({"p0"}))]
    result = admit(
        [move("m1", pools=("p0", "p1"), order=1), move("m2", pools=("p2", "p3"), order=2)],
        running,
        [gate(per_pool=1)],
        global_limit=10,
        now=NOW,
    )
    assert result.start == ("m2",)
    assert result.held["m1"].reason == POOL_LIMIT
    assert "pool p0 would carry more than 1 rebuild(s)" in result.held["m1"].detail


def test_node_limit_counts_source_and_target():
    # m1 reads from p0 (node n0) and writes to p4 (node n0 as well): one node, two pools.
    running = [Running("r", "b", frozenset({"n0", "n1"}), frozenset({"p1", "p5"}))]
    result = admit(
        [move("m1", pools=("p0", "p4"))], running, [gate(per_node=1), gate("b")], global_limit=10, now=NOW
    )
    assert result.start == ()
    assert result.held["m1"].reason == NODE_LIMIT
    assert "node n0" in result.held["m1"].detail


def test_policies_share_the_global_limit_fairly():
    waiting = [move(f"a{i}", "a", i, pools=(POOLS[i],)) for i in range(4)]
    waiting += [move(f"b{i}", "b", 10 + i, pools=(POOLS[i + 1],)) for i in range(1)]
    result = admit(waiting, [], [gate("a"), gate("b")], global_limit=2, now=NOW)
    assert sorted(result.start) == ["a0", "b0"]
    assert {result.held[k].reason for k in ("a1", "a2", "a3")} == {GLOBAL_LIMIT}


def test_a_volume_group_starts_whole_or_waits_whole():
    members = [
        Waiting("g-a", "a", 1, frozenset({"n0"}), frozenset({"p0"}), group="db"),
        Waiting("g-b", "a", 2, frozenset({"n0"}), frozenset({"p4"}), group="db"),
    ]
    lone = move("lone", order=3, pools=("p1",))
    squeezed = admit([*members, lone], [], [gate(per_node=1)], global_limit=10, now=NOW)
    assert squeezed.start == ("lone",)
    assert squeezed.held["g-a"] == squeezed.held["g-b"]
    # The group alone needs two rebuilds on n0: the hold says it never fits under this limit.
    assert squeezed.held["g-a"].detail.startswith(
        "volume group db: needs more rebuilds at once on node n0 (2) than maxRebuildsPerNode 1 allows"
    )
    busy = admit(
        members,
        [Running("r", "a", frozenset({"n0"}), frozenset({"p9"}))],
        [gate(per_node=2)],
        global_limit=10,
        now=NOW,
    )
    assert busy.held["g-a"].detail.startswith("volume group db: node n0 would carry more than 2")
    roomy = admit([*members, lone], [], [gate(per_node=2, concurrent=1)], global_limit=10, now=NOW)
    assert roomy.start == ("g-a", "g-b")  # one policy slot for the group
    assert roomy.held["lone"].reason == POLICY_LIMIT
    unanswered = admit(
        [members[0], Waiting("g-b", "a", 2, frozenset({"n1"}), frozenset({"p1"}), True, "db")],
        [],
        [gate(manual_approval=True)],
        global_limit=10,
        now=NOW,
    )
    assert unanswered.start == ()
    assert (
        unanswered.held["g-b"].detail == "volume group db moves all or none: waiting for the approval of g-a"
    )


def test_a_shared_limit_keeps_the_queue_in_order():
    waiting = [move("first", order=1, pools=("p0",)), move("second", order=2, pools=("p1",))]
    result = admit(waiting, [], [gate(concurrent=1)], global_limit=10, now=NOW)
    assert result.start == ("first",)
    assert result.held["second"].reason == POLICY_LIMIT


def test_outside_a_window_the_hold_says_when_it_opens_and_approval_comes_first():
    waiting = [move("m1", order=1, approved=True), move("m2", order=2)]
    result = admit(waiting, [], [gate(schedule=CLOSED, manual_approval=True)], global_limit=10, now=NOW)
    assert result.start == ()
    assert result.held["m1"].reason == OUTSIDE_WINDOW
    assert result.held["m1"].next_window == datetime(2026, 6, 16, 3, 0, tzinfo=UTC)
    assert "2026-06-16T03:00:00Z" in result.held["m1"].detail
    assert result.held["m2"].reason == AWAITING_APPROVAL
    opened = admit(waiting, [], [gate(schedule=OPEN, manual_approval=True)], global_limit=10, now=NOW)
    assert opened.start == ("m1",)
    assert opened.held["m2"].reason == AWAITING_APPROVAL


def test_blackouts_and_pauses_are_named():
    blackout = Schedule((), (compile_blackout("2026-06-15", "2026-06-15", reason="release day"),))
    result = admit([move("m")], [], [gate(schedule=blackout)], global_limit=10, now=NOW)
    assert result.held["m"].detail.startswith("in a blackout (release day); the next window opens at")
    paused = admit(
        [move("m", approved=False)], [], [gate(manual_approval=True)], global_limit=9, now=NOW, paused=True
    )
    assert paused.held["m"].reason == PAUSED
    by_annotation = admit([move("m")], [], [gate(paused=True)], global_limit=9, now=NOW)
    assert "storage.billyronks.io/paused" in by_annotation.held["m"].detail
    orphan = admit([move("m", policy="gone")], [], [gate()], global_limit=9, now=NOW)
    assert orphan.held["m"].reason == NO_POLICY


def test_gate_of_a_compiled_policy():
    rules = compile_policy(
        StoragePolicy(
            metadata=ObjectMeta(name="gold"),
            spec={"approval": "Manual", "maxRebuildsPerNode": 3, "maxConcurrentMigrations": 4},
        ),
        operations_enforced=True,
    )
    assert isinstance(rules, PolicyRules)
    assert gate_of(rules) == PolicyGate("gold", 4, 3, 1, rules.schedule, False, True)
    assert reason_word(NODE_LIMIT) == "NodeLimit"


# --- properties ---------------------------------------------------------------------------------------------

pool_sets = st.frozensets(st.sampled_from(POOLS), min_size=1, max_size=3)


@st.composite
def scenarios(draw, common_limits: bool = False):
    node_limit = draw(st.integers(1, 3))
    pool_limit = draw(st.integers(1, 3))
    gates = []
    for name in POLICIES:
        gates.append(
            PolicyGate(
                name,
                draw(st.integers(1, 4)),
                node_limit if common_limits else draw(st.integers(1, 3)),
                pool_limit if common_limits else draw(st.integers(1, 3)),
                schedule=draw(st.sampled_from([Schedule(), OPEN, CLOSED])),
                paused=draw(st.booleans()) and draw(st.booleans()),
                manual_approval=draw(st.booleans()),
            )
        )
    running: list[Running] = []
    nodes: dict[str, int] = {}
    pools: dict[str, int] = {}
    for i, (policy, touched) in enumerate(
        draw(st.lists(st.tuples(st.sampled_from(POLICIES), pool_sets), max_size=6))
    ):
        touched_nodes = {NODE_OF[p] for p in touched}
        # Only rebuilds that fit the limits run (they were admitted under them).
        if any(nodes.get(n, 0) >= node_limit for n in touched_nodes) or any(
            pools.get(p, 0) >= pool_limit for p in touched
        ):
            continue
        for n in touched_nodes:
            nodes[n] = nodes.get(n, 0) + 1
        for p in touched:
            pools[p] = pools.get(p, 0) + 1
        running.append(Running(f"r{i}", policy, frozenset(touched_nodes), touched))
    waiting = [
        Waiting(
            f"m{i}",
            policy,
            order,
            frozenset(NODE_OF[p] for p in touched),
            touched,
            approved,
            f"{policy}-{group}" if group else "",
        )
        for i, (policy, order, touched, approved, group) in enumerate(
            draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(POLICIES),
                        st.integers(0, 20),
                        pool_sets,
                        st.booleans(),
                        st.sampled_from(["", "", "", "g1", "g2"]),
                    ),
                    max_size=12,
                )
            )
        )
    ]
    return (
        waiting,
        running,
        gates,
        draw(st.integers(1, 8)),
        draw(st.booleans()) and draw(st.booleans()),
        node_limit,
        pool_limit,
    )


@settings(max_examples=500, deadline=None)
@given(scenarios(common_limits=True))
def test_never_more_than_n_rebuilds_on_a_node_or_pool(scenario):
    waiting, running, gates, global_limit, paused, node_limit, pool_limit = scenario
    result = admit(waiting, running, gates, global_limit=global_limit, now=NOW, paused=paused)
    by_key = {w.key: w for w in waiting}
    active = [(r.nodes, r.pools) for r in running] + [
        (by_key[k].nodes, by_key[k].pools) for k in result.start
    ]
    for node in set(NODE_OF.values()):
        assert sum(node in nodes for nodes, _ in active) <= node_limit
    for pool in POOLS:
        assert sum(pool in pools for _, pools in active) <= pool_limit


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_starts_respect_windows_pauses_approvals_and_limits_and_every_hold_is_true(scenario):
    waiting, running, gates, global_limit, paused, _, _ = scenario
    result = admit(waiting, running, gates, global_limit=global_limit, now=NOW, paused=paused)
    by_key = {w.key: w for w in waiting}
    by_name = {g.name: g for g in gates}
    # A volume group starts whole or not at all.
    for group in {w.group for w in waiting if w.group}:
        members = {w.key for w in waiting if w.group == group}
        assert members <= set(result.start) or not members & set(result.start)
    # Every waiting move is started or held, never both.
    assert set(result.start) | set(result.held) == set(by_key)
    assert not set(result.start) & set(result.held)
    assert len(result.start) == len(set(result.start))
    started = [by_key[k] for k in result.start]
    for m in started:
        g = by_name[m.policy]
        assert not paused
        assert not g.paused
        assert g.schedule.allows(NOW)
        assert m.approved or not g.manual_approval
    # Each unit (a move, or a volume group's members) started while a global and a policy slot were free.
    total, per_policy, seen = (
        len(running),
        {g.name: sum(r.policy == g.name for r in running) for g in gates},
        set(),
    )
    for m in started:
        unit = [w for w in started if m.group and w.group == m.group] or [m]
        if m.key in seen:
            continue
        assert total < global_limit
        assert per_policy[m.policy] < by_name[m.policy].max_concurrent
        total += len(unit)
        per_policy[m.policy] += len(unit)
        seen |= {u.key for u in unit}
    # Holds are true of the final state.
    after = running + [Running(m.key, m.policy, m.nodes, m.pools) for m in started]
    for key, hold in result.held.items():
        m, g = by_key[key], by_name[by_key[key].policy]
        unit = [w for w in waiting if m.group and w.group == m.group] or [m]
        if hold.reason == NODE_LIMIT:
            assert any(
                sum(n in r.nodes for r in after) + sum(n in v.nodes for v in unit) > g.max_rebuilds_per_node
                for u in unit
                for n in u.nodes
            )
        elif hold.reason == POOL_LIMIT:
            assert any(
                sum(p in r.pools for r in after) + sum(p in v.pools for v in unit) > g.max_rebuilds_per_pool
                for u in unit
                for p in u.pools
            )
        elif hold.reason == GLOBAL_LIMIT:
            assert len(after) >= global_limit
        elif hold.reason == POLICY_LIMIT:
            assert sum(r.policy == g.name for r in after) >= g.max_concurrent
        elif hold.reason == OUTSIDE_WINDOW:
            assert not g.schedule.allows(NOW)
        elif hold.reason == AWAITING_APPROVAL:
            assert g.manual_approval
            assert not all(u.approved for u in unit)
        else:
            assert hold.reason == PAUSED
            assert paused or g.paused


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_fifo_within_a_policy(scenario):
    waiting, running, gates, global_limit, paused, _, _ = scenario
    result = admit(waiting, running, gates, global_limit=global_limit, now=NOW, paused=paused)
    started = set(result.start)

    def place(w):  # a volume group is queued at the place of its first member
        return min((u.order, u.key) for u in waiting if u.key == w.key or (w.group and u.group == w.group))

    for later in (w for w in waiting if w.key in started):
        for earlier in waiting:
            if earlier.policy == later.policy and place(earlier) < place(later):
                # An earlier move left waiting is held only for a reason of its own.
                assert earlier.key in started or result.held[earlier.key].reason in PER_MOVE
    # And the moves of one policy start in queue order.
    by_key = {w.key: w for w in waiting}
    for policy in POLICIES:
        places = [place(by_key[k]) for k in result.start if by_key[k].policy == policy]
        assert places == sorted(places)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_the_same_input_in_any_order_gives_the_same_admission(scenario):
    waiting, running, gates, global_limit, paused, _, _ = scenario
    forward = admit(waiting, running, gates, global_limit=global_limit, now=NOW, paused=paused)
    backward = admit(
        list(reversed(waiting)),
        list(reversed(running)),
        list(reversed(gates)),
        global_limit=global_limit,
        now=NOW,
        paused=paused,
    )
    assert forward == backward
