"""All three simulated replication backends at once, for the demo cluster and ``couchestor sim replication``."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from couchestor.kube.client import KubeClient
from couchestor.kube.config import ClusterConfig
from couchestor.sim.replication.backends import CephCsiAddonsSimulator, DellSimulator, TridentSimulator
from couchestor.sim.replication.crds import install_backend_crds


@dataclass
class SimulatedBackends:
    """The three simulators sharing one client; their knobs stay reachable while :meth:`run` runs."""

    ceph: CephCsiAddonsSimulator
    trident: TridentSimulator
    dell: DellSimulator

    @classmethod
    def create(cls, client: KubeClient, *, transition_seconds: float = 2.0) -> SimulatedBackends:
        return cls(
            CephCsiAddonsSimulator(client, transition_seconds=transition_seconds),
            TridentSimulator(client, transition_seconds=transition_seconds),
            DellSimulator(client, transition_seconds=transition_seconds),
        )

    def fail(self, names: Iterable[str]) -> None:
        """Make ``names`` fail in every backend: claims for Ceph and Trident, ``<namespace>.<name>`` groups for
        Dell."""
        for sim in (self.ceph, self.trident, self.dell):
            sim.failing.update(names)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Install the backend CRDs, then run the simulators until cancelled; ``started`` once all three
        have listed their resource."""
        await install_backend_crds(self.ceph.client)
        async with trio.open_nursery() as nursery:
            for sim in (self.ceph, self.trident, self.dell):
                await nursery.start(sim.run)
            task_status.started()


async def play(config: ClusterConfig, *, transition_seconds: float, failing: Iterable[str] = ()) -> None:
    """``couchestor sim replication``: play the three backends against the cluster of ``config`` until Ctrl-C
    or SIGTERM. The backend CRDs are created when missing and left in the cluster on exit."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with KubeClient(config, qps=0) as client:
            # First contact outside the nursery, so that an unreachable server is one plain error.
            await install_backend_crds(client)
            backends = SimulatedBackends.create(client, transition_seconds=transition_seconds)
            backends.fail(failing)
            async with trio.open_nursery() as nursery:
                await nursery.start(backends.run)
                print(
                    "simulating Ceph RBD (csi-addons VolumeReplication), NetApp Trident (TridentMirrorRelationship) "
                    f"and Dell PowerStore (DellCSIReplicationGroup) on {config.server}; each transition takes "
                    f"{transition_seconds:g}s. Ctrl-C stops.",
                    flush=True,
                )
                async for _ in signals:
                    print("shutting down", file=sys.stderr, flush=True)
                    nursery.cancel_scope.cancel()
                    break
