"""Errors that reach users: each carries an HTTP status, a stable code and a message that says what to fix."""

from __future__ import annotations

from typing import Any


class AuroraError(Exception):
    """Base for errors Aurora reports to a user."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class BadInput(AuroraError):
    """The request is malformed or breaks a limit; nothing of it was stored."""

    status = 400
    code = "bad_input"


class TooLarge(BadInput):
    status = 413
    code = "too_large"


class LimitExceeded(BadInput):
    """A configured limit (series per request, cardinality per metric, ...) was hit."""

    status = 422
    code = "limit_exceeded"


class Unauthorized(AuroraError):
    status = 401
    code = "unauthorized"


class Forbidden(AuroraError):
    status = 403
    code = "forbidden"


class NotFound(AuroraError):
    status = 404
    code = "not_found"


class Conflict(AuroraError):
    status = 409
    code = "conflict"


class ConfigError(AuroraError):
    status = 400
    code = "config_error"
