"""With --enable-replication the operator runs the replication controllers, and the volumes of one
VolumeGroupReplication are tiered together (no groupLabel needed on the policy)."""

from __future__ import annotations

import pytest

from couchestor.kube import resources
from couchestor.replication.resources import VOLUME_GROUP_REPLICATION, VOLUME_GROUP_REPLICATION_CLASS
from couchestor.sim.replication import CephCsiAddonsSimulator, install_backend_crds
from k8s_schemas import crds
from tests.operator.harness import policy_body
from tests.operator.test_groups import wait_group_recorded

pytestmark = pytest.mark.prometheus


@pytest.fixture
def loads():
    # Alone, neither member is hot (5000 IOPS); as one replication group they are (5600).
    return {"data": ("cold", 3000.0, "pg"), "wal": ("cold", 2600.0, "pg"), "conf": ("cold", 10.0, "pg")}


async def test_volume_group_replication_members_are_tiered_together(env):
    for crd in (
        crds.volume_replication_crd(),
        crds.volume_replication_class_crd(),
        crds.volume_group_replication_crd(),
        crds.volume_group_replication_class_crd(),
    ):
        await env.client.create(resources.CUSTOM_RESOURCE_DEFINITION, crd, type=dict)
    await install_backend_crds(env.client)
    ceph = CephCsiAddonsSimulator(env.client, transition_seconds=0.2)
    env.nursery.start_soon(ceph.run)
    await env.client.create(
        VOLUME_GROUP_REPLICATION_CLASS,
        {"metadata": {"name": "ceph"}, "spec": {"provisioner": "rbd.csi.ceph.com", "parameters": {}}},
        type=dict,
    )
    await env.client.create(
        VOLUME_GROUP_REPLICATION,
        {
            "metadata": {"name": "pg"},
            "spec": {
                "volumeGroupReplicationClass": "ceph",
                "selector": {"matchLabels": {"group": "pg"}},
                "replicationState": "primary",
            },
        },
        "apps",
        type=dict,
    )
    # Room for the three members' rebuilds at once (admission never exceeds the rebuild limits).
    await env.apply_policy(policy_body(maxConcurrentMigrations=1, maxRebuildsPerNode=3, maxRebuildsPerPool=3))
    await env.start_operator(enable_replication="true")

    async def listed():
        vgr = await env.client.get(VOLUME_GROUP_REPLICATION, "pg", "apps", type=dict)
        refs = (vgr.get("status") or {}).get("persistentVolumeClaimsRefList") or []
        return sorted(r["name"] for r in refs) == ["data-conf", "data-data", "data-wal"]

    await env.eventually(listed, what="the replication controller listing the group's claims")
    entries = await wait_group_recorded(env)
    assert all(e.success for e in entries)
    assert {name: await env.tiers(name) for name in ("data", "wal", "conf")} == {
        "data": ["hot"],
        "wal": ["hot"],
        "conf": ["hot"],
    }
    assert env.simulator.checker.violations == []
