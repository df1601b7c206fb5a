"""Initial sync: list a cluster's PersistentVolumes in pages of 500 into memory, three ways, same emulator.

The API server emulator runs in its own process (``couchestor sim apiserver``) holding ``n`` realistic PVs
(:mod:`tests.bench.objects`, managedFields included). Against it, one after the other:

- **raw pages** (the floor): httpx downloads the same ``limit=500`` pages, following ``continue`` tokens,
  without decoding; "retained" is the size of the bodies, what keeping them undecoded would cost;
- **couchestor Reflector**: :class:`~couchestor.kube.reflector.Reflector` over ``PersistentVolume`` Structs
  until its store is synced (the watch it starts next is not part of the figure);
- **kubernetes client**: the official client's ``list_persistent_volume(limit=500, _continue=...)`` into a dict
  by name, as an informer cache holds them (only when the ``bench`` extra is installed).

Then each way once more, each in a process of its own (:mod:`tests.bench.sync_process`), kopf included: a
minimal kopf operator keeping an index of the PVs. The figure is the resident set size with ``resident_n``
PVs minus the same program's with none. kopf handles each object in a task of its own and is slow at this
(over 10 ms per object on the development machine), so this part uses fewer objects than the in-process one.

Time is the best of ``repeat`` runs without tracing, the ways' runs interleaved so they share the machine's
load (:func:`tests.bench.timing.best_times`); retained memory is what tracemalloc still counts once the
sync is over and the cache is the only thing kept (one extra traced run each). Both are per process, so the
emulator's own work is never in them.
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import PERSISTENT_VOLUME
from k8s_schemas import PersistentVolume
from tests.bench.objects import pv_list
from tests.bench.processes import stop
from tests.bench.timing import best_times

_CONTINUE = re.compile(rb'"continue":"([^"]*)"')


@contextmanager
def _emulator(directory: Path) -> Iterator[tuple[str, Path]]:
    kubeconfig = directory / "kubeconfig"
    log_path = directory / "apiserver.log"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "couchestor", "sim", "apiserver", "--port", "0"),
                *("--kubeconfig-out", str(kubeconfig), "--history", "100000"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            text = log_path.read_text()
            found = [line for line in text.splitlines() if "listening on " in line]
            if found and kubeconfig.exists():
                yield found[0].rsplit("listening on ", 1)[1].strip(), kubeconfig
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API server emulator did not start: {text[-2000:]}")
            time.sleep(0.05)
    finally:
        stop(proc, timeout=10)


async def _populate(url: str, n: int, start: int = 0) -> None:
    """Create PVs ``start`` .. ``n - 1`` of ``pv_list(n)`` (the same names whatever ``n``)."""
    items = pv_list(n)["items"][start:]
    for item in items:
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            item["metadata"].pop(key, None)
    bodies = iter(items)

    async def worker(client: httpx.AsyncClient) -> None:
        for body in bodies:
            response = await client.post("/api/v1/persistentvolumes", content=json.dumps(body))
            if response.status_code != 201:
                raise RuntimeError(f"creating a PV failed: {response.status_code} {response.text[:300]}")

    async with httpx.AsyncClient(base_url=url, timeout=60) as client, trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(worker, client)


async def _raw(url: str) -> int:
    """Download every page; return the bytes downloaded."""
    total = 0
    token = ""
    # verify=False, as KubeClient does for a plain-http server: a default client loads the CA bundle, which
    # costs 30-180 ms per run on the development machine and would inflate the floor.
    async with httpx.AsyncClient(base_url=url, timeout=60, verify=False) as client:
        while True:
            params = {"limit": "500"} | ({"continue": token} if token else {})
            body = (await client.get("/api/v1/persistentvolumes", params=params)).content
            total += len(body)
            found = _CONTINUE.search(body)
            token = found.group(1).decode() if found else ""
            if not token:
                return total


async def _reflector(kubeconfig: Path) -> Any:
    async with KubeClient(load_kubeconfig([kubeconfig]), qps=0, timeout=60) as client:
        reflector = Reflector.for_resource(client, PERSISTENT_VOLUME, PersistentVolume)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reflector.run)
            await reflector.store.wait_synced()
            nursery.cancel_scope.cancel()
    return reflector.store


def _kubernetes_client(kubeconfig: Path) -> Callable[[], Any] | None:
    try:
        from kubernetes import client as k8s, config as k8s_config  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(kubeconfig)))

    def sync() -> dict[str, Any]:
        cache: dict[str, Any] = {}
        token = None
        while True:
            page = api.list_persistent_volume(limit=500, _continue=token)
            for item in page.items:
                cache[item.metadata.name] = item
            token = page.metadata._continue
            if not token:
                return cache

    return sync


def _retained(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(traced bytes still held once ``fn`` returned and garbage was collected, what ``fn`` returned)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return retained, result


def _in_process(mode: str, kubeconfig: Path, expected: int) -> dict[str, Any]:
    """Run ``tests.bench.sync_process`` and return its JSON line."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bench.sync_process", mode, str(kubeconfig), str(expected)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} sync process failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _modes() -> list[tuple[str, str]]:
    modes = [("couchestor", "couchestor Reflector + Store")]
    for mode, name in (
        ("kubernetes", "kubernetes client list+watch into dict"),
        ("kopf", "kopf operator with an index of PVs"),
    ):
        try:
            __import__(mode)
        except ImportError:
            continue
        modes.append((mode, name))
    return modes


def _resident(kubeconfig: Path, url: str, n: int) -> dict[str, Any]:
    """Resident memory per object of each way, each in its own process: RSS with n PVs minus RSS with none."""
    modes = _modes()
    base = {mode: _in_process(mode, kubeconfig, 0)["rss_bytes"] for mode, _ in modes}
    trio.run(_populate, url, n)
    rows = []
    for mode, name in modes:
        got = _in_process(mode, kubeconfig, n)
        rows.append(
            {
                "name": name,
                "seconds": round(got["seconds"], 2),
                "rss_empty_mib": round(base[mode] / 2**20, 1),
                "rss_mib": round(got["rss_bytes"] / 2**20, 1),
                "bytes_per_object": (got["rss_bytes"] - base[mode]) // n,
            }
        )
    ours = max(rows[0]["bytes_per_object"], 1)
    for row in rows:
        row["per_object_vs_couchestor"] = round(row["bytes_per_object"] / ours, 2)
    return {"objects": n, "figures": rows}


def run(n: int = 10_000, repeat: int = 3, resident_n: int = 2_000) -> dict[str, Any]:
    resident_n = min(resident_n, n)
    with (
        tempfile.TemporaryDirectory(prefix="couchestor-bench-") as tmp,
        _emulator(Path(tmp)) as (url, kubeconfig),
    ):
        resident = _resident(kubeconfig, url, resident_n)
        trio.run(_populate, url, n, resident_n)
        if n > resident_n:
            # The scaling slope: the same Reflector process at n objects against the resident_n point.
            small = resident["figures"][0]
            large = _in_process("couchestor", kubeconfig, n)
            resident["scaling"] = {
                "from_objects": resident_n,
                "to_objects": n,
                "from_rss_mib": small["rss_mib"],
                "to_rss_mib": round(large["rss_bytes"] / 2**20, 1),
                "mib_per_1000": round(
                    (large["rss_bytes"] / 2**20 - small["rss_mib"]) / ((n - resident_n) / 1000), 2
                ),
            }
        # Times first, all ways interleaved (see best_times), then one traced run each for retained memory.
        contenders: dict[str, tuple[Callable[[], Any], int]] = {
            "raw pages, undecoded (floor)": (lambda: trio.run(_raw, url), repeat),
            "couchestor Reflector + Store": (lambda: trio.run(_reflector, kubeconfig), repeat),
        }
        k8s = _kubernetes_client(kubeconfig)
        if k8s is not None:
            contenders["kubernetes client list into dict"] = (k8s, max(1, repeat - 1))
        times = best_times(contenders)
        rows = [{"name": name, "seconds": seconds} for name, seconds in times.items()]
        rows[0]["retained_bytes"] = trio.run(_raw, url)
        retained, store = _retained(contenders["couchestor Reflector + Store"][0])
        assert len(store) == n, len(store)
        rows[1]["retained_bytes"] = retained
        del store
        if k8s is not None:
            retained, cache = _retained(k8s)
            assert len(cache) == n, len(cache)
            rows[2]["retained_bytes"] = retained
            del cache
    floor, ours = rows[0], rows[1]
    return {
        "resident": resident,
        "objects": n,
        "page_size": 500,
        "figures": [
            {
                "name": r["name"],
                "seconds": round(r["seconds"], 3),
                "retained_mib": round(r["retained_bytes"] / 2**20, 1),
                "bytes_per_object": r["retained_bytes"] // n,
                "time_vs_floor": round(r["seconds"] / floor["seconds"], 2),
                "retained_vs_couchestor": round(r["retained_bytes"] / ours["retained_bytes"], 2),
            }
            for r in rows
        ],
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        f"Initial sync: list {r['objects']:,} PVs in pages of {r['page_size']} from the emulator (own process)",
        f"  {'':34} {'time':>9} {'x floor':>8} {'retained':>10} {'per object':>11} {'x ours':>7}",
    ]
    for f in r["figures"]:
        lines.append(
            f"  {f['name']:34} {f['seconds']:8.2f}s {f['time_vs_floor']:7.2f}x {f['retained_mib']:8.1f}Mi"
            f" {f['bytes_per_object']:>9,} B {f['retained_vs_couchestor']:6.2f}x"
        )
    lines.append("  (x floor = time / raw download time; x ours = retained memory / the Reflector's store)")
    res = r["resident"]
    lines += [
        f"  Each in its own process, {res['objects']:,} PVs (resident memory with them minus with none):",
        f"  {'':40} {'sync':>8} {'RSS empty':>10} {'RSS':>8} {'per object':>11} {'x ours':>7}",
    ]
    for f in res["figures"]:
        lines.append(
            f"  {f['name']:40} {f['seconds']:7.2f}s {f['rss_empty_mib']:8.1f}Mi {f['rss_mib']:6.1f}Mi"
            f" {f['bytes_per_object']:>9,} B {f['per_object_vs_couchestor']:6.2f}x"
        )
    scaling = res.get("scaling")
    if scaling:
        lines.append(
            f"  Reflector process RSS {scaling['from_rss_mib']:.1f}Mi at {scaling['from_objects']:,} PVs, "
            f"{scaling['to_rss_mib']:.1f}Mi at {scaling['to_objects']:,}: "
            f"{scaling['mib_per_1000']:.2f} MiB per 1,000 PVs"
        )
    return "\n".join(lines)
