"""The operator's HTTP endpoints, served for real by hypercorn on a loopback port."""

import json

import httpx
import pytest
from trio_websocket import open_websocket_url

from couchestor.endpoints import EndpointsApp, Feed, Health, serve_asgi
from couchestor.metrics import OperatorMetrics


@pytest.fixture
async def served(nursery):
    clock_now = [0.0]
    health = Health(clock=lambda: clock_now[0])
    feed = Feed(buffer=4)
    metrics = OperatorMetrics()
    url = await nursery.start(serve_asgi, EndpointsApp(metrics, health, feed), "127.0.0.1:0")
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        yield client, url, health, feed, metrics, clock_now


async def test_readyz_waits_for_every_gate(served):
    client, _, health, *_ = served
    assert (await client.get("/readyz")).status_code == 503
    health.gate("stores", "PersistentVolume not synced")
    health.gate("prometheus", None)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert "PersistentVolume not synced" in response.text
    health.gate("stores", None)
    assert (await client.get("/readyz")).status_code == 200


async def test_healthz_fails_when_a_task_stops_making_progress(served):
    client, _, health, _, _, now = served
    health.expect("reconciler", max_silence=60)
    assert (await client.get("/healthz")).status_code == 200
    now[0] = 61
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert "reconciler: no progress" in response.text
    health.beat("reconciler")
    assert (await client.get("/healthz")).status_code == 200


async def test_metrics_exposes_the_documented_names(served):
    client, _, _, _, metrics, _ = served
    metrics.reconcile_total.inc()
    metrics.migrations_total.labels(status="success").inc(2)
    metrics.active_migrations.set(1)
    text = (await client.get("/metrics")).text
    assert "storage_operator_reconcile_total 1.0" in text
    assert 'storage_operator_migrations_total{status="success"} 2.0' in text
    assert "storage_operator_active_migrations 1.0" in text


async def test_unknown_path_is_404(served):
    client, *_ = served
    assert (await client.get("/nope")).status_code == 404


async def test_feed_replays_retained_events_then_streams(served):
    _, url, _, feed, _, _ = served
    feed.publish({"kind": "summary", "n": 1}, retain_as="summary")
    async with open_websocket_url(url.replace("http", "ws") + "/feed") as ws:
        assert json.loads(await ws.get_message()) == {"kind": "summary", "n": 1}
        feed.publish({"kind": "decision", "volume": "pvc-1"})
        assert json.loads(await ws.get_message())["volume"] == "pvc-1"


async def test_slow_feed_subscriber_is_dropped_not_waited_for():
    feed = Feed(buffer=2)
    receiver = feed.subscribe()
    for i in range(5):
        feed.publish({"i": i})  # never blocks, even though nobody reads
    received = [json.loads(text)["i"] async for text in receiver]
    assert received == [0, 1]


async def test_health_uses_trio_clock_by_default(mock_clock):
    health = Health()
    health.expect("watch", 5)
    mock_clock.jump(4)
    assert health.liveness() == []
    mock_clock.jump(2)
    assert health.liveness() == ["watch: no progress for 6s (limit 5s)"]
