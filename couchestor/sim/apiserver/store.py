"""The object store: one global resourceVersion, compact records, a bounded change history, watchers.

Objects are kept as their encoded JSON (``bytes``) plus a small index record, so 50,000 objects cost little
and a LIST is a concatenation of stored bytes. Every change is appended to a bounded history; that history
serves watch replay from a resourceVersion and consistent LIST continuation (``continue`` tokens): the state
of an object at an older version is the ``old`` record of the first change after that version.

All methods are synchronous: trio runs one task at a time, so a commit and the watcher notifications it
causes are atomic with respect to every request handler.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

import msgspec
import trio

Key = tuple[str, str]  # (namespace or "", name): sorts like etcd keys
EventType = Literal["ADDED", "MODIFIED", "DELETED"]

_encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder().decode


class Record:
    """One stored object version: encoded bytes plus what selectors and the garbage collector need."""

    __slots__ = ("fields", "labels", "owners", "raw", "rv", "uid")

    def __init__(
        self,
        rv: int,
        raw: bytes,
        uid: str,
        labels: dict[str, str] | None,
        owners: tuple[str, ...] | None,
        fields: dict[str, str] | None,
    ) -> None:
        self.rv = rv
        self.raw = raw
        self.uid = uid
        self.labels = labels
        self.owners = owners
        self.fields = fields

    def obj(self) -> dict[str, Any]:
        """A fresh decoded copy, safe to modify."""
        out: dict[str, Any] = decode(self.raw)
        return out


class Change:
    """One committed change. ``new`` is the object after it (for DELETED: its final state)."""

    __slots__ = ("bucket", "key", "new", "old", "rv", "type")

    def __init__(
        self, rv: int, bucket: str, type: EventType, key: Key, new: Record, old: Record | None
    ) -> None:
        self.rv = rv
        self.bucket = bucket
        self.type = type
        self.key = key
        self.new = new
        self.old = old


class Bucket:
    """The objects of one resource (group + plural), all versions of it share one bucket."""

    __slots__ = ("_sorted", "entries", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: dict[Key, Record] = {}
        self._sorted: list[Key] | None = None

    def sorted_keys(self) -> list[Key]:
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        return self._sorted

    def keys_from(self, start: Key | None, namespace: str | None) -> Iterator[Key]:
        """Keys in etcd order, from ``start`` (inclusive), restricted to ``namespace`` when given."""
        keys = self.sorted_keys()
        lo = (namespace, "") if namespace is not None else ("", "")
        if start is not None and start > lo:
            lo = start
        i = bisect.bisect_left(keys, lo)
        while i < len(keys):
            key = keys[i]
            if namespace is not None and key[0] != namespace:
                return
            yield key
            i += 1

    def count_from(self, start: Key, namespace: str | None) -> int:
        """How many keys sort at or after ``start`` (within ``namespace`` when given)."""
        keys = self.sorted_keys()
        i = bisect.bisect_left(keys, start)
        if namespace is None:
            return len(keys) - i
        return bisect.bisect_left(keys, (namespace + "\x00", "")) - i


class Watcher:
    """A registered watch: receives every change of its bucket through a bounded channel.

    A watcher whose buffer is full is closed (its stream ends; the client re-watches), so one slow client
    never delays a writer or another watcher.
    """

    __slots__ = ("bucket", "closed", "receive", "send")

    def __init__(self, bucket: str, buffer: int) -> None:
        self.bucket = bucket
        self.send, self.receive = trio.open_memory_channel[Change](buffer)
        self.closed = False


class Store:
    """Every object, the global resourceVersion, the retained history and the open watchers."""

    def __init__(self, history_limit: int) -> None:
        self.rv = 1
        self.history_limit = max(1, history_limit)
        self.buckets: dict[str, Bucket] = {}
        self.history: deque[Change] = deque()
        # Every change with rv > compacted_rv is in ``history``; of one bucket, every change with rv >
        # compacted_rv_of(bucket) (see there).
        self.compacted_rv = 1
        self._compacted_at = 1  # the version of the last compact()
        self._compacted_of: dict[str, int] = {}  # bucket -> rv of its newest change dropped from history
        self._watchers: dict[str, set[Watcher]] = {}
        self.watch_buffer = 10_000

    def bucket(self, name: str) -> Bucket:
        b = self.buckets.get(name)
        if b is None:
            b = self.buckets[name] = Bucket(name)
        return b

    def get(self, bucket: str, key: Key) -> Record | None:
        b = self.buckets.get(bucket)
        return None if b is None else b.entries.get(key)

    def commit(
        self,
        bucket: str,
        type: EventType,
        key: Key,
        obj: dict[str, Any],
        *,
        fields: Callable[[dict[str, Any]], dict[str, str] | None] | None = None,
    ) -> Record:
        """Store ``obj`` (or delete it for DELETED) at the next resourceVersion; return its record."""
        self.rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.rv)
        raw = _encode(obj)
        labels = meta.get("labels") or None
        owners = tuple(o.get("uid", "") for o in meta.get("ownerReferences") or ()) or None
        record = Record(self.rv, raw, meta.get("uid", ""), labels, owners, fields(obj) if fields else None)
        b = self.bucket(bucket)
        old = b.entries.get(key)
        if type == "DELETED":
            b.entries.pop(key, None)
            b._sorted = None
        else:
            if old is None:
                b._sorted = None
            b.entries[key] = record
        change = Change(self.rv, bucket, type, key, record, old)
        self._remember(change)
        self._notify(change)
        return record

    def _remember(self, change: Change) -> None:
        self.history.append(change)
        while len(self.history) > self.history_limit:
            dropped = self.history.popleft()
            self.compacted_rv = self._compacted_of[dropped.bucket] = dropped.rv

    def compact(self) -> None:
        """Forget all history up to now."""
        self.history.clear()
        self.compacted_rv = self._compacted_at = self.rv
        self._compacted_of.clear()

    def compacted_rv_of(self, bucket: str) -> int:
        """The oldest version ``bucket`` can be watched or listed from: every change of it after that version
        is still in the history.

        Per resource, as the real API server's watch cache is: a resource nobody changed while thousands of
        PVs were written still resumes a watch from its last version, where a single window for every
        resource would answer 410 Expired and make every quiet watch relist."""
        return max(self._compacted_at, self._compacted_of.get(bucket, 1))

    def changes_since(self, rv: int, bucket: str) -> Iterator[Change]:
        """Retained changes of ``bucket`` with resourceVersion > ``rv`` (the caller checks
        ``rv >= compacted_rv_of(bucket)``)."""
        hist = self.history
        if not hist or hist[-1].rv <= rv:
            return
        # History is sorted by rv; skip quickly to the first change after ``rv``.
        lo, hi = 0, len(hist)
        while lo < hi:
            mid = (lo + hi) // 2
            if hist[mid].rv <= rv:
                lo = mid + 1
            else:
                hi = mid
        for i in range(lo, len(hist)):
            c = hist[i]
            if c.bucket == bucket:
                yield c

    def snapshot(
        self, bucket: str, at_rv: int, start: Key | None, namespace: str | None
    ) -> Iterator[tuple[Key, Record]]:
        """Objects of ``bucket`` as they were at ``at_rv``, in key order from ``start`` (inclusive).

        The caller ensures ``at_rv >= compacted_rv_of(bucket)``. Records newer than ``at_rv`` are replaced by
        the record that the first later change replaced (or dropped when it was created later).
        """
        b = self.bucket(bucket)
        overrides: dict[Key, Record | None] = {}
        for c in self.changes_since(at_rv, bucket):
            if c.key not in overrides:
                overrides[c.key] = c.old
        current = b.keys_from(start, namespace)
        if not overrides:
            for key in current:
                yield key, b.entries[key]
            return
        extra = sorted(
            k
            for k in overrides
            if k not in b.entries
            and (start is None or k >= start)
            and (namespace is None or k[0] == namespace)
        )
        for key in heapq.merge(current, extra):
            rec = overrides[key] if key in overrides else b.entries[key]
            if rec is not None:
                yield key, rec

    def add_watcher(self, bucket: str) -> Watcher:
        w = Watcher(bucket, self.watch_buffer)
        self._watchers.setdefault(bucket, set()).add(w)
        return w

    def remove_watcher(self, w: Watcher) -> None:
        self._watchers.get(w.bucket, set()).discard(w)
        w.closed = True
        w.send.close()

    def watchers(self) -> list[Watcher]:
        return [w for ws in self._watchers.values() for w in ws]

    def _notify(self, change: Change) -> None:
        for w in list(self._watchers.get(change.bucket, ())):
            try:
                w.send.send_nowait(change)
            except trio.WouldBlock:
                # Too slow: end this watch rather than block the writer or buffer without bound.
                self.remove_watcher(w)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.remove_watcher(w)
