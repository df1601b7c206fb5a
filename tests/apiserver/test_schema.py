import json
from pathlib import Path

import pytest
import yaml

from couchestor.sim.apiserver.cel import CelError, compile_rule, evaluate
from couchestor.sim.apiserver.objects import validate_crd
from couchestor.sim.apiserver.schema import apply_defaults, prune, validate
from k8s_schemas.crds import all_crds

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "required": ["size"],
            "x-kubernetes-validations": [
                {"rule": "self.low < self.high", "message": "low < high", "fieldPath": ".low"}
            ],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2},
                "low": {"type": "integer", "default": 1},
                "high": {"type": "integer", "default": 5},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"},
                "list": {"type": "array", "maxItems": 2, "items": {"type": "integer"}},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "ios": {"x-kubernetes-int-or-string": True},
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {"on": {"type": "boolean", "default": True}},
                },
            },
        }
    },
}


def test_defaults_fill_absent_fields_recursively():
    obj = {}
    apply_defaults(obj, SCHEMA)
    assert obj == {"spec": {"size": 2, "low": 1, "high": 5, "nested": {"on": True}}}


def test_defaults_do_not_override_given_values():
    obj = {"spec": {"size": 7, "nested": {"on": False}}}
    apply_defaults(obj, SCHEMA)
    assert obj["spec"]["size"] == 7
    assert obj["spec"]["nested"] == {"on": False}


def test_prune_drops_undeclared_fields_only():
    obj = {
        "apiVersion": "x",
        "kind": "K",
        "metadata": {"name": "n"},
        "spec": {"size": 1, "bogus": 1, "free": {"any": {"thing": 1}}, "map": {"k": "v"}},
        "junk": 1,
    }
    removed = prune(obj, SCHEMA)
    assert sorted(removed) == ["junk", "spec.bogus"]
    assert obj["spec"]["free"] == {"any": {"thing": 1}}
    assert obj["spec"]["map"] == {"k": "v"}
    assert obj["metadata"] == {"name": "n"}


def _fields(obj):
    return {e.field: e.reason for e in validate(obj, SCHEMA)}


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"size": "x"}, "spec.size", "FieldValueTypeInvalid"),
        ({"size": 0}, "spec.size", "FieldValueInvalid"),
        ({"size": 11}, "spec.size", "FieldValueInvalid"),
        ({"size": 1, "mode": "c"}, "spec.mode", "FieldValueNotSupported"),
        ({"size": 1, "name": "abcd"}, "spec.name", "FieldValueTooLong"),
        ({"size": 1, "name": "A1"}, "spec.name", "FieldValueInvalid"),
        ({"size": 1, "list": [1, 2, 3]}, "spec.list", "FieldValueTooMany"),
        ({"size": 1, "list": ["x"]}, "spec.list[0]", "FieldValueTypeInvalid"),
        ({"size": 1, "map": {"k": 1}}, "spec.map.k", "FieldValueTypeInvalid"),
        ({"size": 1, "ios": 1.5}, "spec.ios", "FieldValueTypeInvalid"),
        ({}, "spec.size", "FieldValueRequired"),
        ({"size": 1, "low": 5, "high": 5}, "spec.low", "FieldValueInvalid"),
        ({"size": True}, "spec.size", "FieldValueTypeInvalid"),
    ],
)
def test_validation_errors_name_the_field(spec, field, reason):
    obj = {"spec": {"low": 1, "high": 2, **spec}}
    assert _fields(obj).get(field) == reason


def test_valid_object_has_no_errors():
    obj = {"spec": {"size": 3, "low": 1, "high": 2, "mode": "a", "name": "ab", "ios": "50%", "list": [1]}}
    assert validate(obj, SCHEMA) == []


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("self.a < self.b", {"a": 1, "b": 2}, True),
        ("!has(self.w) || (self.w > self.a && self.w < self.b)", {"a": 1, "b": 5}, True),
        ("!has(self.w) || (self.w > self.a && self.w < self.b)", {"a": 1, "b": 5, "w": 7}, False),
        ("size(self.items) <= 2", {"items": [1, 2, 3]}, False),
        ("self.name.startsWith('pv-') && self.name.endsWith('x')", {"name": "pv-ax"}, True),
        ("self.mode in ['a', 'b'] ? self.n > 0 : true", {"mode": "a", "n": 0}, False),
        ("self.s.matches('^[0-9]+[smh]$')", {"s": "10m"}, True),
        ("self.a + 2 * self.b == 7 && -self.a == -1", {"a": 1, "b": 3}, True),
        ("has(self.missing) && self.missing.x == 1", {}, False),
        ("self.a != 1 || self.missing == 2", {"a": 2}, True),
    ],
)
def test_cel_subset(rule, value, expected):
    assert evaluate(rule, {"self": value, "oldSelf": None}) is expected


def test_cel_missing_key_is_an_error():
    with pytest.raises(CelError, match="no such key"):
        evaluate("self.missing == 1", {"self": {}})


def test_cel_unsupported_syntax_is_reported():
    with pytest.raises(CelError):
        compile_rule("self.all(x, x > 0)")


def test_cel_transition_rules_skip_on_create():
    schema = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v", "message": "no"}],
        "properties": {"v": {"type": "integer"}},
    }
    assert validate({"v": 1}, schema) == []
    assert [e.detail for e in validate({"v": 1}, schema, old={"v": 2})] == ["no"]


def _rules(node):
    """Every ``x-kubernetes-validations`` rule in a schema tree."""
    if isinstance(node, dict):
        for item in node.get("x-kubernetes-validations") or ():
            yield item["rule"]
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


def _shipped_crds():
    root = Path(__file__).resolve().parents[2] / "manifests" / "crds"
    return sorted(root.glob("*.yaml"))


@pytest.mark.parametrize("path", _shipped_crds(), ids=lambda p: p.name)
def test_every_rule_of_the_shipped_crds_is_in_the_supported_subset(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    rules = [rule for doc in docs for rule in _rules(doc)]
    for rule in rules:
        compile_rule(rule)  # raises CelError when the emulator would not enforce it
    assert all(doc["kind"] == "CustomResourceDefinition" for doc in docs)


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_every_generated_crd_is_accepted_with_its_defaults(name):
    """kube-apiserver validates each ``default`` against its schema and rules when a CRD is written."""
    crd = json.loads(json.dumps(all_crds()[name]))  # as the API server receives it
    assert [e.render() for e in validate_crd(crd)] == []


def test_storage_policy_defaults_to_every_field_at_its_default_and_keeps_its_rules():
    schema = all_crds()["storagepolicies.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert spec["default"]["lowWatermarkIOPS"] < spec["default"]["highWatermarkIOPS"]
    errors = validate({"spec": {"lowWatermarkIOPS": 900, "highWatermarkIOPS": 100}}, schema)
    assert [e.render() for e in errors] == [
        'spec.lowWatermarkIOPS: Invalid value: "object": lowWatermarkIOPS must be lower than highWatermarkIOPS'
    ]
