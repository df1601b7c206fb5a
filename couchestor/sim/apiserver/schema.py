"""Structural OpenAPI v3 schemas of CRDs: defaulting, pruning and validation, as pure functions.

Follows the apiextensions-apiserver order: prune unknown fields, apply ``default:`` values (recursively, so a
defaulted ``{}`` gets its own fields' defaults), then validate types, enums, required fields, bounds,
lengths, patterns and ``x-kubernetes-validations`` rules (see :mod:`.cel`). Errors carry the field path
a real server reports (``spec.lowWatermarkIOPS``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from couchestor.sim.apiserver.cel import CelError, evaluate
from couchestor.sim.apiserver.errors import FieldError, GoValue

JSON = dict[str, Any]

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def prune(obj: Any, schema: JSON | None, path: str = "", root: bool = True) -> list[str]:
    """Remove, in place, fields the schema does not declare; return their paths (for warnings/Strict)."""
    if schema is None or not isinstance(obj, dict | list):
        return []
    removed: list[str] = []
    if isinstance(obj, list):
        items = schema.get("items")
        for i, v in enumerate(obj):
            removed += prune(v, items, f"{path}[{i}]", False)
        return removed
    if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return removed
    props = schema.get("properties")
    additional = schema.get("additionalProperties")
    opaque = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("type") != "object"
    if props is None and additional is None and opaque:
        return removed
    for key in list(obj):
        if root and key in _ROOT_KEEP:
            continue
        if props is not None and key in props:
            removed += prune(obj[key], props[key], _join(path, key), False)
        elif isinstance(additional, dict):
            removed += prune(obj[key], additional, _join(path, key), False)
        elif not schema.get("x-kubernetes-preserve-unknown-fields") and additional is not True:
            del obj[key]
            removed.append(_join(path, key))
    return removed


def apply_defaults(obj: Any, schema: JSON | None) -> None:
    """Fill absent fields that declare ``default:``, in place, then recurse into the result."""
    if schema is None:
        return
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            props = schema.get("properties") or {}
            for key, value in obj.items():
                if key not in props:
                    apply_defaults(value, additional)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])


def _type_ok(value: Any, schema: JSON) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    t = schema.get("type")
    if t is None:
        return True
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    return True


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


#: What kube-apiserver adds when schema errors kept it from evaluating the CEL rules.
RULES_NOT_CHECKED = FieldError(
    "<nil>",
    "FieldValueInvalid",
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation",
    "null",
)


def validate(obj: Any, schema: JSON | None, old: Any = None, path: str = "") -> list[FieldError]:
    """Every violation of ``schema`` by ``obj`` (``old``: the previous version, for transition rules).

    Like kube-apiserver, schema errors come first and the ``x-kubernetes-validations`` rules run after them,
    unless a schema error is of a kind that blocks them (wrong type, missing, too long, too many; not an
    enum violation, in 1.28): then one extra error says they were not checked.
    """
    if schema is None:
        return []
    errors: list[FieldError] = []
    rule_errors: list[FieldError] = []
    _validate(obj, schema, old, path, errors, rule_errors, root=True)
    if any(e.reason in _BLOCKING for e in errors):
        return [*errors, RULES_NOT_CHECKED] if _has_rules(schema) else errors
    return errors + rule_errors


_BLOCKING = frozenset(
    ("FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany", "FieldValueTypeInvalid")
)


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "x-kubernetes-validations" in schema or any(_has_rules(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_rules(v) for v in schema)
    return False


def validate_defaults(schema: JSON | None, path: str) -> list[FieldError]:
    """Every ``default`` in ``schema`` its own node refuses, as kube-apiserver checks a CRD when it is written.

    A default must hold no field its schema does not declare; it is then validated as written (its nested
    defaults are not applied first) against the schema and, if that passes, against the node's CEL rules;
    errors name ``<path>.properties[x].default``.
    """
    if not isinstance(schema, dict):
        return []
    errors: list[FieldError] = []
    if "default" in schema:
        base = f"{path}.default"
        pruned = copy.deepcopy(schema["default"])
        if prune(pruned, schema, root=False):
            errors.append(
                FieldError(
                    base, "FieldValueInvalid", "must not have unknown fields", GoValue(schema["default"])
                )
            )
        else:
            found: list[FieldError] = []
            rule_errors: list[FieldError] = []
            _validate(pruned, schema, None, "", found, rule_errors)
            found = found or rule_errors
            errors += [FieldError(_under(base, e.field), e.reason, e.detail, e.value) for e in found]
    for name, sub in (schema.get("properties") or {}).items():
        errors += validate_defaults(sub, f"{path}.properties[{name}]")
    for key in ("items", "additionalProperties"):
        errors += validate_defaults(schema.get(key), f"{path}.{key}")
    return errors


def _under(base: str, field: str) -> str:
    if not field:
        return base
    return base + field if field.startswith((".", "[")) else f"{base}.{field}"


def _validate(
    value: Any,
    schema: JSON,
    old: Any,
    path: str,
    errors: list[FieldError],
    rule_errors: list[FieldError],
    root: bool = False,
) -> None:
    """Schema violations go to ``errors``, those of ``x-kubernetes-validations`` rules to ``rule_errors``."""
    if value is None:
        if not schema.get("nullable"):
            errors.append(
                FieldError(
                    path,
                    "FieldValueTypeInvalid",
                    f'{path} in body must be of type {schema.get("type", "object")}: "null"',
                    None,
                )
            )
        return
    if not _type_ok(value, schema):
        errors.append(
            FieldError(
                path,
                "FieldValueTypeInvalid",
                f'{path} in body must be of type {schema.get("type")}: "{_type_name(value)}"',
                _type_name(value),
            )
        )
        return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(f'"{e}"' if isinstance(e, str) else str(e) for e in enum)
        errors.append(FieldError(path, "FieldValueNotSupported", f"supported values: {supported}", value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        _bounds(value, schema, path, errors)
    if isinstance(value, str):
        _string(value, schema, path, errors)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(
                FieldError(
                    path, "FieldValueTooMany", f"must have at most {schema['maxItems']} items", len(value)
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"{path} in body should have at least {schema['minItems']} items",
                    value,
                )
            )
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                _validate(v, items, None, f"{path}[{i}]", errors, rule_errors)
    if isinstance(value, dict):
        for req in schema.get("required") or ():
            if req not in value:
                errors.append(FieldError(_join(path, req), "FieldValueRequired", ""))
        props = schema.get("properties") or {}
        old_map = old if isinstance(old, dict) else {}
        for key, sub in props.items():
            if key in value and not (root and key == "metadata"):
                _validate(value[key], sub, old_map.get(key), _join(path, key), errors, rule_errors)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key, v in value.items():
                if key not in props:
                    _validate(v, additional, old_map.get(key), _join(path, key), errors, rule_errors)
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(
                FieldError(
                    path,
                    "FieldValueTooMany",
                    f"must have at most {schema['maxProperties']} items",
                    len(value),
                )
            )
    _rules(value, schema, old, path, rule_errors)


def _bounds(value: float, schema: JSON, path: str, errors: list[FieldError]) -> None:
    if "minimum" in schema:
        m = schema["minimum"]
        if value < m or (schema.get("exclusiveMinimum") is True and value == m):
            op = "greater than" if schema.get("exclusiveMinimum") is True else "greater than or equal to"
            errors.append(FieldError(path, "FieldValueInvalid", f"{path} in body should be {op} {m}", value))
    if "maximum" in schema:
        m = schema["maximum"]
        if value > m or (schema.get("exclusiveMaximum") is True and value == m):
            op = "less than" if schema.get("exclusiveMaximum") is True else "less than or equal to"
            errors.append(FieldError(path, "FieldValueInvalid", f"{path} in body should be {op} {m}", value))


def _string(value: str, schema: JSON, path: str, errors: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(
            FieldError(path, "FieldValueTooLong", f"may not be longer than {schema['maxLength']}", value)
        )
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"{path} in body should be at least {schema['minLength']} chars long",
                value,
            )
        )
    pattern = schema.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        errors.append(
            FieldError(path, "FieldValueInvalid", f"{path} in body should match '{pattern}'", value)
        )


def _rules(value: Any, schema: JSON, old: Any, path: str, errors: list[FieldError]) -> None:
    for rule in schema.get("x-kubernetes-validations") or ():
        text = rule.get("rule", "")
        transition = "oldSelf" in text
        if transition and old is None:
            continue  # transition rules apply only to updates
        env = {"self": value, "oldSelf": old}
        field_path = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
        # kube-apiserver shows the schema's type, not the value, and names the rule by its message.
        shown = schema.get("type") or _type_name(value)
        message = rule.get("message") or f"failed rule: {text}"
        try:
            ok = evaluate(text, env)
        except CelError as exc:
            errors.append(
                FieldError(
                    path, "FieldValueInvalid", f"{exc} evaluating rule: {rule.get('message') or text}", shown
                )
            )
            continue
        if not ok:
            reason = rule.get("reason", "FieldValueInvalid")
            errors.append(FieldError(field_path, reason, message, shown))
