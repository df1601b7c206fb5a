"""CRDs: registration, discovery, versions, status subresource, generation, defaulting, validation, tables."""

from __future__ import annotations

import json

import pytest

from tests.contract.conftest import GROUP, RUN_ID, assert_status, unique, widget

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def widgets(ns, crds):
    return f"/apis/{GROUP}/v1/namespaces/{ns}/widgets"


def test_discovery_lists_the_crd_resources(http, crds):
    group = http.get(f"/apis/{GROUP}").json()
    assert group["kind"] == "APIGroup"
    assert {v["version"] for v in group["versions"]} == {"v1", "v1beta1"}
    assert group["preferredVersion"]["version"] == "v1"
    groups = http.get("/apis").json()
    assert any(g["name"] == GROUP for g in groups["groups"])
    resources = {r["name"]: r for r in http.get(f"/apis/{GROUP}/v1").json()["resources"]}
    assert resources["widgets"]["namespaced"] is True
    assert resources["widgets"]["kind"] == "Widget"
    assert resources["widgets"]["shortNames"] == [f"wd{RUN_ID}"]
    assert "widgets/status" in resources
    assert resources["gadgets"]["namespaced"] is False
    assert "gadgets/status" not in resources


def test_object_is_served_in_every_version(http, ns, widgets):
    name = unique("v")
    http.post(widgets, json=widget(name))
    beta = http.get(f"/apis/{GROUP}/v1beta1/namespaces/{ns}/widgets/{name}")
    assert beta.status_code == 200
    assert beta.json()["apiVersion"] == f"{GROUP}/v1beta1"
    listed = http.get(f"/apis/{GROUP}/v1beta1/namespaces/{ns}/widgets").json()
    assert listed["apiVersion"] == f"{GROUP}/v1beta1"
    assert listed["kind"] == "WidgetList"


def test_defaults_are_applied_recursively(http, widgets):
    r = http.post(widgets, json=widget(unique("d")))
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert spec["color"] == "red"
    assert spec["low"] == 1
    assert spec["high"] == 10
    assert spec["window"] == "1h"
    assert spec["options"] == {"enabled": True, "mode": "fast"}


def test_generation_starts_at_one_and_counts_spec_changes_only(http, widgets):
    name = unique("gen")
    created = http.post(widgets, json=widget(name)).json()
    assert created["metadata"]["generation"] == 1
    r = http.patch(f"{widgets}/{name}", content=json.dumps({"spec": {"size": 9}}), headers=MERGE)
    assert r.json()["metadata"]["generation"] == 2
    r = http.patch(
        f"{widgets}/{name}", content=json.dumps({"metadata": {"labels": {"x": "y"}}}), headers=MERGE
    )
    assert r.json()["metadata"]["generation"] == 2
    r = http.patch(
        f"{widgets}/{name}/status", content=json.dumps({"status": {"phase": "Ready"}}), headers=MERGE
    )
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["generation"] == 2


def test_create_drops_status_when_status_is_a_subresource(http, widgets):
    body = widget(unique("st"))
    body["status"] = {"phase": "Fake"}
    assert "status" not in http.post(widgets, json=body).json()


def test_status_subresource_isolation(http, widgets):
    name = unique("iso")
    created = http.post(widgets, json=widget(name)).json()
    # A write to /status changes status only.
    to_status = dict(created, spec=dict(created["spec"], size=50), status={"phase": "Ready", "count": 2})
    r = http.put(f"{widgets}/{name}/status", json=to_status)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == {"phase": "Ready", "count": 2}
    assert r.json()["spec"]["size"] == 3
    # A write to the main resource ignores status.
    to_main = dict(r.json(), spec=dict(r.json()["spec"], size=4), status={"phase": "Broken"})
    r = http.put(f"{widgets}/{name}", json=to_main)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["size"] == 4
    assert r.json()["status"] == {"phase": "Ready", "count": 2}
    got = http.get(f"{widgets}/{name}/status").json()
    assert got["status"]["phase"] == "Ready"


def test_status_write_with_stale_version_conflicts(http, widgets):
    name = unique("sc")
    created = http.post(widgets, json=widget(name)).json()
    http.patch(f"{widgets}/{name}", content=b'{"spec":{"size":5}}', headers=MERGE)
    stale = dict(created, status={"phase": "X"})
    assert_status(http.put(f"{widgets}/{name}/status", json=stale), 409, "Conflict")


def _causes(response):
    body = assert_status(response, 422, "Invalid")
    assert body["details"]["kind"] == "Widget"
    assert body["details"]["group"] == GROUP
    return {c["field"]: c for c in body["details"]["causes"]}


def test_type_errors_are_422_with_field_paths(http, widgets):
    causes = _causes(http.post(widgets, json=widget(unique("t"), size="big")))
    assert causes["spec.size"]["reason"] == "FieldValueTypeInvalid"


def test_enum_violation(http, widgets):
    causes = _causes(http.post(widgets, json=widget(unique("e"), color="purple")))
    assert causes["spec.color"]["reason"] == "FieldValueNotSupported"


def test_required_field_missing(http, widgets):
    body = widget(unique("r"))
    del body["spec"]["size"]
    causes = _causes(http.post(widgets, json=body))
    assert causes["spec.size"]["reason"] == "FieldValueRequired"


def test_minimum_and_maximum(http, widgets):
    assert "spec.size" in _causes(http.post(widgets, json=widget(unique("m"), size=0)))
    assert "spec.size" in _causes(http.post(widgets, json=widget(unique("m"), size=101)))


def test_pattern_and_max_items(http, widgets):
    causes = _causes(http.post(widgets, json=widget(unique("p"), window="soon", tags=["a", "b", "c", "d"])))
    assert set(causes) >= {"spec.window", "spec.tags"}


def test_cel_rule_reports_its_message_at_its_field_path(http, widgets):
    response = http.post(widgets, json=widget(unique("cel"), low=20, high=10))
    causes = _causes(response)
    assert "spec.low" in causes
    assert "low must be lower than high" in response.json()["message"]


def test_validation_applies_to_updates_too(http, widgets):
    name = unique("u")
    http.post(widgets, json=widget(name))
    r = http.patch(f"{widgets}/{name}", content=b'{"spec":{"size":-5}}', headers=MERGE)
    assert "spec.size" in _causes(r)


def test_unknown_fields_are_pruned_or_rejected_when_strict(http, widgets):
    body = widget(unique("pr"))
    body["spec"]["bogus"] = 1
    r = http.post(widgets, json=body)
    assert r.status_code == 201, r.text
    assert "bogus" not in r.json()["spec"]
    body = widget(unique("pr"))
    body["spec"]["bogus"] = 1
    r = http.post(widgets, json=body, params={"fieldValidation": "Strict"})
    assert_status(r, 400, "BadRequest")
    assert "bogus" in r.json()["message"]


def test_preserve_unknown_fields_keeps_them(http, crds):
    name = unique("gd")
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": name},
        "spec": {"value": 1, "extra": {"anything": {"goes": True}}},
    }
    r = http.post(f"/apis/{GROUP}/v1/gadgets", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["extra"] == {"anything": {"goes": True}}
    http.delete(f"/apis/{GROUP}/v1/gadgets/{name}")


def test_cluster_scoped_resource_has_no_namespaced_path(http, ns, crds):
    assert http.get(f"/apis/{GROUP}/v1/namespaces/{ns}/gadgets").status_code == 404


def test_without_status_subresource_status_is_written_with_the_object(http, crds):
    name = unique("gs")
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": name},
        "spec": {"value": 1},
        "status": {"seen": 4},
    }
    r = http.post(f"/apis/{GROUP}/v1/gadgets", json=body)
    assert r.json()["status"] == {"seen": 4}
    assert http.get(f"/apis/{GROUP}/v1/gadgets/{name}/status").status_code == 404
    r = http.patch(f"/apis/{GROUP}/v1/gadgets/{name}", content=b'{"status":{"seen":5}}', headers=MERGE)
    assert r.json()["status"] == {"seen": 5}
    assert r.json()["metadata"]["generation"] == 2  # no status subresource: status counts as spec
    http.delete(f"/apis/{GROUP}/v1/gadgets/{name}")


def test_table_uses_printer_columns(http, widgets):
    name = unique("tb")
    http.post(widgets, json=widget(name, color="blue"))
    http.patch(f"{widgets}/{name}/status", content=b'{"status":{"phase":"Ready"}}', headers=MERGE)
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = http.get(f"{widgets}/{name}", headers={"Accept": accept}).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Color", "Phase", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:4] == [name, 3, "blue", "Ready"]
    assert isinstance(cells[4], str)
    assert cells[4][-1] in "smhdy"
