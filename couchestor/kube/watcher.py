"""List-then-watch of one resource type, as an explicit state machine (kube-runtime's ``watcher``).

States, and what moves the machine on:

- :class:`Empty`: nothing listed yet, or the last list/watch position is unusable (410 Gone). Emits
  :class:`Init` and moves to InitPage.
- :class:`InitPage`: listing in pages of ``page_size`` (one consistent snapshot, held together by the
  ``continue`` token; the next page is requested before the one before is decoded, so the server and this
  process work at once). Each item is emitted as :class:`InitApply`; after the last page :class:`InitDone`
  carries the snapshot's resourceVersion and the machine moves to InitListed. A store swaps its contents on
  InitDone, so its readers never see half a list.
- :class:`InitListed`: holds the resourceVersion to watch from; opens a WATCH (bookmarks on, server timeout
  random in [``min_timeout``, ``max_timeout``) like client-go, to spread reconnects) and moves to Watching.
- :class:`Watching`: ADDED/MODIFIED become :class:`Apply`, DELETED :class:`Delete`; every event, bookmarks
  included, advances the resourceVersion. When the server ends the stream (its timeout) the machine goes
  back to InitListed at the last resourceVersion and watches again at once.

Failures are reported as :class:`WatcherError` naming the phase. 410 Gone (as an HTTP answer, or an ERROR
event with code 410) sends the machine to Empty, a full relist; any other failure keeps the position (a page
is re-requested, a watch resumes from the last resourceVersion). Either way the watcher sleeps on a
client-go backoff (800 ms doubling to 30 s, jittered, reset after 2 min without failure) before going on.

The resourceVersion to resume from is always the list's or the last event's, never an item of the list:
list order is arbitrary, so an item's version may be far older than the snapshot.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, NoReturn, TypeVar

import msgspec
import trio

from couchestor.kube import objects
from couchestor.kube.backoff import WATCH_BACKOFF, Backoff, BackoffPolicy
from couchestor.kube.client import DEFAULT_PAGE_SIZE, KubeClient, UndecodedPage
from couchestor.kube.errors import ApiError, Gone, KubeError, TooManyRequests, api_error, is_gone
from couchestor.kube.resources import Resource
from k8s_schemas.meta import ObjectMeta, RawWatchEvent, Status

T = TypeVar("T")

# --- events --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Init:
    """A (re)list starts; buffer what follows until :class:`InitDone`."""


@dataclass(frozen=True, slots=True)
class InitApply(Generic[T]):
    """An object of the list in progress."""

    obj: T


@dataclass(frozen=True, slots=True)
class InitDone:
    """The list is complete at ``resource_version``; anything not listed no longer exists."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class Apply(Generic[T]):
    """An object was added or modified (its new state)."""

    obj: T


@dataclass(frozen=True, slots=True)
class Delete(Generic[T]):
    """An object was deleted (its last state)."""

    obj: T


WatchEvent = Init | InitApply[T] | InitDone | Apply[T] | Delete[T]

# --- states --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Empty:
    pass


@dataclass(frozen=True, slots=True)
class InitPage:
    continue_token: str | None
    resource_version: str


@dataclass(frozen=True, slots=True)
class InitListed:
    resource_version: str


@dataclass(frozen=True, slots=True)
class Watching:
    resource_version: str


State = Empty | InitPage | InitListed | Watching

Phase = Literal["initial list", "watch start", "watch stream", "server error event", "decode"]


class WatcherError(KubeError):
    """A failure of the watcher in ``phase``; ``relist`` says whether the position was lost (410 Gone)."""

    def __init__(self, resource: Resource, phase: Phase, cause: Exception, *, relist: bool) -> None:
        action = "relisting" if relist else "resuming"
        super().__init__(f"watch {resource}: {phase} failed ({action}): {cause}")
        self.resource = resource
        self.phase: Phase = phase
        self.cause = cause
        self.relist = relist


@dataclass(slots=True)
class WatcherStats:
    """Counters for metrics and tests."""

    lists: int = 0  # lists started (the first one included)
    watches: int = 0  # watch requests opened successfully
    errors: int = 0  # failures, each followed by a backoff
    relists_after_gone: int = 0
    events: int = 0  # watch events received, bookmarks included


class _Bookmark(msgspec.Struct):
    metadata: ObjectMeta


# A fetched page with the event set once the page after it has been requested; or the fetch's failure.
_Fetched = tuple[UndecodedPage, trio.Event] | WatcherError

_BOOKMARK_DECODER = msgspec.json.Decoder(_Bookmark)
_STATUS_DECODER = msgspec.json.Decoder(Status)
# A stream that ends this fast without a single event is a failure, not the server's timeout (client-go).
_SHORT_WATCH = 1.0


@dataclass(slots=True)
class Watcher(Generic[T]):
    """Lists and watches ``resource`` (in ``namespace``, or all), decoding objects as ``type``.

    Run it with :meth:`run`; ``state`` and ``stats`` may be read at any time. ``on_error`` is called with
    each :class:`WatcherError` before the backoff (for logs and metrics); it must not block.
    """

    client: KubeClient
    resource: Resource
    type: type[T]
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    bookmarks: bool = True
    min_timeout: int = 300
    max_timeout: int = 600
    backoff: BackoffPolicy = WATCH_BACKOFF
    on_error: Callable[[WatcherError], None] | None = None
    rng: random.Random = field(default_factory=random.Random)
    state: State = field(default_factory=Empty)
    stats: WatcherStats = field(default_factory=WatcherStats)

    async def run(self, on_event: Callable[[WatchEvent[T]], None]) -> NoReturn:
        """List, watch and re-watch forever, passing every event to ``on_event`` in order.

        ``on_event`` is called synchronously from this task, so it sees events in stream order and must not
        block. Never returns; failures are retried after a backoff. Cancelling the surrounding scope stops
        it at once and closes any open watch connection.
        """
        backoff = Backoff(self.backoff, rng=self.rng)
        while True:
            try:
                self.state = await self._step(self.state, on_event)
            except WatcherError as err:
                self.stats.errors += 1
                if err.relist:
                    self.stats.relists_after_gone += 1
                    self.state = Empty()
                if self.on_error is not None:
                    self.on_error(err)
                delay = backoff.next_delay()
                # A throttled server says when to come back; never come back sooner.
                if isinstance(err.cause, TooManyRequests) and err.cause.retry_after is not None:
                    delay = max(delay, min(err.cause.retry_after, self.backoff.cap))
                await trio.sleep(delay)

    async def _step(self, state: State, on_event: Callable[[WatchEvent[T]], None]) -> State:
        """Do the work of ``state`` and return the next state; raise :class:`WatcherError` on failure."""
        if isinstance(state, Empty):
            self.stats.lists += 1
            on_event(Init())
            return InitPage(None, "")
        if isinstance(state, InitPage):
            return await self._list(state, on_event)
        return await self._watch(state.resource_version, on_event)

    async def _list(self, state: InitPage, on_event: Callable[[WatchEvent[T]], None]) -> State:
        """The rest of the list that ``state`` is in; returns InitListed after its last page.

        Pipelined: a fetching task asks for the next page as soon as it has read a page's ``continue``
        token, and this task decodes and applies that page only once the next request is on the wire, so
        the server prepares one page while this process decodes the one before. ``self.state`` follows
        each applied page, so a failure resumes at the first page not yet applied.
        """
        send, receive = trio.open_memory_channel[_Fetched](0)
        failure: WatcherError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fetch_pages, state, send)
            async with receive:
                async for got in receive:
                    if isinstance(got, WatcherError):
                        failure = got
                        break
                    fetched, next_requested = got
                    await next_requested.wait()
                    rv = state.resource_version or fetched.metadata.resource_version or ""
                    try:
                        page = fetched.decode(self.type)
                    except KubeError as exc:
                        failure = WatcherError(self.resource, "initial list", exc, relist=False)
                        break
                    for item in page.items:
                        on_event(InitApply(item))
                    state = InitPage(fetched.metadata.continue_ or None, rv)
                    self.state = state
                    if state.continue_token is None:
                        on_event(InitDone(rv))
                        return InitListed(rv)
            nursery.cancel_scope.cancel()
        assert failure is not None, "the page fetcher ended before the last page"
        raise failure

    async def _fetch_pages(self, state: InitPage, send: trio.MemorySendChannel[_Fetched]) -> None:
        """Send every page from ``state`` on, each with an event set once the next page is requested;
        a failure is sent as the last item."""
        token = state.continue_token
        next_requested = trio.Event()
        next_requested.set()  # nothing before the first page
        async with send:
            while True:
                try:
                    page = await self.client.list_page_undecoded(
                        self.resource,
                        self.namespace,
                        label_selector=self.label_selector,
                        field_selector=self.field_selector,
                        limit=self.page_size,
                        continue_token=token,
                        on_sent=next_requested.set,
                    )
                except KubeError as exc:
                    next_requested.set()
                    gone = isinstance(exc, Gone)
                    await send.send(WatcherError(self.resource, "initial list", exc, relist=gone))
                    return
                next_requested.set()  # a transport that does not trace: at the latest, once answered
                next_requested = trio.Event()
                token = page.metadata.continue_ or None
                if token is None:
                    next_requested.set()
                await send.send((page, next_requested))
                if token is None:
                    return

    async def _watch(self, rv: str, on_event: Callable[[WatchEvent[T]], None]) -> State:
        timeout_seconds = self.rng.randrange(self.min_timeout, max(self.max_timeout, self.min_timeout + 1))
        decoder = objects.decoder(self.type)
        started = trio.current_time()
        received = 0
        try:
            async with self.client.watch(
                self.resource,
                self.namespace,
                resource_version=rv,
                timeout_seconds=timeout_seconds,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                bookmarks=self.bookmarks,
            ) as batches:
                stats = self.stats
                stats.watches += 1
                self.state = Watching(rv)
                try:
                    async for batch in batches:
                        received += len(batch)
                        stats.events += len(batch)
                        # The object applied last whose resourceVersion is not in ``rv`` yet: reading it once
                        # per batch rather than per event, as nothing can observe ``rv`` in between.
                        last: T | None = None
                        try:
                            for raw in batch:
                                kind = raw.type
                                if kind == "MODIFIED" or kind == "ADDED":
                                    # The bulk of a watch, inline (this loop is the hot path): see _handle.
                                    try:
                                        obj = decoder.decode(raw.object)
                                    except msgspec.DecodeError as exc:
                                        raise self._decode_error(kind, exc) from exc
                                    on_event(Apply(obj))
                                    last = obj
                                else:
                                    if last is not None:
                                        rv = objects.resource_version(last) or rv
                                        last = None
                                    rv = self._handle(raw, rv, decoder, on_event)
                        finally:
                            # Also on failure mid-batch: the resume position is the last event applied.
                            if last is not None:
                                rv = objects.resource_version(last) or rv
                        self.state = Watching(rv)
                except WatcherError:
                    raise
                except KubeError as exc:
                    raise WatcherError(self.resource, "watch stream", exc, relist=False) from exc
        except ApiError as exc:
            raise WatcherError(self.resource, "watch start", exc, relist=isinstance(exc, Gone)) from exc
        except WatcherError:
            # Keep the position reached, so that a resume skips what was already seen.
            self.state = InitListed(rv)
            raise
        except KubeError as exc:
            raise WatcherError(self.resource, "watch start", exc, relist=False) from exc
        if received == 0 and trio.current_time() - started < _SHORT_WATCH:
            self.state = InitListed(rv)
            raise WatcherError(
                self.resource, "watch stream", KubeError("server closed the watch at once"), relist=False
            )
        return InitListed(rv)

    def _handle(
        self,
        raw: RawWatchEvent,
        rv: str,
        decoder: msgspec.json.Decoder[T],
        on_event: Callable[[WatchEvent[T]], None],
    ) -> str:
        """Apply one raw event; return the resourceVersion to resume from afterwards."""
        try:
            if raw.type == "BOOKMARK":
                mark = _BOOKMARK_DECODER.decode(raw.object).metadata.resource_version
                return mark if isinstance(mark, str) and mark else rv
            if raw.type == "ERROR":
                status = _STATUS_DECODER.decode(raw.object)
            else:
                obj = decoder.decode(raw.object)
        except msgspec.DecodeError as exc:
            raise self._decode_error(raw.type, exc) from exc
        if raw.type == "ERROR":
            error = api_error(f"WATCH {self.resource}", status)
            raise WatcherError(self.resource, "server error event", error, relist=is_gone(status))
        on_event(Delete(obj) if raw.type == "DELETED" else Apply(obj))
        return objects.resource_version(obj) or rv

    def _decode_error(self, event_type: str, exc: msgspec.DecodeError) -> WatcherError:
        return WatcherError(self.resource, "decode", KubeError(f"{event_type} event: {exc}"), relist=False)
