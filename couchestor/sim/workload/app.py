"""The workload simulator's HTTP surface: ``/metrics`` for a real Prometheus, ``/api/v1/query`` for the demo.

A plain ASGI app served by hypercorn's trio worker:

- ``GET /metrics``: the workload sampled at request time, in the Prometheus text format, or OpenMetrics when
  the scraper asks for it (Prometheus does), via prometheus-client's exposition.
- ``GET|POST /api/v1/query`` (``query``, ``time``): the PromQL subset of :mod:`couchestor.sim.promql` over
  the samples a Prometheus scraping every ``step`` seconds would hold (:class:`~.queries.WorkloadSamples`).
- ``GET /-/healthy`` and ``/-/ready``: always 200, like an idle Prometheus, so clients can probe either alike.

Rendering and evaluation run on the trio thread; they are CPU-bound and bounded by the number of volumes
(see the measurements in the module's tests), and a request body is capped at 1 MiB.
"""

from __future__ import annotations

import trio
from prometheus_client.exposition import choose_encoder

from couchestor.endpoints import Receive, Scope, Send, lifespan, respond, serve_asgi
from couchestor.sim.promql import error_body, form_params, query_response
from couchestor.sim.workload.exposition import ExportOptions, metrics_registry
from couchestor.sim.workload.model import Workload
from couchestor.sim.workload.queries import WorkloadSamples

MAX_BODY = 1 << 20


class WorkloadApp:
    """The ASGI application of the workload simulator; see the module docstring for its routes."""

    def __init__(
        self, workload: Workload, options: ExportOptions | None = None, *, step: float = 15.0
    ) -> None:
        self.workload = workload
        self.options = options or ExportOptions()
        self._registry = metrics_registry(workload, self.options)
        self._samples = WorkloadSamples(workload, self.options, step=step)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/metrics":
            if method not in ("GET", "HEAD"):
                await respond(send, 405, b"method not allowed\n", "text/plain; charset=utf-8")
                return
            encoder, content_type = choose_encoder(_header(scope, b"accept"))
            await respond(send, 200, encoder(self._registry), content_type)
        elif path == "/api/v1/query":
            await self._query(scope, receive, send)
        elif path in ("/-/healthy", "/-/ready"):
            await respond(send, 200, b"ok\n", "text/plain; charset=utf-8")
        else:
            await respond(send, 404, b"404 page not found\n", "text/plain; charset=utf-8")

    async def _query(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "POST"):
            await respond(send, 405, error_body("bad_data", f"method {method} not allowed"), _JSON)
            return
        body = b""
        if method == "POST":
            try:
                body = await _read_body(receive)
            except _BodyTooLarge:
                await respond(send, 413, error_body("bad_data", "request body larger than 1 MiB"), _JSON)
                return
            if not _header(scope, b"content-type").startswith("application/x-www-form-urlencoded"):
                body = b""
        params = form_params(scope.get("query_string", b""), body)
        status, payload = query_response(self._samples, params, now=self.workload.now())
        await respond(send, status, payload, _JSON)


_JSON = "application/json"


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


async def serve_workload(
    workload: Workload,
    *,
    options: ExportOptions | None = None,
    step: float = 15.0,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``workload`` over HTTP until cancelled; ``task_status.started`` gets the base URL.

    ``port=0`` picks a free port; the URL carries the real one. ``step`` is the scrape interval the query
    endpoint assumes (the spacing of its samples). Cancelling the surrounding scope stops the server; open
    connections get hypercorn's graceful timeout (1 s) to finish.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    app = WorkloadApp(workload, options, step=step)
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve_asgi, app, address)
        task_status.started(url)
