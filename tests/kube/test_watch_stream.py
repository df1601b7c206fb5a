"""The watch stream's framing: events are newline-delimited JSON that network chunks cut anywhere."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from couchestor.kube.client import _watch_batches
from couchestor.kube.errors import ConnectionFailed, KubeError

EVENTS = [
    {"type": "ADDED", "object": {"metadata": {"name": f"cm-{i}", "resourceVersion": str(10 + i)}, "data": {}}}
    for i in range(6)
] + [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}}]


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start : start + self.size]


async def _decode(body: bytes, size: int) -> list[list[tuple[str, dict]]]:
    response = httpx.Response(200, stream=_Chunks(body, size))
    return [
        [(raw.type, json.loads(bytes(raw.object))) for raw in batch]
        async for batch in _watch_batches(response, "WATCH /test", 10.0)
    ]


def _body(events: list[dict], separator: bytes = b"\n") -> bytes:
    return b"".join(json.dumps(e).encode() + separator for e in events)


@pytest.mark.parametrize("size", [1, 5, 37, 160, 1 << 20])
async def test_every_event_comes_out_once_in_order_wherever_the_chunks_cut(size):
    # Blank lines (a keep-alive some proxies send) between events are no events.
    body = _body(EVENTS[:3]) + b"\n\n" + _body(EVENTS[3:])
    batches = await _decode(body, size)
    assert [event for batch in batches for event in batch] == [(e["type"], e["object"]) for e in EVENTS]
    assert all(batches), "no empty batch is handed out"
    if size >= len(body):
        assert len(batches) == 1  # one chunk: one batch


@pytest.mark.parametrize("size", [1, 37, 1 << 20])
async def test_a_malformed_event_is_an_error_naming_the_call(size):
    body = _body(EVENTS[:2]) + b'{"type": "ADDED", "object": {bad\n' + _body(EVENTS[2:])
    with pytest.raises(KubeError, match="WATCH /test: malformed watch event"):
        await _decode(body, size)


@pytest.mark.parametrize("size", [1, 37, 1 << 20])
async def test_a_stream_cut_inside_an_event_is_a_broken_connection(size):
    body = _body(EVENTS[:2]) + _body(EVENTS[2:3])[:-9]
    with pytest.raises(ConnectionFailed, match="ended inside an event"):
        await _decode(body, size)
