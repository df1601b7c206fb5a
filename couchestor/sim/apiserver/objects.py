"""Per-kind object rules a real API server applies on write: names, metadata, built-in strategies."""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import uuid
from typing import Any

from couchestor.sim.apiserver.errors import FieldError
from couchestor.sim.apiserver.resources import ResourceType
from couchestor.sim.apiserver.schema import validate_defaults

JSON = dict[str, Any]

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

PV_PROTECTION = "kubernetes.io/pv-protection"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
NAMESPACE_FINALIZER = "kubernetes"
CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generated_name(prefix: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(5))


def validate_name(rt: ResourceType, name: str) -> list[FieldError]:
    """The name rules of the kind: DNS label for namespaces, ``<plural>.<group>`` for CRDs, else subdomain."""
    errors: list[FieldError] = []
    if rt.plural == "namespaces" and not rt.group:
        if len(name) > 63:
            errors.append(
                FieldError("metadata.name", "FieldValueInvalid", "must be no more than 63 characters", name)
            )
        if not _DNS1123_LABEL.match(name):
            errors.append(FieldError("metadata.name", "FieldValueInvalid", LABEL_MSG, name))
        return errors
    if len(name) > 253:
        errors.append(
            FieldError("metadata.name", "FieldValueInvalid", "must be no more than 253 characters", name)
        )
    if not _DNS1123_SUBDOMAIN.match(name):
        errors.append(FieldError("metadata.name", "FieldValueInvalid", SUBDOMAIN_MSG, name))
    return errors


def validate_metadata(meta: JSON) -> list[FieldError]:
    """Label keys/values and annotation sizes, as ``ValidateObjectMeta`` checks them."""
    from couchestor.labels import SelectorError, _check_value, check_key

    errors: list[FieldError] = []
    for key, value in (meta.get("labels") or {}).items():
        try:
            check_key(key)
        except SelectorError:
            errors.append(
                FieldError(
                    "metadata.labels",
                    "FieldValueInvalid",
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                    key,
                )
            )
        if not isinstance(value, str):
            errors.append(
                FieldError(f"metadata.labels.{key}", "FieldValueTypeInvalid", "must be a string", value)
            )
            continue
        try:
            _check_value(value)
        except SelectorError:
            errors.append(
                FieldError(
                    "metadata.labels",
                    "FieldValueInvalid",
                    "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                    value,
                )
            )
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            errors.append(
                FieldError(f"metadata.annotations.{key}", "FieldValueTypeInvalid", "must be a string", value)
            )
    return errors


def prepare_create(rt: ResourceType, obj: JSON) -> None:
    """Built-in create strategies: initial status, the protection finalizers admission adds."""
    meta = obj["metadata"]
    if rt.group == "" and rt.plural == "persistentvolumes":
        obj["status"] = {"phase": "Pending"}
        _add_finalizer(meta, PV_PROTECTION)
    elif rt.group == "" and rt.plural == "persistentvolumeclaims":
        obj["status"] = {"phase": "Pending"}
        _add_finalizer(meta, PVC_PROTECTION)
    elif rt.group == "" and rt.plural == "namespaces":
        obj.setdefault("spec", {})["finalizers"] = [NAMESPACE_FINALIZER]
        obj["status"] = {"phase": "Active"}
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif rt.group == "storage.k8s.io" and rt.plural == "storageclasses":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif rt.group == "apiextensions.k8s.io":
        obj["status"] = {}
        _add_finalizer(meta, CRD_FINALIZER)
    elif rt.status_subresource:
        obj.pop("status", None)
    apply_builtin_defaults(rt, obj)


def apply_builtin_defaults(rt: ResourceType, obj: JSON) -> None:
    """The API defaults of the built-in kinds (applied on every write, as decoding does)."""
    if rt.group == "" and rt.plural == "secrets":
        # stringData is write-only: merged into data (base64), as the Secret strategy does.
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        if not obj.get("type"):
            obj["type"] = "Opaque"
        return
    spec = obj.get("spec")
    if rt.group or not isinstance(spec, dict):
        return
    if rt.plural == "persistentvolumes":
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
    elif rt.plural == "persistentvolumeclaims":
        spec.setdefault("volumeMode", "Filesystem")


def _add_finalizer(meta: JSON, name: str) -> None:
    fins = meta.setdefault("finalizers", [])
    if name not in fins:
        fins.append(name)


_PV_NON_SOURCE = {
    "capacity",
    "accessModes",
    "claimRef",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "mountOptions",
    "volumeMode",
    "nodeAffinity",
    "volumeAttributesClassName",
}


def validate_update(rt: ResourceType, new: JSON, old: JSON) -> list[FieldError]:
    """Immutable fields of the built-ins (a PV's volume source, a StorageClass's parameters...)."""
    errors: list[FieldError] = []
    if rt.group == "" and rt.plural == "persistentvolumes":

        def source(o: JSON) -> JSON:
            return {k: v for k, v in (o.get("spec") or {}).items() if k not in _PV_NON_SOURCE}

        if source(new) != source(old):
            errors.append(
                FieldError(
                    "spec.persistentvolumesource",
                    "FieldValueForbidden",
                    "spec.persistentvolumesource is immutable after creation",
                )
            )
    elif rt.group == "storage.k8s.io" and rt.plural == "storageclasses":
        for f in ("parameters", "provisioner", "reclaimPolicy", "volumeBindingMode"):
            if new.get(f) != old.get(f):
                errors.append(FieldError(f, "FieldValueForbidden", f"updates to {f} are forbidden."))
    elif rt.group == "apiextensions.k8s.io":
        if (new.get("spec") or {}).get("scope") != (old.get("spec") or {}).get("scope"):
            errors.append(
                FieldError(
                    "spec.scope",
                    "FieldValueInvalid",
                    "field is immutable",
                    (new.get("spec") or {}).get("scope"),
                )
            )
        if (new.get("spec") or {}).get("group") != (old.get("spec") or {}).get("group"):
            errors.append(
                FieldError(
                    "spec.group",
                    "FieldValueInvalid",
                    "field is immutable",
                    (new.get("spec") or {}).get("group"),
                )
            )
    return errors


def validate_crd(crd: JSON) -> list[FieldError]:
    """The CRD checks that matter for serving it."""
    errors: list[FieldError] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    if not group or "." not in group:
        errors.append(
            FieldError("spec.group", "FieldValueInvalid", "should be a domain with at least one dot", group)
        )
    if not plural:
        errors.append(FieldError("spec.names.plural", "FieldValueRequired", ""))
    if not names.get("kind"):
        errors.append(FieldError("spec.names.kind", "FieldValueRequired", ""))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(
            FieldError(
                "spec.scope",
                "FieldValueNotSupported",
                'supported values: "Cluster", "Namespaced"',
                spec.get("scope"),
            )
        )
    name = (crd.get("metadata") or {}).get("name", "")
    if plural and group and name != f"{plural}.{group}":
        errors.append(
            FieldError("metadata.name", "FieldValueInvalid", 'must be spec.names.plural+"."+spec.group', name)
        )
    versions = spec.get("versions") or []
    if not versions:
        errors.append(
            FieldError(
                "spec.versions",
                "FieldValueInvalid",
                "must have exactly one version marked as storage version",
                versions,
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errors.append(
            FieldError(
                "spec.versions",
                "FieldValueInvalid",
                "must have exactly one version marked as storage version",
                "array",
            )
        )
    schemas = [(v.get("schema") or {}).get("openAPIV3Schema") for v in versions]
    for i, schema in enumerate(schemas):
        if schema is None:
            errors.append(
                FieldError(
                    f"spec.versions[{i}].schema.openAPIV3Schema", "FieldValueRequired", "schemas are required"
                )
            )
    # Every default must pass its own schema and rules. kube-apiserver names the path of its internal
    # version, which keeps one shared schema under spec.validation when all versions have the same one.
    if schemas and all(s == schemas[0] for s in schemas):
        errors += validate_defaults(schemas[0], "spec.validation.openAPIV3Schema")
    else:
        for i, schema in enumerate(schemas):
            errors += validate_defaults(schema, f"spec.versions[{i}].schema.openAPIV3Schema")
    return errors


def spec_changed(new: JSON, old: JSON, status_subresource: bool) -> bool:
    """Whether a write changes what ``metadata.generation`` counts: all but metadata (and status if split)."""
    skip = {"metadata", "status"} if status_subresource else {"metadata"}
    keys = (set(new) | set(old)) - skip
    return any(new.get(k) != old.get(k) for k in keys)
