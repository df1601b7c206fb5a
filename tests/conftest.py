"""Shared test configuration: fixtures live in tests/fixtures/, one module per part of the emulated cluster."""

pytest_plugins = [
    "tests.fixtures.apiserver",
    "tests.fixtures.envtest",
    "tests.fixtures.prometheus",
]
