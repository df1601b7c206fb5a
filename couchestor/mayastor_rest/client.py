"""A typed client for Mayastor 2.x's control-plane REST API (``/v0``): httpx for HTTP, msgspec for JSON.

Every call has a deadline (``timeout`` seconds per attempt, connect included) and raises
:class:`MayastorRestError` (or a subclass) and nothing else for HTTP and transport failures. Idempotent calls
(every GET, uncordon, node cordon) are retried on transport errors and 502/503/504 answers, at most
``attempts`` times with jittered backoff; ``PUT .../replica_count/{n}`` is not retried here, because a lost
answer leaves the count unknown: the caller re-reads the volume and decides again. Nor is a pool cordon: a
resend after a lost answer meets its own cordon as ``AlreadyExists``, which only the caller can tell from
someone else's.
"""

from __future__ import annotations

import random
from types import TracebackType
from typing import Self, TypeVar

import httpx
import msgspec
import trio

from couchestor.mayastor_rest import wire

T = TypeVar("T")

#: Volumes per ``GET /v0/volumes`` page (the same page size as Kubernetes list pages).
DEFAULT_PAGE_SIZE = 500
_RETRY_STATUSES = frozenset({502, 503, 504})
_MAX_RESPONSE = 64 * 1024 * 1024


class MayastorRestError(Exception):
    """A failed call: ``status`` is the HTTP status (0 when there was no answer), ``kind`` upstream's error
    kind (``NotFound``, ``ResourceExhausted`` ...), ``retryable`` whether trying again later may help."""

    def __init__(self, call: str, status: int, kind: str, details: str) -> None:
        what = f"HTTP {status} {kind}" if status else kind
        super().__init__(f"{call}: {what}: {details}" if details else f"{call}: {what}")
        self.call = call
        self.status = status
        self.kind = kind
        self.details = details

    @property
    def retryable(self) -> bool:
        return self.status == 0 or (self.status >= 500 and self.status != 507) or self.status == 429


class NotFoundError(MayastorRestError):
    """The volume, pool, node or endpoint does not exist (404)."""


class MayastorRestClient:
    """One control-plane REST endpoint, e.g. ``http://mayastor-api-rest.mayastor:8081``.

    Use as ``async with MayastorRestClient(url) as rest:``; leaving the block closes pooled connections.
    ``transport`` replaces the network (tests may pass an :class:`httpx.MockTransport`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        attempts: int = 3,
        page_size: int = DEFAULT_PAGE_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = max(attempts, 1)
        self.page_size = page_size
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            headers={"Accept": "application/json", "User-Agent": "couchestor"},
            follow_redirects=False,
        )
        self._deadline = timeout + connect_timeout

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- volumes ------------------------------------------------------------------------------------------

    async def list_volumes(self) -> list[wire.Volume]:
        """Every volume, following ``next_token`` page by page (``page_size`` per request)."""
        out: list[wire.Volume] = []
        token: int | None = 0
        while token is not None:
            params = {"max_entries": str(self.page_size), "starting_token": str(token)}
            page = await self._call("GET", "/v0/volumes", wire.Volumes, params=params)
            out.extend(page.entries)
            nxt = page.next_token if isinstance(page.next_token, int) else None
            if nxt is not None and nxt <= token:
                raise MayastorRestError(
                    "GET /v0/volumes", 200, "Internal", f"next_token {nxt} did not advance"
                )
            token = nxt
        return out

    async def get_volume(self, volume_id: str) -> wire.Volume:
        return await self._call("GET", f"/v0/volumes/{volume_id}", wire.Volume)

    async def set_replica_count(self, volume_id: str, count: int) -> wire.Volume:
        """``PUT /v0/volumes/{id}/replica_count/{n}``: not retried (see the module docstring)."""
        return await self._call(
            "PUT", f"/v0/volumes/{volume_id}/replica_count/{count}", wire.Volume, idempotent=False
        )

    # --- pools and nodes ----------------------------------------------------------------------------------

    async def list_pools(self) -> list[wire.Pool]:
        return await self._call("GET", "/v0/pools", list[wire.Pool])

    async def get_pool(self, pool_id: str) -> wire.Pool:
        return await self._call("GET", f"/v0/pools/{pool_id}", wire.Pool)

    async def cordon_pool(self, pool_id: str) -> wire.Pool:
        """Block new replicas on ``pool_id`` (``PUT /v0/pools/{id}/cordon``); raises an ``AlreadyExists``
        :class:`MayastorRestError` when it already blocks them (whoever cordoned it). Sent once (see the
        module docstring)."""
        body = msgspec.json.encode(wire.PoolCordonReq(replicas=True))
        return await self._call("PUT", f"/v0/pools/{pool_id}/cordon", wire.Pool, body=body, idempotent=False)

    async def uncordon_pool(self, pool_id: str) -> wire.Pool:
        """Stop blocking new replicas on ``pool_id`` (``DELETE /v0/pools/{id}/cordon``); idempotent."""
        body = msgspec.json.encode(wire.PoolCordonReq(replicas=True))
        return await self._call("DELETE", f"/v0/pools/{pool_id}/cordon", wire.Pool, body=body)

    async def list_nodes(self) -> list[wire.Node]:
        return await self._call("GET", "/v0/nodes", list[wire.Node])

    async def cordon_node(self, node: str, label: str) -> wire.Node:
        return await self._call("PUT", f"/v0/nodes/{node}/cordon/{label}", wire.Node)

    async def uncordon_node(self, node: str, label: str) -> wire.Node:
        return await self._call("DELETE", f"/v0/nodes/{node}/cordon/{label}", wire.Node)

    # --- plumbing -----------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        tp: type[T],
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        idempotent: bool = True,
    ) -> T:
        call = f"{method} {path}"
        failures = 0
        while True:
            try:
                return await self._once(call, method, path, tp, params, body)
            except MayastorRestError as exc:
                failures += 1
                transient = exc.status == 0 or exc.status in _RETRY_STATUSES
                if not (idempotent and transient) or failures >= self.attempts:
                    raise
                await trio.sleep(min(0.2 * 2**failures, 2.0) * random.uniform(0.5, 1.0))

    async def _once(
        self,
        call: str,
        method: str,
        path: str,
        tp: type[T],
        params: dict[str, str] | None,
        body: bytes | None,
    ) -> T:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            with trio.fail_after(self._deadline):
                response = await self._http.request(
                    method, path, params=params, content=body, headers=headers
                )
        except trio.TooSlowError:
            raise MayastorRestError(call, 0, "Timeout", f"no answer within {self._deadline:.0f}s") from None
        except httpx.HTTPError as exc:
            raise MayastorRestError(call, 0, "Unavailable", f"{type(exc).__name__}: {exc}") from None
        content = response.content
        if len(content) > _MAX_RESPONSE:
            raise MayastorRestError(call, response.status_code, "Internal", "response too large")
        if response.status_code >= 300:
            raise _error(call, response.status_code, content)
        try:
            return msgspec.json.decode(content, type=tp)
        except msgspec.DecodeError as exc:
            raise MayastorRestError(call, response.status_code, "Deserialize", str(exc)) from None


def _error(call: str, status: int, content: bytes) -> MayastorRestError:
    try:
        err = msgspec.json.decode(content, type=wire.RestJsonError)
        kind, details = err.kind, err.details or err.message
    except msgspec.DecodeError:
        kind, details = "Unknown", content[:200].decode(errors="replace")
    cls = NotFoundError if status == 404 else MayastorRestError
    return cls(call, status, kind, details)


__all__ = ["DEFAULT_PAGE_SIZE", "MayastorRestClient", "MayastorRestError", "NotFoundError"]
