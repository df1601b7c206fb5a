"""``metav1.Status`` failures, raised by any layer and rendered once by the HTTP layer."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """A request the API server refuses; carries the exact ``Status`` body a real server would send."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: JSON | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str, group: str, kind: str, **extra: Any) -> JSON:
    out: JSON = {"name": name} if name else {}
    if group:
        out["group"] = group
    out["kind"] = kind
    out.update(extra)
    return out


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(group, resource)} "{name}" not found',
        details=_details(name, group, resource),
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(group, resource)} "{name}" already exists',
        details=_details(name, group, resource),
    )


def conflict(group: str, resource: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, resource)} "{name}": {why}',
        details=_details(name, group, resource),
    )


def stale_conflict(group: str, resource: str, name: str) -> ApiError:
    return conflict(
        group,
        resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, details={})


class FieldError:
    """One ``causes[]`` entry of a 422: the field path, its reason, and its message."""

    __slots__ = ("detail", "field", "reason", "value")

    def __init__(self, field: str, reason: str, detail: str, value: Any = None) -> None:
        self.field = field
        self.reason = reason
        self.detail = detail
        self.value = value

    def render(self) -> str:
        """The message text apimachinery's ``field.Error`` renders for this error type."""
        if self.reason == "FieldValueRequired":
            return f"{self.field}: Required value" + (f": {self.detail}" if self.detail else "")
        if self.reason == "FieldValueForbidden":
            return f"{self.field}: Forbidden: {self.detail}"
        if self.reason == "FieldValueNotSupported":
            return f"{self.field}: Unsupported value: {_quote(self.value)}: {self.detail}"
        if self.reason == "FieldValueTypeInvalid":
            return f"{self.field}: Invalid value: {_quote(self.value)}: {self.detail}"
        if self.reason == "FieldValueTooLong":
            return f"{self.field}: Too long: {self.detail}"
        if self.reason == "FieldValueTooMany":
            return f"{self.field}: Too many: {_quote(self.value)}: {self.detail}"
        if self.reason == "FieldValueDuplicate":
            return f"{self.field}: Duplicate value: {_quote(self.value)}"
        return f"{self.field}: Invalid value: {_quote(self.value)}: {self.detail}"

    def cause(self) -> JSON:
        message = self.render()
        prefix = f"{self.field}: "
        return {
            "reason": self.reason,
            "message": message[len(prefix) :] if message.startswith(prefix) else message,
            "field": self.field,
        }


class GoValue:
    """A value kube-apiserver shows as Go prints it (``map[string]interface {}{"a":1}``), e.g. a whole default."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return _go(self.value)


def _go(value: Any) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}{" + ", ".join(f'"{k}":{_go(value[k])}' for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go(v) for v in value) + "}"
    if value is None:
        return "interface {}(nil)"
    return _quote(value)


def _quote(value: Any) -> str:
    if isinstance(value, GoValue):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return '"object"' if isinstance(value, dict) else '"array"'
    return str(value)


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid naming every failing field, as ``apierrors.NewInvalid`` builds it."""
    rendered = [e.render() for e in errors]
    body = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {body}',
        details=_details(name, group, kind, causes=[e.cause() for e in errors]),
    )
