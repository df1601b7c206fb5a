"""A typed client for Mayastor 2.x's control-plane REST API (``/v0``): httpx for HTTP, msgspec for JSON.

Every call has a deadline (``timeout`` seconds per attempt, connect included) and raises
:class:`MayastorRestError` (or a subclass) and nothing else for HTTP and transport failures. Idempotent calls
(every GET, uncordon, node cordon) are retried on transport errors and 502/503/504 answers, at most
``attempts`` times with jittered backoff; ``PUT .../replica_count/{n}`` is not retried here, because a lost
answer leaves the count unknown: the caller re-reads the volume and decides again. Nor is a pool cordon: a
resend after a lost answer meets its own cordon as ``AlreadyExists``, which only the caller can tell from
someone else's.

Errors are typed as the control plane means them (its error kinds map to HTTP statuses): 412
:class:`FailedPreconditionError` (e.g. the replica count is already the one asked for, or the volume is not
Online), 422 :class:`AlreadyExistsError` (a pool cordon already placed, or already lifted), 404
:class:`NotFoundError`, and :class:`PoolCordonUnsupported` for a release without pool cordon (its routes answer
404 without an error body, as any unknown route).

Authentication: every operation of the API declares a JWT bearer scheme. ``token_file`` names a file holding
the token (a projected service-account token, say); it is re-read whenever the file changes, so a rotated token
is used from the next call on. ``ca_file`` verifies an https endpoint with a private CA.
"""

from __future__ import annotations

import os
import random
import ssl
import uuid
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

    @property
    def route_missing(self) -> bool:
        """The server has no such route (a 404 without a ``RestJsonError`` body), not an absent object."""
        return self.kind == "Unknown"


class PoolCordonUnsupported(NotFoundError):
    """The release has no pool cordon (2.7 and earlier): ``PUT``/``DELETE /v0/pools/{id}/cordon`` is no route."""


class FailedPreconditionError(MayastorRestError):
    """412: the object is not in a state the call needs (replica count already set, volume not Online, node
    cordon label already there or not there); re-read it and decide again."""


class AlreadyExistsError(MayastorRestError):
    """422 AlreadyExists: what the call asks for is already so (a pool cordon placed, or lifted)."""


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
        token_file: str | None = None,
        ca_file: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Raises :class:`ValueError` for a URL that is not http(s), a CA with an http URL, or an unreadable CA."""
        self.base_url = base_url.rstrip("/")
        scheme = httpx.URL(self.base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"Mayastor REST URL {base_url!r} is not http:// or https://")
        if ca_file is not None and scheme != "https":
            raise ValueError(f"a CA file is given but the Mayastor REST URL {base_url!r} is not https://")
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load the CA file {ca_file}: {exc}") from None
        self.timeout = timeout
        self.attempts = max(attempts, 1)
        self.page_size = page_size
        self.token_file = token_file
        self._token: tuple[tuple[int, int, int], str] | None = None
        #: Whether the server has pool cordon: None until a cordon call (or :meth:`probe_pool_cordon`) told.
        self.pool_cordon: bool | None = None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            verify=verify,
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
        """Block new replicas on ``pool_id`` (``PUT /v0/pools/{id}/cordon``); raises
        :class:`AlreadyExistsError` when it already blocks them (whoever cordoned it), and
        :class:`PoolCordonUnsupported` on a release without pool cordon. Sent once (see the module docstring)."""
        return await self._pool_cordon("PUT", pool_id)

    async def uncordon_pool(self, pool_id: str) -> wire.Pool:
        """Stop blocking new replicas on ``pool_id`` (``DELETE /v0/pools/{id}/cordon``); raises
        :class:`PoolCordonUnsupported` as above. Idempotent: a pool that is not cordoned (the server answers 422
        AlreadyExists) is returned as it is."""
        try:
            return await self._pool_cordon("DELETE", pool_id)
        except AlreadyExistsError:
            return await self.get_pool(pool_id)  # not cordoned: already so, idempotent

    async def probe_pool_cordon(self) -> bool:
        """Whether this release has pool cordon, asked without changing anything: cordoning a pool that does not
        exist answers 404 NotFound (a ``RestJsonError``) where the route exists, a bare 404 where it does not.
        Changing nothing, it is retried as an idempotent call is."""
        if self.pool_cordon is None:
            try:
                await self._pool_cordon("PUT", f"couchestor-probe-{uuid.uuid4()}", idempotent=True)
            except PoolCordonUnsupported:
                pass
            except MayastorRestError as exc:
                if exc.status == 0 or exc.status >= 500:
                    raise
        return bool(self.pool_cordon)

    async def _pool_cordon(self, method: str, pool_id: str, *, idempotent: bool = False) -> wire.Pool:
        body = msgspec.json.encode(wire.PoolCordonReq(replicas=True))
        try:
            pool = await self._call(
                method,
                f"/v0/pools/{pool_id}/cordon",
                wire.Pool,
                body=body,
                idempotent=idempotent or method == "DELETE",
            )
        except NotFoundError as exc:
            if not exc.route_missing:
                self.pool_cordon = True
                raise
            self.pool_cordon = False
            raise PoolCordonUnsupported(
                exc.call, 404, "NotFound", "this Mayastor release has no pool cordon (2.7 and earlier)"
            ) from None
        except MayastorRestError as exc:
            if exc.status and exc.status < 500:
                self.pool_cordon = True
            raise
        self.pool_cordon = True
        return pool

    async def list_nodes(self) -> list[wire.Node]:
        return await self._call("GET", "/v0/nodes", list[wire.Node])

    async def get_node(self, node: str) -> wire.Node:
        return await self._call("GET", f"/v0/nodes/{node}", wire.Node)

    async def cordon_node(self, node: str, label: str) -> wire.Node:
        """Cordon ``node`` under ``label`` (``PUT /v0/nodes/{id}/cordon/{label}``). Idempotent: the server
        refuses a label the node already has (412), and the node is then returned as it is."""
        try:
            return await self._call("PUT", f"/v0/nodes/{node}/cordon/{label}", wire.Node)
        except FailedPreconditionError:
            found = await self.get_node(node)
            if label not in _cordon_labels(found):
                raise
            return found

    async def uncordon_node(self, node: str, label: str) -> wire.Node:
        """Lift ``node``'s cordon ``label``; the server refuses a label the node does not have (412):
        :class:`FailedPreconditionError` is raised then, as the backend tells that apart itself."""
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
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.token_file is not None:
            headers["Authorization"] = f"Bearer {self._bearer(call)}"
        try:
            with trio.fail_after(self._deadline):
                response = await self._http.request(
                    method, path, params=params, content=body, headers=headers
                )
        except trio.TooSlowError:
            raise MayastorRestError(call, 0, "Timeout", f"no answer within {self._deadline:.0f}s") from None
        except httpx.HTTPError as exc:
            raise MayastorRestError(call, 0, "Unavailable", _transport_detail(exc)) from None
        content = response.content
        if len(content) > _MAX_RESPONSE:
            raise MayastorRestError(call, response.status_code, "Internal", "response too large")
        if response.status_code >= 300:
            raise _error(call, response.status_code, content)
        try:
            return msgspec.json.decode(content, type=tp)
        except msgspec.DecodeError as exc:
            raise MayastorRestError(call, response.status_code, "Deserialize", str(exc)) from None

    def _bearer(self, call: str) -> str:
        """The token of ``token_file``, read again when the file changed (rotation replaces it)."""
        assert self.token_file is not None
        try:
            st = os.stat(self.token_file)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self._token is None or self._token[0] != key:
                with open(self.token_file, encoding="utf-8") as f:
                    token = f.read().strip()
                if not token:
                    raise OSError("the file is empty")
                self._token = (key, token)
        except OSError as exc:
            detail = exc.strerror or str(exc)
            raise MayastorRestError(
                call, 0, "Unauthenticated", f"cannot read the token file {self.token_file}: {detail}"
            ) from None
        return self._token[1]


def _transport_detail(exc: BaseException) -> str:
    """What went wrong on the wire: httpx's message, or that of its cause (a TLS failure says nothing itself)."""
    seen: BaseException | None = exc
    while seen is not None:
        if str(seen):
            return f"{type(exc).__name__}: {seen}"
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _cordon_labels(node: wire.Node) -> list[str]:
    spec = node.spec
    if spec is msgspec.UNSET or spec.cordondrainstate is msgspec.UNSET:
        return []
    return spec.cordondrainstate.cordon_labels


_KIND_ERRORS: dict[str, type[MayastorRestError]] = {
    "FailedPrecondition": FailedPreconditionError,
    "AlreadyExists": AlreadyExistsError,
}


def _error(call: str, status: int, content: bytes) -> MayastorRestError:
    try:
        err = msgspec.json.decode(content, type=wire.RestJsonError)
        kind, details = err.kind, err.details or err.message
    except msgspec.DecodeError:
        kind, details = "Unknown", content[:200].decode(errors="replace")
    cls = NotFoundError if status == 404 else _KIND_ERRORS.get(kind, MayastorRestError)
    return cls(call, status, kind, details)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "AlreadyExistsError",
    "FailedPreconditionError",
    "MayastorRestClient",
    "MayastorRestError",
    "NotFoundError",
    "PoolCordonUnsupported",
]
