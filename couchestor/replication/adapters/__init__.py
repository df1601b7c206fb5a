"""Backend adapters: translate a :class:`~couchestor.replication.model.Request` into a backend's own resource
and read that resource's state back. Pure functions over plain data; the controller does the I/O.

=================  ==============================================  =====================================
Backend            Provisioner                                     Resource (one per ...)
=================  ==============================================  =====================================
Ceph RBD           ``rbd.csi.ceph.com`` (Rook: ``<ns>.rbd.csi...``)  csi-addons VolumeReplication (PVC)
NetApp Trident     ``csi.trident.netapp.io``                        TridentMirrorRelationship (request)
Dell PowerStore    ``csi-powerstore.dellemc.com``                   DellCSIReplicationGroup (request)
=================  ==============================================  =====================================
"""

from __future__ import annotations

from couchestor.replication.adapters.base import Adapter as Adapter, UnknownProvisioner as UnknownProvisioner
from couchestor.replication.adapters.ceph import CephAdapter
from couchestor.replication.adapters.dell import DellAdapter
from couchestor.replication.adapters.trident import TridentAdapter

ADAPTERS: tuple[Adapter, ...] = (CephAdapter(), TridentAdapter(), DellAdapter())


def adapter_for(provisioner: str) -> Adapter:
    """The adapter serving ``provisioner``; raises :class:`UnknownProvisioner` naming the supported ones."""
    for adapter in ADAPTERS:
        if adapter.serves(provisioner):
            return adapter
    supported = ", ".join(a.provisioner_hint for a in ADAPTERS)
    raise UnknownProvisioner(
        f"provisioner {provisioner!r} has no replication backend (supported: {supported})"
    )
