"""What the client needs to know about any object: its key, its resourceVersion, and how to decode it.

Objects are either msgspec Structs with a ``metadata: ObjectMeta`` field (from :mod:`k8s_schemas`) or plain
``dict`` s (raw JSON). Decoders are built once per type and shared: building one costs far more than using it.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, TypeVar, cast

import msgspec
from msgspec import UNSET

from k8s_schemas.meta import ObjectList, ObjectMeta

T = TypeVar("T")


class ObjectKey(NamedTuple):
    """Identity of an object within one resource type: ``namespace`` is "" for cluster-scoped objects."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def _raw_meta(obj: object) -> tuple[str, str, str, str]:
    """(namespace, name, resourceVersion, uid), "" for each one absent."""
    if isinstance(obj, dict):
        meta = obj.get("metadata") or {}
        fields = ("namespace", "name", "resourceVersion", "uid")
        namespace, name, rv, uid = (meta.get(f) or "" for f in fields)
        return namespace, name, rv, uid
    meta = getattr(obj, "metadata", None)
    if not isinstance(meta, ObjectMeta):
        raise TypeError(f"{type(obj).__name__} has no metadata: ObjectMeta field")
    return (
        meta.namespace if meta.namespace is not UNSET else "",
        meta.name if meta.name is not UNSET else "",
        meta.resource_version if meta.resource_version is not UNSET else "",
        meta.uid if meta.uid is not UNSET else "",
    )


def object_key(obj: object) -> ObjectKey:
    """The (namespace, name) of a Struct with ``metadata`` or a raw ``dict``."""
    namespace, name, _, _ = _raw_meta(obj)
    return ObjectKey(namespace, name)


def resource_version(obj: object) -> str:
    """The ``metadata.resourceVersion`` of an object ("" when absent)."""
    return _raw_meta(obj)[2]


def uid(obj: object) -> str:
    """The ``metadata.uid`` of an object ("" when absent)."""
    return _raw_meta(obj)[3]


def decoder(tp: type[T]) -> msgspec.json.Decoder[T]:
    """A shared JSON decoder for objects of ``tp``."""
    return cast("msgspec.json.Decoder[T]", _decoder(cast(Any, tp)))


def list_decoder(tp: type[T]) -> msgspec.json.Decoder[ObjectList[T]]:
    """A shared JSON decoder for ``ObjectList[tp]`` (LIST responses)."""
    return cast("msgspec.json.Decoder[ObjectList[T]]", _list_decoder(cast(Any, tp)))


@functools.cache
def _decoder(tp: Any) -> Any:
    return msgspec.json.Decoder(tp)


@functools.cache
def _list_decoder(tp: Any) -> Any:
    return msgspec.json.Decoder(ObjectList[tp])


_ENCODER = msgspec.json.Encoder()


def encode(body: object) -> bytes:
    """JSON bytes of a Struct (unset fields omitted) or of plain data."""
    return _ENCODER.encode(body)


def encode_object(body: object, api_version: str, kind: str) -> bytes:
    """JSON bytes of a whole object for POST/PUT, with ``apiVersion``/``kind`` filled in when missing.

    The server rejects an object without them (400), and Structs that declare them with a default omit
    them on the wire (``omit_defaults``), so they are added here rather than trusted to the caller.
    """
    raw = body if isinstance(body, dict) else msgspec.to_builtins(body)
    if isinstance(raw, dict) and ("apiVersion" not in raw or "kind" not in raw):
        raw = {"apiVersion": api_version, "kind": kind, **raw}
    return _ENCODER.encode(raw)
