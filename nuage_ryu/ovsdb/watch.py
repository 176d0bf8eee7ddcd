"""Notice container ports coming, going and getting their ofport on a host's bridge.

The VRS agent recompiles a bridge's flows when one of its vport ports changes.
``InterfaceWatch`` registers an ovsdbapp row event on the Interface table of a
``HostOVS`` connection: any interface created or deleted, and any update of an
interface that carries a nuage vport id or of any interface's ofport, calls ``callback()`` from the OVSDB
connection thread. The callback must be quick (the agent only sets an event).
"""

from __future__ import annotations

from collections.abc import Callable

from ovsdbapp.backend.ovs_idl import event

from nuage_ryu.ovsdb.host import EXT_VPORT_ID, VXLAN_PORT, HostOVS


class _VPortInterfaceEvent(event.RowEvent):
    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__((self.ROW_CREATE, self.ROW_UPDATE, self.ROW_DELETE), "Interface", None)
        self.event_name = "VPortInterfaceChanged"
        self._callback = callback

    def match_fn(self, ev, row, old):
        if ev != self.ROW_UPDATE or row.name == VXLAN_PORT:
            return True  # any interface added or removed (gateway ports carry no vport id)
        ids = getattr(row, "external_ids", {}) or {}
        old_ids = getattr(old, "external_ids", {}) if old is not None else {}
        if EXT_VPORT_ID in ids or EXT_VPORT_ID in (old_ids or {}):
            return True
        return old is not None and hasattr(old, "ofport")  # a gateway port got (or lost) its ofport

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
