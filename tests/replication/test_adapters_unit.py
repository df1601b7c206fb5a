"""Adapter translation both ways, as pure functions over plain data."""

from __future__ import annotations

import pytest

from couchestor.replication.adapters import UnknownProvisioner, adapter_for
from couchestor.replication.adapters.ceph import CephAdapter
from couchestor.replication.adapters.dell import SYNC_GENERATION, DellAdapter, next_action
from couchestor.replication.adapters.trident import TridentAdapter, mirror_state
from couchestor.replication.model import Request


def _req(state="primary", *, group=False, members=("data",), params=None, generation=1):
    return Request(
        kind="VolumeGroupReplication" if group else "VolumeReplication",
        namespace="production",
        name="pg",
        uid="u-1",
        generation=generation,
        state=state,
        auto_resync=False,
        class_name="cls",
        provisioner="p",
        parameters=params or {},
        members=tuple(members),
    )


@pytest.mark.parametrize(
    ("provisioner", "name"),
    [
        ("rbd.csi.ceph.com", "ceph-rbd"),
        ("rook-ceph.rbd.csi.ceph.com", "ceph-rbd"),
        ("csi.trident.netapp.io", "trident"),
        ("csi-powerstore.dellemc.com", "dell-powerstore"),
    ],
)
def test_adapter_chosen_from_provisioner(provisioner, name):
    assert adapter_for(provisioner).name == name


def test_unknown_provisioner_names_the_supported_ones():
    with pytest.raises(UnknownProvisioner) as exc:
        adapter_for("ebs.csi.aws.com")
    assert "csi.trident.netapp.io" in str(exc.value)


def test_ceph_one_object_per_member_and_stale_status_is_progressing():
    req = _req("secondary", group=True, members=("data", "wal"), params={"volumeReplicationClass": "rbd"})
    objs = CephAdapter().desired(req, {})
    assert [o.name for o in objs] == ["pg-data", "pg-wal"]
    assert objs[0].spec["volumeReplicationClass"] == "rbd"
    assert objs[1].spec["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "wal"}
    stale = {
        "metadata": {"name": "pg-data", "generation": 3},
        "spec": {"replicationState": "secondary"},
        "status": {
            "state": "Secondary",
            "observedGeneration": 2,
            "conditions": [{"type": "Completed", "status": "True", "reason": "Demoted"}],
        },
    }
    fresh = {**stale, "status": {**stale["status"], "observedGeneration": 3}}
    assert CephAdapter().observe(req, {"pg-data": stale})[0].phase == "Progressing"
    observed = CephAdapter().observe(req, {"pg-data": fresh})
    assert observed[0].phase == "Completed"
    assert observed[0].state == "Secondary"
    assert observed[1].phase == "Progressing"  # pg-wal not created yet


def test_ceph_failed_condition_is_failed():
    req = _req("primary")
    obj = {
        "metadata": {"generation": 1},
        "spec": {"replicationState": "primary"},
        "status": {
            "observedGeneration": 1,
            "message": "failed to promote",
            "conditions": [{"type": "Completed", "status": "False", "reason": "FailedToPromote"}],
        },
    }
    member = CephAdapter().observe(req, {"pg": obj})[0]
    assert member.phase == "Failed"
    assert member.message == "failed to promote"


def test_trident_states():
    assert mirror_state(_req("primary"), None) == "promoted"
    assert mirror_state(_req("secondary"), None) == "established"
    promoted = {"spec": {"state": "promoted"}}
    assert mirror_state(_req("secondary"), promoted) == "reestablished"
    assert mirror_state(_req("resync"), None) == "reestablished"


def test_trident_group_is_one_relationship_with_mappings():
    req = _req("primary", group=True, members=("data", "wal"), params={"remoteSVM": "svm2"})
    (obj,) = TridentAdapter().desired(req, {})
    assert obj.spec["volumeMappings"] == [
        {"localPVCName": "data", "remoteVolumeHandle": "svm2:data"},
        {"localPVCName": "wal", "remoteVolumeHandle": "svm2:wal"},
    ]
    assert TridentAdapter().validate(_req(params={})) is not None
    current = {
        "pg": {
            "metadata": {"generation": 1},
            "spec": {"state": "promoted"},
            "status": {
                "conditions": [
                    {"localPVCName": "data", "state": "promoted", "observedGeneration": 1},
                    {"localPVCName": "wal", "state": "failed", "message": "boom", "observedGeneration": 1},
                ]
            },
        }
    }
    data, wal = TridentAdapter().observe(req, current)
    assert (data.state, data.phase) == ("Primary", "Completed")
    assert (wal.phase, wal.message) == ("Failed", "boom")


def test_dell_actions():
    req = _req("primary", params={"remoteClusterId": "dr"})
    target = {"metadata": {}, "spec": {"action": ""}, "status": {"replicationLinkState": {"isSource": False}}}
    source = {"metadata": {}, "spec": {"action": ""}, "status": {"replicationLinkState": {"isSource": True}}}
    assert next_action(req, None) == ""
    assert next_action(req, target) == "FAILOVER_LOCAL"
    assert next_action(req, source) == ""
    assert next_action(_req("secondary"), source) == "FAILOVER_REMOTE"
    pending = {**target, "spec": {"action": "SYNC"}}
    assert next_action(req, pending) == "SYNC"  # an action in flight is never replaced
    assert next_action(_req("resync", generation=4), source) == "SYNC"
    synced = {**source, "metadata": {"annotations": {SYNC_GENERATION: "4"}}}
    assert next_action(_req("resync", generation=4), synced) == ""


def test_dell_group_labels_and_validation():
    req = _req("primary", group=True, members=("a", "b"), params={"remoteClusterId": "dr", "rpo": "One_Hour"})
    adapter = DellAdapter()
    assert adapter.member_labels(req) == {
        "replication.storage.dell.com/replicationGroupName": "production.pg"
    }
    (obj,) = adapter.desired(req, {})
    assert obj.namespace is None
    assert obj.spec["protectionGroupAttributes"] == {"rpo": "One_Hour"}
    assert adapter.validate(_req(params={})) is not None
    failed = {
        "metadata": {"name": "production.pg"},
        "spec": {"action": "FAILOVER_LOCAL"},
        "status": {
            "state": "Error",
            "lastAction": {"errorMessage": "unreachable"},
            "replicationLinkState": {"isSource": False},
        },
    }
    statuses = adapter.observe(req, {"production.pg": failed})
    assert [s.phase for s in statuses] == ["Failed", "Failed"]
    assert statuses[0].state == "Secondary"


def _cond(type_, status, reason):
    return {"type": type_, "status": status, "reason": reason, "message": "", "lastTransitionTime": "t"}


def test_ceph_demoted_but_volume_degraded_is_done_and_degraded():
    obj = {
        "metadata": {"name": "pg", "generation": 2},
        "spec": {"replicationState": "resync"},
        "status": {
            "state": "Secondary",
            "observedGeneration": 2,
            "conditions": [
                _cond("Completed", "True", "Demoted"),
                _cond("Degraded", "True", "VolumeDegraded"),
                _cond("Resyncing", "True", "ResyncTriggered"),
            ],
        },
    }
    (member,) = CephAdapter().observe(_req("resync"), {"pg": obj})
    assert (member.state, member.phase, member.degraded, member.resyncing) == (
        "Secondary",
        "Completed",
        True,
        True,
    )


def test_trident_reestablishing_secondary_is_demoted_and_degraded():
    obj = {
        "metadata": {"name": "pg", "generation": 2},
        "spec": {"state": "reestablished"},
        "status": {
            "conditions": [{"localPVCName": "data", "state": "reestablishing", "observedGeneration": 2}]
        },
    }
    (member,) = TridentAdapter().observe(_req("secondary", params={"remoteSVM": "s"}), {"pg": obj})
    assert (member.state, member.phase, member.degraded, member.resyncing) == (
        "Secondary",
        "Completed",
        True,
        True,
    )


@pytest.mark.parametrize(("link", "degraded"), [("SYNC_IN_PROGRESS", True), ("SYNCHRONIZED", False)])
def test_dell_secondary_is_degraded_until_the_link_is_synchronized(link, degraded):
    obj = {
        "metadata": {"name": "production.pg", "generation": 1},
        "spec": {"action": ""},
        "status": {"state": "Ready", "replicationLinkState": {"state": link, "isSource": False}},
    }
    req = _req("secondary", params={"remoteClusterId": "dr"})
    (member,) = DellAdapter().observe(req, {"production.pg": obj})
    assert (member.state, member.phase, member.degraded) == ("Secondary", "Completed", degraded)
