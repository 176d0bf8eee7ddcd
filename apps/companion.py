"""What the apps that work on the VrsAgent's bridges share (DHCP responder, verdict records).

They run in the agent's process, handle packet-ins of its bridges, export their counters on the
agent's Prometheus registry, and must never let one bad packet take their event thread down.
"""

from __future__ import annotations

import time

from nuage_ryu.framework import BaseApp, app_manager

ERROR_LOG_INTERVAL_S = 60.0  # a failing packet-in is logged at most once a minute


class AgentCompanion(BaseApp):
    """Base of an app beside the VrsAgent: finds the agent, registers ``collector()`` once on its registry."""

    def __init__(self, *args, **kwargs):
        self._agent = kwargs.pop("vrs_agent", None)  # tests hand one in; else found at first use
        super().__init__(*args, **kwargs)
        self._collector_registered = False
        self._last_error_log = float("-inf")

    def collector(self):
        """The Prometheus collector of this app's counters."""
        raise NotImplementedError

    def vrs_agent(self):
        """The VrsAgent of this process (None if it is not loaded); registers the metrics once."""
        if self._agent is None:
            self._agent = app_manager.lookup_service_brick("VrsAgent")
        if self._agent is not None and not self._collector_registered:
            self._collector_registered = True
            registry = getattr(getattr(self._agent, "metrics", None), "registry", None)
            if registry is not None:
                try:
                    registry.register(self.collector())
                except ValueError as exc:  # already registered (a second instance on one registry)
                    self.logger.warning("%s metrics not registered: %s", type(self).__name__, exc)
        return self._agent

    def log_failure(self, message: str, *args) -> None:
        """Log the exception being handled, at most once per ERROR_LOG_INTERVAL_S."""
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            self.logger.exception(message + " (logged once a minute)", *args)
