"""Resource identities, labels and names the replication controllers use."""

from __future__ import annotations

from couchestor.kube.resources import Resource
from k8s_schemas import replication

VOLUME_REPLICATION = Resource(
    replication.GROUP, replication.VERSION, "volumereplications", "VolumeReplication", True
)
VOLUME_GROUP_REPLICATION = Resource(
    replication.GROUP, replication.VERSION, "volumegroupreplications", "VolumeGroupReplication", True
)
VOLUME_REPLICATION_CLASS = Resource(
    replication.GROUP, replication.VERSION, "volumereplicationclasses", "VolumeReplicationClass", False
)
VOLUME_GROUP_REPLICATION_CLASS = Resource(
    replication.GROUP,
    replication.VERSION,
    "volumegroupreplicationclasses",
    "VolumeGroupReplicationClass",
    False,
)

# The backends' own resources.
CSI_ADDONS_VOLUME_REPLICATION = Resource(
    "replication.storage.openshift.io", "v1alpha1", "volumereplications", "VolumeReplication", True
)
TRIDENT_MIRROR_RELATIONSHIP = Resource(
    "trident.netapp.io", "v1", "tridentmirrorrelationships", "TridentMirrorRelationship", True
)
DELL_REPLICATION_GROUP = Resource(
    "replication.storage.dell.com", "v1", "dellcsireplicationgroups", "DellCSIReplicationGroup", False
)

FINALIZER = "replication.unified.io/finalizer"
# On every backend object the controllers create: who owns it. The uid, not the name, because a label value
# holds at most 63 characters and an object name up to 253; a recreated owner (new uid) never adopts the
# objects of its predecessor.
OWNER_UID_LABEL = "replication.unified.io/owner-uid"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "couchestor-replication"

# On every claim a replication object replicates, as csi-addons does with its own group's names (the
# ``replication.storage.openshift.io`` keys are csi-addons' own: on Ceph its controller writes them on the same
# claims, so sharing them would make a group member look owned by both a VolumeReplication and a
# VolumeGroupReplication). The annotation names the one owner a claim can have; the finalizer keeps the claim
# until its owner has released it.
VOLUME_REPLICATION_OWNER = "replication.unified.io/volume-replication-name"
VOLUME_GROUP_REPLICATION_OWNER = "replication.unified.io/volume-group-replication-name"
PVC_PROTECTION_FINALIZER = "replication.unified.io/pvc-protection"
