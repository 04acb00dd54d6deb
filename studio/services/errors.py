"""Errors a service raises; each front end turns them into its own response."""

from typing import Any


class ServiceError(Exception):
    """A request the inventory rules refuse; nothing was changed."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra


class ValidationError(ServiceError):
    status = 422
    code = "validation_error"

    def __init__(self, fields: dict[str, str], message: str | None = None):
        names = ", ".join(sorted(fields))
        super().__init__(message or f"Invalid value for: {names}.", fields)


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class VersionConflict(Conflict):
    code = "version_conflict"


class EditConflict(Conflict):
    """A field the edit changes was changed by someone else since the edit began.

    `current` is the paint as it is now, `edited` the fields the edit changes;
    `conflicts` (also in the API's answer) gives each clashing field's value then and now.
    """

    code = "edit_conflict"

    def __init__(
        self,
        message: str,
        fields: dict[str, str],
        *,
        current: Any,
        edited: frozenset[str],
        conflicts: dict[str, dict[str, Any]],
    ):
        super().__init__(message, fields, current_version=current.version, conflicts=conflicts)
        self.current = current
        self.edited = edited


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class BadQuery(ServiceError):
    """Query parameters a listing cannot read; each is named in `fields`."""

    status = 400
    code = "bad_request"

    def __init__(self, fields: dict[str, str]):
        super().__init__(f"Invalid query parameter: {', '.join(sorted(fields))}.", fields)
