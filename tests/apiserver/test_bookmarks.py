"""BOOKMARK events as kube-apiserver sends them: none on an idle watch, then periodic ones once the resource moved."""

from __future__ import annotations

import httpx
import msgspec

from couchestor.sim.apiserver import ApiServer, serve


def _params(api: ApiServer) -> dict[str, str]:
    return {
        "watch": "1",
        "resourceVersion": str(api.cluster.store.rv),
        "allowWatchBookmarks": "true",
        "fieldSelector": "metadata.name=never-exists",
        "timeoutSeconds": "30",
    }


def _rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def _events(client: httpx.AsyncClient, params: dict[str, str], stop_after: int, on_bookmark) -> list:
    events: list = []
    async with client.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as r:
        async for line in r.aiter_lines():
            if line:
                events.append(msgspec.json.decode(line))
                on_bookmark(len(events))
                if len(events) == stop_after:
                    break
    return events


async def test_bookmarks_start_once_the_resource_moves_and_carry_its_version(nursery):
    api = ApiServer(bookmark_interval=0.2)
    url = await nursery.start(serve, api)
    cms = api.cluster.registry.get("", "v1", "configmaps")
    nss = api.cluster.registry.get("", "v1", "namespaces")
    written: list[int] = []

    def namespace(name: str) -> None:
        api.cluster.create(nss, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        # Idle for several intervals, with a write to another resource: no bookmark at all.
        idle = _params(api) | {"timeoutSeconds": "1"}
        namespace("p")
        assert await _events(client, idle, 0, lambda n: None) == []

        def write(seen: int) -> None:
            if seen == 2:
                namespace("q")
                written.append(_rv(api.cluster.create(cms, "default", _cm("another"))))

        params = _params(api)
        # A ConfigMap the watch does not select still moves the resource's version.
        written.append(_rv(api.cluster.create(cms, "default", _cm("other"))))
        events = await _events(client, params, 4, write)
    assert [e["type"] for e in events] == ["BOOKMARK"] * 4
    marks = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert marks == [written[0], written[0], written[1], written[1]]
