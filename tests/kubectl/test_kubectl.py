"""The real ``kubectl`` against the emulator: get, apply, patch, watch, delete, -o yaml, api-resources, tables."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from contextlib import contextmanager

import pytest
import yaml

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl")
if KUBECTL is None:
    pytest.skip("kubectl is not on PATH; the kubectl tests need it", allow_module_level=True)

GROUP = "kubectl.contract.couchestor.io"

CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: gizmos, singular: gizmo, kind: Gizmo, shortNames: [gz]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    additionalPrinterColumns:
    - {{name: Size, type: integer, jsonPath: .spec.size}}
    - {{name: Mode, type: string, jsonPath: .spec.mode}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer, minimum: 1}}
              mode: {{type: string, default: auto}}
"""


@pytest.fixture
def kubectl(apiserver_process, tmp_path):
    """Runs kubectl against the emulator with a private discovery cache; returns stdout."""

    def run(*args: str, stdin: str | None = None, check: bool = True, timeout: float = 30) -> str:
        cmd = [
            KUBECTL,
            "--kubeconfig",
            str(apiserver_process.kubeconfig),
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout if check else proc.stdout + proc.stderr

    return run


@pytest.fixture
def gizmos(kubectl):
    kubectl("apply", "-f", "-", stdin=CRD)
    kubectl("wait", "--for=condition=established", f"crd/gizmos.{GROUP}", "--timeout=20s")
    return kubectl


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_api_resources_lists_builtins(kubectl):
    out = kubectl("api-resources")
    for kind in (
        "PersistentVolume",
        "PersistentVolumeClaim",
        "StorageClass",
        "CustomResourceDefinition",
        "Lease",
    ):
        assert kind in out


def test_apply_get_patch_delete_custom_resource(gizmos):
    kubectl = gizmos
    name = _name("gz")
    manifest = f"apiVersion: {GROUP}/v1\nkind: Gizmo\nmetadata:\n  name: {name}\nspec:\n  size: 2\n"
    assert "created" in kubectl("apply", "-f", "-", stdin=manifest)
    assert "configured" in kubectl("apply", "-f", "-", stdin=manifest.replace("size: 2", "size: 5"))
    obj = yaml.safe_load(kubectl("get", "gz", name, "-o", "yaml"))
    assert obj["spec"] == {"size": 5, "mode": "auto"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    table = kubectl("get", "gizmos")
    header = table.splitlines()[0].split()
    assert header == ["NAME", "SIZE", "MODE"]
    assert any(line.split()[:3] == [name, "5", "auto"] for line in table.splitlines()[1:])
    kubectl("patch", "gizmo", name, "--type=merge", "-p", '{"spec":{"mode":"manual"}}')
    kubectl("patch", "gizmo", name, "--type=json", "-p", '[{"op":"replace","path":"/spec/size","value":7}]')
    assert kubectl("get", "gizmo", name, "-o", "jsonpath={.spec.mode}/{.spec.size}") == "manual/7"
    out = kubectl("patch", "gizmo", name, "--type=merge", "-p", '{"spec":{"size":0}}', check=False)
    assert "spec.size" in out
    assert "deleted" in kubectl("delete", "gizmo", name)
    assert "NotFound" in kubectl("get", "gizmo", name, check=False)


def test_apply_patch_get_pv_with_labels(kubectl):
    name = _name("pv")
    manifest = f"""apiVersion: v1
kind: PersistentVolume
metadata:
  name: {name}
  labels: {{storage.billyronks.io/tier: hot}}
spec:
  capacity: {{storage: 2Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: mayastor
  csi: {{driver: io.openebs.csi-mayastor, volumeHandle: "{name}"}}
"""
    kubectl("apply", "-f", "-", stdin=manifest)
    kubectl("apply", "-f", "-", stdin=manifest.replace("tier: hot", "tier: cold"))
    kubectl(
        "patch", "pv", name, "-p", '{"metadata":{"annotations":{"storage.billyronks.io/last-migration":"x"}}}'
    )
    row = next(
        line
        for line in kubectl("get", "pv", "-L", "storage.billyronks.io/tier").splitlines()
        if line.startswith(name)
    )
    assert row.split()[1:3] == ["2Gi", "RWO"]
    assert row.split()[-1] == "cold"
    obj = yaml.safe_load(kubectl("get", "pv", name, "-o", "yaml"))
    assert obj["metadata"]["annotations"]["storage.billyronks.io/last-migration"] == "x"
    assert obj["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    kubectl("delete", "pv", name, "--wait=true", "--timeout=20s")
    assert "NotFound" in kubectl("get", "pv", name, check=False)


def test_server_side_apply(kubectl):
    name = _name("cm")
    manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: '1'\n"
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert kubectl("get", "cm", name, "-o", "jsonpath={.data.a}") == "1"
    kubectl("delete", "cm", name)


@contextmanager
def watching(apiserver_process, tmp_path, *args: str):
    """``kubectl get ARGS --watch`` running; yields a function returning the next row starting with a name."""
    cmd = [
        KUBECTL,
        "--kubeconfig",
        str(apiserver_process.kubeconfig),
        "--cache-dir",
        str(tmp_path / "cache"),
        "get",
        *args,
        "--watch",
        "--request-timeout=30s",
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None

        def next_row(name: str) -> list[str]:
            # Blocking reads are bounded: kubectl ends the watch after --request-timeout.
            for line in proc.stdout:
                if line.startswith(name):
                    return line.split()
            raise AssertionError(f"kubectl watch ended without a row for {name}: {proc.stderr.read()}")

        try:
            yield next_row
        finally:
            proc.terminate()
            proc.communicate(timeout=10)


def test_get_watch_prints_custom_resource_changes(gizmos, apiserver_process, tmp_path):
    kubectl = gizmos
    name = _name("gw")
    manifest = f"apiVersion: {GROUP}/v1\nkind: Gizmo\nmetadata:\n  name: {name}\nspec:\n  size: 1\n"
    kubectl("apply", "-f", "-", stdin=manifest)
    with watching(apiserver_process, tmp_path, "gizmos") as next_row:
        assert next_row(name)[:2] == [name, "1"]
        kubectl("patch", "gizmo", name, "--type=merge", "-p", '{"spec":{"size":9}}')
        assert next_row(name)[:2] == [name, "9"]
    kubectl("delete", "gizmo", name)


def test_get_watch_prints_pv_changes(kubectl, apiserver_process, tmp_path):
    name = _name("pvw")
    tier = "storage.billyronks.io/tier"
    manifest = f"""apiVersion: v1
kind: PersistentVolume
metadata:
  name: {name}
  labels: {{{tier}: cold}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: mayastor
  csi: {{driver: io.openebs.csi-mayastor, volumeHandle: "{name}"}}
"""
    kubectl("apply", "-f", "-", stdin=manifest)
    with watching(apiserver_process, tmp_path, "pv", name, "-L", tier) as next_row:
        assert next_row(name)[-1] == "cold"
        kubectl("label", "pv", name, f"{tier}=hot", "--overwrite")
        row = next_row(name)
        while row[-1] != "hot":  # the PV controller's phase update may come first
            row = next_row(name)
        kubectl("delete", "pv", name, "--wait=false")
        row = next_row(name)
        while "Terminating" not in row:
            row = next_row(name)
    kubectl("wait", "--for=delete", f"pv/{name}", "--timeout=20s")


def test_explain_custom_resource(gizmos):
    out = gizmos("explain", "gizmos")
    assert "Gizmo" in out
    assert GROUP in out


def test_delete_crd_removes_its_objects_and_its_resource_type(kubectl):
    group = f"d{uuid.uuid4().hex[:6]}.kubectl.contract.couchestor.io"
    crd = CRD.replace(GROUP, group).replace("shortNames: [gz]", "shortNames: []")
    kubectl("apply", "-f", "-", stdin=crd)
    kubectl("wait", "--for=condition=established", f"crd/gizmos.{group}", "--timeout=20s")
    manifest = f"apiVersion: {group}/v1\nkind: Gizmo\nmetadata:\n  name: doomed\nspec:\n  size: 1\n"
    kubectl("apply", "-f", "-", stdin=manifest)
    assert kubectl("get", f"gizmos.{group}", "doomed", "-o", "name") == f"gizmo.{group}/doomed\n"
    assert "deleted" in kubectl("delete", "crd", f"gizmos.{group}", "--timeout=30s")
    assert "NotFound" in kubectl("get", "crd", f"gizmos.{group}", check=False)
    out = kubectl("get", f"gizmos.{group}", check=False)
    assert "doesn't have a resource type" in out
