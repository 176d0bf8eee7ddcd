"""When a fresh agent's bridge got its first converged table, measured from process start.

``StartupClock`` records named milestones of one agent process (seconds since the process
started, read from the kernel's start time of this process, so the interpreter's start-up and
the imports are counted too). Each bridge reports two milestones of its own: its OpenFlow
connection came up, and the sync engine confirmed its first complete table. At the latter
``first_table`` returns the whole story once, for one log line and the start-up gauge.

Pure bookkeeping: no I/O except reading /proc/self/stat once.
"""

from __future__ import annotations

import os
import threading
import time

# Milestones in the order an agent passes them; bridges add OPENFLOW_UP and FIRST_TABLE.
PROCESS = "process"                 # the process exists (0 by definition)
APP_START = "app_start"             # the agent app's start() was called (imports and config done)
BRIDGE_READY = "bridge_ready"       # br-int, its controller target and the VXLAN port are in place
DIRECTORY_SYNCED = "directory_synced"  # the directory's initial contents arrived
AGENT_STARTED = "agent_started"     # start()'s own work is done; its event loop starts next
OPENFLOW_UP = "openflow_up"         # the bridge's OpenFlow connection is up (per bridge)
FIRST_TABLE = "first_table"         # its first complete table is confirmed by the switch (per bridge)


def seconds_since_process_start() -> float:
    """Seconds since this process started (kernel start time; falls back to 0.0 off Linux)."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        # Field 22 (starttime, clock ticks after boot); the command name (field 2) may hold spaces.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


class StartupClock:
    """Milestones of one agent process; per-bridge milestones keyed by host name. Thread-safe."""

    def __init__(self, now: float | None = None, since_start: float | None = None) -> None:
        """``now`` (monotonic) and ``since_start`` (seconds since the process started) pin the origin;
        by default both are read now."""
        now = time.monotonic() if now is None else now
        since_start = seconds_since_process_start() if since_start is None else since_start
        self._origin = now - max(0.0, since_start)
        self._lock = threading.Lock()
        self._agent: dict[str, float] = {PROCESS: 0.0}
        self._bridges: dict[str, dict[str, float]] = {}
        self._reported: set[str] = set()

    def mark(self, milestone: str, now: float | None = None) -> float:
        """Record an agent-wide milestone (the first time only); its seconds since process start."""
        at = (time.monotonic() if now is None else now) - self._origin
        with self._lock:
            return self._agent.setdefault(milestone, at)

    def bridge_mark(self, host: str, milestone: str, now: float | None = None) -> float:
        """Record a milestone of one bridge (the first time only); its seconds since process start."""
        at = (time.monotonic() if now is None else now) - self._origin
        with self._lock:
            return self._bridges.setdefault(host, {}).setdefault(milestone, at)

    def first_table(self, host: str, now: float | None = None) -> dict[str, float] | None:
        """``host``'s first table is confirmed: all milestones so far (once per host; else None)."""
        self.bridge_mark(host, FIRST_TABLE, now)
        with self._lock:
            if host in self._reported:
                return None
            self._reported.add(host)
            return {**self._agent, **self._bridges[host]}


def describe(milestones: dict[str, float]) -> str:
    """One line for the log: ``first_table 1.23 s (app_start 0.61, bridge_ready 0.70, ...)``."""
    ordered = sorted(milestones.items(), key=lambda kv: kv[1])
    steps = ", ".join(f"{name} {at:.3f}" for name, at in ordered if name not in (PROCESS, FIRST_TABLE))
    return f"first table {milestones[FIRST_TABLE]:.3f} s after process start ({steps})"
