"""Helpers for protocol tests of the Kubernetes client over httpx.MockTransport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable

import httpx
import msgspec
import trio

from couchestor.kube.client import KubeClient
from couchestor.kube.config import ClusterConfig
from couchestor.kube.retry import RetryPolicy

#: Answers a request; an async one may wait (for a server that is slow or never answers).
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def status(code: int, reason: str, message: str = "", **details: object) -> httpx.Response:
    body: dict[str, object] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if details:
        body["details"] = details
    return httpx.Response(code, json=body)


def make_client(handler: Handler, **kwargs: object) -> KubeClient:
    kwargs.setdefault("qps", 0)
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4))
    return KubeClient(
        ClusterConfig(server="https://kube.test", verify=False),
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


class Chunks(httpx.AsyncByteStream):
    """A response body delivered as the given chunks (then optionally an error, as a dropped connection)."""

    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error


def events_body(*events: tuple[str, object]) -> bytes:
    return b"".join(msgspec.json.encode({"type": t, "object": o}) + b"\n" for t, o in events)


def obj(name: str, rv: int | str, namespace: str | None = None, **extra: object) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "resourceVersion": str(rv)}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"metadata": meta, **extra}


async def wait_for(condition: Callable[[], bool], *, limit: float = 3600, poll: float = 0.01) -> None:
    """Poll ``condition`` (state owned by another task) until true; fails after ``limit`` trio seconds."""
    with trio.fail_after(limit):
        while not condition():
            await trio.sleep(poll)
