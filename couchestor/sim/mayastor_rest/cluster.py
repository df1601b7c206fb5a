"""A cluster of Mayastor 2.x: DiskPools, PVs and PVCs in Kubernetes, volumes behind the simulated REST API.

:func:`start_rest_cluster` is what ``couchestor sim mayastor --backend rest``, the demo and the tests use to
stand up the same cluster a :class:`~couchestor.sim.populate.ClusterSpec` describes for the MayastorVolume
simulator, without MayastorVolume objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import trio

from couchestor.kube.client import KubeClient
from couchestor.sim.mayastor_rest.simulator import RestSimulator
from couchestor.sim.mayastor_rest.state import Release
from couchestor.sim.populate import ClusterSpec, populate_pools, populate_volumes


async def start_rest_cluster(
    nursery: trio.Nursery,
    client: KubeClient,
    spec: ClusterSpec,
    *,
    time_scale: float = 1.0,
    tick: float = 0.2,
    address: str = "127.0.0.1:0",
    progress: Callable[[int, int], None] | None = None,
    release: Release = "2.8+",
    mixed: bool = False,
) -> RestSimulator:
    """Create the pools of ``spec``, start a :class:`RestSimulator` serving on ``address`` in ``nursery``, give
    it every volume (its replicas on the pools of the volume's tier, in turn), then create the PVs and PVCs.

    ``release`` is the Mayastor release played (see :class:`~.state.ControlPlane`). ``mixed`` makes the cluster
    look like a real one: of every ten volumes, one is unpublished (its application scaled down: no target),
    one is Degraded (a replica faulted; Mayastor replaces it after its grace period) and one is one replica
    short, so Mayastor itself rebuilds a new replica from the start.

    Raises :class:`RuntimeError` if the simulator did not take every DiskPool (one it cannot read).
    """
    await populate_pools(client, spec)
    simulator = RestSimulator(
        client,
        namespace=spec.mayastor_namespace,
        time_scale=time_scale,
        tick=tick,
        address=address,
        release=release,
    )
    await nursery.start(simulator.run)  # started once it has listed the DiskPools just created
    missing = {p.name for p in spec.pools} - set(simulator.plane.cluster.pools)
    if missing:
        raise RuntimeError(f"the Mayastor simulator did not take DiskPools {', '.join(sorted(missing))}")
    by_tier: dict[str, list[str]] = defaultdict(list)
    for pool in spec.pools:
        by_tier[pool.tier].append(pool.name)
    turns: dict[str, int] = defaultdict(int)
    for n, volume in enumerate(spec.volumes):
        kind = n % 10 if mixed else -1  # 3: unpublished, 5: Degraded, 7: rebuilt by Mayastor itself
        pools = by_tier[volume.tier]
        first = turns[volume.tier]
        turns[volume.tier] += spec.replicas
        replicas = spec.replicas + 1 if kind == 5 and spec.replicas < len(pools) else spec.replicas
        placed = [pools[(first + i) % len(pools)] for i in range(min(replicas, len(pools)))]
        created = simulator.plane.create_volume(
            volume.uuid,
            size=volume.size,
            replicas=replicas,
            topology=None,
            now=simulator.now(),
            pools=placed,
            published=kind != 3,
        )
        if kind == 5 and replicas > 1:
            simulator.fault_replica(volume.uuid, created.replicas[-1].pool)
        elif kind == 7:
            created.num_replicas += 1  # Mayastor places and rebuilds the missing replica itself
    await populate_volumes(client, spec, mayastor_volumes=False, progress=progress)
    return simulator


__all__ = ["start_rest_cluster"]
