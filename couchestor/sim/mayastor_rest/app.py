"""The simulated control plane's REST API: the subset of Mayastor 2.x's ``/v0`` that CoucheStor uses.

A plain ASGI app (served by hypercorn's trio worker through :func:`couchestor.endpoints.serve_asgi`). Routes:

- ``GET /v0/volumes?max_entries=&starting_token=[&volume_id=]`` (``max_entries`` required, 0 = all),
  ``GET|PUT /v0/volumes/{id}``, ``PUT /v0/volumes/{id}/replica_count/{n}``;
- ``GET /v0/pools``, ``GET /v0/pools/{id}``, ``PUT|DELETE /v0/pools/{id}/cordon`` (``PoolCordonReq`` body;
  release 2.8+ only);
- ``GET /v0/nodes``, ``GET /v0/nodes/{id}``, ``PUT|DELETE /v0/nodes/{id}/cordon/{label}``.

:data:`ROUTES` lists them (the contract tests hold each to the published document). Errors are ``RestJsonError``
bodies with the control plane's status for their kind; a route the release does not have answers 404 with an
empty body, as the control plane's HTTP server does for any unknown route. ``fail_next`` (a fault knob) makes the next requests answer the given
HTTP statuses (e.g. 503) before anything is done.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from couchestor.endpoints import Receive, Scope, Send, lifespan
from couchestor.mayastor_rest import wire
from couchestor.sim.mayastor_rest.state import ControlPlane, RestError

_MAX_BODY = 1024 * 1024

#: Every route served: (method, path template under /v0, releases that have it; empty: all).
ROUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("GET", "/volumes", ()),
    ("GET", "/volumes/{volume_id}", ()),
    ("PUT", "/volumes/{volume_id}", ()),
    ("PUT", "/volumes/{volume_id}/replica_count/{replica_count}", ()),
    ("GET", "/pools", ()),
    ("GET", "/pools/{pool_id}", ()),
    ("PUT", "/pools/{pool_id}/cordon", ("2.8+",)),
    ("DELETE", "/pools/{pool_id}/cordon", ("2.8+",)),
    ("GET", "/nodes", ()),
    ("GET", "/nodes/{id}", ()),
    ("PUT", "/nodes/{id}/cordon/{label}", ()),
    ("DELETE", "/nodes/{id}/cordon/{label}", ()),
)


@dataclass
class RestApp:
    plane: ControlPlane
    clock: Callable[[], float]
    on_change: Callable[[], None] = lambda: None
    fail_next: list[int] = field(default_factory=list)
    requests: int = 0
    #: The bearer token every request must carry (None: no authentication, as a server run with --no-auth).
    token: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.requests += 1
        body = await _read_body(receive)
        if self.token is not None and _bearer(scope) != self.token:
            await _json(send, 401, RestError("Unauthenticated", "missing or invalid bearer token").body())
            return
        if self.fail_next:
            status = self.fail_next.pop(0)
            await _json(send, status, wire.RestJsonError(kind="Unavailable", details="injected fault"))
            return
        method = scope["method"]
        parts = [urllib.parse.unquote(p) for p in scope["path"].split("/") if p]
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode()))
        try:
            status, result = self._route(method, parts, query, body)
        except RestError as exc:
            if exc.details:
                await _json(send, exc.status, exc.body())
            else:
                await _empty(send, exc.status)
            return
        except (msgspec.DecodeError, ValueError) as exc:
            await _json(send, 400, wire.RestJsonError(kind="Deserialize", details=str(exc)))
            return
        if method != "GET":
            self.on_change()
        await _json(send, status, result)

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> tuple[int, Any]:
        plane, now = self.plane, self.clock()
        if not parts or parts[0] != "v0":
            raise RestError("NotFound", "")
        match method, parts[1:]:
            case "GET", ["volumes"]:
                if "max_entries" not in query:
                    raise RestError("InvalidArgument", "query parameter max_entries is required")
                wanted = query.get("volume_id")
                if wanted is not None:
                    found = plane.cluster.volumes.get(wanted)
                    return 200, wire.Volumes(entries=[plane.render_volume(found)] if found else [])
                max_entries = int(query["max_entries"])
                token = int(query.get("starting_token", "0"))
                if max_entries < 0 or token < 0:
                    raise RestError("InvalidArgument", "max_entries and starting_token must be >= 0")
                return 200, plane.volumes_page(max_entries, token)
            case "GET", ["volumes", volume_id]:
                return 200, plane.render_volume(plane.volume(volume_id))
            case "PUT", ["volumes", volume_id]:
                create = msgspec.json.decode(body, type=wire.CreateVolumeBody)
                topology = None if create.topology is msgspec.UNSET else create.topology
                volume = plane.create_volume(
                    volume_id, size=create.size, replicas=create.replicas, topology=topology, now=now
                )
                return 200, plane.render_volume(volume)
            case "PUT", ["volumes", volume_id, "replica_count", count]:
                volume = plane.set_replica_count(volume_id, int(count), now)
                return 200, plane.render_volume(volume)
            case "GET", ["pools"]:
                return 200, plane.pools_rendered()
            case "GET", ["pools", pool_id]:
                return 200, plane.render_pool(plane.pool(pool_id))
            case ("PUT" | "DELETE") as verb, ["pools", pool_id, "cordon"]:
                req = msgspec.json.decode(body, type=wire.PoolCordonReq) if body else wire.PoolCordonReq()
                if verb == "PUT":
                    plane.cordon_pool(pool_id, req)
                else:
                    plane.uncordon_pool(pool_id, req)
                return 200, plane.render_pool(plane.pool(pool_id))
            case "GET", ["nodes"]:
                return 200, [plane.render_node(n) for n in plane.nodes()]
            case "GET", ["nodes", node]:
                if node not in plane.nodes():
                    raise RestError("NotFound", f"Node '{node}' not found")
                return 200, plane.render_node(node)
            case ("PUT" | "DELETE") as verb, ["nodes", node, "cordon", label]:
                if verb == "PUT":
                    plane.cordon_node(node, label)
                else:
                    plane.uncordon_node(node, label)
                return 200, plane.render_node(node)
        raise RestError("NotFound", "")  # no such route


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization" and value.startswith(b"Bearer "):
            return bytes(value[7:]).decode(errors="replace")
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= _MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _empty(send: Send, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _json(send: Send, status: int, payload: object) -> None:
    body = msgspec.json.encode(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["ROUTES", "RestApp"]
