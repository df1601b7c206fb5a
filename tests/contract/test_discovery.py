"""Discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>`` for the built-in kinds."""

from __future__ import annotations

import pytest

from tests.contract.conftest import GROUP, assert_status, wait_for

# (group/version path, plural, kind, namespaced, short names) of every built-in kind the project uses.
BUILTINS = [
    ("api/v1", "namespaces", "Namespace", False, ["ns"]),
    ("api/v1", "persistentvolumes", "PersistentVolume", False, ["pv"]),
    ("api/v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"]),
    ("api/v1", "configmaps", "ConfigMap", True, ["cm"]),
    ("api/v1", "events", "Event", True, ["ev"]),
    ("apis/events.k8s.io/v1", "events", "Event", True, ["ev"]),
    ("apis/storage.k8s.io/v1", "storageclasses", "StorageClass", False, ["sc"]),
    ("apis/coordination.k8s.io/v1", "leases", "Lease", True, []),
    (
        "apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ["crd", "crds"],
    ),
]


def test_version_names_a_kubernetes_release(http):
    r = http.get("/version")
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["major"].isdigit()
    assert info["minor"].rstrip("+").isdigit()
    assert info["gitVersion"].startswith(f"v{info['major']}.")


def test_core_api_versions(http):
    body = http.get("/api").json()
    assert body["kind"] == "APIVersions"
    assert body["versions"] == ["v1"]


def test_group_list_has_the_groups_the_project_uses(http):
    body = http.get("/apis").json()
    assert body["kind"] == "APIGroupList"
    groups = {g["name"]: g for g in body["groups"]}
    for name in ("apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io", "storage.k8s.io"):
        versions = [v["groupVersion"] for v in groups[name]["versions"]]
        assert f"{name}/v1" in versions
        assert groups[name]["preferredVersion"]["groupVersion"] == f"{name}/v1"


@pytest.mark.parametrize(("gv", "plural", "kind", "namespaced", "short_names"), BUILTINS)
def test_builtin_resource_is_discoverable(http, gv, plural, kind, namespaced, short_names):
    r = http.get(f"/{gv}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "APIResourceList"
    assert body["groupVersion"] == gv.removeprefix("api/").removeprefix("apis/")
    resources = {res["name"]: res for res in body["resources"]}
    res = resources[plural]
    assert res["kind"] == kind
    assert res["namespaced"] is namespaced
    assert sorted(res.get("shortNames") or []) == sorted(short_names)
    assert {"create", "delete", "get", "list", "patch", "update", "watch"} <= set(res["verbs"])


@pytest.mark.parametrize("gv", ["api/v1", "apis/apiextensions.k8s.io/v1"])
def test_status_subresources_are_listed(http, gv):
    names = {res["name"] for res in http.get(f"/{gv}").json()["resources"]}
    expected = (
        {"persistentvolumes/status", "persistentvolumeclaims/status", "namespaces/status"}
        if gv == "api/v1"
        else {"customresourcedefinitions/status"}
    )
    assert expected <= names


def test_unknown_group_is_404(http):
    assert http.get("/apis/no-such-group.contract.couchestor.io").status_code == 404
    assert http.get("/apis/no-such-group.contract.couchestor.io/v1").status_code == 404


def test_unknown_object_in_known_resource_is_a_status(http):
    assert_status(http.get("/api/v1/persistentvolumes/no-such-pv-contract"), 404, "NotFound")


def _gvks(schema):
    return schema.get("x-kubernetes-group-version-kind") or []


def test_openapi_v2_describes_builtin_kinds(http):
    r = http.get("/openapi/v2", headers={"Accept": "application/json"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["swagger"] == "2.0"
    pv = doc["definitions"]["io.k8s.api.core.v1.PersistentVolume"]
    assert {"group": "", "kind": "PersistentVolume", "version": "v1"} in _gvks(pv)
    lease = doc["definitions"]["io.k8s.api.coordination.v1.Lease"]
    assert {"group": "coordination.k8s.io", "kind": "Lease", "version": "v1"} in _gvks(lease)


def test_openapi_v2_describes_custom_resources(http, crds):
    name = ".".join(reversed(GROUP.split("."))) + ".v1.Widget"

    def published():
        doc = http.get("/openapi/v2", headers={"Accept": "application/json"}).json()
        return doc["definitions"].get(name)

    widget = wait_for(published, what="Widget schema in /openapi/v2")
    assert {"group": GROUP, "kind": "Widget", "version": "v1"} in _gvks(widget)
    assert "size" in widget["properties"]["spec"]["properties"]


def test_openapi_v3_index_and_group_version_document(http, crds):
    def listed():
        return http.get("/openapi/v3").json()["paths"].get(f"apis/{GROUP}/v1")

    entry = wait_for(listed, what=f"apis/{GROUP}/v1 in /openapi/v3")
    assert "api/v1" in http.get("/openapi/v3").json()["paths"]
    doc = http.get(entry["serverRelativeURL"]).json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    widgets = [s for s in schemas.values() if {"group": GROUP, "kind": "Widget", "version": "v1"} in _gvks(s)]
    assert len(widgets) == 1
    assert widgets[0]["properties"]["spec"]["properties"]["color"]["enum"] == ["red", "green", "blue"]
