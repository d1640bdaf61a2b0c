"""Domain errors: each carries a stable code (for the API) and a message (translated for the UI)."""

from __future__ import annotations


class DomainError(Exception):
    """A rule refused an action. ``code`` is stable; ``message`` is for people."""

    code = "refused"
    status = 422

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        if code:
            self.code = code
        self.field = field


class ValidationFailed(DomainError):
    """Input broke a rule; ``errors`` maps each field to its messages."""

    code = "validation_failed"
    status = 422

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        self.errors = errors
        first = next(iter(errors.values()), [""])[0]
        super().__init__(message or first)


class PermissionDenied(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409
