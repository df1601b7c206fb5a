"""LIST: ordering, list resourceVersion, selectors, pagination with consistent snapshots, RV semantics."""

from __future__ import annotations

import base64

import pytest

from tests.contract.conftest import assert_status, cm, rv, unique


@pytest.fixture
def group(http, ns):
    """Six ConfigMaps sharing a unique ``set`` label, with varied labels; yields (label value, names)."""
    tag = unique("set")
    specs = [
        ("a", {"tier": "hot", "env": "prod"}),
        ("b", {"tier": "cold", "env": "prod"}),
        ("c", {"tier": "warm"}),
        ("d", {"tier": "hot", "legacy": "yes"}),
        ("e", {"env": "dev"}),
        ("f", {}),
    ]
    names = []
    for suffix, labels in specs:
        name = f"{tag}-{suffix}"
        r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name, labels={"set": tag, **labels}))
        assert r.status_code == 201, r.text
        names.append(name)
    return tag, names


def _names(http, path, **params):
    r = http.get(path, params=params)
    assert r.status_code == 200, r.text
    return [i["metadata"]["name"] for i in r.json()["items"]]


def test_list_is_sorted_by_name_and_its_rv_covers_items(http, ns, group):
    tag, names = group
    r = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"labelSelector": f"set={tag}"})
    body = r.json()
    assert body["kind"] == "ConfigMapList"
    assert body["apiVersion"] == "v1"
    items = body["items"]
    assert [i["metadata"]["name"] for i in items] == sorted(names)
    assert all(rv(i) <= int(body["metadata"]["resourceVersion"]) for i in items)
    # Items of a built-in kind carry no type: the list's kind says it (custom resources differ, test_crd).
    assert all("kind" not in i and "apiVersion" not in i for i in items), items


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=hot", ["a", "d"]),
        ("tier==hot", ["a", "d"]),
        ("tier!=hot", ["b", "c", "e", "f"]),
        ("tier in (hot,warm)", ["a", "c", "d"]),
        ("tier notin (hot,warm)", ["b", "e", "f"]),
        ("env", ["a", "b", "e"]),
        ("!env", ["c", "d", "f"]),
        ("tier=hot,!legacy", ["a"]),
        ("env=prod,tier in (cold)", ["b"]),
    ],
)
def test_label_selectors(http, ns, group, selector, expected):
    tag, _ = group
    got = _names(http, f"/api/v1/namespaces/{ns}/configmaps", labelSelector=f"set={tag},{selector}")
    assert got == [f"{tag}-{s}" for s in expected]


def test_bad_label_selector_is_400(http, ns):
    assert_status(
        http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"labelSelector": "a in (b"}),
        400,
        "BadRequest",
    )


def test_field_selector_on_name_and_namespace(http, ns, group):
    tag, names = group
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert _names(http, path, fieldSelector=f"metadata.name={names[2]}") == [names[2]]
    got = _names(http, path, labelSelector=f"set={tag}", fieldSelector=f"metadata.name!={names[0]}")
    assert got == sorted(names[1:])
    across = _names(
        http, "/api/v1/configmaps", fieldSelector=f"metadata.namespace={ns},metadata.name={names[1]}"
    )
    assert across == [names[1]]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/api/v1/namespaces/{ns}/configmaps",
            '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        (
            "/api/v1/persistentvolumes",
            '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        ("/api/v1/namespaces/{ns}/events", "field label not supported: data.k"),
        ("/apis/events.k8s.io/v1/namespaces/{ns}/events", "field label not supported: data.k"),
        ("/api/v1/namespaces", "field label not supported: data.k"),
        ("/api/v1/namespaces/{ns}/secrets", "field label not supported: data.k"),
    ],
)
def test_unsupported_field_selector_is_400(http, ns, path, message):
    r = http.get(path.format(ns=ns), params={"fieldSelector": "data.k=v"})
    body = assert_status(r, 400, "BadRequest")
    assert body["message"] == message


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/namespaces", "status.phase=Active"),
        ("/api/v1/namespaces/{ns}/secrets", "type=Opaque"),
        ("/apis/events.k8s.io/v1/namespaces/{ns}/events", "regarding.name=x"),
        ("/apis/events.k8s.io/v1/namespaces/{ns}/events", "reportingController=x"),
    ],
)
def test_kind_specific_field_selectors_are_accepted(http, ns, path, field):
    r = http.get(path.format(ns=ns), params={"fieldSelector": field})
    assert r.status_code == 200, r.text


def test_pagination_returns_every_item_once_from_one_snapshot(http, ns, group):
    tag, names = group
    path = f"/api/v1/namespaces/{ns}/configmaps"
    first = http.get(path, params={"labelSelector": f"set={tag}", "limit": 2}).json()
    assert len(first["items"]) == 2
    token = first["metadata"]["continue"]
    snapshot_rv = first["metadata"]["resourceVersion"]
    # Changes after the first page must not show up in later pages.
    http.delete(f"{path}/{names[4]}")
    http.post(path, json=cm(f"{tag}-bb", labels={"set": tag}))
    seen = [i["metadata"]["name"] for i in first["items"]]
    while token:
        page = http.get(path, params={"labelSelector": f"set={tag}", "limit": 2, "continue": token})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["metadata"]["resourceVersion"] == snapshot_rv
        seen += [i["metadata"]["name"] for i in body["items"]]
        token = body["metadata"].get("continue", "")
    assert seen == sorted(names)


def test_remaining_item_count_without_selectors(http, ns, group):
    r = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"limit": 1})
    meta = r.json()["metadata"]
    assert meta["continue"]
    total = len(http.get(f"/api/v1/namespaces/{ns}/configmaps").json()["items"])
    assert meta["remainingItemCount"] == total - 1


def test_continue_with_resource_version_is_400(http, ns, group):
    first = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"limit": 1}).json()
    r = http.get(
        f"/api/v1/namespaces/{ns}/configmaps",
        params={
            "limit": 1,
            "continue": first["metadata"]["continue"],
            "resourceVersion": first["metadata"]["resourceVersion"],
        },
    )
    assert_status(r, 400, "BadRequest")


def test_garbage_continue_token_is_400(http, ns):
    bogus = base64.b64encode(b"not a token").decode()
    assert_status(
        http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"limit": 1, "continue": bogus}),
        400,
        "BadRequest",
    )


def test_resource_version_match_without_resource_version_is_422(http, ns):
    r = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"resourceVersionMatch": "NotOlderThan"})
    body = assert_status(r, 422, "Invalid")
    assert "resourceVersionMatch is forbidden unless resourceVersion is provided" in body["message"]


def test_exact_resource_version_lists_the_past(http, ns):
    tag = unique("exact")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.post(path, json=cm(f"{tag}-1", labels={"set": tag}))
    before = http.get(path, params={"labelSelector": f"set={tag}"}).json()["metadata"]["resourceVersion"]
    http.post(path, json=cm(f"{tag}-2", labels={"set": tag}))
    now = _names(http, path, labelSelector=f"set={tag}")
    past = _names(
        http, path, labelSelector=f"set={tag}", resourceVersion=before, resourceVersionMatch="Exact"
    )
    assert now == [f"{tag}-1", f"{tag}-2"]
    assert past == [f"{tag}-1"]


def test_not_older_than_serves_a_snapshot_at_least_that_new(http, ns):
    """NotOlderThan promises a list at least as new as the version asked for, not the newest: the real server
    answers from its watch cache, which may not have seen a write made a moment before. Whatever version the
    list is at, it holds exactly the objects that existed then."""
    tag = unique("nots")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.post(path, json=cm(f"{tag}-1", labels={"set": tag}))
    before = http.get(path, params={"labelSelector": f"set={tag}"}).json()["metadata"]["resourceVersion"]
    second = http.post(path, json=cm(f"{tag}-2", labels={"set": tag})).json()["metadata"]["resourceVersion"]
    got = http.get(
        path,
        params={
            "labelSelector": f"set={tag}",
            "resourceVersion": before,
            "resourceVersionMatch": "NotOlderThan",
        },
    ).json()
    at = int(got["metadata"]["resourceVersion"])
    assert at >= int(before)
    expected = [f"{tag}-1", f"{tag}-2"] if at >= int(second) else [f"{tag}-1"]
    assert [i["metadata"]["name"] for i in got["items"]] == expected


def test_list_at_resource_version_zero_is_served(http, ns, group):
    """resourceVersion "0" takes any data (the real server answers from its watch cache, which may lag the
    writes just made), but always a consistent snapshot: exactly the objects that existed at its version."""
    tag, names = group
    path = f"/api/v1/namespaces/{ns}/configmaps"
    current = http.get(path, params={"labelSelector": f"set={tag}"}).json()["items"]
    created = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"]) for i in current}
    assert sorted(created) == sorted(names)
    r = http.get(path, params={"labelSelector": f"set={tag}", "resourceVersion": "0"})
    assert r.status_code == 200, r.text
    at = int(r.json()["metadata"]["resourceVersion"])
    got = [i["metadata"]["name"] for i in r.json()["items"]]
    assert got == sorted(name for name, version in created.items() if version <= at)


def test_cluster_wide_list_of_namespaced_kind(http, ns, group):
    tag, names = group
    r = http.get("/api/v1/configmaps", params={"labelSelector": f"set={tag}"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == sorted(names)
    assert {i["metadata"]["namespace"] for i in r.json()["items"]} == {ns}


def test_table_output_for_kubectl(http, ns, group):
    tag, names = group
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    r = http.get(
        f"/api/v1/namespaces/{ns}/configmaps",
        params={"labelSelector": f"set={tag}"},
        headers={"Accept": accept},
    )
    body = r.json()
    assert body["kind"] == "Table"
    assert body["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in body["columnDefinitions"]][:2] == ["Name", "Data"]
    assert [row["cells"][0] for row in body["rows"]] == sorted(names)
    assert body["rows"][0]["object"]["metadata"]["name"] == sorted(names)[0]
