"""How a client on the same machine finds a running directory without being told.

The directory service writes ``<state_dir>/directory.json`` when its REST API is up::

    {"url": "http://127.0.0.1:8080", "socket": null, "token_file": "/tmp/x/api-token",
     "state_dir": "/tmp/x", "pid": 4242}

and the same content to the well-known pointer ``/run/nuage-ryu/directory.json`` when that
directory is writable (root), so that ``nuage-ctl`` finds a directory started with any
``--state-dir``. Both are removed on a clean stop (the pointer only while it still describes
this service: the last directory started on the machine owns it). A reader ignores a file
whose process is gone (``pid``), so a crash leaves nothing misleading behind.

The file holds where the token is, never the token. Stdlib only (nuage-ctl reads it).
"""

from __future__ import annotations

import json
import logging
import os

LOG = logging.getLogger(__name__)

FILE_NAME = "directory.json"
POINTER = "/run/nuage-ryu/directory.json"
DEFAULT_STATE_DIR = "/var/lib/nuage-ryu"


def api_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL a local client uses for an API bound to ``host`` (a wildcard means loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def describe(state_dir: str, url: str | None, socket: str | None, token_file: str,
             ca_file: str | None = None) -> dict:
    """The discovery record of a directory service running in this process."""
    return {"url": url, "socket": socket or None, "token_file": os.path.abspath(token_file),
            "ca_file": os.path.abspath(ca_file) if ca_file else None,
            "state_dir": os.path.abspath(state_dir), "pid": os.getpid()}


def _write(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)  # where the token is, not the token: readable like the state dir itself
    os.replace(tmp, path)  # readers never see half a file


def publish(record: dict, pointer: str | None = POINTER) -> list[str]:
    """Write the record to the state dir and to ``pointer`` (skipped when not writable); returns the paths."""
    written = []
    for path in (os.path.join(record["state_dir"], FILE_NAME), pointer):
        if not path:
            continue
        try:
            _write(path, record)
            written.append(path)
        except OSError as exc:  # /run/nuage-ryu is root's: another user's directory just has no pointer
            LOG.debug("discovery file %s not written: %s", path, exc)
    return written


def withdraw(record: dict, paths: list[str]) -> None:
    """Remove the files ``publish`` wrote, each only while it still holds this record."""
    for path in paths:
        if read(path, check_pid=False) == record:
            try:
                os.unlink(path)
            except OSError:
                pass


def read(path: str, check_pid: bool = True) -> dict | None:
    """The record in ``path``; None when missing, unreadable, or its process is gone."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not (record.get("url") or record.get("socket")):
        return None
    if check_pid and not pid_running(record.get("pid")):
        return None
    return record


def pid_running(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def candidates() -> list[str]:
    """Where a client looks, in order: the well-known pointer, then the default state dir."""
    return [POINTER, os.path.join(DEFAULT_STATE_DIR, FILE_NAME)]
