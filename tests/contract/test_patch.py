"""PATCH: merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch, preconditions."""

from __future__ import annotations

import json

from tests.contract.conftest import GROUP, assert_status, cm, unique, widget

MERGE = {"Content-Type": "application/merge-patch+json"}
JSONP = {"Content-Type": "application/json-patch+json"}
SMP = {"Content-Type": "application/strategic-merge-patch+json"}


def _cm(http, ns, **kw):
    name = unique("p")
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name, **kw))
    assert r.status_code == 201
    return f"/api/v1/namespaces/{ns}/configmaps/{name}", r.json()


def test_merge_patch_merges_maps_and_null_deletes(http, ns):
    path, created = _cm(http, ns, labels={"a": "1", "b": "2"}, data={"x": "1", "y": "2"})
    patch = {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": None, "z": "9"}}
    r = http.patch(path, content=json.dumps(patch), headers=MERGE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert body["data"] == {"x": "1", "z": "9"}
    assert int(body["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_merge_patch_on_custom_resource(http, ns, crds):
    base = f"/apis/{GROUP}/v1/namespaces/{ns}/widgets"
    name = unique("mp")
    http.post(base, json=widget(name, tags=["a", "b"]))
    r = http.patch(f"{base}/{name}", content=json.dumps({"spec": {"size": 7, "tags": ["c"]}}), headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["size"] == 7
    assert r.json()["spec"]["tags"] == ["c"]  # lists are replaced


def test_json_patch_add_replace_remove_and_test(http, ns):
    path, _ = _cm(http, ns, data={"x": "1", "y": "2"})
    ops = [
        {"op": "test", "path": "/data/x", "value": "1"},
        {"op": "replace", "path": "/data/x", "value": "10"},
        {"op": "remove", "path": "/data/y"},
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
        {"op": "copy", "from": "/data/x", "path": "/data/copy"},
    ]
    r = http.patch(path, content=json.dumps(ops), headers=JSONP)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"x": "10", "copy": "10"}
    assert r.json()["metadata"]["labels"] == {"k": "v"}


def test_json_patch_failed_test_is_422_and_changes_nothing(http, ns):
    path, created = _cm(http, ns, data={"x": "1"})
    ops = [
        {"op": "replace", "path": "/data/x", "value": "2"},
        {"op": "test", "path": "/data/x", "value": "1"},
    ]
    assert_status(http.patch(path, content=json.dumps(ops), headers=JSONP), 422, "Invalid")
    after = http.get(path).json()
    assert after["data"] == {"x": "1"}
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_json_patch_on_missing_path_is_422(http, ns):
    path, _ = _cm(http, ns)
    ops = [{"op": "remove", "path": "/data/absent"}]
    assert_status(http.patch(path, content=json.dumps(ops), headers=JSONP), 422)


def test_malformed_patch_body_is_400(http, ns):
    path, _ = _cm(http, ns)
    assert_status(http.patch(path, content=b"{not json", headers=MERGE), 400, "BadRequest")


def test_strategic_merge_patch_on_builtin(http, ns):
    path, _ = _cm(http, ns, labels={"a": "1"}, data={"x": "1"})
    r = http.patch(
        path, content=json.dumps({"metadata": {"labels": {"b": "2"}}, "data": {"x": None}}), headers=SMP
    )
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert "x" not in (r.json().get("data") or {})


def test_strategic_merge_patch_on_custom_resource_is_415(http, ns, crds):
    base = f"/apis/{GROUP}/v1/namespaces/{ns}/widgets"
    name = unique("smp")
    http.post(base, json=widget(name))
    assert_status(
        http.patch(f"{base}/{name}", content=b'{"spec":{"size":4}}', headers=SMP), 415, "UnsupportedMediaType"
    )


def test_patch_with_stale_resource_version_is_409(http, ns):
    path, created = _cm(http, ns)
    http.patch(path, content=b'{"data":{"k":"2"}}', headers=MERGE)
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"k": "3"}}
    assert_status(http.patch(path, content=json.dumps(stale), headers=MERGE), 409, "Conflict")


def test_patch_of_missing_object_is_404(http, ns):
    assert_status(
        http.patch(f"/api/v1/namespaces/{ns}/configmaps/absent", content=b"{}", headers=MERGE),
        404,
        "NotFound",
    )


def test_unsupported_patch_content_type_is_415(http, ns):
    path, _ = _cm(http, ns)
    r = http.patch(path, content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_server_side_apply_creates_then_updates(http, ns):
    name = unique("ssa")
    path = f"/api/v1/namespaces/{ns}/configmaps/{name}"
    body = json.dumps(cm(name, data={"a": "1"}))
    headers = {"Content-Type": "application/apply-patch+yaml"}
    r = http.patch(path, content=body, headers=headers, params={"fieldManager": "contract"})
    assert r.status_code == 201, r.text
    r = http.patch(
        path,
        content=json.dumps(cm(name, data={"a": "2"})),
        headers=headers,
        params={"fieldManager": "contract"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["a"] == "2"


def test_server_side_apply_requires_a_field_manager(http, ns):
    name = unique("ssa")
    r = http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/{name}",
        content=json.dumps(cm(name)),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert_status(r, 422, "Invalid")
