"""Periodic BOOKMARK events on an idle watch, carrying the store's current resourceVersion."""

from __future__ import annotations

import httpx
import msgspec

from couchestor.sim.apiserver import ApiServer, serve


async def test_idle_watch_gets_periodic_bookmarks_that_follow_writes(nursery):
    api = ApiServer(bookmark_interval=0.2)
    url = await nursery.start(serve, api)
    cms = api.cluster.registry.get("", "v1", "configmaps")
    bookmarks: list[int] = []
    params = {
        "watch": "1",
        "resourceVersion": str(api.cluster.store.rv),
        "allowWatchBookmarks": "true",
        "fieldSelector": "metadata.name=never-exists",
        "timeoutSeconds": "30",
    }
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as client,
        client.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as r,
    ):
        async for line in r.aiter_lines():
            if not line:
                continue
            event = msgspec.json.decode(line)
            assert event["type"] == "BOOKMARK"
            bookmarks.append(int(event["object"]["metadata"]["resourceVersion"]))
            if len(bookmarks) == 2:
                # A write the watch does not select still moves the next bookmark's version forward.
                api.cluster.create(
                    cms, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}}
                )
            if len(bookmarks) == 4:
                break
    assert bookmarks[0] == bookmarks[1]
    assert bookmarks[2] == bookmarks[3] == api.cluster.store.rv > bookmarks[1]
