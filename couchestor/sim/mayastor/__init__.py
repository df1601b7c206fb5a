"""Mayastor control-plane simulator: plays the control plane's part for MayastorVolumes and DiskPools.

- :mod:`.model` -- the simulated state (pools, volumes, replicas) and the control plane's rules as plain
  functions: placement on scale-up, victim choice on scale-down, rebuild progress, faults.
- :mod:`.invariant` -- the no-data-loss invariant checker, fed every replica transition.
"""
