"""Fixtures of the real-server tests: ``kube`` runs kubectl against the real API server and the emulator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CRDS = Path(__file__).resolve().parents[2] / "manifests" / "crds"


@pytest.fixture(params=["real", "emulator"])
def kube(request, tmp_path):
    """kubectl against the real API server and against the emulator, with both CRDs installed; what the test
    created of either kind is deleted afterwards.

    Each test gets its own kubectl cache: a discovery cache left by another server on the same loopback port
    would make kubectl send requests for resources as that server described them."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH", pytrace=False)
    server = request.getfixturevalue("real_cluster" if request.param == "real" else "apiserver_process")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(server.kubeconfig),
                "--cache-dir",
                str(tmp_path / "kube-cache"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    applied = run("apply", "--server-side", "--force-conflicts", "-f", str(CRDS / "tiermigrations.yaml"))
    assert applied.returncode == 0, applied.stderr
    applied = run("apply", "--server-side", "--force-conflicts", "-f", str(CRDS / "storagepolicies.yaml"))
    assert applied.returncode == 0, applied.stderr
    for crd in ("tiermigrations.storage.billyronks.io", "storagepolicies.storage.billyronks.io"):
        ready = run("wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}")
        assert ready.returncode == 0, ready.stderr
    run.kubeconfig = server.kubeconfig  # type: ignore[attr-defined]
    kinds = "storagepolicies.storage.billyronks.io,tiermigrations.storage.billyronks.io"
    before = set(run("get", kinds, "-o", "name").stdout.split())
    yield run
    # The cluster is shared by the session's other tests (an operator among them): leave no policy behind.
    created = sorted(set(run("get", kinds, "-o", "name").stdout.split()) - before)
    if created:
        run("delete", "--wait=false", "--ignore-not-found", *created)
