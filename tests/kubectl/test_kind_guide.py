"""docs/kind.md, run as written against the API server emulator standing in for kind, and against a real one.

Every ```sh block of the guide runs in order with ``bash`` (``KUBECONFIG`` pointing at a fresh emulator, or at
the session's real kube-apiserver, the guide's ports swapped for free ones); blocks holding a command that runs
until Ctrl-C (the simulator, Prometheus, the operator) are started in the background and waited for on their
listening ports. ```bash blocks need kind or Docker and are not run. Each run then waits until the operator has
completed a migration. On the real server the operator runs as the shipped ServiceAccount (a ``TokenRequest``
token, the shipped RBAC applied) with leader election on, and what the guide created is removed afterwards.
"""

from __future__ import annotations

import base64
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


#: (server, variant): the guide against the emulator standing in for kind, and against a real kube-apiserver
#: (envtest) with the operator authenticated as the shipped ServiceAccount, under the shipped RBAC, with leader
#: election on. ``no-prometheus`` takes the guide's path without Prometheus (the simulator answers the queries).
RUNS = [
    ("emulator", "crd"),
    ("emulator", "rest"),
    ("emulator", "no-prometheus"),
    ("real", "crd"),
    ("real", "rest"),
]


@pytest.mark.parametrize(("server", "variant"), RUNS, ids=[f"{s}-{v}" for s, v in RUNS])
def test_the_kind_guide_runs_as_written(request, tmp_path, server, variant):
    if server == "emulator":
        with apiserver_subprocess(tmp_path) as emulator:
            _play_the_guide(tmp_path, variant, emulator.kubeconfig)
        return
    real = request.getfixturevalue("real_cluster")
    before = _cluster_objects(real.kubeconfig)
    # The guide's policy must be the only one: another would select the same volumes (a conflict, never moved).
    assert not before.get("storagepolicies"), f"policies left by other tests: {before['storagepolicies']}"
    try:
        operator_kubeconfig = _service_account_kubeconfig(real, tmp_path)
        logs = _play_the_guide(tmp_path, variant, real.kubeconfig, operator_kubeconfig=operator_kubeconfig)
        operator_log = logs["operator"]
        assert "Forbidden" not in operator_log, operator_log[-5000:]
        # (An ApiError reads "<call>: 403 Forbidden: ..."; the server's own text says "... is forbidden: ...".
        # A bare " 403" would also match a heat score.)
        assert ": 403 " not in operator_log, operator_log[-5000:]
        assert " is forbidden" not in operator_log, operator_log[-5000:]
        assert "acquired leadership of Lease kube-system/couchestor-leader" in operator_log, operator_log[
            -3000:
        ]
        events = _kubectl_json(real.kubeconfig, "get", "events", "-A")["items"]
        ours = [e for e in events if e.get("reportingComponent") == "couchestor"]
        assert any(e["involvedObject"]["kind"] == "StoragePolicy" for e in ours), ours
        assert any(e["involvedObject"]["kind"] == "PersistentVolume" for e in ours), ours
    finally:
        _remove_what_the_guide_created(real.kubeconfig, before)


def _play_the_guide(
    tmp_path: Path, variant: str, kubeconfig: Path, *, operator_kubeconfig: Path | None = None
) -> dict[str, str]:
    """Run the guide's sh blocks against the cluster of ``kubeconfig`` until a migration completed; returns
    the logs of the simulator and the operator. With ``operator_kubeconfig`` the operator uses it, with leader
    election on (the guide's kind setup runs one instance without)."""
    text = GUIDE.read_text()
    ports = {port: str(_free_port()) for port in PORTS}
    for port, free in ports.items():
        text = text.replace(port, free)
    work = tmp_path / "work"
    work.mkdir()
    (work / "manifests").symlink_to(ROOT / "manifests")
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1")
    background: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    try:
        for i, (lang, body) in enumerate(blocks(text)):
            if lang != "sh":
                continue
            if not is_long_running(body):
                done = subprocess.run(
                    ["bash", "-e", "-c", body], cwd=work, env=env, capture_output=True, text=True, timeout=120
                )
                assert done.returncode == 0, f"block {i} failed:\n{body}\n{done.stdout}\n{done.stderr}"
                continue
            # The REST variant's simulator and operator replace those of steps 3 and 5, and vice versa.
            if body.lstrip().startswith("couchestor") and ("--backend" in body) != (variant == "rest"):
                continue
            role = (
                "operator"
                if "couchestor run" in body
                else "simulator"
                if "couchestor sim" in body
                else "prometheus"
            )
            block_env = env
            if role == "prometheus" and variant == "no-prometheus":
                continue
            if role == "operator" and variant == "no-prometheus":
                # As the guide says: no Prometheus, the simulator's query endpoint instead.
                body = body.replace(f"127.0.0.1:{ports['9090']}", f"127.0.0.1:{ports['9502']}")
            if role == "operator" and operator_kubeconfig is not None:
                body = body.replace("--no-leader-election", "")
                block_env = dict(env, KUBECONFIG=str(operator_kubeconfig))
            log = logs[role] = tmp_path / f"{role}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    ["bash", "-c", body],
                    cwd=work,
                    env=block_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            background[role] = proc
            for port in re.findall(r"(?:-addr |listen-address=)127\.0\.0\.1:(\d+)", body):
                _wait_listening(int(port), proc, log)
        expected = {"simulator", "operator"} | ({"prometheus"} if variant != "no-prometheus" else set())
        assert set(background) == expected
        status = _wait_for_a_migration(env, work, list(background.values()), tmp_path)
        assert status["totalMigrations"] >= 1
        assert status.get("failedMigrations", 0) == 0, status
        assert status["watchedVolumes"] == 60
        assert {c["type"] for c in status.get("conditions", ())} >= {"Ready", "MetricsAvailable"}, status
    finally:
        for proc in reversed(list(background.values())):
            _stop(proc)
    for role, proc in background.items():
        assert proc.returncode in (0, -signal.SIGINT, 130), (
            f"{role}: exit status {proc.returncode} after Ctrl-C"
        )
    # The simulator checked the no-data-loss invariant all along and says so when stopped.
    simulator_log = logs["simulator"].read_text()
    assert "no-data-loss invariant: 0 violations" in simulator_log, simulator_log[-3000:]
    assert background["simulator"].returncode == 0
    return {role: path.read_text() for role, path in logs.items()}


def _kubectl_json(kubeconfig: Path, *args: str) -> dict:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _service_account_kubeconfig(real, tmp_path: Path) -> Path:
    """The shipped RBAC applied, and a kubeconfig holding a TokenRequest token of its ServiceAccount."""
    kubectl = ["kubectl", "--kubeconfig", str(real.kubeconfig)]
    applied = subprocess.run(
        [*kubectl, "apply", "-f", str(ROOT / "manifests" / "operator" / "rbac.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    token = subprocess.run(
        [*kubectl, "create", "token", "couchestor", "-n", "kube-system", "--duration=1h"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert token.returncode == 0, token.stderr
    ca = base64.b64encode(real.ca_path.read_bytes()).decode()
    path = tmp_path / "couchestor-sa.kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f'clusters: [{{name: real, cluster: {{server: "{real.url}", certificate-authority-data: "{ca}"}}}}]\n'
        f'users: [{{name: couchestor, user: {{token: "{token.stdout.strip()}"}}}}]\n'
        "contexts: [{name: couchestor, context: {cluster: real, user: couchestor, namespace: kube-system}}]\n"
        "current-context: couchestor\n"
    )
    return path


#: What the guide creates on a cluster, by kind: removed after a run so the next one starts afresh.
_GUIDE_KINDS = ("namespaces", "persistentvolumes", "storageclasses", "storagepolicies")


def _cluster_objects(kubeconfig: Path) -> dict[str, set[str]]:
    return {
        kind: {i["metadata"]["name"] for i in _kubectl_json(kubeconfig, "get", kind)["items"]}
        for kind in _GUIDE_KINDS
        if kind != "storagepolicies" or _has_storage_policies(kubeconfig)
    }


def _has_storage_policies(kubeconfig: Path) -> bool:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "crd", "storagepolicies.storage.billyronks.io"],
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0


def _remove_what_the_guide_created(kubeconfig: Path, before: dict[str, set[str]]) -> None:
    """Delete the guide's objects (namespaces with their content, PVs, StorageClass, policy, Lease); wait."""
    kubectl = ["kubectl", "--kubeconfig", str(kubeconfig)]
    created = {kind: names - before.get(kind, set()) for kind, names in _cluster_objects(kubeconfig).items()}
    subprocess.run(
        [*kubectl, "delete", "lease", "-n", "kube-system", "couchestor-leader", "--ignore-not-found"],
        timeout=60,
    )
    for kind in ("storagepolicies", "storageclasses", "persistentvolumes", "namespaces"):
        if created.get(kind):
            subprocess.run(
                [*kubectl, "delete", kind, "--wait=false", *sorted(created[kind])],
                capture_output=True,
                timeout=120,
            )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = {k: v & created.get(k, set()) for k, v in _cluster_objects(kubeconfig).items()}
        if not any(left.values()):
            return
        time.sleep(1)
    raise AssertionError(f"the guide's objects were not removed within 120 s: {left}")


def _wait_for_a_migration(env, work, background, tmp_path) -> dict:
    """The policy's status once it counts a completed migration (and its conditions are written)."""
    deadline = time.monotonic() + MIGRATION_TIMEOUT
    status: dict = {}
    while time.monotonic() < deadline:
        for proc in background:
            assert proc.poll() is None, "a long-running command of the guide exited: " + "\n".join(
                p.read_text()[-3000:] for p in sorted(tmp_path.glob("*.log"))
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
        if status.get("totalMigrations", 0) >= 1 and status.get("conditions"):
            return status
        time.sleep(2)
    logs = "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("*.log")))
    raise AssertionError(f"no migration within {MIGRATION_TIMEOUT:g}s; status {status}\n{logs}")
