"""The client against a real kube-apiserver (1.28, from envtest), through a CONNECT proxy on loopback that can
freeze or reset its tunnels: what a real network does to long-lived watches."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from couchestor.kube.backoff import BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.errors import TLSFailure
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import CONFIG_MAP, NAMESPACE
from couchestor.kube.watcher import WatcherError, Watching
from couchestor.sim.controlplane import ControlPlane
from tests.kube.mock import wait_for
from tests.kube.tunnel import ConnectProxy

pytestmark = pytest.mark.slow

# A backoff no test can wait out: a stream end counted as a failure to connect would stall the test.
NO_BACKOFF_EXPECTED = BackoffPolicy(initial=120.0, cap=120.0, reset_after=600.0)


@pytest.fixture
def real_kubeconfig(real_cluster: ControlPlane) -> Path:
    return real_cluster.kubeconfig


def with_cluster(kubeconfig: Path, target: Path, **cluster: str) -> Path:
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["clusters"][0]["cluster"].update(cluster)
    target.write_text(yaml.safe_dump(doc))
    return target


@pytest.fixture
async def direct(real_kubeconfig: Path) -> AsyncIterator[KubeClient]:
    async with KubeClient(load_kubeconfig([real_kubeconfig]), qps=0) as client:
        yield client


async def namespace(client: KubeClient) -> str:
    name = f"net-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACE, {"metadata": {"name": name}}, type=dict)
    return name


def configmap(ns: str, name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "data": {"v": "1"}}


def watched(client: KubeClient, ns: str, failures: list[WatcherError], **watcher: Any) -> Reflector[Any]:
    reflector: Reflector[Any] = Reflector.for_resource(
        client, CONFIG_MAP, dict, namespace=ns, on_error=failures.append
    )
    reflector.watcher.backoff = NO_BACKOFF_EXPECTED
    for name, value in watcher.items():
        setattr(reflector.watcher, name, value)
    return reflector


async def test_idle_watch_is_ended_by_the_server_not_the_deadline(direct: KubeClient) -> None:
    # A real server sends nothing at all on an idle watch: no bookmark, no event.
    ns = await namespace(direct)
    failures: list[WatcherError] = []
    reflector = watched(direct, ns, failures, progress_timeout=8.0)  # idle streams: 4-6 s
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reflector.run)
        await wait_for(lambda: reflector.stats.watches >= 4, limit=40)
        nursery.cancel_scope.cancel()
    assert (reflector.stats.stalls, reflector.stats.errors, failures) == (0, 0, [])


async def test_frozen_connection_is_noticed_and_the_watch_resumes(
    nursery: trio.Nursery, direct: KubeClient, real_kubeconfig: Path, tmp_path: Path
) -> None:
    ns = await namespace(direct)
    proxy = ConnectProxy()
    await nursery.start(proxy.serve)
    proxied = with_cluster(real_kubeconfig, tmp_path / "kubeconfig", **{"proxy-url": proxy.url})
    failures: list[WatcherError] = []
    async with KubeClient(load_kubeconfig([proxied]), qps=0) as client, trio.open_nursery() as inner:
        reflector = watched(client, ns, failures, progress_timeout=6.0, min_timeout=300, max_timeout=301)
        inner.start_soon(reflector.run)
        await wait_for(lambda: isinstance(reflector.watcher.state, Watching), limit=20)
        tunnels = len(proxy.targets)
        proxy.freeze()  # the flow is dropped silently: no FIN, no RST, no byte
        await direct.create(CONFIG_MAP, configmap(ns, "after-freeze"), ns, type=dict)
        # Without the deadline the stream would stay open until timeoutSeconds + 30 s, about 5 minutes.
        await wait_for(lambda: reflector.store.get("after-freeze", ns) is not None, limit=20)
        inner.cancel_scope.cancel()
    assert reflector.stats.stalls >= 1
    assert reflector.stats.errors == 0
    assert len(proxy.targets) > tunnels  # a new connection


async def test_reset_connection_resumes_at_once(
    nursery: trio.Nursery, direct: KubeClient, real_kubeconfig: Path, tmp_path: Path
) -> None:
    ns = await namespace(direct)
    proxy = ConnectProxy()
    await nursery.start(proxy.serve)
    proxied = with_cluster(real_kubeconfig, tmp_path / "kubeconfig", **{"proxy-url": proxy.url})
    failures: list[WatcherError] = []
    async with KubeClient(load_kubeconfig([proxied]), qps=0) as client, trio.open_nursery() as inner:
        reflector = watched(client, ns, failures, progress_timeout=30.0)  # idle streams: 15-22 s
        inner.start_soon(reflector.run)
        for n in range(3):
            await wait_for(lambda: isinstance(reflector.watcher.state, Watching), limit=20)
            await trio.sleep(1.5)  # established: longer than a watch the server drops at once
            proxy.reset()  # TCP RST
            name = f"after-reset-{n}"
            await direct.create(CONFIG_MAP, configmap(ns, name), ns, type=dict)
            await wait_for(lambda name=name: reflector.store.get(name, ns) is not None, limit=15)
        inner.cancel_scope.cancel()
    assert reflector.stats.errors == 0
    assert reflector.stats.interruptions >= 3
    assert all(f.interrupted for f in failures)


async def test_tls_server_name_is_checked_against_the_real_certificate(
    real_kubeconfig: Path, tmp_path: Path
) -> None:
    good = with_cluster(real_kubeconfig, tmp_path / "good", **{"tls-server-name": "kubernetes.default.svc"})
    async with KubeClient(load_kubeconfig([good]), qps=0) as client:
        await client.list_all(NAMESPACE, type=dict)
    bad = with_cluster(real_kubeconfig, tmp_path / "bad", **{"tls-server-name": "wrong.example"})
    async with KubeClient(load_kubeconfig([bad]), qps=0) as client:
        with trio.fail_after(10), pytest.raises(TLSFailure) as info:
            await client.list_all(NAMESPACE, type=dict)
    message = str(info.value)
    assert "certificate is not valid for 'wrong.example'" in message
    assert "CA: cluster 'envtest' certificate-authority-data" in message
