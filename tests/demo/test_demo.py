"""``couchestor demo``: the whole story on the embedded cluster, its exits, and the pure parts it is built of."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from couchestor.cli import main
from couchestor.demo import make_view, scenario
from couchestor.demo.progress import Progress
from couchestor.demo.view import HeadlessView

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_headless_demo_tells_the_whole_story(capsys):
    code = main(["demo", "--headless"])
    out = capsys.readouterr().out
    assert code == 0, out
    first = scenario.moves(scenario.VOLUMES, changed=False)
    second = scenario.moves(scenario.VOLUMES, changed=True)
    assert first
    assert second
    for volume in first + second:
        changed = volume in second
        tier = scenario.expected_tier(volume, changed=changed)
        assert f"{volume.pv}: migration success, now on {tier}" in out, volume
    # The second act's moves come after the load change, which comes after the first act settled.
    lines = out.splitlines()

    def index(text):
        return next(i for i, line in enumerate(lines) if text in line)

    changed_at = min(index(f"{v.pv} ({v.role}): load {v.iops:g} -> {v.later_iops:g} IOPS") for v in second)
    assert all(index(f"{v.pv}: migration success") < changed_at for v in first)
    assert all(index(f"{v.pv}: migration success") > changed_at for v in second)
    assert f"migrations:  {len(first) + len(second)} completed, 0 failed" in out
    assert re.search(r"no-data-loss invariant: 0 violations \(\d+ replica transitions checked\)", out)
    # The final table: every volume on the tier the story expects, nothing left to do.
    table = {line.split()[0]: line.split() for line in lines if line.startswith("pvc-")}
    for volume in scenario.VOLUMES:
        row = table[volume.pv]
        assert row[2] == scenario.expected_tier(volume, changed=True), row
        assert row[3] == "stay", row
    assert "kubectl --kubeconfig" in out


def test_demo_stopped_by_its_duration_before_the_story_ends_fails(capsys):
    code = main(["demo", "--headless", "--duration", "1.5"])
    out = capsys.readouterr().out
    assert code == 1
    assert "story:       NOT complete (the story did not complete within 1.5s)" in out
    assert "0 violations" in out


@pytest.mark.slow
def test_interrupt_ends_the_demo_cleanly_with_a_summary():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "couchestor", "demo", "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "migrating" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    assert "NOT complete (interrupted before the story completed)" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "--duration must be a positive number of seconds"),
        (["--duration", "-3"], "--duration must be a positive number of seconds"),
        (["--kubeconfig-out", "/nonexistent-dir/kubeconfig"], "--kubeconfig-out: directory"),
    ],
)
def test_bad_flags_are_one_line_errors(capsys, argv, message):
    assert main(["demo", "--headless", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_headless_path_works_without_rich():
    # rich blocked as if not installed (httpx would import it when present, so absence is what matters).
    code = (
        "import sys\n"
        "sys.modules['rich'] = None\n"
        "import couchestor.cli, couchestor.demo.story, couchestor.demo.view\n"
        "args = couchestor.cli.build_parser().parse_args(['demo', '--headless'])\n"
        "view = couchestor.demo.make_view(headless=args.headless)\n"
        "print(type(view).__name__, 'couchestor.demo.live' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    assert done.stdout.strip() == "HeadlessView False", done.stderr


def test_live_view_falls_back_to_plain_lines_without_rich(monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.delitem(sys.modules, "couchestor.demo.live", raising=False)
    view = make_view(headless=False)
    assert isinstance(view, HeadlessView)
    assert "needs rich" in capsys.readouterr().out


def test_live_view_is_chosen_on_a_terminal_with_rich(monkeypatch):
    pytest.importorskip("rich")
    from couchestor.demo.live import LiveView

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(make_view(headless=False), LiveView)


# --- the story's data --------------------------------------------------------------------------------------


def test_every_volume_without_a_change_ends_where_the_first_act_left_it():
    for volume in scenario.VOLUMES:
        if volume.later_iops is None:
            assert scenario.expected_tier(volume, changed=True) == scenario.expected_tier(
                volume, changed=False
            )


def test_volumes_between_the_watermarks_stay_on_their_tier():
    between = [v for v in scenario.VOLUMES if scenario.LOW_IOPS <= v.iops <= scenario.HIGH_IOPS]
    assert {v.tier for v in between} == {"hot", "cold"}  # the story shows hysteresis on both tiers
    for volume in between:
        assert scenario.expected_tier(volume, changed=False) == volume.tier


def test_both_acts_promote_and_demote():
    for changed in (False, True):
        moved = scenario.moves(scenario.VOLUMES, changed=changed)
        assert {scenario.expected_tier(v, changed=changed) for v in moved} == {"hot", "cold"}


def test_cluster_spec_places_each_volume_on_its_starting_tier():
    spec = scenario.cluster_spec()
    assert {p.tier for p in spec.pools} == {"hot", "cold"}
    by_pv = {v.pv: v for v in spec.volumes}
    for volume in scenario.VOLUMES:
        assert by_pv[volume.pv].tier == volume.tier
        assert by_pv[volume.pv].uuid == volume.uuid
    assert len({v.uuid for v in spec.volumes}) == len(spec.volumes)


# --- folding the operator's feed ---------------------------------------------------------------------------


def _event(volume, step, progress=None, *, final=False, policy=scenario.POLICY_NAME):
    return json.dumps(
        {
            "type": "migration",
            "volume": volume,
            "policy": policy,
            "from": "cold",
            "to": "hot",
            "step": step,
            "progress": progress,
            "final": final,
        }
    )


def test_feed_folds_into_running_and_finished_migrations():
    progress = Progress(scenario.POLICY_NAME)
    told = progress.on_feed(_event("pvc-a", "adding replica 2 on the hot tier"))
    assert told[0] == "pvc-a: migrating cold -> hot"
    assert progress.migrations["pvc-a"].step == "adding replica 2 on the hot tier"
    assert progress.on_feed(_event("pvc-a", "new replica syncing", 10)) == ["pvc-a: new replica syncing 10%"]
    assert progress.on_feed(_event("pvc-a", "new replica syncing", 20)) == []  # same quarter
    assert progress.on_feed(_event("pvc-a", "new replica syncing", 60)) == ["pvc-a: new replica syncing 60%"]
    assert progress.migrations["pvc-a"].progress == 60
    assert progress.on_feed(_event("pvc-a", "success", final=True)) == [
        "pvc-a: migration success, now on hot"
    ]
    progress.on_feed(_event("pvc-b", "queued"))
    assert progress.on_feed(_event("pvc-b", "failed", final=True)) == ["pvc-b: migration failed, now on cold"]
    assert (progress.completed, progress.failed) == (1, 1)
    assert progress.migrations == {}


def test_feed_ignores_other_policies_other_events_and_garbage():
    progress = Progress(scenario.POLICY_NAME)
    assert progress.on_feed(_event("pvc-a", "queued", policy="other")) == []
    assert progress.on_feed(json.dumps({"type": "reconcile", "policies": {}})) == []
    assert progress.on_feed("not json") == []
    assert progress.migrations == {}


def test_without_step_narration_only_starts_and_outcomes_are_told():
    progress = Progress(scenario.POLICY_NAME, narrate_steps=False)
    assert len(progress.on_feed(_event("pvc-a", "adding replica"))) == 1
    assert progress.on_feed(_event("pvc-a", "new replica syncing", 50)) == []
    assert progress.migrations["pvc-a"].progress == 50
    assert progress.on_feed(_event("pvc-a", "success", final=True)) == [
        "pvc-a: migration success, now on hot"
    ]


def test_rows_show_the_running_migration_else_the_last_one():
    progress = Progress(scenario.POLICY_NAME)
    volumes = scenario.VOLUMES[:2]
    progress.on_feed(_event(volumes[0].pv, "new replica syncing", 40))
    rows = {r.pv: r for r in progress.rows(volumes, lambda v: v.tier)}
    assert rows[volumes[0].pv].migration.progress == 40
    assert rows[volumes[1].pv].migration is None
    progress.on_feed(_event(volumes[0].pv, "success", final=True))
    rows = {r.pv: r for r in progress.rows(volumes, lambda v: v.tier)}
    assert rows[volumes[0].pv].migration.outcome == "success"
    assert rows[volumes[0].pv].tier == volumes[0].tier


def _plan(*decisions, policy=scenario.POLICY_NAME):
    from couchestor.decisions import Plan, PolicyPlan

    policy_plan = PolicyPlan(policy, 1, None, True, False, tuple(decisions), {}, {}, 0, ())
    return Plan((policy_plan,), ())


def _decision(volume, action, reason, detail="", score=None):
    from couchestor.decisions import Action, Decision

    return Decision(volume, scenario.POLICY_NAME, Action(action), reason, score=score, detail=detail)


def test_plans_tell_held_back_volumes_once_grouped_by_reason():
    progress = Progress(scenario.POLICY_NAME)
    waiting = [_decision(f"pvc-{i}", "skip", "metrics-unavailable", "no heat scores yet") for i in range(6)]
    assert progress.on_plan(_plan(*waiting)) == [
        "6 volumes not moving yet (metrics-unavailable: no heat scores yet)"
    ]
    assert not progress.steady
    limited = [
        _decision("pvc-0", "skip", "concurrency-limit", "score 1 < 500; 3 running"),
        _decision("pvc-1", "skip", "concurrency-limit", "score 2 < 500; 3 running"),
        _decision("pvc-2", "cold", "cold", "score 3 < 500"),
    ]
    assert progress.on_plan(_plan(*limited)) == ["2 volumes not moving yet (concurrency-limit): pvc-0, pvc-1"]
    assert progress.on_plan(_plan(*limited)) == []  # nothing changed
    moving = [_decision("pvc-0", "skip", "in-flight"), _decision("pvc-1", "stay", "stay", score=3.0)]
    assert progress.on_plan(_plan(*moving)) == []
    settled = [_decision("pvc-0", "stay", "stay", score=1.0), _decision("pvc-1", "stay", "stay", score=2.0)]
    assert progress.on_plan(_plan(*settled)) == []
    assert progress.steady


def test_plans_of_other_policies_are_ignored():
    progress = Progress(scenario.POLICY_NAME)
    plan = _plan(_decision("pvc-0", "skip", "degraded", "a replica is rebuilding"), policy="other")
    assert progress.on_plan(plan) == []
    assert progress.on_plan(None) == []
    assert not progress.steady


# --- views -------------------------------------------------------------------------------------------------


def _snapshot():
    from couchestor.demo.story import Snapshot

    progress = Progress(scenario.POLICY_NAME)
    volumes = scenario.VOLUMES[:3]
    progress.on_feed(_event(volumes[0].pv, "new replica syncing", 40))
    progress.on_feed(_event(volumes[1].pv, "adding replica 2 on the hot tier"))
    rows = progress.rows(volumes, lambda v: v.tier)
    return Snapshot(12.0, "policy applied: tiering", rows, 2, 0, 0, 0), volumes


def _result(**fields):
    from couchestor.demo.story import DemoResult

    base = {"story_complete": True, "story_seconds": 30.0, "elapsed": 31.0, "completed": 8, "transitions": 10}
    return DemoResult(**{**base, **fields})


def test_live_view_draws_the_table_and_the_summary():
    pytest.importorskip("rich")
    import io

    from rich.console import Console

    from couchestor.demo.live import LiveView

    out = io.StringIO()
    snapshot, volumes = _snapshot()
    with LiveView(Console(file=out, force_terminal=True, width=160)) as view:
        view.say("something happened")
        view.show(snapshot)
    view.finish(_result())
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    for volume in volumes:
        assert volume.pv in text
    assert "40%" in text
    assert "adding replica 2 on the hot tier" in text
    assert "something happened" in text
    assert "0 failed · no-data-loss invariant: 0 violations" in text  # the header
    assert "migrations:  8 completed, 0 failed" in text


def test_headless_view_ends_with_the_table_and_the_summary():
    import io

    out = io.StringIO()
    snapshot, volumes = _snapshot()
    with HeadlessView(out) as view:
        view.say("something happened")
        view.show(snapshot)
    view.finish(_result(violations=["t=1.0s vol: lost its last Synced replica (synced 0, floor 1)"]))
    text = out.getvalue()
    assert "] something happened" in text
    assert f"{volumes[0].pv}" in text
    assert "cold -> hot: new replica syncing 40%" in text
    assert "no-data-loss invariant: 1 violations" in text
    assert "violation: t=1.0s vol: lost its last Synced replica" in text


def test_summary_names_a_kept_kubeconfig_and_why_the_story_did_not_complete():
    from couchestor.demo.view import summary_lines

    lines = summary_lines(
        _result(
            story_complete=False,
            error="interrupted before the story completed",
            kubeconfig="/x/kc",
            kubeconfig_kept=True,
        )
    )
    text = "\n".join(lines)
    assert "NOT complete (interrupted before the story completed)" in text
    assert "kubectl --kubeconfig /x/kc get" in text
    temporary = "\n".join(summary_lines(_result(kubeconfig="/tmp/gone/kubeconfig")))
    assert "/tmp/gone" not in temporary
    assert "--kubeconfig-out demo.kubeconfig" in temporary
