"""``meta.k8s.io/v1`` Table output (what ``kubectl get`` asks for): columns per kind, CRD printer columns."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from couchestor.sim.apiserver.resources import ResourceType

JSON = dict[str, Any]
Column = tuple[str, str, str, int]  # name, type, format, priority
Row = Callable[[JSON], list[Any]]

_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def human_duration(seconds: float) -> str:
    """kubectl's short ages: 45s, 3m20s, 5h, 3d4h, 400d, 2y30d."""
    s = int(seconds)
    if s < 0:
        return "0s" if s > -2 else "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    if d < 365 * 8:
        return f"{y}y{d % 365}d" if d % 365 else f"{y}y"
    return f"{y}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    return human_duration((dt.datetime.now(dt.UTC) - then).total_seconds())


def _modes(modes: list[str] | None) -> str:
    return ",".join(_MODES.get(m, m) for m in modes or ())


def _meta_age(o: JSON) -> str:
    return age(o["metadata"].get("creationTimestamp"))


def _phase(o: JSON) -> str:
    """A volume's or claim's phase as kubectl prints it: ``Terminating`` once deletion has begun."""
    if o["metadata"].get("deletionTimestamp"):
        return "Terminating"
    return str((o.get("status") or {}).get("phase", ""))


def _pv(o: JSON) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    return [
        o["metadata"]["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        _modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        _phase(o),
        claim,
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        _meta_age(o),
        spec.get("volumeMode", ""),
    ]


def _pvc(o: JSON) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    return [
        o["metadata"]["name"],
        _phase(o),
        spec.get("volumeName", ""),
        (status.get("capacity") or {}).get("storage", ""),
        _modes(status.get("accessModes")),
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        _meta_age(o),
        spec.get("volumeMode", ""),
    ]


def _sc(o: JSON) -> list[Any]:
    name = o["metadata"]["name"]
    if (o["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [
        name,
        o.get("provisioner", ""),
        o.get("reclaimPolicy", "Delete"),
        o.get("volumeBindingMode", "Immediate"),
        bool(o.get("allowVolumeExpansion", False)),
        _meta_age(o),
    ]


def _event(o: JSON) -> list[Any]:
    io = o.get("involvedObject") or o.get("regarding") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    return [
        age(last),
        o.get("type", ""),
        o.get("reason", ""),
        f"{io.get('kind', '').lower()}/{io.get('name', '')}",
        o.get("message") or o.get("note", ""),
    ]


_BUILTIN: dict[tuple[str, str], tuple[list[Column], Row]] = {
    ("", "namespaces"): (
        [("Name", "string", "name", 0), ("Status", "string", "", 0), ("Age", "string", "", 0)],
        lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), _meta_age(o)],
    ),
    ("", "persistentvolumes"): (
        [
            ("Name", "string", "name", 0),
            ("Capacity", "string", "", 0),
            ("Access Modes", "string", "", 0),
            ("Reclaim Policy", "string", "", 0),
            ("Status", "string", "", 0),
            ("Claim", "string", "", 0),
            ("StorageClass", "string", "", 0),
            ("VolumeAttributesClass", "string", "", 0),
            ("Reason", "string", "", 0),
            ("Age", "string", "", 0),
            ("VolumeMode", "string", "", 1),
        ],
        _pv,
    ),
    ("", "persistentvolumeclaims"): (
        [
            ("Name", "string", "name", 0),
            ("Status", "string", "", 0),
            ("Volume", "string", "", 0),
            ("Capacity", "string", "", 0),
            ("Access Modes", "string", "", 0),
            ("StorageClass", "string", "", 0),
            ("VolumeAttributesClass", "string", "", 0),
            ("Age", "string", "", 0),
            ("VolumeMode", "string", "", 1),
        ],
        _pvc,
    ),
    ("", "configmaps"): (
        [("Name", "string", "name", 0), ("Data", "string", "", 0), ("Age", "string", "", 0)],
        lambda o: [
            o["metadata"]["name"],
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            _meta_age(o),
        ],
    ),
    ("storage.k8s.io", "storageclasses"): (
        [
            ("Name", "string", "name", 0),
            ("Provisioner", "string", "", 0),
            ("ReclaimPolicy", "string", "", 0),
            ("VolumeBindingMode", "string", "", 0),
            ("AllowVolumeExpansion", "string", "", 0),
            ("Age", "string", "", 0),
        ],
        _sc,
    ),
    ("", "events"): (
        [
            ("Last Seen", "string", "", 0),
            ("Type", "string", "", 0),
            ("Reason", "string", "", 0),
            ("Object", "string", "", 0),
            ("Message", "string", "", 0),
        ],
        _event,
    ),
    ("coordination.k8s.io", "leases"): (
        [("Name", "string", "name", 0), ("Holder", "string", "", 0), ("Age", "string", "", 0)],
        lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity", ""), _meta_age(o)],
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [("Name", "string", "name", 0), ("Created At", "date", "", 0)],
        lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")],
    ),
}
_BUILTIN[("events.k8s.io", "events")] = _BUILTIN[("", "events")]

_DEFAULT: tuple[list[Column], Row] = (
    [("Name", "string", "name", 0), ("Age", "date", "", 0)],
    lambda o: [o["metadata"]["name"], _meta_age(o)],
)


def _jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath CRD printer columns use: ``.a.b``, ``.a[0]``, ``.a[?(@.k=="v")].b``."""
    tokens = re.findall(
        r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_]+)\s*==\s*[\"']([^\"']*)[\"']\)\]",
        path.strip().strip("{}"),
    )
    cur = obj
    for name, index, key, value in tokens:
        if cur is None:
            return None
        if name:
            cur = cur.get(name) if isinstance(cur, dict) else None
        elif index:
            i = int(index)
            cur = cur[i] if isinstance(cur, list) and i < len(cur) else None
        else:
            cur = (
                next((x for x in cur if isinstance(x, dict) and str(x.get(key)) == value), None)
                if isinstance(cur, list)
                else None
            )
    return cur


def _custom(rt: ResourceType) -> tuple[list[Column], Row] | None:
    if not rt.printer_columns:
        return None
    cols: list[Column] = [("Name", "string", "name", 0)]
    specs = rt.printer_columns
    cols += [
        (c["name"], c.get("type", "string"), c.get("format", ""), int(c.get("priority", 0))) for c in specs
    ]

    def row(o: JSON) -> list[Any]:
        cells: list[Any] = [o["metadata"]["name"]]
        for c in specs:
            value = _jsonpath(o, c.get("jsonPath", ""))
            if c.get("type") == "date":
                value = age(value) if isinstance(value, str) else None
            elif isinstance(value, dict | list):
                import msgspec

                value = msgspec.json.encode(value).decode()
            cells.append(value)
        return cells

    return cols, row


def columns(rt: ResourceType) -> tuple[list[Column], Row]:
    if rt.custom:
        return _custom(rt) or _DEFAULT
    return _BUILTIN.get((rt.group, rt.plural), _DEFAULT)


def table(rt: ResourceType, objs: list[JSON], include_object: str, list_meta: JSON | None) -> JSON:
    cols, row = columns(rt)
    rows = []
    for o in objs:
        cells = row(o)
        cells = [
            age(c) if cols[i][1] == "date" and isinstance(c, str) and "T" in c else c
            for i, c in enumerate(cells)
        ]
        entry: JSON = {"cells": cells}
        if include_object == "Object":
            entry["object"] = o
        elif include_object != "None":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": "", "priority": p} for n, t, f, p in cols
        ],
        "rows": rows,
    }
