"""What the decisions need of the watched objects: one view per volume and per pool, built whole or kept up to date.

:func:`build_volume_views` and :func:`build_pool_views` make every view from the PVs, PVCs, MayastorVolumes
and DiskPools; :func:`volume_view` makes one.

:class:`ViewIndex` keeps them up to date from store changes, so a pass rebuilds only what changed. It is fed
the keys that changed in the PV, PVC, MayastorVolume and DiskPool stores (as store subscriptions report
them) and rebuilds the view of every PV such a key touches: the PV itself, the PVs whose ``claimRef`` names a
changed PVC, the PVs whose volume handle or name is a changed MayastorVolume's name. It answers which views
really changed (a rebuilt view equal to the old one is not a change), so the decisions re-judge only those.

:meth:`ViewIndex.rebuild` makes everything again from the stores (the first pass and the periodic full pass);
after any sequence of changes fed to :meth:`ViewIndex.update`, the views equal those of a rebuild
(``tests/unit/test_incremental.py`` checks it). Views are built by the same function as
:func:`build_volume_views`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, TypeVar

import msgspec
from msgspec import UNSET

from couchestor.durations import parse_time
from couchestor.kube.objects import ObjectKey
from couchestor.tiering.pins import Pin, read_pin
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume

LAST_MIGRATION_ANNOTATION = "storage.billyronks.io/last-migration"


_EMPTY: Mapping[str, str] = MappingProxyType({})


class ReplicaView(msgspec.Struct, frozen=True, gc=False):
    pool: str
    node: str | None
    state: str
    sync_state: str

    @property
    def synced(self) -> bool:
        return self.sync_state == "Synced"

    @property
    def healthy(self) -> bool:
        """Online and Synced: a complete copy of the data."""
        return self.state == "Online" and self.sync_state == "Synced"


class VolumeView(msgspec.Struct, frozen=True, gc=False):
    """What the decisions need of one PV, its bound PVC and its MayastorVolume.

    ``pvc_labels`` is empty when the PV is not bound (or its claimRef points at another PVC of that name);
    ``pin`` is the bound PVC's pin or opt-out (:mod:`~couchestor.tiering.pins`), ``pin_error`` why it cannot
    be read; ``last_migration_error`` says why the last-migration annotation cannot be read (the volume then
    counts as in cooldown); ``has_backend`` is False, with no replicas, when no MayastorVolume was found;
    ``size_bytes`` is the MayastorVolume's ``spec.size``, else the PV's ``capacity.storage``, else None.

    (An untracked Struct: a full rebuild at 100,000 volumes makes 100,000 views, and the garbage collector's
    collections during it walked every tracked one; a view refers to no object that refers back to it.)
    """

    name: str
    volume_id: str | None
    storage_class: str | None
    pvc_labels: Mapping[str, str] = msgspec.field(default_factory=dict)
    size_bytes: int | None = None
    has_backend: bool = True
    num_replicas: int | None = None
    replicas: tuple[ReplicaView, ...] = ()
    last_migration: datetime | None = None
    deleting: bool = False
    #: The MayastorVolume's name (the volume handle, or the PV name as seed 001 shows), when one was found.
    backend_name: str | None = None
    #: The pool-label topology the volume's replicas must satisfy.
    inclusion: Mapping[str, str] = msgspec.field(default_factory=dict)
    #: The only nodes the volume's replicas may be on (an explicit node topology), or None for any node.
    allowed_nodes: frozenset[str] | None = None
    pin: Pin | None = None
    pin_error: str | None = None
    last_migration_error: str | None = None

    @property
    def unreadable(self) -> str | None:
        """Every annotation of the volume that cannot be read, in words, or None."""
        found = [e for e in (self.pin_error, self.last_migration_error) if e is not None]
        return "; ".join(found) or None


@dataclass(frozen=True, slots=True)
class PoolView:
    name: str
    node: str | None
    labels: Mapping[str, str]
    health: str
    free_bytes: int | None
    #: The pool's size and bytes in use as it reports them (None until reported): a tier's fill.
    capacity_bytes: int | None = None
    used_bytes: int | None = None

    @property
    def online(self) -> bool:
        return self.health == "Online"


def build_volume_views(
    pvs: Iterable[PersistentVolume],
    pvcs: Iterable[PersistentVolumeClaim],
    mayastor_volumes: Iterable[MayastorVolume],
) -> tuple[VolumeView, ...]:
    """One view per named PV, sorted by name.

    The PVC is the one ``spec.claimRef`` names (and, when both carry a UID, has that UID); the MayastorVolume
    is the one named by ``spec.csi.volumeHandle``, else by the PV name. An unparsable last-migration
    annotation, pin or opt-out is kept as an error on the view (the decisions then move nothing).
    """
    claims = {
        (c.metadata.namespace, c.metadata.name): c
        for c in pvcs
        if c.metadata.namespace is not UNSET and c.metadata.name is not UNSET
    }
    backends = {v.metadata.name: v for v in mayastor_volumes if v.metadata.name is not UNSET}
    views = [volume_view(pv, claims.get, backends.get) for pv in pvs if pv.metadata.name is not UNSET]
    return tuple(sorted(views, key=lambda v: v.name))


def volume_view(
    pv: PersistentVolume,
    claim_of: Callable[[tuple[str, str]], PersistentVolumeClaim | None],
    backend_of: Callable[[str], MayastorVolume | None],
) -> VolumeView:
    """The view of one named PV; ``claim_of`` finds a PVC by (namespace, name), ``backend_of`` a
    MayastorVolume by name (see :func:`build_volume_views`)."""
    name = pv.metadata.name
    assert name is not UNSET
    handle = pv.volume_handle
    labels: Mapping[str, str] = _EMPTY
    pin: Pin | None = None
    pin_error: str | None = None
    ref = pv.spec.claim_ref
    if ref is not UNSET and ref.namespace is not UNSET and ref.name is not UNSET:
        claim = claim_of((ref.namespace, ref.name))
        stale = (
            claim is not None and UNSET not in (ref.uid, claim.metadata.uid) and ref.uid != claim.metadata.uid
        )
        if claim is not None and not stale:
            if claim.metadata.labels is not UNSET:
                # Shared, not copied: a stored object is replaced, never changed.
                labels = claim.metadata.labels
            if claim.metadata.annotations is not UNSET:
                try:
                    pin = read_pin(claim.metadata.annotations)
                except ValueError as exc:
                    pin_error = f"PVC {ref.namespace}/{ref.name}: {exc}"
    backend = backend_of(handle) if handle is not None else None
    backend = backend or backend_of(name)
    if backend is not None and backend.spec.size is not UNSET:
        size: int | None = backend.spec.size
    else:
        size = pv.capacity_bytes
    last: datetime | None = None
    last_error: str | None = None
    annotations = {} if pv.metadata.annotations is UNSET else pv.metadata.annotations
    if LAST_MIGRATION_ANNOTATION in annotations:
        try:
            last = parse_time(annotations[LAST_MIGRATION_ANNOTATION])
        except ValueError as exc:
            last_error = f"annotation {LAST_MIGRATION_ANNOTATION}: {exc}"
    return VolumeView(
        name=name,
        volume_id=handle,
        storage_class=None if pv.spec.storage_class_name is UNSET else pv.spec.storage_class_name,
        pvc_labels=labels,
        size_bytes=size,
        has_backend=backend is not None,
        backend_name=None if backend is None else str(backend.metadata.name),
        inclusion=_EMPTY if backend is None else (backend.spec.inclusion or _EMPTY),
        allowed_nodes=None if backend is None else backend.spec.allowed_nodes,
        num_replicas=None if backend is None else backend.spec.num_replicas,
        replicas=()
        if backend is None
        else tuple(
            ReplicaView(r.pool, None if r.node is UNSET else r.node, r.state, r.sync_state)
            for r in backend.replicas
        ),
        last_migration=last,
        deleting=pv.metadata.deletion_timestamp is not UNSET,
        pin=pin,
        pin_error=pin_error,
        last_migration_error=last_error,
    )


def build_pool_views(pools: Iterable[DiskPool]) -> tuple[PoolView, ...]:
    """One view per named DiskPool, sorted by name; labels are those Mayastor's topology matching sees."""
    views = [
        PoolView(
            name=p.metadata.name,
            node=p.spec.node or None,
            labels=p.topology_labels,
            health=p.health,
            free_bytes=p.free_bytes,
            capacity_bytes=p.capacity_bytes,
            used_bytes=p.used_bytes,
        )
        for p in pools
        if p.metadata.name is not UNSET
    ]
    return tuple(sorted(views, key=lambda p: p.name))


T = TypeVar("T")


class ObjectSource(Protocol[T]):
    """What the index reads of a store (:class:`couchestor.kube.store.Store` is one)."""

    def get_key(self, key: ObjectKey) -> T | None: ...

    def list(self) -> list[T]: ...


def _claim_of(pv: PersistentVolume) -> tuple[str, str] | None:
    ref = pv.spec.claim_ref
    if ref is not UNSET and ref.namespace is not UNSET and ref.name is not UNSET:
        return (ref.namespace, ref.name)
    return None


class ViewIndex:
    """The volume views by PV name and the pool views, maintained incrementally (see the module docstring)."""

    def __init__(
        self,
        pvs: ObjectSource[PersistentVolume],
        pvcs: ObjectSource[PersistentVolumeClaim],
        volumes: ObjectSource[MayastorVolume],
        pools: ObjectSource[DiskPool],
    ) -> None:
        self._pvs, self._pvcs, self._volumes, self._pools = pvs, pvcs, volumes, pools
        self.views: dict[str, VolumeView] = {}
        self.pools: tuple[PoolView, ...] = ()
        # Reverse references, to find the views a changed PVC or MayastorVolume touches. One name per key
        # (a set only when several PVs share it), since there is an entry per volume: PVC -> PVs naming it
        # in claimRef, volume handle -> PVs with it. (A MayastorVolume named after a PV touches that PV.)
        self._claims: dict[str, tuple[str, str]] = {}
        self._by_claim: dict[tuple[str, str], str | set[str]] = {}
        self._by_handle: dict[str, str | set[str]] = {}
        self._backends: dict[str, MayastorVolume] = {}

    def rebuild(self) -> None:
        """Every view again from the stores."""
        self.views.clear()
        self._claims.clear()
        self._by_claim.clear()
        self._by_handle.clear()
        self._backends = {v.metadata.name: v for v in self._volumes.list() if v.metadata.name is not UNSET}
        claims = {
            (c.metadata.namespace, c.metadata.name): c
            for c in self._pvcs.list()
            if c.metadata.namespace is not UNSET and c.metadata.name is not UNSET
        }
        for pv in self._pvs.list():
            name = pv.metadata.name
            if name is UNSET:
                continue
            view = volume_view(pv, claims.get, self._backends.get)
            self.views[name] = view
            self._track(name, pv, view)
        self.pools = build_pool_views(self._pools.list())

    def names_with_handle(self, handle: str) -> Collection[str]:
        """The PVs whose volume handle is ``handle``."""
        found = self._by_handle.get(handle, ())
        return (found,) if isinstance(found, str) else found

    def update(
        self,
        pvs: Collection[ObjectKey] = (),
        pvcs: Collection[ObjectKey] = (),
        volumes: Collection[ObjectKey] = (),
        pools: bool = False,
    ) -> set[str]:
        """Take the changed keys of each store into account; returns the PV names whose view changed
        (added, replaced by an unequal view, or removed). ``pools``: some DiskPool changed."""
        affected: set[str] = set()
        for key in volumes:
            obj = self._volumes.get_key(key)
            if obj is not None:
                self._backends[key.name] = obj
            elif (
                held := self._backends.get(key.name)
            ) is not None and held.metadata.namespace == key.namespace:
                del self._backends[key.name]
            affected.update(self.names_with_handle(key.name))
            affected.add(key.name)
        for key in pvcs:
            found = self._by_claim.get((key.namespace, key.name), ())
            affected.update((found,) if isinstance(found, str) else found)
        for key in pvs:
            affected.add(key.name)
        if pools:
            self.pools = build_pool_views(self._pools.list())
        changed: set[str] = set()
        for name in affected:
            if self._refresh(name):
                changed.add(name)
        return changed

    def _refresh(self, name: str) -> bool:
        pv = self._pvs.get_key(ObjectKey("", name))
        old = self.views.get(name)
        if old is not None:
            self._untrack(name, old)
        if pv is None:
            if old is None:
                return False
            del self.views[name]
            return True
        view = volume_view(pv, self._claim, self._backends.get)
        if old is not None and view == old:
            view = old  # (most PV and MayastorVolume updates change nothing a view holds: keep the old one)
        else:
            self.views[name] = view
        self._track(name, pv, view)
        return view is not old

    def _claim(self, key: tuple[str, str]) -> PersistentVolumeClaim | None:
        return self._pvcs.get_key(ObjectKey(key[0], key[1]))

    def _track(self, name: str, pv: PersistentVolume, view: VolumeView) -> None:
        claim = _claim_of(pv)
        if claim is not None:
            self._claims[name] = claim
            _add(self._by_claim, claim, name)
        if view.volume_id is not None:
            _add(self._by_handle, view.volume_id, name)

    def _untrack(self, name: str, view: VolumeView) -> None:
        claim = self._claims.pop(name, None)
        if claim is not None:
            _discard(self._by_claim, claim, name)
        if view.volume_id is not None:
            _discard(self._by_handle, view.volume_id, name)


K = TypeVar("K")


def _add(index: dict[K, str | set[str]], key: K, name: str) -> None:
    found = index.get(key)
    if found is None:
        index[key] = name
    elif isinstance(found, str):
        if found != name:
            index[key] = {found, name}
    else:
        found.add(name)


def _discard(index: dict[K, str | set[str]], key: K, name: str) -> None:
    found = index.get(key)
    if found is None:
        return
    if isinstance(found, str):
        if found == name:
            del index[key]
        return
    found.discard(name)
    if len(found) == 1:
        index[key] = next(iter(found))


__all__ = ["ObjectSource", "ViewIndex"]
