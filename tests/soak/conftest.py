"""The short soaks first: with ``--dist loadgroup`` (``just test-slow``) each worker starts on its first unit
of work at once, so the two soaks (about 5 minutes each, the longest tests by far) run side by side instead of
one after the other behind shorter tests."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: the other tests keep their order.
    items.sort(key=lambda item: item.nodeid.split("::")[0] != "tests/soak/test_soak.py")
