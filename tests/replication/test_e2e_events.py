"""Events mark outcomes, once: a restarted controller does not repeat them."""

from __future__ import annotations

import trio

from couchestor.kube.resources import EVENT
from couchestor.replication import ReplicationController
from couchestor.replication.controller import Key
from couchestor.replication.resources import VOLUME_REPLICATION
from tests.replication.harness import FAST, condition


async def _events(env, name):
    listed = await env.client.list_all(EVENT, env.ns, type=dict)
    return [(e["type"], e["reason"]) for e in listed.items if e["involvedObject"]["name"] == name]


async def test_outcome_events_and_quiet_restart(env):
    await env.pvc("data")
    env.ceph.failing.add("data")
    await env.vr("data-rep", "ceph", "data")

    async def degraded():
        obj = await env.get(VOLUME_REPLICATION, "data-rep")
        return condition(obj, "Degraded").get("status") == "True"

    await env.eventually(degraded, what="Degraded")
    env.ceph.failing.clear()
    await env.settled(VOLUME_REPLICATION, "data-rep", "Primary")

    async def both():
        events = await _events(env, "data-rep")
        wanted = {("Warning", "ReplicationDegraded"), ("Normal", "ReplicationCompleted")}
        return wanted <= set(events) and events

    before = await env.eventually(both, what="both events")

    # A second controller (as after a restart or a leader change) visits the settled object: no new Event.
    second = ReplicationController(env.client, None, FAST)
    async with trio.open_nursery() as inner:
        await inner.start(second.run)
        for reflector in (second.vrs, second.vr_classes, second.pvcs):
            await reflector.store.wait_synced()
        await second.reconcile(Key("VolumeReplication", env.ns, "data-rep"))
        assert await _events(env, "data-rep") == before
        inner.cancel_scope.cancel()
