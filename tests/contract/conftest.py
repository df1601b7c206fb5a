"""The contract suite's targets: the emulator and a real API server, in the same run.

Every test runs twice, ``[emulator]`` and ``[real]``: the real target is the session's envtest control plane
(``real_cluster``, skipped with a hint when ``KUBEBUILDER_ASSETS`` is unset), or any cluster named by
``COUCHESTOR_CONTRACT_KUBECONFIG=/path``. On a real target the suite creates only objects in its own namespace,
CRDs of a unique group, and PersistentVolumes/StorageClasses with a unique prefix (on a cluster named by the
variable, only with ``COUCHESTOR_CONTRACT_PVS=1``); everything is deleted at the end. Tests marked ``chaos``
need the emulator's ``/_sim/`` knobs and are skipped on the real target.

The HTTP client is plain httpx built from the kubeconfig here, on purpose: the suite must not depend on the
project's own Kubernetes client.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

KUBECONFIG_ENV = "COUCHESTOR_CONTRACT_KUBECONFIG"
PV_ENV = "COUCHESTOR_CONTRACT_PVS"
RUN_ID = uuid.uuid4().hex[:8]
GROUP = f"c{RUN_ID}.contract.couchestor.io"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def external() -> bool:
    return bool(os.environ.get(KUBECONFIG_ENV))


def pytest_collection_modifyitems(config, items):
    skip_chaos = pytest.mark.skip(reason="needs the emulator's /_sim/ knobs")
    skip_pv = pytest.mark.skip(reason=f"creates cluster-scoped PVs; set {PV_ENV}=1 to allow it")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("target") != "real":
            continue
        if "chaos" in item.keywords:
            item.add_marker(skip_chaos)
        if "cluster_volumes" in item.keywords and external() and not os.environ.get(PV_ENV):
            item.add_marker(skip_pv)


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster_volumes: creates cluster-scoped PersistentVolumes")


@dataclass
class Target:
    """Where the suite sends requests and how."""

    base_url: str
    verify: Any
    cert: tuple[str, str] | None
    headers: dict[str, str]
    emulator: bool

    def client(self, timeout: httpx.Timeout = TIMEOUT) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, verify=self.verify, cert=self.cert, headers=self.headers, timeout=timeout
        )


def _data_file(directory: Path, name: str, b64: str) -> str:
    path = directory / name
    path.write_bytes(base64.b64decode(b64))
    return str(path)


def target_from_kubeconfig(path: str, directory: Path) -> Target:
    """Server, CA, client certificate and token of the kubeconfig's current context."""
    doc = yaml.safe_load(Path(path).read_text())
    ctx_name = doc.get("current-context")
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next((u["user"] for u in doc.get("users") or () if u["name"] == ctx.get("user")), {}) or {}
    base = Path(path).parent
    verify: Any = True
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    elif cluster.get("certificate-authority-data"):
        verify = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
    elif cluster.get("certificate-authority"):
        verify = ssl.create_default_context(cafile=str(base / cluster["certificate-authority"]))
    cert = None
    if user.get("client-certificate-data"):
        cert = (
            _data_file(directory, "client.crt", user["client-certificate-data"]),
            _data_file(directory, "client.key", user["client-key-data"]),
        )
    elif user.get("client-certificate"):
        cert = (str(base / user["client-certificate"]), str(base / user["client-key"]))
    if cert is not None and isinstance(verify, ssl.SSLContext):
        verify.load_cert_chain(*cert)
        cert = None
    headers = {"Accept": "application/json"}
    token = user.get("token") or (
        Path(user["tokenFile"]).read_text().strip() if user.get("tokenFile") else None
    )
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if user.get("exec") or user.get("auth-provider"):
        pytest.skip("the kubeconfig uses exec/auth-provider credentials, which this plain client cannot run")
    return Target(cluster["server"].rstrip("/"), verify, cert, headers, emulator=False)


@pytest.fixture(scope="session", params=["emulator", "real"])
def target(request) -> Iterator[Target]:
    if request.param == "emulator":
        proc = request.getfixturevalue("apiserver_process")
        yield Target(proc.url, True, None, {"Accept": "application/json"}, emulator=True)
        return
    path = os.environ.get(KUBECONFIG_ENV) or str(request.getfixturevalue("real_cluster").kubeconfig)
    with tempfile.TemporaryDirectory() as tmp:
        yield target_from_kubeconfig(path, Path(tmp))


@pytest.fixture(scope="session")
def http(target) -> Iterator[httpx.Client]:
    with target.client() as client:
        yield client


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; a real cluster's controllers are asynchronous."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def ns(http) -> Iterator[str]:
    """A namespace of this run; deleted (with everything in it) at the end."""
    name = f"contract-{RUN_ID}"
    r = http.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert r.status_code == 201, r.text
    yield name
    http.delete(f"/api/v1/namespaces/{name}")


def widget_crd() -> dict[str, Any]:
    """A namespaced CRD with two versions, a status subresource, defaults, validation and printer columns."""
    spec_schema = {
        "type": "object",
        "required": ["size"],
        "x-kubernetes-validations": [
            {"rule": "self.low < self.high", "message": "low must be lower than high", "fieldPath": ".low"},
        ],
        "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 100},
            "color": {"type": "string", "enum": ["red", "green", "blue"], "default": "red"},
            "low": {"type": "integer", "default": 1},
            "high": {"type": "integer", "default": 10},
            "window": {"type": "string", "pattern": "^[0-9]+[smh]$", "default": "1h"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "options": {
                "type": "object",
                "default": {},
                "properties": {
                    "enabled": {"type": "boolean", "default": True},
                    "mode": {"type": "string", "default": "fast"},
                },
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": {
                "type": "object",
                "properties": {"phase": {"type": "string"}, "count": {"type": "integer"}},
            },
        },
    }
    columns = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    version = {
        "served": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
                "shortNames": [f"wd{RUN_ID}"],
            },
            "versions": [
                dict(version, name="v1", storage=True),
                dict(version, name="v1beta1", storage=False),
            ],
        },
    }


def gadget_crd() -> dict[str, Any]:
    """A cluster-scoped CRD without a status subresource; unknown fields preserved under spec.extra."""
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            },
            "status": {"type": "object", "properties": {"seen": {"type": "integer"}}},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }


def _established(http, name: str) -> bool:
    r = http.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conds = (r.json().get("status") or {}).get("conditions") or []
    return r.status_code == 200 and any(c["type"] == "Established" and c["status"] == "True" for c in conds)


@pytest.fixture(scope="session")
def crds(http) -> Iterator[str]:
    """Registers the Widget and Gadget CRDs of this run's unique group; yields the group; deletes them."""
    for crd in (widget_crd(), gadget_crd()):
        r = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
        assert r.status_code == 201, r.text
    for crd in (widget_crd(), gadget_crd()):
        wait_for(lambda crd=crd: _established(http, crd["metadata"]["name"]), what="CRD established")

    def served() -> bool:
        return (
            http.get(f"/apis/{GROUP}/v1").status_code == 200
            and http.get(f"/apis/{GROUP}/v1/gadgets").status_code == 200
            and http.get(f"/apis/{GROUP}/v1beta1/widgets").status_code == 200
        )

    wait_for(served, what="custom resources served")
    yield GROUP
    for crd in (widget_crd(), gadget_crd()):
        http.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def cm(name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None, **meta) -> dict:
    metadata: dict[str, Any] = {"name": name, **meta}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data or {"k": "v"}}


def widget(name: str, **spec) -> dict:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 3, **spec},
    }


def assert_status(response: httpx.Response, code: int, reason: str | None = None) -> dict:
    """The response is a metav1.Status failure with this code (and reason)."""
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])
