"""The shipped manifests: every YAML parses; CRDs, example policies and the operator's own objects (RBAC,
Deployment, PodDisruptionBudget, Service, and in operator/monitoring the ServiceMonitor and PrometheusRule) apply
with the real kubectl; the operator's
Deployment and RBAC agree with the code they run (checked against the real CLI parser and settings, since the
emulator stores a Deployment but runs no pod).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from couchestor import settings as settings_mod
from couchestor.cli import build_parser

ROOT = Path(__file__).resolve().parents[2] / "manifests"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


#: The operator's files: the base and the monitoring component (kustomize files are named ``Kustomization``,
#: so ``kubectl apply -f`` on these folders sees Kubernetes objects only).
OPERATOR_DIRS = (ROOT / "operator", ROOT / "operator" / "monitoring")


def _operator() -> dict[str, dict[str, Any]]:
    """The documents of manifests/operator and its monitoring component by ``Kind/name``."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for d in OPERATOR_DIRS for p in d.glob("*.yaml")):
        for doc in _documents(path):
            key = f"{doc['kind']}/{doc['metadata']['name']}"
            assert key not in out, f"{key} defined twice"
            out[key] = doc
    return out


# --- Every file ------------------------------------------------------------------------------------------------


def test_every_manifest_parses_and_names_its_objects():
    paths = sorted(ROOT.rglob("*.yaml")) + sorted(ROOT.rglob("*.yml"))
    assert len(paths) >= 6
    for path in paths:
        try:
            documents = _documents(path)
        except yaml.YAMLError as exc:
            pytest.fail(f"{path.relative_to(ROOT)} is not valid YAML: {exc}")
        for doc in documents:
            where = f"{path.relative_to(ROOT)}: {doc.get('kind')}"
            assert isinstance(doc, dict), where
            if "apiVersion" not in doc:
                # Data files (e.g. volumes/thresholds.yaml) are not Kubernetes objects.
                continue
            assert isinstance(doc.get("kind"), str), where
            assert doc["kind"], where
            meta = doc.get("metadata") or {}
            assert isinstance(meta.get("name") or meta.get("generateName"), str), where


# --- kubectl against the emulator ------------------------------------------------------------------------------


@pytest.fixture
def kubectl(apiserver_process, tmp_path):
    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        cmd = [
            KUBECTL,
            "--kubeconfig",
            str(apiserver_process.kubeconfig),
            "--cache-dir",
            str(tmp_path),
            *args,
        ]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run


@pytest.mark.kubectl
@needs_kubectl
def test_crds_and_example_policies_apply_with_kubectl(kubectl):
    crds = [d for p in sorted((ROOT / "crds").glob("*.yaml")) for d in _documents(p)]
    assert {d["kind"] for d in crds} == {"CustomResourceDefinition"}
    # Server-side dry run first (validated, not stored), then for real; apply is idempotent on a shared server.
    dry = kubectl("apply", "--dry-run=server", "-f", str(ROOT / "crds")).stdout
    assert dry.count("(server dry run)") == len(crds), dry
    kubectl("apply", "-f", str(ROOT / "crds"))
    names = [d["metadata"]["name"] for d in crds]
    kubectl("wait", "--for=condition=established", "--timeout=30s", *(f"crd/{n}" for n in names))

    examples = [d for p in sorted((ROOT / "examples").glob("*.yaml")) for d in _documents(p)]
    assert examples
    kubectl("apply", "-f", str(ROOT / "examples"))
    listed = kubectl("get", "sp", "-o", "name").stdout.split()
    for doc in examples:
        assert f"storagepolicy.storage.billyronks.io/{doc['metadata']['name']}" in listed


def _prometheus_operator_crd(kind: str) -> dict[str, Any]:
    """A Prometheus Operator CRD (ServiceMonitor, PrometheusRule) as far as applying ours needs it (a user of
    those manifests has the real ones, installed with the Prometheus Operator)."""
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
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


@pytest.mark.kubectl
@needs_kubectl
def test_operator_manifests_apply_with_kubectl(kubectl):
    for kind in ("ServiceMonitor", "PrometheusRule"):
        kubectl("apply", "-f", "-", stdin=json.dumps(_prometheus_operator_crd(kind)))
        kubectl(
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            f"crd/{kind.lower()}s.monitoring.coreos.com",
        )
    docs = [d for p in sorted(p for d in OPERATOR_DIRS for p in d.glob("*.yaml")) for d in _documents(p)]
    folders = [arg for d in OPERATOR_DIRS for arg in ("-f", str(d))]
    dry = kubectl("apply", "--dry-run=server", *folders).stdout
    assert dry.count("(server dry run)") == len(docs), dry
    applied = kubectl("apply", *folders).stdout
    assert len(applied.strip().splitlines()) == len(docs), applied
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        namespace = doc["metadata"].get("namespace")
        args = ["get", kind.lower(), name, "-o", "json", *(["-n", namespace] if namespace else [])]
        stored = json.loads(kubectl(*args).stdout)
        assert stored["metadata"]["labels"] == doc["metadata"].get("labels", stored["metadata"]["labels"])
        for field in ("spec", "rules", "subjects", "roleRef"):
            if field in doc:
                assert field in stored, f"{kind}/{name} lost its {field}"
    deployment = json.loads(
        kubectl("get", "deployment", "couchestor", "-n", "kube-system", "-o", "json").stdout
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == _container()["resources"]
    # Applying again changes nothing but the PodDisruptionBudget's selector, which kubectl always resends
    # (its patch strategy is "replace"), as against a real API server.
    again = kubectl("apply", *folders).stdout.splitlines()
    assert [line for line in again if not line.endswith(" unchanged")] == [
        "poddisruptionbudget.policy/couchestor configured"
    ], again


@pytest.mark.kubectl
@needs_kubectl
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"highWatermarkIOPS": 100, "lowWatermarkIOPS": 500},
            "lowWatermarkIOPS must be lower than highWatermarkIOPS",
        ),
        ({"highWatermarkIOPS": -5}, "highWatermarkIOPS"),
        ({"maxConcurrentMigrations": 0}, "maxConcurrentMigrations"),
    ],
)
def test_crd_rejects_a_bad_policy_with_a_clear_message(kubectl, spec, message):
    kubectl("apply", "-f", str(ROOT / "crds" / "storagepolicies.yaml"))
    kubectl(
        "wait", "--for=condition=established", "--timeout=30s", "crd/storagepolicies.storage.billyronks.io"
    )
    body = {"apiVersion": "storage.billyronks.io/v1", "kind": "StoragePolicy", "metadata": {"name": "bad"}}
    body["spec"] = spec
    proc = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert proc.returncode != 0
    assert 'The StoragePolicy "bad" is invalid' in proc.stderr
    assert message in proc.stderr


# --- The operator's Deployment and RBAC ------------------------------------------------------------------------


def _container() -> dict[str, Any]:
    deployment = _operator()["Deployment/couchestor"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_operator_objects_are_the_documented_set():
    assert set(_operator()) == {
        "ServiceAccount/couchestor",
        "ClusterRole/couchestor",
        "ClusterRoleBinding/couchestor",
        "Role/couchestor-leader-election",
        "RoleBinding/couchestor-leader-election",
        "Deployment/couchestor",
        "PodDisruptionBudget/couchestor",
        "Service/couchestor",
        "ServiceMonitor/couchestor",
        "PrometheusRule/couchestor",
    }
    for key, doc in _operator().items():
        assert doc["metadata"]["labels"]["app"] == "couchestor", key
        if not key.startswith("Cluster"):
            assert doc["metadata"]["namespace"] == "kube-system", key


def test_deployment_is_locked_down_and_probed_on_the_metrics_port():
    deployment = _operator()["Deployment/couchestor"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "couchestor"}
    assert pod["metadata"]["labels"]["app"] == "couchestor"  # what `kubectl logs -l app=couchestor` selects
    assert pod["spec"]["serviceAccountName"] == "couchestor"
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container()
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    assert args.metrics_addr.rsplit(":", 1)[1] == str(port)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_deployment_args_and_environment_are_settings_the_operator_accepts():
    container = _container()
    known = {flag.env for flag in settings_mod.FLAGS}
    environ = {}
    for var in container["env"]:
        assert var["name"] in known, f"{var['name']} is not a couchestor setting"
        # A fieldRef is resolved by the kubelet; a pod name and namespace are plain strings.
        environ[var["name"]] = var.get("value", "kube-system")
    settings = settings_mod.resolve(build_parser().parse_args(container["args"]), environ)
    assert settings.leader_election
    # The leader-election Role is where the operator looks for its Lease: its own namespace.
    namespace_var = next(v for v in container["env"] if v["name"] == "COUCHESTOR_NAMESPACE")
    assert namespace_var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert settings.namespace == _operator()["Role/couchestor-leader-election"]["metadata"]["namespace"]


# What the operator calls, by API group, resource and verb (see couchestor/operator.py, tiering/reconcile.py,
# migration/, mayastor_rest/, kube/events.py, leader.py and preflight.py). The replication controllers
# (--enable-replication, off in the shipped Deployment) are not covered.
REQUIRED_CLUSTER = {
    ("storage.billyronks.io", "storagepolicies"): {"get", "list", "watch"},
    ("storage.billyronks.io", "storagepolicies/status"): {"patch"},
    # TierMigrations (tiering/reconcile.py, migration/runner.py): created per move, the finalizer added and
    # removed after a fresh get, finished ones deleted beyond the history limit; status patched.
    ("storage.billyronks.io", "tiermigrations"): {"get", "list", "watch", "create", "patch", "delete"},
    ("storage.billyronks.io", "tiermigrations/status"): {"patch"},
    # get: the Mayastor 2.x backend re-reads the PV that carries the intent (mayastor_rest/backend.py).
    ("", "persistentvolumes"): {"get", "list", "watch", "patch"},
    # patch: the replication controllers label the members of a Dell replication group (replication/writes.py).
    ("", "persistentvolumeclaims"): {"list", "watch", "patch"},
    ("openebs.io", "mayastorvolumes"): {"get", "list", "watch", "patch"},
    ("openebs.io", "diskpools"): {"list", "watch"},
    ("", "events"): {"create"},
    # --enable-replication (couchestor/replication/): reflectors list+watch; finalizers and status by PATCH;
    # backend objects created, patched and deleted (writes.py).
    ("replication.unified.io", "volumereplications"): {"list", "watch", "patch"},
    ("replication.unified.io", "volumegroupreplications"): {"list", "watch", "patch"},
    ("replication.unified.io", "volumereplications/status"): {"patch"},
    ("replication.unified.io", "volumegroupreplications/status"): {"patch"},
    # Owner references with blockOwnerDeletion (writes.py) under OwnerReferencesPermissionEnforcement.
    ("replication.unified.io", "volumereplications/finalizers"): {"update"},
    ("replication.unified.io", "volumegroupreplications/finalizers"): {"update"},
    ("replication.unified.io", "volumereplicationclasses"): {"list", "watch"},
    ("replication.unified.io", "volumegroupreplicationclasses"): {"list", "watch"},
    ("replication.storage.openshift.io", "volumereplications"): {
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    },
    ("trident.netapp.io", "tridentmirrorrelationships"): {"list", "watch", "create", "patch", "delete"},
    ("replication.storage.dell.com", "dellcsireplicationgroups"): {
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    },
}
REQUIRED_LEASE = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}


def _granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize(
    ("role", "required"),
    [("ClusterRole/couchestor", REQUIRED_CLUSTER), ("Role/couchestor-leader-election", REQUIRED_LEASE)],
)
def test_rbac_grants_what_the_operator_calls_and_no_wildcards_or_secrets(role, required):
    doc = _operator()[role]
    granted = _granted(doc)
    for (group, resource), verbs in required.items():
        missing = verbs - granted.get((group, resource), set())
        assert not missing, f"{role} lacks {sorted(missing)} on {resource}.{group or 'core'}"
    # Least privilege: nothing beyond what the code calls (extend REQUIRED_* with the code that needs it).
    extra = {key: sorted(verbs - required.get(key, set())) for key, verbs in granted.items()}
    assert not {key: verbs for key, verbs in extra.items() if verbs}, f"{role} grants more than is used"
    for rule in doc["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"{role}: wildcard in {field}"
        assert "secrets" not in rule["resources"]
        assert not rule.get("resourceNames") or rule["resources"] == ["leases"]


def test_bindings_and_service_point_at_the_right_objects():
    objects = _operator()
    for binding, role in (
        ("ClusterRoleBinding/couchestor", "ClusterRole/couchestor"),
        ("RoleBinding/couchestor-leader-election", "Role/couchestor-leader-election"),
    ):
        doc = objects[binding]
        assert f"{doc['roleRef']['kind']}/{doc['roleRef']['name']}" == role
        assert doc["subjects"] == [
            {"kind": "ServiceAccount", "name": "couchestor", "namespace": "kube-system"}
        ]
    service = objects["Service/couchestor"]
    assert service["spec"]["selector"] == {"app": "couchestor"}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    monitor = objects["ServiceMonitor/couchestor"]
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    pdb = objects["PodDisruptionBudget/couchestor"]
    assert pdb["spec"]["selector"]["matchLabels"] == {"app": "couchestor"}


# --- docs/quickstart-kind.md stays true to the code ------------------------------------------------------------

QUICKSTART = ROOT.parent / "docs" / "quickstart-kind.md"


def _shell_blocks() -> list[str]:
    text = QUICKSTART.read_text()
    return [block.split("\n", 1)[1] for block in text.split("```")[1::2] if block.startswith("sh\n")]


def _heredoc_objects() -> list[dict[str, Any]]:
    """The objects of every ``kubectl apply -f - <<'EOF' ... EOF`` in the guide."""
    out = []
    for block in _shell_blocks():
        for part in block.split("kubectl apply -f - <<'EOF'\n")[1:]:
            out += [d for d in yaml.safe_load_all(part.split("\nEOF", 1)[0]) if d is not None]
    return out


def test_quickstart_names_only_files_and_settings_that_exist():
    text = QUICKSTART.read_text()
    paths = set(re.findall(r"manifests/[\w./-]+\.yaml", text))
    assert "manifests/crds/storagepolicies.yaml" in paths
    for path in paths:
        assert (ROOT.parent / path).is_file(), path
    known = {flag.env: flag for flag in settings_mod.FLAGS}
    environ = dict(re.findall(r"(COUCHESTOR_[A-Z_]+)=(\S+)", text))
    assert environ
    for name in environ:
        assert name in known, f"{name} is not a couchestor setting"
    # The values the guide sets are accepted together, for Mayastor 2.x, where its DiskPools are.
    settings = settings_mod.resolve(build_parser().parse_args(["run"]), environ)
    assert (settings.metric_preset, settings.backend) == ("mayastor-2x", "mayastor-rest")
    pools = [d for d in _heredoc_objects() if d["kind"] == "DiskPool"]
    assert {d["metadata"]["namespace"] for d in pools} == {settings.mayastor_namespace}
    # The Deployment the guide applies is the one it configures, with the image it builds.
    assert "deployment/couchestor" in text
    image = _container()["image"]
    assert f"docker build -t {image} ." in text
    assert f"kind load docker-image {image}" in text


@pytest.mark.kubectl
@needs_kubectl
def test_quickstart_objects_apply_to_the_emulator(kubectl):
    objects = _heredoc_objects()
    kinds = {d["kind"] for d in objects}
    assert kinds == {"DiskPool", "StorageClass", "PersistentVolumeClaim", "Pod"}
    # The emulator plays DiskPools with the simulator's CRD and does not run Pods.
    kubectl("apply", "-f", str(ROOT / "crds" / "sim-diskpools.yaml"))
    kubectl("wait", "--for=condition=established", "--timeout=30s", "crd/diskpools.openebs.io")
    # (`kubectl create namespace` sends protobuf, which the emulator does not speak; apply sends JSON.)
    kubectl("apply", "-f", "-", stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: openebs}\n")
    served = yaml.safe_dump_all([d for d in objects if d["kind"] != "Pod"])
    try:
        kubectl("apply", "-f", "-", stdin=served)
        pools = kubectl("get", "diskpools", "-n", "openebs", "-l", "tier=hot", "-o", "name").stdout.split()
    finally:
        # The server is shared by the session: leave nothing another test could trip over.
        kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=served, check=False)
    assert sorted(pools) == ["diskpool.openebs.io/hot-1", "diskpool.openebs.io/hot-2"]
    # The example policies of the guide select the PVC it creates and the pools by their tier label.
    policy = next(
        d
        for p in sorted((ROOT / "examples").glob("*.yaml"))
        for d in _documents(p)
        if d["metadata"]["name"] == "cache-tiering"
    )
    pvc = next(d for d in objects if d["kind"] == "PersistentVolumeClaim")
    assert policy["spec"]["volumeSelector"]["matchLabels"].items() <= pvc["metadata"]["labels"].items()
    assert policy["spec"]["storageClassName"] == pvc["spec"]["storageClassName"]
    storage_class = next(d for d in objects if d["kind"] == "StorageClass")
    assert storage_class["metadata"]["name"] == pvc["spec"]["storageClassName"]
