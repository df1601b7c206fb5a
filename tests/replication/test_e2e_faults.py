"""API faults around the controller: rejected backend writes degrade and retry; dropped watches resume."""

from __future__ import annotations

from couchestor.replication.resources import VOLUME_GROUP_REPLICATION, VOLUME_REPLICATION
from tests.replication.harness import condition


async def test_rejected_backend_write_degrades_then_recovers(emulator_env, apiserver):
    env = emulator_env
    apiserver.api.chaos.add_fault(
        status=403, method="POST", path_regex=r"/tridentmirrorrelationships$", count=-1
    )
    await env.pvc("data")
    await env.vr("data-rep", "trident", "data")

    async def degraded():
        obj = await env.get(VOLUME_REPLICATION, "data-rep")
        return condition(obj, "Degraded").get("status") == "True" and obj

    obj = await env.eventually(degraded, what="Degraded after a rejected create")
    assert "cannot update the backend" in obj["status"]["message"]
    assert condition(obj, "Degraded")["reason"] == "Error"
    apiserver.api.chaos.faults.clear()
    obj = await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    assert condition(obj, "Degraded")["status"] == "False"


async def test_state_change_during_dropped_watches_is_applied(emulator_env, apiserver):
    env = emulator_env
    labels = {"app": "db"}
    for name in ("a", "b"):
        await env.pvc(name, labels)
    await env.vgr("grp", "ceph", labels)
    await env.settled(VOLUME_GROUP_REPLICATION, "grp", "Primary")
    apiserver.api.chaos.drop_watches()
    await env.set_state(VOLUME_GROUP_REPLICATION, "grp", "secondary")
    apiserver.api.chaos.drop_watches()
    obj = await env.settled(VOLUME_GROUP_REPLICATION, "grp", "Secondary")
    assert [r["name"] for r in obj["status"]["persistentVolumeClaimsRefList"]] == ["a", "b"]


async def test_backend_controller_down_then_back(env):
    await env.pvc("data")
    await env.vr("data-rep", "ceph", "data")
    await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")
    env.ceph.paused = True
    await env.set_state(VOLUME_REPLICATION, "data-rep", "secondary")

    async def waiting():
        obj = await env.get(VOLUME_REPLICATION, "data-rep")
        status = obj.get("status") or {}
        return status.get("observedGeneration") == obj["metadata"]["generation"] and obj

    obj = await env.eventually(waiting, what="new generation observed")
    # While csi-addons is down the old state is not mistaken for the new one.
    assert condition(obj, "Completed")["status"] == "False"
    assert condition(obj, "Completed")["reason"] == "Progressing"
    assert obj["status"]["state"] == "Primary"
    env.ceph.paused = False
    await env.settled(VOLUME_REPLICATION, "data-rep", "Secondary")
