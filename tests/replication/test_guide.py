"""docs/replication.md's walk-through, run as written against the API server emulator standing in for kind.

Its ```sh blocks run in order with ``bash`` (``KUBECONFIG`` pointing at a fresh emulator, the guide's ports swapped
for free ones); the blocks running until Ctrl-C (the simulated backends, the operator) are started in the
background and waited for (the operator on its metrics port, the simulator on its ready line). ```bash blocks
need kind and are not run. Then the end state the guide describes is checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.apiserver import apiserver_subprocess
from tests.kubectl.test_kind_guide import _free_port, _stop, _wait_listening, blocks, commands

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "replication.md"
LONG_RUNNING = ("couchestor sim replication", "couchestor run")
PORTS = ("8080", "9090")

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH"),
]


def walkthrough() -> str:
    text = GUIDE.read_text()
    start = text.index("## Walk-through on kind")
    return text[start : text.index("\n## ", start + 1)]


def test_walkthrough_covers_the_three_backends_and_kind_only_blocks_are_bash():
    found = blocks(walkthrough())
    assert found
    text = "\n".join(body for _, body in found)
    for provisioner in ("rbd.csi.ceph.com", "csi.trident.netapp.io", "csi-powerstore.dellemc.com"):
        assert provisioner in text
    for lang, body in found:
        needs_kind = any(c.split()[0] == "kind" for c in commands(body))
        assert needs_kind == (lang == "bash"), body


def _wait_line(log: Path, proc: subprocess.Popen, needle: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {log.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"no {needle!r} after {timeout}s: {log.read_text()}")


def _kubectl_json(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        ["kubectl", *args, "-o", "json"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_walkthrough_runs_as_written(tmp_path):
    text = walkthrough()
    for port in PORTS:
        text = text.replace(port, str(_free_port()))
    work = tmp_path / "work"
    work.mkdir()
    (work / "manifests").symlink_to(ROOT / "manifests")
    outputs: list[str] = []
    with apiserver_subprocess(tmp_path) as server:
        env = dict(os.environ, KUBECONFIG=str(server.kubeconfig), PYTHONUNBUFFERED="1")
        background: list[subprocess.Popen] = []
        try:
            for i, (lang, body) in enumerate(blocks(text)):
                if lang != "sh":
                    continue
                if not any(c.startswith(LONG_RUNNING) for c in commands(body)):
                    done = subprocess.run(
                        ["bash", "-e", "-c", body],
                        cwd=work,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    logs = "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("block-*.log")))
                    assert done.returncode == 0, (
                        f"block {i} failed:\n{body}\n{done.stdout}\n{done.stderr}\n{logs}"
                    )
                    outputs.append(done.stdout)
                    continue
                log = tmp_path / f"block-{i}.log"
                with log.open("w") as out:
                    proc = subprocess.Popen(
                        ["bash", "-c", body],
                        cwd=work,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                background.append(proc)
                if "sim replication" in body:
                    _wait_line(log, proc, "Ctrl-C stops")
                for port in re.findall(r"-addr 127\.0\.0\.1:(\d+)", body):
                    _wait_listening(int(port), proc, log)
            assert len(background) == 2, "the simulated backends and the operator"
            for proc in background:
                assert proc.poll() is None, "a long-running command of the guide exited"
        finally:
            for proc in reversed(background):
                _stop(proc)
        # What the guide showed on the way.
        shown = "\n".join(outputs)
        assert "is already owned by VolumeReplication 'orders-ceph'" in shown
        assert "Degraded=False (Healthy)" in shown
        assert "Completed=True (Demoted)" in shown
        assert re.search(r"^orders-trident +Terminating ", shown, re.M), "the deleted claim waits"
        # The end state: every backend object deleted, every claim released (the Trident one deleted).
        for kind in ("volumereplications.replication.storage.openshift.io", "tmr"):
            assert _kubectl_json(env, "get", kind, "-n", "shop")["items"] == []
        assert _kubectl_json(env, "get", "dellcsireplicationgroups")["items"] == []
        claims = {c["metadata"]["name"]: c for c in _kubectl_json(env, "get", "pvc", "-n", "shop")["items"]}
        assert sorted(claims) == ["orders-ceph", "pg-data", "pg-wal"]
        for claim in claims.values():
            assert "replication.unified.io/pvc-protection" not in claim["metadata"].get("finalizers", [])
    for proc in background:
        assert proc.returncode in (0, -signal.SIGINT, 130), f"exit status {proc.returncode} after Ctrl-C"
