"""A backend whose resource is not installed: reported on the object, and deletion still completes."""

from __future__ import annotations

import pytest

from couchestor.replication.resources import VOLUME_REPLICATION
from tests.replication.harness import condition, open_env


@pytest.fixture
async def bare_env(nursery, apiserver):
    environment = await open_env(nursery, apiserver, backend_crds=False)
    try:
        yield environment
    finally:
        await environment.close()


async def test_missing_backend_is_reported_and_deletion_completes(bare_env):
    env = bare_env
    await env.pvc("data")
    await env.vr("data-rep", "trident", "data")

    async def waiting():
        obj = await env.get(VOLUME_REPLICATION, "data-rep")
        message = (obj.get("status") or {}).get("message") or ""
        return "is trident installed" in message and obj

    obj = await env.eventually(waiting, what="missing backend reported")
    assert condition(obj, "Validated")["status"] == "False"
    await env.client.delete(VOLUME_REPLICATION, "data-rep", env.ns)

    async def gone():
        return await env.get(VOLUME_REPLICATION, "data-rep") is None

    await env.eventually(gone, what="deleted without a backend")
