import pytest


@pytest.fixture(params=["emulator", "real"])
async def env(request, nursery, apiserver):
    """The replication environment on the API server emulator and on a real kube-apiserver (skipped without
    ``KUBEBUILDER_ASSETS``): every scenario runs against both."""
    from tests.replication.harness import open_env

    if request.param == "real":
        environment = await open_env(nursery, request.getfixturevalue("real_cluster"), real=True)
    else:
        environment = await open_env(nursery, apiserver)
    try:
        yield environment
    finally:
        await environment.close()


@pytest.fixture
async def emulator_env(nursery, apiserver):
    """The environment on the emulator only, for scenarios that inject its chaos faults."""
    from tests.replication.harness import open_env

    environment = await open_env(nursery, apiserver)
    try:
        yield environment
    finally:
        await environment.close()
