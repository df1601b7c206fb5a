"""The shipped manifests, applied with the real kubectl to the API server emulator, are accepted and stored.

kubectl validates each object against the server's OpenAPI schema before sending it, and the emulator checks
the StoragePolicy against the CRD's schema. The emulator serves only the kinds the operator works with; the
workload kinds of the examples and test suites (Job, Pod, PodTemplate, Deployment, StatefulSet, Service) are
not among them, so those objects are left out here and checked structurally in test_manifests.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from couchestor.volumes.cluster import KubectlCluster
from couchestor.volumes.suite import DEFAULT_NAMESPACE

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[2] / "manifests"
SERVED = {"Namespace", "ConfigMap", "PersistentVolumeClaim", "StorageClass", "StoragePolicy"}
NOT_SERVED = {"Job", "Pod", "PodTemplate", "Deployment", "StatefulSet", "Service"}
NAMESPACE = "volume-templates"


def _documents(relative: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "volumes" / relative).read_text()) if d is not None]


def _served(relative: str) -> list[dict[str, Any]]:
    documents = _documents(relative)
    assert {d["kind"] for d in documents} <= SERVED | NOT_SERVED, "a kind this test does not know about"
    return [d for d in documents if d["kind"] in SERVED]


def _in_namespace(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The templates leave the namespace to `kubectl apply -n`; the List we send says it explicitly."""
    out = []
    for doc in documents:
        if doc["kind"] == "PersistentVolumeClaim" and "namespace" not in doc["metadata"]:
            doc = {**doc, "metadata": {**doc["metadata"], "namespace": NAMESPACE}}
        out.append(doc)
    return out


@pytest.fixture
def kubectl(apiserver):
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed")
    return KubectlCluster(kubeconfig=str(apiserver.kubeconfig), call_timeout=30)


async def _names(cluster: KubectlCluster, resource: str, namespace: str | None = None) -> dict[str, dict]:
    args = ["get", resource, "-o", "json"] + (["-n", namespace] if namespace else [])
    items = json.loads(await cluster._run(args))["items"]
    return {item["metadata"]["name"]: item for item in items}


async def test_templates_and_examples_are_accepted_and_stored(kubectl):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    await kubectl.apply([namespace])

    classes = _served("templates/storage-classes.yaml")
    await kubectl.apply(classes)
    stored_classes = await _names(kubectl, "storageclasses")
    for sc in classes:
        stored = stored_classes[sc["metadata"]["name"]]
        assert stored["provisioner"] == sc["provisioner"]
        assert stored.get("parameters") == sc.get("parameters")
        assert stored["reclaimPolicy"] == sc["reclaimPolicy"]
        assert stored["metadata"]["labels"] == sc["metadata"]["labels"]

    claims: list[dict[str, Any]] = []
    for relative in (
        "templates/compute-workload-pv.yaml",
        "templates/data-storage-pv.yaml",
        "templates/backup-pv.yaml",
        "examples/ai-workload-with-storage.yaml",
        "examples/distributed-storage.yaml",
    ):
        documents = _in_namespace(_served(relative))
        await kubectl.apply(documents)
        claims += documents
    stored_claims = await _names(kubectl, "persistentvolumeclaims", NAMESPACE)
    assert set(stored_claims) == {c["metadata"]["name"] for c in claims}
    for claim in claims:
        stored = stored_claims[claim["metadata"]["name"]]
        assert stored["metadata"]["labels"] == claim["metadata"]["labels"]
        assert stored["spec"]["storageClassName"] in stored_classes
        assert stored["spec"]["accessModes"] == claim["spec"]["accessModes"]


async def test_the_example_policy_is_accepted_by_the_shipped_crd(kubectl):
    crd = yaml.safe_load((ROOT / "crds" / "storagepolicies.yaml").read_text())
    await kubectl.apply([crd])
    (policy,) = _served("examples/storage-policy.yaml")
    await kubectl.apply([policy])
    stored = await kubectl.get("storagepolicy", policy["metadata"]["name"], None)
    assert stored is not None
    assert stored["spec"] == policy["spec"]


async def test_the_suites_served_objects_are_accepted(kubectl):
    for relative in ("tests/automated-test-suite.yaml", "tests/volume-attachment-tests.yaml"):
        await kubectl.apply(_served(relative))
    stored_claims = await _names(kubectl, "persistentvolumeclaims", DEFAULT_NAMESPACE)
    assert {"vt-fast-ssd", "vt-standard-storage", "vt-backup-storage", "attach-shared"} <= set(stored_claims)
    config = await kubectl.get("configmap", "couchestor-volume-tests", DEFAULT_NAMESPACE)
    assert config is not None
    assert {"suite.fio", "run-fio.sh", "integrity-write.sh", "integrity-verify.sh"} == set(config["data"])
