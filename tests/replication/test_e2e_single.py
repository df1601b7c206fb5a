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
from tests.replication.harness import condition


def _conditions(obj, *types):
    return tuple((condition(obj, t).get("status"), condition(obj, t).get("reason")) for t in types)


@pytest.mark.parametrize("backend", ["ceph", "trident", "dell"])
async def test_create_promote_demote_resync(env, backend):
    """The conditions csi-addons reports at each step: Promoted and healthy; Demoted and Degraded
    (VolumeDegraded) until the resync is ready, without a lastSyncTime; a resync is Demoted, Resyncing
    (ResyncTriggered) and Degraded while it runs."""
    await env.pvc("data")
    await env.vr("data-rep", backend, "data", state="primary")
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    assert obj["metadata"]["finalizers"] == ["replication.unified.io/finalizer"]
    assert _conditions(obj, "Completed", "Degraded", "Resyncing", "Validated") == (
        ("True", "Promoted"),
        ("False", "Healthy"),
        ("False", "NotResyncing"),
        ("True", "PrerequisiteMet"),
    )
    assert obj["status"]["lastStartTime"]
    assert obj["status"]["lastCompletionTime"]
    if backend != "trident":  # Trident reports no sync time
        assert obj["status"]["lastSyncTime"]

    await env.set_state(VOLUME_REPLICATION, "data-rep", "secondary")
    obj = await env.seen(
        VOLUME_REPLICATION,
        "data-rep",
        lambda o: (
            _conditions(o, "Completed", "Degraded") == (("True", "Demoted"), ("True", "VolumeDegraded"))
        ),
        "demoted and degraded",
    )
    assert obj["status"]["state"] == "Secondary"
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Secondary", healthy=True)
    assert _conditions(obj, "Completed", "Degraded", "Resyncing") == (
        ("True", "Demoted"),
        ("False", "Healthy"),
        ("False", "NotResyncing"),
    )
    assert "lastSyncTime" not in obj["status"]

    await env.set_state(VOLUME_REPLICATION, "data-rep", "resync")
    if backend != "trident":  # a re-established Trident mirror has no separate resync
        obj = await env.seen(
            VOLUME_REPLICATION,
            "data-rep",
            lambda o: _conditions(o, "Resyncing")[0] == ("True", "ResyncTriggered"),
            "resyncing",
        )
        assert _conditions(obj, "Completed", "Degraded") == (("True", "Demoted"), ("True", "VolumeDegraded"))
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Secondary", healthy=True)
    assert _conditions(obj, "Completed", "Resyncing") == (("True", "Demoted"), ("False", "NotResyncing"))

    await env.set_state(VOLUME_REPLICATION, "data-rep", "primary")
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    assert condition(obj, "Completed")["reason"] == "Promoted"


async def test_backend_objects_carry_the_request(env):
    for claim in ("a", "b", "c"):
        await env.pvc(claim)
    await env.vr("a-ceph", "ceph", "a", state="secondary")
    await env.vr("a-trident", "trident", "b", state="primary")
    await env.vr("a-dell", "dell", "c", state="primary")
    for name, state in (("a-ceph", "Secondary"), ("a-trident", "Primary"), ("a-dell", "Primary")):
        await env.settled(VOLUME_REPLICATION, name, state)

    csi = await env.get(CSI_ADDONS_VOLUME_REPLICATION, "a-ceph")
    owner = await env.get(VOLUME_REPLICATION, "a-ceph")
    assert csi["spec"]["replicationState"] == "secondary"
    assert csi["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "a"}
    assert csi["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]

    tmr = await env.get(TRIDENT_MIRROR_RELATIONSHIP, "a-trident")
    assert tmr["spec"]["state"] == "promoted"
    assert tmr["spec"]["volumeMappings"] == [{"localPVCName": "b", "remoteVolumeHandle": "svm-dr:b"}]
    assert tmr["spec"]["replicationPolicy"] == "MirrorAllSnapshots"

    rg = await env.get(DELL_REPLICATION_GROUP, f"{env.ns}.a-dell", None)
    assert rg["spec"]["driverName"] == "csi-powerstore.dellemc.com"
    assert rg["spec"]["remoteClusterId"] == "dr-site"
    assert rg["status"]["replicationLinkState"]["isSource"] is True
    claim = await env.get(PERSISTENT_VOLUME_CLAIM, "c")
    assert (
        claim["metadata"]["labels"]["replication.storage.dell.com/replicationGroupName"] == f"{env.ns}.a-dell"
    )


@pytest.mark.parametrize("backend", ["ceph", "trident", "dell"])
async def test_steady_state_makes_no_writes(env, backend):
    await env.pvc("data")
    await env.vr("data-rep", backend, "data")
    before = await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    backend_res = {
        "ceph": (CSI_ADDONS_VOLUME_REPLICATION, "data-rep", env.ns),
        "trident": (TRIDENT_MIRROR_RELATIONSHIP, "data-rep", env.ns),
        "dell": (DELL_REPLICATION_GROUP, f"{env.ns}.data-rep", None),
    }[backend]
    backend_before = await env.get(*backend_res)
    for _ in range(3):
        await env.controller.reconcile(Key("VolumeReplication", env.ns, "data-rep"))
    after = await env.get(VOLUME_REPLICATION, "data-rep")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    backend_after = await env.get(*backend_res)
    assert backend_after["metadata"]["resourceVersion"] == backend_before["metadata"]["resourceVersion"]
