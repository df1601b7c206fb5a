"""The in-memory cache a reflector keeps up to date (client-go's ``Indexer``, kube-runtime's ``Store``).

- Objects are held by :class:`~couchestor.kube.objects.ObjectKey` (namespace, name).
- A relist is buffered: :class:`~couchestor.kube.watcher.Init` starts a new buffer, ``InitApply`` fills it,
  ``InitDone`` swaps it in at once, so readers never see half a list, and objects missing from the new list
  are reported deleted. Until the first ``InitDone`` the store is empty and not *synced*.
- Secondary indexes: ``indexers`` maps an index name to a function returning the index values of an object
  (e.g. a PV's storage class); :meth:`Store.by_index` looks objects up by value. Index functions must be pure
  and must not raise (return no values for objects that lack the field).
- Change notifications: :meth:`Store.subscribe` returns a :class:`Subscription`, a *coalescing* queue of
  :class:`Change` records (key and kind), which :meth:`Subscription.forward` can pump into a trio memory
  channel. A key already waiting is not queued twice, so a slow subscriber
  costs memory bounded by the number of distinct keys, never blocks the reflector, and never misses a key.
  What it loses is the intermediate history: it learns *that* a key changed and reads the current object
  from the store, which is what a reconciler wants (level-triggered, like a client-go workqueue).

Everything here is synchronous and runs in the reflector's task; readers in other tasks see consistent
snapshots because trio switches tasks only at checkpoints.
"""

from __future__ import annotations

import builtins
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Generic, Literal, TypeVar

import msgspec
import trio

from couchestor.kube.objects import (
    ObjectKey,
    key_and_version,
    keys_and_last_version,
    object_key,
    resource_version,
)
from couchestor.kube.watcher import Apply, ApplyAll, Delete, Init, InitApply, InitDone, WatchEvent

T = TypeVar("T")

ChangeKind = Literal["added", "modified", "deleted"]
IndexFunc = Callable[[T], Iterable[str]]


class Change(msgspec.Struct, frozen=True, gc=False):
    """``key`` was added, modified or deleted; read the store for its current state.

    (An untracked Struct: one is built per change a subscriber takes, ten times faster than a dataclass.)
    """

    key: ObjectKey
    kind: ChangeKind


def _merge(old: ChangeKind, new: ChangeKind) -> ChangeKind | None:
    """The one change equivalent to ``old`` then ``new`` as seen by a subscriber; None means no change."""
    if old == "added":
        return None if new == "deleted" else "added"
    if old == "deleted" and new == "added":
        return "modified"
    return new


class Subscription:
    """Changes of one store, coalesced per key, oldest first.

    Iterate with ``async for change in sub`` or call :meth:`receive`; a consumer that handles changes in bulk
    (a reconciler that only needs waking) takes everything pending at once with ``async for changes in
    sub.batches()`` or :meth:`receive_batch`, one checkpoint per batch instead of one per change. Iteration
    ends after :meth:`close` (or the store's close) once the pending changes are drained.
    """

    def __init__(self, on_close: Callable[[Subscription], None]) -> None:
        self._pending: OrderedDict[ObjectKey, ChangeKind] = OrderedDict()
        self._wakeup = trio.Event()
        self._closed = False
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._pending)

    def _push(self, key: ObjectKey, kind: ChangeKind) -> None:
        if self._closed:
            return
        pending = self._pending
        old = pending.get(key)
        if old is None:
            pending[key] = kind
        elif kind != "modified" or old == "deleted":
            # (A "modified" after "added" or "modified" changes nothing: the common case, left out.)
            merged = _merge(old, kind)
            if merged is None:
                del pending[key]
            else:
                pending[key] = merged
        self._wakeup.set()

    def _push_run(self, keys: builtins.list[ObjectKey], added: set[ObjectKey]) -> None:
        """:meth:`_push` each of ``keys``, in order: as "added" at its first appearance if in ``added``, else
        as "modified"."""
        if self._closed:
            return
        if added:
            # Only a key's first appearance in the run is its addition; a repeat is a modification.
            fresh = set(added)
            for key in keys:
                if key in fresh:
                    fresh.discard(key)
                    self._push(key, "added")
                else:
                    self._push(key, "modified")
            return
        pending = self._pending
        for key in keys:
            # A "modified" leaves an "added" or "modified" waiting as it is, and turns a "deleted" into one.
            if pending.setdefault(key, "modified") == "deleted":
                pending[key] = "modified"
        self._wakeup.set()

    async def receive(self) -> Change:
        """The oldest pending change; waits for one. Raises :class:`trio.EndOfChannel` once closed and
        drained. Cancellable (nothing is lost when cancelled)."""
        await self._wait_pending()
        key, kind = self._pending.popitem(last=False)
        return Change(key, kind)

    async def receive_batch(self) -> builtins.list[Change]:
        """Every pending change (at least one), oldest first; waits for one. Raises
        :class:`trio.EndOfChannel` once closed and drained. Cancellable (nothing is lost when cancelled)."""
        await self._wait_pending()
        pending = self._pending
        self._pending = OrderedDict()
        return list(map(Change, pending, pending.values()))

    async def _wait_pending(self) -> None:
        """Return (after a checkpoint) once a change is pending; raise EndOfChannel once closed and drained."""
        while True:
            while not self._pending:
                if self._closed:
                    raise trio.EndOfChannel
                await self._wakeup.wait()
                self._wakeup = trio.Event()
            await trio.lowlevel.checkpoint()
            if self._pending:  # (another receiver may have drained it during the checkpoint)
                return

    def batches(self) -> AsyncIterator[builtins.list[Change]]:
        """``async for changes in sub.batches()``: :meth:`receive_batch` until the subscription ends."""
        return _Batches(self)

    async def forward(self, send: trio.MemorySendChannel[Change]) -> None:
        """Feed this subscription into a trio memory channel until it ends, then close ``send``.

        For consumers that want a plain channel: run it in the consumer's nursery. Backpressure from a full
        channel stays in this task (changes keep coalescing meanwhile); the reflector is never blocked.
        """
        async with send:
            async for change in self:
                await send.send(change)

    def close(self) -> None:
        """Stop receiving new changes; pending ones can still be received."""
        if not self._closed:
            self._closed = True
            self._wakeup.set()
            self._on_close(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class _Batches:
    __slots__ = ("_sub",)

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    def __aiter__(self) -> _Batches:
        return self

    async def __anext__(self) -> builtins.list[Change]:
        try:
            return await self._sub.receive_batch()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Store(Generic[T]):
    """A cache of one resource type, fed by :meth:`apply` (normally from a reflector)."""

    def __init__(self, indexers: Mapping[str, IndexFunc[T]] | None = None) -> None:
        self._objects: dict[ObjectKey, T] = {}
        self._indexes: dict[str, _Index[T]] = {name: _Index(func) for name, func in (indexers or {}).items()}
        self._index_list = tuple(self._indexes.values())
        self._buffer: dict[ObjectKey, T] | None = None
        self._synced = trio.Event()
        self._subscribers: list[Subscription] = []
        self.resource_version = ""

    # --- reads ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def get(self, name: str, namespace: str = "") -> T | None:
        """The object ``namespace/name`` (namespace "" for cluster-scoped), or None."""
        return self._objects.get(ObjectKey(namespace, name))

    def get_key(self, key: ObjectKey) -> T | None:
        return self._objects.get(key)

    def list(self) -> list[T]:
        """A snapshot of every object."""
        return list(self._objects.values())

    def keys(self) -> builtins.list[ObjectKey]:
        return list(self._objects)

    def by_index(self, index: str, value: str) -> builtins.list[T]:
        """Objects whose ``index`` function returned ``value``. Raises KeyError for an unknown index."""
        bucket = self._indexes[index].buckets.get(value)
        if bucket is None:
            return []
        if not isinstance(bucket, set):
            return [self._objects[bucket]]
        return [self._objects[k] for k in bucket]

    def index_values(self, index: str) -> builtins.list[str]:
        """Every value of ``index`` held by at least one object."""
        return list(self._indexes[index].buckets)

    @property
    def synced(self) -> bool:
        """True once the first complete list has been swapped in."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Wait until :attr:`synced`. Cancellable."""
        await self._synced.wait()

    # --- notifications -------------------------------------------------------------------------------

    def subscribe(self, *, initial: bool = True) -> Subscription:
        """A new :class:`Subscription`. With ``initial``, every object already held is queued as "added"
        (objects of the first list arrive as "added" anyway when the store is not synced yet)."""
        sub = Subscription(self._subscribers.remove)
        if initial:
            for key in self._objects:
                sub._push(key, "added")
        self._subscribers.append(sub)
        return sub

    def close(self) -> None:
        """End every subscription (after their pending changes)."""
        for sub in list(self._subscribers):
            sub.close()

    def _notify(self, key: ObjectKey, kind: ChangeKind) -> None:
        for sub in self._subscribers:
            sub._push(key, kind)

    # --- writes --------------------------------------------------------------------------------------

    def apply(self, event: WatchEvent[T]) -> None:
        """Fold one watcher event into the store (see the module doc for the relist protocol)."""
        # Most frequent first: ApplyAll or Apply in steady state, InitApply while listing.
        if isinstance(event, ApplyAll):
            self._apply_all(event.objs)
        elif isinstance(event, Apply):
            obj = event.obj
            key, rv = key_and_version(obj)
            objects = self._objects
            size = len(objects)
            objects[key] = obj
            # (The size tells an addition from a replacement with one lookup instead of two.)
            kind: ChangeKind = "added" if len(objects) > size else "modified"
            for index in self._index_list:
                index.put(key, obj)
            if rv:
                self.resource_version = rv
            for sub in self._subscribers:
                sub._push(key, kind)
        elif isinstance(event, InitApply):
            if self._buffer is None:  # a list without Init: treat as the start of one
                self._buffer = {}
            self._buffer[object_key(event.obj)] = event.obj
        elif isinstance(event, Init):
            self._buffer = {}
        elif isinstance(event, InitDone):
            self._swap(self._buffer or {})
            self._buffer = None
            self.resource_version = event.resource_version
            self._synced.set()
        elif isinstance(event, Delete):
            key, rv = key_and_version(event.obj)
            if rv:
                self.resource_version = rv
            if self._objects.pop(key, None) is not None:
                for index in self._index_list:
                    index.remove(key)
                self._notify(key, "deleted")

    def _apply_all(self, objs: builtins.list[T]) -> None:
        """``apply(Apply(obj))`` for each of ``objs``, with the per-event bookkeeping done once per run: the
        objects are stored in one update, the latest resourceVersion is kept once, and each subscriber takes
        the run in one call."""
        objects = self._objects
        keys, latest = keys_and_last_version(objs)
        # Keys not held yet are additions; in a steady watch there are none, and every key is a modification.
        added = set(keys).difference(objects)
        objects.update(zip(keys, objs, strict=True))
        for index in self._index_list:
            index.put_all(keys, objs)
        if latest:
            self.resource_version = latest
        for sub in self._subscribers:
            sub._push_run(keys, added)

    def _swap(self, new: dict[ObjectKey, T]) -> None:
        old = self._objects
        subscribers = self._subscribers
        # The differences are only worth computing for someone to tell: a store nobody subscribes to yet (the
        # first list of a reflector started before its consumers) skips this walk over every object.
        changes: list[tuple[ObjectKey, ChangeKind]] = []
        if subscribers:
            changes = [(k, "deleted") for k in old if k not in new]
            for key, obj in new.items():
                before = old.get(key)
                if before is None:
                    changes.append((key, "added"))
                else:
                    rv = resource_version(obj)
                    if not rv or resource_version(before) != rv:
                        changes.append((key, "modified"))
        self._objects = new
        for index in self._index_list:
            index.clear()
            for key, obj in new.items():
                index.put(key, obj)
        for key, kind in changes:
            for sub in subscribers:
                sub._push(key, kind)


class _Index(Generic[T]):
    """One secondary index: the keys of the objects per value of ``func``, and each key's values.

    A key indexed under one value holds the one shared tuple of that value (``single``), so that telling
    an unchanged object (the common modification) reads no memory of the object it replaces.

    A bucket of one key is the key itself, a set only from the second key on: an index whose values are
    (nearly) unique, as the PVs' by volume id, would otherwise hold a set of one per object (216 bytes each,
    about 40 MiB for the two values of 100,000 PVs).
    """

    __slots__ = ("buckets", "func", "single", "values_of")

    def __init__(self, func: IndexFunc[T]) -> None:
        self.func = func
        self.buckets: dict[str, ObjectKey | set[ObjectKey]] = {}
        self.values_of: dict[ObjectKey, tuple[str, ...]] = {}
        # value -> its shared 1-tuple, while a key is indexed under that value alone
        self.single: dict[str, tuple[str]] = {}

    def put(self, key: ObjectKey, obj: T) -> None:
        """Index ``obj`` under ``key``, replacing what ``key`` was indexed under before."""
        self._put_values(key, tuple(self.func(obj)))

    def _put_values(self, key: ObjectKey, values: tuple[str, ...]) -> None:
        """:meth:`put` with the index function's values already computed."""
        if len(values) == 1:
            values = self.single.get(values[0], values)
        elif len(values) > 1:
            values = tuple(dict.fromkeys(values))  # distinct, in first-seen order
        values_of = self.values_of
        old = values_of.get(key, ())
        # A modification rarely moves an object between index values (a PV keeps its storage class):
        # then the index is already right.
        if values is old or values == old:
            return
        for value in old:
            if value not in values:
                self._discard(value, key)
        if values:
            for value in values:
                self._add(value, key)
            if len(values) == 1:
                values = self.single.setdefault(values[0], values)
            values_of[key] = values
        else:
            del values_of[key]

    def put_all(self, keys: builtins.list[ObjectKey], objs: builtins.list[T]) -> None:
        """:meth:`put` each object under its key, in order."""
        # put()'s common case inlined (an object still under the one value it had): a busy watch's runs
        # of events come here, and the call per object was a tenth of the index's cost.
        func, single, values_of, put_values = self.func, self.single, self.values_of, self._put_values
        for key, obj in zip(keys, objs, strict=True):
            values = tuple(func(obj))
            if len(values) == 1:
                shared = single.get(values[0])
                if shared is not None and values_of.get(key) is shared:
                    continue
            put_values(key, values)

    def remove(self, key: ObjectKey) -> None:
        for value in self.values_of.pop(key, ()):
            self._discard(value, key)

    def clear(self) -> None:
        self.buckets = {}
        self.values_of = {}
        self.single = {}

    def _add(self, value: str, key: ObjectKey) -> None:
        """Add ``key`` to the bucket of ``value``, creating the bucket if needed."""
        buckets = self.buckets
        bucket = buckets.get(value)
        if bucket is None:
            buckets[value] = key
        elif isinstance(bucket, set):
            bucket.add(key)
        elif bucket != key:
            buckets[value] = {bucket, key}

    def _discard(self, value: str, key: ObjectKey) -> None:
        """Remove ``key`` from the bucket of ``value``, and the bucket once empty."""
        buckets = self.buckets
        bucket = buckets[value]
        if isinstance(bucket, set):
            bucket.discard(key)
            if len(bucket) == 1:
                buckets[value] = next(iter(bucket))
        elif bucket == key:
            del buckets[value]
            self.single.pop(value, None)
