"""Watch throughput: MODIFIED events per second through the whole reflector path, against a bare decode.

The reflector path is what the operator runs, a :class:`~couchestor.kube.reflector.Reflector`: its watcher
reading the watch stream over httpx (served from memory by a mock transport, in 64 KiB chunks, so no network
or server cost is in the figure), decoding each line and its object into a typed ``PersistentVolume``, and
applying it to the store with a storage-class index; a subscriber drains the change notifications, and the
clock stops when it has received the last one and the store holds the last event.

Two baselines decode the same lines and do nothing else. The *bare* rate reads each line as any client does,
in two steps: the event (its object kept as raw bytes), then the object as a typed ``PersistentVolume``. The
*one-pass* rate reads each chunk's lines straight into typed events (``ObjectWatchEvent``), as the reflector
itself does: the least decoding these bytes need, so the reflector's fraction of it is
what the rest of the path (framing, store, index, notifications, tasks) costs.

Both sides are timed in CPU time of this process (``time.process_time``; everything runs in one thread), so
that other work on a shared machine does not count: wall time would add whatever the neighbours take.
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

from couchestor.kube.client import KubeClient
from couchestor.kube.config import ClusterConfig
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import PERSISTENT_VOLUME
from k8s_schemas import PersistentVolume
from k8s_schemas.meta import ObjectWatchEvent, RawWatchEvent
from tests.bench.objects import pv_list

CHUNK = 64 * 1024
_now = time.process_time


def _event_lines(objects: list[dict[str, Any]], events: int, base_rv: int) -> list[bytes]:
    lines = []
    for i in range(events):
        obj = objects[i % len(objects)]
        obj["metadata"]["resourceVersion"] = str(base_rv + 1 + i)
        obj["metadata"]["labels"] = {"bench/round": str(i // len(objects))}
        lines.append(json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n")
    return lines


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, body: bytes, *, then_hang: bool, clock: dict[str, float]) -> None:
        self.body = body
        self.then_hang = then_hang
        self.clock = clock

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.body:
            self.clock["first_chunk"] = _now()
        for start in range(0, len(self.body), CHUNK):
            yield self.body[start : start + CHUNK]
        if self.then_hang:
            await trio.sleep_forever()


def _bare(lines: list[bytes]) -> float:
    raw = msgspec.json.Decoder(RawWatchEvent)
    typed = msgspec.json.Decoder(PersistentVolume)
    gc.collect()
    start = _now()
    for line in lines:
        typed.decode(raw.decode(line).object)
    return _now() - start


def _one_pass(body: bytes) -> float:
    events = msgspec.json.Decoder(ObjectWatchEvent[PersistentVolume])
    # Cut where the reflector's stream is cut, each chunk's whole lines decoded in one call.
    chunks, start = [], 0
    while start < len(body):
        end = body.rfind(b"\n", start, start + CHUNK) + 1 or len(body)
        chunks.append(body[start:end])
        start = end
    gc.collect()
    begin = _now()
    for chunk in chunks:
        events.decode_lines(chunk)
    return _now() - begin


async def _through_reflector(list_body: bytes, watch_body: bytes, last_rv: str) -> float:
    clock = {"first_chunk": 0.0, "caught_up": 0.0}
    served = {"watch": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("watch") == "true":
            served["watch"] += 1
            # The first watch carries every event; a resumed one just stays open.
            body = watch_body if served["watch"] == 1 else b""
            return httpx.Response(200, stream=_Chunks(body, then_hang=True, clock=clock))
        return httpx.Response(200, content=list_body, headers={"Content-Type": "application/json"})

    client = KubeClient(
        ClusterConfig(server="https://kube.bench", verify=False),
        transport=httpx.MockTransport(handler),
        qps=0,
    )
    # What the operator runs: a Reflector, its store's apply called by the watcher for every event.
    reflector = Reflector.for_resource(
        client,
        PERSISTENT_VOLUME,
        PersistentVolume,
        indexers={
            "storage-class": lambda pv: [pv.spec.storage_class_name] if pv.spec.storage_class_name else []
        },
    )
    store = reflector.store
    sub = store.subscribe()
    done = trio.Event()

    async def drain() -> None:
        # The subscriber a controller would be: it stops the clock once the store holds the last event and
        # every change has been received.
        async for _changes in sub.batches():
            if store.resource_version == last_rv and not len(sub):
                clock["caught_up"] = _now()
                done.set()

    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(reflector.run)
        nursery.start_soon(drain)
        await done.wait()
        nursery.cancel_scope.cancel()
    assert len(store) > 0
    # The first watch chunk starts the clock (the list is not part of this figure).
    return clock["caught_up"] - clock["first_chunk"]


def run(objects: int = 2_000, events: int = 20_000, repeat: int = 3) -> dict[str, Any]:
    doc = pv_list(objects)
    list_body = json.dumps(doc).encode()
    lines = _event_lines(doc["items"], events, 1000 + objects)
    watch_body = b"".join(lines)
    last_rv = str(1000 + objects + events)
    # The fixture's dicts would otherwise sit in the heap that every full collection walks while the
    # reflector runs; the operator's own heap is frozen after its first sync (see couchestor.operator).
    del doc
    # Interleaved (bare, reflector, bare, ...) so that both see the same machine load; best of each.
    bare = one_pass = full = float("inf")
    for _ in range(repeat):
        bare = min(bare, _bare(lines))
        one_pass = min(one_pass, _one_pass(watch_body))
        gc.collect()
        full = min(full, trio.run(_through_reflector, list_body, watch_body, last_rv))
    return {
        "objects_in_store": objects,
        "events": events,
        "bytes_per_event": len(watch_body) // events,
        "bare_decode_events_per_s": round(events / bare),
        "one_pass_decode_events_per_s": round(events / one_pass),
        "reflector_events_per_s": round(events / full),
        "reflector_fraction_of_bare": round(bare / full, 2),
        "reflector_fraction_of_one_pass": round(one_pass / full, 2),
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Watch throughput: {r['events']:,} MODIFIED PV events ({r['bytes_per_event']:,} B each) "
            f"into a store of {r['objects_in_store']:,}",
            f"  {'bare decode (line, then typed object)':44} {r['bare_decode_events_per_s']:>10,} events/s",
            f"  {'one-pass decode (chunk into typed events)':44} {r['one_pass_decode_events_per_s']:>10,} events/s",
            f"  {'watcher + store + index + subscriber':44} {r['reflector_events_per_s']:>10,} events/s",
            f"  reflector path runs at {r['reflector_fraction_of_bare']:.0%} of the bare decode rate, "
            f"{r['reflector_fraction_of_one_pass']:.0%} of the one-pass rate",
        ]
    )
