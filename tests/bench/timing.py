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


def growth_vs_linear(rows: list[dict[str, Any]], per_volume: str) -> float | None:
    """How many times faster than the volume count the cost grows from the first row to the last (1.00 =
    linear): the ratio of the rows' cost per volume, ``row[per_volume]``; None with fewer than two rows.

    (Per-volume figures keep more digits than the rounded totals at small sizes.)"""
    if len(rows) < 2:
        return None
    return round(rows[-1][per_volume] / rows[0][per_volume], 3)
