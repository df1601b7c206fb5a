"""VolumeReplication end to end on the emulator, against each backend simulator."""

from __future__ import annotations

import pytest

from couchestor.kube.resources import PERSISTENT_VOLUME_CLAIM
from couchestor.replication.controller import Key
from couchestor.replication.resources import (
    CSI_ADDONS_VOLUME_REPLICATION,
    DELL_REPLICATION_GROUP,
    TRIDENT_MIRROR_RELATIONSHIP,
    VOLUME_REPLICATION,
)
from tests.replication.harness import NS, condition


@pytest.mark.parametrize("backend", ["ceph", "trident", "dell"])
async def test_create_promote_demote_resync(env, backend):
    await env.pvc("data")
    await env.vr("data-rep", backend, "data", state="primary")
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    assert obj["metadata"]["finalizers"] == ["replication.unified.io/finalizer"]
    assert condition(obj, "Degraded")["status"] == "False"
    assert condition(obj, "Validated")["reason"] == "PrerequisiteMet"
    assert obj["status"]["lastStartTime"]
    assert obj["status"]["lastCompletionTime"]

    await env.set_state(VOLUME_REPLICATION, "data-rep", "secondary")
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Secondary")
    assert condition(obj, "Completed")["reason"] == "Demoted"

    await env.set_state(VOLUME_REPLICATION, "data-rep", "resync")
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Secondary")
    assert condition(obj, "Completed")["reason"] == "ResyncTriggered"

    await env.set_state(VOLUME_REPLICATION, "data-rep", "primary")
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    assert condition(obj, "Completed")["reason"] == "Promoted"


async def test_backend_objects_carry_the_request(env):
    await env.pvc("a")
    await env.vr("a-ceph", "ceph", "a", state="secondary")
    await env.vr("a-trident", "trident", "a", state="primary")
    await env.vr("a-dell", "dell", "a", state="primary")
    for name, state in (("a-ceph", "Secondary"), ("a-trident", "Primary"), ("a-dell", "Primary")):
        await env.settled(VOLUME_REPLICATION, name, state)

    csi = await env.get(CSI_ADDONS_VOLUME_REPLICATION, "a-ceph")
    owner = await env.get(VOLUME_REPLICATION, "a-ceph")
    assert csi["spec"]["replicationState"] == "secondary"
    assert csi["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "a"}
    assert csi["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]

    tmr = await env.get(TRIDENT_MIRROR_RELATIONSHIP, "a-trident")
    assert tmr["spec"]["state"] == "promoted"
    assert tmr["spec"]["volumeMappings"] == [{"localPVCName": "a", "remoteVolumeHandle": "svm-dr:a"}]
    assert tmr["spec"]["replicationPolicy"] == "MirrorAllSnapshots"

    rg = await env.get(DELL_REPLICATION_GROUP, f"{NS}.a-dell", None)
    assert rg["spec"]["driverName"] == "csi-powerstore.dellemc.com"
    assert rg["spec"]["remoteClusterId"] == "dr-site"
    assert rg["status"]["replicationLinkState"]["isSource"] is True
    claim = await env.get(PERSISTENT_VOLUME_CLAIM, "a")
    assert claim["metadata"]["labels"]["replication.storage.dell.com/replicationGroupName"] == f"{NS}.a-dell"


@pytest.mark.parametrize("backend", ["ceph", "trident", "dell"])
async def test_steady_state_makes_no_writes(env, backend):
    await env.pvc("data")
    await env.vr("data-rep", backend, "data")
    before = await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    backend_res = {
        "ceph": (CSI_ADDONS_VOLUME_REPLICATION, "data-rep", NS),
        "trident": (TRIDENT_MIRROR_RELATIONSHIP, "data-rep", NS),
        "dell": (DELL_REPLICATION_GROUP, f"{NS}.data-rep", None),
    }[backend]
    backend_before = await env.get(*backend_res)
    for _ in range(3):
        await env.controller.reconcile(Key("VolumeReplication", NS, "data-rep"))
    after = await env.get(VOLUME_REPLICATION, "data-rep")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    backend_after = await env.get(*backend_res)
    assert backend_after["metadata"]["resourceVersion"] == backend_before["metadata"]["resourceVersion"]
