"""Where disaster-recovery tools rely on csi-addons' behaviour: one owner per claim, no Primary for an unbound
claim, claims protected while replicated, the last known state kept when a prerequisite goes missing."""

from __future__ import annotations

import pytest
import trio

from couchestor.kube.resources import PERSISTENT_VOLUME_CLAIM
from couchestor.replication.resources import (
    CSI_ADDONS_VOLUME_REPLICATION,
    DELL_REPLICATION_GROUP,
    VOLUME_GROUP_REPLICATION,
    VOLUME_REPLICATION,
    VOLUME_REPLICATION_CLASS,
)
from tests.replication.harness import condition

OWNER = "replication.unified.io/volume-replication-name"
GROUP_OWNER = "replication.unified.io/volume-group-replication-name"
PROTECTION = "replication.unified.io/pvc-protection"
DELL_LABEL = "replication.storage.dell.com/replicationGroupName"


def _refused(what: str):
    def check(obj):
        return condition(obj, "Validated").get("status") == "False" and what in obj["status"]["message"]

    return check


async def test_a_second_volume_replication_of_a_claim_is_refused(env):
    await env.pvc("data")
    await env.vr("dup-a", "ceph", "data", state="primary")
    await env.settled(VOLUME_REPLICATION, "dup-a", "Primary")
    await env.vr("dup-b", "ceph", "data", state="secondary")
    obj = await env.seen(
        VOLUME_REPLICATION, "dup-b", _refused("already owned by VolumeReplication 'dup-a'"), "refused"
    )
    assert obj["status"]["state"] == "Unknown"
    assert condition(obj, "Completed")["status"] == "False"
    listed = await env.client.list_all(CSI_ADDONS_VOLUME_REPLICATION, env.ns, type=dict)
    assert [(o["metadata"]["name"], o["spec"]["replicationState"]) for o in listed.items] == [
        ("dup-a", "primary")
    ]
    claim = await env.get(PERSISTENT_VOLUME_CLAIM, "data")
    assert claim["metadata"]["annotations"][OWNER] == "dup-a"
    # The owner goes: the claim is free, and the other one takes it.
    await env.client.delete(VOLUME_REPLICATION, "dup-a", env.ns)
    await env.settled(VOLUME_REPLICATION, "dup-b", "Secondary")
    claim = await env.get(PERSISTENT_VOLUME_CLAIM, "data")
    assert claim["metadata"]["annotations"][OWNER] == "dup-b"


async def test_two_groups_with_one_selector_do_not_fight_over_the_claims(env):
    labels = {"app": "db"}
    for name in ("d1", "d2", "d3"):
        await env.pvc(name, labels)
    await env.vgr("grp-a", "dell", labels)
    await env.settled(VOLUME_GROUP_REPLICATION, "grp-a", "Primary")
    await env.vgr("grp-b", "dell", labels)
    obj = await env.seen(
        VOLUME_GROUP_REPLICATION,
        "grp-b",
        _refused("already owned by VolumeGroupReplication 'grp-a'"),
        "refused",
    )
    assert condition(obj, "Completed")["status"] == "False"
    assert await env.get(DELL_REPLICATION_GROUP, f"{env.ns}.grp-b", None) is None
    before = {n: (await env.get(PERSISTENT_VOLUME_CLAIM, n))["metadata"] for n in ("d1", "d2", "d3")}
    await trio.sleep(1.0)  # several reconciles of both groups: nothing may write the claims
    for name, meta in before.items():
        now = (await env.get(PERSISTENT_VOLUME_CLAIM, name))["metadata"]
        assert now["resourceVersion"] == meta["resourceVersion"], f"{name} rewritten"
        assert now["labels"][DELL_LABEL] == f"{env.ns}.grp-a"
        assert now["annotations"][GROUP_OWNER] == "grp-a"


async def test_a_group_cannot_take_a_claim_a_volume_replication_owns(env):
    await env.pvc("solo", {"app": "db"})
    await env.pvc("other", {"app": "db"})
    await env.vr("solo-rep", "trident", "solo")
    await env.settled(VOLUME_REPLICATION, "solo-rep", "Primary")
    await env.vgr("grp", "trident", {"app": "db"})
    await env.seen(
        VOLUME_GROUP_REPLICATION, "grp", _refused("owned by VolumeReplication 'solo-rep'"), "refused"
    )


@pytest.mark.parametrize("backend", ["ceph", "dell"])
async def test_an_unbound_claim_is_not_reported_promoted(env, backend):
    await env.pvc("pending", bound=False)
    await env.vr("early", backend, "pending")
    obj = await env.seen(VOLUME_REPLICATION, "early", _refused("is not bound to any PV"), "not bound")
    assert obj["status"]["state"] == "Unknown"
    assert condition(obj, "Completed")["reason"] == "FailedToPromote"
    # Nothing was written to the backend for it.
    assert await env.get(CSI_ADDONS_VOLUME_REPLICATION, "early") is None
    assert await env.get(DELL_REPLICATION_GROUP, f"{env.ns}.early", None) is None
    await env.bind("pending")
    await env.settled(VOLUME_REPLICATION, "early", "Primary")


@pytest.mark.parametrize("backend", ["ceph", "trident"])
async def test_a_replicated_claim_is_protected_until_its_replication_goes(env, backend):
    await env.pvc("data")
    await env.vr("data-rep", backend, "data")
    await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    claim = await env.get(PERSISTENT_VOLUME_CLAIM, "data")
    assert PROTECTION in claim["metadata"]["finalizers"]
    assert claim["metadata"]["annotations"][OWNER] == "data-rep"

    await env.client.delete(PERSISTENT_VOLUME_CLAIM, "data", env.ns)
    await trio.sleep(0.5)
    claim = await env.get(PERSISTENT_VOLUME_CLAIM, "data")
    assert claim is not None, "the claim went with its replication"
    assert claim["metadata"].get("deletionTimestamp")
    assert claim["metadata"]["finalizers"] == [PROTECTION]  # the built-in protection let go, ours did not
    # Still replicated while it exists: a state change is applied.
    await env.set_state(VOLUME_REPLICATION, "data-rep", "secondary")
    await env.settled(VOLUME_REPLICATION, "data-rep", "Secondary")

    await env.client.delete(VOLUME_REPLICATION, "data-rep", env.ns)

    async def all_gone():
        return (
            await env.get(VOLUME_REPLICATION, "data-rep") is None
            and await env.get(PERSISTENT_VOLUME_CLAIM, "data") is None
        )

    await env.eventually(all_gone, what="replication, then claim, gone")
    for res in (CSI_ADDONS_VOLUME_REPLICATION,):
        assert (await env.client.list_all(res, env.ns, type=dict)).items == []


async def test_a_group_member_leaving_is_released(env):
    await env.pvc("m1", {"app": "db"})
    await env.pvc("m2", {"app": "db"})
    await env.vgr("grp", "ceph", {"app": "db"})
    await env.settled(VOLUME_GROUP_REPLICATION, "grp", "Primary")
    await env.client.merge_patch(
        PERSISTENT_VOLUME_CLAIM, "m2", {"metadata": {"labels": {"app": None}}}, env.ns, type=dict
    )

    async def released():
        claim = await env.get(PERSISTENT_VOLUME_CLAIM, "m2")
        meta = claim["metadata"]
        return GROUP_OWNER not in (meta.get("annotations") or {}) and PROTECTION not in (
            meta.get("finalizers") or ()
        )

    await env.eventually(released, what="m2 released")
    kept = await env.get(PERSISTENT_VOLUME_CLAIM, "m1")
    assert kept["metadata"]["annotations"][GROUP_OWNER] == "grp"


async def test_a_missing_class_keeps_the_last_known_state(env):
    await env.pvc("data")
    await env.vr("data-rep", "ceph", "data")
    await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    await env.client.delete(VOLUME_REPLICATION_CLASS, "ceph-replication")
    obj = await env.seen(VOLUME_REPLICATION, "data-rep", _refused("not found"), "class missing reported")
    assert obj["status"]["state"] == "Primary"
    assert condition(obj, "Degraded")["status"] == "True"
    await env.classes("ceph")  # back: reconciled again
    await env.settled(VOLUME_REPLICATION, "data-rep", "Primary", healthy=True)


async def test_a_volume_replication_of_a_group_drives_the_group(env):
    for name in ("g1", "g2"):
        await env.pvc(name, {"app": "db"})
    await env.vgr("grp", "ceph", {"app": "db"}, state="secondary")
    await env.settled(VOLUME_GROUP_REPLICATION, "grp", "Secondary")
    klass = await env.classes("ceph")
    source = {"apiGroup": "replication.unified.io", "kind": "VolumeGroupReplication", "name": "grp"}
    await env.create(
        VOLUME_REPLICATION,
        {
            "metadata": {"name": "grp-rep"},
            "spec": {"volumeReplicationClass": klass, "dataSource": source, "replicationState": "primary"},
        },
    )
    # The group is promoted through it, and it reports the group's outcome.
    obj = await env.settled(VOLUME_REPLICATION, "grp-rep", "Primary")
    assert "all 2 volumes promoted" in obj["status"]["message"]
    group = await env.get(VOLUME_GROUP_REPLICATION, "grp")
    assert group["spec"]["replicationState"] == "primary"
    assert group["metadata"]["annotations"][OWNER] == "grp-rep"
    await env.set_state(VOLUME_REPLICATION, "grp-rep", "secondary")
    await env.settled(VOLUME_REPLICATION, "grp-rep", "Secondary", healthy=True)
    await env.settled(VOLUME_GROUP_REPLICATION, "grp", "Secondary", healthy=True)
    # One driver per group.
    await env.create(
        VOLUME_REPLICATION,
        {
            "metadata": {"name": "grp-rep-2"},
            "spec": {"volumeReplicationClass": klass, "dataSource": source, "replicationState": "primary"},
        },
    )
    await env.seen(
        VOLUME_REPLICATION, "grp-rep-2", _refused("owned by VolumeReplication 'grp-rep'"), "refused"
    )
    assert (await env.get(VOLUME_GROUP_REPLICATION, "grp"))["spec"]["replicationState"] == "secondary"
    # Deleting the driver lets go of the group, which stays as it is (the refused one goes first, or it would
    # take the group over).
    await env.client.delete(VOLUME_REPLICATION, "grp-rep-2", env.ns)
    await env.eventually(lambda: _gone(env, "grp-rep-2"), what="grp-rep-2 deleted")
    await env.client.delete(VOLUME_REPLICATION, "grp-rep", env.ns)

    async def released():
        group = await env.get(VOLUME_GROUP_REPLICATION, "grp")
        return OWNER not in (group["metadata"].get("annotations") or {}) and group

    group = await env.eventually(released, what="group released")
    assert group["status"]["state"] == "Secondary"


async def _gone(env, name):
    return await env.get(VOLUME_REPLICATION, name) is None


async def test_claiming_from_a_stale_store_decides_on_the_claim_as_it_is(env, monkeypatch):
    from couchestor.replication.controller import Key

    await env.pvc("data")
    await env.pvc("free")

    async def stored():
        return env.controller.pvcs.store.get("data", env.ns) and env.controller.pvcs.store.get("free", env.ns)

    await env.eventually(stored, what="claims in the controller's store")
    stale = {n: env.controller.pvcs.store.get(n, env.ns) for n in ("data", "free")}
    # Meanwhile another writer takes one claim, and the other merely changes.
    await env.client.merge_patch(
        PERSISTENT_VOLUME_CLAIM, "data", {"metadata": {"annotations": {OWNER: "other"}}}, env.ns, type=dict
    )
    await env.client.merge_patch(
        PERSISTENT_VOLUME_CLAIM, "free", {"metadata": {"labels": {"x": "y"}}}, env.ns, type=dict
    )
    monkeypatch.setattr(env.controller.pvcs.store, "get", lambda name, namespace=None: stale.get(name))
    errors = await env.controller._protect(Key("VolumeReplication", env.ns, "mine"), ["data", "free"])
    assert errors == [f"PersistentVolumeClaim {env.ns}/data is already owned by VolumeReplication 'other'"]
    taken = await env.get(PERSISTENT_VOLUME_CLAIM, "free")
    assert taken["metadata"]["annotations"][OWNER] == "mine"
    assert PROTECTION in taken["metadata"]["finalizers"]
    kept = await env.get(PERSISTENT_VOLUME_CLAIM, "data")
    assert kept["metadata"]["annotations"][OWNER] == "other"
