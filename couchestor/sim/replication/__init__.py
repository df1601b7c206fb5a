"""Simulated replication backends for the emulated cluster: each plays its vendor's controller for that
vendor's resource (state transitions after a configurable time, failures on demand), against the API server.

- :class:`CephCsiAddonsSimulator`: csi-addons ``VolumeReplication`` (Ceph RBD mirroring).
- :class:`TridentSimulator`: ``TridentMirrorRelationship``.
- :class:`DellSimulator`: ``DellCSIReplicationGroup``.
- :func:`install_backend_crds`: registers the three resources (simulation CRDs, not the vendors').
- :class:`SimulatedBackends`: the CRDs and all three simulators in one task (for the demo cluster).
"""

from couchestor.sim.replication.backends import (
    BackendSimulator as BackendSimulator,
    CephCsiAddonsSimulator as CephCsiAddonsSimulator,
    DellSimulator as DellSimulator,
    TridentSimulator as TridentSimulator,
)
from couchestor.sim.replication.crds import (
    backend_crds as backend_crds,
    install_backend_crds as install_backend_crds,
)
from couchestor.sim.replication.run import SimulatedBackends as SimulatedBackends
