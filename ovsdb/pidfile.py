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
