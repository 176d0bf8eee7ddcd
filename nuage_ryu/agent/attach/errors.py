"""The attach service's one error type, and the one place where its dependencies' failures map to it.

Each ``kind`` tells the caller how to react (and sets the agent socket's HTTP status):
invalid: bad request, fix the input · not_found: a named directory object is missing ·
conflict: the name/interface is taken · unavailable / timeout: retry later ·
check_failed: CHECK found a difference · failed: anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from nuage_ryu.agent.attach.links import LinkError
from nuage_ryu.directory.client import CannotConnect
from nuage_ryu.directory.errors import BadRequest, Conflict, DirectoryError, NotFound, ValidationError

# What a refusal of the directory means for an attach request.
_DIRECTORY_KINDS = {NotFound: "not_found", Conflict: "conflict", BadRequest: "invalid", ValidationError: "invalid"}


class AttachError(Exception):
    """An attach/detach/check request failed; ``kind`` says how (module docstring)."""

    STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "check_failed": 412,
              "failed": 500, "unavailable": 503, "timeout": 504}

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind if kind in self.STATUS else "failed"
        self.message = message

    @property
    def status(self) -> int:
        """The agent socket's HTTP status for this error."""
        return self.STATUS[self.kind]

    def as_dict(self) -> dict:
        """The JSON error body of the agent socket."""
        return {"error": {"code": self.kind, "message": self.message}}


def as_attach_error(exc: BaseException) -> AttachError:
    """Any failure of a step (directory, links, anything unexpected) as an AttachError."""
    if isinstance(exc, AttachError):
        return exc
    if isinstance(exc, CannotConnect):
        return AttachError("unavailable", f"directory unreachable: {exc}")
    if isinstance(exc, DirectoryError):
        kind = _DIRECTORY_KINDS.get(type(exc))
        if kind == "not_found":
            return AttachError(kind, exc.message)
        if kind is not None:
            return AttachError(kind, f"directory: {exc.message}")
        if exc.status >= 500:  # Unavailable, or an internal error: the directory may answer later
            return AttachError("unavailable", f"directory: {exc.message}")
        return AttachError("failed", f"directory: {exc.message}")
    if isinstance(exc, LinkError):
        return AttachError("failed", str(exc))
    return AttachError("failed", f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def directory_errors() -> Iterator[None]:
    """Directory calls in the block: a refusal or an outage leaves it as an AttachError."""
    try:
        yield
    except (DirectoryError, CannotConnect) as exc:
        raise as_attach_error(exc) from None


@contextlib.contextmanager
def ovsdb_errors(what: str = "local OVSDB", kind: str = "unavailable") -> Iterator[None]:
    """Calls of the host's OVSDB in the block: any failure leaves it as AttachError(kind, "what: ...")."""
    try:
        yield
    except AttachError:
        raise
    except Exception as exc:  # HostOVSError, or whatever the injected OVS object raises
        raise AttachError(kind, f"{what}: {exc}") from None
