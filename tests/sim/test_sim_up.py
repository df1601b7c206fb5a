"""``couchestor sim up``: a whole emulated cluster in one command, usable with kubectl and the operator."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest
import trio

KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_sim_up_serves_a_populated_cluster_until_interrupted(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    log_path = tmp_path / "sim.log"
    with log_path.open("wb") as log:
        proc = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "couchestor",
                "sim",
                "up",
                "--volumes",
                "12",
                "--kubeconfig-out",
                str(kubeconfig),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with trio.fail_after(60):
            while "couchestor run" not in log_path.read_text():
                assert proc.poll() is None, log_path.read_text()
                await trio.sleep(0.1)

        async def placed() -> list[dict]:
            out = await trio.run_process(
                [
                    KUBECTL,
                    "--kubeconfig",
                    str(kubeconfig),
                    "get",
                    "mayastorvolumes",
                    "-n",
                    "mayastor",
                    "-o",
                    "json",
                ],
                capture_stdout=True,
            )
            return json.loads(out.stdout)["items"]

        with trio.fail_after(30):
            while True:
                items = await placed()
                synced = [v for v in items if v.get("status", {}).get("replicas")]
                if len(items) == 12 and len(synced) == 12:
                    break
                await trio.sleep(0.2)
        text = log_path.read_text()
        assert "/api/v1/query" in text
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            code = await proc.wait()
        assert code == 0, log_path.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_sim_up_rejects_bad_values_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "couchestor", "sim", "up", "--time-scale", "0"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "--time-scale" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--metrics-addr", "9502"], "--metrics-addr"),
        (["--rest-addr", "localhost:http"], "--rest-addr"),
        (["--volumes", "-1"], "--volumes"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "/nonexistent/kubeconfig"),
    ],
)
def test_sim_mayastor_rejects_bad_values_in_one_line(args, named):
    proc = subprocess.run(
        [sys.executable, "-m", "couchestor", "sim", "mayastor", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert named in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
