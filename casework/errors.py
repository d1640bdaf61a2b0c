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
    """Input broke a rule; ``errors`` maps each field to its messages, ``field_codes`` to stable codes."""

    code = "validation_failed"
    status = 422

    def __init__(
        self,
        errors: dict[str, list[str]],
        message: str | None = None,
        *,
        field_codes: dict[str, list[str]] | None = None,
    ) -> None:
        self.errors = errors
        self.field_codes = field_codes or {}
        first = next(iter(errors.values()), [""])[0]
        super().__init__(message or first)


class Problems:
    """Collects what is wrong with some input, field by field, with a stable code and a message for each."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}
        self.codes: dict[str, list[str]] = {}

    def add(self, field: str, code: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)
        self.codes.setdefault(field, []).append(code)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors, field_codes=self.codes)


class PermissionDenied(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409
