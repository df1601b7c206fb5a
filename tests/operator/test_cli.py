"""``couchestor run`` as users start it: a separate process, flags and environment, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import trio

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.sim.populate import install_crds
from k8s_schemas.storage_policy import StoragePolicy
from tests.operator.harness import policy_body


def test_help_explains_every_flag_with_its_environment_variable():
    out = subprocess.run(
        [sys.executable, "-m", "couchestor", "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag, env in (
        ("--prometheus-url", "COUCHESTOR_PROMETHEUS_URL"),
        ("--max-concurrent-migrations", "COUCHESTOR_MAX_CONCURRENT_MIGRATIONS"),
        ("--preservation-mode", "COUCHESTOR_PRESERVATION_MODE"),
        ("--log-format", "COUCHESTOR_LOG_FORMAT"),
    ):
        assert flag in out
        assert env in out


def test_bad_flag_value_is_one_clear_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "couchestor",
            "run",
            "--resync",
            "soon",
            "--kubeconfig",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--resync" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


async def test_run_reports_status_and_stops_cleanly_on_sigterm(apiserver, tmp_path):
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        await install_crds(client)
        await client.create(resources.STORAGE_POLICY, policy_body(), type=dict)
        log_path = tmp_path / "operator.log"
        env = dict(os.environ, COUCHESTOR_PROMETHEUS_URL="http://127.0.0.1:9", COUCHESTOR_LOG_FORMAT="json")
        with log_path.open("wb") as log:
            proc = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "couchestor",
                    "run",
                    "--kubeconfig",
                    str(apiserver.kubeconfig),
                    "--metrics-addr",
                    "127.0.0.1:0",
                    "--namespace",
                    "default",
                    "--lease-duration",
                    "4s",
                    "--renew-deadline",
                    "3s",
                    "--retry-period",
                    "1s",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            with trio.fail_after(60):
                while True:
                    policy = await client.get(resources.STORAGE_POLICY, "tiering", type=StoragePolicy)
                    conditions = (
                        {c.type: c for c in (policy.status.conditions or [])} if policy.status else {}
                    )
                    if (
                        conditions.get("MetricsAvailable")
                        and conditions["MetricsAvailable"].status == "False"
                    ):
                        break
                    await trio.sleep(0.2)
            lease = await client.get(resources.LEASE, "couchestor-leader", "default", type=dict)
            assert lease["spec"]["holderIdentity"]
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(15):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        messages = [line.get("message", line.get("msg", "")) for line in lines]
        assert code == 0, log_path.read_text()
        assert any("shutting down" in m for m in messages), messages
        assert "Traceback" not in log_path.read_text()


async def test_missing_crds_are_one_clear_line(apiserver):
    proc = await trio.run_process(
        [sys.executable, "-m", "couchestor", "run", "--kubeconfig", str(apiserver.kubeconfig)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "StoragePolicy" in err
    assert "manifests/crds" in err
    assert "Traceback" not in err
