"""msgspec Structs for every Kubernetes resource CoucheStor reads or writes.

See :mod:`k8s_schemas.meta` for the conventions (minimal fields, UNSET optionals, camelCase, ``gc=False``).
The CRD YAML in ``manifests/`` is generated from these Structs.
"""

from k8s_schemas.core import (
    Event as Event,
    Lease as Lease,
    Namespace as Namespace,
    PersistentVolume as PersistentVolume,
    PersistentVolumeClaim as PersistentVolumeClaim,
    StorageClass as StorageClass,
)
from k8s_schemas.mayastor import DiskPool as DiskPool, MayastorVolume as MayastorVolume
from k8s_schemas.meta import (
    CachedObjectMeta as CachedObjectMeta,
    Condition as Condition,
    LabelSelector as LabelSelector,
    ObjectList as ObjectList,
    ObjectMeta as ObjectMeta,
    ObjectWatchEvent as ObjectWatchEvent,
    RawWatchEvent as RawWatchEvent,
    Status as Status,
)
from k8s_schemas.storage_policy import StoragePolicy as StoragePolicy, StoragePolicySpec as StoragePolicySpec
from k8s_schemas.tier_migration import TierMigration as TierMigration
