"""``couchestor explain`` and ``couchestor plan`` as users run them: separate processes against the emulated
cluster (API server emulator, simulated Mayastor, a workload scraped by a real Prometheus), no operator
running; and ``kubectl couchestor explain`` through the real kubectl, with the ``kubectl-couchestor``
executable pyproject declares on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from couchestor.durations import format_time
from couchestor.kube import resources
from k8s_schemas.annotations import EXCLUDE, PIN, PIN_UNTIL
from tests.operator.harness import policy_body

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


async def run(
    env: Any, apiserver: Any, *args: str, prometheus: str | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """``couchestor ARGS`` in its own process, reading the emulated cluster and the test's Prometheus."""
    cmd = [
        sys.executable,
        "-m",
        "couchestor",
        *args,
        "--kubeconfig",
        str(apiserver.kubeconfig),
        "--prometheus-url",
        prometheus or env.prometheus_url,
        "--scrape-interval",
        "1s",
    ]
    proc = await trio.run_process(
        cmd, capture_stdout=True, capture_stderr=True, check=False, env=_environ(), **kw
    )
    return subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _environ(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


async def explained(
    env: Any, apiserver: Any, volume: str, *extra: str, coverage: float = 0.0
) -> dict[str, Any]:
    """``explain -o json`` once the volume's heat covers enough of the window to be judged (and ``coverage``)."""

    async def ready() -> dict[str, Any] | None:
        proc = await run(env, apiserver, "explain", volume, "-o", "json", *extra)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        if report["decision"]["reason"] == "low-coverage" or report["heat"]["coverage"] < coverage:
            return None
        return report

    return await env.eventually(ready, timeout=60, interval=1.0, what=f"{volume} judged")


async def test_explain_says_why_each_volume_moves_or_stays(env, apiserver):
    await env.apply_policy(policy_body())
    heavy = await explained(env, apiserver, "apps/data-heavy")
    assert heavy["volume"] == "pvc-heavy"
    assert heavy["claim"] == "apps/data-heavy"
    assert heavy["policy"] == "tiering"
    assert heavy["overlapping"] == []
    assert heavy["tier"] == "cold"
    assert heavy["heat"]["window"] == policy_body()["spec"]["samplingWindow"]
    assert heavy["heat"]["coverage"] >= 0.5
    assert 7000 < heavy["heat"]["iops"] < 9000
    assert heavy["decision"]["action"] == "hot"
    assert heavy["decision"]["targetPool"] in ("pool-hot-1", "pool-hot-2")
    assert [r["poolTier"] for r in heavy["replicas"]] == ["cold"]
    assert heavy["cooldown"] is None
    assert heavy["wouldChange"] == [f"promoted to hot above 5,000 IOPS; now {heavy['heat']['iops']:,.0f}"]

    middle = await explained(env, apiserver, "pvc/data-middle", "-n", "apps")
    assert middle["decision"]["label"] == "stay"
    assert middle["tier"] == "hot"
    assert middle["wouldChange"][0].startswith("demoted to cold below 500 IOPS; now ")

    # A PV name works as well, and the text output says the same in words.
    proc = await run(env, apiserver, "explain", "pvc-idle")
    assert proc.returncode == 0, proc.stderr
    assert "Policy:     tiering" in proc.stdout
    assert "Decision:   cold: moves from hot to cold" in proc.stdout
    assert "Would move: demoted to cold below 500 IOPS; now 0" in proc.stdout


async def test_explain_reports_cooldown_history_and_an_overlapping_policy(env, apiserver):
    await env.apply_policy(policy_body())
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME,
        "pvc-heavy",
        {"metadata": {"annotations": {"storage.billyronks.io/last-migration": format_time(ten_minutes_ago)}}},
        type=dict,
    )
    history = {
        "migrationHistory": [
            {
                "volumeName": "pvc-heavy",
                "timestamp": format_time(ten_minutes_ago),
                "fromTier": "hot",
                "toTier": "cold",
                "triggerIOPS": 12.0,
                "duration": "4m12s",
                "success": True,
            }
        ]
    }
    await env.client.patch_status(resources.STORAGE_POLICY, "tiering", {"status": history}, type=dict)
    heavy = await explained(env, apiserver, "apps/data-heavy")
    assert heavy["history"][0]["toTier"] == "cold"
    assert heavy["lastMigration"] == format_time(ten_minutes_ago)
    # The heavy volume wants hot, but its last migration is 10 minutes into a 1h cooldown.
    assert heavy["decision"]["reason"] == "cooldown"
    assert heavy["decision"]["targetTier"] == "hot"
    assert heavy["cooldown"]["period"] == "1h"
    assert 40 * 60 < heavy["cooldown"]["leftSeconds"] <= 50 * 60
    assert heavy["wouldChange"][-1] == "not before the cooldown ending"

    # An annotation that cannot be read is reported, not taken for "never migrated".
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME,
        "pvc-middle",
        {"metadata": {"annotations": {"storage.billyronks.io/last-migration": "last tuesday"}}},
        type=dict,
    )
    middle = await explained(env, apiserver, "apps/data-middle")
    assert "invalid timestamp 'last tuesday'" in middle["lastMigrationError"]
    assert heavy["lastMigrationError"] is None
    # On a volume that wants to move, it counts as in cooldown until it is fixed.
    await env.client.merge_patch(
        resources.PERSISTENT_VOLUME,
        "pvc-heavy",
        {"metadata": {"annotations": {"storage.billyronks.io/last-migration": "last tuesday"}}},
        type=dict,
    )
    unreadable = await explained(env, apiserver, "apps/data-heavy")
    assert unreadable["decision"]["reason"] == "cooldown"
    assert "counts as in cooldown" in unreadable["decision"]["detail"]
    assert unreadable["wouldChange"][-1] == "not before the last-migration annotation fixed or removed"

    await env.apply_policy(policy_body("second", volumeSelector={"matchLabels": {"app": "heavy"}}))
    proc = await run(env, apiserver, "explain", "apps/data-heavy", "-o", "json")
    report = json.loads(proc.stdout)
    assert report["overlapping"] == ["tiering"] or report["overlapping"] == ["second"]
    assert report["decision"]["reason"].startswith("conflict:")
    assert report["wouldChange"][-1].startswith("not before only one policy selecting it")


async def test_explain_shows_a_pin_and_an_opt_out(env, apiserver):
    await env.apply_policy(policy_body())
    until = datetime.now(UTC) + timedelta(days=7)
    for name, wanted in (
        ("heavy", {PIN: "cold", PIN_UNTIL: format_time(until)}),
        ("idle", {EXCLUDE: "true"}),
    ):
        await env.client.merge_patch(
            resources.PERSISTENT_VOLUME_CLAIM,
            f"data-{name}",
            {"metadata": {"annotations": wanted}},
            namespace="apps",
            type=dict,
        )
    heavy = await explained(env, apiserver, "apps/data-heavy")
    assert heavy["pin"] == {
        "tier": "cold",
        "excluded": False,
        "until": format_time(until),
        "active": True,
        "error": None,
    }
    # Busy on cold, so its heat would promote it; the pin keeps it where it is.
    assert heavy["decision"]["label"] == "skip:pinned"
    assert heavy["wouldChange"] == [f"not before the pin ending or being removed ({PIN} on the PVC)"]
    proc = await run(env, apiserver, "explain", "apps/data-idle")
    assert proc.returncode == 0, proc.stderr
    assert f"Pin:        excluded from tiering ({EXCLUDE}): never moved" in proc.stdout
    assert "Decision:   skip:excluded" in proc.stdout


async def test_explain_errors_are_one_clear_line(env, apiserver):
    await env.apply_policy(policy_body(volumeSelector={"matchLabels": {"app": "heavy"}}))
    cases = [
        (("explain", "apps/nothing-here"), "PersistentVolumeClaim apps/nothing-here not found", None),
        (("explain", "pv/pvc-nothing"), "PersistentVolume pvc-nothing not found", None),
        (("explain", "apps/data-idle"), "is not selected by any StoragePolicy", None),
        (("explain", "apps/data-heavy"), "Prometheus cannot give heat scores", "http://127.0.0.1:9"),
    ]
    for args, message, prometheus in cases:
        proc = await run(env, apiserver, *args, prometheus=prometheus)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH")
async def test_kubectl_plugin_explains_a_pvc(env, apiserver, tmp_path):
    """The ``kubectl-couchestor`` entry point of pyproject, on PATH, run by the real kubectl."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["kubectl-couchestor"].partition(":")
    plugin = tmp_path / "kubectl-couchestor"
    # What an installer writes for a console script: import the entry point and exit with its result.
    plugin.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
    plugin.chmod(0o755)
    await env.apply_policy(policy_body())
    await explained(env, apiserver, "apps/data-heavy")
    environ = _environ(
        PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
        KUBECONFIG=str(apiserver.kubeconfig),
        COUCHESTOR_PROMETHEUS_URL=env.prometheus_url,
        COUCHESTOR_SCRAPE_INTERVAL="1s",
    )
    listed = await trio.run_process(
        ["kubectl", "plugin", "list"], capture_stdout=True, check=False, env=environ
    )
    assert str(plugin) in listed.stdout.decode()
    # Without -n the kubeconfig context's namespace applies, as for kubectl itself.
    kubeconfig = tmp_path / "kubeconfig-apps"
    shutil.copy(apiserver.kubeconfig, kubeconfig)
    environ["KUBECONFIG"] = str(kubeconfig)
    await trio.run_process(
        ["kubectl", "config", "set-context", "--current", "--namespace=apps"],
        env=environ,
        capture_stdout=True,
    )
    proc = await trio.run_process(
        ["kubectl", "couchestor", "explain", "pvc/data-heavy", "-o", "json"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=environ,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert (report["volume"], report["decision"]["action"]) == ("pvc-heavy", "hot")
    missing = await trio.run_process(
        ["kubectl", "couchestor", "explain", "pvc/absent", "-n", "apps"],
        capture_stderr=True,
        check=False,
        env=environ,
    )
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith("kubectl couchestor: error: PersistentVolumeClaim apps/absent")


def write_policy(tmp_path: Path, name: str = "candidate", **spec: Any) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_body(name, **spec)))
    return path


async def test_plan_lists_moves_bytes_fill_and_what_cannot_be_placed(env, apiserver, tmp_path):
    path = write_policy(tmp_path, dryRun=True)

    async def planned() -> dict[str, Any] | None:
        proc = await run(env, apiserver, "plan", "-f", str(path), "-o", "json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        # Until the workload's heat covers the window, volumes cannot be judged (and the plan says so).
        return None if any(b["reason"] == "low-coverage" for b in report["blocked"]) else report

    report = await env.eventually(planned, timeout=60, interval=1.0, what="every volume judged")
    assert report["valid"] is True
    assert report["dryRunIgnored"] is True
    moves = {m["volume"]: (m["from"], m["to"]) for m in report["moves"]}
    assert moves == {"pvc-heavy": ("cold", "hot"), "pvc-idle": ("hot", "cold")}
    assert report["bytesToCopy"] == 2 * 10 * 2**30
    fill = report["fill"]
    # One 10 GiB volume leaves each tier and one arrives: the totals stay, as the pools report them.
    for tier in ("hot", "cold"):
        assert fill[tier]["capacityBytes"] == 2 * 500 * 2**30
        assert fill[tier]["usedBytesAfter"] == fill[tier]["usedBytes"]
    assert report["blocked"] == []

    # A hot selector no pool matches: the promotion has nowhere to go, and the plan says why.
    path = write_policy(tmp_path, nvmePoolSelector={"matchLabels": {"tier": "hot", "size": "tiny"}})
    proc = await run(env, apiserver, "plan", "-f", str(path), "-o", "json")
    report = json.loads(proc.stdout)
    assert [m["volume"] for m in report["moves"]] == []
    reasons = {b["volume"]: b["reason"] for b in report["blocked"]}
    assert reasons["pvc-heavy"] == "no-capacity"
    assert reasons["pvc-idle"] == "tier-unknown"

    # lowWatermarkIOPS 0: nothing is colder than that, so only the promotion moves, and the fill shifts by it.
    proc = await run(
        env, apiserver, "plan", "-f", str(write_policy(tmp_path, lowWatermarkIOPS=0)), "-o", "json"
    )
    report = json.loads(proc.stdout)
    assert [(m["volume"], m["to"]) for m in report["moves"]] == [("pvc-heavy", "hot")]
    fill = report["fill"]
    assert fill["hot"]["usedBytesAfter"] == fill["hot"]["usedBytes"] + 10 * 2**30
    assert fill["cold"]["usedBytesAfter"] == fill["cold"]["usedBytes"] - 10 * 2**30
    assert fill["hot"]["fillAfter"] == fill["hot"]["usedBytesAfter"] / fill["hot"]["capacityBytes"]

    text = await run(env, apiserver, "plan", "-f", str(write_policy(tmp_path)))
    assert text.returncode == 0, text.stderr
    assert "pvc-heavy  cold  hot" in text.stdout
    assert "2 move(s), 20.0Gi to copy" in text.stdout


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"lowWatermarkIOPS": 6000}, "spec.lowWatermarkIOPS"),
        ({"samplingWindow": "soon"}, "spec.samplingWindow"),
        ({"warmWatermarkIOPS": 9000}, "spec.warmWatermarkIOPS"),
        ({"warmPoolSelector": {"matchLabels": {"tier": "warm"}}}, "spec.warmPoolSelector"),
    ],
)
def test_plan_of_an_invalid_policy_exits_non_zero_naming_the_field(tmp_path, spec, field):
    path = write_policy(tmp_path, **spec)
    proc = subprocess.run(
        [sys.executable, "-m", "couchestor", "plan", "-f", str(path), "--kubeconfig", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=_environ(),
    )
    assert proc.returncode == 1, proc.stderr
    assert field in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("backend", ["rest"])
async def test_explain_and_plan_on_mayastor_2x_read_volumes_from_its_rest_api(env, apiserver, tmp_path):
    """With ``--backend mayastor-rest`` (no MayastorVolume resource) volumes come from the REST API and heat from
    io-engine's counters, as the operator reads them."""
    rest = ("--backend", "mayastor-rest", "--mayastor-rest-url", env.simulator.url)
    await env.apply_policy(policy_body())
    # A rate over a window only partly scraped yet reads low (as the operator would read it): wait for all of it.
    heavy = await explained(env, apiserver, "apps/data-heavy", *rest, coverage=1.0)
    assert heavy["tier"] == "cold"
    assert heavy["decision"]["action"] == "hot"
    assert 7000 < heavy["heat"]["iops"] < 9000
    # The file's policy stands in for the cluster's of the same name (no conflict with it), here with a warm tier.
    path = write_policy(tmp_path, "tiering", warmWatermarkIOPS=2000)
    proc = await run(env, apiserver, "plan", "-f", str(path), "-o", "json", *rest)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {m["volume"] for m in report["moves"]} == {"pvc-heavy", "pvc-idle"}
    # No pool is labelled tier: warm, and the middle volume (2,000 IOPS, on hot) does not cross the warm mark.
    assert report["fill"]["warm"]["capacityBytes"] == 0
