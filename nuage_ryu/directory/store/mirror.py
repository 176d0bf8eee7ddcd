"""The store's replica, model side: IDL row events -> immutable ``DirectoryState`` and ``CounterSnapshot``.

What the store replicates is declared here, once (``REPLICATED``, ``initial_conditions``): the
tables of the model and the agents' counter reports. The mirror applies each row change to
persistent (immutable, structure-sharing) maps, so applying a change costs O(log n) and
publishing a snapshot costs nothing, whatever the size of the directory.

Counters (table ``HostCounters``, one row per host) are mirrored apart from the state: a report
neither invalidates the state's indexes nor wakes the listeners.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import immutables
import ovs.db.idl

from nuage_ryu.directory import model
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.store.rows import TABLE_KIND, row_to_counters, row_to_object, table_name

COUNTERS_TABLE = "HostCounters"
# Table -> the columns replicated (None: all of them). Every table of the schema, for now; a
# monitor condition per table (see initial_conditions) narrows which rows.
REPLICATED: dict[str, tuple[str, ...] | None] = {**{table: None for table in TABLE_KIND}, COUNTERS_TABLE: None}


def schema_path() -> str:
    """Path of the installed ``nuage_directory.ovsschema``."""
    return str(resources.files("nuage_ryu.db").joinpath("nuage_directory.ovsschema"))


def schema_helper(schema: str) -> ovs.db.idl.SchemaHelper:
    """The IDL schema of what the store replicates (``REPLICATED``)."""
    helper = ovs.db.idl.SchemaHelper(location=schema)
    for table, cols in REPLICATED.items():
        if cols is None:
            helper.register_table(table)
        else:
            helper.register_columns(table, list(cols))
    return helper


def initial_conditions(all_counters: bool) -> dict[str, list]:
    """Monitor conditions to set before the first monitor request (which then carries them).

    Without ``all_counters`` (agents) no counter report at first: a store replicates only the
    reports of the hosts it reports for (see ``counters.CounterWatch``).
    """
    return {} if all_counters else {COUNTERS_TABLE: [False]}


def _discard(m: immutables.Map, key) -> immutables.Map:
    return m.delete(key) if key in m else m


_EMPTY_PORTS = model.SubnetPorts(immutables.Map(), immutables.Map(), immutables.Map(), 0)


class Mirror:
    """IDL rows mirrored into immutable model objects, published as snapshots.

    Not thread-safe by itself: the store calls it under its IDL lock. ``on_new_state`` is
    called after each newly published state (the store wakes its listener thread with it).
    """

    def __init__(self, on_new_state: Callable[[], None]):
        self._on_new_state = on_new_state
        self._tables: dict[str, immutables.Map] = {kind: immutables.Map() for kind in KINDS}
        # Per-subnet vport index (names, addresses) and the MAC set, kept the same way, so that
        # planning a vport create never walks all vports.
        self._subnet_ports: immutables.Map = immutables.Map()
        self._macs: immutables.Map = immutables.Map()
        self._dirty: set[str] = set(KINDS)
        self._counter_rows: immutables.Map = immutables.Map()
        self._counters_dirty = False
        self.state = DirectoryState()
        self.counters = model.NO_COUNTERS
        self.version = 0  # counts published states

    # -- row changes (from Idl.notify) --
    def on_row(self, event, row) -> None:
        """Apply one row change reported by the IDL."""
        table = table_name(row)
        kind = TABLE_KIND.get(table)
        if kind is None:
            if table == COUNTERS_TABLE:
                rid = str(row.uuid)
                if event == ovs.db.idl.ROW_DELETE:
                    self._counter_rows = _discard(self._counter_rows, rid)
                else:
                    self._counter_rows = self._counter_rows.set(rid, row_to_counters(row))
                self._counters_dirty = True
            return
        rid = str(row.uuid)
        objects = self._tables[kind]
        old = objects.get(rid)
        if event == ovs.db.idl.ROW_DELETE:
            new = None
            if old is not None:
                self._tables[kind] = objects.delete(rid)
        else:
            new = row_to_object(kind, row)
            self._tables[kind] = objects.set(rid, new)
        if kind == "vport":
            self._index_vport(old, new)
        self._dirty.add(kind)

    def _index_vport(self, old, new) -> None:
        if old is not None:
            sp = self._subnet_ports.get(old.subnet)
            if sp is not None and old.id in sp.vports:
                sp = model.SubnetPorts(sp.vports.delete(old.id), _discard(sp.names, old.name),
                                       _discard(sp.ips, old.ip), sp.max_ip)
                self._subnet_ports = (self._subnet_ports.set(old.subnet, sp) if len(sp.vports)
                                      else self._subnet_ports.delete(old.subnet))
            self._macs = _discard(self._macs, old.mac)
        if new is not None:
            sp = self._subnet_ports.get(new.subnet) or _EMPTY_PORTS
            # max_ip only grows: it is an allocation hint ("continue after the last one handed out").
            sp = model.SubnetPorts(sp.vports.set(new.id, new), sp.names.set(new.name, True),
                                   sp.ips.set(new.ip, True), max(sp.max_ip, model.ip_int(new.ip)))
            self._subnet_ports = self._subnet_ports.set(new.subnet, sp)
            self._macs = self._macs.set(new.mac, True)

    def reconcile(self, idl: ovs.db.idl.Idl) -> None:
        """Rebuild the tables whose row count differs from the IDL's replica.

        After a reconnect the IDL reloads everything without reporting deletions; a size
        mismatch reveals it. Skipped while a transaction is being built (its rows are not
        committed).
        """
        if idl.txn is not None:
            return
        for kind, (table, _p, _q) in KINDS.items():
            rows = idl.tables[table].rows
            if len(rows) != len(self._tables[kind]):
                self._tables[kind] = immutables.Map({str(u): row_to_object(kind, r) for u, r in rows.items()})
                self._dirty.add(kind)
                if kind == "vport":
                    self._subnet_ports, self._macs = immutables.Map(), immutables.Map()
                    for vport in self._tables["vport"].values():
                        self._index_vport(None, vport)
        rows = idl.tables[COUNTERS_TABLE].rows
        if len(rows) != len(self._counter_rows):
            self._counter_rows = immutables.Map({str(u): row_to_counters(r) for u, r in rows.items()})
            self._counters_dirty = True

    def publish(self) -> None:
        """Publish the changes applied since the last call as new snapshots."""
        if self._counters_dirty:
            self._counters_dirty = False
            self.counters = model.CounterSnapshot(self._counter_rows)
        if not self._dirty:
            return
        self._dirty.clear()
        maps = {plural: self._tables[kind] for kind, (_t, plural, _p) in KINDS.items()}
        self.state = DirectoryState(**maps, subnet_ports=self._subnet_ports, macs=self._macs)
        self.version += 1
        self._on_new_state()

    # -- lookups for writers (under the IDL lock) --
    def has(self, kind: str, obj_id: str) -> bool:
        """True if the object is mirrored (whether or not published yet)."""
        return obj_id in self._tables[kind]

    def counter_report(self, row_id: str) -> model.HostCounters | None:
        """The mirrored ``HostCounters`` row ``row_id``, if it has reached the replica."""
        return self._counter_rows.get(row_id)
