"""Fair wall-time comparison of several contenders on a shared machine."""

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
