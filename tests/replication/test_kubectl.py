"""The sample manifests through the real kubectl, and what ``kubectl get vgr`` / ``vr`` show."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio

from couchestor.replication.resources import VOLUME_GROUP_REPLICATION, VOLUME_REPLICATION
from tests.replication.harness import NS

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl")
if KUBECTL is None:
    pytest.skip("kubectl is not on PATH; the kubectl tests need it", allow_module_level=True)

ORDERS = ("orders-ceph", "orders-trident", "orders-powerstore")
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "replication"


@pytest.fixture
def kubectl(apiserver, tmp_path):
    """kubectl against the in-process emulator; run as a trio subprocess so the emulator keeps serving."""

    async def run(*args: str) -> str:
        cmd = [
            KUBECTL,
            "--kubeconfig",
            str(apiserver.kubeconfig),
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ]
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode()

    return run


async def test_examples_apply_and_get_vgr_shows_columns(emulator_env, kubectl):
    env = emulator_env
    out = await kubectl("apply", "-f", str(EXAMPLES))
    assert "volumegroupreplication.replication.unified.io/postgresql-prod-replication created" in out
    # No provisioner here: give each example claim its volume, as one would.
    for claim in ("postgresql-data", "postgresql-wal", "postgresql-config", *ORDERS):
        await env.bind(claim)
    await env.settled(VOLUME_GROUP_REPLICATION, "postgresql-prod-replication", "Primary")
    for name, state in (
        ("orders-ceph-replication", "Primary"),
        ("orders-trident-replication", "Secondary"),
        ("orders-powerstore-replication", "Primary"),
    ):
        await env.settled(VOLUME_REPLICATION, name, state)

    table = (await kubectl("get", "vgr", "-n", NS)).splitlines()
    assert table[0].split() == ["NAME", "STATE", "CLASS", "PVCS", "AGE"]
    row = table[1]
    assert row.split()[:3] == ["postgresql-prod-replication", "Primary", "ceph-rbd-group-replication"]
    for pvc in ("postgresql-data", "postgresql-wal", "postgresql-config"):
        assert pvc in row
    wide = (await kubectl("get", "volgrouprep", "-n", NS, "-o", "wide")).splitlines()
    assert "DESIRED" in wide[0].split()

    vrs = (await kubectl("get", "vr", "-n", NS)).splitlines()
    assert vrs[0].split() == ["NAME", "STATE", "DESIRED", "PVC", "CLASS", "AGE"]
    rows = {line.split()[0]: line.split()[1:5] for line in vrs[1:]}
    assert rows["orders-trident-replication"] == [
        "Secondary",
        "secondary",
        "orders-trident",
        "trident-replication",
    ]
    classes = await kubectl("get", "vgrc")
    assert "csi-powerstore.dellemc.com" in classes
