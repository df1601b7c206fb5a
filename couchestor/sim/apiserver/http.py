"""ASGI plumbing: the parsed request and the response writers the handlers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import msgspec

from couchestor.sim.apiserver.errors import ApiError

Scope = dict[str, Any]
Message = dict[str, Any]

_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_scope(cls, scope: Scope) -> Request:
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", ()):
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        return cls(scope["method"].upper(), unquote(scope.get("path", "/")), query, headers)

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def wants_table(self) -> bool:
        accept = self.headers.get("accept", "")
        for part in accept.split(","):
            params = {p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in part.split(";")[1:]}
            if params.get("as") == "Table":
                return True
        return False


async def read_body(receive: Any, limit: int = 64 * 1024 * 1024) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "RequestEntityTooLarge", "the request body is too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def respond(
    send: Any,
    code: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
) -> None:
    hdrs = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-cache, private"),
    ]
    for k, v in headers or ():
        hdrs.append((k.encode(), v.encode("latin-1", "replace")))
    await send({"type": "http.response.start", "status": code, "headers": hdrs})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_json(send: Any, code: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> None:
    await respond(send, code, _encode(obj), headers=headers)


async def respond_error(send: Any, err: ApiError, headers: list[tuple[str, str]] | None = None) -> None:
    hdrs = list(headers or ())
    if err.retry_after is not None:
        hdrs.append(("retry-after", str(err.retry_after)))
    await respond_json(send, err.code, err.status(), hdrs)


def warning_headers(warnings: list[str]) -> list[tuple[str, str]]:
    return [("warning", '299 - "' + w.replace('"', '\\"') + '"') for w in warnings]
