"""Volume and pool views kept up to date from store changes, so a pass rebuilds only what changed.

:class:`ViewIndex` holds one :class:`~couchestor.decisions.VolumeView` per PV and the pool views. It is fed
the keys that changed in the PV, PVC, MayastorVolume and DiskPool stores (as store subscriptions report
them) and rebuilds the view of every PV such a key touches: the PV itself, the PVs whose ``claimRef`` names a
changed PVC, the PVs whose volume handle or name is a changed MayastorVolume's name. It answers which views
really changed (a rebuilt view equal to the old one is not a change), so the decisions re-judge only those.

:meth:`ViewIndex.rebuild` makes everything again from the stores (the first pass and the periodic full pass);
after any sequence of changes fed to :meth:`ViewIndex.update`, the views equal those of a rebuild
(``tests/unit/test_incremental.py`` checks it). Views are built by the same function as
:func:`~couchestor.decisions.build_volume_views`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, TypeVar

from msgspec import UNSET

from couchestor.decisions import PoolView, VolumeView, build_pool_views, volume_view
from couchestor.kube.objects import ObjectKey
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume

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
