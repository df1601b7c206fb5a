"""List-then-watch of one resource type, as an explicit state machine (kube-runtime's ``watcher``).

States, and what moves the machine on:

- :class:`Empty`: nothing listed yet, or the last list/watch position is unusable (410 Gone). Emits
  :class:`Init` and moves to InitPage.
- :class:`InitPage`: listing in pages of ``page_size`` (one consistent snapshot, held together by the
  ``continue`` token; the next page is requested before the one before is decoded, so the server and this
  process work at once). Each item is emitted as :class:`InitApply`; after the last page :class:`InitDone`
  carries the snapshot's resourceVersion and the machine moves to InitListed. A store swaps its contents on
  InitDone, so its readers never see half a list.
- :class:`InitListed`: holds the resourceVersion to watch from; opens a WATCH (bookmarks on) and moves to
  Watching. The server timeout is random, to spread reconnects: in [``min_timeout``, ``max_timeout``) like
  client-go while the resource is busy, shorter while it is idle (see *Liveness*).
- :class:`Watching`: ADDED/MODIFIED become :class:`Apply`, DELETED :class:`Delete`; every event, bookmarks
  included, advances the resourceVersion. With ``batch`` set (what a reflector does), the ADDED/MODIFIED
  events that follow one another in one network chunk become one :class:`ApplyAll` instead, so that the
  consumer does its per-event bookkeeping once per run of events (a busy watch's chunk holds tens of them). When the server ends the stream (its timeout) the machine goes
  back to InitListed at the last resourceVersion and watches again at once.

Liveness. A connection can die without a FIN (a NAT or load balancer forgetting an idle flow, a frozen
proxy), and an HTTP/1.1 watch has no pings. Connections carry TCP keep-alive (see
:mod:`couchestor.kube.client`), and a watch has a *progress deadline*: no byte for ``progress_timeout``
seconds (40 s, well under a minute) ends the stream, which resumes at once from the last resourceVersion. A
real API server sends no BOOKMARK at all on a watch of a resource nobody writes (and after writes about one a
minute), so a plain deadline would cut every quiet, healthy watch as if it were dead. So the watcher keeps two
modes: a watch whose previous stream carried no object event is *idle* and asks the server for a short
``timeoutSeconds`` (in [``progress_timeout``/2, 3/4 ``progress_timeout``)), so that a healthy idle stream is
always ended by the server, cleanly, before the deadline, and only a dead one trips it; a watch that carried
object events is *busy* and asks for the long timeout. Bookmarks do not make a watch busy: a real server
sends them a minute apart at best, longer than the deadline. An idle watch thus costs one cheap re-watch
(served from the watch cache, no list) every 20-30 s; in exchange a dead connection is noticed within 40 s
whether or not anything is written. A busy stream that goes quiet past the deadline is ended the same way
and continues in idle mode; that is expected and not reported. A deadline tripped in idle mode is reported
as a ``watch stream`` failure caused by :class:`~couchestor.kube.errors.WatchStalled`.

Failures are reported as :class:`WatcherError` naming the phase. 410 Gone (as an HTTP answer, or an ERROR
event with code 410) sends the machine to Empty, a full relist; any other failure keeps the position (a page
is re-requested, a watch resumes from the last resourceVersion). The end of an *established* stream by a
broken connection (reset, abrupt close, progress deadline) is not a failure to connect: it is reported with
``interrupted`` set and the watch resumes at once, as client-go does. Every other failure sleeps on a
client-go backoff (800 ms doubling to 30 s, jittered) before going on; the backoff starts over after a
complete list or an established watch, and after 2 min without failure.

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
from couchestor.kube.errors import (
    ApiError,
    Gone,
    KubeError,
    TooManyRequests,
    TransportError,
    WatchStalled,
    api_error,
    is_gone,
)
from couchestor.kube.resources import Resource
from k8s_schemas.meta import ObjectMeta, ObjectWatchEvent, RawWatchEvent, Status

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


@dataclass(frozen=True, slots=True)
class ApplyAll(Generic[T]):
    """Objects were added or modified, in stream order: the same as one :class:`Apply` per object (only from
    a watcher with ``batch`` set)."""

    objs: list[T]


WatchEvent = Init | InitApply[T] | InitDone | Apply[T] | ApplyAll[T] | Delete[T]

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
    """A failure of the watcher in ``phase``; ``relist`` says whether the position was lost (410 Gone);
    ``interrupted`` that an established stream broke, which is resumed at once, without backoff; ``expected``
    that it was the progress deadline ending a busy stream gone quiet, which is not reported."""

    def __init__(
        self,
        resource: Resource,
        phase: Phase,
        cause: Exception,
        *,
        relist: bool,
        interrupted: bool = False,
        expected: bool = False,
    ) -> None:
        action = "relisting" if relist else "resuming at once" if interrupted else "resuming"
        super().__init__(f"watch {resource}: {phase} failed ({action}): {cause}")
        self.resource = resource
        self.phase: Phase = phase
        self.cause = cause
        self.relist = relist
        self.interrupted = interrupted
        self.expected = expected


@dataclass(slots=True)
class WatcherStats:
    """Counters for metrics and tests."""

    lists: int = 0  # lists started (the first one included)
    watches: int = 0  # watch requests opened successfully
    errors: int = 0  # failures, each followed by a backoff
    relists_after_gone: int = 0
    events: int = 0  # watch events received, bookmarks included
    interruptions: int = 0  # established streams broken (reset, abrupt close, deadline), resumed at once
    stalls: int = 0  # streams ended by the progress deadline (counted in interruptions too)


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
    each :class:`WatcherError` before the backoff (for logs and metrics); it must not block. ``batch``: emit
    :class:`ApplyAll` for consecutive ADDED/MODIFIED events of one chunk instead of one :class:`Apply` each.
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
    progress_timeout: float | None = 40.0
    batch: bool = False
    backoff: BackoffPolicy = WATCH_BACKOFF
    on_error: Callable[[WatcherError], None] | None = None
    rng: random.Random = field(default_factory=random.Random)
    state: State = field(default_factory=Empty)
    stats: WatcherStats = field(default_factory=WatcherStats)
    # Whether the last stream carried no object event (see Liveness in the module doc); unknown at first: idle.
    idle: bool = True

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
                if err.interrupted:
                    self.stats.interruptions += 1
                    backoff.reset()  # it was established: only failures to (re)connect back off
                    if self.on_error is not None and not err.expected:
                        self.on_error(err)
                    continue
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
            else:
                # After a complete list, or a watch that ran its course: start the backoff over.
                if isinstance(self.state, InitListed):
                    backoff.reset()

    def _timeout_seconds(self) -> int:
        """The server-side timeout of the next watch: long when busy, shorter than the deadline when idle."""
        lo, hi = self.min_timeout, max(self.max_timeout, self.min_timeout + 1)
        if self.idle and self.progress_timeout:
            lo = min(lo, max(1, int(self.progress_timeout / 2)))
            hi = max(lo + 1, min(hi, int(self.progress_timeout * 3 / 4)))
        return self.rng.randrange(lo, hi)

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
        timeout_seconds = self._timeout_seconds()
        was_idle = self.idle
        decoder = objects.decoder(self.type)
        started = trio.current_time()
        received = 0
        changes = False  # whether an object event (not a bookmark) arrived: busy
        try:
            async with self.client.watch(
                self.resource,
                self.namespace,
                resource_version=rv,
                timeout_seconds=timeout_seconds,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                bookmarks=self.bookmarks,
                progress_timeout=self.progress_timeout,
                type=self.type,
            ) as batches:
                stats = self.stats
                stats.watches += 1
                self.state = Watching(rv)
                try:
                    async for batch in batches:
                        received += len(batch)
                        if not changes:
                            changes = any(event.type != "BOOKMARK" for event in batch)
                        stats.events += len(batch)
                        # The objects decoded but not yet passed on (as one ApplyAll, or one Apply each); their
                        # last one's resourceVersion is read once per run, as nothing can observe ``rv`` in between.
                        run: list[T] = []
                        try:
                            for event in batch:
                                kind = event.type
                                if kind == "MODIFIED" or kind == "ADDED":
                                    # The bulk of a watch, inline (this loop is the hot path): see _handle.
                                    obj = event.object
                                    if isinstance(obj, msgspec.Raw):  # a line read raw (see KubeClient.watch)
                                        try:
                                            obj = decoder.decode(obj)
                                        except msgspec.DecodeError as exc:
                                            raise self._decode_error(kind, exc) from exc
                                    run.append(obj)
                                else:
                                    if run:
                                        rv = self._emit(run, rv, on_event)
                                        run = []
                                    rv = self._handle(event, rv, decoder, on_event)
                        finally:
                            # Also on failure mid-batch: what was decoded is applied, and the resume position is
                            # the last event applied.
                            if run:
                                rv = self._emit(run, rv, on_event)
                        self.state = Watching(rv)
                except WatcherError:
                    raise
                except TransportError as exc:
                    # The connection broke under an established stream: resume at once, unless the server
                    # drops every watch straight away (short and empty: a failure, as client-go counts it).
                    established = received > 0 or trio.current_time() - started >= _SHORT_WATCH
                    stalled = isinstance(exc, WatchStalled)
                    stats.stalls += stalled
                    # A busy stream gone quiet is expected to stall (see Liveness); either way, idle next.
                    expected = stalled and not was_idle
                    self.idle = stalled or (not changes and was_idle)
                    raise WatcherError(
                        self.resource,
                        "watch stream",
                        exc,
                        relist=False,
                        interrupted=established,
                        expected=expected,
                    ) from exc
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
        self.idle = not changes
        return InitListed(rv)

    def _handle(
        self,
        event: RawWatchEvent | ObjectWatchEvent[T],
        rv: str,
        decoder: msgspec.json.Decoder[T],
        on_event: Callable[[WatchEvent[T]], None],
    ) -> str:
        """Apply one event; return the resourceVersion to resume from afterwards."""
        if isinstance(event, ObjectWatchEvent):
            obj = event.object
            if event.type == "BOOKMARK":
                return objects.resource_version(obj) or rv
        else:
            try:
                if event.type == "BOOKMARK":
                    mark = _BOOKMARK_DECODER.decode(event.object).metadata.resource_version
                    return mark if isinstance(mark, str) and mark else rv
                if event.type == "ERROR":
                    status = _STATUS_DECODER.decode(event.object)
                    error = api_error(f"WATCH {self.resource}", status)
                    raise WatcherError(self.resource, "server error event", error, relist=is_gone(status))
                obj = decoder.decode(event.object)
            except msgspec.DecodeError as exc:
                raise self._decode_error(event.type, exc) from exc
        on_event(Delete(obj) if event.type == "DELETED" else Apply(obj))
        return objects.resource_version(obj) or rv

    def _emit(self, objs: list[T], rv: str, on_event: Callable[[WatchEvent[T]], None]) -> str:
        """Pass on decoded ADDED/MODIFIED objects; return the resourceVersion to resume from afterwards."""
        if self.batch:
            on_event(ApplyAll(objs))
        else:
            for obj in objs:
                on_event(Apply(obj))
        return objects.resource_version(objs[-1]) or rv

    def _decode_error(self, event_type: str, exc: msgspec.DecodeError) -> WatcherError:
        return WatcherError(self.resource, "decode", KubeError(f"{event_type} event: {exc}"), relist=False)
