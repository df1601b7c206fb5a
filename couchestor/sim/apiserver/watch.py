"""WATCH streams: replay from a resourceVersion, live events, bookmarks, timeouts, and 410 for old versions.

A stream is one chunked HTTP response of newline-separated ``{"type": ..., "object": ...}`` events. The
handler registers its :class:`~.store.Watcher` and computes the initial events (synthetic ADDED, or the
retained history after the requested version) in one synchronous step, so no change can fall between them.
BOOKMARKs follow kube-apiserver's watch cache: none until the resource (any object of it) was written after
the watch began, then one every ``bookmark_interval`` and one about 2 s before ``timeoutSeconds`` ends. An
object that stops matching the watch's selectors arrives as DELETED with its last matching state, at the
version of the write that moved it. A stream ends when ``timeoutSeconds`` passes, when the client disconnects,
when the chaos knob drops watches, or when the watcher falls too far behind (its buffer overflows); the client
then sees the end of the response.
The chaos knobs can also break a stream (the connection closes mid-response) or freeze it (no byte again until
the client gives up).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import trio

from couchestor.labels import Selector
from couchestor.sim.apiserver import table as tables
from couchestor.sim.apiserver.chaos import Chaos, OpenWatch
from couchestor.sim.apiserver.core import Cluster
from couchestor.sim.apiserver.errors import ApiError, FieldError, invalid
from couchestor.sim.apiserver.fieldsel import FieldSelector
from couchestor.sim.apiserver.resources import ResourceType
from couchestor.sim.apiserver.store import Change, Key, Record, decode

_encode = msgspec.json.Encoder().encode
_BATCH = 256


@dataclass(slots=True)
class WatchParams:
    namespace: str | None
    labels: Selector
    fields: FieldSelector
    resource_version: str
    bookmarks: bool
    timeout: float
    send_initial: bool | None
    table: bool
    include_object: str


def validate_watch_options(rv_match: str, send_initial: str | None, rv: str) -> None:
    errors: list[FieldError] = []
    if send_initial is not None and rv_match != "NotOlderThan":
        errors.append(
            FieldError(
                "resourceVersionMatch",
                "FieldValueForbidden",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )
        )
    if rv_match:
        if send_initial is None:
            errors.append(
                FieldError(
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                )
            )
        elif rv_match != "NotOlderThan":
            errors.append(
                FieldError(
                    "resourceVersionMatch",
                    "FieldValueNotSupported",
                    'supported values: "NotOlderThan"',
                    rv_match,
                )
            )
    if errors:
        raise invalid("ListOptions", "meta.k8s.io", "", errors)


def default_timeout() -> float:
    """The server's own limit when the client sets none: between 30 and 60 minutes, like kube-apiserver."""
    return 1800.0 * (1.0 + random.random())


class WatchStream:
    """One open watch; :meth:`run` writes it to the ASGI ``send`` until it ends."""

    def __init__(
        self, cluster: Cluster, chaos: Chaos, rt: ResourceType, params: WatchParams, bookmark_interval: float
    ) -> None:
        self.cluster = cluster
        self.chaos = chaos
        self.rt = rt
        self.p = params
        self.bookmark_interval = bookmark_interval
        self._start_rv = 0  # the version the watch began at
        self._last_rv = 0  # the newest change of this resource the watch has passed, selected or not

    def _matches(self, key: Key, rec: Record | None) -> bool:
        if rec is None:
            return False
        if self.p.namespace is not None and key[0] != self.p.namespace:
            return False
        return self.cluster.matches(key, rec, self.p.labels, self.p.fields)

    def _translate(self, change: Change) -> tuple[str, Record] | None:
        """The event this watcher sees for ``change`` given its selectors (None: not visible)."""
        new_ok = change.type != "DELETED" and self._matches(change.key, change.new)
        old_ok = self._matches(change.key, change.old)
        if change.type == "DELETED":
            return ("DELETED", change.new) if old_ok else None
        if new_ok:
            return ("MODIFIED" if old_ok and change.type == "MODIFIED" else "ADDED", change.new)
        if old_ok:
            # Leaving the selection: its last matching state, at the version of the write that moved it.
            assert change.old is not None
            obj = change.old.obj()
            obj["metadata"]["resourceVersion"] = str(change.rv)
            return ("DELETED", Record(change.rv, _encode(obj), change.old.uid, None, None, None))
        return None

    def _event(self, type: str, rec: Record) -> bytes:
        if self.p.table:
            obj = decode(self.cluster.serve_raw(self.rt, rec))
            tbl = tables.table(self.rt, [obj], self.p.include_object, {"resourceVersion": str(rec.rv)})
            return _encode({"type": type, "object": tbl}) + b"\n"
        return b'{"type":"' + type.encode() + b'","object":' + self.cluster.serve_raw(self.rt, rec) + b"}\n"

    def _bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}
        return _encode({"type": "BOOKMARK", "object": obj}) + b"\n"

    def _gone(self, asked: int) -> bytes:
        status = ApiError(
            410,
            "Expired",
            f"too old resource version: {asked} ({self.cluster.store.compacted_rv_of(self.rt.bucket)})",
        )
        return _encode({"type": "ERROR", "object": status.status()}) + b"\n"

    async def run(self, send: Any, receive: Any) -> None:
        store = self.cluster.store
        rv_text = self.p.resource_version
        initial: list[bytes] = []
        watcher = None
        gone_at: int | None = None
        if rv_text not in ("", "0"):
            try:
                asked = int(rv_text)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version: {rv_text}") from None
            if self.chaos.take_gone() or asked < store.compacted_rv_of(self.rt.bucket):
                gone_at = asked
        if gone_at is None:
            # Registration and the initial events happen in one synchronous step: nothing is missed.
            watcher = store.add_watcher(self.rt.bucket)
            self._start_rv = self._last_rv = store.rv if rv_text in ("", "0") else int(rv_text)
            if rv_text in ("", "0") or self.p.send_initial:
                ns = self.p.namespace if self.rt.namespaced else None
                for key, rec in store.snapshot(self.rt.bucket, store.rv, None, ns):
                    if self._matches(key, rec):
                        initial.append(self._event("ADDED", rec))
                if self.p.send_initial and self.p.bookmarks:
                    initial.append(self._bookmark(store.rv, initial_end=True))
            else:
                initial.extend(self._replay(store.changes_since(int(rv_text), self.rt.bucket)))
        # Known to the knobs before the client sees the stream, so that none can miss it.
        handle = OpenWatch(trio.CancelScope(deadline=trio.current_time() + self.p.timeout))
        self.chaos.track_watch(handle)
        try:
            await self._stream(send, receive, handle, watcher, initial, gone_at)
        finally:
            self.chaos.untrack_watch(handle)

    async def _stream(
        self,
        send: Any,
        receive: Any,
        handle: OpenWatch,
        watcher: Any,
        initial: list[bytes],
        gone_at: int | None,
    ) -> None:
        store = self.cluster.store
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-cache, private")],
            }
        )
        if gone_at is not None:
            await send({"type": "http.response.body", "body": self._gone(gone_at), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        assert watcher is not None
        disconnected = False
        try:
            with handle.scope as scope:
                async with trio.open_nursery() as nursery:

                    async def watch_disconnect() -> None:
                        nonlocal disconnected
                        while (await receive())["type"] != "http.disconnect":
                            pass
                        disconnected = True
                        scope.cancel()

                    nursery.start_soon(watch_disconnect)
                    for i in range(0, len(initial), _BATCH):
                        await send(
                            {
                                "type": "http.response.body",
                                "body": b"".join(initial[i : i + _BATCH]),
                                "more_body": True,
                            }
                        )
                    initial.clear()
                    await self._live(send, watcher, scope.deadline)
                    nursery.cancel_scope.cancel()
        finally:
            store.remove_watcher(watcher)
        if disconnected or handle.end == "reset":
            return  # returning mid-response makes the server close the connection without the final chunk
        if handle.end == "freeze":
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        with trio.move_on_after(5):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _replay(self, changes: Iterable[Change]) -> list[bytes]:
        out = []
        for change in changes:
            self._last_rv = max(self._last_rv, change.rv)
            ev = self._translate(change)
            if ev is not None:
                out.append(self._event(*ev))
        return out

    def _next_bookmark(self, deadline: float) -> float:
        """Periodically, and about two seconds before the stream's deadline, as kube-apiserver does."""
        now = trio.current_time()
        nxt = now + self.bookmark_interval
        if deadline - 2.0 > now:
            nxt = min(nxt, deadline - 2.0)
        return nxt

    async def _live(self, send: Any, watcher: Any, deadline: float) -> None:
        next_bookmark = self._next_bookmark(deadline)
        while True:
            change = None
            with trio.move_on_at(next_bookmark if self.p.bookmarks else float("inf")):
                try:
                    change = await watcher.receive.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return  # closed by the store: too slow, or the resource went away
            if change is None:
                # Nothing is pending, so every change of this resource up to _last_rv has been delivered.
                # Like kube-apiserver's watch cache, a bookmark needs a write to the resource (any object
                # of it, selected or not) since the watch began: an idle watch gets none.
                if self._last_rv > self._start_rv:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": self._bookmark(self._last_rv),
                            "more_body": True,
                        }
                    )
                next_bookmark = self._next_bookmark(deadline)
                if next_bookmark >= deadline - 2.0:
                    next_bookmark = max(next_bookmark, trio.current_time() + self.bookmark_interval)
                continue
            batch = [change]
            while len(batch) < _BATCH:
                try:
                    batch.append(watcher.receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            body = b"".join(self._replay(batch))
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
