"""Fixtures of the Mayastor REST tests (helpers in :mod:`tests.mayastor_rest.harness`)."""

import pytest

from couchestor.sim.mayastor_rest.state import RELEASES
from tests.mayastor_rest.harness import open_env


@pytest.fixture
async def env(apiserver):
    async for value in open_env(apiserver):
        yield value


@pytest.fixture(params=RELEASES)
async def release_env(request, apiserver):
    """The same cluster on each simulated release: 2.7 (no pool cordon) and 2.8+."""
    async for value in open_env(apiserver, release=request.param):
        yield value
