"""Minimal CRDs for the three backend resources, so the emulator serves them.

They declare scope, names and the status subresource as the vendors' CRDs do, and keep every field
(``x-kubernetes-preserve-unknown-fields``): the simulators, not the schema, give the objects their meaning.
"""

from __future__ import annotations

from typing import Any

from couchestor.kube.client import KubeClient
from couchestor.kube.errors import AlreadyExists
from couchestor.kube.resources import CUSTOM_RESOURCE_DEFINITION, Resource
from couchestor.replication.resources import (
    CSI_ADDONS_VOLUME_REPLICATION,
    DELL_REPLICATION_GROUP,
    TRIDENT_MIRROR_RELATIONSHIP,
)

JSON = dict[str, Any]
_OPEN: JSON = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _crd(res: Resource, singular: str, short_names: list[str]) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{res.plural}.{res.group}",
            "labels": {"app.kubernetes.io/part-of": "couchestor-sim"},
        },
        "spec": {
            "group": res.group,
            "names": {
                "kind": res.kind,
                "listKind": f"{res.kind}List",
                "plural": res.plural,
                "singular": singular,
                "shortNames": short_names,
            },
            "scope": "Namespaced" if res.namespaced else "Cluster",
            "versions": [
                {
                    "name": res.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": _OPEN, "status": _OPEN},
                        }
                    },
                }
            ],
        },
    }


def backend_crds() -> list[JSON]:
    return [
        _crd(CSI_ADDONS_VOLUME_REPLICATION, "volumereplication", []),
        _crd(TRIDENT_MIRROR_RELATIONSHIP, "tridentmirrorrelationship", ["tmr", "tmrelationship"]),
        _crd(DELL_REPLICATION_GROUP, "dellcsireplicationgroup", ["rg"]),
    ]


async def install_backend_crds(client: KubeClient) -> None:
    """Create the backend CRDs (existing ones are left alone)."""
    for crd in backend_crds():
        try:
            await client.create(CUSTOM_RESOURCE_DEFINITION, crd, type=dict)
        except AlreadyExists:
            pass
