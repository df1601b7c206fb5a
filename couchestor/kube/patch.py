"""JSON Patch (RFC 6902) operations (``op_test``, ``op_add`` ...), built as plain dicts.

A patch whose first operation is a ``test`` is a guarded update: the server applies it only if the tested
value is still what the caller read (e.g. ``op_test("/metadata/resourceVersion", rv)``), and answers
422 Invalid otherwise. That makes it safe to retry, and is how kube-rs adds and removes finalizers.
"""

from __future__ import annotations

from typing import Any

JsonPatchOp = dict[str, Any]


def pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901) to ``parts``.

    ``pointer("metadata", "labels", "a/b")`` is ``/metadata/labels/a~1b``.
    """
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def op_test(path: str, value: object) -> JsonPatchOp:
    return {"op": "test", "path": path, "value": value}


def op_add(path: str, value: object) -> JsonPatchOp:
    return {"op": "add", "path": path, "value": value}


def op_replace(path: str, value: object) -> JsonPatchOp:
    return {"op": "replace", "path": path, "value": value}


def op_remove(path: str) -> JsonPatchOp:
    return {"op": "remove", "path": path}


def is_guarded(ops: list[JsonPatchOp]) -> bool:
    """True when the patch contains a ``test`` op, so applying it twice cannot apply it twice."""
    return any(op.get("op") == "test" for op in ops)
