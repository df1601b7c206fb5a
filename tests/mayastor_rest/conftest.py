"""Fixtures of the Mayastor REST tests (helpers in :mod:`tests.mayastor_rest.harness`)."""

import pytest

from tests.mayastor_rest.harness import open_env


@pytest.fixture
async def env(apiserver):
    async for value in open_env(apiserver):
        yield value
