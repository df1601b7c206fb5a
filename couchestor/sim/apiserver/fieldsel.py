"""Field selectors (``fieldSelector=metadata.name=x,metadata.namespace!=y``): parse and match.

Only the fields real Kubernetes supports for a resource are accepted: ``metadata.name`` and
``metadata.namespace`` everywhere, plus the few a resource declares (core Events' ``involvedObject.*``).
Anything else is the 400 a real server gives: ``field label not supported: <field>`` for a kind with its own
field labels, ``"<field>" is not a known field selector: only "metadata.name", "metadata.namespace"`` for
the rest (ConfigMaps, PersistentVolumes, custom resources).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from couchestor.sim.apiserver.errors import ApiError, bad_request


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        return (fields.get(self.field, "") == self.value) == self.equal


FieldSelector = tuple[FieldRequirement, ...]


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            if value[i + 1] not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{value[i + 1]}")
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_field_selector(text: str, supported: tuple[str, ...]) -> FieldSelector:
    """Parse ``text``; raise 400 for bad syntax or a field the resource does not support."""
    reqs: list[FieldRequirement] = []
    if not text.strip():
        return ()
    for term in _split_unescaped(text, ","):
        if not term:
            continue
        found = next(((op, i) for op in ("!=", "==", "=") if (i := _find_unescaped(term, op)) >= 0), None)
        if found is None:
            raise bad_request(
                f"invalid field selector: invalid selector: '{text}'; can't understand '{term}'"
            )
        op, idx = found
        field, value, equal = term[:idx].strip(), term[idx + len(op) :], op != "!="
        if field not in ("metadata.name", "metadata.namespace", *supported):
            raise ApiError(400, "BadRequest", _unsupported(field, supported))
        reqs.append(FieldRequirement(field, equal, _unescape(value)))
    return tuple(reqs)


def _unsupported(field: str, supported: tuple[str, ...]) -> str:
    """kube-apiserver 1.28's text: kinds with their own field labels use their converter's message."""
    if supported:
        return f"field label not supported: {field}"
    return f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"'


def _find_unescaped(term: str, op: str) -> int:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        if term.startswith(op, i):
            return i
        i += 1
    return -1


def matches(selector: FieldSelector, fields: Mapping[str, str]) -> bool:
    return all(r.matches(fields) for r in selector)


def object_fields(obj: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str] | None:
    """The values of the extra selectable ``names`` in ``obj`` (dotted paths), for indexing at write time."""
    if not names:
        return None
    out: dict[str, str] = {}
    for name in names:
        cur: Any = obj
        for part in name.split("."):
            cur = cur.get(part) if isinstance(cur, Mapping) else None
        if name == "source" and isinstance(obj.get("source"), Mapping):
            cur = obj["source"].get("component")
        if cur is not None:
            out[name] = cur if isinstance(cur, str) else str(cur)
    return out
