"""KubeClient protocol behaviour over httpx.MockTransport: decoding, typed errors, retries, limits."""

from __future__ import annotations

import json

import httpx
import msgspec
import pytest
import trio

from couchestor.errors import UserError
from couchestor.kube import errors
from couchestor.kube.backoff import BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.config import ClusterConfig
from couchestor.kube.patch import op_replace, op_test, pointer
from couchestor.kube.resources import LEASE, MAYASTOR_VOLUME, PERSISTENT_VOLUME, STORAGE_POLICY, Resource
from couchestor.kube.retry import RetryPolicy
from k8s_schemas.meta import ObjectMeta
from tests.kube.mock import make_client, obj, status


class Thing(msgspec.Struct, kw_only=True):
    metadata: ObjectMeta
    spec: dict[str, int] = msgspec.field(default_factory=dict)


async def test_get_decodes_into_the_given_struct() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=obj("v1", 7, "mayastor", spec={"numReplicas": 2}))

    async with make_client(handler) as client:
        thing = await client.get(MAYASTOR_VOLUME, "v1", "mayastor", type=Thing)
    assert thing.metadata.name == "v1"
    assert thing.metadata.resource_version == "7"
    assert thing.spec == {"numReplicas": 2}
    assert seen[0].url.path == "/apis/openebs.io/v1/namespaces/mayastor/mayastorvolumes/v1"


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (400, "BadRequest", errors.BadRequest),
        (401, "Unauthorized", errors.Unauthorized),
        (403, "Forbidden", errors.Forbidden),
        (404, "NotFound", errors.NotFound),
        (405, "MethodNotAllowed", errors.MethodNotAllowed),
        (409, "Conflict", errors.Conflict),
        (409, "AlreadyExists", errors.AlreadyExists),
        (410, "Expired", errors.Gone),
        (415, "UnsupportedMediaType", errors.UnsupportedMediaType),
        (422, "Invalid", errors.Invalid),
    ],
)
async def test_error_status_becomes_typed_error(
    code: int, reason: str, expected: type[errors.ApiError]
) -> None:
    async with make_client(lambda req: status(code, reason, f"it is {reason}")) as client:
        with pytest.raises(expected) as info:
            await client.get(PERSISTENT_VOLUME, "pv-a", type=dict)
    err = info.value
    assert type(err) is expected
    assert (err.code, err.reason, err.message) == (code, reason, f"it is {reason}")
    assert "GET /api/v1/persistentvolumes/pv-a" in str(err)


async def test_invalid_carries_causes() -> None:
    causes = [{"reason": "FieldValueInvalid", "message": "must be > 0", "field": "spec.numReplicas"}]

    def handler(req: httpx.Request) -> httpx.Response:
        return status(422, "Invalid", "bad", name="x", kind="MayastorVolume", causes=causes)

    async with make_client(handler) as client:
        with pytest.raises(errors.Invalid) as info:
            await client.merge_patch(MAYASTOR_VOLUME, "x", {"spec": {"numReplicas": 0}}, "ns", type=dict)
    assert [c.field for c in info.value.causes] == ["spec.numReplicas"]
    assert info.value.details is not None
    assert info.value.details.kind == "MayastorVolume"


async def test_non_status_error_body_still_gives_typed_error() -> None:
    async with make_client(lambda req: httpx.Response(403, text="<html>denied by proxy</html>")) as client:
        with pytest.raises(errors.Forbidden) as info:
            await client.get(PERSISTENT_VOLUME, "pv", type=dict)
    assert "denied by proxy" in info.value.message
    assert isinstance(info.value, UserError)


async def test_server_errors_are_retried_then_succeed(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return status(500, "InternalError") if calls < 3 else httpx.Response(200, json=obj("a", 1))

    async with make_client(handler) as client:
        got = await client.get(PERSISTENT_VOLUME, "a", type=dict)
    assert got["metadata"]["name"] == "a"
    assert calls == 3


async def test_server_error_burst_gives_up_after_max_attempts(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return status(503, "ServiceUnavailable", "overloaded")

    async with make_client(handler, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(errors.ServerError) as info:
            await client.get(PERSISTENT_VOLUME, "a", type=dict)
    assert calls == 3
    assert info.value.code == 503


async def test_retry_after_is_honoured_on_429(autojump_clock: trio.abc.Clock) -> None:
    times: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        if len(times) == 1:
            resp = status(429, "TooManyRequests", "slow down")
            resp.headers["Retry-After"] = "7"
            return resp
        return httpx.Response(200, json=obj("a", 1))

    async with make_client(handler) as client:
        await client.get(PERSISTENT_VOLUME, "a", type=dict)
    assert len(times) == 2
    assert times[1] - times[0] == pytest.approx(7.0, abs=0.01)


async def test_429_gives_up_with_retry_after_on_the_error(autojump_clock: trio.abc.Clock) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        resp = status(429, "TooManyRequests", "slow down", retryAfterSeconds=2)
        resp.headers["Retry-After"] = "3"
        return resp

    async with make_client(handler, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(errors.TooManyRequests) as info:
            await client.get(PERSISTENT_VOLUME, "a", type=dict)
    assert info.value.retry_after == 3.0


async def test_create_is_not_retried_after_a_server_error(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return status(500, "InternalError")

    async with make_client(handler) as client:
        with pytest.raises(errors.ServerError):
            await client.create(STORAGE_POLICY, obj("p", ""), type=dict)
    assert calls == 1


async def test_create_is_retried_when_the_connection_was_never_made(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=req)
        if calls == 2:
            return status(429, "TooManyRequests")
        return httpx.Response(201, json=json.loads(req.content))

    async with make_client(handler) as client:
        created = await client.create(STORAGE_POLICY, {"metadata": {"name": "p"}}, type=dict)
    assert created["metadata"]["name"] == "p"
    assert calls == 3


async def test_create_is_not_retried_after_a_broken_connection(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadError("reset", request=req)

    async with make_client(handler) as client:
        with pytest.raises(errors.ConnectionFailed) as info:
            await client.create(STORAGE_POLICY, {"metadata": {"name": "p"}}, type=dict)
    assert calls == 1
    assert info.value.sent


async def test_guarded_json_patch_is_retried_unguarded_is_not(autojump_clock: trio.abc.Clock) -> None:
    bodies: list[tuple[str, list[dict[str, object]]]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        bodies.append((req.headers["content-type"], json.loads(req.content)))
        return status(503, "ServiceUnavailable")

    guarded = [op_test("/metadata/resourceVersion", "5"), op_replace("/spec/numReplicas", 3)]
    async with make_client(handler, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(errors.ServerError):
            await client.json_patch(MAYASTOR_VOLUME, "v", guarded, "ns", type=dict)
        assert len(bodies) == 3
        with pytest.raises(errors.ServerError):
            await client.json_patch(MAYASTOR_VOLUME, "v", guarded[1:], "ns", type=dict)
        assert len(bodies) == 4
    assert bodies[0] == ("application/json-patch+json", guarded)


async def test_merge_patch_and_status_paths_and_content_type() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=obj("p", 2))

    async with make_client(handler) as client:
        await client.merge_patch(STORAGE_POLICY, "p", {"spec": {"enabled": False}}, type=dict)
        await client.patch_status(STORAGE_POLICY, "p", {"status": {"phase": "Active"}}, type=dict)
    assert [r.url.path for r in seen] == [
        "/apis/storage.billyronks.io/v1/storagepolicies/p",
        "/apis/storage.billyronks.io/v1/storagepolicies/p/status",
    ]
    assert {r.headers["content-type"] for r in seen} == {"application/merge-patch+json"}
    assert json.loads(seen[1].content) == {"status": {"phase": "Active"}}


async def test_struct_patch_omits_unset_fields() -> None:
    seen: list[bytes] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.content)
        return httpx.Response(200, json=obj("p", 2))

    class Patch(msgspec.Struct, omit_defaults=True):
        metadata: ObjectMeta

    async with make_client(handler) as client:
        await client.merge_patch(
            PERSISTENT_VOLUME, "p", Patch(ObjectMeta(labels={"storage.billyronks.io/tier": "hot"})), type=dict
        )
    assert json.loads(seen[0]) == {"metadata": {"labels": {"storage.billyronks.io/tier": "hot"}}}


async def test_list_follows_continue_tokens_with_selectors() -> None:
    seen: list[httpx.QueryParams] = []
    pages = {None: (["a", "b"], "t1"), "t1": (["c", "d"], "t2"), "t2": (["e"], None)}

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.params)
        names, token = pages[req.url.params.get("continue")]
        meta = {"resourceVersion": "42"} | ({"continue": token} if token else {})
        return httpx.Response(200, json={"metadata": meta, "items": [obj(n, 1) for n in names]})

    async with make_client(handler) as client:
        full = await client.list_all(PERSISTENT_VOLUME, type=Thing, label_selector="tier=hot", limit=2)
    assert [t.metadata.name for t in full.items] == ["a", "b", "c", "d", "e"]
    assert full.metadata.resource_version == "42"
    assert full.metadata.continue_ is msgspec.UNSET
    assert [p.get("continue") for p in seen] == [None, "t1", "t2"]
    assert {p["limit"] for p in seen} == {"2"}
    assert {p["labelSelector"] for p in seen} == {"tier=hot"}


async def test_expired_continue_token_raises_gone() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if "continue" in req.url.params:
            return status(410, "Expired", "continue token too old")
        return httpx.Response(200, json={"metadata": {"continue": "t"}, "items": [obj("a", 1)]})

    async with make_client(handler) as client:
        with pytest.raises(errors.Gone):
            await client.list_all(PERSISTENT_VOLUME, type=dict)


async def test_slow_response_times_out_and_names_the_call(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    async def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await trio.sleep(100)
        return httpx.Response(200, json=obj("a", 1))

    async with make_client(handler, timeout=2.0, retry=RetryPolicy(max_attempts=2)) as client:
        start = trio.current_time()
        with pytest.raises(errors.CallTimeout) as info:
            await client.get(PERSISTENT_VOLUME, "a", type=dict)
        elapsed = trio.current_time() - start
    assert calls == 2
    assert "GET /api/v1/persistentvolumes/a" in str(info.value)
    assert elapsed < 100


async def test_delete_sends_preconditions_and_missing_ok() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return status(404, "NotFound")

    async with make_client(handler) as client:
        await client.delete(MAYASTOR_VOLUME, "v", "ns", resource_version="9", missing_ok=True)
        with pytest.raises(errors.NotFound):
            await client.delete(MAYASTOR_VOLUME, "v", "ns")
    body = json.loads(seen[0].content)
    assert seen[0].method == "DELETE"
    assert body["preconditions"] == {"resourceVersion": "9"}


async def test_rate_limit_spaces_requests(autojump_clock: trio.abc.Clock) -> None:
    times: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return httpx.Response(200, json=obj("a", 1))

    async with make_client(handler, qps=10, burst=3) as client:
        for _ in range(8):
            await client.get(PERSISTENT_VOLUME, "a", type=dict)
    # Three requests from the burst at once, then one per 100 ms.
    assert times[2] - times[0] == pytest.approx(0.0, abs=1e-6)
    assert times[7] - times[2] == pytest.approx(0.5, abs=0.01)


async def test_cancelled_call_is_not_retried(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    async def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await trio.sleep(10)
        return httpx.Response(200, json=obj("a", 1))

    async with make_client(handler) as client:
        with trio.move_on_after(1):
            await client.get(PERSISTENT_VOLUME, "a", type=dict)
    assert calls == 1


def test_resource_paths() -> None:
    assert PERSISTENT_VOLUME.path() == "/api/v1/persistentvolumes"
    assert MAYASTOR_VOLUME.path("mayastor") == "/apis/openebs.io/v1/namespaces/mayastor/mayastorvolumes"
    assert (
        STORAGE_POLICY.path(None, "p", "status") == "/apis/storage.billyronks.io/v1/storagepolicies/p/status"
    )
    assert Resource("", "v1", "pods", "Pod", True).path("a b", "x/y") == "/api/v1/namespaces/a%20b/pods/x%2Fy"
    with pytest.raises(ValueError, match="cluster-scoped"):
        PERSISTENT_VOLUME.path("default", "pv")
    with pytest.raises(ValueError, match="namespace is required"):
        MAYASTOR_VOLUME.path(None, "v")
    assert pointer("metadata", "annotations", "storage.billyronks.io/last-migration") == (
        "/metadata/annotations/storage.billyronks.io~1last-migration"
    )


async def test_refused_connection_is_connection_failed_not_sent() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on: bound, never listening
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        fast = RetryPolicy(max_attempts=2, backoff=BackoffPolicy(initial=0.01, cap=0.01))
        client = KubeClient(ClusterConfig(server=f"http://127.0.0.1:{port}", verify=False), retry=fast)
        async with client:
            with pytest.raises(errors.ConnectionFailed) as info:
                await client.create(STORAGE_POLICY, {"metadata": {"name": "p"}}, type=dict)
    assert not info.value.sent
    assert info.value.call == "POST /apis/storage.billyronks.io/v1/storagepolicies"
    assert isinstance(info.value, UserError)


async def test_create_fills_type_meta_and_default_namespace() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(201, json=json.loads(req.content))

    class Lease(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
        api_version: str = "coordination.k8s.io/v1"  # omitted on the wire: it is the default
        metadata: ObjectMeta

    async with make_client(handler) as client:
        await client.create(LEASE, Lease(metadata=ObjectMeta(name="leader")), type=dict)
        await client.create(LEASE, {"metadata": {"name": "x", "namespace": "ops"}}, type=dict)
    assert json.loads(seen[0].content) == {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
    }  # fmt: skip
    assert seen[0].url.path == "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    assert seen[1].url.path == "/apis/coordination.k8s.io/v1/namespaces/ops/leases"


# --- preconditioned writes whose reply was lost ------------------------------------------------------------


class OneObject:
    """A server holding one object with optimistic concurrency; it can apply a write and lose its reply, or
    lose a write entirely, and another writer can change the object in between."""

    def __init__(self, **fields: object) -> None:
        self.obj: dict[str, object] | None = {
            "apiVersion": "v1",
            "kind": "Thing",
            "metadata": {"name": "t", "namespace": "ns", "uid": "u-1", "resourceVersion": "5"},
            **fields,
        }
        self.writes: list[str] = []  # the method of every write that reached the server
        self.lose_reply = 0  # the next this-many writes are applied, then their connection breaks
        self.lose_request = 0  # the next this-many writes break before the server acts
        self.fail_reads = False
        self.other_writer_first = False  # another writer changes the object before the next write

    def _bump(self) -> None:
        assert self.obj is not None
        meta = self.obj["metadata"]
        assert isinstance(meta, dict)
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)

    def handler(self, req: httpx.Request) -> httpx.Response:
        if req.method == "GET":
            if self.fail_reads:
                raise httpx.ReadError("reset", request=req)
            if self.obj is None:
                return status(404, "NotFound")
            return httpx.Response(200, json=self.obj)
        self.writes.append(req.method)
        if self.other_writer_first:
            self.other_writer_first = False
            assert self.obj is not None
            self.obj["spec"] = {"holder": "someone-else"}
            self._bump()
        if self.lose_request:
            self.lose_request -= 1
            raise httpx.ReadError("reset before the server read the request", request=req)
        if self.obj is None:
            return status(404, "NotFound")
        body = json.loads(req.content) if req.content else {}
        meta = self.obj["metadata"]
        assert isinstance(meta, dict)
        precondition = (
            body.get("preconditions", {}).get("resourceVersion")
            if req.method == "DELETE"
            else body.get("metadata", {}).get("resourceVersion")
        )
        if precondition is not None and precondition != meta["resourceVersion"]:
            return status(409, "Conflict", "the object has been modified")
        if req.method == "PATCH":
            for key, value in body.items():
                if key == "metadata":
                    annotations = meta.setdefault("annotations", {})
                    assert isinstance(annotations, dict)
                    for k, v in value.get("annotations", {}).items():
                        if v is None:
                            annotations.pop(k, None)
                        else:
                            annotations[k] = v
                else:
                    self.obj[key] = value
            self._bump()
        elif req.method == "PUT":
            self.obj = {**body, "metadata": {**meta, "resourceVersion": meta["resourceVersion"]}}
            self._bump()
        elif req.method == "DELETE":
            meta["deletionTimestamp"] = "2026-02-01T10:00:00Z"  # a finalizer keeps it, terminating
            self._bump()
        if self.lose_reply:
            self.lose_reply -= 1
            raise httpx.ReadError("reset after the server applied the write", request=req)
        return httpx.Response(200, json=self.obj)


INTENT_PATCH = {"metadata": {"resourceVersion": "5", "annotations": {"example.io/intent": "mine"}}}


async def test_preconditioned_merge_patch_whose_reply_was_lost_reports_its_own_success(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Issue 26 item 3 / issue 25 defect 3: a resend would get 409 against its own write.
    server = OneObject()
    server.lose_reply = 1
    async with make_client(server.handler) as client:
        got = await client.merge_patch(MAYASTOR_VOLUME, "t", INTENT_PATCH, "ns", type=dict)
    assert got["metadata"]["annotations"] == {"example.io/intent": "mine"}
    assert server.writes == ["PATCH"], "read back, not sent again"


async def test_preconditioned_merge_patch_that_never_arrived_is_sent_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = OneObject()
    server.lose_request = 1
    async with make_client(server.handler) as client:
        got = await client.merge_patch(MAYASTOR_VOLUME, "t", INTENT_PATCH, "ns", type=dict)
    assert got["metadata"]["annotations"] == {"example.io/intent": "mine"}
    assert server.writes == ["PATCH", "PATCH"]


async def test_preconditioned_merge_patch_overtaken_by_another_writer_is_a_conflict(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = OneObject()
    server.other_writer_first = True
    server.lose_request = 1
    async with make_client(server.handler) as client:
        with pytest.raises(errors.Conflict):
            await client.merge_patch(MAYASTOR_VOLUME, "t", INTENT_PATCH, "ns", type=dict)
    assert server.writes == ["PATCH"], "the read-back shows someone else's change: never resent"
    assert server.obj is not None
    assert "annotations" not in server.obj["metadata"]  # type: ignore[operator]


async def test_lost_reply_whose_read_back_fails_is_outcome_unknown(autojump_clock: trio.abc.Clock) -> None:
    server = OneObject()
    server.lose_reply = 1
    server.fail_reads = True
    async with make_client(server.handler) as client:
        with pytest.raises(errors.OutcomeUnknown) as info:
            await client.merge_patch(MAYASTOR_VOLUME, "t", INTENT_PATCH, "ns", type=dict)
    assert server.writes == ["PATCH"]
    assert "PATCH" in str(info.value)


async def test_unguarded_merge_patch_is_still_retried_as_idempotent(autojump_clock: trio.abc.Clock) -> None:
    server = OneObject()
    server.lose_reply = 1
    patch = {"metadata": {"annotations": {"example.io/seen": "yes"}}}
    async with make_client(server.handler) as client:
        got = await client.merge_patch(MAYASTOR_VOLUME, "t", patch, "ns", type=dict)
    assert got["metadata"]["annotations"] == {"example.io/seen": "yes"}
    assert server.writes == ["PATCH", "PATCH"]


async def test_guarded_put_renewal_whose_reply_was_lost_reports_its_own_success(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A Lease renewal (or release): PUT with the resourceVersion last seen; an empty holder is omitted by
    # the server, as Go's omitempty does, and still counts as written.
    server = OneObject(spec={"holderIdentity": "a", "renewTime": "2026-02-01T10:00:00.000000Z"})
    server.lose_reply = 1
    body = {
        "metadata": {"name": "t", "namespace": "ns", "resourceVersion": "5"},
        "spec": {"holderIdentity": "", "renewTime": "2026-02-01T10:00:02.000000Z", "leaseTransitions": 0},
    }

    def omitting_empty(req: httpx.Request) -> httpx.Response:
        resp = server.handler(req)
        assert server.obj is not None
        spec = server.obj.get("spec")
        if isinstance(spec, dict):
            server.obj["spec"] = {k: v for k, v in spec.items() if v not in ("", 0)}
        return resp

    async with make_client(omitting_empty) as client:
        got = await client.replace(LEASE, body, "ns", type=dict)
    assert got["spec"]["renewTime"] == "2026-02-01T10:00:02.000000Z"
    assert server.writes == ["PUT"]


async def test_delete_with_precondition_whose_reply_was_lost_is_not_a_conflict(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = OneObject()
    server.lose_reply = 1
    async with make_client(server.handler) as client:
        await client.delete(MAYASTOR_VOLUME, "t", "ns", resource_version="5")
    assert server.writes == ["DELETE"], "terminating: the delete is ours"
    server = OneObject()
    server.lose_request = 1
    async with make_client(server.handler) as client:
        await client.delete(MAYASTOR_VOLUME, "t", "ns", resource_version="5", uid="u-1")
    assert server.writes == ["DELETE", "DELETE"], "still at the precondition: sent again"


async def test_delete_with_precondition_whose_object_then_vanished_is_done(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = OneObject()
    server.lose_reply = 1

    def no_finalizer(req: httpx.Request) -> httpx.Response:
        try:
            return server.handler(req)
        finally:
            if req.method == "DELETE":
                server.obj = None

    async with make_client(no_finalizer) as client:
        await client.delete(MAYASTOR_VOLUME, "t", "ns", resource_version="5")
    assert server.writes == ["DELETE"]
