"""Group-aware tiering: volumes sharing the policy's group label move together on their combined heat."""

from datetime import timedelta

from couchestor.tiering.plan import Action
from tests.unit.test_decisions import NOW, GiB, only, pool, rules, run, snapshot, volume

GROUPED = {"groupLabel": "app"}


def member(name, *pools, app="pg", **kw):
    return volume(name, *pools, labels={"app": app}, **kw)


def test_group_moves_on_combined_heat_when_no_member_would_alone():
    vols = [member("data", "cold-1"), member("wal", "cold-1"), member("conf", "cold-1")]
    scores = snapshot({"uuid-data": 2500.0, "uuid-wal": 2400.0, "uuid-conf": 300.0})
    alone = run([rules()], vols, scores, pools=[pool("hot-1", "hot"), pool("cold-1", "cold")])
    assert {d.label for d in alone.decisions} == {"stay"}
    grouped = run([rules(**GROUPED)], vols, scores, pools=[pool("hot-1", "hot"), pool("cold-1", "cold")])
    assert {d.label for d in grouped.decisions} == {"hot"}
    assert {m.group for m in grouped.migrations} == {"p/pg"}
    assert len(grouped.migrations) == 3
    assert all(d.score == 5200.0 for d in grouped.decisions)
    assert "combined" in only(grouped, "conf").detail


def test_group_is_one_concurrency_slot_and_needs_room_for_every_member():
    vols = [member("a", "cold-1", size=40 * GiB), member("b", "cold-1", size=40 * GiB)]
    scores = snapshot({"uuid-a": 4000.0, "uuid-b": 4000.0})
    roomy = run(
        [rules(maxConcurrentMigrations=1, **GROUPED)],
        vols,
        scores,
        pools=[pool("hot-1", "hot", free=100 * GiB), pool("cold-1", "cold")],
    )
    assert len(roomy.migrations) == 2
    tight = run(
        [rules(**GROUPED)], vols, scores, pools=[pool("hot-1", "hot", free=60 * GiB), pool("cold-1", "cold")]
    )
    assert tight.migrations == ()
    assert {d.label for d in tight.decisions} == {"skip:no-capacity"}
    assert "all or none" in only(tight, "a").detail


def test_one_member_in_cooldown_or_degraded_holds_the_whole_group_back():
    scores = snapshot({"uuid-a": 4000.0, "uuid-b": 4000.0})
    pools = [pool("hot-1", "hot"), pool("cold-1", "cold")]
    cooling = [member("a", "cold-1", last=NOW - timedelta(minutes=5)), member("b", "cold-1")]
    plan = run([rules(**GROUPED)], cooling, scores, pools=pools)
    assert only(plan, "a").label == "skip:cooldown"
    assert only(plan, "b").label == "skip:group-blocked"
    assert "a (skip:cooldown)" in only(plan, "b").detail
    assert plan.migrations == ()
    degraded = [member("a", "cold-1", states=[("Online", "Syncing")]), member("b", "cold-1")]
    plan = run([rules(**GROUPED)], degraded, scores, pools=pools)
    assert only(plan, "b").label == "skip:group-blocked"
    assert plan.migrations == ()


def test_members_on_different_tiers_never_move_as_a_group():
    scores = snapshot({"uuid-a": 9000.0, "uuid-b": 9000.0})
    pools = [pool("hot-1", "hot"), pool("cold-1", "cold"), pool("cold-2", "cold")]
    plan = run([rules(**GROUPED)], [member("a", "cold-1"), member("b", "hot-1")], scores, pools=pools)
    assert only(plan, "a").label == "skip:group-blocked"
    assert only(plan, "b").action is Action.STAY
    assert plan.migrations == ()


def test_unlabelled_volumes_and_single_members_are_tiered_alone():
    scores = snapshot({"uuid-a": 9000.0, "uuid-solo": 9000.0, "uuid-x": 100.0})
    pools = [pool("hot-1", "hot"), pool("cold-1", "cold")]
    vols = [member("a", "cold-1", app="one"), volume("solo", "cold-1"), member("x", "hot-1", app="two")]
    plan = run([rules(maxConcurrentMigrations=3, **GROUPED)], vols, scores, pools=pools)
    assert {d.volume: d.label for d in plan.decisions} == {"a": "hot", "solo": "hot", "x": "cold"}
    assert {m.group for m in plan.migrations} == {""}


def test_invalid_group_label_is_a_field_problem():
    from couchestor.tiering.policy import PolicyProblem, compile_policy
    from k8s_schemas.meta import ObjectMeta
    from k8s_schemas.storage_policy import StoragePolicy

    compiled = compile_policy(StoragePolicy(metadata=ObjectMeta(name="p"), spec={"groupLabel": "bad key!"}))
    assert isinstance(compiled, PolicyProblem)
    assert compiled.field == "spec.groupLabel"
