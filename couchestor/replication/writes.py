"""Writing what an adapter wants: backend objects (create, or merge-patch only the owned fields that differ),
deletion of owned objects no longer wanted, and member labels on claims.

Every function keeps going after a failed write and returns one message per failure, so one rejected object
never leaves the others unwritten; the caller reports the messages and retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from msgspec import UNSET

from couchestor.kube import resources as core_resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import KubeError, NotFound
from couchestor.kube.resources import Resource
from couchestor.replication.model import JSON, BackendObject
from couchestor.replication.resources import MANAGED_BY, MANAGED_BY_LABEL, OWNER_UID_LABEL
from k8s_schemas.core import ProtectablePersistentVolumeClaim

log = logging.getLogger("couchestor.replication")


def owner_reference(resource: Resource, name: str, uid: str) -> JSON:
    """A controller owner reference to the replication object (for garbage collection)."""
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


async def sync_backend_objects(
    client: KubeClient,
    owner: JSON,
    owner_namespace: str,
    wanted: Iterable[BackendObject],
    current: Mapping[str, JSON],
    resource: Resource,
) -> list[str]:
    """Make the owned objects of ``resource`` exactly ``wanted``; ``owner`` is the owner reference."""
    errors: list[str] = []
    wanted = list(wanted)
    for want in wanted:
        try:
            await _write(client, owner, owner_namespace, want, current.get(want.name))
        except KubeError as exc:
            errors.append(f"{want.resource.kind} {want.name}: {exc}")
    names = {w.name for w in wanted}
    for name, stale in current.items():
        if name in names:
            continue
        try:
            await client.delete(resource, name, stale["metadata"].get("namespace"), missing_ok=True)
            log.info("deleted %s %s (no longer wanted)", resource.kind, name)
        except KubeError as exc:
            errors.append(f"delete {resource.kind} {name}: {exc}")
    return errors


async def _write(
    client: KubeClient, owner: JSON, owner_namespace: str, want: BackendObject, current: JSON | None
) -> None:
    if current is None:
        metadata: JSON = {
            "name": want.name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, OWNER_UID_LABEL: owner["uid"]},
        }
        if want.annotations:
            metadata["annotations"] = dict(want.annotations)
        if want.namespace is not None:
            metadata["namespace"] = want.namespace
            # Owner references cannot cross namespaces (nor point from a cluster-scoped object to a
            # namespaced one): those objects rely on the finalizer alone.
            if want.namespace == owner_namespace:
                metadata["ownerReferences"] = [owner]
        await client.create(
            want.resource, {"metadata": metadata, "spec": want.spec}, want.namespace, type=dict
        )
        log.info("created %s %s for %s %s", want.resource.kind, want.name, owner["kind"], owner["name"])
        return
    spec = current.get("spec") or {}
    spec_patch = {k: v for k, v in want.spec.items() if spec.get(k) != v}
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    annotation_patch = {k: v for k, v in want.annotations.items() if annotations.get(k) != v}
    if not spec_patch and not annotation_patch:
        return
    patch: JSON = {}
    if spec_patch:
        patch["spec"] = spec_patch
    if annotation_patch:
        patch["metadata"] = {"annotations": annotation_patch}
    await client.merge_patch(want.resource, want.name, patch, want.namespace, type=dict)
    log.info("updated %s %s: %s", want.resource.kind, want.name, ", ".join(sorted(spec_patch)))


async def label_members(
    client: KubeClient,
    claims: Iterable[ProtectablePersistentVolumeClaim],
    namespace: str,
    wanted: Mapping[str, str],
    members: Iterable[str],
) -> list[str]:
    """Give the ``members`` among ``claims`` of ``namespace`` the labels ``wanted``, and take them from claims
    that carry them but are no longer members."""
    if not wanted:
        return []
    member_set = set(members)
    errors = []
    for claim in claims:
        meta = claim.metadata
        if meta.namespace != namespace or not meta.name:
            continue
        have = {} if meta.labels is UNSET else meta.labels
        if meta.name in member_set:
            patch: dict[str, str | None] = {k: v for k, v in wanted.items() if have.get(k) != v}
        else:
            patch = {k: None for k, v in wanted.items() if have.get(k) == v}
        if not patch:
            continue
        try:
            await client.merge_patch(
                core_resources.PERSISTENT_VOLUME_CLAIM,
                meta.name,
                {"metadata": {"labels": patch}},
                namespace,
                type=dict,
            )
        except NotFound:
            continue
        except KubeError as exc:
            errors.append(f"label PersistentVolumeClaim {meta.name}: {exc}")
    return errors
