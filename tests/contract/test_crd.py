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


def test_custom_resource_list_items_carry_their_type(http, widgets):
    http.post(widgets, json=widget(unique("li")))
    items = http.get(widgets).json()["items"]
    assert items
    assert all(i["kind"] == "Widget" and i["apiVersion"] == f"{GROUP}/v1" for i in items)


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


def test_schema_errors_come_first_then_the_rules(http, widgets):
    name = unique("cel")
    response = http.post(widgets, json=widget(name, size=0, low=20, high=10))
    assert response.json()["message"] == (
        f'Widget.{GROUP} "{name}" is invalid: [spec.size: Invalid value: 0: spec.size in body should be '
        'greater than or equal to 1, spec.low: Invalid value: "object": low must be lower than high]'
    )


def test_an_enum_violation_does_not_keep_the_rules_from_running(http, widgets):
    response = http.post(widgets, json=widget(unique("cel"), color="purple", low=20, high=10))
    assert _causes(response).keys() == {"spec.color", "spec.low"}


def test_a_blocking_schema_error_keeps_the_rules_from_running(http, widgets):
    name = unique("cel")
    response = http.post(widgets, json=widget(name, tags=["a", "b", "c", "d"], low=20, high=10))
    assert _causes(response).keys() == {"spec.tags", "<nil>"}
    assert response.json()["message"] == (
        f'Widget.{GROUP} "{name}" is invalid: [spec.tags: Too many: 4: must have at most 3 items, '
        '<nil>: Invalid value: "null": some validation rules were not checked '
        "because the object was invalid; correct the existing errors to complete validation]"
    )


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


_LOW_HIGH = [{"rule": "self.a < self.b", "message": "a must be lower than b"}]


@pytest.mark.parametrize(
    ("spec_schema", "message"),
    [
        (
            {
                "type": "object",
                "default": {},
                "x-kubernetes-validations": _LOW_HIGH,
                "properties": {
                    "a": {"type": "integer", "default": 1},
                    "b": {"type": "integer", "default": 2},
                },
            },
            'spec.validation.openAPIV3Schema.properties[spec].default: Invalid value: "object": '
            "no such key: a evaluating rule: a must be lower than b",
        ),
        (
            {
                "type": "object",
                "default": {"a": 5, "b": 2},
                "x-kubernetes-validations": [dict(_LOW_HIGH[0], fieldPath=".a")],
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            },
            'spec.validation.openAPIV3Schema.properties[spec].default.a: Invalid value: "object": '
            "a must be lower than b",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer", "minimum": 3, "default": 1}}},
            "spec.validation.openAPIV3Schema.properties[spec].properties[a].default: Invalid value: 1: "
            " in body should be greater than or equal to 3",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "enum": ["x", "y"], "default": "z"}}},
            "spec.validation.openAPIV3Schema.properties[spec].properties[a].default: "
            'Unsupported value: "z": supported values: "x", "y"',
        ),
        (
            {"type": "object", "default": {}, "required": ["a"], "properties": {"a": {"type": "integer"}}},
            "spec.validation.openAPIV3Schema.properties[spec].default.a: Required value",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "o": {
                        "type": "object",
                        "default": {"m": 1},
                        "properties": {"m": {"type": "integer", "minimum": 3}},
                    }
                },
            },
            "spec.validation.openAPIV3Schema.properties[spec].properties[o].default.m: Invalid value: 1: "
            "m in body should be greater than or equal to 3",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "maxLength": 2, "default": "abc"}}},
            "spec.validation.openAPIV3Schema.properties[spec].properties[a].default: "
            "Too long: may not be longer than 2",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "o": {
                        "type": "object",
                        "default": {"zz": 1, "m": "x"},
                        "properties": {"m": {"type": "string"}},
                    }
                },
            },
            "spec.validation.openAPIV3Schema.properties[spec].properties[o].default: Invalid value: "
            'map[string]interface {}{"m":"x", "zz":1}: must not have unknown fields',
        ),
    ],
    ids=[
        "cel-no-such-key",
        "cel-false",
        "minimum",
        "enum",
        "required",
        "nested",
        "max-length",
        "unknown-field",
    ],
)
def test_crd_whose_default_breaks_its_schema_is_refused(http, spec_schema, message):
    """A CRD is validated when written: every ``default`` must pass its own schema and CEL rules."""
    name = f"rejects.{GROUP}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "rejects", "kind": "Reject"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}},
                }
            ],
        },
    }
    r = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    if r.status_code == 201:
        http.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    body = assert_status(r, 422, "Invalid")
    assert body["message"] == f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: {message}'


def test_default_of_a_version_with_its_own_schema_is_named_by_that_version(http):
    name = f"rejects2.{GROUP}"

    def version(v: str, default: int) -> dict:
        spec = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 3, "default": default}}}
        schema = {"type": "object", "properties": {"spec": spec}}
        return {"name": v, "served": True, "storage": v == "v1", "schema": {"openAPIV3Schema": schema}}

    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "rejects2", "kind": "Reject2"},
            "versions": [version("v1", 5), version("v2", 1)],
        },
    }
    r = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    if r.status_code == 201:
        http.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    body = assert_status(r, 422, "Invalid")
    assert body["message"].endswith(
        "is invalid: spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[a].default: "
        "Invalid value: 1:  in body should be greater than or equal to 3"
    )
