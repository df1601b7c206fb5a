"""CoucheStor: a storage-tiering operator for OpenEBS Mayastor volumes.

The package is organised one concern per module:

- :mod:`couchestor.kube` -- a small Kubernetes client on httpx + trio (config, calls, watch streams, stores).
- :mod:`couchestor.sim` -- the emulated cluster (API server emulator, Mayastor and workload simulators).
- :mod:`couchestor.cli` -- the ``couchestor`` command.

The wire types live in the sibling package :mod:`k8s_schemas`.
"""

__version__ = "0.1.0"
