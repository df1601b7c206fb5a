"""Pins and opt-outs on the PVC, and unreadable annotations: read into the views, honoured by every kind of
move (single volumes and groups), reported in the plan and the policy's status."""

from datetime import timedelta

import pytest

from couchestor.durations import format_time
from couchestor.tiering.pins import Pin, read_pin, refusal
from couchestor.tiering.plan import Action
from couchestor.tiering.policy import Tier
from couchestor.tiering.status import MetricsState, conditions_for
from couchestor.tiering.views import LAST_MIGRATION_ANNOTATION, build_volume_views
from k8s_schemas.annotations import EXCLUDE, PIN, PIN_UNTIL
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import MayastorVolume
from tests.unit.test_decisions import NOW, GiB, decode, only, pool, rules, run, snapshot, volume

LATER = NOW + timedelta(hours=1)
EARLIER = NOW - timedelta(hours=1)
WARM_POOLS = [pool("hot-1", "hot"), pool("warm-1", "warm"), pool("cold-1", "cold")]


# --- Reading the annotations --------------------------------------------------------------------------------


def test_read_pin_understands_a_tier_an_end_and_an_opt_out():
    assert read_pin({}) is None
    assert read_pin({"other": "x"}) is None
    assert read_pin({PIN: "cold"}) == Pin(Tier.COLD)
    assert read_pin({PIN: "hot", PIN_UNTIL: format_time(LATER)}) == Pin(Tier.HOT, LATER)
    assert read_pin({EXCLUDE: "true"}) == Pin(None)
    assert read_pin({EXCLUDE: "false"}) is None
    assert read_pin({EXCLUDE: "false", PIN: "warm"}) == Pin(Tier.WARM)
    # The opt-out wins over a pin: the volume is never moved.
    assert read_pin({EXCLUDE: "true", PIN: "hot"}) == Pin(None)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({PIN: "lukewarm"}, "'lukewarm' is not hot, warm or cold"),
        ({PIN: "Hot"}, "'Hot' is not hot, warm or cold"),
        ({PIN: "nvme"}, "'nvme' is not hot, warm or cold"),
        ({PIN: "cold", PIN_UNTIL: "next week"}, f"annotation {PIN_UNTIL}: invalid timestamp 'next week'"),
        ({PIN_UNTIL: "2026-03-01T00:00:00Z"}, f"annotation {PIN_UNTIL} without {PIN}"),
        ({EXCLUDE: "yes"}, f"annotation {EXCLUDE}: 'yes' is neither"),
    ],
)
def test_an_unreadable_pin_is_an_error_naming_the_annotation(annotations, message):
    with pytest.raises(ValueError, match="annotation") as caught:
        read_pin(annotations)
    assert message in str(caught.value)


def _objects(pvc_annotations, pv_annotations=None, claim_uid="u-1"):
    pv = decode(
        PersistentVolume,
        {
            "metadata": {"name": "pvc-1", "annotations": pv_annotations or {}},
            "spec": {
                "storageClassName": "mayastor",
                "capacity": {"storage": "1Gi"},
                "claimRef": {"namespace": "app", "name": "data", "uid": claim_uid},
            },
        },
    )
    pvc = decode(
        PersistentVolumeClaim,
        {"metadata": {"namespace": "app", "name": "data", "uid": "u-1", "annotations": pvc_annotations}},
    )
    msv = decode(MayastorVolume, {"metadata": {"name": "pvc-1"}, "spec": {"numReplicas": 1}})
    return [pv], [pvc], [msv]


def test_the_view_takes_the_pin_from_the_bound_claim_and_keeps_what_cannot_be_read():
    (view,) = build_volume_views(*_objects({PIN: "cold", PIN_UNTIL: format_time(LATER)}))
    assert (view.pin, view.pin_error, view.unreadable) == (Pin(Tier.COLD, LATER), None, None)
    (view,) = build_volume_views(*_objects({PIN: "lukewarm"}))
    assert view.pin is None
    assert view.pin_error is not None
    assert view.pin_error.startswith("PVC app/data: annotation ")
    (view,) = build_volume_views(*_objects({}, {LAST_MIGRATION_ANNOTATION: "last tuesday"}))
    assert view.last_migration is None
    assert view.last_migration_error is not None
    assert view.unreadable == view.last_migration_error
    assert "invalid timestamp 'last tuesday'" in view.unreadable
    # A claimRef to a deleted and recreated PVC of the same name: its pin is not this volume's.
    (view,) = build_volume_views(*_objects({PIN: "cold"}, claim_uid="old"))
    assert view.pin is None
    # A pin on the PV itself is not read: the claim is where its owner states it.
    (view,) = build_volume_views(*_objects({}, {PIN: "cold"}))
    assert view.pin is None


# --- Single volumes -----------------------------------------------------------------------------------------


def test_a_pinned_volume_moves_to_its_tier_whatever_its_heat_and_never_away():
    vols = [
        volume("to-cold", "hot-1", pin=Pin(Tier.COLD)),  # busy, but pinned to cold
        volume("on-hot", "hot-1", pin=Pin(Tier.HOT)),  # idle, but pinned where it is
        volume("free", "hot-1"),  # idle, not pinned: the control
    ]
    plan = run([rules()], vols, snapshot({"uuid-to-cold": 9000.0, "uuid-on-hot": 0.0, "uuid-free": 0.0}))
    moved = only(plan, "to-cold")
    assert (moved.label, moved.target_pool) == ("cold", "cold-1")
    assert moved.detail == "pinned to cold: hot -> cold"
    stays = only(plan, "on-hot")
    assert (stays.label, stays.current_tier, stays.target_tier) == ("skip:pinned", Tier.HOT, None)
    assert only(plan, "free").label == "cold"
    assert {m.volume for m in plan.migrations} == {"to-cold", "free"}


def test_an_excluded_volume_and_an_unreadable_pin_are_never_moved():
    vols = [
        volume("out", "cold-1", pin=Pin(None)),
        volume("bad", "cold-1", pin_error="PVC app/bad: annotation storage.billyronks.io/pin: 'x'"),
    ]
    plan = run([rules()], vols, snapshot({"uuid-out": 9000.0, "uuid-bad": 9000.0}))
    assert only(plan, "out").label == "skip:excluded"
    assert "never moved" in only(plan, "out").detail
    bad = only(plan, "bad")
    assert bad.label == "skip:pin-invalid"
    assert "not moved until it is fixed" in bad.detail
    assert plan.migrations == ()
    assert dict(plan.policy("p").unreadable) == {
        "bad": "PVC app/bad: annotation storage.billyronks.io/pin: 'x'"
    }


def test_an_expired_pin_is_ignored_and_one_with_an_end_ahead_holds():
    vols = [
        volume("expired", "hot-1", pin=Pin(Tier.HOT, EARLIER)),
        volume("holding", "hot-1", pin=Pin(Tier.HOT, LATER)),
    ]
    scores = snapshot({"uuid-expired": 0.0, "uuid-holding": 0.0})
    plan = run([rules()], vols, scores)
    assert only(plan, "expired").label == "cold"
    assert only(plan, "holding").label == "skip:pinned"
    assert format_time(LATER) in only(plan, "holding").detail
    after = run([rules()], vols, snapshot({"uuid-holding": 0.0}, fetched_at=LATER), now=LATER)
    assert only(after, "holding").label == "cold"


def test_a_pinned_move_keeps_the_policy_limits():
    p = rules(cooldownPeriod="24h", maxConcurrentMigrations=1)
    vols = [
        volume("cooling", "hot-1", pin=Pin(Tier.COLD), last=NOW - timedelta(hours=2)),
        volume("first", "hot-1", pin=Pin(Tier.COLD)),
        volume("second", "hot-1", pin=Pin(Tier.COLD), size=GiB),
    ]
    plan = run([p], vols, snapshot({}, coverage=1.0))
    assert only(plan, "cooling").label == "skip:cooldown"
    labels = sorted(only(plan, n).label for n in ("first", "second"))
    assert labels == ["cold", "skip:concurrency-limit"]
    dry = run([rules(dryRun=True)], [volume("a", "hot-1", pin=Pin(Tier.COLD))], snapshot({}))
    assert only(dry, "a").label == "skip:dry-run"
    full = run(
        [rules()],
        [volume("a", "hot-1", pin=Pin(Tier.COLD), size=50 * GiB)],
        snapshot({}),
        pools=[pool("hot-1", "hot"), pool("cold-1", "cold", free=GiB)],
    )
    assert only(full, "a").label == "skip:no-capacity"


def test_a_pin_needs_no_heat_but_a_tier_the_policy_has():
    down = snapshot({}, healthy=False)
    plan = run([rules()], [volume("a", "hot-1", pin=Pin(Tier.COLD)), volume("b", "hot-1")], down)
    assert only(plan, "a").label == "cold"
    assert only(plan, "b").label == "skip:metrics-unavailable"
    no_warm = run([rules()], [volume("a", "hot-1", pin=Pin(Tier.WARM))], snapshot({}), pools=WARM_POOLS)
    assert only(no_warm, "a").label == "skip:pinned"
    assert "does not have" in only(no_warm, "a").detail
    warm = run(
        [rules(warmWatermarkIOPS=2000)],
        [volume("a", "hot-1", pin=Pin(Tier.WARM))],
        snapshot({}),
        pools=WARM_POOLS,
    )
    assert (only(warm, "a").label, only(warm, "a").target_pool) == ("warm", "warm-1")


def test_an_unreadable_last_migration_counts_as_in_cooldown_and_is_a_condition():
    error = f"annotation {LAST_MIGRATION_ANNOTATION}: invalid timestamp 'last tuesday'"
    vols = [volume("a", "cold-1", last_migration_error=error), volume("b", "cold-1")]
    plan = run([rules()], vols, snapshot({"uuid-a": 9000.0, "uuid-b": 9000.0}))
    a = only(plan, "a")
    assert (a.label, a.target_tier) == ("skip:cooldown", Tier.HOT)
    assert "counts as in cooldown" in a.detail
    assert only(plan, "b").label == "hot"
    # Pinned moves too.
    pinned = run(
        [rules()], [volume("a", "hot-1", pin=Pin(Tier.COLD), last_migration_error=error)], snapshot({})
    )
    assert only(pinned, "a").label == "skip:cooldown"
    conditions = {c.type: c for c in conditions_for(plan.policy("p"), MetricsState(True))}
    found = conditions["UnreadableAnnotations"]
    assert (found.status, found.reason) == ("True", "UnreadableAnnotation")
    assert "a (" + error + ")" in found.message
    calm = run([rules()], [volume("b", "cold-1")], snapshot({"uuid-b": 9000.0}))
    assert "UnreadableAnnotations" not in {
        c.type for c in conditions_for(calm.policy("p"), MetricsState(True))
    }


# --- Groups -------------------------------------------------------------------------------------------------

GROUPED = {"groupLabel": "app"}


def member(name, *pools, app="pg", **kw):
    return volume(name, *pools, labels={"app": app}, **kw)


def test_a_group_follows_its_pinned_members():
    vols = [member("data", "hot-1", pin=Pin(Tier.COLD)), member("wal", "hot-1"), member("conf", "hot-1")]
    plan = run([rules(**GROUPED)], vols, snapshot({"uuid-data": 9000.0, "uuid-wal": 9000.0}))
    assert {d.label for d in plan.decisions} == {"cold"}
    assert {m.group for m in plan.migrations} == {"p/pg"}
    assert "group pg pinned to cold by data" in only(plan, "wal").detail
    # Pinned where the group is: nothing moves, whatever the combined heat says.
    still = [member("data", "hot-1", pin=Pin(Tier.HOT)), member("wal", "hot-1")]
    plan = run([rules(**GROUPED)], still, snapshot({"uuid-data": 0.0, "uuid-wal": 0.0}))
    assert {d.label for d in plan.decisions} == {"skip:pinned"}
    assert plan.migrations == ()


def test_a_group_with_conflicting_pins_or_an_excluded_member_is_not_moved():
    vols = [
        member("data", "cold-1", pin=Pin(Tier.HOT)),
        member("wal", "cold-1", pin=Pin(Tier.COLD)),
        member("conf", "cold-1"),
    ]
    plan = run([rules(**GROUPED)], vols, snapshot({"uuid-data": 9000.0, "uuid-wal": 9000.0}))
    assert {d.label for d in plan.decisions} == {"skip:pin-conflict"}
    assert "data to hot" in only(plan, "conf").detail
    assert "wal to cold" in only(plan, "conf").detail
    assert plan.migrations == ()
    # An expired pin no longer conflicts.
    expired = [
        member("data", "cold-1", pin=Pin(Tier.HOT)),
        member("wal", "cold-1", pin=Pin(Tier.COLD, EARLIER)),
    ]
    plan = run([rules(**GROUPED)], expired, snapshot({}))
    assert {d.label for d in plan.decisions} == {"hot"}
    # An excluded member holds back the group its heat would move.
    held = [member("data", "cold-1", pin=Pin(None)), member("wal", "cold-1")]
    plan = run([rules(**GROUPED)], held, snapshot({"uuid-data": 9000.0, "uuid-wal": 9000.0}))
    assert only(plan, "data").label == "skip:excluded"
    assert only(plan, "wal").label == "skip:group-blocked"
    assert plan.migrations == ()


def test_decisions_of_pinned_moves_are_moves():
    plan = run([rules()], [volume("a", "cold-1", pin=Pin(Tier.HOT))], snapshot({"uuid-a": 100.0}))
    a = only(plan, "a")
    assert (a.action, a.score, a.target_tier) == (Action.HOT, 100.0, Tier.HOT)
    assert plan.migrations[0].to_tier is Tier.HOT


def test_a_move_the_decisions_did_not_plan_is_refused_against_the_pin():
    assert refusal(None, None, Tier.HOT, NOW) is None
    assert refusal(Pin(Tier.HOT), None, Tier.HOT, NOW) is None
    assert refusal(Pin(Tier.COLD, EARLIER), None, Tier.HOT, NOW) is None  # ended
    assert "never moved away" in refusal(Pin(Tier.COLD, LATER), None, Tier.HOT, NOW)
    assert "never moved" in refusal(Pin(None), None, Tier.COLD, NOW)
    assert "not moved until it is fixed" in refusal(None, "PVC a/b: annotation x", Tier.COLD, NOW)
