"""The audit log: one JSON line per mutating REST call, in ``<state_dir>/audit.log``.

Written by one hook in the API's request path (``DirectoryAPI.__call__``), so every write
route, present and future (bulk operations too), is recorded the same way, also when it was
refused (401/403/4xx/5xx). A line (docs/security.md):

    {"time": "2026-12-03T08:15:03.123Z", "principal": "token:ci-bot", "token_id": "...",
     "enterprise": "<id>", "enterprise_name": "acme", "method": "POST",
     "path": "/api/v1/enterprises/<id>/domains", "ids": ["<parent id>", "<created id>"],
     "status": 201, "remote": "127.0.0.1"}

(a refused call also has ``"error": "<error code>"``).

The principal is ``admin``, ``token:<name>`` (``token:<id>`` when unnamed) or ``anonymous``
(no or an unknown token); never the token itself. Size bound: the file is rotated at
``max_bytes`` (default 16 MiB) to ``audit.log.1`` .. ``audit.log.<backups>`` (default 8); the
oldest is dropped.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

AUDIT_FILE = "audit.log"
MAX_BYTES = 16 << 20
BACKUPS = 8


def format_time(epoch: float) -> str:
    """UTC ISO-8601 with milliseconds and a Z, e.g. 2026-12-03T08:15:03.123Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO-8601 time (``Z`` or an offset; no offset = UTC) or a plain number.

    Raises ValueError.
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class AuditLog:
    """Appends audit entries as JSON lines, rotating by size. Thread-safe."""

    def __init__(self, path: str, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def record(self, entry: dict) -> None:
        """Append one entry (``time`` is added when missing)."""
        entry = {"time": format_time(time.time()), **entry}
        line = (json.dumps(entry, separators=(",", ":"), ensure_ascii=True) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size >= self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{i}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{i + 1}")
        if self.backups > 0:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)


def files_oldest_first(path: str, backups: int = BACKUPS) -> list[str]:
    """The log and its rotated files that exist, oldest first."""
    names = [f"{path}.{i}" for i in range(backups, 0, -1)] + [path]
    return [n for n in names if os.path.exists(n)]


def read_entries(path: str, *, enterprise: str | None = None, principal: str | None = None,
                 since: float | None = None, until: float | None = None) -> Iterator[dict]:
    """Entries of the log (rotated files included), oldest first, filtered.

    ``principal`` matches the whole principal (``admin``, ``token:ci``) or just the token's name
    or id; ``since``/``until`` are epoch seconds (inclusive). Lines that are not JSON (a crash
    mid-write) are skipped.
    """
    for name in files_oldest_first(path):
        with open(name, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict) or not _matches(entry, enterprise, principal, since, until):
                    continue
                yield entry


def _matches(entry: dict, enterprise, principal, since, until) -> bool:
    if enterprise is not None and enterprise not in (entry.get("enterprise"), entry.get("enterprise_name")):
        return False
    if principal is not None:
        who = entry.get("principal", "")
        if principal not in (who, who.partition(":")[2], entry.get("token_id")):
            return False
    if since is not None or until is not None:
        try:
            moment = parse_time(entry.get("time", ""))
        except ValueError:
            return False
        if since is not None and moment < since:
            return False
        if until is not None and moment > until:
            return False
    return True
