"""Realistic Kubernetes objects for benchmarks: what a real cluster returns, managedFields included."""

from __future__ import annotations

import random
import uuid
from typing import Any


def persistent_volume(i: int, rng: random.Random) -> dict[str, Any]:
    """A Mayastor CSI PV of about 2.5 KB of JSON, shaped like a real apiserver response."""
    vol_uuid = str(uuid.UUID(int=rng.getrandbits(128)))
    name = f"pvc-{vol_uuid}"
    ts = f"2026-0{1 + i % 9}-1{i % 10}T0{i % 10}:1{i % 6}:2{i % 10}Z"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "uid": str(uuid.UUID(int=rng.getrandbits(128))),
            "resourceVersion": str(1000 + i),
            "creationTimestamp": ts,
            "annotations": {
                "pv.kubernetes.io/provisioned-by": "io.openebs.csi-mayastor",
                "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
            },
            "finalizers": ["kubernetes.io/pv-protection", "external-attacher/io-openebs-csi-mayastor"],
            "managedFields": [
                {
                    "manager": "csi-provisioner",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": ts,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:annotations": {".": {}, "f:pv.kubernetes.io/provisioned-by": {}}},
                        "f:spec": {
                            "f:accessModes": {},
                            "f:capacity": {".": {}, "f:storage": {}},
                            "f:claimRef": {".": {}, "f:name": {}, "f:namespace": {}, "f:uid": {}},
                            "f:csi": {".": {}, "f:driver": {}, "f:fsType": {}, "f:volumeAttributes": {}},
                            "f:persistentVolumeReclaimPolicy": {},
                            "f:storageClassName": {},
                            "f:volumeMode": {},
                        },
                    },
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": ts,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:phase": {}}},
                    "subresource": "status",
                },
            ],
        },
        "spec": {
            "capacity": {"storage": f"{10 + i % 490}Gi"},
            "csi": {
                "driver": "io.openebs.csi-mayastor",
                "volumeHandle": vol_uuid,
                "fsType": "ext4",
                "volumeAttributes": {
                    "openebs.io/cas-type": "mayastor",
                    "protocol": "nvmf",
                    "repl": "2",
                    "ioTimeout": "60",
                    "storage.kubernetes.io/csiProvisionerIdentity": "1706867400123-8081-io.openebs.csi-mayastor",
                },
            },
            "accessModes": ["ReadWriteOnce"],
            "claimRef": {
                "kind": "PersistentVolumeClaim",
                "namespace": f"team-{i % 40}",
                "name": f"data-{i}",
                "uid": vol_uuid,
                "apiVersion": "v1",
                "resourceVersion": str(900 + i),
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "mayastor" if i % 10 else "mayastor-thin",
            "volumeMode": "Filesystem",
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "openebs.io/nodename", "operator": "In", "values": [f"node-{i % 12}"]}
                            ]
                        }
                    ]
                }
            },
        },
        "status": {"phase": "Bound", "lastPhaseTransitionTime": ts},
    }


def pv_list(n: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    return {
        "kind": "PersistentVolumeList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(1000 + n)},
        "items": [persistent_volume(i, rng) for i in range(n)],
    }
