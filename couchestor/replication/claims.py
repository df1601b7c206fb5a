"""One owner per claim, and claims kept until their owner lets go (csi-addons' owner annotation and
``pvc-protection`` finalizer, under this API's group).

:func:`check_members` is pure: it says why a set of claims cannot be replicated by an object (not bound to a
volume, being deleted before it was protected, owned by another replication object). :func:`protect` and
:func:`release` write the owner annotation and the finalizer, with the claim's ``resourceVersion`` as a
precondition so that two writers never both win one claim (the loser gets a Conflict and re-reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from msgspec import UNSET

from couchestor.kube import resources as core_resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import NotFound
from couchestor.replication.model import Kind
from couchestor.replication.resources import (
    PVC_PROTECTION_FINALIZER,
    VOLUME_GROUP_REPLICATION_OWNER,
    VOLUME_REPLICATION_OWNER,
)
from k8s_schemas.core import ProtectablePersistentVolumeClaim

OWNER_ANNOTATION: dict[Kind, str] = {
    "VolumeReplication": VOLUME_REPLICATION_OWNER,
    "VolumeGroupReplication": VOLUME_GROUP_REPLICATION_OWNER,
}
_OTHER: dict[Kind, Kind] = {
    "VolumeReplication": "VolumeGroupReplication",
    "VolumeGroupReplication": "VolumeReplication",
}


def owner_of(claim: ProtectablePersistentVolumeClaim, kind: Kind) -> str | None:
    """The name of the ``kind`` object that owns ``claim``, or None."""
    return claim.metadata.annotation(OWNER_ANNOTATION[kind]) or None


def protected(claim: ProtectablePersistentVolumeClaim) -> bool:
    finalizers = claim.metadata.finalizers
    return finalizers is not UNSET and PVC_PROTECTION_FINALIZER in finalizers


def check_claim(claim: ProtectablePersistentVolumeClaim, kind: Kind, name: str) -> str | None:
    """Why ``claim`` cannot be replicated by the ``kind`` ``name``, or None (csi-addons' messages)."""
    meta = claim.metadata
    ref = f"{meta.namespace}/{meta.name}"
    other = owner_of(claim, _OTHER[kind])
    if other is not None:
        return f"PersistentVolumeClaim {ref} is already owned by {_OTHER[kind]} {other!r}"
    mine = owner_of(claim, kind)
    if mine is not None and mine != name:
        return f"PersistentVolumeClaim {ref} is already owned by {kind} {mine!r}"
    if meta.deletion_timestamp is not UNSET and not (mine == name and protected(claim)):
        return f"PersistentVolumeClaim {ref} is marked for deletion"
    phase = None if claim.status is UNSET or claim.status.phase is UNSET else claim.status.phase
    if phase != "Bound":
        return f"PersistentVolumeClaim {ref} is not bound to any PV"
    return None


def check_members(claims: Sequence[ProtectablePersistentVolumeClaim], kind: Kind, name: str) -> str | None:
    """The problems of ``claims`` (all of one object's members), at most three named, or None."""
    problems = [p for p in (check_claim(c, kind, name) for c in claims) if p is not None]
    if not problems:
        return None
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


async def protect(client: KubeClient, claim: ProtectablePersistentVolumeClaim, kind: Kind, name: str) -> bool:
    """Make ``claim`` owned by the ``kind`` ``name`` and protected; False when it already was (no write).
    Raises Conflict when the claim changed since it was read (the caller retries with the new version)."""
    meta = claim.metadata
    finalizers = [] if meta.finalizers is UNSET else list(meta.finalizers)
    if owner_of(claim, kind) == name and PVC_PROTECTION_FINALIZER in finalizers:
        return False
    await client.merge_patch(
        core_resources.PERSISTENT_VOLUME_CLAIM,
        meta.name or "",
        {
            "metadata": {
                "resourceVersion": meta.resource_version,
                "annotations": {OWNER_ANNOTATION[kind]: name},
                "finalizers": sorted({*finalizers, PVC_PROTECTION_FINALIZER}),
            }
        },
        meta.namespace or None,
        type=dict,
    )
    return True


def owned_by(
    claims: Iterable[ProtectablePersistentVolumeClaim], kind: Kind, name: str
) -> list[ProtectablePersistentVolumeClaim]:
    return [c for c in claims if owner_of(c, kind) == name]


async def release(client: KubeClient, claim: ProtectablePersistentVolumeClaim, kind: Kind) -> None:
    """Remove the owner annotation of ``kind`` and the protection finalizer (a claim gone already is fine).

    The finalizer goes only when no owner of the other kind remains (it never should, but a finalizer left by
    mistake would keep a claim forever, one removed by mistake only leaves it unprotected)."""
    meta = claim.metadata
    finalizers = [] if meta.finalizers is UNSET else list(meta.finalizers)
    patch: dict[str, object] = {
        "resourceVersion": meta.resource_version,
        "annotations": {OWNER_ANNOTATION[kind]: None},
    }
    if owner_of(claim, _OTHER[kind]) is None and PVC_PROTECTION_FINALIZER in finalizers:
        patch["finalizers"] = [f for f in finalizers if f != PVC_PROTECTION_FINALIZER] or None
    try:
        await client.merge_patch(
            core_resources.PERSISTENT_VOLUME_CLAIM,
            meta.name or "",
            {"metadata": patch},
            meta.namespace or None,
            type=dict,
        )
    except NotFound:
        pass
