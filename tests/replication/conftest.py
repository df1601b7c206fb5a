import pytest


@pytest.fixture
async def env(nursery, apiserver):
    from tests.replication.harness import open_env

    environment = await open_env(nursery, apiserver)
    try:
        yield environment
    finally:
        await environment.close()
