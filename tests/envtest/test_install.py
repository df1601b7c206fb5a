"""Installing the operator the way a platform team does, against the real API server: `kubectl apply -k` of the
kustomize base and its overlays, and the pod passing the `restricted` Pod Security Standard."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.kubectl

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

#: What `kubectl apply -k manifests/operator` installs (Kind/name).
BASE = {
    "CustomResourceDefinition/storagepolicies.storage.billyronks.io",
    "CustomResourceDefinition/tiermigrations.storage.billyronks.io",
    "ServiceAccount/couchestor",
    "ClusterRole/couchestor",
    "ClusterRoleBinding/couchestor",
    "Role/couchestor-leader-election",
    "RoleBinding/couchestor-leader-election",
    "Deployment/couchestor",
    "PodDisruptionBudget/couchestor",
    "Service/couchestor",
}


def _kubectl(cluster: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH", pytrace=False)
    cmd = [kubectl, *(["--kubeconfig", str(cluster.kubeconfig)] if cluster else []), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _build(folder: str) -> list[dict[str, Any]]:
    """`kubectl kustomize manifests/<folder>` as objects (needs no cluster)."""
    return [d for d in yaml.safe_load_all(_ok(_kubectl(None, "kustomize", str(MANIFESTS / folder)))) if d]


def _keys(docs: list[dict[str, Any]]) -> set[str]:
    return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}


def _by_key(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_kustomize_base_and_overlays_build_what_they_say():
    base = _build("operator")
    assert _keys(base) == BASE
    # Every object of the base is the file it came from (kustomize adds nothing of its own).
    files = {
        f"{d['kind']}/{d['metadata']['name']}": d
        for name in (
            "operator/rbac.yaml",
            "operator/deployment.yaml",
            "crds/storagepolicies.yaml",
            "crds/tiermigrations.yaml",
        )
        for d in yaml.safe_load_all((MANIFESTS / name).read_text())
        if d
    }
    assert _by_key(base) == files

    monitoring = _build("overlays/monitoring")
    assert _keys(monitoring) == BASE | {"ServiceMonitor/couchestor", "PrometheusRule/couchestor"}
    rule = _by_key(monitoring)["PrometheusRule/couchestor"]
    plain = yaml.safe_load((MANIFESTS / "prometheus" / "couchestor.rules.yaml").read_text())
    assert rule["spec"] == plain, "the PrometheusRule and the plain rule file differ"

    rest = _build("overlays/mayastor-rest")
    assert _keys(rest) == BASE
    env = _env(_by_key(rest)["Deployment/couchestor"])
    assert env["COUCHESTOR_BACKEND"] == "mayastor-rest"
    assert env["COUCHESTOR_MAYASTOR_REST_URL"].startswith("http")
    assert "COUCHESTOR_PROMETHEUS_URL" in env  # the base's settings are kept, not replaced
    assert "COUCHESTOR_BACKEND" not in _env(_by_key(base)["Deployment/couchestor"])


def test_apply_k_installs_the_operator_on_a_real_api_server(real_cluster):
    dry = _ok(_kubectl(real_cluster, "apply", "-k", str(MANIFESTS / "operator"), "--dry-run=server"))
    assert dry.count("(server dry run)") == len(BASE), dry
    # For real: the CRD is served and RBAC exists (the Deployment is stored; no node runs its pods here).
    applied = _ok(_kubectl(real_cluster, "apply", "-k", str(MANIFESTS / "operator")))
    assert len(applied.strip().splitlines()) == len(BASE), applied
    _ok(
        _kubectl(
            real_cluster,
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            "crd/storagepolicies.storage.billyronks.io",
        )
    )
    stored = json.loads(_ok(_kubectl(real_cluster, "get", "clusterrole", "couchestor", "-o", "json")))
    assert any("storagepolicies" in r["resources"] for r in stored["rules"])
    # The Mayastor 2.x overlay changes the Deployment only, and the server accepts the change.
    rest = _ok(
        _kubectl(
            real_cluster, "apply", "-k", str(MANIFESTS / "overlays" / "mayastor-rest"), "--dry-run=server"
        )
    )
    changed = [line for line in rest.splitlines() if not line.endswith("unchanged (server dry run)")]
    # kubectl always resends a PodDisruptionBudget's selector (patch strategy "replace"): "configured".
    assert changed == [
        "deployment.apps/couchestor configured (server dry run)",
        "poddisruptionbudget.policy/couchestor configured (server dry run)",
    ], rest
    # The installed CRD defaults an empty spec and still refuses crossed watermarks.
    policy = {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "metadata": {"name": "install"},
    }
    created = json.loads(
        _ok(
            _kubectl(
                real_cluster, "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(policy)
            )
        )
    )
    assert (created["spec"]["lowWatermarkIOPS"], created["spec"]["highWatermarkIOPS"]) == (500, 5000)
    policy["spec"] = {"lowWatermarkIOPS": 6000}
    refused = _kubectl(real_cluster, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(policy))
    assert refused.returncode != 0
    assert "lowWatermarkIOPS must be lower than highWatermarkIOPS" in refused.stderr


def _restricted_namespace(cluster: Any, name: str) -> None:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                # Enforce judges Pods only; warn also judges the pod template of a Deployment.
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/warn-version": "latest",
            },
        },
    }
    _ok(_kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(namespace)))
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "couchestor", "namespace": name},
    }
    _ok(_kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(account)))


def _pod_of(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    template = copy.deepcopy(deployment["spec"]["template"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "couchestor-restricted", "namespace": namespace, **template["metadata"]},
        "spec": template["spec"],
    }


def _server_apply(cluster: Any, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return _kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=couchestor-test",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps(obj),
    )


@pytest.mark.parametrize("folder", ["operator", "overlays/mayastor-rest"])
def test_the_pod_passes_the_restricted_pod_security_standard(real_cluster, folder):
    namespace = "couchestor-restricted"
    _restricted_namespace(real_cluster, namespace)
    deployment = copy.deepcopy(_by_key(_build(folder))["Deployment/couchestor"])
    deployment["metadata"]["namespace"] = namespace
    answer = _server_apply(real_cluster, deployment)
    assert answer.returncode == 0, answer.stderr
    assert "serverside-applied (server dry run)" in answer.stdout
    assert answer.stderr == "", answer.stderr  # a PodSecurity warning would be here
    pod = _server_apply(real_cluster, _pod_of(deployment, namespace))
    assert pod.returncode == 0, pod.stderr
    assert pod.stderr == "", pod.stderr

    # The check can fail: the same pod allowed to escalate privileges is refused, the Deployment warned about.
    loose = copy.deepcopy(deployment)
    loose["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    warned = _server_apply(real_cluster, loose)
    assert 'would violate PodSecurity "restricted:latest"' in warned.stderr, warned.stderr
    refused = _server_apply(real_cluster, _pod_of(loose, namespace))
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
    assert "allowPrivilegeEscalation" in refused.stderr
