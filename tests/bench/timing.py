"""Fair wall-time comparison of several contenders on a shared machine, and growth against linear."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def best_times(contenders: dict[str, tuple[Callable[[], Any], int]]) -> dict[str, float]:
    """The best wall time of each contender (name -> (function, number of runs)) over its runs.

    Runs are interleaved round-robin (a, b, c, a, b, c, ...) so that every contender sees the same machine
    load: a shared machine's load drifts within seconds, and timing one contender's runs after another's
    made ratios swing by tens of percent. The collector is emptied before each run so that no run pays for
    another's garbage.
    """
    best = dict.fromkeys(contenders, float("inf"))
    for round_ in range(max(runs for _, runs in contenders.values())):
        for name, (fn, runs) in contenders.items():
            if round_ >= runs:
                continue
            gc.collect()
            start = time.perf_counter()
            result = fn()
            best[name] = min(best[name], time.perf_counter() - start)
            del result
    return best


def growth_vs_linear(rows: list[dict[str, Any]], cost: str) -> float | None:
    """How much faster than the volume count ``rows[*][cost]`` grows from the first row to the last
    (1.00 = linear), or None with fewer than two rows."""
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    return round((last[cost] / first[cost]) / (last["volumes"] / first["volumes"]), 3)
