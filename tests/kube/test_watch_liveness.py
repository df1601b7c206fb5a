"""Watch liveness against the emulator's stream faults: a reset stream resumes at once, a frozen one is noticed
by the progress deadline, and an idle healthy watch is ended by the server, not by the deadline."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
import trio

from couchestor.kube.backoff import BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import WatchStalled
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import CONFIG_MAP
from couchestor.kube.watcher import WatcherError, Watching
from tests.kube.mock import wait_for
from tests.kube.test_against_emulator import NS, client_for, cm

pytestmark = pytest.mark.chaos

# A backoff no test can wait out: a stream end counted as a failure would stall the test.
NO_BACKOFF_EXPECTED = BackoffPolicy(initial=120.0, cap=120.0, reset_after=600.0)


def reflector_for(
    client: KubeClient, label: str, failures: list[WatcherError], **watcher: Any
) -> Reflector[dict[str, Any]]:
    reflector = Reflector.for_resource(
        client, CONFIG_MAP, dict, namespace=NS, label_selector=label, on_error=failures.append
    )
    for name, value in watcher.items():
        setattr(reflector.watcher, name, value)
    return reflector


async def established(reflector: Reflector[dict[str, Any]], client: KubeClient) -> None:
    """Wait until a bookmark has arrived on the stream open now.

    As on a real server, bookmarks (every second on this emulator) flow only once the resource was written after
    the watch began, so an object outside the watch's selector is written first.
    """
    await wait_for(lambda: isinstance(reflector.watcher.state, Watching), limit=20)
    watches, events = reflector.stats.watches, reflector.stats.events
    poke = cm(f"poke-{uuid.uuid4().hex[:8]}", app="unwatched")
    await client.create(CONFIG_MAP, poke, type=dict)
    await wait_for(lambda: reflector.stats.events > events and reflector.stats.watches == watches, limit=20)


async def sees(reflector: Reflector[dict[str, Any]], name: str, value: str, limit: float = 15) -> None:
    def seen() -> bool:
        got = reflector.store.get(name, NS)
        return got is not None and got["data"]["v"] == value

    await wait_for(seen, limit=limit, poll=0.02)


async def test_reset_streams_resume_at_once_without_backoff(apiserver: Any) -> None:
    failures: list[WatcherError] = []
    async with client_for(apiserver) as client, trio.open_nursery() as nursery:
        await client.create(CONFIG_MAP, cm("reset-a", "0", app="reset"), type=dict)
        reflector = reflector_for(client, "app=reset", failures, backoff=NO_BACKOFF_EXPECTED)
        nursery.start_soon(reflector.run)
        await reflector.store.wait_synced()
        for n in range(1, 6):
            await established(reflector, client)
            apiserver.api.chaos.reset_watches()
            await client.merge_patch(CONFIG_MAP, "reset-a", {"data": {"v": str(n)}}, NS, type=dict)
            await sees(reflector, "reset-a", str(n))
        nursery.cancel_scope.cancel()
    stats = reflector.stats
    assert stats.errors == 0
    assert stats.interruptions == 5
    assert stats.lists == 1  # resumed from the last resourceVersion every time
    assert [(f.phase, f.interrupted) for f in failures] == [("watch stream", True)] * 5
    assert all("connection" in str(f.cause) or "peer closed" in str(f.cause) for f in failures)


async def test_failure_to_reconnect_still_backs_off(apiserver: Any) -> None:
    failures: list[WatcherError] = []
    async with client_for(apiserver) as client, trio.open_nursery() as nursery:
        reflector = reflector_for(client, "app=recon", failures, backoff=NO_BACKOFF_EXPECTED)
        nursery.start_soon(reflector.run)
        await reflector.store.wait_synced()
        await established(reflector, client)
        apiserver.api.chaos.add_fault(status=503, watch=True, count=1)
        apiserver.api.chaos.reset_watches()
        await wait_for(lambda: reflector.stats.errors == 1, limit=20)
        await trio.sleep(1.0)
        # The 503 on re-watch is a failure to connect: the watcher now waits out its (long) backoff.
        assert reflector.stats.watches == 1
        nursery.cancel_scope.cancel()
    assert [(f.phase, f.interrupted) for f in failures] == [("watch stream", True), ("watch start", False)]


async def test_frozen_stream_is_ended_by_the_progress_deadline(apiserver: Any) -> None:
    failures: list[WatcherError] = []
    async with client_for(apiserver) as client, trio.open_nursery() as nursery:
        await client.create(CONFIG_MAP, cm("frozen-a", "0", app="frozen"), type=dict)
        reflector = reflector_for(
            client,
            "app=frozen",
            failures,
            backoff=NO_BACKOFF_EXPECTED,
            progress_timeout=6.0,  # idle streams ask for 3 s
            min_timeout=300,
            max_timeout=301,
        )
        nursery.start_soon(reflector.run)
        await reflector.store.wait_synced()
        await established(reflector, client)
        await client.merge_patch(CONFIG_MAP, "frozen-a", {"data": {"v": "0b"}}, NS, type=dict)
        await wait_for(lambda: not reflector.watcher.idle, limit=20)  # a stream carried a change: now busy
        await established(reflector, client)
        apiserver.api.chaos.freeze_watches()
        await client.merge_patch(CONFIG_MAP, "frozen-a", {"data": {"v": "1"}}, NS, type=dict)
        # Without the deadline the frozen stream would only end at timeoutSeconds + 30 s.
        await sees(reflector, "frozen-a", "1", limit=15)
        nursery.cancel_scope.cancel()
    assert reflector.stats.stalls == 1
    assert reflector.stats.errors == 0
    assert reflector.stats.lists == 1
    assert failures == []  # a busy stream gone quiet is expected to stall: not reported


async def test_idle_watch_is_ended_by_the_server_and_a_frozen_one_is_reported(apiserver: Any) -> None:
    # bookmarks=False: an idle stream carries nothing at all, as on a real API server.
    failures: list[WatcherError] = []
    async with client_for(apiserver) as client, trio.open_nursery() as nursery:
        reflector = reflector_for(
            client, "app=idle", failures, backoff=NO_BACKOFF_EXPECTED, progress_timeout=4.0, bookmarks=False
        )
        nursery.start_soon(reflector.run)
        await reflector.store.wait_synced()
        # Idle streams ask the server for 2-3 s, so it ends them before the 4 s deadline.
        await wait_for(lambda: reflector.stats.watches >= 4, limit=20)
        assert (reflector.stats.stalls, reflector.stats.errors, failures) == (0, 0, [])
        apiserver.api.chaos.freeze_watches()
        await client.create(CONFIG_MAP, cm("idle-a", "1", app="idle"), type=dict)
        await sees(reflector, "idle-a", "1", limit=15)
        nursery.cancel_scope.cancel()
    assert reflector.stats.stalls == 1
    assert [(f.phase, type(f.cause)) for f in failures] == [("watch stream", WatchStalled)]


async def test_connections_carry_tcp_keepalive(apiserver: Any) -> None:
    async with client_for(apiserver) as client:
        response = await client._http.get("/version")  # a pooled connection of the client, as every call's
        sock = response.extensions["network_stream"].get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
