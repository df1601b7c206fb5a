"""All three simulated replication backends at once, for the demo cluster and ``couchestor sim``."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from couchestor.kube.client import KubeClient
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

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Install the backend CRDs, then run the simulators until cancelled; ``started`` once all three
        have listed their resource."""
        await install_backend_crds(self.ceph.client)
        async with trio.open_nursery() as nursery:
            for sim in (self.ceph, self.trident, self.dell):
                await nursery.start(sim.run)
            task_status.started()
