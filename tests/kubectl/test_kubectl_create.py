"""``kubectl create namespace|configmap|secret|serviceaccount``: kubectl sends these as protobuf.

Run against the emulator and the real API server in the same session; the objects each one stores must be the
same (server-set fields aside), so the emulator's protobuf decoding is held to the real thing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl")
if KUBECTL is None:
    pytest.skip("kubectl is not on PATH; the kubectl tests need it", allow_module_level=True)

_SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields")


@pytest.fixture(params=["emulator", "real"])
def kubeconfig(request):
    if request.param == "emulator":
        return request.getfixturevalue("apiserver_process").kubeconfig
    return request.getfixturevalue("real_cluster").kubeconfig


def _kubectl(kubeconfig, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60
    )


def _stored(kubeconfig, *args: str) -> dict:
    got = _kubectl(kubeconfig, "get", *args, "-o", "json")
    assert got.returncode == 0, got.stderr
    obj = json.loads(got.stdout)
    for key in _SERVER_SET:
        obj["metadata"].pop(key, None)
    return obj


def test_kubectl_create_sends_protobuf_and_the_objects_are_stored(kubeconfig):
    ns = f"create-{uuid.uuid4().hex[:6]}"
    commands = [
        ("namespace", ns),
        ("configmap", "settings", "-n", ns, "--from-literal=mode=fast", "--from-literal=size=3"),
        ("secret", "generic", "token", "-n", ns, "--from-literal=key=s3cret"),
        ("serviceaccount", "robot", "-n", ns),
    ]
    try:
        for command in commands:
            created = _kubectl(kubeconfig, "create", *command)
            assert created.returncode == 0, created.stderr
        assert _stored(kubeconfig, "namespace", ns) == {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        assert _stored(kubeconfig, "configmap", "settings", "-n", ns) == {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns},
            "data": {"mode": "fast", "size": "3"},
        }
        assert _stored(kubeconfig, "secret", "token", "-n", ns) == {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "token", "namespace": ns},
            "data": {"key": "czNjcmV0"},
            "type": "Opaque",
        }
        assert _stored(kubeconfig, "serviceaccount", "robot", "-n", ns) == {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "robot", "namespace": ns},
        }
    finally:
        _kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false")


def test_a_protobuf_body_the_emulator_cannot_decode_is_refused_clearly(apiserver_process):
    """Bodies of other kinds are refused with 415 naming what is accepted, never a traceback."""
    import httpx

    body = b"k8s\x00" + bytes([0x0A, 0x12, 0x0A, 0x07]) + b"apps/v1" + bytes([0x12, 0x07]) + b"Deploym"
    r = httpx.post(
        f"{apiserver_process.url}/apis/apps/v1/namespaces/default/deployments",
        content=body,
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        timeout=10,
    )
    assert r.status_code == 415, r.text
    assert "Namespace, ConfigMap, Secret, ServiceAccount" in r.json()["message"]
    r = httpx.post(
        f"{apiserver_process.url}/api/v1/namespaces",
        content=b"k8s\x00\x0a\xff",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("error decoding protobuf body: ")
