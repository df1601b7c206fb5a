"""One initial sync in a process of its own, for the resident-memory comparison of ``tests.bench.sync``.

``python -m tests.bench.sync_process MODE KUBECONFIG EXPECTED`` lists and watches every PersistentVolume of the
cluster into an in-memory cache the way MODE does it, waits until the cache holds ``EXPECTED`` objects and has
been quiet for a second, then prints one JSON line: the process's resident set size and the seconds the sync
took since the process started its client. MODE is one of:

- ``couchestor``: :class:`~couchestor.kube.reflector.Reflector` (typed Structs in a Store);
- ``kubernetes``: the official client's list (pages of 500) into a dict, then a watch started on it;
- ``kopf``: a minimal kopf operator (``--standalone``) whose ``@kopf.index`` keeps each PV's body, which is
  how a kopf operator keeps a cache of objects it does not own.

Run with ``EXPECTED`` = 0 against an empty cluster, it gives the baseline RSS of the same program.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from tests.bench.processes import rss_bytes

QUIET = 1.0


def _done(started: float, count: int) -> None:
    print(json.dumps({"rss_bytes": rss_bytes(), "seconds": time.perf_counter() - started, "objects": count}))
    sys.stdout.flush()
    os._exit(0)


def _couchestor(kubeconfig: str, expected: int) -> None:
    import trio

    from couchestor.kube.client import KubeClient
    from couchestor.kube.config import load_kubeconfig
    from couchestor.kube.reflector import Reflector
    from couchestor.kube.resources import PERSISTENT_VOLUME
    from k8s_schemas import PersistentVolume

    async def main() -> None:
        started = time.perf_counter()
        async with KubeClient(load_kubeconfig([__import__("pathlib").Path(kubeconfig)]), qps=0) as client:
            reflector = Reflector.for_resource(client, PERSISTENT_VOLUME, PersistentVolume)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reflector.run)
                await reflector.store.wait_synced()
                while len(reflector.store) < expected:
                    await trio.sleep(0.05)
                took = time.perf_counter() - started
                await trio.sleep(QUIET)  # the watch is open and idle: measure the steady state
                print(
                    json.dumps({"rss_bytes": rss_bytes(), "seconds": took, "objects": len(reflector.store)})
                )
                sys.stdout.flush()
                os._exit(0)

    trio.run(main)


def _kubernetes(kubeconfig: str, expected: int) -> None:
    from kubernetes import client as k8s, config as k8s_config, watch  # type: ignore[import-not-found, unused-ignore]

    started = time.perf_counter()
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
    cache: dict[str, Any] = {}
    token = None
    while True:
        page = api.list_persistent_volume(limit=500, _continue=token)
        for item in page.items:
            cache[item.metadata.name] = item
        token = page.metadata._continue
        if not token:
            break
    rv = page.metadata.resource_version
    took = time.perf_counter() - started
    # Start the watch (it returns nothing new in a quiet cluster) so the measured process has one open.
    stream = watch.Watch().stream(api.list_persistent_volume, resource_version=rv, timeout_seconds=1)
    for _event in stream:
        pass
    assert len(cache) >= expected
    print(json.dumps({"rss_bytes": rss_bytes(), "seconds": took, "objects": len(cache)}))
    sys.stdout.flush()
    os._exit(0)


def _kopf(kubeconfig: str, expected: int) -> None:
    import asyncio
    import logging

    import kopf  # type: ignore[import-not-found, unused-ignore]
    import yaml

    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    with open(kubeconfig) as f:
        server = yaml.safe_load(f)["clusters"][0]["cluster"]["server"]

    @kopf.on.login()
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The emulator's kubeconfig has no credentials, which kopf's own kubeconfig login refuses.
        return kopf.ConnectionInfo(server=server)

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # no Events: the comparison is about the cache
        settings.watching.server_timeout = 300
        settings.batching.batch_window = 0.0  # do not hold each object back 0.1 s for more events

    @kopf.index("persistentvolumes", id="by_name")
    def by_name(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {name: dict(body)}

    @kopf.on.startup()
    async def report(by_name: kopf.Index[str, dict[str, Any]], **_: Any) -> None:
        async def poll() -> None:
            last, since = -1, time.perf_counter()
            while True:
                await asyncio.sleep(0.05)
                count = len(by_name)
                if count != last:
                    last, since = count, time.perf_counter()
                elif count >= expected and time.perf_counter() - since >= QUIET:
                    _done(started, count)

        asyncio.get_running_loop().create_task(poll())

    kopf.configure(quiet=True)
    kopf.run(standalone=True, clusterwide=True)


def main() -> None:
    mode, kubeconfig, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"couchestor": _couchestor, "kubernetes": _kubernetes, "kopf": _kopf}[mode](kubeconfig, expected)


if __name__ == "__main__":
    main()
