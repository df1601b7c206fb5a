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
        # PV name -> its store key, the PVC its claimRef names and its volume handle (to undo index entries).
        self._pv_keys: dict[str, ObjectKey] = {}
        self._refs: dict[str, tuple[tuple[str, str] | None, str | None]] = {}
        self._by_claim: dict[tuple[str, str], set[str]] = {}
        # MayastorVolume name -> PVs that would use it: by volume handle, and by PV name (seed 001).
        self._by_backend: dict[str, set[str]] = {}
        self._backends: dict[str, MayastorVolume] = {}

    def rebuild(self) -> None:
        """Every view again from the stores."""
        self.views.clear()
        self._pv_keys.clear()
        self._refs.clear()
        self._by_claim.clear()
        self._by_backend.clear()
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
            self._track(name, ObjectKey("", name), pv)
            self.views[name] = volume_view(pv, claims.get, self._backends.get)
        self.pools = build_pool_views(self._pools.list())

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
            affected |= self._by_backend.get(key.name, set())
        for key in pvcs:
            affected |= self._by_claim.get((key.namespace, key.name), set())
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
        if pv is None:
            self._untrack(name)
            if old is None:
                return False
            del self.views[name]
            return True
        self._untrack(name)
        self._track(name, ObjectKey("", name), pv)
        view = volume_view(pv, self._claim, self._backends.get)
        self.views[name] = view
        return old != view

    def _claim(self, key: tuple[str, str]) -> PersistentVolumeClaim | None:
        return self._pvcs.get_key(ObjectKey(key[0], key[1]))

    def _track(self, name: str, key: ObjectKey, pv: PersistentVolume) -> None:
        claim = _claim_of(pv)
        handle = pv.volume_handle
        self._pv_keys[name] = key
        self._refs[name] = (claim, handle)
        if claim is not None:
            self._by_claim.setdefault(claim, set()).add(name)
        for backend in {handle, name}:
            if backend is not None:
                self._by_backend.setdefault(backend, set()).add(name)

    def _untrack(self, name: str) -> None:
        refs = self._refs.pop(name, None)
        self._pv_keys.pop(name, None)
        if refs is None:
            return
        claim, handle = refs
        if claim is not None:
            _discard(self._by_claim, claim, name)
        for backend in {handle, name}:
            if backend is not None:
                _discard(self._by_backend, backend, name)


def _discard(index: dict[tuple[str, str], set[str]] | dict[str, set[str]], key: object, name: str) -> None:
    names = index.get(key)  # type: ignore[call-overload]
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]  # type: ignore[arg-type]


__all__ = ["ObjectSource", "ViewIndex"]
