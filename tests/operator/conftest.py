import pytest


@pytest.fixture
def loads():
    """name -> (initial tier, IOPS): one volume to promote, one to demote, one to leave alone."""
    return {"heavy": ("cold", 8000.0), "idle": ("hot", 0.0), "middle": ("hot", 2000.0)}


@pytest.fixture
def backend():
    """Which storage backend the cluster plays: ``crd`` (MayastorVolume objects) or ``rest`` (Mayastor 2.x)."""
    return "crd"


@pytest.fixture
async def env(nursery, apiserver, prometheus_factory, loads, backend):
    from tests.operator.harness import open_env

    environment = await open_env(nursery, apiserver, prometheus_factory, loads, backend=backend)
    try:
        yield environment
    finally:
        await environment.stop_all()
        await environment.client.aclose()
