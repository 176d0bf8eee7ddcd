"""Notice container ports coming, going and getting their ofport on a host's bridge.

The VRS agent recompiles a bridge's flows when one of its vport ports changes.
``InterfaceWatch`` registers an ovsdbapp row event on the Interface table of a
``HostOVS`` connection: any interface created or deleted, and any update of an
interface's ofport, external_ids or name, calls ``callback()`` (statistics and
link-state updates, which ovs-vswitchd writes all the time, do not) from the OVSDB
connection thread. The callback must be quick (the agent only sets an event).
"""

from __future__ import annotations

from collections.abc import Callable

from nuage_ryu.hostovs.host import HostOVS, QuietRowEvent

# The Interface columns the compiled flows depend on: which vport a port is, and its number.
RELEVANT_COLUMNS = ("ofport", "external_ids", "name")


class _VPortInterfaceEvent(QuietRowEvent):
    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__((self.ROW_CREATE, self.ROW_UPDATE, self.ROW_DELETE), "Interface", None)
        self.event_name = "VPortInterfaceChanged"
        self._callback = callback

    def match_fn(self, ev, row, old):
        if ev != self.ROW_UPDATE:
            return True  # any interface added or removed (gateway ports carry no vport id)
        # An update's ``old`` holds only the columns that changed. ovs-vswitchd rewrites every
        # interface's statistics/link columns every few seconds: those must not wake the agent
        # (with 100 ports they did, several times a second); only what the flows depend on does.
        return old is not None and any(hasattr(old, column) for column in RELEVANT_COLUMNS)

    def run(self, ev, row, old):
        self._callback()


class InterfaceWatch:
    """Calls ``callback()`` whenever a vport interface (or the VXLAN port) changes."""

    def __init__(self, host_ovs: HostOVS, callback: Callable[[], None]) -> None:
        self._handler = host_ovs._idl.notify_handler  # the connection's row-event dispatcher
        self._event = _VPortInterfaceEvent(callback)
        self._handler.watch_event(self._event)

    def close(self) -> None:
        self._handler.unwatch_event(self._event)
