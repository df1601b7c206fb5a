"""The operator's HTTP surface: ``/metrics``, ``/healthz``, ``/readyz`` and the ``/feed`` WebSocket.

A plain ASGI app (no framework) served by hypercorn's trio worker.

- ``/healthz`` (liveness) is 200 while every registered task keeps reporting progress within its allowed
  silence; a wedged watch stream or reconciler makes it 503, so the kubelet restarts the pod.
- ``/readyz`` is 200 once every readiness gate is open (stores synced, Prometheus answered once).
- ``/feed`` streams the operator's decisions and migration progress as JSON text frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from couchestor.metrics import OperatorMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Health:
    """Liveness heartbeats and readiness gates, read by the probes.

    ``clock`` is trio's clock by default so tests can drive it with ``trio.testing.MockClock``.
    """

    clock: Callable[[], float] = trio.current_time
    _beats: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (last beat, max silence)
    _gates: dict[str, str | None] = field(default_factory=dict)  # name -> None when open, else why closed

    def expect(self, name: str, max_silence: float) -> None:
        """Start requiring ``beat(name)`` at least every ``max_silence`` seconds."""
        self._beats[name] = (self.clock(), max_silence)

    def forget(self, name: str) -> None:
        self._beats.pop(name, None)

    def beat(self, name: str) -> None:
        _, silence = self._beats.get(name, (0.0, math.inf))
        self._beats[name] = (self.clock(), silence)

    def gate(self, name: str, why_closed: str | None) -> None:
        """Open (``None``) or close (with the reason) a readiness gate."""
        self._gates[name] = why_closed

    def liveness(self) -> list[str]:
        """Problems that make the process unhealthy; empty when healthy."""
        now = self.clock()
        return [
            f"{name}: no progress for {now - last:.0f}s (limit {silence:.0f}s)"
            for name, (last, silence) in sorted(self._beats.items())
            if now - last > silence
        ]

    def readiness(self) -> list[str]:
        """Reasons the operator is not ready yet; empty when ready. Not ready before any gate was declared."""
        if not self._gates:
            return ["starting"]
        return [f"{name}: {why}" for name, why in sorted(self._gates.items()) if why is not None]


class Feed:
    """Fan-out of JSON events to WebSocket subscribers; a subscriber that falls behind is disconnected.

    Publishing never blocks the operator: each subscriber has a bounded buffer, and a full buffer closes
    that subscriber instead of slowing everybody down.
    """

    def __init__(self, buffer: int = 256) -> None:
        self._buffer = buffer
        self._subscribers: set[trio.MemorySendChannel[str]] = set()
        self._last: dict[str, str] = {}

    def publish(self, event: dict[str, Any], *, retain_as: str | None = None) -> None:
        """Send ``event`` to every subscriber; ``retain_as`` keeps it for subscribers that join later."""
        text = json.dumps(event, separators=(",", ":"), default=str)
        if retain_as is not None:
            self._last[retain_as] = text
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(text)
            except trio.WouldBlock:
                self._subscribers.discard(channel)
                channel.close()
            except trio.BrokenResourceError:  # pragma: no cover - receiver gone between checks
                self._subscribers.discard(channel)

    def subscribe(self) -> trio.MemoryReceiveChannel[str]:
        send, receive = trio.open_memory_channel[str](self._buffer)
        for text in self._last.values():
            send.send_nowait(text)
        self._subscribers.add(send)
        return receive

    def unsubscribe(self, receive: trio.MemoryReceiveChannel[str]) -> None:
        receive.close()
        self._subscribers = {s for s in self._subscribers if s.statistics().open_receive_channels > 0}


class EndpointsApp:
    """The ASGI application of the operator's HTTP endpoints."""

    def __init__(self, metrics: OperatorMetrics, health: Health, feed: Feed) -> None:
        self.metrics = metrics
        self.health = health
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, send)

    async def _http(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        if path == "/metrics":
            await respond(send, 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        elif path in ("/healthz", "/livez"):
            await _probe(send, self.health.liveness())
        elif path == "/readyz":
            await _probe(send, self.health.readiness())
        else:
            await respond(send, 404, b"not found\n", "text/plain")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != "/feed":
            await send({"type": "websocket.close", "code": 4404})
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        events = self.feed.subscribe()
        try:
            async with trio.open_nursery() as nursery:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "websocket.disconnect":
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_disconnect)
                async for text in events:
                    await send({"type": "websocket.send", "text": text})
                # The feed dropped us (we fell behind): tell the client so it can reconnect.
                await send({"type": "websocket.close", "code": 1013})
                nursery.cancel_scope.cancel()
        finally:
            self.feed.unsubscribe(events)


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer an ASGI lifespan scope: nothing to start or stop, so acknowledge both."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    """Send a complete HTTP response with a body."""
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _probe(send: Send, problems: list[str]) -> None:
    if problems:
        await respond(send, 503, ("\n".join(problems) + "\n").encode(), "text/plain; charset=utf-8")
    else:
        await respond(send, 200, b"ok\n", "text/plain; charset=utf-8")


async def serve_asgi(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    address: str,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``address`` (``host:port``; port 0 picks a free one) until cancelled.

    ``await nursery.start(serve_asgi, app, "127.0.0.1:0")`` returns the base URL once the socket listens.
    Cancelling the surrounding scope stops the server; open connections get ``graceful_timeout`` to finish.
    """
    config = Config()
    config.bind = [address]
    config.accesslog = None
    config.errorlog = None  # the caller logs the URL; hypercorn's own lines would bypass our log format
    config.graceful_timeout = 1.0
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        task_status.started(binds[0])
