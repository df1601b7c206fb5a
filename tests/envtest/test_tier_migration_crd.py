"""The TierMigration CRD and the StoragePolicy's new fields, as the real API server (and the emulator) enforce
them: schema, defaults, CEL rules (immutability, one-way cancel, approval set once), printer columns."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.kubectl


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(kube, body: dict) -> subprocess.CompletedProcess[str]:
    return kube("create", "-f", "-", "-o", "json", stdin=json.dumps(body))


def _tm(name: str, **spec) -> dict:
    return {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "TierMigration",
        "metadata": {"name": name},
        "spec": {"volume": "pvc-1234", "targetTier": "hot", **spec},
    }


def _patch(kube, name: str, spec: dict) -> subprocess.CompletedProcess[str]:
    return kube("patch", "tm", name, "--type", "merge", "-p", json.dumps({"spec": spec}), "-o", "json")


def test_a_request_is_created_with_defaults(kube):
    name = _name("req")
    created = _create(kube, _tm(name))
    assert created.returncode == 0, created.stderr
    spec = json.loads(created.stdout)["spec"]
    assert spec == {"volume": "pvc-1234", "targetTier": "hot", "cancel": False}


def test_the_schema_rejects_bad_requests(kube):
    bad_tier = _create(kube, _tm(_name("bad"), targetTier="lukewarm"))
    assert bad_tier.returncode != 0
    assert "targetTier" in bad_tier.stderr
    assert "lukewarm" in bad_tier.stderr
    no_volume = _create(kube, {**_tm(_name("bad")), "spec": {"targetTier": "cold"}})
    assert no_volume.returncode != 0
    assert "volume" in no_volume.stderr
    assert "Required" in no_volume.stderr
    bad_volume = _create(kube, _tm(_name("bad"), volume="Not_A_PV"))
    assert bad_volume.returncode != 0
    assert "spec.volume" in bad_volume.stderr
    no_spec = _create(kube, {**_tm(_name("bad")), "spec": None})
    assert no_spec.returncode != 0


def test_what_identifies_a_move_is_immutable(kube):
    name = _name("imm")
    assert _create(kube, _tm(name, policy="gold")).returncode == 0
    for change, message in (
        ({"volume": "pvc-other"}, "volume is immutable"),
        ({"targetTier": "cold"}, "targetTier is immutable"),
        ({"policy": "silver"}, "policy is immutable"),
        ({"policy": None}, "policy is immutable"),
        ({"targetPool": "pool-1"}, "targetPool is immutable"),
    ):
        patched = _patch(kube, name, change)
        assert patched.returncode != 0, change
        assert message in patched.stderr, (change, patched.stderr)
    pinned = _name("pool")
    assert _create(kube, _tm(pinned, targetPool="pool-1")).returncode == 0
    moved = _patch(kube, pinned, {"targetPool": "pool-2"})
    assert "targetPool is immutable" in moved.stderr


def test_approval_is_given_once_and_cancel_is_one_way(kube):
    name = _name("appr")
    assert _create(kube, _tm(name)).returncode == 0
    approved = _patch(kube, name, {"approved": True})
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["spec"]["approved"] is True
    again = _patch(kube, name, {"approved": True})
    assert again.returncode == 0, again.stderr  # a repeated approval changes nothing
    for change in ({"approved": False}, {"approved": None}):
        flipped = _patch(kube, name, change)
        assert flipped.returncode != 0, change
        assert "approved is set once" in flipped.stderr
    cancelled = _patch(kube, name, {"cancel": True})
    assert cancelled.returncode == 0, cancelled.stderr
    for change in ({"cancel": False}, {"cancel": None}):
        resumed = _patch(kube, name, change)
        assert resumed.returncode != 0, change
        assert "cancel is one-way" in resumed.stderr
    declined = _name("decl")
    assert _create(kube, _tm(declined)).returncode == 0
    assert _patch(kube, declined, {"approved": False}).returncode == 0


def test_status_goes_through_its_subresource_with_a_known_phase(kube):
    name = _name("st")
    assert _create(kube, _tm(name)).returncode == 0
    status = {"phase": "Syncing", "fromTier": "cold", "toTier": "hot", "progress": 42, "bytesToCopy": 10}
    ok = kube(
        "patch",
        "tm",
        name,
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        json.dumps({"status": status}),
    )
    assert ok.returncode == 0, ok.stderr
    bad = kube(
        "patch",
        "tm",
        name,
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        json.dumps({"status": {"phase": "Teleporting"}}),
    )
    assert bad.returncode != 0
    assert "Teleporting" in bad.stderr
    over = kube(
        "patch", "tm", name, "--subresource", "status", "--type", "merge", "-p", '{"status":{"progress":101}}'
    )
    assert over.returncode != 0
    table = kube("get", "tm", name)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "VOLUME", "FROM", "TO", "PHASE", "PROGRESS", "AGE"]
    assert row.split()[:6] == [name, "pvc-1234", "cold", "hot", "Syncing", "42"]


def _policy(name: str, **spec) -> dict:
    return {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_policy_accepts_windows_approval_and_limits_with_defaults(kube):
    created = _create(
        kube,
        _policy(
            _name("sp"),
            approval="Manual",
            approvalTTL="8h",
            maintenanceWindows=[
                {"schedule": "0 22 * * MON-FRI", "duration": "6h", "timeZone": "Europe/Paris"}
            ],
            blackouts=[{"start": "2026-12-24", "end": "2026-12-26", "timeZone": "Europe/Paris"}],
            maxRebuildsPerNode=3,
        ),
    )
    assert created.returncode == 0, created.stderr
    spec = json.loads(created.stdout)["spec"]
    assert spec["maxRebuildsPerPool"] == 1
    assert spec["tierMigrationHistoryLimit"] == 10
    assert spec["maintenanceWindows"][0]["timeZone"] == "Europe/Paris"
    plain = json.loads(_create(kube, _policy(_name("sp"))).stdout)["spec"]
    assert (plain["approval"], plain["approvalTTL"], plain["maxRebuildsPerNode"]) == ("Automatic", "24h", 2)
    assert "maintenanceWindows" not in plain


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"approval": "Sometimes"}, "spec.approval"),
        ({"approvalTTL": "a day"}, "spec.approvalTTL"),
        ({"maxRebuildsPerNode": 0}, "spec.maxRebuildsPerNode"),
        ({"maxRebuildsPerPool": 101}, "spec.maxRebuildsPerPool"),
        ({"tierMigrationHistoryLimit": -1}, "spec.tierMigrationHistoryLimit"),
        ({"maintenanceWindows": [{"schedule": "0 22 * * *"}]}, "spec.maintenanceWindows[0].duration"),
        ({"maintenanceWindows": [{"schedule": "0 22 * * *", "duration": "6 hours"}]}, "duration"),
        ({"blackouts": [{"start": "2026-12-24"}]}, "spec.blackouts[0].end"),
    ],
)
def test_policy_schema_rejects_bad_fields(kube, spec, field):
    created = _create(kube, _policy(_name("bad"), **spec))
    assert created.returncode != 0
    assert field in created.stderr, created.stderr
