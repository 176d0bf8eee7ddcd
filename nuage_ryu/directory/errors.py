"""One error hierarchy for the directory; each class maps to one HTTP status.

The pure core (validation, IPAM) and the store raise these; the REST layer turns
any of them into ``{"error": {"code", "message"}}`` with the class's status.
"""

from __future__ import annotations


class DirectoryError(Exception):
    """Base class: a request the directory refuses, with a message for the user."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict:
        """The JSON error body."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(DirectoryError):
    """Malformed request: not JSON, wrong JSON types, unknown fields or parameters."""

    status = 400
    code = "bad_request"


class PayloadTooLarge(BadRequest):
    """Request body above the limit."""

    status = 413
    code = "payload_too_large"


class RequestTimeout(BadRequest):
    """The request body did not arrive within the server's read timeout."""

    status = 408
    code = "request_timeout"


class Unauthorized(DirectoryError):
    """Missing or unknown bearer token."""

    status = 401
    code = "unauthorized"


class Forbidden(DirectoryError):
    """Valid token, but not allowed to do this (e.g. enterprise token creating an enterprise)."""

    status = 403
    code = "forbidden"


class NotFound(DirectoryError):
    """No such object (or not visible to this token)."""

    status = 404
    code = "not_found"


class MethodNotAllowed(DirectoryError):
    """The path exists but not with this method."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]):
        super().__init__(message)
        self.allowed = allowed


class Conflict(DirectoryError):
    """Conflicts with existing state: duplicate name/VNI/IP/priority, overlap, exhaustion, dependents."""

    status = 409
    code = "conflict"


class ValidationError(DirectoryError):
    """Well-formed but invalid value (bad CIDR, port range, reference to another domain...)."""

    status = 422
    code = "validation_error"


class Unavailable(DirectoryError):
    """The database cannot be reached or did not commit in time; the request may be retried."""

    status = 503
    code = "unavailable"
