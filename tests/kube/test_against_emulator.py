"""The Kubernetes client against the project's API server emulator, with injected faults.

Covers CRUD and typed errors, pagination, optimistic concurrency, 429 with Retry-After, 500 bursts, latency
against timeouts, and the reflector under dropped watches, 410 on resume and compaction. The last test drives
randomized sequences of writes and faults and checks the property that matters: once the server is quiet, the
reflector's store equals the server's state.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import trio

from couchestor.kube import errors
from couchestor.kube.backoff import BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.patch import op_replace, op_test
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import CONFIG_MAP, Resource
from couchestor.kube.retry import RetryPolicy
from couchestor.kube.watcher import WatcherError
from tests.kube.mock import wait_for

NS = "default"
FAST_RETRY = RetryPolicy(max_attempts=4, backoff=BackoffPolicy(initial=0.02, cap=0.2, reset_after=5.0))
FAST_WATCH_BACKOFF = BackoffPolicy(initial=0.02, cap=0.3, reset_after=5.0)


def client_for(apiserver: Any, **kwargs: Any) -> KubeClient:
    config = load_kubeconfig([Path(apiserver.kubeconfig)])
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("qps", 0)
    kwargs.setdefault("timeout", 5.0)
    return KubeClient(config, **kwargs)


def cm(name: str, value: str = "0", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": value}}


def names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in items)


async def test_crud_and_typed_errors(apiserver: Any) -> None:
    async with client_for(apiserver) as client:
        created = await client.create(CONFIG_MAP, cm("crud-a", "1"), type=dict)
        rv1 = created["metadata"]["resourceVersion"]
        assert created["metadata"]["uid"]
        got = await client.get(CONFIG_MAP, "crud-a", NS, type=dict)
        assert got["data"] == {"v": "1"}

        with pytest.raises(errors.AlreadyExists) as exists:
            await client.create(CONFIG_MAP, cm("crud-a"), type=dict)
        assert exists.value.code == 409
        assert exists.value.reason == "AlreadyExists"

        patched = await client.merge_patch(
            CONFIG_MAP, "crud-a", {"data": {"v": "2", "w": "x"}}, NS, type=dict
        )
        assert patched["data"] == {"v": "2", "w": "x"}
        assert patched["metadata"]["resourceVersion"] != rv1
        removed = await client.merge_patch(CONFIG_MAP, "crud-a", {"data": {"w": None}}, NS, type=dict)
        assert removed["data"] == {"v": "2"}

        guarded = [op_test("/data/v", "2"), op_replace("/data/v", "3")]
        assert (await client.json_patch(CONFIG_MAP, "crud-a", guarded, NS, type=dict))["data"] == {"v": "3"}
        with pytest.raises(errors.Invalid):  # the test op fails now: v is 3
            await client.json_patch(CONFIG_MAP, "crud-a", guarded, NS, type=dict)

        await client.delete(CONFIG_MAP, "crud-a", NS)
        with pytest.raises(errors.NotFound) as missing:
            await client.get(CONFIG_MAP, "crud-a", NS, type=dict)
        assert missing.value.reason == "NotFound"
        assert "crud-a" in missing.value.message
        await client.delete(CONFIG_MAP, "crud-a", NS, missing_ok=True)

        with pytest.raises(errors.Invalid) as invalid:
            await client.create(CONFIG_MAP, cm("Not_A_Valid_Name"), type=dict)
        assert invalid.value.code == 422

        with pytest.raises(errors.NotFound):
            await client.get(Resource("nope.example.com", "v1", "widgets", "Widget", False), "x", type=dict)


@pytest.mark.chaos
async def test_pagination_and_selectors(apiserver: Any) -> None:
    async with client_for(apiserver) as client:
        for i in range(23):
            await client.create(CONFIG_MAP, cm(f"page-{i:02d}", tier="hot" if i % 2 else "cold"), type=dict)
        pages = [
            page async for page in client.list(CONFIG_MAP, NS, type=dict, label_selector="tier", limit=10)
        ]
        assert [len(p.items) for p in pages] == [10, 10, 3]
        assert len({p.metadata.resource_version for p in pages}) == 1  # one snapshot
        hot = await client.list_all(CONFIG_MAP, NS, type=dict, label_selector="tier=hot", limit=4)
        assert names(hot.items) == [f"page-{i:02d}" for i in range(23) if i % 2]
        one = await client.list_all(CONFIG_MAP, NS, type=dict, field_selector="metadata.name=page-07")
        assert names(one.items) == ["page-07"]

        # A continue token whose snapshot was compacted away is Gone: the caller must list again.
        pager = client.list(CONFIG_MAP, NS, type=dict, label_selector="tier", limit=10)
        assert len((await anext(pager)).items) == 10
        await client.create(CONFIG_MAP, cm("page-late", tier="hot"), type=dict)
        apiserver.api.chaos.compact()
        with pytest.raises(errors.Gone) as gone:
            await anext(pager)
        assert gone.value.code == 410
        await pager.aclose()


async def test_on_sent_is_called_once_the_request_is_written_before_the_answer(apiserver: Any) -> None:
    async with client_for(apiserver, timeout=5.0) as client:
        await client.create(CONFIG_MAP, cm("sent-a"), type=dict)
        apiserver.api.chaos.add_fault(latency=0.5, method="GET", path_regex="configmaps", count=1)
        sent_at: list[float] = []
        started = trio.current_time()
        page = await client.list_page_undecoded(
            CONFIG_MAP, NS, on_sent=lambda: sent_at.append(trio.current_time())
        )
        answered = trio.current_time()
        assert len(sent_at) == 1
        assert sent_at[0] - started < 0.25 < answered - sent_at[0]  # the server held its answer 0.5 s
        assert page.metadata.resource_version
        assert "sent-a" in names(page.decode(dict).items)
        apiserver.api.chaos.clear()


async def test_conflicts_on_stale_resource_version(apiserver: Any) -> None:
    async with client_for(apiserver) as client:
        first = await client.create(CONFIG_MAP, cm("occ", "1"), type=dict)
        await client.merge_patch(CONFIG_MAP, "occ", {"data": {"v": "2"}}, NS, type=dict)
        stale = dict(first, data={"v": "stale"})
        with pytest.raises(errors.Conflict) as replace_conflict:
            await client.replace(CONFIG_MAP, stale, type=dict)
        assert type(replace_conflict.value) is errors.Conflict
        rv_patch = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}, "data": {"v": "x"}}
        with pytest.raises(errors.Conflict):
            await client.merge_patch(CONFIG_MAP, "occ", rv_patch, NS, type=dict)
        with pytest.raises(errors.Conflict):
            await client.delete(CONFIG_MAP, "occ", NS, resource_version=first["metadata"]["resourceVersion"])
        assert (await client.get(CONFIG_MAP, "occ", NS, type=dict))["data"] == {"v": "2"}


@pytest.mark.chaos
async def test_429_retry_after_is_honoured(apiserver: Any) -> None:
    async with client_for(apiserver) as client:
        await client.create(CONFIG_MAP, cm("throttled"), type=dict)
        apiserver.api.chaos.add_fault(
            status=429, retry_after=1, method="GET", path_regex="throttled", count=1
        )
        start = trio.current_time()
        got = await client.get(CONFIG_MAP, "throttled", NS, type=dict)
        assert got["metadata"]["name"] == "throttled"
        assert trio.current_time() - start >= 1.0  # a lower bound: the client waited as told

        apiserver.api.chaos.add_fault(
            status=429, retry_after=1, method="GET", path_regex="throttled", count=9
        )
        no_retry = client_for(apiserver, retry=RetryPolicy(max_attempts=1))
        async with no_retry:
            with pytest.raises(errors.TooManyRequests) as info:
                await no_retry.get(CONFIG_MAP, "throttled", NS, type=dict)
        assert info.value.retry_after == 1.0
        apiserver.api.chaos.clear()


@pytest.mark.chaos
async def test_500_burst_is_retried_then_given_up(apiserver: Any) -> None:
    async with client_for(apiserver) as client:
        await client.create(CONFIG_MAP, cm("burst"), type=dict)
        apiserver.api.chaos.add_fault(status=500, method="GET", path_regex="burst", count=3)
        assert (await client.get(CONFIG_MAP, "burst", NS, type=dict))["metadata"]["name"] == "burst"

        apiserver.api.chaos.add_fault(status=500, method="GET", path_regex="burst", count=100)
        with pytest.raises(errors.ServerError) as info:
            await client.get(CONFIG_MAP, "burst", NS, type=dict)
        assert info.value.code == 500
        # A create is never retried after a 5xx: the server may have acted.
        apiserver.api.chaos.add_fault(status=500, method="POST", path_regex="configmaps", count=1)
        with pytest.raises(errors.ServerError):
            await client.create(CONFIG_MAP, cm("burst-2"), type=dict)
        apiserver.api.chaos.clear()


@pytest.mark.chaos
async def test_latency_against_timeout(apiserver: Any) -> None:
    async with client_for(apiserver, timeout=0.3, retry=RetryPolicy(max_attempts=2)) as client:
        await client.create(CONFIG_MAP, cm("slow"), type=dict)
        apiserver.api.chaos.add_fault(latency=1.0, method="GET", path_regex="slow", count=1)
        # The first attempt times out, the retry is fast.
        assert (await client.get(CONFIG_MAP, "slow", NS, type=dict))["metadata"]["name"] == "slow"
        apiserver.api.chaos.add_fault(latency=1.0, method="GET", path_regex="slow", count=100)
        with pytest.raises(errors.CallTimeout) as info:
            await client.get(CONFIG_MAP, "slow", NS, type=dict)
        assert f"GET {CONFIG_MAP.path(NS, 'slow')}" in str(info.value)
        apiserver.api.chaos.clear()


async def server_state(client: KubeClient, label: str) -> dict[str, str]:
    listed = await client.list_all(CONFIG_MAP, NS, type=dict, label_selector=label)
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed.items}


def store_state(reflector: Reflector[dict[str, Any]]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in reflector.store.list()}


def make_reflector(client: KubeClient, label: str, failures: list[WatcherError]) -> Reflector[dict[str, Any]]:
    reflector = Reflector.for_resource(
        client, CONFIG_MAP, dict, namespace=NS, label_selector=label, page_size=7, on_error=failures.append,
        indexers={"value": lambda o: [o["data"]["v"]]},
    )  # fmt: skip
    reflector.watcher.backoff = FAST_WATCH_BACKOFF
    reflector.watcher.min_timeout, reflector.watcher.max_timeout = 2, 4
    return reflector


async def converge(client: KubeClient, reflector: Reflector[dict[str, Any]], label: str) -> dict[str, str]:
    """Wait until the store equals the server's state (or fail after 20 s); returns that state."""
    with trio.fail_after(20):
        while True:
            want = await server_state(client, label)
            if store_state(reflector) == want:
                return want
            await trio.sleep(0.05)


@pytest.mark.chaos
async def test_reflector_survives_dropped_watches_and_410(apiserver: Any) -> None:
    failures: list[WatcherError] = []
    async with client_for(apiserver) as client, trio.open_nursery() as nursery:
        for i in range(10):
            await client.create(CONFIG_MAP, cm(f"refl-{i}", str(i % 3), app="refl"), type=dict)
        reflector = make_reflector(client, "app=refl", failures)
        nursery.start_soon(reflector.run)
        await reflector.store.wait_synced()
        sub = reflector.store.subscribe(initial=False)
        assert len(reflector.store) == 10
        assert names(reflector.store.by_index("value", "0")) == ["refl-0", "refl-3", "refl-6", "refl-9"]

        # Dropped watch: resume from the last resourceVersion, no relist.
        lists_before = reflector.stats.lists
        apiserver.api.chaos.drop_watches()
        await client.merge_patch(CONFIG_MAP, "refl-0", {"data": {"v": "9"}}, NS, type=dict)
        await converge(client, reflector, "app=refl")
        assert reflector.stats.lists == lists_before

        # 410 on resume: the emulator forgets old versions, the watcher must relist.
        apiserver.api.chaos.gone_on_next_watch()
        apiserver.api.chaos.drop_watches()
        await client.delete(CONFIG_MAP, "refl-1", NS)
        await converge(client, reflector, "app=refl")
        await wait_for(lambda: reflector.stats.relists_after_gone >= 1, limit=10)

        # Compaction while disconnected: the change history is gone, resume gets 410, relist.
        apiserver.api.chaos.add_fault(status=500, watch=True, count=3)
        apiserver.api.chaos.drop_watches()
        await client.create(CONFIG_MAP, cm("refl-new", "0", app="refl"), type=dict)
        await client.delete(CONFIG_MAP, "refl-2", NS)
        apiserver.api.chaos.compact()
        await converge(client, reflector, "app=refl")
        assert names(reflector.store.by_index("value", "0")) == ["refl-3", "refl-6", "refl-9", "refl-new"]
        nursery.cancel_scope.cancel()

    changes = {(c.key.name, c.kind) async for c in sub}
    assert changes == {
        ("refl-0", "modified"),
        ("refl-1", "deleted"),
        ("refl-2", "deleted"),
        ("refl-new", "added"),
    }
    assert {f.phase for f in failures} & {"watch start", "server error event"}
    apiserver.api.chaos.clear()


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.parametrize("seed", range(6))
async def test_store_equals_server_after_random_writes_and_faults(apiserver: Any, seed: int) -> None:
    rng = random.Random(seed)
    label = f"prop={seed}"
    failures: list[WatcherError] = []
    async with client_for(apiserver) as client, trio.open_nursery() as nursery:
        reflector = make_reflector(client, label, failures)
        nursery.start_soon(reflector.run)
        await reflector.store.wait_synced()
        live: set[str] = set()
        for step in range(80):
            roll = rng.random()
            name = f"p{seed}-{rng.randrange(12)}"
            try:
                if roll < 0.45:
                    if name in live:
                        await client.merge_patch(CONFIG_MAP, name, {"data": {"v": str(step)}}, NS, type=dict)
                    else:
                        await client.create(CONFIG_MAP, cm(name, str(step), prop=str(seed)), type=dict)
                        live.add(name)
                elif roll < 0.65:
                    if name in live:
                        await client.delete(CONFIG_MAP, name, NS)
                        live.discard(name)
                elif roll < 0.72:
                    apiserver.api.chaos.drop_watches()
                elif roll < 0.77:
                    apiserver.api.chaos.gone_on_next_watch()
                    apiserver.api.chaos.drop_watches()
                elif roll < 0.82:
                    apiserver.api.chaos.compact()
                elif roll < 0.87:
                    apiserver.api.chaos.add_fault(status=500, watch=True, count=rng.randrange(1, 4))
                elif roll < 0.92:
                    apiserver.api.chaos.add_fault(status=429, retry_after=0, method="GET", count=2)
                else:
                    apiserver.api.chaos.add_fault(latency=0.3, watch=True, count=1)
            except errors.ServerError:
                pass  # an injected 5xx on a non-retried write: the write may not have happened
            if rng.random() < 0.3:
                await trio.sleep(rng.random() * 0.1)
        apiserver.api.chaos.clear()
        want = await converge(client, reflector, label)
        assert set(want) == live
        assert reflector.restarts > 0  # the faults did bite
        nursery.cancel_scope.cancel()
