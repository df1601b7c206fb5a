"""``couchestor demo``: the whole story on the embedded cluster, its exits, and the pure parts it is built of."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from couchestor.cli import main
from couchestor.demo import make_view, scenario
from couchestor.demo.progress import Progress
from couchestor.demo.view import HeadlessView
from couchestor.sim.populate import GI
from k8s_schemas.annotations import PIN

ROOT = Path(__file__).resolve().parents[2]


#: Enough volumes for background movers in both acts, few enough to keep the test short.
SMALL = 62
#: The full stories the slow tests check, run as subprocesses all at once (each needs little CPU, most of
#: its time is the story's own pace): name -> (arguments, volumes).
STORIES = {
    "crd-simulator": (["--volumes", str(SMALL), "--prometheus", "simulator"], SMALL),
    "crd-prometheus": (["--volumes", "14", "--prometheus", "auto"], 14),
    "rest-prometheus": (["--volumes", "14", "--backend", "mayastor-rest", "--prometheus", "auto"], 14),
}
#: Which test reads which story.
_READERS = {
    "test_headless_demo_tells_the_whole_story": "crd-simulator",
    "test_demo_with_a_real_prometheus_says_so_and_completes": "crd-prometheus",
    "test_demo_on_the_mayastor_2x_rest_backend_completes": "rest-prometheus",
}


def _demo_process(argv):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "couchestor", "demo", "--headless", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def stories(request):
    """Start every story a selected test of this module reads, at once; ``stories[name]()`` gives its exit
    status and output once it ended."""
    selected = {item.name for item in request.session.items if item.module.__name__ == __name__}
    wanted = {story for test, story in _READERS.items() if test in selected}
    processes = {name: _demo_process(STORIES[name][0]) for name in sorted(wanted)}
    results = {}

    def result(name):
        if name not in results:
            out, _ = processes[name].communicate(timeout=240)
            results[name] = (processes[name].returncode, out)
        return results[name]

    try:
        yield result
    finally:
        # A story nobody read (its test ran in another worker) is interrupted as a user would, so that it stops
        # its Prometheus; only one that does not end is killed (its Prometheus would outlive it).
        running = [process for process in processes.values() if process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGINT)
        for process in running:
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=10)


@pytest.mark.slow
def test_headless_demo_tells_the_whole_story(stories):
    code, out = stories("crd-simulator")
    assert code == 0, out
    _assert_story_told(out, scenario.population(SMALL))
    assert "heat scores from the workload simulator's query endpoint at http://" in out
    assert "(--prometheus simulator)" in out


@pytest.mark.slow
@pytest.mark.prometheus
def test_demo_with_a_real_prometheus_says_so_and_completes(stories):
    code, out = stories("crd-prometheus")
    assert code == 0, out
    assert re.search(
        r"heat scores from Prometheus 2\.\S+ \(prometheus on PATH\) at http://127\.0\.0\.1:\d+", out
    )
    assert "query endpoint" not in out
    _assert_story_told(out, scenario.population(14))


@pytest.mark.slow
@pytest.mark.prometheus
def test_demo_on_the_mayastor_2x_rest_backend_completes(stories):
    code, out = stories("rest-prometheus")
    assert code == 0, out
    assert "operator started (--backend mayastor-rest)" in out
    assert re.search(r"Mayastor 2\.x REST API simulator at 60x on http://127\.0\.0\.1:\d+", out)
    assert "heat scores from Prometheus" in out  # the io-engine counters, through rate() in Prometheus
    assert "get diskpools -n mayastor" in out  # no MayastorVolume resource on Mayastor 2.x
    _assert_story_told(out, scenario.population(14))


def _assert_story_told(out, volumes):
    """Every expected move happened in its act, nothing failed or broke the invariant, all volumes settled."""
    first = scenario.moves(volumes, changed=False)
    second = scenario.moves(volumes, changed=True)
    assert first
    assert second
    if len(volumes) > len(scenario.VOLUMES):
        assert any(not v.featured for v in first)
        assert any(not v.featured for v in second)
    for volume in first + second:
        changed = volume in second
        tier = scenario.expected_tier(volume, changed=changed)
        assert f"{volume.pv}: migration success, now on {tier}" in out, volume
    # The second act's moves come after the load change, which comes after the first act settled.
    lines = out.splitlines()

    def index(text):
        return next(i for i, line in enumerate(lines) if text in line)

    changed_at = min(
        index(f"{v.pv} ({v.role}): load {v.iops:g} -> {v.later_iops:g} IOPS") for v in second if v.featured
    )
    assert all(index(f"{v.pv}: migration success") < changed_at for v in first)
    assert all(index(f"{v.pv}: migration success") > changed_at for v in second)
    # The third act: the NVMe tier declared full under its fill; its coldest volumes between the watermarks
    # (none moved before, none busier than a volume left on NVMe) go to SATA until it is back under.
    pressed_at = index("maxTierFillPercent")
    told = re.search(
        r"NVMe back under (\d+)%, the coldest first; moved to SATA: (.+)$", lines[index("NVMe back under")]
    )
    assert told is not None
    pressed = told.group(2).split(", ")
    by_pv = {v.pv: v for v in volumes}
    assert pressed
    assert not set(pressed) & {v.pv for v in first + second}
    left_on_hot = [
        v for v in volumes if scenario.expected_tier(v, changed=True) == "hot" and v.pv not in pressed
    ]

    def load(v):
        return v.later_iops if v.later_iops is not None else v.iops

    for pv in pressed:
        volume = by_pv[pv]
        assert scenario.expected_tier(volume, changed=True) == "hot"
        assert scenario.LOW_IOPS < load(volume) < scenario.HIGH_IOPS
        assert index(f"{pv}: migration success, now on cold") > pressed_at
        # Coldest first (nominal loads; the measured ones carry a little noise).
        assert all(
            load(volume) <= load(other) * 1.1
            for other in left_on_hot
            if other.pv not in {v.pv for v in first + second}
        )
    moved = len(first) + len(second) + len(pressed)
    assert f"migrations:  {moved} completed, 0 failed" in out
    assert re.search(r"no-data-loss invariant: 0 violations \(\d+ replica transitions checked\)", out)
    # The final table: the story's volumes and every mover on the tier the story expects, nothing left to do.
    table = {line.split()[0]: line.split() for line in lines if line.startswith("pvc-")}

    def final(volume):
        return "cold" if volume.pv in pressed else scenario.expected_tier(volume, changed=True)

    for volume in [v for v in volumes if v.featured] + first + second + [by_pv[pv] for pv in pressed]:
        row = table[volume.pv]
        assert row[2] == final(volume), row
        assert row[3] == ("pinned" if volume.pin else "stay"), row
    hot = sum(1 for v in volumes if final(v) == "hot")
    assert f"volumes now: {len(volumes) - hot} cold, {hot} hot" in out
    if len(table) < len(volumes):
        assert f"all {len(volumes)} volumes: " in out
        pinned = sum(1 for v in volumes if v.pin)
        assert f"decisions: {len(volumes) - pinned} stay, {pinned} pinned" in out
    assert "kubectl --kubeconfig" in out
    assert "Traceback" not in out


def test_demo_stopped_by_its_duration_before_the_story_ends_fails(capsys):
    code = main(["demo", "--headless", "--duration", "1.5", "--volumes", "14", "--prometheus", "simulator"])
    out = capsys.readouterr().out
    assert code == 1
    assert "story:       NOT complete (the story did not complete within 1.5s)" in out
    assert "0 violations" in out


@pytest.mark.slow
def test_interrupt_ends_the_demo_cleanly_with_a_summary():
    proc = _demo_process(["--volumes", "14", "--prometheus", "simulator"])
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
        (["--volumes", "13"], "--volumes must be a whole number from 14 to 1000, not '13'"),
        (["--volumes", "1001"], "--volumes must be a whole number from 14 to 1000"),
        (["--volumes", "2.5"], "--volumes must be a whole number from 14 to 1000"),
        (["--volumes", "many"], "--volumes must be a whole number from 14 to 1000"),
        (["--backend", "ceph"], "--backend must be one of mayastor-crd, mayastor-rest, not 'ceph'"),
        (
            ["--prometheus", "/nonexistent/prometheus"],
            "--prometheus: no executable '/nonexistent/prometheus'",
        ),
        (["--prometheus", "promethee"], "--prometheus: no executable 'promethee'"),
    ],
)
def test_bad_flags_are_one_line_errors(capsys, argv, message):
    assert main(["demo", "--headless", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_prometheus_flag_chooses_the_heat_source(tmp_path):
    from couchestor.demo.heat_source import choose

    assert choose("simulator").binary is None
    fake = tmp_path / "my-prometheus"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert choose(str(fake)) == type(choose("simulator"))(str(fake), f"--prometheus {fake}")
    auto = choose("auto")
    assert (auto.binary, auto.why) in (
        (shutil.which("prometheus"), "prometheus on PATH"),
        (None, "no prometheus on PATH"),
    )
    assert (auto.binary is None) == (shutil.which("prometheus") is None)


async def test_a_prometheus_that_cannot_start_falls_back_to_the_query_endpoint(nursery, tmp_path):
    from couchestor.demo.heat_source import HeatChoice, serve_heat_source
    from couchestor.sim.workload import ExportOptions, Workload

    broken = tmp_path / "prometheus"
    broken.write_text("#!/bin/sh\necho 'cannot open the TSDB' >&2\nexit 3\n")
    broken.chmod(0o755)
    workload = Workload(seed=1)
    source = await nursery.start(
        lambda task_status: serve_heat_source(
            HeatChoice(str(broken), f"--prometheus {broken}"),
            workload,
            ExportOptions(),
            "http://127.0.0.1:9/",
            scrape_interval=1.0,
            task_status=task_status,
        )
    )
    assert source.url == "http://127.0.0.1:9/"
    assert source.prometheus_version is None
    assert source.description == (
        "Prometheus did not start (prometheus exited with status 3); "
        "heat scores from the workload simulator's query endpoint at http://127.0.0.1:9/"
    )


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
    between = [
        v for v in scenario.VOLUMES if scenario.LOW_IOPS <= v.iops <= scenario.HIGH_IOPS and v.pin is None
    ]
    assert {v.tier for v in between} == {"hot", "cold"}  # the story shows hysteresis on both tiers
    for volume in between:
        assert scenario.expected_tier(volume, changed=False) == volume.tier


def test_a_pinned_claim_is_in_the_story_and_its_pin_moves_it():
    (pinned,) = [v for v in scenario.VOLUMES if v.pin is not None]
    # Its heat alone would leave it where it is; the pin moves it in the first act and keeps it.
    unpinned = dataclasses.replace(pinned, pin=None)
    assert scenario.expected_tier(unpinned, changed=False) == pinned.tier
    assert scenario.expected_tier(unpinned, changed=True) == pinned.tier
    assert pinned.pin != pinned.tier
    assert pinned in scenario.moves(scenario.VOLUMES, changed=False)
    assert pinned not in scenario.moves(scenario.VOLUMES, changed=True)
    (spec,) = [s for s in scenario.cluster_spec().volumes if s.pv == pinned.pv]
    assert spec.annotations == {PIN: pinned.pin}
    assert all(not s.annotations for s in scenario.cluster_spec().volumes if s.pv != pinned.pv)


def test_both_acts_promote_and_demote():
    for changed in (False, True):
        moved = scenario.moves(scenario.VOLUMES, changed=changed)
        assert {scenario.expected_tier(v, changed=changed) for v in moved} == {"hot", "cold"}


def test_cluster_spec_places_each_volume_on_its_starting_tier():
    volumes = scenario.population(scenario.DEFAULT_VOLUMES)
    spec = scenario.cluster_spec(volumes)
    assert {p.tier for p in spec.pools} == {"hot", "cold"}
    by_pv = {v.pv: v for v in spec.volumes}
    assert len(by_pv) == len(volumes)
    for volume in volumes:
        assert by_pv[volume.pv].tier == volume.tier
        assert by_pv[volume.pv].uuid == volume.uuid
    assert len({v.uuid for v in spec.volumes}) == len(spec.volumes)


@pytest.mark.parametrize("total", [14, 15, 62, scenario.DEFAULT_VOLUMES, scenario.MAX_VOLUMES])
def test_population_is_reproducible_and_keeps_the_story_short(total):
    volumes = scenario.population(total)
    assert volumes == scenario.population(total)
    assert len(volumes) == total
    assert volumes[: len(scenario.VOLUMES)] == scenario.VOLUMES
    assert all(not v.featured for v in volumes[len(scenario.VOLUMES) :])
    assert len({v.name for v in volumes}) == total
    background = [v for v in volumes if not v.featured]
    first, second = (
        [v for v in scenario.moves(volumes, changed=changed) if not v.featured] for changed in (False, True)
    )
    assert len(first) <= scenario.MAX_BACKGROUND_MOVES[0]
    assert len(second) <= scenario.MAX_BACKGROUND_MOVES[1]
    if total == scenario.DEFAULT_VOLUMES:
        # A few hundred volumes, most already where they belong: a few dozen moves at most.
        assert 10 <= len(first) + len(second) <= len(background) // 8


@pytest.mark.parametrize("total", [scenario.DEFAULT_VOLUMES, scenario.MAX_VOLUMES])
def test_no_load_is_near_a_watermark(total):
    # Noise (5%) around a load can never move the average across a watermark and change the story.
    for volume in scenario.population(total):
        for iops in (volume.iops, volume.later_iops):
            if iops is None:
                continue
            assert not scenario.LOW_IOPS * 0.9 <= iops <= scenario.LOW_IOPS * 1.1, volume
            assert not scenario.HIGH_IOPS * 0.9 <= iops <= scenario.HIGH_IOPS * 1.1, volume


@pytest.mark.parametrize("total", [14, scenario.DEFAULT_VOLUMES, scenario.MAX_VOLUMES])
def test_each_tier_holds_its_volumes_at_every_point_of_the_story(total):
    volumes = scenario.population(total)
    spec = scenario.cluster_spec(volumes)
    size = {v.pv: v.size_gib * GI for v in volumes}
    biggest_moves = sorted(size.values())[-scenario.MAX_CONCURRENT_MIGRATIONS :]
    for tiers in (
        {v.pv: v.tier for v in volumes},
        {v.pv: scenario.expected_tier(v, changed=False) for v in volumes},
        {v.pv: scenario.expected_tier(v, changed=True) for v in volumes},
    ):
        for tier in ("hot", "cold"):
            capacity = sum(p.capacity for p in spec.pools if p.tier == tier)
            used = sum(size[pv] for pv, t in tiers.items() if t == tier)
            assert used + sum(biggest_moves) <= capacity * 0.8, (tier, used, capacity)


def test_population_refuses_counts_outside_its_range():
    for total in (len(scenario.VOLUMES) - 1, scenario.MAX_VOLUMES + 1):
        with pytest.raises(ValueError, match="between"):
            scenario.population(total)


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
    from couchestor.tiering.plan import Plan, PolicyPlan

    policy_plan = PolicyPlan(policy, 1, None, True, False, tuple(decisions), {}, {}, 0, ())
    return Plan((policy_plan,), ())


def _decision(volume, action, reason, detail="", score=None):
    from couchestor.tiering.plan import Action, Decision

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


def _crowd():
    """The story's volumes and some background ones with heat from their loads, one background one migrating."""
    from datetime import UTC, datetime

    from couchestor.tiering.heat import HeatScore, ScoreSnapshot

    volumes = scenario.population(40)
    now = datetime.now(UTC)
    scores = {
        v.pv: HeatScore(v.pv, v.iops, None, None, None, 1.0, 20, scenario.SAMPLING_WINDOW_SECONDS, now, "m")
        for v in volumes
    }
    progress = Progress(scenario.POLICY_NAME)
    progress.on_scores(ScoreSnapshot(scenario.SAMPLING_WINDOW_SECONDS, True, now, scores))
    mover = next(v for v in volumes if not v.featured)
    progress.on_feed(_event(mover.pv, "new replica syncing", 40))
    return volumes, mover, progress


def test_overview_counts_every_volume_and_names_the_extremes():
    from couchestor.demo.progress import overview

    volumes, _, progress = _crowd()
    rows = progress.rows(volumes, lambda v: v.tier)
    o = overview(rows, extremes=3)
    assert o.tiers == {t: sum(1 for v in volumes if v.tier == t) for t in ("hot", "cold")}
    assert o.decisions == {"-": len(volumes)}  # no plan yet
    by_heat = sorted(volumes, key=lambda v: v.iops)
    assert [r.heat for r in o.hottest] == [v.iops for v in by_heat[::-1][:3]]
    assert [r.heat for r in o.coldest] == [v.iops for v in by_heat[:3]]


def test_table_rows_are_the_story_and_the_migrating_background():
    from couchestor.demo.progress import table_rows

    volumes, mover, progress = _crowd()
    running = table_rows(progress.rows(volumes, lambda v: v.tier), finished=False)
    assert {r.pv for r in running} == {v.pv for v in scenario.VOLUMES} | {mover.pv}
    progress.on_feed(_event(mover.pv, "success", final=True))
    rows = progress.rows(volumes, lambda v: v.tier)
    assert mover.pv not in {r.pv for r in table_rows(rows, finished=False)}
    assert mover.pv in {r.pv for r in table_rows(rows, finished=True)}


def test_live_view_sums_up_a_crowd():
    pytest.importorskip("rich")
    import io

    from rich.console import Console

    from couchestor.demo.live import LiveView
    from couchestor.demo.story import Snapshot

    volumes, mover, progress = _crowd()
    rows = progress.rows(volumes, lambda v: v.tier)
    out = io.StringIO()
    with LiveView(Console(file=out, force_terminal=True, width=200, height=200)) as view:
        view.show(
            Snapshot(5.0, "policy applied: tiering", rows, 1, 0, 0, 0, setup="heat from Prometheus 2.42.0")
        )
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    hot = sum(1 for v in volumes if v.tier == "hot")
    assert f"{len(volumes)} volumes: {len(volumes) - hot} cold, {hot} hot" in text
    assert "policy applied: tiering · heat from Prometheus 2.42.0" in text
    assert mover.pv in text  # a migrating background volume gets a table row
    quiet = [v for v in volumes if not v.featured and v is not mover]
    hottest = max(quiet, key=lambda v: v.iops)
    assert hottest.pv in text  # listed as one of the hottest
    assert "hottest (IOPS)" in text
    assert "coldest (IOPS)" in text
    shown = {line.split("│")[1].strip() for line in text.splitlines() if line.count("│") > 5}
    assert not {v.pv for v in quiet} & shown  # the rest of the crowd has no table row


def test_the_window_holds_enough_scrapes_for_rate_and_coverage():
    from couchestor.demo.cluster import SCRAPE_STEP
    from couchestor.demo.heat_source import HISTORY_SECONDS

    # rate() needs two samples in the window and the operator half the window's samples: a 20 s window
    # scraped every second holds 20; the backfilled history covers a whole window before the first scrape.
    assert scenario.SAMPLING_WINDOW_SECONDS / SCRAPE_STEP >= 10
    assert HISTORY_SECONDS >= 2 * scenario.SAMPLING_WINDOW_SECONDS


def test_every_demo_flag_is_documented():
    import argparse

    from couchestor.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {
        option
        for action in sub.choices["demo"]._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert flags >= {"--volumes", "--backend", "--prometheus", "--headless", "--duration", "--kubeconfig-out"}
    text = (ROOT / "docs" / "demo.md").read_text()
    for flag in flags:
        assert f"`{flag}" in text, flag
