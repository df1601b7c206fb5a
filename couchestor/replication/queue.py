"""A work queue of object keys, like client-go's ``workqueue``: deduplicated, with delayed re-adds.

A key added while already waiting is queued once; a key added with a delay becomes ready at that time (the
earliest of several delays wins). Level-triggered consumers read the current object when they get its key,
so coalescing loses nothing.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

import trio

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Keys ready now (FIFO) plus keys ready later. Not thread-safe; all trio tasks of one run."""

    def __init__(self) -> None:
        self._ready: OrderedDict[K, None] = OrderedDict()
        self._later: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._seq = itertools.count()
        self._wakeup = trio.Event()

    def __len__(self) -> int:
        return len(self._ready) + len(self._due)

    def add(self, key: K) -> None:
        """Make ``key`` ready now (no-op when it already is)."""
        self._due.pop(key, None)
        self._ready[key] = None
        self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        """Make ``key`` ready after ``delay`` seconds, unless it is ready sooner anyway."""
        if delay <= 0:
            self.add(key)
            return
        if key in self._ready:
            return
        when = trio.current_time() + delay
        if key in self._due and self._due[key] <= when:
            return
        self._due[key] = when
        heapq.heappush(self._later, (when, next(self._seq), key))
        self._wakeup.set()

    async def get(self) -> K:
        """The next ready key; waits for one. Cancellable (nothing is lost when cancelled)."""
        while True:
            self._promote()
            if self._ready:
                # Checkpoint before taking the key, so a cancellation here loses nothing.
                await trio.lowlevel.checkpoint()
                if not self._ready:
                    continue
                key, _ = self._ready.popitem(last=False)
                return key
            deadline = self._later[0][0] if self._later else float("inf")
            with trio.move_on_at(deadline):
                await self._wakeup.wait()
            self._wakeup = trio.Event()

    def _promote(self) -> None:
        now = trio.current_time()
        while self._later and self._later[0][0] <= now:
            when, _, key = heapq.heappop(self._later)
            if self._due.get(key) == when:  # else superseded by an earlier delay or an add()
                del self._due[key]
                self._ready[key] = None
