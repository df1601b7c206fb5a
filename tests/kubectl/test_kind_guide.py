"""docs/kind.md, run as written against the API server emulator standing in for kind.

Every ```sh block of the guide runs in order with ``bash`` (``KUBECONFIG`` pointing at a fresh emulator, the
guide's ports swapped for free ones); blocks holding a command that runs until Ctrl-C (the simulator, Prometheus,
the operator) are started in the background and waited for on their listening ports. ```bash blocks need kind
or Docker and are not run. Each variant then waits until the operator has completed a migration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.apiserver import apiserver_subprocess

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "kind.md"
#: Commands that run until stopped.
LONG_RUNNING = ("couchestor sim mayastor", "couchestor run", "prometheus ")
#: The guide's fixed ports, replaced with free ones so the test never collides with anything.
PORTS = ("9502", "9090", "8080", "8081")
MIGRATION_TIMEOUT = 180.0

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.prometheus,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH"),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not on PATH"),
]


def blocks(text: str) -> list[tuple[str, str]]:
    """The guide's fenced code blocks as (language, body), in order."""
    return re.findall(r"^```(sh|bash)\n(.*?)^```", text, re.S | re.M)


def commands(body: str) -> list[str]:
    """The command lines of a block (continuations joined, heredoc bodies skipped)."""
    out, heredoc = [], None
    for line in body.replace("\\\n", " ").splitlines():
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        match = re.search(r"<<'?(\w+)'?", line)
        heredoc = match.group(1) if match else None
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def is_long_running(body: str) -> bool:
    return any(c.startswith(LONG_RUNNING) for c in commands(body))


def test_sh_blocks_need_neither_kind_nor_docker_and_bash_blocks_do():
    found = blocks(GUIDE.read_text())
    assert found, "no code blocks in the guide"
    for lang, body in found:
        needs_kind = any(c.split()[0] in ("kind", "docker") or "docker " in c for c in commands(body))
        assert needs_kind == (lang == "bash"), (
            f"{lang} block {'needs' if needs_kind else 'does not need'} kind"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"exited with {proc.returncode} before listening on {port}: {log.read_text()}"
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listening on {port} after {timeout}s: {log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C to the process group (as the guide says), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.parametrize("variant", ["crd", "rest"])
def test_the_kind_guide_runs_as_written(tmp_path, variant):
    text = GUIDE.read_text()
    for port in PORTS:
        text = text.replace(port, str(_free_port()))
    work = tmp_path / "work"
    work.mkdir()
    (work / "manifests").symlink_to(ROOT / "manifests")
    with apiserver_subprocess(tmp_path) as server:
        env = dict(os.environ, KUBECONFIG=str(server.kubeconfig), PYTHONUNBUFFERED="1")
        background: list[subprocess.Popen] = []
        try:
            for i, (lang, body) in enumerate(blocks(text)):
                if lang != "sh":
                    continue
                if not is_long_running(body):
                    done = subprocess.run(
                        ["bash", "-e", "-c", body],
                        cwd=work,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    assert done.returncode == 0, f"block {i} failed:\n{body}\n{done.stdout}\n{done.stderr}"
                    continue
                # The REST variant's simulator and operator replace those of steps 3 and 5, and vice versa.
                if body.lstrip().startswith("couchestor") and ("--backend" in body) != (variant == "rest"):
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
                for port in re.findall(r"(?:-addr |listen-address=)127\.0\.0\.1:(\d+)", body):
                    _wait_listening(int(port), proc, log)
            assert len(background) == 3, "the simulator, Prometheus and the operator"
            status = _wait_for_a_migration(env, work, background, tmp_path)
            assert status["totalMigrations"] >= 1
            assert status.get("failedMigrations", 0) == 0, status
            assert status["watchedVolumes"] == 60
        finally:
            for proc in reversed(background):
                _stop(proc)
        for proc in background:
            assert proc.returncode in (0, -signal.SIGINT, 130), f"exit status {proc.returncode} after Ctrl-C"


def _wait_for_a_migration(env, work, background, tmp_path) -> dict:
    deadline = time.monotonic() + MIGRATION_TIMEOUT
    status: dict = {}
    while time.monotonic() < deadline:
        for proc in background:
            assert proc.poll() is None, "a long-running command of the guide exited: " + "\n".join(
                p.read_text()[-3000:] for p in sorted(tmp_path.glob("block-*.log"))
            )
        done = subprocess.run(
            ["kubectl", "get", "sp", "quickstart", "-o", "json"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        status = json.loads(done.stdout).get("status") or {} if done.returncode == 0 else {}
        if status.get("totalMigrations", 0) >= 1:
            return status
        time.sleep(2)
    logs = "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("block-*.log")))
    raise AssertionError(f"no migration within {MIGRATION_TIMEOUT:g}s; status {status}\n{logs}")
