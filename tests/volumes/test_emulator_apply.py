"""The shipped manifests, applied to the API server emulator, are accepted and stored as written.

Each test runs twice: through the project's own Kubernetes client (always), and through the real kubectl where
it is installed (kubectl validates each object against the server's OpenAPI documents before sending it). The
emulator checks the StoragePolicy against the CRD's schema. It serves only the kinds the operator works with;
the workload kinds of the examples and test suites (Job, Pod, PodTemplate, Deployment, StatefulSet, Service)
are not among them, so those objects are left out here and checked structurally in test_manifests.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from couchestor.kube import resources as R
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.errors import AlreadyExists, NotFound
from couchestor.volumes.cluster import KubectlCluster
from couchestor.volumes.suite import CONFIG_MAP_NAME, DEFAULT_NAMESPACE, SCRIPTS

ROOT = Path(__file__).resolve().parents[2] / "manifests"
RESOURCES = {
    "Namespace": R.NAMESPACE,
    "ConfigMap": R.CONFIG_MAP,
    "PersistentVolumeClaim": R.PERSISTENT_VOLUME_CLAIM,
    "StorageClass": R.STORAGE_CLASS,
    "StoragePolicy": R.STORAGE_POLICY,
    "CustomResourceDefinition": R.CUSTOM_RESOURCE_DEFINITION,
}
SERVED = set(RESOURCES) - {"CustomResourceDefinition"}
NOT_SERVED = {"Job", "Pod", "PodTemplate", "Deployment", "StatefulSet", "Service"}
NAMESPACE = "volume-templates"


def _documents(relative: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "volumes" / relative).read_text()) if d is not None]


def _served(relative: str) -> list[dict[str, Any]]:
    documents = _documents(relative)
    assert {d["kind"] for d in documents} <= SERVED | NOT_SERVED, "a kind this test does not know about"
    return [d for d in documents if d["kind"] in SERVED]


def _in_namespace(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The templates leave the namespace to `kubectl apply -n`; what we send says it explicitly."""
    out = []
    for doc in documents:
        if doc["kind"] == "PersistentVolumeClaim" and "namespace" not in doc["metadata"]:
            doc = {**doc, "metadata": {**doc["metadata"], "namespace": NAMESPACE}}
        out.append(doc)
    return out


class _ClientApplier:
    """Creates objects with the project's KubeClient; an object that exists already is merge-patched."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def apply(self, documents: Sequence[Mapping[str, Any]]) -> None:
        for doc in documents:
            res = RESOURCES[doc["kind"]]
            namespace = doc["metadata"].get("namespace")
            try:
                await self.client.create(res, doc, namespace, type=dict)
            except AlreadyExists:
                await self.client.merge_patch(res, doc["metadata"]["name"], doc, namespace, type=dict)

    async def stored(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        try:
            return await self.client.get(RESOURCES[kind], name, namespace, type=dict)
        except NotFound:
            return None


class _KubectlApplier:
    """``kubectl apply`` of the objects, and ``kubectl get`` to read them back."""

    def __init__(self, cluster: KubectlCluster) -> None:
        self.cluster = cluster

    async def apply(self, documents: Sequence[Mapping[str, Any]]) -> None:
        await self.cluster.apply(documents)

    async def stored(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        return await self.cluster.get(kind.lower(), name, namespace)


@pytest.fixture(params=["client", pytest.param("kubectl", marks=pytest.mark.kubectl)])
async def applier(request, apiserver):
    if request.param == "kubectl":
        if shutil.which("kubectl") is None:
            pytest.skip("kubectl is not on PATH; the project's own client applied the manifests")
        yield _KubectlApplier(KubectlCluster(kubeconfig=str(apiserver.kubeconfig), call_timeout=30))
        return
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0, timeout=30) as client:
        yield _ClientApplier(client)


async def _stored(applier, doc: Mapping[str, Any]) -> dict[str, Any]:
    stored = await applier.stored(doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace"))
    assert stored is not None, (doc["kind"], doc["metadata"]["name"])
    return stored


async def test_templates_and_examples_are_accepted_and_stored(applier):
    await applier.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])

    classes = _served("templates/storage-classes.yaml")
    assert len(classes) == 5
    await applier.apply(classes)
    for sc in classes:
        stored = await _stored(applier, sc)
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
        await applier.apply(documents)
        claims += documents
    assert len(claims) >= 8
    for claim in claims:
        stored = await _stored(applier, claim)
        assert stored["metadata"]["labels"] == claim["metadata"]["labels"]
        assert stored["spec"]["storageClassName"] in {sc["metadata"]["name"] for sc in classes}
        assert stored["spec"]["accessModes"] == claim["spec"]["accessModes"]
        assert stored["spec"]["resources"] == claim["spec"]["resources"]


async def test_the_example_policies_are_accepted_by_the_shipped_crd(applier):
    crd = yaml.safe_load((ROOT / "crds" / "storagepolicies.yaml").read_text())
    await applier.apply([crd])
    policies = _served("examples/storage-policy.yaml")
    assert policies
    await applier.apply(policies)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    defaults = {name: prop["default"] for name, prop in schema.items() if "default" in prop}
    for policy in policies:
        stored = await _stored(applier, policy)
        sent = policy["spec"]
        assert {name: stored["spec"].get(name) for name in sent} == sent  # nothing pruned or changed
        added = {name: value for name, value in stored["spec"].items() if name not in sent}
        assert added == {name: defaults[name] for name in added}  # only the CRD's defaults were filled in


async def test_the_suites_served_objects_are_accepted(applier):
    for relative in ("tests/automated-test-suite.yaml", "tests/volume-attachment-tests.yaml"):
        documents = _served(relative)
        await applier.apply(documents)
        for doc in documents:
            await _stored(applier, doc)
    for claim in (
        "vt-fast-ssd",
        "vt-backup-storage",
        "attach-standard-storage",
        "attach-standard-storage-shared",
    ):
        assert await applier.stored("PersistentVolumeClaim", claim, DEFAULT_NAMESPACE) is not None
    config = await applier.stored("ConfigMap", CONFIG_MAP_NAME, DEFAULT_NAMESPACE)
    assert config is not None
    assert config["data"] == SCRIPTS
