"""Watcher and reflector protocol behaviour over httpx.MockTransport with scripted server answers."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
import trio

from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import PERSISTENT_VOLUME
from couchestor.kube.watcher import (
    Apply,
    ApplyAll,
    Delete,
    Init,
    InitApply,
    InitDone,
    InitListed,
    Watcher,
    WatcherError,
    WatchEvent,
    Watching,
)
from k8s_schemas.meta import ObjectMeta
from tests.kube.mock import Chunks, events_body, make_client, obj, status, wait_for

Answer = Callable[[httpx.Request], httpx.Response]


class PV(msgspec.Struct, kw_only=True):
    metadata: ObjectMeta
    spec: dict[str, Any] = msgspec.field(default_factory=dict)


class Script:
    """Answers LIST and WATCH requests from two queues; an exhausted watch queue hangs like an idle watch."""

    def __init__(self, lists: list[Answer], watches: list[Answer]) -> None:
        self.lists = lists
        self.watches = watches
        self.requests: list[httpx.Request] = []

    async def __call__(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        queue = self.watches if req.url.params.get("watch") == "true" else self.lists
        if not queue:
            await trio.sleep_forever()
        return queue.pop(0)(req)

    @property
    def watch_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.params.get("watch") == "true"]

    @property
    def list_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.params.get("watch") != "true"]


def list_answer(rv: int, *items: dict[str, Any], token: str | None = None) -> Answer:
    meta: dict[str, Any] = {"resourceVersion": str(rv)} | ({"continue": token} if token else {})
    return lambda req: httpx.Response(200, json={"metadata": meta, "items": list(items)})


def watch_answer(*chunks: bytes, error: Exception | None = None) -> Answer:
    return lambda req: httpx.Response(200, stream=Chunks(chunks, error))


async def run_watcher(
    script: Script, until: Callable[[list[Any]], bool], **kwargs: Any
) -> tuple[list[WatchEvent[PV]], list[WatcherError], Watcher[PV]]:
    seen: list[WatchEvent[PV]] = []
    errors: list[WatcherError] = []
    async with make_client(script) as client:
        watcher = Watcher(client, PERSISTENT_VOLUME, PV, on_error=errors.append, **kwargs)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run, seen.append)
            await wait_for(lambda: until(seen))
            nursery.cancel_scope.cancel()
    return seen, errors, watcher


def names(events: list[Any], kind: type) -> list[str]:
    if kind is ApplyAll:
        return [o.metadata.name for e in events if isinstance(e, ApplyAll) for o in e.objs]
    return [e.obj.metadata.name for e in events if isinstance(e, kind)]


async def test_list_then_watch_decodes_events_split_across_chunks(autojump_clock: trio.abc.Clock) -> None:
    stream = events_body(("ADDED", obj("b", 11)), ("MODIFIED", obj("a", 12)), ("DELETED", obj("b", 13)))
    # Cut the stream at awkward places: inside an event, and several events in one chunk.
    chunks = [stream[:7], stream[7:40], stream[40:41], stream[41:]]
    script = Script([list_answer(10, obj("a", 5))], [watch_answer(*chunks)])
    seen, errors, _ = await run_watcher(
        script, lambda s: any(isinstance(e, Delete) for e in s) and len(script.watch_requests) == 2
    )
    assert [type(e) for e in seen] == [Init, InitApply, InitDone, Apply, Apply, Delete]
    assert names(seen, Apply) == ["b", "a"]
    assert seen[2] == InitDone("10")
    first, second = (r.url.params for r in script.watch_requests)
    assert first["resourceVersion"] == "10"
    assert first["allowWatchBookmarks"] == "true"
    assert second["resourceVersion"] == "13"
    # Idle (nothing seen yet): the server ends the stream before the 40 s progress deadline; busy: long.
    assert 20 <= int(first["timeoutSeconds"]) < 30
    assert 300 <= int(second["timeoutSeconds"]) < 600
    for request in script.watch_requests:
        assert request.extensions["timeout"]["read"] == 40.0
    assert errors == []


@pytest.mark.parametrize("size", [1, 2, 5, 64, 10_000])
async def test_events_are_the_same_whatever_the_chunk_boundaries(
    size: int, autojump_clock: trio.abc.Clock
) -> None:
    events = [("ADDED", obj(f"v{i}", 11 + i, spec={"n": i})) for i in range(6)]
    # Blank lines (a server may send keep-alive newlines) are skipped wherever they fall.
    stream = events_body(*events[:3]) + b"\n \r\n" + events_body(*events[3:])
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    script = Script([list_answer(10)], [watch_answer(*chunks)])
    seen, errors, watcher = await run_watcher(script, lambda s: len(names(s, Apply)) == 6)
    assert names(seen, Apply) == [f"v{i}" for i in range(6)]
    assert [e.obj.spec["n"] for e in seen if isinstance(e, Apply)] == list(range(6))
    assert errors == []
    assert watcher.state in (Watching("16"), InitListed("16"))


async def test_batch_passes_each_chunks_run_of_objects_at_once(autojump_clock: trio.abc.Clock) -> None:
    # Chunk one: three objects, a deletion, one more; chunk two: a bookmark between two objects.
    first = events_body(("ADDED", obj("a", 11)), ("MODIFIED", obj("b", 12)), ("ADDED", obj("c", 13)))
    first += events_body(("DELETED", obj("c", 14)), ("MODIFIED", obj("a", 15)))
    second = events_body(("MODIFIED", obj("b", 16)), ("BOOKMARK", {"metadata": {"resourceVersion": "17"}}))
    second += events_body(("ADDED", obj("d", 18)))
    script = Script([list_answer(10)], [watch_answer(first, second)])
    seen, errors, watcher = await run_watcher(script, lambda s: "d" in names(s, ApplyAll), batch=True)
    assert [type(e) for e in seen] == [Init, InitDone, ApplyAll, Delete, ApplyAll, ApplyAll, ApplyAll]
    runs = [[o.metadata.name for o in e.objs] for e in seen if isinstance(e, ApplyAll)]
    assert runs == [["a", "b", "c"], ["a"], ["b"], ["d"]]
    assert not any(isinstance(e, Apply) for e in seen)
    assert errors == []
    assert watcher.state in (Watching("18"), InitListed("18"))


async def test_an_undecodable_object_mid_chunk_resumes_after_the_last_one_applied(
    autojump_clock: trio.abc.Clock,
) -> None:
    # One chunk: two good events, then one whose object does not match the type (metadata is a string).
    chunk = events_body(("ADDED", obj("a", 11)), ("MODIFIED", obj("a", 12)), ("ADDED", {"metadata": "x"}))
    script = Script(
        [list_answer(10)], [watch_answer(chunk), watch_answer(events_body(("ADDED", obj("b", 14))))]
    )
    seen, errors, _ = await run_watcher(script, lambda s: "b" in names(s, Apply))
    assert [(e.phase, e.relist) for e in errors] == [("decode", False)]
    # Resumed from the second event's version: the two applied events are not asked for again.
    assert [r.url.params["resourceVersion"] for r in script.watch_requests[:2]] == ["10", "12"]
    assert names(seen, Apply) == ["a", "a", "b"]


async def test_an_event_longer_than_the_limit_fails_the_stream(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    monkeypatch.setattr("couchestor.kube.client.MAX_WATCH_LINE", 100)
    long_event = events_body(("ADDED", obj("a", 11, spec={"pad": "x" * 200})))
    chunks = [long_event[i : i + 30] for i in range(0, len(long_event), 30)]
    script = Script(
        [list_answer(10)], [watch_answer(*chunks), watch_answer(events_body(("ADDED", obj("b", 12))))]
    )
    seen, errors, _ = await run_watcher(script, lambda s: "b" in names(s, Apply))
    assert [e.phase for e in errors] == ["watch stream"]
    assert "longer than 100 bytes" in str(errors[0])
    assert names(seen, Apply) == ["b"]


async def test_dropped_watch_resumes_from_last_event_or_bookmark(autojump_clock: trio.abc.Clock) -> None:
    first = events_body(("ADDED", obj("b", 11)), ("BOOKMARK", {"metadata": {"resourceVersion": "15"}}))
    partial = events_body(("ADDED", obj("c", 16)))[:-9]  # cut mid-event: must not be applied
    second = events_body(("MODIFIED", obj("b", 17)))
    script = Script(
        [list_answer(10)],
        [watch_answer(first + partial, error=httpx.ReadError("reset")), watch_answer(second)],
    )
    seen, errors, watcher = await run_watcher(script, lambda s: len(names(s, Apply)) >= 2)
    assert [r.url.params["resourceVersion"] for r in script.watch_requests[:2]] == ["10", "15"]
    assert names(seen, Apply) == ["b", "b"]
    assert len(script.list_requests) == 1  # resumed, no relist
    assert [e.phase for e in errors] == ["watch stream"]
    assert not errors[0].relist
    assert watcher.stats.watches >= 2


async def test_error_event_410_relists_from_scratch(autojump_clock: trio.abc.Clock) -> None:
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
    script = Script(
        [list_answer(10, obj("a", 5), obj("b", 6)), list_answer(30, obj("b", 25), obj("c", 26))],
        [watch_answer(events_body(("ERROR", gone)))],
    )
    seen, errors, watcher = await run_watcher(script, lambda s: sum(isinstance(e, InitDone) for e in s) == 2)
    assert [e.phase for e in errors] == ["server error event"]
    assert errors[0].relist
    assert watcher.stats.relists_after_gone == 1
    assert [type(e) for e in seen].count(Init) == 2
    assert "resourceVersion" not in script.list_requests[1].url.params  # a fresh, consistent list


async def test_410_on_watch_start_relists(autojump_clock: trio.abc.Clock) -> None:
    script = Script(
        [list_answer(10, obj("a", 5)), list_answer(20, obj("a", 19))],
        [lambda req: status(410, "Gone", "compacted")],
    )
    seen, errors, _ = await run_watcher(script, lambda s: sum(isinstance(e, InitDone) for e in s) == 2)
    assert [(e.phase, e.relist) for e in errors] == [("watch start", True)]
    assert seen[-1] == InitDone("20")


async def test_paged_list_uses_first_page_version_and_retries_failed_page(
    autojump_clock: trio.abc.Clock,
) -> None:
    script = Script(
        [
            list_answer(10, obj("a", 3), token="t1"),
            lambda req: status(500, "InternalError"),  # retried by the client itself
            list_answer(10, obj("b", 4), token="t2"),
            lambda req: httpx.Response(503, text="unavailable"),
            lambda req: httpx.Response(503, text="unavailable"),
            lambda req: httpx.Response(503, text="unavailable"),
            lambda req: httpx.Response(503, text="unavailable"),  # the client gives up: a watcher error
            list_answer(10, obj("c", 9)),
        ],
        [],
    )
    seen, errors, watcher = await run_watcher(
        script, lambda s: any(isinstance(e, InitDone) for e in s), page_size=1
    )
    assert names(seen, InitApply) == ["a", "b", "c"]
    assert seen[-1] == InitDone("10")
    assert [r.url.params.get("continue") for r in script.list_requests] == [
        None, "t1", "t1", "t2", "t2", "t2", "t2", "t2",
    ]  # fmt: skip
    assert {r.url.params["limit"] for r in script.list_requests} == {"1"}
    assert [(e.phase, e.relist) for e in errors] == [("initial list", False)]
    assert watcher.stats.lists == 1


async def test_next_page_is_requested_before_the_page_before_is_applied(
    autojump_clock: trio.abc.Clock,
) -> None:
    seen: list[WatchEvent[PV]] = []
    applied_when_requested: list[int] = []

    def page(answer: Answer) -> Answer:
        def record(req: httpx.Request) -> httpx.Response:
            applied_when_requested.append(len(names(seen, InitApply)))
            return answer(req)

        return record

    script = Script(
        [
            page(list_answer(10, obj("a", 3), obj("b", 3), token="t1")),
            page(list_answer(10, obj("c", 4), obj("d", 4), token="t2")),
            page(list_answer(10, obj("e", 5))),
        ],
        [],
    )
    async with make_client(script) as client:
        watcher = Watcher(client, PERSISTENT_VOLUME, PV, page_size=2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run, seen.append)
            await wait_for(lambda: any(isinstance(e, InitDone) for e in seen))
            nursery.cancel_scope.cancel()
    assert names(seen, InitApply) == ["a", "b", "c", "d", "e"]
    # Each page was asked for while the one before it was still undecoded.
    assert applied_when_requested == [0, 0, 2]


async def test_backoff_grows_between_consecutive_failures(autojump_clock: trio.abc.Clock) -> None:
    times: list[float] = []

    def failing(req: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return status(403, "Forbidden", "no")

    script = Script([failing] * 6, [])
    _, errors, _ = await run_watcher(script, lambda s: len(times) >= 6)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # client-go backoff: 0.8 s doubling, jittered by up to 100 %, capped at 30 s.
    for n, gap in enumerate(gaps):
        base = min(30.0, 0.8 * 2**n)
        assert base <= gap <= min(30.0, 2 * base) + 1e-6
    assert all(e.phase == "initial list" for e in errors)


async def test_short_empty_watch_counts_as_failure(autojump_clock: trio.abc.Clock) -> None:
    script = Script([list_answer(10)], [watch_answer(), watch_answer(), watch_answer()])
    _, errors, watcher = await run_watcher(script, lambda s: len(script.watch_requests) >= 3)
    assert [e.phase for e in errors][:2] == ["watch stream", "watch stream"]
    assert isinstance(watcher.state, InitListed)


async def test_reflector_store_swaps_atomically_on_relist(autojump_clock: trio.abc.Clock) -> None:
    gone = {"kind": "Status", "code": 410, "reason": "Expired"}
    release = trio.Event()
    snapshots: list[list[str]] = []

    async def slow_second_page(req: httpx.Request) -> httpx.Response:
        await release.wait()
        return list_answer(30, obj("c", 26))(req)

    script = Script(
        [list_answer(10, obj("a", 5), obj("b", 6)), list_answer(30, obj("b", 25), token="t")],
        [watch_answer(events_body(("ERROR", gone)))],
    )
    script_call = script.__call__

    async def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("continue") == "t":
            return await slow_second_page(req)
        return await script_call(req)

    async with make_client(handler) as client:
        reflector = Reflector.for_resource(client, PERSISTENT_VOLUME, PV, page_size=1)
        sub = reflector.store.subscribe()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reflector.run)
            await reflector.store.wait_synced()
            snapshots.append(sorted(o.metadata.name for o in reflector.store.list()))
            await wait_for(lambda: reflector.stats.lists >= 2)
            await trio.sleep(1)  # relist half done: first page in, second held back
            snapshots.append(sorted(o.metadata.name for o in reflector.store.list()))
            release.set()
            await wait_for(lambda: reflector.store.resource_version == "30")
            snapshots.append(sorted(o.metadata.name for o in reflector.store.list()))
            nursery.cancel_scope.cancel()
    assert snapshots == [["a", "b"], ["a", "b"], ["b", "c"]]
    changes = []
    async for change in sub:  # the reflector closed the store's subscriptions on exit
        changes.append((change.key.name, change.kind))
    assert sorted(changes) == [("b", "added"), ("c", "added")]  # "a" added then deleted: coalesced away
    assert reflector.restarts == 1


@pytest.mark.parametrize("cut", [1, 5, 17])
async def test_events_survive_any_chunking(autojump_clock: trio.abc.Clock, cut: int) -> None:
    stream = events_body(*[("ADDED", obj(f"o{i}", 11 + i, spec={"x": "é" * i})) for i in range(6)])
    chunks = [stream[i : i + cut] for i in range(0, len(stream), cut)]
    script = Script([list_answer(10)], [watch_answer(*chunks)])
    seen, errors, _ = await run_watcher(script, lambda s: len(names(s, Apply)) == 6)
    assert names(seen, Apply) == [f"o{i}" for i in range(6)]
    assert [e.obj.spec["x"] for e in seen if isinstance(e, Apply)] == ["é" * i for i in range(6)]
    assert errors == []


async def test_throttled_watch_start_waits_for_retry_after(autojump_clock: trio.abc.Clock) -> None:
    times: list[float] = []

    def throttled(req: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        resp = status(429, "TooManyRequests", "slow down")
        resp.headers["Retry-After"] = "20"
        return resp

    def ok(req: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return watch_answer(events_body(("ADDED", obj("z", 12))))(req)

    script = Script([list_answer(10)], [throttled, ok])
    _, errors, _ = await run_watcher(script, lambda s: names(s, Apply) == ["z"])
    assert [type(e.cause).__name__ for e in errors] == ["TooManyRequests"]
    assert times[1] - times[0] >= 20.0  # waited for the server's hint, not the 0.8 s backoff


async def test_error_event_other_than_410_resumes_without_relist(autojump_clock: trio.abc.Clock) -> None:
    internal = {"kind": "Status", "code": 500, "reason": "InternalError", "message": "etcd hiccup"}
    script = Script(
        [list_answer(10)],
        [
            watch_answer(events_body(("ADDED", obj("a", 11)), ("ERROR", internal))),
            watch_answer(events_body(("ADDED", obj("b", 12)))),
        ],
    )
    _, errors, watcher = await run_watcher(script, lambda s: len(names(s, Apply)) == 2)
    assert [(e.phase, e.relist) for e in errors] == [("server error event", False)]
    assert "etcd hiccup" in str(errors[0])
    assert script.watch_requests[1].url.params["resourceVersion"] == "11"
    assert watcher.stats.lists == 1


class HangingStream(httpx.AsyncByteStream):
    def __init__(self, first: bytes) -> None:
        self.first = first
        self.closed = False

    async def __aiter__(self):  # type: ignore[override]
        yield self.first
        await trio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


async def test_cancelling_the_watcher_closes_the_watch_response(autojump_clock: trio.abc.Clock) -> None:
    stream = HangingStream(events_body(("ADDED", obj("a", 11))))
    script = Script([list_answer(10)], [lambda req: httpx.Response(200, stream=stream)])
    seen, _, watcher = await run_watcher(script, lambda s: names(s, Apply) == ["a"])
    assert stream.closed
    assert watcher.stats.watches == 1
    assert [type(e) for e in seen] == [Init, InitDone, Apply]


async def test_broken_established_streams_resume_at_once_and_reset_the_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    times: list[float] = []

    def broken_after_an_event(rv: int) -> Answer:
        def answer(req: httpx.Request) -> httpx.Response:
            times.append(trio.current_time())
            body = events_body(("MODIFIED", obj("a", rv)))
            return httpx.Response(200, stream=Chunks([body], httpx.ReadError("connection reset")))

        return answer

    def refused(req: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        raise httpx.ConnectError("connection refused")

    watches = [broken_after_an_event(11 + n) for n in range(4)]
    watches += [refused, refused, broken_after_an_event(20), refused, refused]
    script = Script([list_answer(10, obj("a", 5))], watches)
    _, errors, watcher = await run_watcher(script, lambda s: len(times) == 9)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Four resets in a row: each resumes at once, from the last event.
    assert gaps[:4] == [0, 0, 0, 0]
    assert [r.url.params["resourceVersion"] for r in script.watch_requests[:5]] == [
        "10",
        "11",
        "12",
        "13",
        "14",
    ]
    # Failures to reconnect back off: 0.8 s, then 1.6 s (each jittered up to twice that).
    assert 0.8 <= gaps[4] <= 1.6
    assert 1.6 <= gaps[5] <= 3.2
    assert gaps[6] == 0  # a stream broken under way again: at once
    assert 0.8 <= gaps[7] <= 1.6  # and it started the backoff over (not 3.2 s)
    assert [e.interrupted for e in errors[:8]] == [True] * 4 + [False, False, True, False]
    assert watcher.stats.interruptions == 5
