"""The emulated cluster: Kubernetes API server emulator, Mayastor and workload simulators."""
