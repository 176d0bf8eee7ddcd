"""Waiting for and stopping the processes a lab starts (stdlib only).

Shared by the lab's control plane (plane.py) and the Mininet end-to-end run
(mininet_topos/nuage_e2e.py, which runs under the system Python).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

from nuage_ryu.lab.netns import LabError

POLL = 0.05


def log_tail(path: str | None, lines: int = 12) -> str:
    """The last ``lines`` of a log file, indented on new lines ("" when there is none)."""
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        tail = f.read().splitlines()[-lines:]
    return "\n  " + "\n  ".join(tail)


def wait_for(condition: Callable[[], object], timeout: float, what: str, proc=None, log: str | None = None,
             error: type[Exception] = LabError):
    """Poll ``condition`` until truthy and return its value.

    Raises ``error`` (with the log tail) at the deadline, or as soon as ``proc`` exits.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise error(f"{what}: process exited with {proc.returncode}{log_tail(log)}")
        if time.monotonic() >= deadline:
            raise error(f"timed out after {timeout:g}s waiting for {what}{log_tail(log)}")
        time.sleep(POLL)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Stop one process by pid (``sig``, then SIGKILL after ``timeout``); its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
