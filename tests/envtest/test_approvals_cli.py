"""``couchestor approve`` / ``couchestor decline`` as a user runs them, against the real API server and the
emulator: they set spec.approved, refuse what cannot be answered with one clear line, and agree with the
``kubectl patch`` the docs give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[2]


def couchestor(kube, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "couchestor", *args, "--kubeconfig", str(kube.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def create(kube, phase: str | None = None, **spec) -> str:
    name = f"tm-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "TierMigration",
        "metadata": {"name": name},
        "spec": {"volume": "pvc-1", "targetTier": "hot", **spec},
    }
    created = kube("create", "-f", "-", stdin=json.dumps(body))
    assert created.returncode == 0, created.stderr
    if phase is not None:
        patched = kube(
            "patch",
            "tm",
            name,
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            json.dumps({"status": {"phase": phase}}),
        )
        assert patched.returncode == 0, patched.stderr
    return name


def approved(kube, name: str):
    got = kube("get", "tm", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)["spec"].get("approved")


def test_approve_and_decline_set_spec_approved(kube):
    first, second = create(kube, "AwaitingApproval"), create(kube, "AwaitingApproval")
    done = couchestor(kube, "approve", first, second)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"tiermigration.storage.billyronks.io/{first} approved",
        f"tiermigration.storage.billyronks.io/{second} approved",
    ]
    assert (approved(kube, first), approved(kube, second)) == (True, True)
    again = couchestor(kube, "approve", first)
    assert again.returncode == 0
    assert again.stdout.strip() == f"tiermigration.storage.billyronks.io/{first} already approved"
    declined = create(kube, "AwaitingApproval")
    said_no = couchestor(kube, "decline", declined)
    assert said_no.returncode == 0, said_no.stderr
    assert approved(kube, declined) is False


def test_kubectl_patch_from_the_docs_is_the_same_answer(kube):
    name = create(kube, "AwaitingApproval")
    patched = kube("patch", "tm", name, "--type", "merge", "-p", '{"spec":{"approved":true}}')
    assert patched.returncode == 0, patched.stderr
    assert couchestor(kube, "approve", name).stdout.strip().endswith("already approved")


@pytest.mark.parametrize(
    ("verb", "setup", "message"),
    [
        ("approve", {"phase": "Succeeded"}, "is finished (Succeeded)"),
        ("approve", {"cancel": True}, "is cancelled"),
        (
            "decline",
            {"approved": True},
            "was already approved: an answer is given once; to stop it, set spec.cancel: true",
        ),
        ("approve", {"approved": False}, "was already declined: an answer is given once"),
        ("decline", {"phase": "Syncing"}, "is already running (Syncing); to stop it, set spec.cancel: true"),
    ],
)
def test_answers_that_cannot_be_given_are_one_clear_line(kube, verb, setup, message):
    spec = dict(setup)
    name = create(kube, spec.pop("phase", None), **spec)
    refused = couchestor(kube, verb, name)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"couchestor: error: tiermigration {name!r} {message}"
    assert "Traceback" not in refused.stderr


def test_an_unknown_name_is_reported_and_the_others_still_answered(kube):
    name = create(kube, "AwaitingApproval")
    mixed = couchestor(kube, "approve", "tm-does-not-exist", name)
    assert mixed.returncode == 2
    assert mixed.stderr.strip() == "couchestor: error: tiermigration 'tm-does-not-exist' not found"
    assert approved(kube, name) is True
