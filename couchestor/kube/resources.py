"""API resource identities and their REST paths.

A :class:`Resource` is what client-go calls a ``GroupVersionResource`` plus the two facts a client needs to
build URLs: the kind (for bodies and messages) and whether objects live in a namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource type, e.g. ``Resource("", "v1", "persistentvolumes", "PersistentVolume", False)``.

    ``group`` is empty for the core (legacy) group, whose paths start with ``/api`` instead of ``/apis``.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` of objects of this resource: ``v1`` or ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The REST path of the collection (no ``name``), an object, or an object's ``subresource``.

        ``namespace`` is required for a namespaced object and ignored for a collection when None (meaning all
        namespaces); it is rejected for a cluster-scoped resource so that a mix-up fails loudly.
        """
        if not self.namespaced and namespace is not None:
            raise ValueError(f"{self.kind} is cluster-scoped; got namespace {namespace!r}")
        if self.namespaced and name is not None and not namespace:
            raise ValueError(f"{self.kind} {name!r} is namespaced; a namespace is required")
        if subresource is not None and name is None:
            raise ValueError("a subresource needs an object name")
        parts = ["/api", self.version] if not self.group else ["/apis", self.group, self.version]
        if namespace:
            parts += ["namespaces", _segment(namespace)]
        parts.append(self.plural)
        if name is not None:
            parts.append(_segment(name))
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _segment(value: str) -> str:
    if not value or value in (".", ".."):
        raise ValueError(f"invalid path segment {value!r}")
    return quote(value, safe="")


NAMESPACE = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
PERSISTENT_VOLUME = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
PERSISTENT_VOLUME_CLAIM = Resource(
    "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", namespaced=True
)
CONFIG_MAP = Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
EVENT = Resource("", "v1", "events", "Event", namespaced=True)
STORAGE_CLASS = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
LEASE = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
CUSTOM_RESOURCE_DEFINITION = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)
STORAGE_POLICY = Resource("storage.billyronks.io", "v1", "storagepolicies", "StoragePolicy", namespaced=False)
MAYASTOR_VOLUME = Resource("openebs.io", "v1", "mayastorvolumes", "MayastorVolume", namespaced=True)
DISK_POOL = Resource("openebs.io", "v1beta2", "diskpools", "DiskPool", namespaced=True)
TIER_MIGRATION = Resource("storage.billyronks.io", "v1", "tiermigrations", "TierMigration", namespaced=False)
