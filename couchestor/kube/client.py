"""The Kubernetes REST client: typed CRUD calls over one :class:`httpx.AsyncClient`.

Every call:

- waits for the client-side rate limit (token bucket, ``qps``/``burst``, like client-go's);
- has a deadline per attempt (the client's ``timeout``, or the call's ``timeout=``) covering connect, send
  and the whole response body, so a stuck server cannot hang a caller;
- is retried with backoff and jitter under :class:`~couchestor.kube.retry.RetryPolicy` rules (idempotent
  calls on 429/5xx/connection errors, unsafe ones only when the server certainly did not act), honouring
  ``Retry-After``;
- raises a typed :class:`~couchestor.kube.errors.ApiError` built from the ``Status`` body, or a
  :class:`~couchestor.kube.errors.TransportError` naming the call.

Objects are decoded with msgspec into the caller's ``type``: a Struct from :mod:`k8s_schemas`, or ``dict``.
Every call is cancellable; a cancelled call closes its connection and is not retried.

Connections: every TCP connection has keep-alive on (probes after 30 s idle, every 10 s, 3 lost probes end it),
which keeps NAT and load-balancer flow entries of a quiet watch alive and lets the kernel notice a peer that
vanished without a FIN in about a minute. Requests go through the proxy kubectl would use
(:mod:`couchestor.kube.proxy`). A TLS handshake that fails for a reason retrying cannot fix (certificate not
verified against the configured CA or server name, client certificate refused) raises
:class:`~couchestor.kube.errors.TLSFailure` at once, naming the server name and the CA.
"""

from __future__ import annotations

import builtins
import os
import random
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import msgspec
import trio

from couchestor.kube import objects
from couchestor.kube.backoff import Backoff
from couchestor.kube.config import ClusterConfig
from couchestor.kube.errors import (
    ApiError,
    CallTimeout,
    Conflict,
    ConnectionFailed,
    KubeError,
    NotFound,
    OutcomeUnknown,
    TLSFailure,
    TransportError,
    WatchStalled,
    api_error,
    status_from_body,
)
from couchestor.kube.patch import JsonPatchOp, is_guarded
from couchestor.kube.proxy import proxy_for
from couchestor.kube.ratelimit import TokenBucket
from couchestor.kube.resources import Resource
from couchestor.kube.retry import Idempotency, RetryPolicy, is_retryable, outcome_unknown, parse_retry_after
from k8s_schemas.meta import ListMeta, ObjectList, ObjectWatchEvent, RawWatchEvent, Status

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON = "application/json"

# client-go pager default; also the page size kube-rs uses.
DEFAULT_PAGE_SIZE = 500
# Slack added to a watch's timeoutSeconds for its read timeout: the server ends the stream at timeoutSeconds,
# so a longer read timeout only fires on a server that went silent.
WATCH_READ_SLACK = 30.0
# One watch event (an object of at most ~1.5 MiB in etcd, JSON-escaped) never needs more than this.
MAX_WATCH_LINE = 16 * 1024 * 1024

_RAW_EVENT_DECODER = msgspec.json.Decoder(RawWatchEvent)

# TCP keep-alive: first probe after 30 s of silence (client-go's dialer uses 30 s too), then every 10 s; three
# unanswered probes end the connection.
KEEPALIVE_IDLE = 30
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3


def keepalive_socket_options() -> list[tuple[int, int, int]]:
    """``setsockopt`` arguments turning TCP keep-alive on with the intervals above (where the OS has them)."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    tcp = socket.IPPROTO_TCP
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
        options.append((tcp, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE))
    elif hasattr(socket, "TCP_KEEPALIVE"):  # macOS
        options.append((tcp, socket.TCP_KEEPALIVE, KEEPALIVE_IDLE))
    if hasattr(socket, "TCP_KEEPINTVL"):
        options.append((tcp, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL))
    if hasattr(socket, "TCP_KEEPCNT"):
        options.append((tcp, socket.TCP_KEEPCNT, KEEPALIVE_COUNT))
    return options


class KubeClient:
    """A client for one API server.

    ``qps``/``burst`` default to controller-runtime's (20/30); ``qps=0`` disables the limit. ``timeout`` is
    the default per-attempt deadline of a call in seconds, ``connect_timeout`` the TCP+TLS connect limit.
    ``transport`` replaces the network (tests pass an :class:`httpx.MockTransport`); otherwise connections
    carry TCP keep-alive and go through the proxy resolved from ``config`` and ``environ`` (default: the
    process environment), which is on ``proxy`` (None: direct).

    Use as ``async with KubeClient(config) as client:``; leaving the block closes pooled connections.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        qps: float = 20.0,
        burst: int = 30,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry = retry or RetryPolicy()
        self.limiter = TokenBucket(qps, burst)
        self._rng = rng or random.Random()
        self._extensions: dict[str, Any] = {}
        if config.tls_server_name:
            self._extensions["sni_hostname"] = config.tls_server_name
        server_name = config.tls_server_name or httpx.URL(config.server).host
        self._tls_context = f"server name {server_name!r}, CA: {config.ca_source}"
        self.proxy: str | None = None
        if transport is None:
            self.proxy = proxy_for(
                config.server, config.proxy_url, os.environ if environ is None else environ
            )
            transport = httpx.AsyncHTTPTransport(
                verify=config.verify, proxy=self.proxy, socket_options=keepalive_socket_options()
            )
        self._http = httpx.AsyncClient(
            base_url=config.server,
            auth=config.auth,
            transport=transport,
            trust_env=False,  # proxies are resolved above, the way kubectl does
            headers={"Accept": JSON, "User-Agent": "couchestor"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections. Idempotent."""
        await self._http.aclose()

    # --- reads -----------------------------------------------------------------------------------------

    async def get(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        type: type[T],
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> T:
        """GET one object. Raises :class:`NotFound` when it does not exist."""
        resp = await self._call("GET", res.path(namespace, name), Idempotency.IDEMPOTENT, timeout=timeout)
        return self._decode(resp, type)

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        type: type[T],
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = DEFAULT_PAGE_SIZE,
        resource_version: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> AsyncGenerator[ObjectList[T], None]:
        """LIST in pages of ``limit`` items, following ``continue`` tokens; yields each page.

        All pages are one consistent snapshot at the first page's ``metadata.resourceVersion``. A continue
        token older than the server's compaction window raises :class:`~couchestor.kube.errors.Gone`: list
        again from the start. ``namespace=None`` lists across all namespaces.
        """
        token: str | None = None
        while True:
            page = await self.list_page(
                res,
                namespace,
                type=type,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=limit,
                continue_token=token,
                resource_version=resource_version,
                timeout=timeout,
            )
            yield page
            token = page.metadata.continue_ or None
            if token is None:
                return

    async def list_page(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        type: type[T],
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = DEFAULT_PAGE_SIZE,
        continue_token: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> ObjectList[T]:
        """One LIST request: the page after ``continue_token`` (the first page when None).

        ``resource_version`` applies to the first page only (a continue token fixes the snapshot).
        """
        resp = await self._list_request(
            res, namespace, label_selector, field_selector, limit, continue_token, resource_version, timeout
        )
        page: ObjectList[T] = self._decode_with(resp, objects.list_decoder(type))
        return page

    async def list_page_undecoded(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = DEFAULT_PAGE_SIZE,
        continue_token: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
        on_sent: Callable[[], None] | None = None,
    ) -> UndecodedPage:
        """:meth:`list_page` with only the page's ``metadata`` decoded: the items wait for
        :meth:`UndecodedPage.decode`, so a caller can ask for the next page first. ``on_sent`` is called
        once the request is written (the server is preparing the page)."""
        resp = await self._list_request(
            res,
            namespace,
            label_selector,
            field_selector,
            limit,
            continue_token,
            resource_version,
            timeout,
            on_sent,
        )
        head: _ListHead = self._decode_with(resp, _LIST_HEAD_DECODER)
        return UndecodedPage(f"GET {resp.request.url.path}", resp.content, head.metadata)

    async def _list_request(
        self,
        res: Resource,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        limit: int | None,
        continue_token: str | None,
        resource_version: str | None,
        timeout: float | None,  # noqa: ASYNC109 - per attempt, inside the retry loop
        on_sent: Callable[[], None] | None = None,
    ) -> httpx.Response:
        params = _selectors(label_selector, field_selector)
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        elif resource_version is not None:
            params["resourceVersion"] = resource_version
        return await self._call(
            "GET",
            res.path(namespace),
            Idempotency.IDEMPOTENT,
            params=params,
            timeout=timeout,
            on_sent=on_sent,
        )

    async def list_all(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        type: type[T],
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = DEFAULT_PAGE_SIZE,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> ObjectList[T]:
        """Every page of :meth:`list` joined: all items, with the snapshot's resourceVersion."""
        result: ObjectList[T] | None = None
        async for page in self.list(
            res,
            namespace,
            type=type,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            timeout=timeout,
        ):
            if result is None:
                result = page
            else:
                result.items.extend(page.items)
        assert result is not None  # the loop runs at least once
        result.metadata.continue_ = msgspec.UNSET
        return result

    # --- writes ----------------------------------------------------------------------------------------

    async def create(
        self,
        res: Resource,
        body: object,
        namespace: str | None = None,
        *,
        type: type[T],
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> T:
        """POST a new object (a Struct or dict); ``apiVersion``/``kind`` are filled in from ``res`` when
        missing, and ``namespace`` defaults to the body's ``metadata.namespace``, then the configured one.

        Raises :class:`~couchestor.kube.errors.AlreadyExists` when the name is taken. Retried only when the
        request certainly did not reach the server, so it never creates twice.
        """
        ns = self._namespace_for(res, namespace, objects.object_key(body).namespace)
        resp = await self._call(
            "POST",
            res.path(ns),
            Idempotency.UNSAFE,
            body=objects.encode_object(body, res.api_version, res.kind),
            content_type=JSON,
            timeout=timeout,
        )
        return self._decode(resp, type)

    async def replace(
        self,
        res: Resource,
        body: object,
        namespace: str | None = None,
        *,
        type: type[T],
        subresource: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> T:
        """PUT the whole object. With ``metadata.resourceVersion`` set it is a guarded update
        (:class:`~couchestor.kube.errors.Conflict` when the object changed), handled after a lost answer as
        :meth:`merge_patch` describes; without, it is sent again only when certainly not processed."""
        key = objects.object_key(body)
        ns = self._namespace_for(res, namespace, key.namespace)
        rv = objects.resource_version(body)
        encoded = objects.encode_object(body, res.api_version, res.kind)
        path = res.path(ns, key.name, subresource)
        if rv:
            applied = _contains_write(_put_content(encoded), rv)
            confirmed = await self._write_preconditioned(
                "PUT", path, res.path(ns, key.name), encoded, JSON, timeout, applied
            )
            assert confirmed is not None  # only a delete is confirmed by the object being gone
            resp = confirmed
        else:
            resp = await self._call(
                "PUT", path, Idempotency.UNSAFE, body=encoded, content_type=JSON, timeout=timeout
            )
        return self._decode(resp, type)

    async def merge_patch(
        self,
        res: Resource,
        name: str,
        patch: object,
        namespace: str | None = None,
        *,
        type: type[T],
        subresource: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> T:
        """PATCH with ``application/merge-patch+json`` (RFC 7386): ``patch`` holds the fields to set and
        ``None`` for fields to remove. Absolute values make it idempotent, so it is retried.

        To guard against concurrent writers, put ``metadata.resourceVersion`` in the patch: the server then
        answers :class:`~couchestor.kube.errors.Conflict` if the object changed. Such a patch is never sent
        again blindly: after a failure that leaves its effect unknown (answer lost, timeout, 5xx) the object
        is read back; if the patch is in it, the call succeeds with the object as read; if the object is
        still at the precondition's version, the patch is sent again; otherwise someone else changed it
        (:class:`~couchestor.kube.errors.Conflict`). If the read-back fails too,
        :class:`~couchestor.kube.errors.OutcomeUnknown` is raised.
        """
        body = objects.encode(patch)
        path = res.path(namespace, name, subresource)
        rv = _patch_precondition(body)
        if rv:
            applied = _contains_write(msgspec.json.decode(body), rv)
            confirmed = await self._write_preconditioned(
                "PATCH", path, res.path(namespace, name), body, MERGE_PATCH, timeout, applied
            )
            assert confirmed is not None  # only a delete is confirmed by the object being gone
            resp = confirmed
        else:
            resp = await self._call(
                "PATCH", path, Idempotency.IDEMPOTENT, body=body, content_type=MERGE_PATCH, timeout=timeout
            )
        return self._decode(resp, type)

    async def patch_status(
        self,
        res: Resource,
        name: str,
        patch: object,
        namespace: str | None = None,
        *,
        type: type[T],
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> T:
        """Merge-patch the ``/status`` subresource (the only way status changes when it is enabled)."""
        return await self.merge_patch(
            res, name, patch, namespace, type=type, subresource="status", timeout=timeout
        )

    async def json_patch(
        self,
        res: Resource,
        name: str,
        ops: builtins.list[JsonPatchOp],
        namespace: str | None = None,
        *,
        type: type[T],
        subresource: str | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> T:
        """PATCH with ``application/json-patch+json`` (RFC 6902; see :mod:`couchestor.kube.patch`).

        A failed ``test`` op raises :class:`~couchestor.kube.errors.Invalid`. The patch is retried when it is
        guarded by a ``test`` op (or ``idempotent=True``); otherwise only when certainly not applied.
        Note that a guarded patch whose first attempt was applied but whose answer was lost fails its
        ``test`` on retry.
        """
        safe = is_guarded(ops) if idempotent is None else idempotent
        resp = await self._call(
            "PATCH",
            res.path(namespace, name, subresource),
            Idempotency.IDEMPOTENT if safe else Idempotency.UNSAFE,
            body=objects.encode(ops),
            content_type=JSON_PATCH,
            timeout=timeout,
        )
        return self._decode(resp, type)

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        missing_ok: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
    ) -> None:
        """DELETE an object, optionally only if it still has ``resource_version``/``uid`` (preconditions,
        :class:`~couchestor.kube.errors.Conflict` otherwise; after a lost answer the object is read back as
        :meth:`merge_patch` describes: gone or terminating means deleted). Objects with finalizers are only
        marked for deletion. ``missing_ok`` turns :class:`NotFound` into a no-op (useful because a retried
        DELETE whose first attempt succeeded finds nothing)."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        preconditions = {
            k: v for k, v in (("resourceVersion", resource_version), ("uid", uid)) if v is not None
        }
        if preconditions:
            options["preconditions"] = preconditions
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        path = res.path(namespace, name)
        try:
            if preconditions:
                deleted = _deleted(resource_version, uid)
                await self._write_preconditioned(
                    "DELETE", path, path, objects.encode(options), JSON, timeout, deleted
                )
            else:
                await self._call(
                    "DELETE",
                    path,
                    Idempotency.IDEMPOTENT,
                    body=objects.encode(options),
                    content_type=JSON,
                    timeout=timeout,
                )
        except NotFound:
            if not missing_ok:
                raise

    # --- watch -----------------------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        timeout_seconds: int,
        label_selector: str | None = None,
        field_selector: str | None = None,
        bookmarks: bool = True,
        connect_timeout: float | None = None,
        progress_timeout: float | None = None,
        type: builtins.type[T] | None = None,
    ) -> AsyncIterator[AsyncIterator[builtins.list[RawWatchEvent | ObjectWatchEvent[T]]]]:
        """Open a WATCH from ``resource_version``; yields an async iterator of batches of events.

        With ``type``, each line is decoded in one pass into an :class:`ObjectWatchEvent` of that type where
        it can be (every ADDED, MODIFIED and DELETED event of a well-formed stream); a line that cannot (an
        ERROR, a bookmark ``type`` does not fit, an object ``type`` rejects) comes as a
        :class:`RawWatchEvent`, whose object the caller decodes and judges. Without ``type``, every event is
        raw.

        The server ends the stream after ``timeout_seconds``. ``progress_timeout`` is the longest silence
        allowed on the open stream (default ``timeout_seconds`` plus :data:`WATCH_READ_SLACK`, so only a
        silent server trips it): no byte for that long raises :class:`~couchestor.kube.errors.WatchStalled`.
        Events are decoded as bytes arrive, one batch (in stream order) per network chunk that completes at
        least one event. Errors opening the watch raise :class:`ApiError` (e.g.
        :class:`~couchestor.kube.errors.Gone`), :class:`TransportError` or
        :class:`~couchestor.kube.errors.TLSFailure`; errors while reading raise :class:`TransportError`. Not
        retried: watch restarts are the watcher's business. Leaving the block (or cancellation) closes the
        connection.
        """
        params = _selectors(label_selector, field_selector)
        params.update(watch="true", resourceVersion=resource_version, timeoutSeconds=str(timeout_seconds))
        if bookmarks:
            params["allowWatchBookmarks"] = "true"
        path = res.path(namespace)
        call = f"WATCH {path}"
        connect = self.connect_timeout if connect_timeout is None else connect_timeout
        silence = timeout_seconds + WATCH_READ_SLACK if progress_timeout is None else progress_timeout
        timeouts = httpx.Timeout(connect, read=silence, write=connect, pool=connect)
        await self.limiter.acquire()
        if self._http.is_closed:
            # A watcher outliving its client (shutdown in progress): a failure to connect, not a crash.
            raise ConnectionFailed(call, "cannot connect: the client is closed", sent=False)
        request = self._http.build_request(
            "GET", path, params=params, timeout=timeouts, extensions=self._extensions
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(call, exc, timeout=connect) from None
        try:
            if response.status_code >= 400:
                body = await _read_limited(response, call)
                raise _error_for(call, response, body)
            typed = None if type is None else objects.decoder(ObjectWatchEvent[type])  # type: ignore[valid-type]
            async with aclosing(_watch_batches(response, call, silence, typed)) as batches:
                yield batches
        finally:
            await response.aclose()

    # --- plumbing --------------------------------------------------------------------------------------

    def _namespace_for(self, res: Resource, namespace: str | None, body_namespace: str) -> str | None:
        """The namespace a whole-object write goes to: explicit, else the body's, else the configured default
        (as kubectl does); None for a cluster-scoped resource."""
        if not res.namespaced:
            return None
        return namespace or body_namespace or self.config.namespace

    async def _call(
        self,
        method: str,
        path: str,
        idempotency: Idempotency,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, inside the retry loop
        on_sent: Callable[[], None] | None = None,
    ) -> httpx.Response:
        """Send with rate limit, deadline and retries; return a successful response with its body read.

        ``on_sent`` is called each time the whole request has been written (the server is working on it).
        """
        call = f"{method} {path}"
        limit = self.timeout if timeout is None else timeout
        headers = {"Content-Type": content_type} if content_type else None
        backoff = Backoff(self.retry.backoff, rng=self._rng)
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            error: KubeError
            await self.limiter.acquire()
            try:
                response = await self._send_once(call, method, path, params, body, headers, limit, on_sent)
            except TransportError as exc:
                error = exc
            else:
                if response.status_code < 400:
                    return response
                error = _error_for(call, response, response.content)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt >= self.retry.max_attempts or not is_retryable(error, idempotency):
                raise error
            delay = backoff.next_delay()
            if retry_after is not None:
                delay = min(retry_after, self.retry.max_retry_after)
            await trio.sleep(delay)

    async def _write_preconditioned(
        self,
        method: str,
        path: str,
        read_path: str,
        body: bytes,
        content_type: str,
        timeout: float | None,  # noqa: ASYNC109 - per attempt, inside the retry loop
        applied: Callable[[Any], bool | None],
    ) -> httpx.Response | None:
        """A write the server applies at most once (it carries a precondition), never resent blindly.

        After a failure whose effect is unknown, and after a 409 that follows one, ``read_path`` is read back
        and ``applied`` judges the object (decoded JSON, None when it is gone): True when the write is in it
        (the read-back response is returned, None when the object is gone), False when it certainly is not
        (the write is sent again), None when someone else changed it (:class:`Conflict`) or it vanished
        (:class:`NotFound`).
        """
        call = f"{method} {path}"
        backoff = Backoff(self.retry.backoff, rng=self._rng)
        unknown: KubeError | None = None
        for _ in range(self.retry.max_attempts):
            try:
                return await self._call(
                    method,
                    path,
                    Idempotency.PRECONDITIONED,
                    body=body,
                    content_type=content_type,
                    timeout=timeout,
                )
            except Conflict as exc:
                if unknown is None:
                    raise  # a plain conflict: another writer came first
                conflict: Conflict | None = exc
            except KubeError as exc:
                if not outcome_unknown(exc):
                    raise
                unknown, conflict = exc, None
            current: httpx.Response | None = None
            try:
                current = await self._call("GET", read_path, Idempotency.IDEMPOTENT, timeout=timeout)
                verdict = applied(msgspec.json.decode(current.content))
            except NotFound:
                current, verdict = None, applied(None)
            except (KubeError, msgspec.DecodeError) as exc:
                raise OutcomeUnknown(call, f"{unknown}; reading it back failed too: {exc}") from None
            if verdict is True:
                return current
            if verdict is None:
                why = f"after a lost answer ({unknown})"
                if current is None:
                    raise NotFound(call, Status(code=404, reason="NotFound", message=f"gone {why}"))
                raise conflict or Conflict(
                    call, Status(code=409, reason="Conflict", message=f"changed by another writer {why}")
                )
            await trio.sleep(backoff.next_delay())
        raise OutcomeUnknown(call, f"not confirmed after {self.retry.max_attempts} attempts: {unknown}")

    async def _send_once(
        self,
        call: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        limit: float,
        on_sent: Callable[[], None] | None,
    ) -> httpx.Response:
        extensions = self._extensions
        if on_sent is not None:
            extensions = extensions | {"trace": _sent_tracer(on_sent)}
        request = self._http.build_request(
            method,
            path,
            params=params,
            content=body,
            headers=headers,
            extensions=extensions,
            timeout=httpx.Timeout(limit, connect=min(limit, self.connect_timeout)),
        )
        with trio.move_on_after(limit) as scope:
            try:
                return await self._http.send(request)
            except httpx.HTTPError as exc:
                raise self._transport_error(call, exc, timeout=limit) from None
        assert scope.cancelled_caught
        raise CallTimeout(call, f"no complete response within {limit:g}s")

    def _transport_error(self, call: str, exc: httpx.HTTPError, *, timeout: float) -> KubeError:
        """The error for ``exc``: :class:`TLSFailure` when the handshake failed for good, else a
        :class:`TransportError`."""
        if isinstance(exc, httpx.ConnectError):
            tls = _tls_failure(exc)
            if tls is not None:
                return TLSFailure(call, f"{tls} ({self._tls_context})")
        return _transport_error(call, exc, timeout=timeout)

    def _decode(self, response: httpx.Response, tp: type[T]) -> T:
        result: T = self._decode_with(response, objects.decoder(tp))
        return result

    def _decode_with(self, response: httpx.Response, dec: msgspec.json.Decoder[Any]) -> Any:
        call = f"{response.request.method} {response.request.url.path}"
        return _decode(call, response.content, dec)


class _ListHead(msgspec.Struct):
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)


# Skips the items without building them: a sixth of a full decode for a page of PersistentVolumes.
_LIST_HEAD_DECODER = msgspec.json.Decoder(_ListHead)


@dataclass(frozen=True, slots=True)
class UndecodedPage:
    """A LIST response whose ``metadata`` (continue token, resourceVersion) is decoded and items are not."""

    call: str
    body: bytes
    metadata: ListMeta

    def decode(self, type: builtins.type[T]) -> ObjectList[T]:
        """The whole page with its items as ``type``; :class:`KubeError` if it does not match."""
        page: ObjectList[T] = _decode(self.call, self.body, objects.list_decoder(type))
        return page


def _patch_precondition(body: bytes) -> str:
    """The ``metadata.resourceVersion`` a merge-patch carries ("" when unguarded)."""
    raw = msgspec.json.decode(body)
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) else ""


def _put_content(body: bytes) -> dict[str, Any]:
    """What a PUT sets that a read-back can show: everything but ``status`` (a separate subresource) and the
    metadata the server owns; of metadata, the labels and annotations."""
    raw: dict[str, Any] = msgspec.json.decode(body)
    content = {k: v for k, v in raw.items() if k not in ("metadata", "status")}
    meta = raw.get("metadata") or {}
    kept = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    if kept:
        content["metadata"] = kept
    return content


def _contains_write(write: Any, rv: str) -> Callable[[Any], bool | None]:
    """The judge of a read-back after a lost answer to a write preconditioned on ``rv``."""
    if isinstance(write, dict) and isinstance(write.get("metadata"), dict):
        write = {**write, "metadata": {k: v for k, v in write["metadata"].items() if k != "resourceVersion"}}

    def applied(current: Any) -> bool | None:
        if not isinstance(current, dict):
            return None
        if (current.get("metadata") or {}).get("resourceVersion") == rv:
            return False  # unchanged since the precondition: the write was not applied
        return True if _merged(current, write) else None

    return applied


def _deleted(rv: str | None, uid: str | None) -> Callable[[Any], bool | None]:
    """The judge of a read-back after a lost answer to a DELETE with preconditions."""

    def applied(current: Any) -> bool | None:
        if not isinstance(current, dict):
            return True  # gone
        meta = current.get("metadata") or {}
        if uid is not None and meta.get("uid") != uid:
            return None  # deleted and created again: not ours to judge
        if meta.get("deletionTimestamp"):
            return True  # terminating (finalizers hold it)
        if rv is None or meta.get("resourceVersion") == rv:
            return False
        return None

    return applied


def _merged(current: Any, patch: Any) -> bool:
    """True when applying merge-patch ``patch`` to ``current`` would change nothing.

    A zero value (``""``, 0, false, empty) in the patch matches an absent field: the API server omits them
    (Go's ``omitempty``).
    """
    if not isinstance(patch, dict):
        return bool(current == patch or (current is None and not patch and patch is not None))
    here = current if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            if here.get(key) is not None:
                return False
        elif not _merged(here.get(key), value):
            return False
    return True


def _sent_tracer(on_sent: Callable[[], None]) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore ``trace`` extension calling ``on_sent`` when a request's body has been written."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".send_request_body.complete"):
            on_sent()

    return trace


def _decode(call: str, body: bytes, dec: msgspec.json.Decoder[Any]) -> Any:
    try:
        return dec.decode(body)
    except msgspec.DecodeError as exc:
        raise KubeError(f"{call}: response does not match the expected schema: {exc}") from None


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _error_for(call: str, response: httpx.Response, body: bytes) -> ApiError:
    status = status_from_body(response.status_code, body, fallback_reason=response.reason_phrase)
    return api_error(call, status, retry_after=parse_retry_after(response.headers.get("Retry-After")))


def _transport_error(call: str, exc: httpx.HTTPError, *, timeout: float) -> TransportError:
    # Connect failures (and pool waits) mean the request never left: safe to retry even a POST.
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ConnectionFailed(call, f"cannot connect: {type(exc).__name__}", sent=False)
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(call, f"cannot connect: {_describe(exc)}", sent=False)
    if isinstance(exc, httpx.TimeoutException):
        return CallTimeout(call, f"{type(exc).__name__} (limit {timeout:g}s)")
    return ConnectionFailed(call, f"connection broken: {_describe(exc)}", sent=True)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from (httpcore wraps the OS or TLS error in a message-less one)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _decode_lines(
    lines: bytes | memoryview, typed: msgspec.json.Decoder[ObjectWatchEvent[T]] | None
) -> list[RawWatchEvent | ObjectWatchEvent[T]]:
    """The watch events of ``lines`` (whole lines): typed in one pass where ``typed`` reads them all, else raw."""
    if typed is not None:
        try:
            return typed.decode_lines(lines)  # type: ignore[return-value]
        except msgspec.DecodeError:
            pass  # (ValidationError is a DecodeError) an ERROR event, a sparse bookmark, a bad object
    return _RAW_EVENT_DECODER.decode_lines(lines)  # type: ignore[return-value]


def _describe(exc: BaseException) -> str:
    """The first non-empty message in ``exc``'s chain (``ConnectError('')`` says nothing by itself)."""
    for err in _causes(exc):
        if isinstance(err, ssl.SSLError):
            return f"TLS: {err.reason or err}"
        text = getattr(err, "strerror", None) or str(err)
        if text:
            return text
    return type(exc).__name__


# Handshake errors that say the connection broke rather than that the certificates are wrong: retried.
_TRANSIENT_SSL = (ssl.SSLEOFError, ssl.SSLSyscallError, ssl.SSLZeroReturnError, ssl.SSLWantReadError)


def _tls_failure(exc: httpx.ConnectError) -> str | None:
    """What is wrong when ``exc`` is a TLS handshake failure retrying cannot fix, else None."""
    for err in _causes(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {err.verify_message or err.reason}"
        if isinstance(err, ssl.SSLError) and not isinstance(err, _TRANSIENT_SSL):
            return f"TLS handshake failed: {err.reason or err}"
    return None


async def _read_limited(response: httpx.Response, call: str, limit: int = 1024 * 1024) -> bytes:
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= limit:
                break
    except httpx.HTTPError as exc:
        raise _transport_error(call, exc, timeout=0) from None
    return bytes(body)


async def _watch_batches(
    response: httpx.Response,
    call: str,
    read_timeout: float,
    typed: msgspec.json.Decoder[ObjectWatchEvent[T]] | None = None,
) -> AsyncGenerator[list[RawWatchEvent | ObjectWatchEvent[T]], None]:
    """Decode a newline-delimited watch stream as chunks arrive: one list per chunk that ends an event.

    Batching by network chunk keeps the per-event cost to decoding (a chunk of a busy watch holds tens of
    events, decoded in one call as newline-delimited JSON), and events are decoded in place from the chunk, so
    an event's bytes are copied only when it spans chunks. The stream is never buffered whole, only the
    unfinished line of the last chunk. With ``typed``, a chunk's lines are decoded by it in one pass; the lines
    of a chunk it fails on (see :class:`ObjectWatchEvent`) are decoded raw instead, and the errors the caller
    meets are then those of the raw path.
    """
    partial: list[bytes] = []  # pieces of a line still waiting for its newline
    partial_len = 0
    try:
        async for chunk in response.aiter_bytes():
            end = chunk.find(b"\n")
            if end < 0:
                partial.append(chunk)
                partial_len += len(chunk)
                if partial_len > MAX_WATCH_LINE:
                    raise KubeError(f"{call}: watch event longer than {MAX_WATCH_LINE} bytes")
                continue
            batch: list[RawWatchEvent | ObjectWatchEvent[T]] = []
            start = 0
            last = chunk.rfind(b"\n")
            try:
                if partial:
                    partial.append(chunk[:end])
                    line = b"".join(partial)
                    partial = []
                    partial_len = 0
                    if line.strip():
                        batch += _decode_lines(line, typed)
                    start = end + 1
                if last >= start:
                    # Every whole line of the chunk at once (blank lines are skipped).
                    batch += _decode_lines(memoryview(chunk)[start : last + 1], typed)
                    start = last + 1
            except msgspec.DecodeError as exc:
                raise KubeError(f"{call}: malformed watch event: {exc}") from None
            if start < len(chunk):
                partial.append(chunk[start:])
                partial_len = len(chunk) - start
            if batch:
                yield batch
    except httpx.ReadTimeout:
        raise WatchStalled(call, f"no data for {read_timeout:g}s: connection presumed dead") from None
    except httpx.HTTPError as exc:
        raise _transport_error(call, exc, timeout=read_timeout) from None
    if b"".join(partial).strip():
        # A stream cut mid-event: the partial line is not an event.
        raise ConnectionFailed(call, "watch stream ended inside an event", sent=True)
