"""Events: the body written, the background writer (order, queue, failures, timeouts) and the spam filter."""

from __future__ import annotations

import json

import httpx
import trio

from couchestor.kube.events import EventRecorder, Outcome, SpamFilter
from couchestor.kube.resources import PERSISTENT_VOLUME, STORAGE_POLICY
from tests.kube.mock import make_client, status


def _pv(name: str) -> dict[str, object]:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}}


class _Api:
    """Answers Event POSTs (created, or ``refuse`` for the names given); keeps what it was sent."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.posted: list[dict[str, object]] = []
        self.refuse = refuse

    def __call__(self, req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        self.posted.append(body)
        if body["involvedObject"]["name"] in self.refuse:
            return status(403, "Forbidden", "events is forbidden")
        return httpx.Response(201, json=body)

    def names(self) -> list[str]:
        return [e["involvedObject"]["name"] for e in self.posted]  # type: ignore[index]


async def _until(predicate: object, timeout: float = 5) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.01)


async def test_writes_an_event_about_a_cluster_scoped_object_in_the_default_namespace() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(201, json=json.loads(req.content))

    outcomes: list[Outcome] = []
    pv = {"metadata": {"name": "pvc-1", "uid": "u-1", "resourceVersion": "8"}}
    async with make_client(handler) as client, trio.open_nursery() as nursery:
        recorder = EventRecorder(client, instance="pod-a", on_outcome=outcomes.append)
        await nursery.start(recorder.run)
        recorder.emit(
            PERSISTENT_VOLUME, pv, type="Normal", reason="MigrationCompleted", message="sata -> nvme"
        )
        await _until(lambda: outcomes)
        nursery.cancel_scope.cancel()
    assert outcomes == ["written"]
    assert seen[0].method == "POST"
    assert seen[0].url.path == "/api/v1/namespaces/default/events"
    created = json.loads(seen[0].content)
    assert created["involvedObject"] == {
        "apiVersion": "v1", "kind": "PersistentVolume", "name": "pvc-1", "uid": "u-1", "resourceVersion": "8",
    }  # fmt: skip
    assert created["metadata"]["generateName"] == "pvc-1."
    assert (created["type"], created["reason"], created["count"]) == ("Normal", "MigrationCompleted", 1)
    assert (created["reportingComponent"], created["reportingInstance"]) == ("couchestor", "pod-a")


async def test_emit_returns_at_once_and_drops_what_the_queue_cannot_hold() -> None:
    api = _Api()
    outcomes: list[Outcome] = []
    async with make_client(api) as client, trio.open_nursery() as nursery:
        recorder = EventRecorder(client, queue_size=2, on_outcome=outcomes.append)
        for i in range(5):  # nothing writes yet: two wait, three are dropped
            recorder.emit(PERSISTENT_VOLUME, _pv(f"pv-{i}"), type="Normal", reason="R", message="m")
        assert outcomes == ["dropped"] * 3
        assert api.posted == []
        await nursery.start(recorder.run)
        await _until(lambda: len(outcomes) == 5)
        recorder.emit(PERSISTENT_VOLUME, _pv("pv-5"), type="Normal", reason="R", message="m")  # room again
        await _until(lambda: len(outcomes) == 6)
        nursery.cancel_scope.cancel()
    assert outcomes == ["dropped"] * 3 + ["written"] * 3
    assert api.names() == ["pv-0", "pv-1", "pv-5"]


async def test_events_are_written_in_order_and_a_refused_one_does_not_stop_the_rest() -> None:
    api = _Api(refuse=("pv-1",))
    outcomes: list[Outcome] = []
    async with make_client(api) as client, trio.open_nursery() as nursery:
        recorder = EventRecorder(client, on_outcome=outcomes.append)
        await nursery.start(recorder.run)
        for i in range(4):
            recorder.emit(PERSISTENT_VOLUME, _pv(f"pv-{i}"), type="Warning", reason="R", message=f"m{i}")
        await _until(lambda: len(outcomes) == 4)
        nursery.cancel_scope.cancel()
    assert api.names() == ["pv-0", "pv-1", "pv-2", "pv-3"]
    assert [e["message"] for e in api.posted] == ["m0", "m1", "m2", "m3"]
    assert outcomes == ["written", "failed", "written", "written"]


async def test_an_api_server_that_does_not_answer_costs_each_event_its_timeout(
    autojump_clock: object,
) -> None:
    async def never(req: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError

    outcomes: list[tuple[Outcome, float]] = []
    async with make_client(never) as client, trio.open_nursery() as nursery:
        recorder = EventRecorder(
            client, timeout=10.0, on_outcome=lambda o: outcomes.append((o, trio.current_time()))
        )
        await nursery.start(recorder.run)
        start = trio.current_time()
        recorder.emit(PERSISTENT_VOLUME, _pv("pv-0"), type="Normal", reason="R", message="m")
        recorder.emit(PERSISTENT_VOLUME, _pv("pv-1"), type="Normal", reason="R", message="m")
        await _until(lambda: len(outcomes) == 2, timeout=60)
        nursery.cancel_scope.cancel()
    assert [o for o, _ in outcomes] == ["failed", "failed"]
    assert [round(t - start) for _, t in outcomes] == [10, 20]


async def test_many_events_about_one_object_are_throttled_not_queued() -> None:
    api = _Api()
    outcomes: list[Outcome] = []
    async with make_client(api) as client, trio.open_nursery() as nursery:
        recorder = EventRecorder(client, on_outcome=outcomes.append)
        await nursery.start(recorder.run)
        for i in range(30):
            recorder.emit(
                STORAGE_POLICY, {"metadata": {"name": "gold"}}, type="Normal", reason="R", message=f"{i}"
            )
        recorder.emit(PERSISTENT_VOLUME, _pv("pv-0"), type="Normal", reason="R", message="other object")
        await _until(lambda: outcomes.count("written") == 26)
        nursery.cancel_scope.cancel()
    assert outcomes.count("throttled") == 5
    assert [e["message"] for e in api.posted] == [str(i) for i in range(25)] + ["other object"]


def test_spam_filter_allows_a_burst_then_one_per_refill_period() -> None:
    spam = SpamFilter(burst=3, rate=1 / 300)
    assert [spam.allow("pv-a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert spam.allow("pv-b", 0.0)  # another object has its own bucket
    assert not spam.allow("pv-a", 299.0)
    assert spam.allow("pv-a", 301.0)
    assert not spam.allow("pv-a", 302.0)
    # A long silence refills the bucket, but never beyond the burst.
    assert [spam.allow("pv-a", 100_000.0) for _ in range(4)] == [True, True, True, False]


def test_spam_filter_keeps_buckets_for_the_objects_seen_last_only() -> None:
    spam = SpamFilter(burst=1, rate=1 / 300, capacity=2)
    assert spam.allow("a", 0.0)
    assert spam.allow("b", 0.0)
    assert not spam.allow("a", 1.0)  # "a" was seen last now; "b" is the oldest
    assert spam.allow("c", 1.0)  # pushes "b" out
    assert spam.allow("b", 2.0)  # forgotten, so a full bucket again (and pushes "a" out)
    assert not spam.allow("c", 2.0)
    assert spam.allow("a", 3.0)
