"""Create, read, update and delete: status codes, Status bodies, metadata, optimistic concurrency."""

from __future__ import annotations

from tests.contract.conftest import GROUP, assert_status, cm, rv, unique, widget


def test_create_returns_201_with_server_set_metadata(http, ns):
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(unique("c")))
    assert r.status_code == 201, r.text
    meta = r.json()["metadata"]
    assert meta["namespace"] == ns
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    got = http.get(f"/api/v1/namespaces/{ns}/configmaps/{meta['name']}")
    assert got.status_code == 200
    assert got.json()["metadata"]["uid"] == meta["uid"]
    assert got.json()["metadata"]["resourceVersion"] == meta["resourceVersion"]


def test_create_of_existing_name_is_409_already_exists(http, ns):
    name = unique("dup")
    assert http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name)).status_code == 201
    body = assert_status(
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name)), 409, "AlreadyExists"
    )
    assert body["details"]["name"] == name
    assert body["details"]["kind"] == "configmaps"
    assert body["message"] == f'configmaps "{name}" already exists'


def test_get_missing_is_404_not_found_status(http, ns):
    body = assert_status(http.get(f"/api/v1/namespaces/{ns}/configmaps/nope"), 404, "NotFound")
    assert body["message"] == 'configmaps "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "configmaps"}


def test_get_missing_custom_resource_names_the_group(http, ns, crds):
    body = assert_status(http.get(f"/apis/{GROUP}/v1/namespaces/{ns}/widgets/nope"), 404, "NotFound")
    assert body["details"]["group"] == GROUP
    assert body["message"] == f'widgets.{GROUP} "nope" not found'


def test_invalid_name_is_422_with_field_cause(http, ns):
    body = assert_status(
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("Bad_Name")), 422, "Invalid"
    )
    assert body["details"]["name"] == "Bad_Name"
    assert body["details"]["kind"] == "ConfigMap"
    assert any(c["field"] == "metadata.name" for c in body["details"]["causes"])
    assert body["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"'
    )


def test_missing_name_is_422(http, ns):
    body = cm("x")
    del body["metadata"]["name"]
    status = assert_status(http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body), 422, "Invalid")
    assert any(c["field"] == "metadata.name" for c in status["details"]["causes"])


def test_generate_name_makes_distinct_names(http, ns):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    names = set()
    for _ in range(3):
        r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body)
        assert r.status_code == 201, r.text
        names.add(r.json()["metadata"]["name"])
    assert len(names) == 3
    assert all(n.startswith("gen-") and len(n) > len("gen-") for n in names)


def test_namespace_in_body_must_match_url(http, ns):
    body = cm(unique("c"), namespace="some-other-namespace")
    assert_status(http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body), 400, "BadRequest")


def test_create_in_missing_namespace_is_404(http):
    body = assert_status(
        http.post("/api/v1/namespaces/no-such-ns-x1/configmaps", json=cm("c")), 404, "NotFound"
    )
    assert body["details"]["kind"] == "namespaces"


def test_update_with_stale_resource_version_is_409_conflict(http, ns):
    name = unique("occ")
    created = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name)).json()
    first = dict(created, data={"k": "1"})
    r1 = http.put(f"/api/v1/namespaces/{ns}/configmaps/{name}", json=first)
    assert r1.status_code == 200, r1.text
    assert rv(r1.json()) > rv(created)
    stale = dict(created, data={"k": "2"})
    body = assert_status(http.put(f"/api/v1/namespaces/{ns}/configmaps/{name}", json=stale), 409, "Conflict")
    assert "the object has been modified" in body["message"]
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/{name}").json()["data"] == {"k": "1"}


def test_update_without_resource_version_is_unconditional_for_configmaps(http, ns):
    name = unique("uncond")
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name))
    r = http.put(f"/api/v1/namespaces/{ns}/configmaps/{name}", json=cm(name, data={"k": "new"}))
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"k": "new"}


def test_update_without_resource_version_is_rejected_for_custom_resources(http, ns, crds):
    name = unique("w")
    base = f"/apis/{GROUP}/v1/namespaces/{ns}/widgets"
    assert http.post(base, json=widget(name)).status_code == 201
    body = assert_status(http.put(f"{base}/{name}", json=widget(name, size=5)), 422, "Invalid")
    assert any(c["field"] == "metadata.resourceVersion" for c in body["details"]["causes"])


def test_put_to_missing_configmap_is_404(http, ns):
    assert_status(http.put(f"/api/v1/namespaces/{ns}/configmaps/absent", json=cm("absent")), 404, "NotFound")


def test_put_with_mismatched_name_is_400(http, ns):
    name = unique("mm")
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name))
    assert_status(http.put(f"/api/v1/namespaces/{ns}/configmaps/{name}", json=cm("other")), 400, "BadRequest")


def test_noop_update_keeps_the_resource_version(http, ns):
    name = unique("noop")
    created = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name)).json()
    r = http.put(f"/api/v1/namespaces/{ns}/configmaps/{name}", json=created)
    assert r.status_code == 200
    assert r.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_resource_versions_grow_across_kinds(http, ns, crds):
    a = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(unique("g"))).json()
    b = http.post(f"/apis/{GROUP}/v1/namespaces/{ns}/widgets", json=widget(unique("g"))).json()
    c = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(unique("g"))).json()
    assert rv(a) < rv(b) < rv(c)


def test_delete_without_finalizers_returns_success_status(http, ns):
    name = unique("del")
    uid = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name)).json()["metadata"]["uid"]
    r = http.delete(f"/api/v1/namespaces/{ns}/configmaps/{name}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "Status"
    assert body["status"] == "Success"
    assert body["details"]["name"] == name
    assert body["details"]["uid"] == uid
    assert body["details"]["kind"] == "configmaps"
    assert_status(http.get(f"/api/v1/namespaces/{ns}/configmaps/{name}"), 404, "NotFound")
    assert_status(http.delete(f"/api/v1/namespaces/{ns}/configmaps/{name}"), 404, "NotFound")


def test_delete_with_precondition_mismatch_is_409(http, ns):
    name = unique("pre")
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name))
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "not-the-uid"}}
    r = http.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/{name}", json=options)
    assert_status(r, 409, "Conflict")
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/{name}").status_code == 200


def test_wrong_kind_in_body_is_400(http, ns):
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": unique("k")}}
    assert_status(http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body), 400, "BadRequest")


def test_unknown_resource_is_404(http):
    r = http.get("/api/v1/nosuchthings")
    assert r.status_code == 404
