"""When a failed API call may be tried again, and after how long.

The rules, from the HTTP semantics of each verb and what Kubernetes guarantees:

- Reads, DELETE, merge-patches of absolute values and guarded JSON patches are *idempotent*: retried on 429,
  5xx, timeouts and broken connections.
- Writes carrying a resourceVersion (or a DELETE with preconditions) are *preconditioned*: applied at most
  once, so a resend after a lost answer would meet its own write as a 409 Conflict. They are resent blindly
  only when the server certainly did not act; after a failure whose effect is unknown
  (:func:`outcome_unknown`) the client reads the object back and decides (see
  :meth:`couchestor.kube.client.KubeClient.merge_patch`).
- Anything else (POST create, unguarded JSON patch) is retried only when the server certainly did not act:
  a connection that was never established, or a 429 (API priority and fairness rejects before processing).
- 429 and 503 carry ``Retry-After``; it replaces the computed backoff, capped at ``max_retry_after``.
- At most ``max_attempts`` attempts in all; the last error is raised.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from enum import Enum

from couchestor.kube.backoff import REQUEST_BACKOFF, BackoffPolicy
from couchestor.kube.errors import ConnectionFailed, KubeError, ServerError, TooManyRequests, TransportError


class Idempotency(Enum):
    IDEMPOTENT = "idempotent"
    PRECONDITIONED = "preconditioned"  # resent only when certainly not processed, else read back
    UNSAFE = "unsafe"  # retried only when certainly not processed


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: BackoffPolicy = field(default=REQUEST_BACKOFF)
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


NO_RETRY = RetryPolicy(max_attempts=1)


def is_retryable(error: KubeError, idempotency: Idempotency) -> bool:
    """Whether ``error`` may be retried for a request of ``idempotency``."""
    if isinstance(error, TooManyRequests):
        return True
    if isinstance(error, ConnectionFailed) and not error.sent:
        return True
    if idempotency is not Idempotency.IDEMPOTENT:
        return False
    return isinstance(error, ServerError | TransportError)


def outcome_unknown(error: KubeError) -> bool:
    """True when the server may or may not have acted on the request that failed with ``error``: the
    connection broke after sending, the answer did not come in time, or a 5xx (an apiserver may answer 500 or
    504 after etcd applied the write)."""
    if isinstance(error, ConnectionFailed):
        return error.sent
    return isinstance(error, ServerError | TransportError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None when absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
