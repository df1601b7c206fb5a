"""The volume backend for Mayastor 2.x: volumes over the control-plane REST API, the intent on the PV.

Where things live:

- the volume (replica count, ``replica_topology``, creation topology) is read from ``GET /v0/volumes/{id}``
  and changed only with ``PUT /v0/volumes/{id}/replica_count/{n}``; the id is the PV's CSI volume handle;
- the migration intent is the PV annotation ``storage.billyronks.io/migration`` (the same record as the CRD
  backend's), written with the PV's resourceVersion as precondition. The PV is the one Kubernetes object
  that exists exactly as long as the volume, that the operator already watches, and that an administrator
  looks at; the control plane's own ``labels`` can only be set at creation;
- the cordons this operator placed are listed in the PV annotation
  ``storage.billyronks.io/migration-cordons`` (:class:`CordonRecord`), written *before* cordoning, so a
  crash between the two leaves a record of every cordon that may exist, and cleared after lifting.

Steering. A new replica goes to the chosen pool because every other pool that could take it is cordoned for
replicas just for the duration of ``PUT replica_count`` (:func:`rules.pools_to_cordon`) or, on a release
without pool cordon (2.7 and earlier), the nodes of those pools are, under the volume's own label
(:func:`rules.nodes_to_cordon`; :attr:`RestBackend.steering` says which); the cordons are
lifted in a ``finally`` shielded from the cancellation of the step but not past the leader's fence
(:func:`couchestor.leader.fenced_cleanup`) and, if lifting fails, the step was cancelled or the process died,
by the next :meth:`RestBackend.read` of the volume or by :meth:`RestBackend.recover` (which a new leader runs
first). The record is written with the PV's resourceVersion, so a late writer can never wipe a newer record. On scale-down Mayastor picks
the victim itself; when its rules (:func:`rules.predicted_victim`) would pick a replica other than the one to
drop, the node of the one to drop is cordoned (a labelled node cordon, so nobody else's is touched) for the
duration of the call, since 2.x removes replicas on cordoned nodes first. Afterwards the remaining replicas
are verified: if Mayastor removed the wrong one, the backend re-adds a replica on the pool that lost it (the
volume keeps its healthy count throughout, because Mayastor removes a healthy replica only while more than
the new count are healthy), at most ``max_repairs`` times per migration.

Waiting. The REST API has no watch (its ``/watches`` callbacks need an endpoint the control plane can call
and report spec changes, not rebuild progress), so :meth:`RestBackend.wait_changed` polls the volume every
``poll_interval`` seconds until it differs; a migration polls one small GET per interval while it waits.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

import msgspec
import trio
from msgspec import UNSET

from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import Conflict, KubeError, NotFound
from couchestor.kube.store import Store
from couchestor.leader import fenced_cleanup
from couchestor.mayastor_rest import rules, wire
from couchestor.mayastor_rest.client import (
    AlreadyExistsError,
    FailedPreconditionError,
    MayastorRestClient,
    MayastorRestError,
    NotFoundError,
    PoolCordonUnsupported,
)
from couchestor.migration import intent as intents
from couchestor.migration.backend import BackendError, IntentConflict, VolumeState
from k8s_schemas.annotations import GROUP, MIGRATION_INTENT
from k8s_schemas.core import PersistentVolume

log = logging.getLogger("couchestor.migration.rest")

#: PV annotation: the cordons this operator holds (or may hold) for the volume's migration, as JSON.
CORDON_RECORD = f"{GROUP}/migration-cordons"
#: How long lifting cordons may take in a shielded scope (never past the leader's fence) before it is left to
#: recovery.
LIFT_TIMEOUT = 30.0
#: Attempts at one pool cordon whose answers are lost.
CORDON_ATTEMPTS = 3

Steering = Literal["pool cordon", "node cordon"]
#: How a new replica is steered to its pool: cordoning the other pools (releases that have pool cordon) ...
POOL_CORDON: Steering = "pool cordon"
#: ... or the nodes of the other pools (2.7 and earlier).
NODE_CORDON: Steering = "node cordon"


class CordonRecord(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """The cordons held for a volume's migration, and how often a wrong removal was repaired."""

    volume: str
    pools: list[str] = msgspec.field(default_factory=list)
    nodes: list[str] = msgspec.field(default_factory=list)
    repairs: int = 0

    @property
    def holds_cordons(self) -> bool:
        return bool(self.pools or self.nodes)


def node_cordon_label(volume: str) -> str:
    """The label of the node cordons steering ``volume``'s replicas (one per volume, so ours alone)."""
    return f"couchestor-{volume}"


class RestBackend:
    """:class:`~couchestor.migration.backend.VolumeBackend` over Mayastor 2.x's REST API.

    ``pvs`` is the operator's PersistentVolume store (to map a volume id to its PV and to list intents); it
    must carry :data:`PV_INDEXERS`.
    """

    def __init__(
        self,
        rest: MayastorRestClient,
        kube: KubeClient,
        pvs: Store[PersistentVolume],
        *,
        poll_interval: float = 2.0,
        max_repairs: int = 3,
    ) -> None:
        self.rest = rest
        self.kube = kube
        self.pvs = pvs
        self.poll_interval = poll_interval
        self.max_repairs = max_repairs
        #: How new replicas are steered on this cluster (:data:`POOL_CORDON` or :data:`NODE_CORDON`), None until
        #: the first placement found out.
        self.steering: Steering | None = None
        self._holding: set[str] = set()
        self._last: dict[str, VolumeState] = {}
        # Cordon-steered changes of different volumes must not overlap: one volume's fence would block the
        # other's target, and lifting one fence could open a pool the other needs closed. Each holds the lock
        # for a few REST calls only.
        self._placing = trio.Lock()

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Find out how this cluster is steered, lift cordons left by a crashed operator once the PV store is
        synced, then every minute; runs until cancelled."""
        try:
            await self._steering()
        except BackendError as exc:
            log.warning("%s; asking again at the first placement", exc)
        await self.pvs.wait_synced()
        while True:
            await self.recover()
            await trio.sleep(60.0)

    async def recover(self) -> int:
        """Lift every recorded cordon that no call of this process holds; returns how many volumes had some."""
        lifted = 0
        for pv in self.pvs.list():
            record = _record(pv)
            if record is None or not record.holds_cordons or record.volume in self._holding:
                continue
            try:
                await self._lift(record.volume, str(pv.metadata.name))
                lifted += 1
            except BackendError as exc:
                log.warning("cannot lift the cordons of %s yet: %s", record.volume, exc)
        return lifted

    # --- the interface ------------------------------------------------------------------------------------

    async def read(self, volume: str) -> VolumeState:
        state, pv, _ = await self._read(volume)
        record = _record(pv)
        if record is not None and record.holds_cordons and volume not in self._holding:
            # Left by a crash or a failed lift: nothing of ours is placing a replica now.
            await self._lift(volume, str(pv.metadata.name))
            state, _, _ = await self._read(volume)
        return state

    async def write_intent(
        self, volume: str, intent: intents.Intent | None, *, expected_version: str
    ) -> VolumeState:
        pv_version, _, volume_digest = expected_version.partition("/")
        _, pv, current = await self._read(volume)
        if rules.digest(current) != volume_digest:
            raise IntentConflict(f"volume {volume} changed since it was read")
        annotations: dict[str, Any] = {MIGRATION_INTENT: None if intent is None else intents.encode(intent)}
        if intent is None:
            annotations[CORDON_RECORD] = None  # the repair count belongs to the migration that ends
        await self._patch_pv(pv, {"metadata": {"resourceVersion": pv_version, "annotations": annotations}})
        state, _, _ = await self._read(volume)
        return state

    async def add_replica(
        self,
        volume: str,
        *,
        count: int,
        pool: str,
        topology: Mapping[str, str],
        expected_version: str = "",
    ) -> VolumeState:
        async with self._hold(volume):
            state, pv, current = await self._read(volume)
            if current.spec.num_replicas >= count:
                await self._lift(volume, str(pv.metadata.name))
                return state
            _check_unchanged(volume, current, expected_version)
            _require_online(volume, current)
            record = _record(pv) or CordonRecord(volume=volume)
            forward = state.intent is not None and state.intent.phase == "forward"
            if forward and record.repairs > self.max_repairs:
                raise BackendError(
                    f"Mayastor removed the new replica of {volume} instead of an old one {record.repairs} "
                    "times; not adding another",
                    retryable=True,
                )
            async with self._placing:
                pools = await self._call(self.rest.list_pools())
                chosen = next((p for p in pools if p.id == pool), None)
                if chosen is None or chosen.status not in rules.USABLE_POOL_STATES:
                    raise BackendError(
                        f"target pool {pool} is {chosen.status if chosen else 'gone'}", retryable=True
                    )
                held = {r.pool for r in state.replicas}
                if await self._steering() == POOL_CORDON:
                    await self._place_by_pool_cordon(volume, pv, record, current, pools, pool, count)
                else:
                    await self._place_by_node_cordon(volume, pv, record, current, pools, pool, count)
            state, _, current = await self._read(volume)
            landed = sorted({r.pool for r in state.replicas} - held)
            if landed and pool not in landed:
                # Placement went elsewhere (placed unsteered, or a race): undo it while it is the least
                # healthy replica, which is the one Mayastor drops first.
                await self._scale_back(volume, count - 1)
                raise BackendError(
                    f"the new replica of {volume} landed on {', '.join(landed)} instead of {pool}; removed it",
                    retryable=True,
                )
            return state

    async def remove_replica(
        self,
        volume: str,
        *,
        count: int,
        pool: str,
        topology: Mapping[str, str],
        expected_version: str = "",
    ) -> VolumeState:
        async with self._hold(volume):
            state, pv, current = await self._read(volume)
            if current.spec.num_replicas <= count:
                return state
            _check_unchanged(volume, current, expected_version)
            intent = state.intent
            repairing = intent is not None and intent.phase == "forward" and bool(pool)
            if repairing and state.healthy_count < count + 1:
                raise BackendError(
                    f"volume {volume} has {state.healthy_count} healthy replica(s); removing one now would "
                    f"leave fewer than {count}",
                    retryable=True,
                )
            before = {r.pool for r in state.replicas}
            async with self._placing:
                # Steer in both directions: a rollback that dropped the old replica would leave the volume moved.
                steer = await self._steering_node(current, pool) if pool else None
                record = _record(pv) or CordonRecord(volume=volume)
                if steer is not None:
                    record.nodes = sorted(set(record.nodes) | {steer})
                    pv = await self._write_record(pv, record)
                try:
                    if steer is not None:
                        await self._call(self.rest.cordon_node(steer, node_cordon_label(volume)))
                    await self._set_replica_count(volume, count, "cannot remove a replica of")
                finally:
                    if steer is not None:
                        with fenced_cleanup(LIFT_TIMEOUT):
                            await self._lift(volume, str(pv.metadata.name))
            state, pv, _ = await self._read(volume)
            after = {r.pool for r in state.replicas}
            if not repairing or pool not in after:
                return state
            lost = sorted(before - after)
            record = _record(pv) or CordonRecord(volume=volume)
            record.repairs += 1
            await self._write_record(pv, record)
            log.warning(
                "Mayastor removed the replica on %s of %s instead of the one on %s (repair %d of %d)",
                ", ".join(lost) or "no pool",
                volume,
                pool,
                record.repairs,
                self.max_repairs,
            )
        if not lost or record.repairs > self.max_repairs:
            raise BackendError(
                f"Mayastor kept the replica on {pool} of {volume} and removed {', '.join(lost) or 'none'}",
                retryable=True,
            )
        return await self.add_replica(volume, count=count + 1, pool=lost[0], topology=topology)

    async def wait_changed(self, volume: str, version: str) -> None:
        pv_version, _, volume_digest = version.partition("/")
        while True:
            await trio.sleep(self.poll_interval)
            pv = self._pv(volume)
            if pv is not None and str(pv.metadata.resource_version) != pv_version:
                return
            try:
                current = await self.rest.get_volume(volume)
            except MayastorRestError:
                return  # let the caller's read report it
            if rules.digest(current) != volume_digest:
                return

    def intents(self) -> list[VolumeState]:
        out = []
        for pv in self.pvs.list():
            text = pv.metadata.annotation(MIGRATION_INTENT)
            if not text:
                continue
            try:
                intent = intents.decode(text)
            except ValueError as exc:
                log.warning("PersistentVolume %s: %s", pv.metadata.name, exc)
                continue
            handle = _handle(pv)
            last = self._last.get(handle)
            out.append(
                VolumeState(
                    name=handle,
                    num_replicas=last.num_replicas if last else intent.original_replicas,
                    inclusion=last.inclusion if last else intent.original_inclusion,
                    replicas=last.replicas if last else (),
                    intent=intent,
                    version=last.version if last else "",
                )
            )
        return out

    # --- helpers ------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _hold(self, volume: str) -> AsyncIterator[None]:
        """Mark ``volume``'s cordons as in use by this process (so reads do not lift them under us)."""
        if volume in self._holding:
            raise BackendError(f"volume {volume} is already being changed by this operator", retryable=True)
        self._holding.add(volume)
        try:
            yield
        finally:
            self._holding.discard(volume)

    async def _read(self, volume: str) -> tuple[VolumeState, PersistentVolume, wire.Volume]:
        name = self._pv_name(volume)
        try:
            pv = await self.kube.get(resources.PERSISTENT_VOLUME, name, type=PersistentVolume)
        except NotFound:
            raise BackendError(
                f"PersistentVolume {name} of volume {volume} does not exist", retryable=False
            ) from None
        except KubeError as exc:
            raise BackendError(f"cannot read PersistentVolume {name}: {exc}", retryable=True) from None
        try:
            current = await self.rest.get_volume(volume)
        except NotFoundError:
            raise BackendError(f"Mayastor volume {volume} does not exist", retryable=False) from None
        except MayastorRestError as exc:
            raise _backend_error(f"cannot read volume {volume}", exc) from None
        state = _to_state(volume, pv, current)
        self._last[volume] = state
        return state, pv, current

    def _pv(self, volume: str) -> PersistentVolume | None:
        found = self.pvs.by_index(PV_BY_VOLUME, volume)
        return found[0] if found else None

    def _pv_name(self, volume: str) -> str:
        pv = self._pv(volume)
        if pv is None:
            raise BackendError(f"no PersistentVolume has volume handle {volume}", retryable=True)
        return str(pv.metadata.name)

    async def _steering(self) -> Steering:
        """How this cluster steers a new replica: by pool cordon where the release has it, else by node cordon
        (asked once, without changing anything, then remembered by the client). Logged when it is learnt."""
        if self.rest.pool_cordon is None:
            try:
                await self.rest.probe_pool_cordon()
            except MayastorRestError as exc:
                raise _backend_error("cannot tell whether this Mayastor has pool cordon", exc) from None
        steering: Steering = POOL_CORDON if self.rest.pool_cordon else NODE_CORDON
        if steering != self.steering:
            log.info(
                "Steering new replicas by %s: this Mayastor release %s pool cordon",
                steering,
                "has" if steering == POOL_CORDON else "has no",
            )
            self.steering = steering
        return steering

    async def _place_by_pool_cordon(
        self,
        volume: str,
        pv: PersistentVolume,
        record: CordonRecord,
        current: wire.Volume,
        pools: list[wire.Pool],
        pool: str,
        count: int,
    ) -> None:
        """Raise the count to ``count`` with every other eligible pool cordoned (recorded first)."""
        fence = rules.pools_to_cordon(current, pools, pool)
        ours = set(record.pools)  # cordoned by an earlier attempt (recorded before it cordoned)
        record.pools = sorted(ours | set(fence))
        pv = await self._write_record(pv, record)
        try:
            foreign: set[str] = set()
            for name in fence:
                placed = await self._cordon_pool(name)
                if placed is None:
                    # The pool was just listed, so the endpoint is missing: the release changed under us (the
                    # client now knows, so the next placement steers by node cordon). Place unsteered; the
                    # caller's check undoes a replica that lands elsewhere.
                    log.warning("pool cordons unsupported by this Mayastor; placing unsteered")
                    break
                if not placed and name not in ours:
                    # Cordoned by someone else since the listing: it blocks the replica all the
                    # same, but lifting it is not ours to do.
                    foreign.add(name)
            if foreign:
                record.pools = sorted(set(record.pools) - foreign)
                pv = await self._write_record(pv, record)
            await self._set_replica_count(volume, count, "cannot add a replica to")
        finally:
            with fenced_cleanup(LIFT_TIMEOUT):
                await self._lift(volume, str(pv.metadata.name))

    async def _place_by_node_cordon(
        self,
        volume: str,
        pv: PersistentVolume,
        record: CordonRecord,
        current: wire.Volume,
        pools: list[wire.Pool],
        pool: str,
        count: int,
    ) -> None:
        """As :meth:`_place_by_pool_cordon`, fencing by node: the node of every other eligible pool is cordoned
        under this volume's own label (so no one else's cordon is ever touched), recorded first, and held only
        for the ``PUT replica_count``. Where the target's node holds another eligible pool the replica is placed
        unsteered, and the caller's check undoes it if it lands elsewhere."""
        fence = rules.nodes_to_cordon(current, pools, pool)
        if fence is None:
            log.warning(
                "cannot steer the new replica of %s by node cordon: the node of %s holds another pool that "
                "could take it; placing unsteered",
                volume,
                pool,
            )
            fence = []
        if fence:
            record.nodes = sorted(set(record.nodes) | set(fence))
            pv = await self._write_record(pv, record)
        try:
            for node in fence:
                await self._call(self.rest.cordon_node(node, node_cordon_label(volume)))
            await self._set_replica_count(volume, count, "cannot add a replica to")
        finally:
            with fenced_cleanup(LIFT_TIMEOUT):
                await self._lift(volume, str(pv.metadata.name))

    async def _steering_node(self, current: wire.Volume, pool: str) -> str | None:
        """The node to cordon so that Mayastor drops the replica on ``pool``, or None when it would anyway
        (or when cordoning its node would not help, e.g. another replica shares the node)."""
        nodes = await self._call(self.rest.list_nodes())
        pools = await self._call(self.rest.list_pools())
        labels = {p.id: p.labels for p in pools}
        cordoned = rules.cordoned_nodes(nodes)
        if rules.predicted_victim(current, labels, cordoned) == pool:
            return None
        topo = [t for t in current.state.replica_topology.values() if t.pool == pool]
        node = topo[0].node if topo and topo[0].node is not UNSET else None
        if node is None or rules.predicted_victim(current, labels, cordoned | {node}) != pool:
            return None
        return node

    async def _cordon_pool(self, pool: str) -> bool | None:
        """Cordon ``pool`` (already in the record): True when this call placed the cordon, False when one
        stood already (someone else's, or an earlier attempt's), None when this release has no pool cordons.

        The request is sent again after an answer that was lost (the effect unknown), and an ``AlreadyExists``
        then is our own cordon: the first request was applied. A cordon someone else placed in that instant
        would be taken for ours and lifted with them; leaking ours forever would be worse.
        """
        unknown = False
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.rest.cordon_pool(pool)
                return True
            except PoolCordonUnsupported:
                return None
            except MayastorRestError as exc:
                if exc.kind == "AlreadyExists":
                    return unknown
                if not exc.retryable or attempt == CORDON_ATTEMPTS:
                    raise _backend_error(f"cannot cordon pool {pool}", exc) from None
                unknown = unknown or exc.status != 429  # a 429 was refused before it was processed
                await trio.sleep(min(0.2 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))

    async def _lift(self, volume: str, pv_name: str) -> None:
        """Lift every cordon recorded for ``volume``, then clear them from the record (read again and lifted
        again, both idempotent, when the PV changed in between)."""
        for attempt in range(1, 4):
            try:
                await self._lift_once(volume, pv_name)
                return
            except IntentConflict:
                if attempt == 3:
                    raise

    async def _lift_once(self, volume: str, pv_name: str) -> None:
        try:
            pv = await self.kube.get(resources.PERSISTENT_VOLUME, pv_name, type=PersistentVolume)
        except KubeError as exc:
            raise BackendError(f"cannot read PersistentVolume {pv_name}: {exc}", retryable=True) from None
        record = _record(pv)
        if record is None or not record.holds_cordons:
            return
        for name in record.pools:
            try:
                await self.rest.uncordon_pool(name)
            except NotFoundError:
                pass  # the pool is gone, or this release has no pool cordons: nothing to lift
            except MayastorRestError as exc:
                raise _backend_error(f"cannot uncordon pool {name}", exc) from None
        for node in record.nodes:
            try:
                await self.rest.uncordon_node(node, node_cordon_label(volume))
            except MayastorRestError as exc:
                if exc.status not in (404, 412):  # gone, or not cordoned with our label any more
                    raise _backend_error(f"cannot uncordon node {node}", exc) from None
        record.pools, record.nodes = [], []
        await self._write_record(pv, record)
        log.info("Lifted the migration cordons of %s", volume)

    async def _write_record(self, pv: PersistentVolume, record: CordonRecord) -> PersistentVolume:
        """Write (or clear, when empty) the record over ``pv`` as read, and return the PV as written.

        Conditional on ``pv``'s resourceVersion: a record changed since (by a later leader placing its own
        cordons) is never overwritten, which would leak that leader's cordons (:class:`IntentConflict`).
        """
        empty = not record.holds_cordons and record.repairs == 0
        value = None if empty else msgspec.json.encode(record).decode()
        rv = str(pv.metadata.resource_version)
        return await self._patch_pv(
            pv, {"metadata": {"resourceVersion": rv, "annotations": {CORDON_RECORD: value}}}
        )

    async def _patch_pv(self, pv: PersistentVolume, patch: dict[str, Any]) -> PersistentVolume:
        name = str(pv.metadata.name)
        try:
            return await self.kube.merge_patch(
                resources.PERSISTENT_VOLUME, name, patch, type=PersistentVolume
            )
        except Conflict as exc:
            raise IntentConflict(f"PersistentVolume {name} changed concurrently: {exc}") from None
        except NotFound:
            raise BackendError(f"PersistentVolume {name} does not exist", retryable=False) from None
        except KubeError as exc:
            raise BackendError(f"cannot update PersistentVolume {name}: {exc}", retryable=True) from None

    async def _scale_back(self, volume: str, count: int) -> None:
        await self._set_replica_count(volume, count, "cannot remove the misplaced replica of")

    async def _set_replica_count(self, volume: str, count: int, what: str) -> None:
        """``PUT replica_count``, idempotent: a count already set is success. The control plane refuses a count
        that is already set, and a scale-up of a volume that is not Online, with 412 FailedPrecondition (older
        answers said AlreadyExists), so a refusal is told apart by reading the volume again."""
        try:
            await self.rest.set_replica_count(volume, count)
            return
        except (FailedPreconditionError, AlreadyExistsError) as exc:
            refused = exc
        except MayastorRestError as exc:
            raise _backend_error(f"{what} {volume}", exc) from None
        try:
            current = await self.rest.get_volume(volume)
        except MayastorRestError as exc:
            raise _backend_error(f"{what} {volume}", exc) from None
        if current.spec.num_replicas == count:
            return
        _require_online(volume, current)
        raise _backend_error(f"{what} {volume}", refused)

    async def _call(self, call: Any) -> Any:
        try:
            return await call
        except MayastorRestError as exc:
            raise _backend_error("Mayastor REST call failed", exc) from None


def _require_online(volume: str, current: wire.Volume) -> None:
    """Replicas are added only to an Online volume: a Degraded one is being rebuilt or repaired by Mayastor
    itself, so the migration waits (a retryable error with the reason) until it is Online again."""
    status = current.state.status
    if status != "Online":
        raise BackendError(
            f"volume {volume} is {status} (Mayastor is rebuilding or repairing it); waiting until it is Online",
            retryable=True,
        )


def _check_unchanged(volume: str, current: wire.Volume, expected_version: str) -> None:
    """Raise :class:`IntentConflict` when ``current`` is not the volume a step was decided on (a replica
    faulted since?). The control plane's ``PUT replica_count`` takes no precondition, so this check right
    before it is the guard."""
    _, _, decided = expected_version.partition("/")
    if decided and rules.digest(current) != decided:
        raise IntentConflict(f"volume {volume} changed since the step was decided")


def _backend_error(what: str, exc: MayastorRestError) -> BackendError:
    # Everything the control plane refuses is worth retrying later (pools free up, nodes come back); only a
    # missing volume is final, and _read reports that.
    return BackendError(f"{what}: {exc}", retryable=True)


#: The PV store's index the backend finds a volume's PV with: by CSI volume handle (the Mayastor volume id),
#: and by name. The store given to :class:`RestBackend` must carry it (``indexers=PV_INDEXERS``).
PV_BY_VOLUME = "mayastor-volume"


def _volume_ids(pv: PersistentVolume) -> tuple[str, ...]:
    handle, name = _handle(pv), str(pv.metadata.name)
    return (handle,) if handle == name else (handle, name)


PV_INDEXERS: Mapping[str, Callable[[PersistentVolume], Iterable[str]]] = {PV_BY_VOLUME: _volume_ids}


def _handle(pv: PersistentVolume) -> str:
    if pv.spec.csi is not UNSET and pv.spec.csi.volume_handle:
        return pv.spec.csi.volume_handle
    return str(pv.metadata.name)


def _record(pv: PersistentVolume) -> CordonRecord | None:
    text = pv.metadata.annotation(CORDON_RECORD)
    if not text:
        return None
    try:
        return msgspec.json.decode(text, type=CordonRecord)
    except msgspec.DecodeError as exc:
        log.warning("PersistentVolume %s: unreadable %s annotation: %s", pv.metadata.name, CORDON_RECORD, exc)
        return None


def _to_state(volume: str, pv: PersistentVolume, current: wire.Volume) -> VolumeState:
    text = pv.metadata.annotation(MIGRATION_INTENT)
    intent = None
    if text:
        try:
            intent = intents.decode(text)
        except ValueError as exc:
            log.warning("PersistentVolume %s: %s", pv.metadata.name, exc)
    return VolumeState(
        name=volume,
        num_replicas=current.spec.num_replicas,
        inclusion=current.spec.pool_inclusion,
        replicas=rules.replicas(current),
        intent=intent,
        version=f"{pv.metadata.resource_version}/{rules.digest(current)}",
    )


__all__ = ["CORDON_RECORD", "CordonRecord", "RestBackend", "node_cordon_label"]
