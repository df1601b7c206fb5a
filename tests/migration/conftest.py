"""The operator end to end on the emulated cluster, for the migration safety tests (the same environment as
:mod:`tests.operator`, on both storage backends)."""

import pytest


@pytest.fixture
def loads():
    """name -> (initial tier, IOPS): one volume to promote, one to leave alone."""
    return {"heavy": ("cold", 8000.0), "middle": ("hot", 2000.0)}


@pytest.fixture(params=["crd", "rest"])
def backend(request):
    return request.param


@pytest.fixture
async def env(nursery, apiserver, prometheus_factory, loads, backend):
    from tests.operator.harness import open_env

    environment = await open_env(nursery, apiserver, prometheus_factory, loads, backend=backend)
    try:
        yield environment
    finally:
        await environment.stop_all()
        await environment.client.aclose()
