"""Deletion semantics and the built-in controllers: finalizers, namespaces, garbage collection, PV/PVC."""

from __future__ import annotations

import json

import pytest

from tests.contract.conftest import assert_status, cm, unique, wait_for

MERGE = {"Content-Type": "application/merge-patch+json"}
FINALIZER = "contract.couchestor.io/hold"


def _gone(http, path):
    return lambda: http.get(path).status_code == 404


def test_finalizer_holds_deletion_until_removed(http, ns):
    name = unique("fin")
    path = f"/api/v1/namespaces/{ns}/configmaps/{name}"
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name, finalizers=[FINALIZER]))
    r = http.delete(path)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "ConfigMap"
    assert body["metadata"]["deletionTimestamp"]
    held = http.get(path).json()
    assert held["metadata"]["finalizers"] == [FINALIZER]
    again = http.delete(path)
    assert again.status_code == 200
    assert again.json()["metadata"]["deletionTimestamp"] == body["metadata"]["deletionTimestamp"]
    r = http.patch(path, content=json.dumps({"metadata": {"finalizers": None}}), headers=MERGE)
    assert r.status_code == 200, r.text
    wait_for(_gone(http, path), what="object gone after its last finalizer")


def test_no_new_finalizers_while_deleting(http, ns):
    name = unique("fin")
    path = f"/api/v1/namespaces/{ns}/configmaps/{name}"
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name, finalizers=[FINALIZER]))
    http.delete(path)
    patch = {"metadata": {"finalizers": [FINALIZER, "contract.couchestor.io/other"]}}
    assert_status(http.patch(path, content=json.dumps(patch), headers=MERGE), 422, "Invalid")
    http.patch(path, content=json.dumps({"metadata": {"finalizers": None}}), headers=MERGE)


def test_garbage_collection_of_owned_objects(http, ns):
    owner_name, dep_name = unique("owner"), unique("dep")
    base = f"/api/v1/namespaces/{ns}/configmaps"
    owner = http.post(base, json=cm(owner_name)).json()
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner_name, "uid": owner["metadata"]["uid"]}
    assert http.post(base, json=cm(dep_name, ownerReferences=[ref])).status_code == 201
    http.delete(f"{base}/{owner_name}", params={"propagationPolicy": "Background"})
    wait_for(_gone(http, f"{base}/{dep_name}"), what="dependent garbage-collected")


def test_foreground_deletion_removes_dependents_first(http, ns):
    owner_name, dep_name = unique("fg"), unique("fgdep")
    base = f"/api/v1/namespaces/{ns}/configmaps"
    owner = http.post(base, json=cm(owner_name)).json()
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner_name,
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    http.post(base, json=cm(dep_name, ownerReferences=[ref]))
    r = http.delete(f"{base}/{owner_name}", params={"propagationPolicy": "Foreground"})
    assert r.status_code == 200
    wait_for(_gone(http, f"{base}/{dep_name}"), what="dependent deleted")
    wait_for(_gone(http, f"{base}/{owner_name}"), what="owner deleted after its dependents")


def test_orphan_deletion_keeps_dependents(http, ns):
    owner_name, dep_name = unique("or"), unique("ordep")
    base = f"/api/v1/namespaces/{ns}/configmaps"
    owner = http.post(base, json=cm(owner_name)).json()
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner_name, "uid": owner["metadata"]["uid"]}
    http.post(base, json=cm(dep_name, ownerReferences=[ref]))
    http.delete(f"{base}/{owner_name}", params={"propagationPolicy": "Orphan"})
    wait_for(_gone(http, f"{base}/{owner_name}"), what="owner deleted")
    dep = wait_for(
        lambda: (
            (d := http.get(f"{base}/{dep_name}").json()) and not d["metadata"].get("ownerReferences") and d
        ),
        what="owner reference removed",
    )
    assert dep["metadata"]["name"] == dep_name


def test_namespace_deletion_terminates_then_removes_everything(http):
    name = unique("ctns")
    r = http.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"]["phase"] == "Active"
    base = f"/api/v1/namespaces/{name}/configmaps"
    assert http.post(base, json=cm("plain")).status_code == 201
    assert http.post(base, json=cm("held", finalizers=[FINALIZER])).status_code == 201
    r = http.delete(f"/api/v1/namespaces/{name}")
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["deletionTimestamp"]
    assert r.json()["status"]["phase"] == "Terminating"
    wait_for(_gone(http, f"{base}/plain"), what="namespace content deleted")
    # The held object keeps the namespace Terminating, where nothing new may be created.
    body = assert_status(http.post(base, json=cm("late")), 403, "Forbidden")
    assert "being terminated" in body["message"]
    assert http.get(f"/api/v1/namespaces/{name}").json()["status"]["phase"] == "Terminating"
    http.patch(f"{base}/held", content=json.dumps({"metadata": {"finalizers": None}}), headers=MERGE)
    wait_for(_gone(http, f"/api/v1/namespaces/{name}"), timeout=120, what="namespace gone")


def _pv(name, claim=None, storage_class=None):
    spec = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": storage_class or name,
        "csi": {"driver": "contract.couchestor.io", "volumeHandle": name},
    }
    if claim:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def _pvc(name, volume, storage_class):
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": storage_class,
            "volumeName": volume,
        },
    }


@pytest.mark.cluster_volumes
def test_pv_protection_finalizer_and_immutable_source(http):
    name = unique("ctpv")
    r = http.post("/api/v1/persistentvolumes", json=_pv(name))
    assert r.status_code == 201, r.text
    assert "kubernetes.io/pv-protection" in r.json()["metadata"]["finalizers"]
    assert r.json()["spec"]["volumeMode"] == "Filesystem"
    patch = {"spec": {"csi": {"volumeHandle": "other"}}}
    body = assert_status(
        http.patch(f"/api/v1/persistentvolumes/{name}", content=json.dumps(patch), headers=MERGE),
        422,
        "Invalid",
    )
    assert "immutable" in body["message"]
    wait_for(
        lambda: (
            http.get(f"/api/v1/persistentvolumes/{name}").json().get("status", {}).get("phase") == "Available"
        ),
        what="PV Available",
    )
    http.delete(f"/api/v1/persistentvolumes/{name}")
    wait_for(_gone(http, f"/api/v1/persistentvolumes/{name}"), what="unbound PV deleted")


@pytest.mark.cluster_volumes
def test_pv_field_selector_on_storage_class_is_not_supported(http):
    r = http.get("/api/v1/persistentvolumes", params={"fieldSelector": "spec.storageClassName=x"})
    assert_status(r, 400, "BadRequest")


@pytest.mark.cluster_volumes
def test_bound_pv_is_protected_until_its_claim_is_gone(http, ns):
    pv_name, pvc_name = unique("ctpv"), unique("ctpvc")
    assert http.post("/api/v1/persistentvolumes", json=_pv(pv_name, claim=(ns, pvc_name))).status_code == 201
    r = http.post(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", json=_pvc(pvc_name, pv_name, pv_name))
    assert r.status_code == 201, r.text
    assert "kubernetes.io/pvc-protection" in r.json()["metadata"]["finalizers"]
    pvc_path = f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{pvc_name}"
    wait_for(lambda: http.get(pvc_path).json().get("status", {}).get("phase") == "Bound", what="PVC Bound")
    wait_for(
        lambda: http.get(f"/api/v1/persistentvolumes/{pv_name}").json()["status"]["phase"] == "Bound",
        what="PV Bound",
    )
    http.delete(f"/api/v1/persistentvolumes/{pv_name}")
    pv = http.get(f"/api/v1/persistentvolumes/{pv_name}").json()
    assert pv["metadata"]["deletionTimestamp"]
    assert "kubernetes.io/pv-protection" in pv["metadata"]["finalizers"]
    http.delete(pvc_path)
    wait_for(_gone(http, pvc_path), what="PVC gone (never in use)")
    wait_for(_gone(http, f"/api/v1/persistentvolumes/{pv_name}"), what="PV gone once unbound")


@pytest.mark.cluster_volumes
def test_deleting_pv_shows_terminating_in_table(http):
    name = unique("ctpv")
    body = _pv(name)
    body["metadata"]["finalizers"] = [FINALIZER]
    assert http.post("/api/v1/persistentvolumes", json=body).status_code == 201
    path = f"/api/v1/persistentvolumes/{name}"
    assert http.delete(path).status_code == 200
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = http.get(path, headers={"Accept": accept}).json()
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert table["rows"][0]["cells"][columns.index("Status")] == "Terminating"
    http.patch(path, content=json.dumps({"metadata": {"finalizers": None}}), headers=MERGE)
    wait_for(_gone(http, path), what="PV gone once its finalizers are removed")
