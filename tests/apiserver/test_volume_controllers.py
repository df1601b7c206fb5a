"""The built-in PV/PVC controllers: a deleted claim releases the volume that points at it."""

from __future__ import annotations

import pytest

from couchestor.sim.apiserver import ApiServer


def _pv(name, claim=None):
    spec = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "csi": {"driver": "test.couchestor.io", "volumeHandle": name},
    }
    if claim:
        spec["claimRef"] = {"namespace": "default", "name": claim}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def _pvc(name, volume=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("claim_names_volume", [True, False])
def test_deleting_a_claim_releases_the_volume_bound_to_it(claim_names_volume):
    cluster = ApiServer().cluster
    pvs = cluster.registry.get("", "v1", "persistentvolumes")
    pvcs = cluster.registry.get("", "v1", "persistentvolumeclaims")
    for i in range(3):
        cluster.create(pvs, "", _pv(f"pv-{i}", claim=f"claim-{i}"))
        cluster.create(pvcs, "default", _pvc(f"claim-{i}", f"pv-{i}" if claim_names_volume else None))
        # The binder completes the claimRef (uid) once both exist.
        cluster.update(pvs, "", f"pv-{i}", _with_uid(cluster, pvs, pvcs, i))

    def phase(i):
        return cluster.get(pvs, "", f"pv-{i}").obj().get("status", {}).get("phase")

    assert [phase(i) for i in range(3)] == ["Bound"] * 3
    cluster.delete(pvcs, "default", "claim-1")
    assert [phase(i) for i in range(3)] == ["Bound", "Released", "Bound"]


def _with_uid(cluster, pvs, pvcs, i):
    pv = cluster.get(pvs, "", f"pv-{i}").obj()
    pv["spec"]["claimRef"]["uid"] = cluster.get(pvcs, "default", f"claim-{i}").uid
    return pv


def test_a_claim_created_before_its_volume_binds_when_the_volume_appears():
    cluster = ApiServer().cluster
    pvs = cluster.registry.get("", "v1", "persistentvolumes")
    pvcs = cluster.registry.get("", "v1", "persistentvolumeclaims")
    cluster.create(pvcs, "default", _pvc("early", "pv-late"))
    assert cluster.get(pvcs, "default", "early").obj()["status"]["phase"] == "Pending"
    cluster.create(pvs, "", _pv("pv-late", claim="early"))
    assert cluster.get(pvcs, "default", "early").obj()["status"]["phase"] == "Bound"
    assert cluster.get(pvs, "", "pv-late").obj()["status"]["phase"] == "Bound"
