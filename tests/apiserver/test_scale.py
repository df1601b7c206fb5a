"""50,000 PersistentVolumes: listed over HTTP in ``limit=500`` pages from one snapshot, then watched."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from couchestor.sim.apiserver import ApiServer, serve
from tests.apiserver.bench import fill, pv

N = 50_000
PAGE = 500


async def _stream_events(client, params, stop):
    """Events of a watch of PersistentVolumes with these parameters, up to the first for which ``stop`` holds
    (all of them if the watch ends first)."""
    events = []
    async with client.stream("GET", "/api/v1/persistentvolumes", params={"watch": "1", **params}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line:
                events.append(msgspec.json.decode(line))
                if stop(events):
                    break
    return events


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_fifty_thousand_pvs_list_in_pages_and_watch(nursery):
    api = ApiServer()
    fill(api, N)
    url = await nursery.start(serve, api)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        names: list[str] = []
        token, snapshot_rv, pages = "", "", 0
        extra = pv(N)
        while True:
            params = {"limit": str(PAGE), **({"continue": token} if token else {})}
            r = await client.get("/api/v1/persistentvolumes", params=params)
            assert r.status_code == 200, r.text
            body = msgspec.json.decode(r.content)
            pages += 1
            assert len(body["items"]) <= PAGE
            names += [item["metadata"]["name"] for item in body["items"]]
            snapshot_rv = snapshot_rv or body["metadata"]["resourceVersion"]
            assert body["metadata"]["resourceVersion"] == snapshot_rv
            if pages == 1:
                assert body["metadata"]["remainingItemCount"] == N - PAGE
            if pages == 50:
                # Writes in the middle of paging must not leak into the snapshot being paged.
                assert (await client.post("/api/v1/persistentvolumes", json=extra)).status_code == 201
                assert (await client.delete(f"/api/v1/persistentvolumes/{names[0]}")).status_code == 200
            token = body["metadata"].get("continue", "")
            if not token:
                break
        assert pages == N // PAGE
        assert len(names) == N
        assert names == sorted(set(names))

        # Resuming from the snapshot's version replays what happened since, in order; the built-in PV
        # controllers' own writes (phase, pv-protection finalizer) come in between.
        created = extra["metadata"]["name"]

        def deleted(events):
            return events[-1]["type"] == "DELETED"

        since = await _stream_events(
            client, {"resourceVersion": snapshot_rv, "timeoutSeconds": "30"}, deleted
        )
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in since]
        assert rvs == sorted(set(rvs))
        assert min(rvs) > int(snapshot_rv)
        of_created = [e["type"] for e in since if e["object"]["metadata"]["name"] == created]
        of_deleted = [e["type"] for e in since if e["object"]["metadata"]["name"] == names[0]]
        assert of_created[0] == "ADDED"
        assert "DELETED" not in of_created
        assert of_deleted[-1] == "DELETED"
        assert "ADDED" not in of_deleted

        # A watch from resourceVersion 0 starts with one synthetic ADDED per live object.
        initial = await _stream_events(
            client, {"resourceVersion": "0", "timeoutSeconds": "60"}, lambda events: len(events) == N
        )
        assert {e["type"] for e in initial} == {"ADDED"}
        seen = {e["object"]["metadata"]["name"] for e in initial}
        assert len(seen) == N
        assert created in seen
        assert names[0] not in seen
