"""A reflector: a :class:`~couchestor.kube.watcher.Watcher` feeding a :class:`~couchestor.kube.store.Store`.

The operator runs one per resource kind in its nursery. Its counters (``stats``) feed the watch-restart
metric; ``on_error`` receives each failure for logging.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, NoReturn, TypeVar

from couchestor.kube.client import DEFAULT_PAGE_SIZE, KubeClient
from couchestor.kube.resources import Resource
from couchestor.kube.store import IndexFunc, Store
from couchestor.kube.watcher import Watcher, WatcherError, WatcherStats

T = TypeVar("T")


class Reflector(Generic[T]):
    """Keeps ``store`` equal to the server's objects of ``watcher.resource`` (eventually, after faults)."""

    def __init__(self, watcher: Watcher[T], store: Store[T]) -> None:
        self.watcher = watcher
        self.store = store

    @classmethod
    def for_resource(
        cls,
        client: KubeClient,
        resource: Resource,
        type: type[T],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        on_error: Callable[[WatcherError], None] | None = None,
    ) -> Reflector[T]:
        """A reflector with a new watcher and a new store holding ``indexers``."""
        watcher = Watcher(
            client,
            resource,
            type,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
            on_error=on_error,
            batch=True,  # a store takes a chunk's objects at once
        )
        return cls(watcher, Store(indexers))

    @property
    def stats(self) -> WatcherStats:
        return self.watcher.stats

    @property
    def restarts(self) -> int:
        """How many times the list/watch failed and was restarted (after a backoff)."""
        return self.watcher.stats.errors

    async def run(self) -> NoReturn:
        """Run until cancelled. On the way out (cancellation), subscriptions of the store are ended so that
        their consumers finish instead of waiting forever."""
        try:
            await self.watcher.run(self.store.apply)
        finally:
            self.store.close()
