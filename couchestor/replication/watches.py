"""Watches of the backends' resources, started the first time a class names that backend, so a cluster
without, say, Trident never watches a resource nobody uses (and never logs its absence).

Only objects labelled as created by the controllers are watched; they are indexed by their owner's uid
(label ``replication.unified.io/owner-uid``), and every change reports that uid, deletions included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import trio

from couchestor.kube.client import KubeClient
from couchestor.kube.errors import NotFound
from couchestor.kube.objects import ObjectKey
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import Resource
from couchestor.kube.watcher import WatcherError
from couchestor.replication.adapters import Adapter
from couchestor.replication.model import JSON
from couchestor.replication.resources import MANAGED_BY, MANAGED_BY_LABEL, OWNER_UID_LABEL

log = logging.getLogger("couchestor.replication")


def owner_uid(obj: JSON | None) -> str | None:
    """The uid in a backend object's owner label, or None."""
    uid = (((obj or {}).get("metadata") or {}).get("labels") or {}).get(OWNER_UID_LABEL)
    return uid if isinstance(uid, str) and uid else None


@dataclass
class BackendWatch:
    """One backend resource's reflector and what is known about it."""

    reflector: Reflector[JSON]
    last_error: str | None = None
    # The resource is not served (its CRD is not installed): then nothing of it can exist either.
    missing: bool = False
    # Set by the first complete list or the first error, whichever comes first.
    answered: trio.Event = field(default_factory=trio.Event)

    @property
    def resource(self) -> Resource:
        return self.reflector.watcher.resource

    @property
    def synced(self) -> bool:
        return self.reflector.store.synced

    def owned(self, uid: str) -> dict[str, JSON]:
        """Name -> object, for every object owned by ``uid``."""
        return {o["metadata"]["name"]: o for o in self.reflector.store.by_index("owner", uid)}


class BackendWatches:
    """The started backend watches, by adapter name. ``on_owner_change(uid)`` is called for every change of
    an object owned by ``uid``. :meth:`attach` gives the nursery new watches run in (the controller's)."""

    def __init__(
        self, client: KubeClient, namespace: str | None, on_owner_change: Callable[[str], None]
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._on_owner_change = on_owner_change
        self._watches: dict[str, BackendWatch] = {}
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def __iter__(self) -> Iterator[tuple[str, BackendWatch]]:
        return iter(list(self._watches.items()))

    def get(self, adapter: Adapter) -> BackendWatch:
        """The watch of ``adapter``'s resource, started now if it is not running yet."""
        watch = self._watches.get(adapter.name)
        if watch is not None:
            return watch
        if self._nursery is None:
            raise RuntimeError("backend watches start inside the controller's run()")

        def on_error(exc: WatcherError) -> None:
            this = self._watches[adapter.name]
            this.last_error = str(exc.cause)
            this.missing = isinstance(exc.cause, NotFound)
            this.answered.set()
            log.warning("%s", exc)

        def by_owner(obj: JSON) -> list[str]:
            uid = owner_uid(obj)
            return [uid] if uid else []

        reflector: Reflector[JSON] = Reflector.for_resource(
            self._client,
            adapter.resource,
            dict,
            label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
            namespace=self._namespace if adapter.resource.namespaced else None,
            indexers={"owner": by_owner},
            on_error=on_error,
        )
        watch = BackendWatch(reflector)
        self._watches[adapter.name] = watch
        self._nursery.start_soon(reflector.run)
        self._nursery.start_soon(self._follow, watch)
        self._nursery.start_soon(self._mark_listed, watch)
        return watch

    async def _mark_listed(self, watch: BackendWatch) -> None:
        await watch.reflector.store.wait_synced()
        watch.answered.set()

    async def _follow(self, watch: BackendWatch) -> None:
        store = watch.reflector.store
        # A deleted object is gone from the store: remember owners by key to report its deletion too.
        owners: dict[ObjectKey, str] = {}
        async for change in store.subscribe():
            obj = store.get_key(change.key)
            uid = owner_uid(obj) if obj is not None else owners.pop(change.key, None)
            if obj is not None and uid:
                owners[change.key] = uid
            if uid:
                self._on_owner_change(uid)
