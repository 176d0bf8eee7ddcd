"""Where the time of one attach or detach goes: named phases, measured on the monotonic clock.

Phases of an attach: ``directory`` (vport created or bound, IPAM), ``veth`` (pair created,
peer in the container namespace), ``netns`` (address, route, up inside it), ``ovsdb`` (port
row committed and ofport assigned), ``flows`` (until the agent confirmed the vport's flows
on the bridge), ``status`` (until the directory shows the vport ``up``). A detach has
``directory``, ``ovsdb`` and ``veth``. The agent exports them as the histogram
``nuage_attach_phase_seconds`` (metrics.py); the agent socket returns them as ``timings``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

ATTACH_PHASES = ("directory", "veth", "netns", "ovsdb", "flows", "status")
DETACH_PHASES = ("directory", "ovsdb", "veth")

# (operation "attach"|"detach", {phase: seconds}, total seconds, outcome "ok"|error kind)
PhaseObserver = Callable[[str, dict[str, float], float, str], None]


class PhaseTimes:
    """The phases of one operation, in seconds."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.started = time.monotonic()
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (added up if the phase occurs more than once)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - start)

    def add(self, name: str, seconds: float) -> None:
        """Account ``seconds`` (clamped at 0) to phase ``name``."""
        self.phases[name] = self.phases.get(name, 0.0) + max(0.0, seconds)

    def total(self) -> float:
        """Seconds since the operation started."""
        return time.monotonic() - self.started

    def as_ms(self) -> dict[str, float]:
        """{phase: milliseconds} plus ``total``, rounded (the agent socket's ``timings``)."""
        out = {name: round(sec * 1000, 2) for name, sec in self.phases.items()}
        out["total"] = round(self.total() * 1000, 2)
        return out
