"""The Mayastor 2.x control-plane simulator as a running service: REST API, rebuild ticker, DiskPools.

:class:`RestSimulator` serves :class:`~.app.RestApp` over HTTP and, when given a Kubernetes client (the API
server emulator or a kind cluster), plays the parts of Mayastor that touch Kubernetes:

- DiskPools (``openebs.io/v1beta2`` in ``namespace``) become control-plane pools; their real-schema status
  (``cr_state``, ``pool_status``, ``capacity``, ``used``, ``available``) is written back when it changes;
- PersistentVolumes of the Mayastor CSI driver get a control-plane volume (id = volume handle) when they have
  none, as CSI provisioning would have made; the PV's migration-intent annotation tells the invariant checker
  that a migration is in flight.

Every change of a volume's replicas is reported to the :class:`InvariantChecker`. Simulated time runs
``time_scale`` times faster than trio's clock. ``run`` owns every task it starts; cancelling it stops the
server (1 s grace for open connections), the watches and the ticker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio
from msgspec import UNSET

from couchestor.endpoints import serve_asgi
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import KubeError, NotFound
from couchestor.kube.reflector import Reflector
from couchestor.kube.store import Store
from couchestor.sim.mayastor.invariant import InvariantChecker
from couchestor.sim.mayastor.model import Pool, PoolState
from couchestor.sim.mayastor_rest.app import RestApp
from couchestor.sim.mayastor_rest.state import ControlPlane, Release, RestError
from couchestor.sim.populate import SIM_CAPACITY
from k8s_schemas.annotations import MAYASTOR_CSI_DRIVER, MIGRATION_INTENT
from k8s_schemas.core import PersistentVolume
from k8s_schemas.mayastor import DiskPool
from k8s_schemas.quantity import parse_quantity

log = logging.getLogger("couchestor.sim.mayastor_rest")


@dataclass
class RestSimulator:
    """``url = await nursery.start(sim.run)``; ``plane`` is the state, ``app`` the REST app (fault knobs)."""

    client: KubeClient | None = None
    namespace: str = "mayastor"
    address: str = "127.0.0.1:0"
    time_scale: float = 1.0
    tick: float = 0.2
    default_replicas: int = 1
    #: The Mayastor release played: "2.7" (no pool cordon) or "2.8+" (see :class:`ControlPlane`).
    release: Release = "2.8+"
    checker: InvariantChecker = field(default_factory=InvariantChecker)
    plane: ControlPlane = field(default_factory=ControlPlane)
    app: RestApp = field(init=False)
    url: str = ""
    status_writes: int = 0
    _t0: float = 0.0
    _wake: trio.Event = field(default_factory=trio.Event)
    _intents: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.plane.release = self.release
        self.app = RestApp(self.plane, self.now, self._wake_up)

    def now(self) -> float:
        """Simulated seconds since ``run`` started."""
        return (trio.current_time() - self._t0) * self.time_scale

    def _wake_up(self) -> None:
        self._wake.set()

    # --- fault knobs --------------------------------------------------------------------------------------

    def fault_replica(self, volume: str, pool: str) -> None:
        self.plane.fault_replica(volume, pool, self.now())
        self._wake_up()

    def set_pool_state(self, pool: str, state: PoolState) -> None:
        self.plane.cluster.set_pool_state(pool, state)
        self.plane.changed_pools.add(pool)
        self._wake_up()

    def stall_rebuilds(self, pool: str, stalled: bool = True) -> None:
        self.plane.cluster.pools[pool].stalled = stalled

    # --- running ------------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        self._t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            if self.client is not None:
                pools = Reflector.for_resource(
                    self.client, resources.DISK_POOL, DiskPool, namespace=self.namespace
                )
                pvs = Reflector.for_resource(self.client, resources.PERSISTENT_VOLUME, PersistentVolume)
                nursery.start_soon(pools.run)
                nursery.start_soon(pvs.run)
                await pools.store.wait_synced()
                await pvs.store.wait_synced()
                for pool in pools.store.list():
                    self._on_pool(pool)
                nursery.start_soon(self._follow_pools, pools.store)
                nursery.start_soon(self._follow_pvs, pvs.store)
            self.url = await nursery.start(serve_asgi, self.app, self.address)
            nursery.start_soon(self._ticker)
            task_status.started(self.url)

    async def _follow_pools(self, store: Store[DiskPool]) -> None:
        async for change in store.subscribe(initial=False):
            obj = store.get_key(change.key)
            if obj is not None:
                self._on_pool(obj)
                self._wake_up()

    def _on_pool(self, obj: DiskPool) -> None:
        name = obj.metadata.name
        if not isinstance(name, str):
            return
        pool = self.plane.cluster.pools.get(name)
        if pool is None:
            capacity = obj.capacity_bytes or _annotated_capacity(obj)
            self.plane.add_pool(Pool(name, obj.spec.node, obj.topology_labels, capacity, obj.used_bytes or 0))
        else:
            pool.labels, pool.node = obj.topology_labels, obj.spec.node

    async def _follow_pvs(self, store: Store[PersistentVolume]) -> None:
        async for change in store.subscribe():
            pv = store.get_key(change.key)
            if pv is None or pv.spec.csi is UNSET or pv.spec.csi.driver != MAYASTOR_CSI_DRIVER:
                continue
            handle = pv.spec.csi.volume_handle
            has_intent = pv.metadata.annotation(MIGRATION_INTENT) is not None
            if handle not in self.plane.cluster.volumes:
                self._create_for(pv, handle)
            if self._intents.get(handle) != has_intent:
                self._intents[handle] = has_intent
                self._observe(handle)

    def _create_for(self, pv: PersistentVolume, handle: str) -> None:
        size = pv.capacity_bytes or 0
        try:
            self.plane.create_volume(
                handle, size=size, replicas=self.default_replicas, topology=None, now=self.now()
            )
        except RestError as exc:  # no pool can take it now: logged, as CSI would retry
            log.warning("cannot create a volume for PV %s: %s", pv.metadata.name, exc)

    async def _ticker(self) -> None:
        last = self.now()
        while True:
            with trio.move_on_after(self.tick):
                await self._wake.wait()
            self._wake = trio.Event()
            now = self.now()
            self.plane.advance(now, now - last)
            last = now
            await self._flush()

    async def _flush(self) -> None:
        volumes, self.plane.changed_volumes = self.plane.changed_volumes, set()
        pools, self.plane.changed_pools = self.plane.changed_pools, set()
        for name in sorted(volumes):
            self._observe(name)
        if self.client is None:
            return
        for name in sorted(pools):
            pool = self.plane.cluster.pools.get(name)
            if pool is not None:
                await self._write_status(name, diskpool_status(pool))

    def _observe(self, name: str) -> None:
        volume = self.plane.cluster.volumes.get(name)
        if volume is None:
            return
        self.checker.observe(
            name,
            self.now(),
            num_replicas=volume.num_replicas,
            replicas=[(r.uuid, r.pool, r.state, r.sync_state) for r in volume.replicas],
            has_intent=self._intents.get(name, False),
        )

    async def _write_status(self, name: str, status: dict[str, Any]) -> None:
        assert self.client is not None
        try:
            await self.client.patch_status(
                resources.DISK_POOL, name, {"status": status}, self.namespace, type=dict
            )
            self.status_writes += 1
        except NotFound:
            pass
        except KubeError as exc:
            log.warning("status of DiskPool %s not written: %s", name, exc)


def diskpool_status(pool: Pool) -> dict[str, Any]:
    """A DiskPool ``status`` in the real 2.x (v1beta2) schema: snake_case, sizes in bytes."""
    return {
        "cr_state": "Created",
        "pool_status": pool.state if pool.state != "Offline" else "Unknown",
        "capacity": pool.capacity,
        "used": pool.used,
        "available": pool.free,
    }


def _annotated_capacity(obj: DiskPool) -> int:
    text = obj.metadata.annotation(SIM_CAPACITY)
    try:
        return parse_quantity(text) if text else 0
    except ValueError:
        return 0


__all__ = ["RestSimulator", "diskpool_status"]
