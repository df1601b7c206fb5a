"""Protobuf request bodies (``application/vnd.kubernetes.protobuf``) of the few kinds kubectl sends that way.

``kubectl create namespace|configmap|secret|serviceaccount`` encode the new object as Kubernetes protobuf: the
magic ``k8s\\0`` and a ``runtime.Unknown`` envelope (type meta + the object's own message). The emulator decodes
those four kinds into the JSON a client would have sent, and answers in JSON, which kubectl accepts. The
message layouts are those of ``k8s.io/api/core/v1/generated.proto``; fields it does not need (managedFields,
timestamps a client never sets) are skipped like any unknown protobuf field.
"""

from __future__ import annotations

import base64
from typing import Any

from couchestor.sim.apiserver.errors import ApiError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A message layout: field number -> (JSON name, kind). Kinds: "string", "bytes", "bool", "int",
# ("message", layout), ("repeated", kind), ("map", value kind).
Layout = dict[int, tuple[str, Any]]

_OWNER_REFERENCE: Layout = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Layout = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", ("message", _OWNER_REFERENCE))),
    14: ("finalizers", ("repeated", "string")),
}
_OBJECT_REFERENCE: Layout = {
    1: ("kind", "string"),
    2: ("namespace", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("resourceVersion", "string"),
    7: ("fieldPath", "string"),
}
_META = ("metadata", ("message", _OBJECT_META))

#: The kinds whose protobuf bodies are accepted, by (apiVersion, kind).
LAYOUTS: dict[tuple[str, str], Layout] = {
    ("v1", "Namespace"): {
        1: _META,
        2: ("spec", ("message", {1: ("finalizers", ("repeated", "string"))})),
        3: ("status", ("message", {1: ("phase", "string")})),
    },
    ("v1", "ConfigMap"): {
        1: _META,
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: _META,
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    ("v1", "ServiceAccount"): {
        1: _META,
        2: ("secrets", ("repeated", ("message", _OBJECT_REFERENCE))),
        3: ("imagePullSecrets", ("repeated", ("message", {1: ("name", "string")}))),
        4: ("automountServiceAccountToken", "bool"),
    },
}

_UNKNOWN: Layout = {
    1: ("typeMeta", ("message", {1: ("apiVersion", "string"), 2: ("kind", "string")})),
    2: ("raw", "bytes"),
    3: ("contentEncoding", "string"),
    4: ("contentType", "string"),
}


class _Malformed(ValueError):
    pass


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf request body; 415 for a kind without a layout here, 400 if malformed."""
    if not body.startswith(_MAGIC):
        raise ApiError(400, "BadRequest", "error decoding protobuf body: missing the k8s protobuf prefix")
    try:
        envelope = _message(body[len(_MAGIC) :], _UNKNOWN, raw_bytes=True)
        type_meta = envelope.get("typeMeta") or {}
        api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
        layout = LAYOUTS.get((api_version, kind))
        if layout is None:
            supported = ", ".join(k for _, k in LAYOUTS)
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the emulator decodes protobuf bodies only for {supported}; send {kind or 'this object'} "
                "as application/json",
            )
        obj = _message(envelope.get("raw", b""), layout)
    except _Malformed as exc:
        raise ApiError(400, "BadRequest", f"error decoding protobuf body: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Malformed("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: an int for varints, bytes for everything length-delimited or fixed."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise _Malformed(f"field {number} runs past the end of its message")
            out.append((number, buf[i : i + size]))
            i += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((number, buf[i : i + width]))
            i += width
        else:
            raise _Malformed(f"unsupported wire type {wire} for field {number}")
    return out


def _scalar(kind: str, value: int | bytes, raw_bytes: bool = False) -> Any:
    if kind == "string":
        if not isinstance(value, bytes):
            raise _Malformed("expected a string")
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise _Malformed(f"invalid UTF-8: {exc}") from None
    if kind == "bytes":
        if not isinstance(value, bytes):
            raise _Malformed("expected bytes")
        return value if raw_bytes else base64.b64encode(value).decode()
    if not isinstance(value, int):
        raise _Malformed(f"expected a varint for a {kind}")
    return bool(value) if kind == "bool" else value


def _value(kind: Any, value: int | bytes, raw_bytes: bool = False) -> Any:
    if isinstance(kind, tuple) and kind[0] == "message":
        if not isinstance(value, bytes):
            raise _Malformed("expected a message")
        return _message(value, kind[1])
    return _scalar(kind, value, raw_bytes)


def _message(buf: bytes, layout: Layout, raw_bytes: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number not in layout:
            continue  # a field the emulator does not need, skipped as protobuf skips unknown fields
        name, kind = layout[number]
        if isinstance(kind, tuple) and kind[0] == "repeated":
            out.setdefault(name, []).append(_value(kind[1], value))
        elif isinstance(kind, tuple) and kind[0] == "map":
            if not isinstance(value, bytes):
                raise _Malformed(f"expected a map entry for {name}")
            entry = _message(value, {1: ("key", "string"), 2: ("value", kind[1])})
            out.setdefault(name, {})[entry.get("key", "")] = entry.get("value", "")
        else:
            out[name] = _value(kind, value, raw_bytes)
    return out
