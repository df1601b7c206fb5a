"""Exponential backoff with jitter, on the trio clock.

:class:`Backoff` has the shape of client-go's ``ExponentialBackoffManager`` and kube-rs's
``DefaultBackoff``: each delay doubles from ``initial`` up to ``cap``, is stretched by a random factor in
``[1, 1 + jitter)`` so that many clients restarting together spread out, and the sequence starts over once a
``reset_after`` period passed without any failure. :data:`WATCH_BACKOFF` holds client-go's watch-restart
values.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """The parameters of a backoff sequence (delays in seconds)."""

    initial: float = 0.8
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 1.0
    reset_after: float = 120.0

    def delay(self, failures: int, rand: float) -> float:
        """The delay after the ``failures``-th consecutive failure (1-based), for ``rand`` in [0, 1)."""
        base = self.initial * self.factor ** max(failures - 1, 0)
        return min(self.cap, min(self.cap, base) * (1.0 + self.jitter * rand))


# client-go reflector: 800 ms growing x2 to 30 s, jitter 1.0, reset after 2 min of health (about 0.22 QPS
# per reflector against an unhealthy API server).
WATCH_BACKOFF = BackoffPolicy()
# Request retries: short, since the caller is waiting.
REQUEST_BACKOFF = BackoffPolicy(initial=0.2, cap=5.0, factor=2.0, jitter=1.0, reset_after=30.0)


@dataclass(slots=True)
class Backoff:
    """A running backoff sequence; one per retry loop, not shared between tasks.

    ``rng`` is injectable so tests can pin the jitter.
    """

    policy: BackoffPolicy = WATCH_BACKOFF
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    _last_failure: float | None = None

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before the next attempt."""
        now = trio.current_time()
        if self._last_failure is not None and now - self._last_failure >= self.policy.reset_after:
            self.failures = 0
        self._last_failure = now
        self.failures += 1
        return self.policy.delay(self.failures, self.rng.random())

    def reset(self) -> None:
        """Start over at ``initial`` (after an unambiguous success)."""
        self.failures = 0
        self._last_failure = None

    async def sleep(self) -> float:
        """Record a failure and sleep for the delay; returns the delay. Cancellable."""
        delay = self.next_delay()
        await trio.sleep(delay)
        return delay
