"""The controller under the shipped RBAC, with the operator's ServiceAccount token, on a real kube-apiserver that
enforces owner-reference permissions as OpenShift does (an owner reference with ``blockOwnerDeletion`` needs
``update`` on the owner's ``finalizers``): every backend, single volumes and groups, through to deletion."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import yaml

from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.errors import AlreadyExists
from couchestor.kube.resources import Resource
from couchestor.replication.resources import (
    CSI_ADDONS_VOLUME_REPLICATION,
    TRIDENT_MIRROR_RELATIONSHIP,
    VOLUME_GROUP_REPLICATION,
    VOLUME_REPLICATION,
)
from tests.replication.harness import open_env

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "operator" / "rbac.yaml"
SA_NAMESPACE = "kube-system"
CLUSTER_ROLE = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
CLUSTER_ROLE_BINDING = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
)
SERVICE_ACCOUNT = Resource("", "v1", "serviceaccounts", "ServiceAccount", True)


async def _operator_kubeconfig(real_cluster, tmp_path: Path) -> Path:
    """Apply the shipped ServiceAccount, ClusterRole and binding (as they are in the file now), and write a
    kubeconfig holding a token of that ServiceAccount."""
    docs = {d["kind"]: d for d in yaml.safe_load_all(RBAC.read_text()) if d}
    async with KubeClient(load_kubeconfig([real_cluster.kubeconfig]), qps=0) as admin:
        for res, kind in (
            (SERVICE_ACCOUNT, "ServiceAccount"),
            (CLUSTER_ROLE, "ClusterRole"),
            (CLUSTER_ROLE_BINDING, "ClusterRoleBinding"),
        ):
            body = docs[kind]
            ns = body["metadata"].get("namespace")
            try:
                await admin.create(res, body, ns, type=dict)
            except AlreadyExists:
                current = await admin.get(res, body["metadata"]["name"], ns, type=dict)
                body = dict(
                    body,
                    metadata=dict(body["metadata"], resourceVersion=current["metadata"]["resourceVersion"]),
                )
                await admin.replace(res, body, ns, type=dict)
    sa = docs["ServiceAccount"]["metadata"]["name"]
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=str(real_cluster.ca_path)), timeout=10
    ) as http:
        answer = await http.post(
            f"{real_cluster.url}/api/v1/namespaces/{SA_NAMESPACE}/serviceaccounts/{sa}/token",
            headers={"Authorization": f"Bearer {real_cluster.token}"},
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        answer.raise_for_status()
        token = answer.json()["status"]["token"]
    path = tmp_path / "operator.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "real",
                        "cluster": {
                            "server": real_cluster.url,
                            "certificate-authority": str(real_cluster.ca_path),
                        },
                    }
                ],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": "real", "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )
    return path


@pytest.fixture
async def operator_env(nursery, real_cluster, tmp_path):
    kubeconfig = await _operator_kubeconfig(real_cluster, tmp_path)
    environment = await open_env(nursery, real_cluster, real=True, controller_kubeconfig=kubeconfig)
    try:
        yield environment
    finally:
        await environment.close()


async def test_every_backend_runs_under_the_shipped_rbac(operator_env):
    env = operator_env
    for claim in ("c", "t", "d"):
        await env.pvc(claim)
    await env.pvc("g1", {"app": "db"})
    await env.pvc("g2", {"app": "db"})
    await env.vr("c-rep", "ceph", "c")
    await env.vr("t-rep", "trident", "t")
    await env.vr("d-rep", "dell", "d")
    await env.vgr("grp", "trident", {"app": "db"})
    for name in ("c-rep", "t-rep", "d-rep"):
        await env.settled(VOLUME_REPLICATION, name, "Primary")
    await env.settled(VOLUME_GROUP_REPLICATION, "grp", "Primary")
    csi = await env.get(CSI_ADDONS_VOLUME_REPLICATION, "c-rep")
    assert csi["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
    tmr = await env.get(TRIDENT_MIRROR_RELATIONSHIP, "grp")
    assert tmr["metadata"]["ownerReferences"][0]["kind"] == "VolumeGroupReplication"

    await env.set_state(VOLUME_GROUP_REPLICATION, "grp", "secondary")
    await env.settled(VOLUME_GROUP_REPLICATION, "grp", "Secondary", healthy=True)
    for res, name in (
        (VOLUME_REPLICATION, "c-rep"),
        (VOLUME_REPLICATION, "d-rep"),
        (VOLUME_GROUP_REPLICATION, "grp"),
    ):
        await env.client.delete(res, name, env.ns)

    async def cleaned():
        left = [
            await env.get(r, n) for r, n in ((VOLUME_REPLICATION, "c-rep"), (VOLUME_GROUP_REPLICATION, "grp"))
        ]
        claim = await env.get(resources.PERSISTENT_VOLUME_CLAIM, "g1")
        return left == [None, None] and "replication.unified.io/pvc-protection" not in claim["metadata"].get(
            "finalizers", []
        )

    await env.eventually(cleaned, what="deleted, claims released")
    assert (await env.client.list_all(CSI_ADDONS_VOLUME_REPLICATION, env.ns, type=dict)).items == []
