"""A working state for planning several requests in a row: a ``DirectoryState`` that takes changes cheaply.

A bulk request plans each operation on the state the earlier ones left, so that every operation is
validated exactly as the single call would be (a second vport gets the next free address, a zone
created earlier is a valid parent, a duplicate name within the bulk is a conflict). Copying the
whole directory after each operation (``apply_change``) would cost O(size) per operation; this
keeps persistent maps (as the store's mirror does), so one operation costs O(log n) and the vport
indexes the planners read (per-subnet names/addresses, MACs in use) stay precomputed.
"""

from __future__ import annotations

from dataclasses import replace

import immutables

from nuage_ryu.directory import model
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.validate.change import Change, new_object
from nuage_ryu.directory.vport_index import discard, index_vport


def _persistent(mapping) -> immutables.Map:
    return mapping if isinstance(mapping, immutables.Map) else immutables.Map(mapping)


def _persistent_ports(ports: model.SubnetPorts) -> model.SubnetPorts:
    if isinstance(ports.vports, immutables.Map) and isinstance(ports.names, immutables.Map):
        return ports
    return model.SubnetPorts(immutables.Map(ports.vports), immutables.Map((n, True) for n in ports.names),
                             immutables.Map((i, True) for i in ports.ips), ports.max_ip)




class WorkingState:
    """Starts from a snapshot; ``apply(change)`` then ``state`` gives the snapshot after the change."""

    def __init__(self, state: DirectoryState):
        self._tables = {kind: _persistent(state.table(kind)) for kind in KINDS}
        subnet_ports, macs = state.vport_indexes()
        self._subnet_ports = immutables.Map({sid: _persistent_ports(sp) for sid, sp in subnet_ports.items()}) \
            if not isinstance(subnet_ports, immutables.Map) else subnet_ports
        self._macs = macs if isinstance(macs, immutables.Map) else immutables.Map((m, True) for m in macs)
        self._state: DirectoryState | None = state

    @property
    def state(self) -> DirectoryState:
        """The snapshot after every change applied so far (built once per change)."""
        if self._state is None:
            maps = {plural: self._tables[kind] for kind, (_t, plural, _p) in KINDS.items()}
            self._state = DirectoryState(**maps, subnet_ports=self._subnet_ports, macs=self._macs)
        return self._state

    def apply(self, change: Change) -> None:
        """Apply a planned change (what the database will do; guards need no in-memory effect)."""
        for op in change.ops:
            table = self._tables[op.kind]
            old = table.get(op.id)
            if op.action == "insert":
                new = new_object(op)
            elif op.action == "update":
                new = replace(old, **op.fields)
            else:
                new = None
            self._tables[op.kind] = table.set(op.id, new) if new is not None else discard(table, op.id)
            if op.kind == "vport":
                self._index_vport(old, new)
        if change.ops:
            self._state = None

    def _index_vport(self, old, new) -> None:
        self._subnet_ports, self._macs = index_vport(self._subnet_ports, self._macs, old, new)
