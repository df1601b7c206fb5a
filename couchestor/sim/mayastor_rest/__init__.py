"""A simulated Mayastor 2.x control plane: its ``/v0`` REST API, real-schema DiskPools, the invariant."""

from couchestor.sim.mayastor_rest.app import RestApp
from couchestor.sim.mayastor_rest.simulator import RestSimulator, diskpool_status
from couchestor.sim.mayastor_rest.state import ControlPlane, RestError

__all__ = ["ControlPlane", "RestApp", "RestError", "RestSimulator", "diskpool_status"]
