"""WATCH: initial events, replay from a resourceVersion, selectors, bookmarks, timeouts."""

from __future__ import annotations

import json
from contextlib import contextmanager

import httpx

from tests.contract.conftest import cm, rv, unique


@contextmanager
def watch(target, path, **params):
    """An open watch; yields a function returning the next event (or None at end of stream)."""
    params = {"watch": "true", **params}
    with (
        target.client(httpx.Timeout(20.0, connect=10.0)) as client,
        client.stream("GET", path, params=params) as r,
    ):
        assert r.status_code == 200, r.read()
        lines = r.iter_lines()

        def next_event():
            for line in lines:
                if line.strip():
                    return json.loads(line)
            return None

        yield next_event


@contextmanager
def history_limit(http, target, limit):
    """On the emulator, keep only ``limit`` changes of history meanwhile; nothing on a real server."""
    if not target.emulator:
        yield
        return
    before = http.get("/_sim/state").json()["historyLimit"]
    http.post("/_sim/history", json={"limit": limit}).raise_for_status()
    try:
        yield
    finally:
        http.post("/_sim/history", json={"limit": before}).raise_for_status()


def _events_until(next_event, predicate, limit=50):
    out = []
    for _ in range(limit):
        ev = next_event()
        if ev is None:
            break
        out.append(ev)
        if predicate(ev):
            break
    return out


def test_watch_from_zero_starts_with_synthetic_added(http, target, ns):
    tag = unique("w0")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for i in range(3):
        http.post(path, json=cm(f"{tag}-{i}", labels={"set": tag}))
    with watch(target, path, resourceVersion="0", labelSelector=f"set={tag}", timeoutSeconds=5) as next_event:
        events = [next_event() for _ in range(3)]
    assert [e["type"] for e in events] == ["ADDED"] * 3
    assert sorted(e["object"]["metadata"]["name"] for e in events) == [f"{tag}-{i}" for i in range(3)]


def test_watch_from_list_rv_sees_changes_in_order(http, target, ns):
    tag = unique("wl")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv = http.get(path, params={"labelSelector": f"set={tag}"}).json()["metadata"]["resourceVersion"]
    with watch(
        target, path, resourceVersion=list_rv, labelSelector=f"set={tag}", timeoutSeconds=10
    ) as next_event:
        created = http.post(path, json=cm(f"{tag}-x", labels={"set": tag})).json()
        http.put(f"{path}/{tag}-x", json=dict(created, data={"k": "2"}))
        http.delete(f"{path}/{tag}-x")
        events = _events_until(next_event, lambda e: e["type"] == "DELETED")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [rv(e["object"]) for e in events]
    assert rvs == sorted(rvs)
    assert len(set(rvs)) == 3
    assert rvs[0] > int(list_rv)
    assert events[1]["object"]["data"] == {"k": "2"}


def test_watch_replays_history_after_a_resource_version(http, target, ns):
    tag = unique("wr")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    first = http.post(path, json=cm(f"{tag}-1", labels={"set": tag})).json()
    http.post(path, json=cm(f"{tag}-2", labels={"set": tag}))
    http.delete(f"{path}/{tag}-1")
    with watch(
        target,
        path,
        resourceVersion=first["metadata"]["resourceVersion"],
        labelSelector=f"set={tag}",
        timeoutSeconds=5,
    ) as next_event:
        events = _events_until(next_event, lambda e: e["type"] == "DELETED")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", f"{tag}-2"),
        ("DELETED", f"{tag}-1"),
    ]


def test_watch_with_selector_sees_objects_enter_and_leave(http, target, ns):
    tag = unique("ws")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = http.post(path, json=cm(f"{tag}-x", labels={"set": tag, "state": "off"})).json()
    start = created["metadata"]["resourceVersion"]
    with watch(
        target, path, resourceVersion=start, labelSelector=f"set={tag},state=on", timeoutSeconds=10
    ) as next_event:
        on = http.patch(
            f"{path}/{tag}-x",
            content=json.dumps({"metadata": {"labels": {"state": "on"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        ).json()
        off = http.patch(
            f"{path}/{tag}-x",
            content=json.dumps({"metadata": {"labels": {"state": "off"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        ).json()
        events = _events_until(next_event, lambda e: e["type"] == "DELETED")
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert events[0]["object"]["metadata"]["resourceVersion"] == on["metadata"]["resourceVersion"]
    # Leaving the selection: the last state that matched, at the version of the write that moved it.
    assert events[1]["object"]["metadata"]["labels"]["state"] == "on"
    assert events[1]["object"]["metadata"]["resourceVersion"] == off["metadata"]["resourceVersion"]


def test_watch_ends_after_timeout_seconds(http, target, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv = http.get(path).json()["metadata"]["resourceVersion"]
    with watch(
        target, path, resourceVersion=list_rv, fieldSelector="metadata.name=never-exists", timeoutSeconds=1
    ) as next_event:
        ev = next_event()
    assert ev is None


def _bookmark_watch(http, target, ns, write=None):
    """The events of a 5 s watch selecting nothing, allowing bookmarks; ``write`` runs once it is open."""
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv = int(http.get(path).json()["metadata"]["resourceVersion"])
    with watch(
        target,
        path,
        resourceVersion=str(list_rv),
        allowWatchBookmarks="true",
        timeoutSeconds=5,
        fieldSelector="metadata.name=never-exists",
    ) as next_event:
        written = write() if write else None
        events = _events_until(next_event, lambda e: False)
    return list_rv, written, events


def test_idle_watch_gets_no_bookmark(http, target, ns):
    _, _, events = _bookmark_watch(http, target, ns)
    assert events == []


def test_bookmark_comes_before_the_timeout_once_the_resource_changed(http, target, ns):
    """One about 2 s before ``timeoutSeconds`` ends, carrying the write's version and only metadata."""
    path = f"/api/v1/namespaces/{ns}/configmaps"
    list_rv, written, events = _bookmark_watch(
        http, target, ns, lambda: http.post(path, json=cm(unique("bm"))).json()
    )
    assert events, "no bookmark"
    assert {e["type"] for e in events} == {"BOOKMARK"}
    obj = events[0]["object"]
    assert obj["kind"] == "ConfigMap"
    assert obj["apiVersion"] == "v1"
    assert obj["metadata"] == {
        "resourceVersion": written["metadata"]["resourceVersion"],
        "creationTimestamp": None,
    }
    assert int(obj["metadata"]["resourceVersion"]) > list_rv


def test_watch_of_single_object_by_field_selector(http, target, ns):
    tag = unique("wf")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    a = http.post(path, json=cm(f"{tag}-a")).json()
    with watch(
        target,
        path,
        resourceVersion=a["metadata"]["resourceVersion"],
        fieldSelector=f"metadata.name={tag}-b",
        timeoutSeconds=10,
    ) as next_event:
        http.post(path, json=cm(f"{tag}-c"))
        http.post(path, json=cm(f"{tag}-b"))
        ev = next_event()
    assert ev["type"] == "ADDED"
    assert ev["object"]["metadata"]["name"] == f"{tag}-b"


def test_a_resource_not_written_since_a_version_is_still_watched_from_it(http, target, ns):
    """Writes of one resource do not expire the versions of another: the real API server keeps a watch cache
    per resource. (The emulator keeps 100 changes of history here, far fewer than the writes.)"""
    tag = unique("wq")
    secrets = f"/api/v1/namespaces/{ns}/secrets"
    configmaps = f"/api/v1/namespaces/{ns}/configmaps"

    def secret(name):
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": {"set": tag}}}

    with history_limit(http, target, 100):
        quiet = http.post(secrets, json=secret(f"{tag}-a")).json()["metadata"]["resourceVersion"]
        for i in range(150):
            assert http.post(configmaps, json=cm(f"{tag}-{i}")).status_code == 201
        with watch(
            target, secrets, resourceVersion=quiet, labelSelector=f"set={tag}", timeoutSeconds=10
        ) as ev:
            http.post(secrets, json=secret(f"{tag}-b"))
            event = ev()
    assert event is not None
    assert event["type"] == "ADDED", event  # not an ERROR event with 410 Expired
    assert event["object"]["metadata"]["name"] == f"{tag}-b"
