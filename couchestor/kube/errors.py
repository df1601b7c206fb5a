"""Typed errors of the Kubernetes client.

Two families:

- :class:`ApiError` and its subclasses: the API server answered with an error status. Each carries the HTTP
  ``code`` and the ``reason``/``message``/``details`` of the ``metav1.Status`` body, and the call that failed.
  The subclass is chosen from the code (and, for 409, the reason), as apimachinery's ``errors.IsXxx`` do.
- :class:`ConnectionFailed` and :class:`CallTimeout` (:class:`WatchStalled` for a silent watch): no answer at
  all. :class:`TLSFailure`: the server's certificate (or ours) was refused, which no retry can fix.

:class:`ConfigError` (and :class:`CredentialError`) report a bad kubeconfig, in-cluster environment or
credential plugin. Errors the user can fix (configuration, unreachable server, credentials, RBAC) also derive
from :class:`~couchestor.errors.UserError`, so the CLI prints them as one line.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from couchestor.errors import CoucheStorError, UserError
from k8s_schemas.meta import Status, StatusCause, StatusDetails


class KubeError(CoucheStorError):
    """Base class of every error raised by :mod:`couchestor.kube`."""


class ConfigError(KubeError, UserError):
    """The kubeconfig or in-cluster environment is missing or invalid; the message says which part."""


class CredentialError(ConfigError):
    """Credentials could not be obtained (token file unreadable, ``exec`` plugin failed)."""


class TransportError(KubeError):
    """The call got no HTTP answer. ``call`` names it, e.g. ``GET /api/v1/persistentvolumes``."""

    def __init__(self, call: str, detail: str) -> None:
        super().__init__(f"{call}: {detail}")
        self.call = call
        self.detail = detail


class ConnectionFailed(TransportError, UserError):
    """The connection could not be made or broke before a response arrived.

    ``sent`` is False when the request certainly never reached the server (connect errors), which makes even a
    non-idempotent request safe to retry.
    """

    def __init__(self, call: str, detail: str, *, sent: bool) -> None:
        super().__init__(call, detail)
        self.sent = sent


class CallTimeout(TransportError, UserError):
    """The call did not complete within its timeout."""


class WatchStalled(CallTimeout):
    """An open watch stream carried no byte for its progress deadline: the connection is presumed dead."""


class TLSFailure(KubeError, UserError):
    """The TLS handshake with the API server failed in a way retrying cannot fix (the certificate does not
    verify against the configured CA or server name, or the server refused the client certificate).

    Deliberately not a :class:`TransportError`, so the retry rules never try it again; ``call`` names the call.
    """

    def __init__(self, call: str, detail: str) -> None:
        super().__init__(f"{call}: {detail}")
        self.call = call
        self.detail = detail


class OutcomeUnknown(TransportError):
    """A preconditioned write got no answer and reading the object back failed too, so whether it was
    applied is unknown: read the object and look for the write before deciding again."""


class ApiError(KubeError):
    """The API server answered ``code`` >= 400 with a ``Status`` body (or something it was turned into)."""

    def __init__(self, call: str, status: Status) -> None:
        self.call = call
        self.status = status
        self.code: int = status.code if status.code is not UNSET else 0
        self.reason: str = status.reason if status.reason is not UNSET else ""
        self.message: str = status.message if status.message is not UNSET else ""
        self.details: StatusDetails | None = status.details if status.details is not UNSET else None
        text = f"{call}: {self.code} {self.reason or 'error'}"
        super().__init__(f"{text}: {self.message}" if self.message else text)


class BadRequest(ApiError):
    """400: the request itself is malformed."""


class Unauthorized(ApiError, UserError):
    """401: the credentials were missing, expired or rejected."""


class Forbidden(ApiError, UserError):
    """403: authenticated, but RBAC does not allow this verb on this resource."""


class NotFound(ApiError):
    """404: the object (or the resource type, e.g. a CRD not installed) does not exist."""


class MethodNotAllowed(ApiError):
    """405: the resource does not support this verb."""


class Conflict(ApiError):
    """409: optimistic-concurrency failure; re-read the object and try again."""


class AlreadyExists(Conflict):
    """409 with reason ``AlreadyExists``: create of a name that is taken."""


class Gone(ApiError):
    """410 (reason ``Expired`` or ``Gone``): the resourceVersion or continue token is too old; relist."""


class UnsupportedMediaType(ApiError):
    """415: the patch type is not supported for this resource."""


class Invalid(ApiError):
    """422: the object failed validation (or a JSON-patch ``test`` failed). ``causes`` lists the fields."""

    @property
    def causes(self) -> list[StatusCause]:
        if self.details is None or self.details.causes is UNSET:
            return []
        return self.details.causes


class TooManyRequests(ApiError):
    """429: throttled by API priority and fairness. ``retry_after`` is the server's hint in seconds."""

    def __init__(self, call: str, status: Status, retry_after: float | None = None) -> None:
        super().__init__(call, status)
        if retry_after is None and self.details is not None and self.details.retry_after_seconds is not UNSET:
            retry_after = float(self.details.retry_after_seconds)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed (``InternalError``, ``ServiceUnavailable``, ``Timeout`` ...)."""


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    415: UnsupportedMediaType,
    422: Invalid,
    429: TooManyRequests,
}

_STATUS_DECODER = msgspec.json.Decoder(Status)


def status_from_body(code: int, body: bytes, *, fallback_reason: str = "") -> Status:
    """The ``Status`` carried by an error response; a synthetic one when the body is not a Status.

    Proxies and load balancers in front of the API server answer with HTML or plain text, which must still
    produce a typed error rather than a decode exception.
    """
    try:
        status = _STATUS_DECODER.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()
        status = Status(message=text[:200] if text else "", reason=fallback_reason)
    status.code = code
    if status.reason is UNSET and fallback_reason:
        status.reason = fallback_reason
    return status


def api_error(call: str, status: Status, *, retry_after: float | None = None) -> ApiError:
    """The :class:`ApiError` subclass for ``status`` (by code, and by reason for 409)."""
    code = status.code if status.code is not UNSET else 0
    if code == 409 and status.reason == "AlreadyExists":
        return AlreadyExists(call, status)
    if code == 429:
        return TooManyRequests(call, status, retry_after)
    if code >= 500:
        return ServerError(call, status)
    cls = _BY_CODE.get(code, ApiError)
    return cls(call, status)


def is_gone(status: Status) -> bool:
    """True when ``status`` means "too old resourceVersion": code 410 or reason ``Expired``/``Gone``."""
    return status.code == 410 or status.reason in ("Expired", "Gone")
