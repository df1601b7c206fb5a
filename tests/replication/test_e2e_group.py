"""VolumeGroupReplication end to end: membership follows PVC labels, one state for all members, partial
failures degrade and retry, deletion cleans up."""

from __future__ import annotations

import pytest

from couchestor.kube.resources import PERSISTENT_VOLUME_CLAIM
from couchestor.replication.resources import (
    CSI_ADDONS_VOLUME_REPLICATION,
    DELL_REPLICATION_GROUP,
    TRIDENT_MIRROR_RELATIONSHIP,
    VOLUME_GROUP_REPLICATION,
    VOLUME_REPLICATION,
    VOLUME_REPLICATION_CLASS,
)
from tests.replication.harness import condition

DB = {"app": "postgresql", "instance": "prod-db-01"}


async def _postgres(env, backend, state="primary"):
    for part in ("data", "wal", "config"):
        await env.pvc(f"postgresql-{part}", DB)
    await env.pvc("unrelated", {"app": "other"})
    await env.vgr("pg", backend, DB, state=state)


def _members(obj):
    return [r["name"] for r in obj["status"].get("persistentVolumeClaimsRefList") or ()]


@pytest.mark.parametrize("backend", ["ceph", "trident", "dell"])
async def test_group_moves_together(env, backend):
    await _postgres(env, backend)
    obj = await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Primary")
    assert _members(obj) == ["postgresql-config", "postgresql-data", "postgresql-wal"]
    await env.set_state(VOLUME_GROUP_REPLICATION, "pg", "secondary")
    obj = await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Secondary", healthy=True)
    assert obj["status"]["message"] == "all 3 volumes demoted"


async def test_ceph_group_has_one_csi_addons_object_per_member(env):
    await _postgres(env, "ceph")
    await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Primary")
    listed = await env.client.list_all(CSI_ADDONS_VOLUME_REPLICATION, env.ns, type=dict)
    sources = sorted(o["spec"]["dataSource"]["name"] for o in listed.items)
    assert sources == ["postgresql-config", "postgresql-data", "postgresql-wal"]
    assert {o["spec"]["replicationState"] for o in listed.items} == {"primary"}


@pytest.mark.parametrize("backend", ["ceph", "trident", "dell"])
async def test_membership_follows_pvc_labels(env, backend):
    await _postgres(env, backend)
    await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Primary")
    # A new claim joins by label; one member leaves by losing it.
    await env.pvc("postgresql-archive", DB)
    await env.client.merge_patch(
        PERSISTENT_VOLUME_CLAIM,
        "postgresql-config",
        {"metadata": {"labels": {"app": None}}},
        env.ns,
        type=dict,
    )

    async def moved():
        obj = await env.get(VOLUME_GROUP_REPLICATION, "pg")
        return _members(obj) == ["postgresql-archive", "postgresql-data", "postgresql-wal"] and obj

    await env.eventually(moved, what="membership updated")
    await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Primary")
    if backend == "ceph":
        listed = await env.client.list_all(CSI_ADDONS_VOLUME_REPLICATION, env.ns, type=dict)
        names = sorted(o["spec"]["dataSource"]["name"] for o in listed.items)
        assert names == ["postgresql-archive", "postgresql-data", "postgresql-wal"]
    elif backend == "trident":
        tmr = await env.get(TRIDENT_MIRROR_RELATIONSHIP, "pg")
        names = sorted(m["localPVCName"] for m in tmr["spec"]["volumeMappings"])
        assert names == ["postgresql-archive", "postgresql-data", "postgresql-wal"]
    else:
        label = "replication.storage.dell.com/replicationGroupName"
        left = await env.get(PERSISTENT_VOLUME_CLAIM, "postgresql-config")
        joined = await env.get(PERSISTENT_VOLUME_CLAIM, "postgresql-archive")
        assert label not in left["metadata"]["labels"]
        assert joined["metadata"]["labels"][label] == f"{env.ns}.pg"


@pytest.mark.parametrize("backend", ["ceph", "trident"])
async def test_partial_failure_degrades_then_recovers(env, backend):
    await _postgres(env, backend)
    await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Primary")
    sim = env.ceph if backend == "ceph" else env.trident
    sim.failing.add("postgresql-wal")
    await env.set_state(VOLUME_GROUP_REPLICATION, "pg", "secondary")

    async def degraded():
        obj = await env.get(VOLUME_GROUP_REPLICATION, "pg")
        gen = obj["metadata"]["generation"]
        cond = condition(obj, "Degraded")
        return cond.get("status") == "True" and obj["status"].get("observedGeneration") == gen and obj

    obj = await env.eventually(degraded, what="group Degraded")
    # Never a silent partial failover: the group does not claim the new state while one member lags.
    assert obj["status"]["state"] != "Secondary"
    assert condition(obj, "Completed")["status"] == "False"
    assert condition(obj, "Completed")["reason"] == "FailedToDemote"
    assert "postgresql-wal" in obj["status"]["message"]

    sim.failing.clear()
    obj = await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Secondary", healthy=True)
    assert condition(obj, "Degraded")["reason"] == "Healthy"


async def test_dell_action_failure_and_recovery(env):
    await _postgres(env, "dell")
    await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Primary")
    env.dell.failing.add(f"{env.ns}.pg")
    await env.set_state(VOLUME_GROUP_REPLICATION, "pg", "secondary")

    async def degraded():
        obj = await env.get(VOLUME_GROUP_REPLICATION, "pg")
        return condition(obj, "Degraded").get("status") == "True" and obj

    obj = await env.eventually(degraded, what="group Degraded")
    assert obj["status"]["state"] == "Primary"  # still the source: the failover did not happen
    assert "FAILOVER_REMOTE" in obj["status"]["message"]
    env.dell.failing.clear()
    await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Secondary")
    rg = await env.get(DELL_REPLICATION_GROUP, f"{env.ns}.pg", None)
    assert rg["status"]["replicationLinkState"]["isSource"] is False
    assert rg["spec"]["action"] == ""


async def test_missing_class_and_empty_selector_are_reported(env):
    await env.pvc("lonely", {"app": "x"})
    await env.vgr("nobody", "ceph", {"app": "none"})

    async def invalid():
        obj = await env.get(VOLUME_GROUP_REPLICATION, "nobody")
        return condition(obj, "Validated").get("status") == "False" and obj

    obj = await env.eventually(invalid, what="Validated False")
    assert "no PersistentVolumeClaim" in obj["status"]["message"]
    assert obj["status"]["state"] == "Unknown"
    await env.create(
        VOLUME_REPLICATION,
        {
            "metadata": {"name": "orphan"},
            "spec": {"volumeReplicationClass": "absent", "pvcName": "lonely", "replicationState": "primary"},
        },
    )

    async def no_class():
        obj = await env.get(VOLUME_REPLICATION, "orphan")
        return "not found" in ((obj.get("status") or {}).get("message") or "") and obj

    obj = await env.eventually(no_class, what="class not found reported")
    assert "VolumeReplicationClass 'absent'" in obj["status"]["message"]
    # Creating the class later is picked up (class changes enqueue their users).
    await env.client.create(
        VOLUME_REPLICATION_CLASS,
        {"metadata": {"name": "absent"}, "spec": {"provisioner": "rbd.csi.ceph.com"}},
        type=dict,
    )
    await env.settled(VOLUME_REPLICATION, "orphan", "Primary")


@pytest.mark.parametrize("backend", ["ceph", "trident", "dell"])
async def test_deletion_cleans_up(env, backend):
    await _postgres(env, backend)
    await env.settled(VOLUME_GROUP_REPLICATION, "pg", "Primary")
    await env.client.delete(VOLUME_GROUP_REPLICATION, "pg", env.ns)

    async def gone():
        return await env.get(VOLUME_GROUP_REPLICATION, "pg") is None

    await env.eventually(gone, what="group deleted")
    for res, ns in (
        (CSI_ADDONS_VOLUME_REPLICATION, env.ns),
        (TRIDENT_MIRROR_RELATIONSHIP, env.ns),
        (DELL_REPLICATION_GROUP, None),
    ):
        listed = await env.client.list_all(res, ns, type=dict)
        # Dell groups are cluster-scoped: those of this namespace are named "<namespace>.<name>".
        mine = [o for o in listed.items if ns or o["metadata"]["name"].startswith(f"{env.ns}.")]
        assert mine == [], f"{res} left behind"
    claim = await env.get(PERSISTENT_VOLUME_CLAIM, "postgresql-data")
    assert "replication.storage.dell.com/replicationGroupName" not in claim["metadata"].get("labels", {})
