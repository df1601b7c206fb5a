"""Client-side request rate limit: a token bucket on the trio clock.

Like client-go's ``flowcontrol.NewTokenBucketRateLimiter(qps, burst)``: the bucket holds at most ``burst``
tokens and refills at ``qps`` per second; every request takes one. Waiters reserve their token up front (the
count may go negative), so they are served in arrival order without a lock, and a waiter that is cancelled
gives its token back.
"""

from __future__ import annotations

import trio


class TokenBucket:
    """``qps`` requests per second on average, bursts of up to ``burst``. ``qps <= 0`` disables the limit."""

    def __init__(self, qps: float, burst: int) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._updated: float | None = None

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.qps)
        self._updated = now

    def reserve(self) -> float:
        """Take a token now and return how many seconds to wait before using it (0 when one was available)."""
        if self.qps <= 0:
            return 0.0
        self._refill(trio.current_time())
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> None:
        """Wait until a request may be sent. Cancellable; a cancelled wait returns its token."""
        delay = self.reserve()
        if delay <= 0:
            await trio.lowlevel.checkpoint()
            return
        try:
            await trio.sleep(delay)
        except trio.Cancelled:
            self._tokens += 1.0
            raise
