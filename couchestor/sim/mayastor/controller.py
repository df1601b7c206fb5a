"""The simulator's I/O: plays the Mayastor control plane against a Kubernetes API server.

It is an ordinary client of the API server (list/watch and patch over HTTP, like a real controller), never a
shortcut into the emulator's memory, so it runs the same against the emulator or a kind cluster:

- DiskPools (in ``namespace``) become simulated pools; their status (``pool_status``, ``capacity``, ``used``,
  ``available``) is written back whenever it changes.
- MayastorVolumes (in ``namespace``): a new one gets its replicas placed and Synced at once (a new volume is
  empty); a change of ``spec.numReplicas`` or of the topology inclusion scales it as the rules of
  :mod:`.model` say; rebuilds progress on a ticker; status is merge-patched through ``/status``.
- PersistentVolumes of the Mayastor CSI driver without a MayastorVolume get one (name = volume handle).

Simulated time runs ``time_scale`` times faster than trio's clock. Every replica transition is reported to
the :class:`~.invariant.InvariantChecker`, together with whether the volume carries a migration intent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio
from msgspec import UNSET

from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import AlreadyExists, KubeError, NotFound
from couchestor.kube.reflector import Reflector
from couchestor.kube.store import Change, Store
from couchestor.sim.mayastor.invariant import InvariantChecker
from couchestor.sim.mayastor.model import Cluster, Pool, PoolState, Replica, Volume
from couchestor.sim.populate import SIM_CAPACITY
from k8s_schemas.annotations import MAYASTOR_CSI_DRIVER, MIGRATION_INTENT
from k8s_schemas.core import PersistentVolume
from k8s_schemas.mayastor import DiskPool, MayastorVolumeStatusSchema, PublishedMayastorVolume
from k8s_schemas.quantity import parse_quantity

log = logging.getLogger("couchestor.sim.mayastor")

#: Pause after a refused status write, so an unreachable API server is not asked again at every tick.
_RETRY_PAUSE = 0.5


@dataclass
class MayastorSimulator:
    """Run with ``await nursery.start(sim.run)``; ``started`` once every store synced and state is loaded."""

    client: KubeClient
    namespace: str = "mayastor"
    time_scale: float = 1.0
    tick: float = 0.2
    default_bandwidth: float = 200 * 2**20
    checker: InvariantChecker = field(default_factory=InvariantChecker)
    cluster: Cluster = field(default_factory=Cluster)
    create_for_pvs: bool = True
    _t0: float = 0.0
    _dirty_volumes: set[str] = field(default_factory=set)
    _dirty_pools: set[str] = field(default_factory=set)
    _intents: dict[str, bool] = field(default_factory=dict)
    #: The volumes as the API server shows them, and a digest of the status last written for each: a status
    #: the API server already shows is not written again (a cluster adopted whole is not rewritten whole).
    _seen: Store[PublishedMayastorVolume] | None = None
    _written: dict[str, int] = field(default_factory=dict)
    #: Volumes with a replica not yet synced after the last tick: a tick advances these and the touched ones
    #: (every change that can start a rebuild touches its volume), not all 100,000 of a large cluster.
    _rebuilding: set[str] = field(default_factory=set)
    _wake: trio.Event = field(default_factory=trio.Event)
    status_writes: int = 0

    def now(self) -> float:
        """Simulated seconds since the simulator started."""
        return (trio.current_time() - self._t0) * self.time_scale

    # --- fault knobs (tests and the demo call these) --------------------------------------------------------

    def set_pool_state(self, pool: str, state: PoolState) -> None:
        self.cluster.set_pool_state(pool, state)
        self._dirty_pools.add(pool)
        self._touch_all()

    def node_down(self, node: str, down: bool = True) -> None:
        if down:
            self.cluster.down_nodes.add(node)
        else:
            self.cluster.down_nodes.discard(node)
        for pool in self.cluster.pools.values():
            if pool.node == node:
                pool.state = "Offline" if down else "Online"
                self._dirty_pools.add(pool.name)
        self._touch_all()

    def stall_rebuilds(
        self, pool: str | None = None, volume: str | None = None, stalled: bool = True
    ) -> None:
        if pool is not None:
            self.cluster.pools[pool].stalled = stalled
        if volume is not None:
            self.cluster.volumes[volume].stalled = stalled
        self._touch_all()

    def fault_replica(self, volume: str, pool: str) -> None:
        self.cluster.fault_replica(volume, pool, self.now())
        self._touch(volume)

    def set_bandwidth(self, pool: str, bytes_per_second: float) -> None:
        self.cluster.pools[pool].rebuild_bandwidth = bytes_per_second

    # --- running --------------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._t0 = trio.current_time()
        pools = Reflector.for_resource(self.client, resources.DISK_POOL, DiskPool, namespace=self.namespace)
        volumes = Reflector.for_resource(
            self.client, resources.MAYASTOR_VOLUME, PublishedMayastorVolume, namespace=self.namespace
        )
        pvs = Reflector.for_resource(self.client, resources.PERSISTENT_VOLUME, PersistentVolume)
        self._seen = volumes.store
        async with trio.open_nursery() as nursery:
            for reflector in (pools, volumes, pvs):
                nursery.start_soon(reflector.run)
            for reflector in (pools, volumes, pvs):
                await reflector.store.wait_synced()
            # Pools first, so that volumes adopted next can be placed.
            pool_changes = pools.store.subscribe(initial=False)
            for pool in pools.store.list():
                self._on_pool(pool)
            volume_changes = volumes.store.subscribe()
            nursery.start_soon(
                self._follow, pool_changes, lambda c: self._on_pool(pools.store.get_key(c.key))
            )
            nursery.start_soon(
                self._follow, volume_changes, lambda c: self._on_volume(c, volumes.store.get_key(c.key))
            )
            if self.create_for_pvs:
                nursery.start_soon(self._follow_pvs, pvs, volumes)
            nursery.start_soon(self._ticker)
            task_status.started()

    async def _follow(self, changes: Any, handle: Any) -> None:
        async for change in changes:
            handle(change)
            self._wake.set()

    def _on_pool(self, obj: DiskPool | None) -> None:
        if obj is None or not isinstance(obj.metadata.name, str):
            return
        name = obj.metadata.name
        pool = self.cluster.pools.get(name)
        labels = obj.topology_labels
        if pool is None:
            capacity = obj.capacity_bytes or _annotated_capacity(obj)
            state: PoolState = "Online" if obj.health == "Unknown" else obj.health
            pool = Pool(
                name, obj.spec.node, labels, capacity, obj.used_bytes or 0, state, self.default_bandwidth
            )
            self.cluster.pools[name] = pool
            self._dirty_pools.add(name)
        else:
            pool.labels = labels
            pool.node = obj.spec.node

    def _on_volume(self, change: Change, obj: PublishedMayastorVolume | None) -> None:
        name = change.key.name
        if obj is None:
            volume = self.cluster.volumes.pop(name, None)
            if volume is not None:
                for replica in volume.replicas:
                    pool = self.cluster.pools.get(replica.pool)
                    if pool is not None:
                        pool.used = max(pool.used - volume.size, 0)
                        self._dirty_pools.add(pool.name)
                self.checker.forget(name)
            self._written.pop(name, None)
            return
        has_intent = obj.metadata.annotation(MIGRATION_INTENT) is not None
        volume = self.cluster.volumes.get(name)
        if volume is None:
            volume = self._adopt(obj)
            self.cluster.volumes[name] = volume
        volume.num_replicas = obj.spec.num_replicas
        volume.inclusion = dict(obj.spec.inclusion)
        if self._intents.get(name) != has_intent:
            self._intents[name] = has_intent
            self._observe(volume)
        self._touch(name)

    def _adopt(self, obj: PublishedMayastorVolume) -> Volume:
        """A volume seen for the first time: take its replicas from status, or provision it."""
        size = obj.spec.size if isinstance(obj.spec.size, int) else 0
        name = str(obj.metadata.name)
        volume = Volume(name, self.namespace, size, obj.spec.num_replicas, dict(obj.spec.inclusion))
        if obj.status is not UNSET and obj.status.replicas:
            volume.provisioned = True
            for r in obj.status.replicas:
                volume.replicas.append(
                    Replica(
                        r.uuid if isinstance(r.uuid, str) else self.cluster.new_uuid(name),
                        r.pool,
                        r.node if isinstance(r.node, str) else "",
                        r.state,
                        r.sync_state,
                        size if r.sync_state == "Synced" else 0,
                    )
                )
            return volume
        # New and empty: the model provisions its first replicas Synced (once pools are known).
        self.cluster.reconcile(volume, self.now())
        self._dirty_pools.update(r.pool for r in volume.replicas)
        return volume

    def _touch(self, volume: str) -> None:
        self._dirty_volumes.add(volume)
        self._wake.set()

    def _touch_all(self) -> None:
        self._dirty_volumes.update(self.cluster.volumes)
        self._wake.set()

    async def _follow_pvs(
        self, pvs: Reflector[PersistentVolume], volumes: Reflector[PublishedMayastorVolume]
    ) -> None:
        async for change in pvs.store.subscribe():
            pv = pvs.store.get_key(change.key)
            if pv is None or pv.spec.csi is UNSET or pv.spec.csi.driver != MAYASTOR_CSI_DRIVER:
                continue
            handle = pv.spec.csi.volume_handle
            if volumes.store.get(handle, self.namespace) or volumes.store.get(
                str(pv.metadata.name), self.namespace
            ):
                continue
            await self._create_volume(pv, handle)

    async def _create_volume(self, pv: PersistentVolume, handle: str) -> None:
        size = pv.capacity_bytes or 0
        body = {
            "apiVersion": "openebs.io/v1",
            "kind": "MayastorVolume",
            "metadata": {"name": handle, "namespace": self.namespace},
            "spec": {"numReplicas": 1, "size": size},
        }
        try:
            await self.client.create(resources.MAYASTOR_VOLUME, body, self.namespace, type=dict)
        except AlreadyExists:
            pass
        except KubeError as exc:
            log.warning("cannot create MayastorVolume for PV %s: %s", pv.metadata.name, exc)

    async def _ticker(self) -> None:
        last = self.now()
        while True:
            with trio.move_on_after(self.tick):
                await self._wake.wait()
            self._wake = trio.Event()
            now = self.now()
            dt, last = now - last, now
            volumes = self.cluster.volumes
            candidates = (volumes.get(name) for name in sorted(self._rebuilding | self._dirty_volumes))
            rebuilding = [v for v in candidates if v is not None and _busy(v)]
            for volume in rebuilding:
                if self.cluster.advance(volume, now, dt):
                    self._dirty_volumes.add(volume.name)
            for name in list(self._dirty_volumes):
                dirty = volumes.get(name)
                if dirty is None:
                    continue
                before = {r.pool for r in dirty.replicas}
                self.cluster.advance(dirty, now, 0)
                self.cluster.reconcile(dirty, now)
                self._dirty_pools.update(before ^ {r.pool for r in dirty.replicas})
            touched = [volumes.get(name) for name in self._dirty_volumes]
            self._rebuilding = {v.name for v in (*rebuilding, *touched) if v is not None and _busy(v)}
            await self._flush()

    async def _flush(self) -> None:
        volumes, self._dirty_volumes = self._dirty_volumes, set()
        pools, self._dirty_pools = self._dirty_pools, set()
        for name in sorted(volumes):
            volume = self.cluster.volumes.get(name)
            if volume is not None:
                self._observe(volume)
        # A refused write is written again at a later flush, as a controller requeues: a status lost to an API
        # server restart would otherwise show a rebuild that finished long ago until the volume changes again.
        pending = [(resources.MAYASTOR_VOLUME, n) for n in sorted(volumes)]
        pending += [(resources.DISK_POOL, n) for n in sorted(pools)]
        for i, (res, name) in enumerate(pending):
            if not await self._write(res, name):
                for later_res, later in pending[i:]:
                    dirty = (
                        self._dirty_volumes if later_res is resources.MAYASTOR_VOLUME else self._dirty_pools
                    )
                    dirty.add(later)
                await trio.sleep(_RETRY_PAUSE)
                return

    async def _write(self, res: resources.Resource, name: str) -> bool:
        """Write the current status of ``name``; False when the API server refused it (try again later)."""
        if res is resources.MAYASTOR_VOLUME:
            volume = self.cluster.volumes.get(name)
            if volume is None:
                return True
            status = volume_status(volume)
            if self._shown(name, status):
                return True
            patch = {"status": status}
        else:
            pool = self.cluster.pools.get(name)
            if pool is None:
                return True
            patch = {"status": pool_status(pool)}
        try:
            await self.client.patch_status(res, name, patch, self.namespace, type=dict)
            self.status_writes += 1
        except NotFound:
            pass
        except KubeError as exc:
            log.warning("status of %s %s not written (will retry): %s", res.kind, name, exc)
            return False
        return True

    def _shown(self, name: str, status: dict[str, Any]) -> bool:
        """Whether the API server already shows ``status`` for volume ``name``, and it is the last one
        written (else a write of ours it has not reported yet may say otherwise)."""
        wanted = msgspec.convert(status, MayastorVolumeStatusSchema)
        digest = hash(msgspec.json.encode(wanted))
        seen = None if self._seen is None else self._seen.get(name, self.namespace)
        if seen is not None and seen.status == wanted and self._written.get(name, digest) == digest:
            return True
        self._written[name] = digest
        return False

    def _observe(self, volume: Volume) -> None:
        self.checker.observe(
            volume.name,
            self.now(),
            num_replicas=volume.num_replicas,
            replicas=[(r.uuid, r.pool, r.state, r.sync_state) for r in volume.replicas],
            has_intent=self._intents.get(volume.name, False),
        )


def _annotated_capacity(obj: DiskPool) -> int:
    text = obj.metadata.annotation(SIM_CAPACITY)
    try:
        return parse_quantity(text) if text else 0
    except ValueError:
        log.warning("DiskPool %s: bad %s annotation %r", obj.metadata.name, SIM_CAPACITY, text)
        return 0


def _busy(volume: Volume) -> bool:
    return any(r.sync_state != "Synced" or r.state == "Unknown" for r in volume.replicas)


def volume_status(volume: Volume) -> dict[str, Any]:
    """The MayastorVolume ``status`` of ``volume``, wire names."""
    return {
        "state": volume.state,
        "size": volume.size,
        "nexus": {"node": volume.nexus_node or "", "state": "Online" if volume.synced else "Faulted"},
        "replicas": [_replica(volume, r) for r in volume.replicas],
    }


def _replica(volume: Volume, r: Replica) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uuid": r.uuid,
        "pool": r.pool,
        "node": r.node,
        "uri": f"nvmf://{r.node}:8420/nqn.2019-05.io.openebs:{r.uuid}",
        "state": r.state,
        "syncState": r.sync_state,
    }
    if r.sync_state == "Syncing":
        out["rebuildProgress"] = volume.progress(r)
    return out


def pool_status(pool: Pool) -> dict[str, Any]:
    """The DiskPool ``status`` of ``pool`` (real 2.x snake_case names)."""
    return {
        "cr_state": "Created",
        "pool_status": pool.state if pool.state != "Offline" else "Unknown",
        "state": pool.state,
        "capacity": pool.capacity,
        "used": pool.used,
        "available": pool.free,
    }
