"""Which claims a replication object may take (csi-addons' rules), as pure checks."""

from __future__ import annotations

import msgspec
import pytest

from couchestor.replication.claims import check_claim, check_members
from k8s_schemas.core import ProtectablePersistentVolumeClaim

VR_OWNER = "replication.unified.io/volume-replication-name"
VGR_OWNER = "replication.unified.io/volume-group-replication-name"
PROTECTION = "replication.unified.io/pvc-protection"


def claim(name="data", *, phase="Bound", annotations=None, finalizers=(), deleting=False):
    meta = {
        "name": name,
        "namespace": "prod",
        "annotations": annotations or {},
        "finalizers": list(finalizers),
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return msgspec.convert(
        {"metadata": meta, "status": {"phase": phase}},
        ProtectablePersistentVolumeClaim,
        from_attributes=False,
    )


def test_a_free_bound_claim_can_be_taken():
    assert check_claim(claim(), "VolumeReplication", "dup-a") is None


@pytest.mark.parametrize("phase", ["Pending", "Lost"])
def test_an_unbound_claim_is_refused_with_csi_addons_words(phase):
    assert check_claim(claim(phase=phase), "VolumeReplication", "r") == (
        "PersistentVolumeClaim prod/data is not bound to any PV"
    )


def test_a_claim_owned_by_another_object_is_refused():
    owned = claim(annotations={VR_OWNER: "dup-a"}, finalizers=[PROTECTION])
    assert check_claim(owned, "VolumeReplication", "dup-a") is None
    assert "already owned by VolumeReplication 'dup-a'" in check_claim(owned, "VolumeReplication", "dup-b")
    # Neither a group may take a claim a VolumeReplication holds, nor the other way round.
    assert "already owned by VolumeReplication 'dup-a'" in check_claim(owned, "VolumeGroupReplication", "g")
    grouped = claim(annotations={VGR_OWNER: "g"})
    assert "already owned by VolumeGroupReplication 'g'" in check_claim(grouped, "VolumeReplication", "r")


def test_a_claim_being_deleted_is_refused_unless_this_object_protects_it():
    assert "marked for deletion" in check_claim(claim(deleting=True), "VolumeReplication", "r")
    mine = claim(annotations={VR_OWNER: "r"}, finalizers=[PROTECTION], deleting=True)
    assert check_claim(mine, "VolumeReplication", "r") is None


def test_group_problems_name_the_claims():
    members = [claim("a", phase="Pending"), claim("b"), claim("c", annotations={VGR_OWNER: "other"})]
    problem = check_members(members, "VolumeGroupReplication", "mine")
    assert "prod/a is not bound" in problem
    assert "prod/c is already owned by VolumeGroupReplication 'other'" in problem
    assert "prod/b" not in problem
