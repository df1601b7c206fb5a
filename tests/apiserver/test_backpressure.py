"""Per-connection backpressure: a watch client that stops reading never holds up writers or other watchers."""

from __future__ import annotations

import socket

import httpx
import msgspec
import trio

from couchestor.sim.apiserver import ApiServer, serve

EVENTS = 100
PAYLOAD = "x" * 100_000  # 100 events of ~100 KB: far more than the stalled socket's buffers hold


async def _stalled_watch(url: str, path: str) -> trio.socket.SocketType:
    """Opens a watch over a raw socket with a tiny receive buffer, and never reads from it."""
    host, port = url.removeprefix("http://").split(":")
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    await sock.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


async def test_a_stalled_watcher_is_dropped_while_others_get_every_event(nursery):
    api = ApiServer()
    api.cluster.store.watch_buffer = 20
    url = await nursery.start(serve, api)
    base = "/api/v1/namespaces/default/configmaps"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        start_rv = (await client.get(base)).json()["metadata"]["resourceVersion"]
        watch = f"{base}?watch=1&resourceVersion={start_rv}&timeoutSeconds=60"
        with await _stalled_watch(url, watch):
            with trio.fail_after(10):
                while len(api.cluster.store.watchers()) < 1:
                    await trio.sleep(0.01)
            received: list[str] = []
            done = trio.Event()

            async def follow() -> None:
                async with (
                    httpx.AsyncClient(base_url=url, timeout=30) as reader,
                    reader.stream("GET", watch) as r,
                ):
                    async for line in r.aiter_lines():
                        if line:
                            received.append(msgspec.json.decode(line)["object"]["metadata"]["name"])
                            if len(received) == EVENTS:
                                done.set()
                                return

            nursery.start_soon(follow)
            with trio.fail_after(10):
                while len(api.cluster.store.watchers()) < 2:
                    await trio.sleep(0.01)
            with trio.fail_after(60):
                for i in range(EVENTS):
                    body = {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": f"big-{i:03d}"},
                        "data": {"payload": PAYLOAD},
                    }
                    assert (await client.post(base, json=body)).status_code == 201
                await done.wait()
            assert received == [f"big-{i:03d}" for i in range(EVENTS)]
            # The stalled watcher overflowed its buffer and was closed; only the reading one remained.
            with trio.fail_after(10):
                while len(api.cluster.store.watchers()) > 0:
                    await trio.sleep(0.01)
