"""Checks made once before the operator starts, so a missing CRD or permission is one clear line, not an
endless stream of watch retries."""

from __future__ import annotations

from couchestor.errors import UserError
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import Forbidden, NotFound
from couchestor.replication.resources import VOLUME_GROUP_REPLICATION
from couchestor.settings import Settings

_HINTS = {
    resources.STORAGE_POLICY: "install the CRDs: kubectl apply -f manifests/crds/",
    resources.MAYASTOR_VOLUME: (
        "this cluster does not serve the MayastorVolume resource (Mayastor 2.x has none): "
        "run with --backend mayastor-rest, or install the simulation CRDs for a test cluster"
    ),
    resources.DISK_POOL: "is Mayastor installed? DiskPools come with its CRDs",
    resources.TIER_MIGRATION: "install the CRDs: kubectl apply -f manifests/crds/",
    VOLUME_GROUP_REPLICATION: "install the replication CRDs: kubectl apply -f manifests/crds/ (replication-*.yaml)",
}


async def check_cluster(client: KubeClient, settings: Settings) -> None:
    """Raise :class:`UserError` naming what is missing when a resource the operator needs is not served or
    not readable with the operator's credentials."""
    checks: list[tuple[resources.Resource, str | None]] = [
        (resources.STORAGE_POLICY, None),
        (resources.TIER_MIGRATION, None),
        (resources.PERSISTENT_VOLUME, None),
        (resources.PERSISTENT_VOLUME_CLAIM, None),
        (resources.DISK_POOL, settings.mayastor_namespace),
    ]
    if settings.backend == "mayastor-crd":
        checks.append((resources.MAYASTOR_VOLUME, settings.mayastor_namespace))
    if settings.enable_replication:
        checks.append((VOLUME_GROUP_REPLICATION, None))
    for resource, namespace in checks:
        try:
            await client.list_page(resource, namespace, type=dict, limit=1)
        except NotFound:
            hint = _HINTS.get(resource, "")
            raise UserError(
                f"{resource.kind} ({resource.plural}.{resource.group or 'core'}/{resource.version}) is not served"
                f" by the API server{': ' + hint if hint else ''}"
            ) from None
        except Forbidden as exc:
            raise UserError(
                f"not allowed to list {resource.kind}: {exc.message or exc}; apply manifests/operator/rbac.yaml"
            ) from None


__all__ = ["check_cluster"]
