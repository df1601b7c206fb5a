"""Watch throughput: MODIFIED events per second through the whole reflector path, against a bare decode.

The reflector path is what the operator runs: :class:`~couchestor.kube.watcher.Watcher` reading the watch
stream over httpx (served from memory by a mock transport, in 64 KiB chunks, so no network or server cost is
in the figure), decoding each line and its object into a typed ``PersistentVolume``, applying it to a
:class:`~couchestor.kube.store.Store` with a storage-class index, and a subscriber draining the change
notifications. The bare rate decodes the same lines with the same two msgspec decoders and nothing else.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import trio
import trio.lowlevel

from couchestor.kube.client import KubeClient
from couchestor.kube.config import ClusterConfig
from couchestor.kube.resources import PERSISTENT_VOLUME
from couchestor.kube.store import Store
from couchestor.kube.watcher import Apply, Watcher, WatchEvent
from k8s_schemas import PersistentVolume
from k8s_schemas.meta import RawWatchEvent
from tests.bench.objects import pv_list

CHUNK = 64 * 1024


def _event_lines(objects: list[dict[str, Any]], events: int, base_rv: int) -> list[bytes]:
    lines = []
    for i in range(events):
        obj = objects[i % len(objects)]
        obj["metadata"]["resourceVersion"] = str(base_rv + 1 + i)
        obj["metadata"]["labels"] = {"bench/round": str(i // len(objects))}
        lines.append(json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n")
    return lines


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, body: bytes, then_hang: bool) -> None:
        self.body = body
        self.then_hang = then_hang

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), CHUNK):
            yield self.body[start : start + CHUNK]
        if self.then_hang:
            await trio.sleep_forever()


def _bare(lines: list[bytes]) -> float:
    raw = msgspec.json.Decoder(RawWatchEvent)
    typed = msgspec.json.Decoder(PersistentVolume)
    gc.collect()
    start = time.perf_counter()
    for line in lines:
        typed.decode(raw.decode(line).object)
    return time.perf_counter() - start


async def _through_reflector(list_body: bytes, watch_body: bytes, events: int) -> float:
    served = {"watch": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("watch") == "true":
            served["watch"] += 1
            # The first watch carries every event; a resumed one just stays open.
            return httpx.Response(200, stream=_Chunks(watch_body if served["watch"] == 1 else b"", True))
        return httpx.Response(200, content=list_body, headers={"Content-Type": "application/json"})

    client = KubeClient(
        ClusterConfig(server="https://kube.bench", verify=False),
        transport=httpx.MockTransport(handler),
        qps=0,
    )
    store: Store[PersistentVolume] = Store(
        {"storage-class": lambda pv: [pv.spec.storage_class_name] if pv.spec.storage_class_name else []}
    )
    watcher = Watcher(client, PERSISTENT_VOLUME, PersistentVolume)
    sub = store.subscribe()
    done = trio.Event()
    seen = {"apply": 0, "started": 0.0, "finished": 0.0}
    listed = {"n": 0}

    def on_event(event: WatchEvent[PersistentVolume]) -> None:
        store.apply(event)
        if isinstance(event, Apply):
            if seen["apply"] == 0:
                seen["started"] = time.perf_counter()
            seen["apply"] += 1
            if seen["apply"] == events:
                seen["finished"] = time.perf_counter()
                done.set()
        else:
            listed["n"] += 1

    async def drain() -> None:
        async for _change in sub:
            pass

    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run, on_event)
        nursery.start_soon(drain)
        await done.wait()
        # Let the subscriber catch up before stopping the clock's consumer too.
        while len(sub):
            await trio.lowlevel.checkpoint()
        drained = time.perf_counter()
        nursery.cancel_scope.cancel()
    assert len(store) > 0
    # The first event's arrival starts the clock (the list is not part of this figure).
    return max(seen["finished"], drained) - seen["started"]


def run(objects: int = 2_000, events: int = 20_000, repeat: int = 3) -> dict[str, Any]:
    doc = pv_list(objects)
    list_body = json.dumps(doc).encode()
    lines = _event_lines(doc["items"], events, 1000 + objects)
    watch_body = b"".join(lines)
    bare = min(_bare(lines) for _ in range(repeat))
    full = min(trio.run(_through_reflector, list_body, watch_body, events) for _ in range(repeat))
    return {
        "objects_in_store": objects,
        "events": events,
        "bytes_per_event": len(watch_body) // events,
        "bare_decode_events_per_s": round(events / bare),
        "reflector_events_per_s": round(events / full),
        "reflector_fraction_of_bare": round(bare / full, 2),
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Watch throughput: {r['events']:,} MODIFIED PV events ({r['bytes_per_event']:,} B each) "
            f"into a store of {r['objects_in_store']:,}",
            f"  {'bare decode (line + typed object)':44} {r['bare_decode_events_per_s']:>10,} events/s",
            f"  {'watcher + store + index + subscriber':44} {r['reflector_events_per_s']:>10,} events/s",
            f"  reflector path runs at {r['reflector_fraction_of_bare']:.0%} of the bare decode rate",
        ]
    )
