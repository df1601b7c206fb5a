"""``python -m tests.apiserver.bench [N]``: LIST throughput and memory per stored object of the emulator.

Reports objects/s of a LIST of N PersistentVolumes through ``limit=500`` pages over HTTP (client decoding
included), the time to stream them all as a watch from resourceVersion 0, and the traced memory per stored
PV (tracemalloc; the store plus its bounded change history).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

import httpx
import trio

from couchestor.sim.apiserver import ApiServer, serve


def pv(i: int) -> dict:
    uid = f"{i:08d}-0000-4000-8000-000000000000"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{uid}",
            "labels": {"storage.billyronks.io/tier": "hot" if i % 2 else "cold"},
        },
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "mayastor",
            "persistentVolumeReclaimPolicy": "Delete",
            "csi": {"driver": "io.openebs.csi-mayastor", "volumeHandle": uid, "fsType": "ext4"},
            "claimRef": {
                "namespace": "default",
                "name": f"data-{i}",
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
            },
        },
    }


def fill(api: ApiServer, n: int) -> None:
    rt = api.cluster.registry.get("", "v1", "persistentvolumes")
    assert rt is not None
    for i in range(n):
        api.cluster.create(rt, "", pv(i))


def memory_per_object(n: int) -> float:
    gc.collect()
    tracemalloc.start()
    api = ApiServer()
    before = tracemalloc.get_traced_memory()[0]
    fill(api, n)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / n


async def list_and_watch(n: int) -> tuple[float, float, float]:
    api = ApiServer()
    started = time.perf_counter()
    fill(api, n)
    create_s = time.perf_counter() - started
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, api)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            started = time.perf_counter()
            count, token = 0, ""
            while True:
                params = {"limit": "500", **({"continue": token} if token else {})}
                body = (await client.get("/api/v1/persistentvolumes", params=params)).json()
                count += len(body["items"])
                token = body["metadata"].get("continue", "")
                if not token:
                    break
            list_s = time.perf_counter() - started
            assert count == n
            started = time.perf_counter()
            seen = 0
            params = {"watch": "1", "resourceVersion": "0", "timeoutSeconds": "60"}
            async with client.stream("GET", "/api/v1/persistentvolumes", params=params) as stream:
                async for _ in stream.aiter_lines():
                    seen += 1
                    if seen == n:
                        break
            watch_s = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return create_s, list_s, watch_s


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 10_000
    create_s, list_s, watch_s = trio.run(list_and_watch, n)
    print(f"create {n} PVs in-process: {n / create_s:,.0f} objects/s")
    print(f"LIST {n} PVs, limit=500 pages over HTTP: {n / list_s:,.0f} objects/s ({list_s:.2f} s)")
    print(f"WATCH from resourceVersion 0, {n} ADDED events: {n / watch_s:,.0f} events/s")
    print(f"memory per stored PV (tracemalloc, incl. history): {memory_per_object(n):,.0f} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
