"""Every manifest under manifests/ applied with the real kubectl to a real API server.

The CRDs are installed for real (the API server validates their schemas and every default, which the emulator
is held to); every other file is applied with a server-side dry run, since no controller here would run what it
creates (its Namespaces are created for real first, so the objects inside them can be checked). A
kustomization is built with ``kubectl kustomize`` and its output dry-run the same way. New files are picked up
by the glob, so a manifest the real server refuses fails here. A StoragePolicy that breaks a rule is refused
with the rule's message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_pressure_idle_fields import CASES as LIMIT_CASES, body as limit_body
from tests.unit.test_warm_rule import CASES as WARM_CASES, body as warm_body

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[2] / "manifests"
KUBECTL = shutil.which("kubectl")
if KUBECTL is None:
    pytest.skip("kubectl is not on PATH; the real-server manifest tests need it", allow_module_level=True)

#: Kinds of other projects our manifests use, installed as schema-less CRDs (a user of those files has the real
#: ones, from the Prometheus Operator).
FOREIGN_GROUPS = ("monitoring.coreos.com",)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _objects(path: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects of a file (data files such as volumes/thresholds.yaml have none)."""
    return [d for d in _documents(path) if "apiVersion" in d and "kind" in d]


def _manifest_files() -> list[Path]:
    files = sorted(p for p in ROOT.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    return [p for p in files if _objects(p) and p.parent != ROOT / "crds"]


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache = cache
        self.created_namespaces: list[str] = []

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache), *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc


def _foreign_crd(group: str, kind: str) -> dict[str, Any]:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def kubectl(real_cluster, tmp_path_factory):
    """kubectl on the real server, with every shipped CRD (and the foreign kinds the manifests use) installed."""
    run = Kubectl(real_cluster.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))
    crds = [d for p in sorted((ROOT / "crds").glob("*.yaml")) for d in _objects(p)]
    applied = run("apply", "-f", str(ROOT / "crds")).stdout
    assert len(applied.strip().splitlines()) == len(crds), applied
    foreign = {
        (d["apiVersion"].split("/")[0], d["kind"])
        for p in _manifest_files()
        for d in _objects(p)
        if d["apiVersion"].split("/")[0] in FOREIGN_GROUPS
    }
    for group, kind in sorted(foreign):
        run("apply", "-f", "-", stdin=json.dumps(_foreign_crd(group, kind)))
    names = [d["metadata"]["name"] for d in crds] + [f"{k.lower()}s.{g}" for g, k in sorted(foreign)]
    run("wait", "--for=condition=established", "--timeout=60s", *(f"crd/{n}" for n in names))
    yield run
    if run.created_namespaces:
        run("delete", "namespace", "--wait=false", *run.created_namespaces, check=False)


def test_every_shipped_crd_is_installed_and_served(kubectl):
    crds = [d for p in sorted((ROOT / "crds").glob("*.yaml")) for d in _objects(p)]
    assert crds
    for crd in crds:
        stored = json.loads(kubectl("get", "crd", crd["metadata"]["name"], "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
        assert conditions.get("Established") == "True", crd["metadata"]["name"]
        assert conditions.get("NamesAccepted") == "True", crd["metadata"]["name"]
    resources = kubectl("api-resources", "--api-group=storage.billyronks.io", "-o", "name").stdout.split()
    shipped = sorted(c["metadata"]["name"] for c in crds if c["spec"]["group"] == "storage.billyronks.io")
    assert shipped
    assert sorted(resources) == shipped


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_is_accepted_by_the_real_api_server(kubectl, path):
    docs = _objects(path)
    if any(d["kind"] == "Kustomization" for d in docs):
        built = kubectl("kustomize", str(path.parent)).stdout
        docs = [d for d in yaml.safe_load_all(built) if isinstance(d, dict)]
        source = ["-f", "-"]
        stdin: str | None = built
    else:
        source, stdin = ["-f", str(path)], None
    # The namespaces the file creates or names (a user has or creates them) exist for real.
    for doc in docs:
        name = doc["metadata"]["name"] if doc["kind"] == "Namespace" else doc["metadata"].get("namespace")
        if name and kubectl("get", "namespace", name, check=False).returncode != 0:
            kubectl("create", "namespace", name)
            kubectl.created_namespaces.append(name)
    dry = kubectl("apply", "--dry-run=server", *source, stdin=stdin, check=False)
    assert dry.returncode == 0, f"{path.relative_to(ROOT)} refused by kube-apiserver:\n{dry.stderr}"
    assert dry.stdout.count("(server dry run)") == len(docs), dry.stdout


def test_example_policies_are_stored_with_their_defaults(kubectl):
    examples = ROOT / "examples" / "storagepolicies.yaml"
    names = [d["metadata"]["name"] for d in _objects(examples)]
    kubectl("apply", "-f", str(examples))
    try:
        for name in names:
            spec = json.loads(kubectl("get", "sp", name, "-o", "json").stdout)["spec"]
            assert spec["lowWatermarkIOPS"] < spec["highWatermarkIOPS"], name
            assert {"samplingWindow", "cooldownPeriod", "maxConcurrentMigrations"} <= spec.keys(), name
    finally:
        kubectl("delete", "-f", str(examples), "--wait=false", check=False)


def test_a_policy_without_spec_gets_every_default(kubectl):
    name = f"bare-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": "storage.billyronks.io/v1", "kind": "StoragePolicy", "metadata": {"name": name}}
    kubectl("apply", "-f", "-", stdin=json.dumps(body))
    try:
        spec = json.loads(kubectl("get", "sp", name, "-o", "json").stdout)["spec"]
        assert spec["lowWatermarkIOPS"] == 500
        assert spec["highWatermarkIOPS"] == 5000
        assert spec["storageClassName"] == "mayastor"
    finally:
        kubectl("delete", "sp", name, "--wait=false", check=False)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"highWatermarkIOPS": 100, "lowWatermarkIOPS": 500},
            'spec.lowWatermarkIOPS: Invalid value: "object": lowWatermarkIOPS must be lower than '
            "highWatermarkIOPS",
        ),
        (
            {"highWatermarkIOPS": 1000, "lowWatermarkIOPS": 100, "warmWatermarkIOPS": 5000},
            "warmWatermarkIOPS must be 0 (no warm tier) or lie between lowWatermarkIOPS and highWatermarkIOPS",
        ),
        ({"highWatermarkIOPS": -5}, "spec.highWatermarkIOPS: Invalid value: -5"),
        ({"maxConcurrentMigrations": 0}, "spec.maxConcurrentMigrations: Invalid value: 0"),
        (
            {"maxTierFillPercent": 0},
            'spec.maxTierFillPercent: Invalid value: "object": maxTierFillPercent must lie between 1 and 100',
        ),
    ],
)
def test_a_policy_breaking_a_rule_is_refused(kubectl, spec, message):
    body = {"apiVersion": "storage.billyronks.io/v1", "kind": "StoragePolicy", "metadata": {"name": "bad"}}
    body["spec"] = spec
    proc = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert proc.returncode != 0, proc.stdout
    assert 'The StoragePolicy "bad" is invalid' in proc.stderr
    assert message in proc.stderr


@pytest.mark.parametrize(("spec", "refused", "labels"), WARM_CASES)
def test_the_warm_tier_rule_is_the_compilers(kubectl, spec, refused, labels):
    """The real server accepts and refuses exactly what the compiler and the emulator do (tests/unit/test_warm_rule.py)."""
    name = f"warm-{uuid.uuid4().hex[:6]}"
    proc = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(warm_body(spec, name)), check=False)
    try:
        if refused is None:
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode != 0, proc.stdout
            assert f"{refused}: Invalid value" in proc.stderr
    finally:
        kubectl("delete", "sp", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.mark.parametrize(("spec", "refused"), LIMIT_CASES)
def test_the_pressure_and_idle_fields_are_the_compilers(kubectl, spec, refused):
    """The real server accepts and refuses ``maxTierFillPercent`` and ``coldAfterIdle`` exactly as the compiler
    and the emulator do (tests/unit/test_pressure_idle_fields.py), and stores them as given."""
    name = f"limits-{uuid.uuid4().hex[:6]}"
    proc = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(limit_body(spec, name)), check=False)
    try:
        if refused is None:
            assert proc.returncode == 0, proc.stderr
            stored = json.loads(kubectl("get", "sp", name, "-o", "json").stdout)["spec"]
            assert {k: stored[k] for k in spec} == spec
        else:
            assert proc.returncode != 0, proc.stdout
            assert refused in proc.stderr
            assert "Invalid value" in proc.stderr or "Required value" in proc.stderr
    finally:
        kubectl("delete", "sp", name, "--wait=false", "--ignore-not-found", check=False)
