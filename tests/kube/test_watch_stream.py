"""The watch stream's framing: events are newline-delimited JSON that network chunks cut anywhere."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from couchestor.kube.client import _watch_batches
from couchestor.kube.errors import ConnectionFailed, KubeError
from k8s_schemas.meta import CachedObjectMeta, ObjectWatchEvent, RawWatchEvent

EVENTS = [
    {
        "type": "ADDED",
        "object": {"metadata": {"name": f"cm-{i}", "resourceVersion": str(10 + i)}, "data": {"i": str(i)}},
    }
    for i in range(6)
] + [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}}]


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start : start + self.size]


class _ConfigMap(msgspec.Struct, omit_defaults=True):
    metadata: CachedObjectMeta
    data: dict[str, str] = {}


class _StrictConfigMap(msgspec.Struct):
    """A kind with a required field, which a bookmark's sparse object lacks."""

    metadata: CachedObjectMeta
    data: dict[str, str]


def _plain(event: RawWatchEvent | ObjectWatchEvent[msgspec.Struct]) -> tuple[str, str, dict]:
    """(how the event was read, its type, its object as plain data)."""
    if isinstance(event, RawWatchEvent):
        return "raw", event.type, json.loads(bytes(event.object))
    return "typed", event.type, json.loads(msgspec.json.encode(event.object))


async def _decode(
    body: bytes, size: int, *, typed: bool = False, kind: type[msgspec.Struct] = _ConfigMap
) -> list[list[tuple[str, str, dict]]]:
    response = httpx.Response(200, stream=_Chunks(body, size))
    decoder = msgspec.json.Decoder(ObjectWatchEvent[kind]) if typed else None
    return [
        [_plain(event) for event in batch]
        async for batch in _watch_batches(response, "WATCH /test", 10.0, decoder)
    ]


def _body(events: list[dict], separator: bytes = b"\n") -> bytes:
    return b"".join(json.dumps(e).encode() + separator for e in events)


@pytest.mark.parametrize("size", [1, 5, 37, 160, 1 << 20])
async def test_every_event_comes_out_once_in_order_wherever_the_chunks_cut(size):
    # Blank lines (a keep-alive some proxies send) between events are no events.
    body = _body(EVENTS[:3]) + b"\n\n" + _body(EVENTS[3:])
    for typed in (False, True):
        batches = await _decode(body, size, typed=typed)
        assert [event[1:] for batch in batches for event in batch] == [
            (e["type"], e["object"]) for e in EVENTS
        ]
        assert all(batches), "no empty batch is handed out"
        assert {event[0] for batch in batches for event in batch} == {"typed" if typed else "raw"}
        if size >= len(body):
            assert len(batches) == 1  # one chunk: one batch


@pytest.mark.parametrize("size", [1, 37, 1 << 20])
async def test_lines_the_type_cannot_read_come_raw_and_nothing_is_lost(size):
    # A Status in an ERROR event, and a bookmark whose object the type rejects (no ``data``), are not objects
    # of the watched kind: they (and the other lines of their chunk) are read raw, for the watcher to judge.
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    events = [*EVENTS[:2], error, *EVENTS[2:4], EVENTS[6], *EVENTS[4:6]]
    batches = await _decode(_body(events), size, typed=True, kind=_StrictConfigMap)
    seen = [event for batch in batches for event in batch]
    assert [event[1:] for event in seen] == [(e["type"], e["object"]) for e in events]
    by_type = {event[1]: event[0] for event in seen}
    assert by_type["ERROR"] == by_type["BOOKMARK"] == "raw"
    if size == 1:  # chunks of a byte: every line is its own decode, and the readable ones are typed
        assert {event[0] for event in seen if event[1] == "ADDED"} == {"typed"}


@pytest.mark.parametrize("size", [1, 37, 1 << 20])
async def test_a_malformed_event_is_an_error_naming_the_call(size):
    body = _body(EVENTS[:2]) + b'{"type": "ADDED", "object": {bad\n' + _body(EVENTS[2:])
    with pytest.raises(KubeError, match="WATCH /test: malformed watch event"):
        await _decode(body, size)
    with pytest.raises(KubeError, match="WATCH /test: malformed watch event"):
        await _decode(body, size, typed=True)


@pytest.mark.parametrize("size", [1, 37, 1 << 20])
async def test_a_stream_cut_inside_an_event_is_a_broken_connection(size):
    body = _body(EVENTS[:2]) + _body(EVENTS[2:3])[:-9]
    with pytest.raises(ConnectionFailed, match="ended inside an event"):
        await _decode(body, size)
