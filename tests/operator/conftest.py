import pytest


@pytest.fixture
def loads():
    """name -> (initial tier, IOPS): one volume to promote, one to demote, one to leave alone."""
    return {"heavy": ("cold", 8000.0), "idle": ("hot", 0.0), "middle": ("hot", 2000.0)}


@pytest.fixture
async def env(nursery, apiserver, prometheus_factory, loads):
    from tests.operator.harness import open_env

    environment = await open_env(nursery, apiserver, prometheus_factory, loads)
    try:
        yield environment
    finally:
        await environment.stop_all()
        await environment.client.aclose()
