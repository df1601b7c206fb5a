"""How long the reconciler waits between passes when changes keep coming."""

import pytest

from couchestor.tiering.reconcile import MIN_INTERVAL, pause_after


@pytest.mark.parametrize(
    ("cpu", "pause"),
    [(0.0, MIN_INTERVAL), (0.01, MIN_INTERVAL), (0.05, MIN_INTERVAL), (0.5, 2.0), (3.0, 12.0)],
)
def test_a_costly_pass_is_followed_by_a_pause_four_times_as_long(cpu: float, pause: float) -> None:
    assert pause_after(cpu) == pytest.approx(pause)


def test_back_to_back_passes_use_at_most_a_fifth_of_a_core() -> None:
    for cpu in (0.001, 0.1, 1.0, 10.0):
        assert cpu / (cpu + pause_after(cpu)) <= 0.2 + 1e-9
