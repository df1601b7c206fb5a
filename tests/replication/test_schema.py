"""The generated CRDs as the emulator enforces them: enums, required fields, immutability, short names."""

from __future__ import annotations

import pytest

from couchestor.kube.errors import Invalid
from couchestor.replication.resources import (
    VOLUME_GROUP_REPLICATION,
    VOLUME_GROUP_REPLICATION_CLASS,
    VOLUME_REPLICATION,
)
from k8s_schemas.replication import LEGACY_VERSION, legacy_replication_state


def _vr(**spec):
    return {"metadata": {"name": "v"}, "spec": {"volumeReplicationClass": "c", **spec}}


async def test_replication_state_enum_and_pvc_required(env):
    with pytest.raises(Invalid) as bad_state:
        await env.create(VOLUME_REPLICATION, _vr(pvcName="p", replicationState="failover"))
    assert "replicationState" in str(bad_state.value)
    with pytest.raises(Invalid) as no_pvc:
        await env.create(VOLUME_REPLICATION, _vr(replicationState="primary"))
    assert "pvcName" in str(no_pvc.value)
    # The csi-addons spelling of the volume is accepted.
    body = _vr(replicationState="primary", dataSource={"kind": "PersistentVolumeClaim", "name": "p"})
    created = await env.create(VOLUME_REPLICATION, body)
    assert created["spec"]["autoResync"] is False  # defaulted, as csi-addons does


async def test_class_and_pvc_are_immutable_state_is_not(env):
    await env.create(VOLUME_REPLICATION, _vr(pvcName="p", replicationState="primary"))
    with pytest.raises(Invalid) as changed:
        await env.client.merge_patch(
            VOLUME_REPLICATION, "v", {"spec": {"volumeReplicationClass": "other"}}, env.ns, type=dict
        )
    assert "immutable" in str(changed.value)
    patched = await env.client.merge_patch(
        VOLUME_REPLICATION, "v", {"spec": {"replicationState": "secondary"}}, env.ns, type=dict
    )
    assert patched["spec"]["replicationState"] == "secondary"


async def test_group_class_needs_a_provisioner(env):
    with pytest.raises(Invalid) as empty:
        await env.create(
            VOLUME_GROUP_REPLICATION_CLASS, {"metadata": {"name": "g"}, "spec": {"provisioner": ""}}
        )
    assert "provisioner" in str(empty.value)
    with pytest.raises(Invalid) as no_selector:
        await env.create(
            VOLUME_GROUP_REPLICATION,
            {
                "metadata": {"name": "g"},
                "spec": {"volumeGroupReplicationClass": "g", "replicationState": "primary"},
            },
        )
    assert "selector" in str(no_selector.value)


def test_legacy_states_map_onto_v1alpha2():
    assert LEGACY_VERSION == "v1alpha1"
    assert legacy_replication_state("source") == "primary"
    assert legacy_replication_state("demoting") == "secondary"
    assert legacy_replication_state("syncing") == "resync"
    assert legacy_replication_state("failed") is None


async def test_data_source_may_name_a_volume_group_replication(env):
    # csi-addons' VolumeReplication replicates a whole group through a dataSource of this kind.
    group = {"kind": "VolumeGroupReplication", "name": "g", "apiGroup": "replication.unified.io"}
    created = await env.create(VOLUME_REPLICATION, _vr(replicationState="primary", dataSource=group))
    assert created["spec"]["dataSource"]["kind"] == "VolumeGroupReplication"
    pod = dict(
        _vr(replicationState="primary", dataSource={"kind": "Pod", "name": "p"}), metadata={"name": "w"}
    )
    with pytest.raises(Invalid) as refused:
        await env.create(VOLUME_REPLICATION, pod)
    assert "VolumeGroupReplication" in str(refused.value)
    both = dict(_vr(replicationState="primary", pvcName="p", dataSource=group), metadata={"name": "x"})
    with pytest.raises(Invalid) as ambiguous:
        await env.create(VOLUME_REPLICATION, both)
    assert "not both" in str(ambiguous.value)
