"""Volume replication (seed 003): controllers for ``replication.unified.io`` VolumeReplication and
VolumeGroupReplication, compatible with kubernetes-csi-addons, over three backends (Ceph RBD through
csi-addons, NetApp Trident, Dell PowerStore).

- :mod:`~couchestor.replication.controller`: :func:`run_replication` / :class:`ReplicationController`.
- :mod:`~couchestor.replication.adapters`: one adapter per backend (pure translation both ways).
- :mod:`~couchestor.replication.status`: member statuses -> object status (pure).
- :mod:`~couchestor.replication.queue`: the deduplicating work queue with delayed re-adds.
"""

from couchestor.replication.controller import (
    ControllerOptions as ControllerOptions,
    ReplicationController as ReplicationController,
    run_replication as run_replication,
)
