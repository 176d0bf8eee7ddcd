"""Daemons we started ourselves, found by their pidfile and stopped by that pid (never by name)."""

from __future__ import annotations

import os
import signal
import time


def running_pid(pidfile: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive, else None."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def stop_pid(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send ``sig`` to ``pid`` and wait until it is gone; SIGKILL after ``timeout`` seconds."""
    if pid is None:
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


class ServerFiles:
    """The files of one ovsdb-server kept under ``self.dir`` (a relay, a cluster member).

    A mixin for dataclasses with a ``dir`` field: the unix socket every such server also
    serves, its pidfile and log, and the pid of the running process.
    """

    dir: str

    @property
    def socket_path(self) -> str:
        return os.path.join(self.dir, "db.sock")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.dir, "ovsdb-server.pid")

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "ovsdb-server.log")

    @property
    def pid(self) -> int | None:
        """Pid of the running server, from its pidfile (None if not running)."""
        return running_pid(self.pidfile)

