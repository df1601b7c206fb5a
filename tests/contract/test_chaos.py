"""The emulator's fault-injection knobs (``/_sim/``), and the 410 paths they make reachable."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.contract.conftest import assert_status, cm, unique
from tests.contract.test_watch import watch

pytestmark = pytest.mark.chaos


@pytest.fixture
def knobs(http):
    yield http
    http.delete("/_sim/faults")


def test_watch_from_compacted_version_gets_410_error_event(knobs, target, ns):
    http = knobs
    path = f"/api/v1/namespaces/{ns}/configmaps"
    old = http.post(path, json=cm(unique("cmp"))).json()["metadata"]["resourceVersion"]
    http.post(path, json=cm(unique("cmp")))
    assert http.post("/_sim/compact").status_code == 200
    with watch(target, path, resourceVersion=old, timeoutSeconds=5) as next_event:
        ev = next_event()
        assert next_event() is None
    assert ev["type"] == "ERROR"
    status = ev["object"]
    assert status["kind"] == "Status"
    assert status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    assert status["code"] == 410
    assert status["reason"] == "Expired"
    assert status["message"].startswith(f"too old resource version: {old} (")


def test_gone_on_next_watch(knobs, target, ns):
    http = knobs
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv = http.get(path).json()["metadata"]["resourceVersion"]
    http.post("/_sim/gone-next-watch")
    with watch(target, path, resourceVersion=list_rv, timeoutSeconds=5) as next_event:
        assert next_event()["object"]["code"] == 410
    with watch(target, path, resourceVersion=list_rv, timeoutSeconds=1) as next_event:
        assert next_event() is None  # the knob fires once


def test_continue_token_after_compaction_is_410(knobs, ns):
    http = knobs
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for _ in range(3):
        http.post(path, json=cm(unique("ct")))
    token = http.get(path, params={"limit": 1}).json()["metadata"]["continue"]
    http.post(path, json=cm(unique("ct")))
    http.post("/_sim/compact")
    body = assert_status(http.get(path, params={"limit": 1, "continue": token}), 410, "Expired")
    assert "continue parameter is too old" in body["message"]


def test_drop_watches_ends_open_streams(knobs, target, ns):
    http = knobs
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv = http.get(path).json()["metadata"]["resourceVersion"]
    with watch(target, path, resourceVersion=list_rv, timeoutSeconds=30) as next_event:
        started = time.monotonic()
        http.post("/_sim/drop-watches")
        assert next_event() is None
        assert time.monotonic() - started < 10


def test_reset_watches_breaks_open_streams_mid_response(knobs, target, ns):
    http = knobs
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv = http.get(path).json()["metadata"]["resourceVersion"]
    with watch(target, path, resourceVersion=list_rv, timeoutSeconds=30) as next_event:
        http.post(path, json=cm(unique("rst")))
        assert next_event()["type"] == "ADDED"  # the stream is flowing
        assert http.post("/_sim/reset-watches").status_code == 200
        # Not an end of stream: the connection closes inside the chunked body.
        with pytest.raises(httpx.RemoteProtocolError):
            next_event()


def test_freeze_watches_keeps_streams_open_and_silent(knobs, target, ns):
    http = knobs
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv = http.get(path).json()["metadata"]["resourceVersion"]
    params = {
        "watch": "true",
        "resourceVersion": list_rv,
        "timeoutSeconds": "2",
        "allowWatchBookmarks": "true",
    }
    with (
        target.client(httpx.Timeout(10.0, read=4.0)) as client,
        client.stream("GET", path, params=params) as r,
    ):
        assert http.post("/_sim/freeze-watches").status_code == 200
        http.post(path, json=cm(unique("frz")))
        # Neither the event, nor a bookmark, nor the end at timeoutSeconds: nothing until the reader gives up.
        with pytest.raises(httpx.ReadTimeout):
            r.read()


def test_fault_429_with_retry_after_then_recovers(knobs, ns):
    http = knobs
    spec = {
        "status": 429,
        "retryAfter": 3,
        "method": "GET",
        "pathRegex": f"/namespaces/{ns}/configmaps$",
        "count": 2,
    }
    assert http.post("/_sim/faults", content=json.dumps(spec)).status_code == 200
    for _ in range(2):
        r = http.get(f"/api/v1/namespaces/{ns}/configmaps")
        body = assert_status(r, 429, "TooManyRequests")
        assert r.headers["Retry-After"] == "3"
        assert body["details"]["retryAfterSeconds"] == 3
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps").status_code == 200


def test_fault_only_matches_its_method_and_path(knobs, ns):
    http = knobs
    http.post("/_sim/faults", content=json.dumps({"status": 503, "method": "POST", "count": -1}))
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps").status_code == 200
    assert_status(
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(unique("f"))), 503, "ServiceUnavailable"
    )
    assert_status(http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(unique("f"))), 503)
    http.delete("/_sim/faults")
    assert http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(unique("f"))).status_code == 201


def test_fault_500_on_watch_requests_only(knobs, target, ns):
    http = knobs
    http.post("/_sim/faults", content=json.dumps({"status": 500, "watch": True}))
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert http.get(path).status_code == 200
    assert_status(http.get(path, params={"watch": "true", "timeoutSeconds": 1}), 500, "InternalError")


def test_latency_fault_delays_without_failing(knobs, ns):
    http = knobs
    http.post("/_sim/faults", content=json.dumps({"latency": 0.3, "pathRegex": "/version"}))
    started = time.monotonic()
    assert http.get("/version").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_bad_fault_spec_is_400(knobs):
    assert knobs.post("/_sim/faults", content=json.dumps({"colour": "red"})).status_code == 400


@pytest.mark.parametrize("body", ["{}", '{"limit": 0}', '{"limit": "10"}', '{"limit": true}', "[1]", "{"])
def test_bad_history_spec_is_400(knobs, body):
    before = knobs.get("/_sim/state").json()["historyLimit"]
    assert knobs.post("/_sim/history", content=body).status_code == 400
    assert knobs.get("/_sim/state").json()["historyLimit"] == before
