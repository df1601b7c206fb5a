"""What the client needs to know about any object: its key, its resourceVersion, and how to decode it.

Objects are either msgspec Structs of :mod:`k8s_schemas` whose ``metadata`` is a
:class:`~k8s_schemas.meta.CachedObjectMeta` (an :class:`~k8s_schemas.meta.ObjectMeta` is one too) or plain
``dict`` s (raw JSON). Decoders are built once per type and shared: building one costs far more than using it.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any, TypeVar, cast

import msgspec
from msgspec import UNSET

from k8s_schemas.meta import CachedObjectMeta, ObjectList

T = TypeVar("T")


class ObjectKey(msgspec.Struct, frozen=True, order=True, gc=False, cache_hash=True):
    """Identity of an object within one resource type: ``namespace`` is "" for cluster-scoped objects.

    Hashable and ordered. Not tracked by the garbage collector (it holds two strings), unlike a tuple
    subclass, which CPython never untracks: a store of 50,000 objects would otherwise add 50,000 objects to
    every full collection. The hash is kept once computed: a watch event's key is looked up four or five
    times (the store, its additions, each index, each subscriber).
    """

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class Ignored(msgspec.Struct, frozen=True, gc=False):
    """The type to decode an answer into when nothing of it is needed (a write whose result the watch
    brings anyway): its fields are skipped, nothing is allocated for them. At a first start that labels
    100,000 PVs, a ``dict`` per answer only churned the heap."""


def _dict_meta(obj: dict[Any, Any]) -> dict[Any, Any]:
    meta = obj.get("metadata") or {}
    return cast("dict[Any, Any]", meta)


def _no_metadata(obj: object) -> TypeError:
    return TypeError(f"{type(obj).__name__} has no metadata field")


# The readers below run several times per watch event, so each tries the common case first (a Struct with
# ObjectMeta: one attribute read) and reads only the fields it returns: after decoding, they are much of the
# watch path's cost.


def object_key(obj: object) -> ObjectKey:
    """The (namespace, name) of a Struct with ``metadata`` or a raw ``dict``."""
    meta = getattr(obj, "metadata", None)
    if isinstance(meta, CachedObjectMeta):
        namespace = meta.namespace
        name = meta.name
        return ObjectKey(namespace if namespace is not UNSET else "", name if name is not UNSET else "")
    if isinstance(obj, dict):
        raw = _dict_meta(obj)
        return ObjectKey(raw.get("namespace") or "", raw.get("name") or "")
    raise _no_metadata(obj)


def key_and_version(obj: object) -> tuple[ObjectKey, str]:
    """``(object_key(obj), resource_version(obj))``, reading the metadata once."""
    meta = getattr(obj, "metadata", None)
    if isinstance(meta, CachedObjectMeta):
        namespace = meta.namespace
        name = meta.name
        rv = meta.resource_version
        key = ObjectKey(namespace if namespace is not UNSET else "", name if name is not UNSET else "")
        return key, rv if rv is not UNSET else ""
    if isinstance(obj, dict):
        raw = _dict_meta(obj)
        key = ObjectKey(raw.get("namespace") or "", raw.get("name") or "")
        return key, raw.get("resourceVersion") or ""
    raise _no_metadata(obj)


def keys_and_last_version(objs: builtins.list[Any]) -> tuple[builtins.list[ObjectKey], str]:
    """The keys of ``objs`` in order, and the last non-empty resourceVersion among them ("" if none): a
    watch chunk's worth of objects in one call, reading each metadata once."""
    keys = []
    last = ""
    for obj in objs:
        meta = getattr(obj, "metadata", None)
        if isinstance(meta, CachedObjectMeta):
            # (UNSET is falsy, like the "" it stands for here.)
            keys.append(ObjectKey(meta.namespace or "", meta.name or ""))
            last = meta.resource_version or last
        else:
            key, rv = key_and_version(obj)
            keys.append(key)
            last = rv or last
    return keys, last


def resource_version(obj: object) -> str:
    """The ``metadata.resourceVersion`` of an object ("" when absent)."""
    meta = getattr(obj, "metadata", None)
    if isinstance(meta, CachedObjectMeta):
        rv = meta.resource_version
        return rv if rv is not UNSET else ""
    if isinstance(obj, dict):
        return _dict_meta(obj).get("resourceVersion") or ""
    raise _no_metadata(obj)


def uid(obj: object) -> str:
    """The ``metadata.uid`` of an object ("" when absent)."""
    meta = getattr(obj, "metadata", None)
    if isinstance(meta, CachedObjectMeta):
        value = meta.uid
        return value if value is not UNSET else ""
    if isinstance(obj, dict):
        return _dict_meta(obj).get("uid") or ""
    raise _no_metadata(obj)


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
