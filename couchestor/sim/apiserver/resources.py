"""What the server serves: resource types (built-in and from CRDs) and the registry that finds them."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass(slots=True)
class ResourceType:
    """One served resource in one API version (``persistentvolumes`` in ``v1``, a CRD's plural in ``v1``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    # Bumps metadata.generation on spec changes (custom resources, CRDs); PVs and ConfigMaps have none.
    has_generation: bool = False
    allow_create_on_update: bool = False
    allow_unconditional_update: bool = True
    # DELETE answers with the object (True) or with a Success Status (False).
    return_deleted_object: bool = False
    custom: bool = False
    # OpenAPI v3 schema of this version (custom resources), with printer columns for table output.
    schema: JSON | None = None
    printer_columns: list[JSON] = field(default_factory=list)
    # Extra field selector labels beyond metadata.name / metadata.namespace.
    selectable_fields: tuple[str, ...] = ()
    storage_version: str = ""
    preserve_unknown: bool = False
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def bucket(self) -> str:
        """Storage identity shared by every version of the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def discovery(self) -> list[JSON]:
        """``APIResource`` entries for this resource and its subresources."""
        out: JSON = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            out["shortNames"] = list(self.short_names)
        if self.categories:
            out["categories"] = list(self.categories)
        if self.storage_version:
            # As kube-apiserver derives it: the first 8 bytes of sha256("group/version/kind"), base64.
            gvk = f"{self.group}/{self.storage_version}/{self.kind}".encode()
            out["storageVersionHash"] = base64.b64encode(hashlib.sha256(gvk).digest()[:8]).decode()
        entries = [out]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


def _core(plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, storage_version="v1", **kw)


def builtin_types() -> list[ResourceType]:
    """The built-in kinds the project needs, with the strategy flags of the real registry."""
    return [
        _core(
            "namespaces",
            "Namespace",
            False,
            short_names=("ns",),
            status_subresource=True,
            return_deleted_object=True,
            selectable_fields=("status.phase",),
        ),
        _core("persistentvolumes", "PersistentVolume", False, short_names=("pv",), status_subresource=True),
        _core(
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            True,
            short_names=("pvc",),
            status_subresource=True,
        ),
        _core("configmaps", "ConfigMap", True, short_names=("cm",)),
        _core(
            "events",
            "Event",
            True,
            short_names=("ev",),
            allow_create_on_update=True,
            selectable_fields=(
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ),
        ),
        ResourceType(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            False,
            short_names=("sc",),
            return_deleted_object=True,
            storage_version="v1",
        ),
        ResourceType(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            True,
            short_names=("ev",),
            allow_create_on_update=True,
            storage_version="v1",
            selectable_fields=(
                *(
                    f"regarding.{f}"
                    for f in (
                        "kind",
                        "namespace",
                        "name",
                        "uid",
                        "apiVersion",
                        "resourceVersion",
                        "fieldPath",
                    )
                ),
                "reason",
                "reportingController",
                "type",
            ),
        ),
        ResourceType(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            True,
            allow_create_on_update=True,
            storage_version="v1",
        ),
        # What installing the operator applies (manifests/operator): stored as given, no controllers.
        _core("serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
        _core("secrets", "Secret", True, selectable_fields=("type",)),
        _core("services", "Service", True, short_names=("svc",), status_subresource=True),
        ResourceType(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=("all",),
            status_subresource=True,
            has_generation=True,
            storage_version="v1",
        ),
        ResourceType(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            short_names=("pdb",),
            status_subresource=True,
            has_generation=True,
            storage_version="v1",
        ),
        *(
            ResourceType("rbac.authorization.k8s.io", "v1", plural, kind, namespaced, storage_version="v1")
            for plural, kind, namespaced in (
                ("clusterroles", "ClusterRole", False),
                ("clusterrolebindings", "ClusterRoleBinding", False),
                ("roles", "Role", True),
                ("rolebindings", "RoleBinding", True),
            )
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            status_subresource=True,
            has_generation=True,
            allow_unconditional_update=False,
            return_deleted_object=True,
            storage_version="v1",
        ),
    ]


def crd_types(crd: JSON) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    namespaced = spec.get("scope") == "Namespaced"
    storage = next((v["name"] for v in spec.get("versions") or () if v.get("storage")), "")
    out = []
    for v in spec.get("versions") or ():
        if not v.get("served", True):
            continue
        subresources = v.get("subresources") or {}
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            ResourceType(
                group,
                v["name"],
                names.get("plural", ""),
                names.get("kind", ""),
                namespaced,
                singular=names.get("singular", "") or names.get("kind", "").lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                has_generation=True,
                allow_unconditional_update=False,
                custom=True,
                schema=schema,
                printer_columns=list(v.get("additionalPrinterColumns") or ()),
                storage_version=storage,
                preserve_unknown=bool((schema or {}).get("x-kubernetes-preserve-unknown-fields")),
            )
        )
    return out


class Registry:
    """Resource types by (group, version, plural), plus the group/version lists discovery needs."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in builtin_types():
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_group_resource(self, group: str, plural: str) -> None:
        for k in [k for k in self._types if k[0] == group and k[2] == plural]:
            del self._types[k]

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def in_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in self._types.items() if g == group and v == version]

    def groups(self) -> dict[str, list[str]]:
        """Group -> served versions, preferred (storage, or highest) first; core group excluded."""
        out: dict[str, list[str]] = {}
        for g, v, _ in self._types:
            if g and v not in out.setdefault(g, []):
                out[g].append(v)
        for g, versions in out.items():
            versions.sort(key=_version_priority)
            out[g] = versions
        return out

    def any_version(self, group: str, plural: str) -> ResourceType | None:
        for (g, _, p), rt in self._types.items():
            if g == group and p == plural:
                return rt
        return None


def _version_priority(v: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -major, -int(m.group(3) or 0))
