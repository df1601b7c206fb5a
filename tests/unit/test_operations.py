"""The TierMigration side of a pass (``tiering/operations.py``): objects created for planned moves, verdicts
(approval, decline, cancel, policy or decision changed), admission (windows, pause, node limits), the
statuses written, finalizers added and dropped, and history garbage-collected; over real plans from
``decide()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from couchestor.durations import format_time
from couchestor.tiering.decide import decide
from couchestor.tiering.operations import (
    DRY_RUN,
    UNDECIDED,
    RunningMove,
    held_plan,
    new_objects,
    operate,
    shown_changes,
    window_holds,
)
from couchestor.tiering.pins import Pin
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.policy import PolicyRules, Tier, compile_policy
from couchestor.tiering.tiermigration import FINALIZER
from k8s_schemas.annotations import POLICY_GENERATION, POLICY_LABEL
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy
from k8s_schemas.tier_migration import TierMigration
from tests.unit.test_decisions import HOUR, NOW, pool, snapshot, volume

POOLS = [pool("hot-1", "hot", node="n1"), pool("hot-2", "hot", node="n2"), pool("cold-1", "cold", node="n3")]


def rules(generation=1, annotations=None, **spec):
    spec.setdefault("highWatermarkIOPS", 5000)
    spec.setdefault("lowWatermarkIOPS", 500)
    meta = ObjectMeta(name="p", generation=generation, annotations=annotations or {})
    compiled = compile_policy(StoragePolicy(metadata=meta, spec=spec))
    assert isinstance(compiled, PolicyRules), compiled
    return compiled


def views(*names):
    """Volumes on cold-1, hot (8000 IOPS) unless named ``idle``."""
    return {n: volume(n, "cold-1") for n in names}


def plan_for(policy, vols, scores=None, in_flight=()):
    scores = scores if scores is not None else dict.fromkeys(vols, 8000.0)
    return decide([policy], vols.values(), POOLS, {HOUR: snapshot(scores)}, set(in_flight), {}, NOW)


def created(body, at=NOW, **changes):
    """The object the API server stores for ``body`` (created at ``at``), with ``changes`` to its spec."""
    obj = msgspec.convert(body, TierMigration)
    meta = msgspec.structs.replace(obj.metadata, creation_timestamp=format_time(at))
    return msgspec.structs.replace(obj, metadata=meta, spec=msgspec.structs.replace(obj.spec, **changes))


def ops(policy, vols, migrations, plan=None, running=None, now=NOW, **kw):
    return operate(
        [policy],
        plan or plan_for(policy, vols),
        vols,
        {p.name: p for p in POOLS},
        migrations,
        running or {},
        global_limit=kw.pop("global_limit", 10),
        now=now,
        **kw,
    )


def status_of(result, name):
    return result.statuses[name][1]


def test_a_planned_move_gets_one_object_labelled_annotated_and_held_by_the_finalizer():
    policy = rules()
    vols = views("a", "b")
    plan = plan_for(policy, vols)
    bodies = new_objects(plan, [], {}, [policy], NOW)
    assert sorted(b["spec"]["volume"] for b in bodies) == ["a", "b"]
    body = bodies[0]
    assert body["spec"] == {"volume": body["spec"]["volume"], "targetTier": "hot", "policy": "p"}
    assert body["metadata"]["labels"] == {POLICY_LABEL: "p"}
    assert body["metadata"]["annotations"] == {POLICY_GENERATION: "1"}
    assert body["metadata"]["finalizers"] == [FINALIZER]
    # Not again while one is open, nor for a volume migrating.
    existing = [created(bodies[0])]
    running = {"b": RunningMove("b", "p", ("cold-1",), "hot-1")}
    assert new_objects(plan, existing, running, [policy], NOW) == []


def test_an_automatic_move_is_admitted_and_starts_under_its_object():
    policy = rules()
    vols = views("a")
    tm = created(new_objects(plan_for(policy, vols), [], {}, [policy], NOW)[0])
    result = ops(policy, vols, [tm])
    assert [(s.request, s.migration.volume, s.migration.to_tier.value) for s in result.starts] == [
        (tm.metadata.name, "a", "hot")
    ]
    assert tm.metadata.name not in result.statuses  # the runner writes the status of a started move


def test_a_manual_move_awaits_approval_and_starts_once_approved():
    policy = rules(approval="Manual")
    vols = views("a")
    tm = created(new_objects(plan_for(policy, vols), [], {}, [policy], NOW)[0])
    waiting = ops(policy, vols, [tm])
    assert waiting.starts == ()
    status = status_of(waiting, tm.metadata.name)
    assert status.phase == "AwaitingApproval"
    assert status.preview.target_pool in ("hot-1", "hot-2")
    approved = msgspec.structs.replace(tm, spec=msgspec.structs.replace(tm.spec, approved=True))
    assert [s.request for s in ops(policy, vols, [approved]).starts] == [tm.metadata.name]


def test_declined_cancelled_expired_and_outdated_moves_are_finished_as_cancelled_and_released():
    policy = rules(approval="Manual", approvalTTL="1h")
    vols = views("a")
    body = new_objects(plan_for(policy, vols), [], {}, [policy], NOW)[0]
    cases = {
        "Declined": (created(body, approved=False), policy, NOW),
        "Cancelled": (created(body, cancel=True), policy, NOW),
        "Expired": (created(body), policy, NOW + timedelta(hours=2)),
        "PolicyChanged": (created(body), rules(generation=2, approval="Manual"), NOW),
    }
    for reason, (tm, current, now) in cases.items():
        result = ops(current, vols, [tm], now=now)
        assert result.starts == (), reason
        status = status_of(result, tm.metadata.name)
        assert (status.phase, status.reason) == ("Cancelled", reason)
        assert result.release == (tm.metadata.name,)
    # The heat fell: the decision no longer holds.
    tm = created(body)
    cooled = ops(policy, vols, [tm], plan=plan_for(policy, vols, scores={"a": 1000.0}))
    assert status_of(cooled, tm.metadata.name).reason == "DecisionChanged"


def test_a_metrics_outage_holds_a_pending_move_instead_of_cancelling_it():
    policy = rules(approval="Manual")
    vols = views("a")
    tm = created(new_objects(plan_for(policy, vols), [], {}, [policy], NOW)[0], approved=True)
    outage = decide([policy], vols.values(), POOLS, {}, set(), {}, NOW, DecideOptions())
    result = ops(policy, vols, [tm], plan=outage)
    assert result.starts == ()
    status = status_of(result, tm.metadata.name)
    assert (status.phase, status.reason) == ("Scheduled", "Undecided")
    assert UNDECIDED == "undecided"


def test_outside_its_window_a_move_waits_and_the_policy_learns_the_next_window():
    window = [{"schedule": "0 3 * * *", "duration": "1h", "timeZone": "UTC"}]  # closed at noon
    policy = rules(maintenanceWindows=window)
    vols = views("a")
    tm = created(new_objects(plan_for(policy, vols), [], {}, [policy], NOW)[0])
    result = ops(policy, vols, [tm])
    assert result.starts == ()
    status = status_of(result, tm.metadata.name)
    assert (status.phase, status.reason) == ("Scheduled", "OutsideWindow")
    opening = datetime(2026, 2, 2, 3, tzinfo=UTC)
    assert status.next_window == format_time(opening)
    assert result.next_windows == {"p": opening}
    # Inside the window it starts.
    assert len(ops(policy, vols, [tm], now=opening + timedelta(minutes=5)).starts) == 1


def test_outside_its_window_a_move_is_shown_as_skip_outside_window_and_its_object_still_waits():
    window = [{"schedule": "0 3 * * *", "duration": "1h", "timeZone": "UTC"}]  # closed at noon
    policy = rules(maintenanceWindows=window)
    vols = views("a", "idle")
    plan = plan_for(policy, vols, scores={"a": 8000.0, "idle": 8000.0})
    assert {d.label for d in plan.decisions} == {"hot"}
    holds = window_holds([policy], NOW)
    shown = held_plan(plan, holds)
    opening = datetime(2026, 2, 2, 3, tzinfo=UTC)
    for d, before in zip(shown.decisions, plan.decisions, strict=True):
        assert d.label == "skip:outside-window"
        assert (d.current_tier, d.target_tier, d.target_pool) == (
            before.current_tier,
            before.target_tier,
            before.target_pool,
        )
        assert format_time(opening) in d.detail
    assert shown.migrations == plan.migrations  # the moves are still made into objects that wait
    tms = [created(b) for b in new_objects(plan, [], {}, [policy], NOW)]
    result = ops(policy, vols, tms, plan=plan)
    assert result.starts == ()
    assert {status_of(result, tm.metadata.name).reason for tm in tms} == {"OutsideWindow"}
    # Inside the window, paused, or without windows: the decisions are shown as made.
    inside = opening + timedelta(minutes=5)
    assert window_holds([policy], inside) == {}
    assert window_holds([policy], NOW, paused=True) == {}
    assert window_holds([rules()], NOW) == {}
    assert held_plan(plan, window_holds([policy], inside)) is plan
    assert ops(policy, vols, tms, plan=plan, now=inside).starts
    # A blackout holds them the same way, and says so.
    dark = rules(blackouts=[{"start": "2026-02-01", "end": "2026-02-03", "reason": "freeze"}])
    held = held_plan(plan_for(dark, vols), window_holds([dark], NOW)).decisions
    assert {d.label for d in held} == {"skip:outside-window"}
    assert all("blackout (freeze)" in d.detail for d in held)


def test_a_decision_shown_changes_when_its_policys_window_opens_or_closes_though_the_planner_saw_none():
    window = [{"schedule": "0 3 * * *", "duration": "1h", "timeZone": "UTC"}]
    policy = rules(maintenanceWindows=window)
    vols = views("a", "idle")
    plan = plan_for(policy, vols, scores={"a": 8000.0, "idle": 100.0})  # a moves to hot, idle stays
    closed = window_holds([policy], NOW)
    opened = window_holds([policy], datetime(2026, 2, 2, 3, 5, tzinfo=UTC))
    # The window closed since the last pass, and nothing else changed: the move is shown held.
    changes = shown_changes([], plan, opened, closed)
    assert [(b.label, d.label, d.volume) for b, d in changes] == [("hot", "skip:outside-window", "a")]
    # It opened again: shown as the move once more.
    changes = shown_changes([], plan, closed, opened)
    assert [(b.label, d.label, d.volume) for b, d in changes] == [("skip:outside-window", "hot", "a")]
    # No flip: only the planner's own changes, each shown under its pass's holds.
    assert shown_changes([], plan, closed, closed) == []
    first = [(None, d) for d in plan.decisions]
    shown = {d.volume: (b, d.label) for b, d in shown_changes(first, plan, {}, closed)}
    assert shown == {"a": (None, "skip:outside-window"), "idle": (None, "stay")}


def test_paused_by_the_operator_or_the_annotation_nothing_starts():
    vols = views("a")
    for policy, paused in (
        (rules(), True),
        (rules(annotations={"storage.billyronks.io/paused": "true"}), False),
    ):
        tm = created(new_objects(plan_for(policy, vols), [], {}, [policy], NOW)[0])
        result = ops(policy, vols, [tm], paused=paused)
        assert result.starts == ()
        assert status_of(result, tm.metadata.name).reason == "Paused"


def test_a_node_busy_with_a_running_rebuild_holds_the_moves_that_touch_it():
    policy = rules(maxRebuildsPerNode=1, maxRebuildsPerPool=5, maxConcurrentMigrations=5)
    vols = views("a", "b")
    plan = plan_for(policy, vols)
    tms = [
        created(b, at=NOW + timedelta(seconds=i))
        for i, b in enumerate(new_objects(plan, [], {}, [policy], NOW))
    ]
    result = ops(policy, vols, tms, plan=plan)
    # Both copy from cold-1 on n3: one at a time, the older first.
    assert [s.request for s in result.starts] == [tms[0].metadata.name]
    assert status_of(result, tms[1].metadata.name).reason == "NodeLimit"
    running = {"a": RunningMove("a", "p", ("cold-1",), "hot-1", tms[0].metadata.name)}
    still = ops(policy, vols, tms, plan=plan_for(policy, vols, in_flight={"a"}), running=running)
    assert still.starts == ()


def test_a_users_request_names_no_policy_and_is_adopted_placed_and_started():
    policy = rules()
    vols = {"a": volume("a", "hot-1")}  # 2000 IOPS: stays hot under the policy
    request = msgspec.convert(
        {
            "metadata": {"name": "move-a", "creationTimestamp": format_time(NOW)},
            "spec": {"volume": "a", "targetTier": "cold"},
        },
        TierMigration,
    )
    plan = plan_for(policy, vols, scores={"a": 2000.0})
    result = ops(policy, vols, [request], plan=plan)
    assert result.adopt == ("move-a",)
    [start] = result.starts
    assert (start.request, start.migration.policy, start.migration.target_pool) == ("move-a", "p", "cold-1")
    # A request for the tier the volume is on is refused.
    same = msgspec.structs.replace(request, spec=msgspec.structs.replace(request.spec, target_tier="hot"))
    refused = ops(policy, vols, [same], plan=plan)
    assert status_of(refused, "move-a").reason == "DecisionChanged"


def test_a_users_request_cannot_move_a_volume_away_from_its_claims_pin_or_opt_out():
    policy = rules()
    request = msgspec.convert(
        {
            "metadata": {"name": "move-a", "creationTimestamp": format_time(NOW)},
            "spec": {"volume": "a", "targetTier": "cold"},
        },
        TierMigration,
    )
    for pin, error in (
        (Pin(Tier.HOT), None),
        (Pin(None), None),
        (None, "annotation pin: 'nvme' is not a tier"),
    ):
        vols = {"a": msgspec.structs.replace(volume("a", "hot-1"), pin=pin, pin_error=error)}
        result = ops(policy, vols, [request], plan=plan_for(policy, vols, scores={"a": 2000.0}))
        assert not result.starts, pin
        assert status_of(result, "move-a").phase == "Cancelled", pin
    # A pin to the requested tier, or one that has expired, lets the request run.
    for pin in (Pin(Tier.COLD), Pin(Tier.HOT, until=NOW - timedelta(minutes=1))):
        vols = {"a": msgspec.structs.replace(volume("a", "hot-1"), pin=pin)}
        result = ops(policy, vols, [request], plan=plan_for(policy, vols, scores={"a": 2000.0}))
        assert [s.request for s in result.starts] == ["move-a"], pin


def test_finished_objects_are_released_and_kept_only_up_to_the_history_limit():
    policy = rules(tierMigrationHistoryLimit=1)
    finished = [
        msgspec.convert(
            {
                "metadata": {"name": f"old-{i}", "finalizers": [FINALIZER] if i == 2 else []},
                "spec": {"volume": f"v{i}", "targetTier": "hot", "policy": "p"},
                "status": {
                    "phase": "Succeeded",
                    "policy": "p",
                    "finishedAt": format_time(NOW + timedelta(i)),
                },
            },
            TierMigration,
        )
        for i in range(3)
    ]
    result = ops(policy, {}, finished)
    assert result.release == ("old-2",)
    assert result.delete == ("old-0", "old-1")


def test_a_dry_run_policy_shows_its_moves_as_planned_and_never_starts_them():
    policy = rules(dryRun=True)
    vols = views("a")
    plan = plan_for(policy, vols)
    [body] = new_objects(plan, [], {}, [policy], NOW)
    assert body["metadata"]["annotations"][DRY_RUN] == "true"
    tm = created(body)
    shown = ops(policy, vols, [tm], plan=plan)
    assert shown.starts == ()
    status = status_of(shown, tm.metadata.name)
    assert (status.phase, status.reason) == ("Planned", "DryRun")
    # Approving it changes nothing: a dry-run move is never started.
    approved = msgspec.structs.replace(tm, spec=msgspec.structs.replace(tm.spec, approved=True))
    assert ops(policy, vols, [approved], plan=plan).starts == ()
    # The policy leaves dry-run: the shown move is cancelled, a real one is planned in its place.
    live = rules(generation=2)
    ended = ops(live, vols, [tm])
    assert status_of(ended, tm.metadata.name).reason == "DryRunEnded"
    assert ended.starts == ()


def test_a_manual_volume_group_starts_whole_once_every_member_is_approved():
    policy = rules(approval="Manual", groupLabel="group", maxRebuildsPerNode=5, maxRebuildsPerPool=5)
    vols = {n: volume(n, "cold-1", labels={"group": "g"}) for n in ("a", "b")}
    plan = plan_for(policy, vols)
    assert {m.group for m in plan.migrations} != {""}
    tms = [created(b) for b in new_objects(plan, [], {}, [policy], NOW)]
    by_volume = {tm.spec.volume: tm for tm in tms}

    def approve(tm):
        return msgspec.structs.replace(tm, spec=msgspec.structs.replace(tm.spec, approved=True))

    half = ops(policy, vols, [approve(by_volume["a"]), by_volume["b"]], plan=plan)
    assert half.starts == ()
    held = status_of(half, by_volume["a"].metadata.name)
    assert (held.phase, held.reason) == ("Scheduled", "GroupBlocked")
    assert status_of(half, by_volume["b"].metadata.name).phase == "AwaitingApproval"
    both = ops(policy, vols, [approve(tm) for tm in tms], plan=plan)
    assert sorted(s.migration.volume for s in both.starts) == ["a", "b"]


def test_a_dry_run_policy_shows_no_more_moves_at_once_than_it_would_start():
    policy = rules(dryRun=True, maxConcurrentMigrations=2)
    vols = views("a", "b", "c", "d")
    plan = plan_for(policy, vols)
    bodies = new_objects(plan, [], {}, [policy], NOW)
    assert len(bodies) == 2
    assert new_objects(plan, [created(b) for b in bodies], {}, [policy], NOW) == []


def test_a_stuck_rollback_gave_its_slot_back_and_does_not_hold_the_global_limit():
    policy = rules()
    vols = {"a": volume("a", "cold-1"), "b": volume("b", "hot-2")}
    plan = plan_for(policy, vols, scores={"a": 8000.0, "b": 2000.0})
    tms = [created(b) for b in new_objects(plan, [], {}, [policy], NOW)]
    assert [tm.spec.volume for tm in tms] == ["a"]
    rollback = RunningMove("b", "p", ("hot-2",), "cold-1", "b-cold", stuck=False)
    held = ops(policy, vols, tms, plan=plan, running={"b": rollback}, global_limit=1)
    assert held.starts == ()
    assert status_of(held, tms[0].metadata.name).reason == "GlobalLimit"
    stuck = RunningMove("b", "p", ("hot-2",), "cold-1", "b-cold", stuck=True)
    assert len(ops(policy, vols, tms, plan=plan, running={"b": stuck}, global_limit=1).starts) == 1
