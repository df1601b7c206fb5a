"""A small HTTP CONNECT proxy on loopback for tests: records where each tunnel went, and can freeze or reset the
tunnels open at the time (what a NAT, load balancer or proxy on a real network does to a long-lived watch)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

import trio

_HEAD_LIMIT = 16 * 1024


@dataclass(eq=False)
class _Tunnel:
    client: trio.SocketStream
    upstream: trio.SocketStream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    frozen: bool = False


class ConnectProxy:
    """Start with ``await nursery.start(proxy.serve)``; then ``proxy.url`` is ``http://127.0.0.1:PORT``.

    ``targets`` lists the ``host:port`` of every CONNECT, in order.
    """

    def __init__(self) -> None:
        self.url = ""
        self.targets: list[str] = []
        self._tunnels: set[_Tunnel] = set()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    def freeze(self) -> None:
        """Open tunnels stop carrying bytes either way; the connections stay open."""
        for tunnel in self._tunnels:
            tunnel.frozen = True

    def reset(self) -> None:
        """Open tunnels are closed with a TCP RST on the client's side."""
        for tunnel in list(self._tunnels):
            tunnel.client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tunnel.scope.cancel()

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = await client.receive_some(4096)
                if not data or len(head) > _HEAD_LIMIT:
                    return
                head += data
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if method != "CONNECT":
                await client.send_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.targets.append(target)
            host, _, port = target.rpartition(":")
            try:
                upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))
            except OSError:
                await client.send_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            async with upstream:
                await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                tunnel = _Tunnel(client, upstream)
                self._tunnels.add(tunnel)
                try:
                    with tunnel.scope:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._pump, tunnel, client, upstream)
                            nursery.start_soon(self._pump, tunnel, upstream, client)
                finally:
                    self._tunnels.discard(tunnel)

    @staticmethod
    async def _pump(tunnel: _Tunnel, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        try:
            async for data in src:
                if not tunnel.frozen:  # frozen: read and drop, so that a close is still noticed
                    await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        tunnel.scope.cancel()
