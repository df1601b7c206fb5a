"""The real control plane the suite uses as its oracle starts, answers kubectl, and survives a restart."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.kubectl


def _kubectl(real_cluster, *args: str) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH", pytrace=False)
    return subprocess.run(
        [kubectl, "--kubeconfig", str(real_cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kubectl_talks_to_the_real_server(real_cluster):
    version = _kubectl(real_cluster, "version", "-o", "json")
    assert version.returncode == 0, version.stderr
    assert '"gitVersion": "v1.28' in version.stdout


def test_apiserver_restart_keeps_the_data(real_cluster):
    created = _kubectl(real_cluster, "create", "namespace", "envtest-restart")
    assert created.returncode == 0, created.stderr
    real_cluster.stop_component("kube-apiserver")
    real_cluster.start_component("kube-apiserver")
    got = _kubectl(real_cluster, "get", "namespace", "envtest-restart", "-o", "name")
    assert got.stdout.strip() == "namespace/envtest-restart", got.stderr


async def test_a_restart_from_trio_keeps_the_data_and_the_loop_running(real_cluster):
    import trio

    created = _kubectl(real_cluster, "create", "namespace", "envtest-async-restart")
    assert created.returncode == 0, created.stderr
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.05)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        await real_cluster.stop_component_async("etcd", kill=True)
        await real_cluster.start_component_async("etcd")
        await real_cluster.stop_component_async("kube-apiserver")
        await real_cluster.start_component_async("kube-apiserver")
        nursery.cancel_scope.cancel()
    assert ticks > 10  # the event loop ran meanwhile
    got = _kubectl(real_cluster, "get", "namespace", "envtest-async-restart", "-o", "name")
    assert got.stdout.strip() == "namespace/envtest-async-restart", got.stderr
