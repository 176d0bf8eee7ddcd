"""The store's replica, model side: IDL row events -> immutable ``DirectoryState`` and ``CounterSnapshot``.

What the store replicates is declared here, once (``REPLICATED``, ``initial_conditions``): the
tables of the model and the agents' counter reports. The mirror applies each row change to
persistent (immutable, structure-sharing) maps, so applying a change costs O(log n) and
publishing a snapshot costs nothing, whatever the size of the directory.

Counters (table ``HostCounters``, one row per host) are mirrored apart from the state: a report
neither invalidates the state's indexes nor wakes the listeners.

The agents' private rows (``VPortStatus``, ``HostLiveness``: see docs/scale.md) are joined into
the model objects that own them (vport ``status``, host ``connected``/``last_seen``), so the
snapshots look as if those were columns of the VPort and Host rows. A store that follows only
an agent's share (a scoped store) receives them for its own hosts only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import resources

import immutables
import ovs.db.idl

from nuage_ryu.directory import model
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.store import placement_rows
from nuage_ryu.directory.store.changes import ChangeLog
from nuage_ryu.directory.store.echo import KnownRow
from nuage_ryu.directory.store.rows import (
    LIVENESS_TABLE,
    STATUS_TABLE,
    TABLE_KIND,
    VERDICT_TABLE,
    linked_row,
    row_to_counters,
    row_to_object,
    table_name,
)
from nuage_ryu.directory.store.trace_rows import TRACE_TABLE, TraceRows
from nuage_ryu.directory.vport_index import Placement, discard, index_vport

COUNTERS_TABLE = "HostCounters"
# Table -> the columns replicated (None: all of them). Every table of the schema; a monitor
# condition per table (see initial_conditions, and nuage_ryu.directory.scope) narrows which rows.
REPLICATED: dict[str, tuple[str, ...] | None] = {
    **{table: None for table in TABLE_KIND}, COUNTERS_TABLE: None, STATUS_TABLE: None, LIVENESS_TABLE: None,
    VERDICT_TABLE: None, TRACE_TABLE: None}
# The object that owns a private row: private table -> (kind, its link column).
PRIVATE_OWNER = {STATUS_TABLE: ("vport", "port_status"), LIVENESS_TABLE: ("host", "liveness")}


def schema_path() -> str:
    """Path of the installed ``nuage_directory.ovsschema``."""
    return str(resources.files("nuage_ryu.db").joinpath("nuage_directory.ovsschema"))


def schema_helper(schema: str, placement_writer: bool = False) -> ovs.db.idl.SchemaHelper:
    """The IDL schema of what the store replicates (``REPLICATED``); ``placement_writer``: also
    the placement index's keys (a writer of vports keeps it: ``placement_rows.py``)."""
    helper = ovs.db.idl.SchemaHelper(location=schema)
    for table, cols in REPLICATED.items():
        if cols is None:
            helper.register_table(table)
        else:
            helper.register_columns(table, list(cols))
    if placement_writer:
        placement_rows.register(helper)
    return helper


def initial_conditions(all_counters: bool) -> dict[str, list]:
    """Monitor conditions to set before the first monitor request (which then carries them).

    Without ``all_counters`` (agents) no counter report at first: a store replicates only the
    reports of the hosts it reports for (see ``counters.CounterWatch``), and no verdict record
    (only the REST API's store follows those: ``store/verdicts.py``).
    """
    return {} if all_counters else {COUNTERS_TABLE: [False], VERDICT_TABLE: [False]}






# What an object shows while its private row is not in the replica.
PRIVATE_DEFAULTS = {STATUS_TABLE: {"status": "down"}, LIVENESS_TABLE: {"connected": False, "last_seen": 0}}


def _private_fields(table: str, row) -> dict:
    """The model fields a private row holds (see ``PRIVATE_OWNER``)."""
    if table == STATUS_TABLE:
        return {"status": row.status}
    return {"connected": row.connected, "last_seen": row.last_seen}


class Mirror:
    """IDL rows mirrored into immutable model objects, published as snapshots.

    Not thread-safe by itself: the store calls it under its IDL lock. ``on_new_state`` is
    called after each newly published state (the store wakes its listener thread with it).
    """

    def __init__(self, on_new_state: Callable[[], None],
                 complete_domains: Callable[[], frozenset[str]] | None = None,
                 on_verdict_row: Callable[[object, object], None] | None = None,
                 placement_keys: placement_rows.KeyRows | None = None):
        """``complete_domains``: for a scoped store, the domains whose rows the replica holds
        completely (their monitor conditions are acknowledged), published with each state as
        ``DirectoryState.complete_domains``; None: a full replica (every domain is complete).
        ``on_verdict_row(event, row)``: where Verdict rows go (they are no part of the state).
        ``placement_keys``: follows the placement index's rows (a writer's store).

        A scoped store (an agent) does not join host liveness into its snapshots: nothing in an
        agent reads it, and its own heartbeat then wakes nothing either."""
        self._on_new_state = on_new_state
        self._on_verdict_row = on_verdict_row
        self._placement_keys = placement_keys
        self._joined = (STATUS_TABLE,) if complete_domains is not None else tuple(PRIVATE_OWNER)
        self._complete_domains = complete_domains
        self._complete: frozenset[str] | None = None
        # Private rows, by row id: their model fields, and which object links to them.
        self._private: dict[str, immutables.Map] = {STATUS_TABLE: immutables.Map(),
                                                     LIVENESS_TABLE: immutables.Map()}
        self._private_owner: dict[str, dict[str, str]] = {STATUS_TABLE: {}, LIVENESS_TABLE: {}}
        self._private_link: dict[str, dict[str, str]] = {STATUS_TABLE: {}, LIVENESS_TABLE: {}}  # owner -> row
        self._tables: dict[str, immutables.Map] = {kind: immutables.Map() for kind in KINDS}
        # Per-subnet vport index (names, addresses) and the MAC set, kept the same way, so that
        # planning a vport create never walks all vports.
        self._subnet_ports: immutables.Map = immutables.Map()
        self._macs: immutables.Map = immutables.Map()
        self._dirty: set[str] = set(KINDS)
        # A scoped replica (an agent's) records the ids changed per kind since the last publish
        # (None: unknown, after a reload) in a change log, under the next version: what lets the
        # agent update its view per object. It also keeps its vports' placement by host and
        # domain: its share and the agent's lookups then never walk all the vports it holds.
        # A full replica (the REST API) needs neither and pays for neither.
        scoped = complete_domains is not None
        self._changed: dict[str, set[str]] | None = None
        self.changelog = ChangeLog() if scoped else None
        self._placement = Placement() if scoped else None
        self._counter_rows: immutables.Map = immutables.Map()
        self._counters_dirty = False
        self.state = DirectoryState()
        self.counters = model.NO_COUNTERS
        self.version = 0  # counts published states
        self.traces = TraceRows()  # trace requests to agents (store/traces.py), apart from the state

    # -- row changes (from Idl.notify) --
    def on_row(self, event, row, known: KnownRow | None = None) -> None:
        """Apply one row change reported by the IDL.

        ``known``: for a new row this process inserted, what it holds as planned (``store/echo.py``:
        the row is exactly what was written), taken instead of reading the row back."""
        table = table_name(row)
        kind = TABLE_KIND.get(table)
        if kind is None:
            if table == VERDICT_TABLE:
                if self._on_verdict_row is not None:
                    self._on_verdict_row(event, row)
            elif table in PRIVATE_OWNER:
                self._on_private_row(table, event, row, known)
            elif table == COUNTERS_TABLE:
                rid = str(row.uuid)
                if event == ovs.db.idl.ROW_DELETE:
                    self._counter_rows = discard(self._counter_rows, rid)
                else:
                    self._counter_rows = self._counter_rows.set(rid, row_to_counters(row))
                self._counters_dirty = True
            elif table == TRACE_TABLE:
                self.traces.on_row(event, row)
            elif table in placement_rows.TABLES and self._placement_keys is not None:
                self._placement_keys.on_row(table, event, row)
            return
        rid = str(row.uuid)
        objects = self._tables[kind]
        old = objects.get(rid)
        if event == ovs.db.idl.ROW_DELETE:
            new = None
            if old is not None:
                self._tables[kind] = objects.delete(rid)
            for table in self._joined:
                if PRIVATE_OWNER[table][0] == kind:
                    self._private_owner[table].pop(self._private_link[table].pop(rid, ""), None)
        else:
            new = self._object(kind, row, known)
            self._tables[kind] = objects.set(rid, new)
        if kind == "vport":
            self._index_vport(old, new)
        self._dirty.add(kind)
        self._note(kind, rid)

    def _note(self, kind: str, obj_id: str) -> None:
        if self._changed is not None:
            self._changed.setdefault(kind, set()).add(obj_id)

    def _object(self, kind: str, row, known: KnownRow | None = None):
        """The model object of a row (or as planned), with the fields of its private row joined in."""
        obj = known.obj if known is not None and known.obj is not None else row_to_object(kind, row)
        for table in self._joined:
            owner_kind, column = PRIVATE_OWNER[table]
            if owner_kind == kind:
                link = known.links.get(column) if known is not None else linked_row(row, column)
                if link is not None:
                    self._private_owner[table][link] = obj.id
                    self._private_link[table][obj.id] = link
                    fields = self._private[table].get(link)
                    if fields:
                        obj = dataclasses.replace(obj, **fields)
        return obj

    def _on_private_row(self, table: str, event, row, known: KnownRow | None = None) -> None:
        rid = str(row.uuid)
        if event == ovs.db.idl.ROW_DELETE:
            # Deleted with its owner, or left this replica's conditions while the owner stays
            # (a vport moved to another host): the owner then shows the defaults, not stale values.
            self._private[table] = discard(self._private[table], rid)
            fields = PRIVATE_DEFAULTS[table]
        else:
            fields = known.fields if known is not None and known.fields is not None else _private_fields(table, row)
            self._private[table] = self._private[table].set(rid, fields)
        if table not in self._joined:
            return
        kind = PRIVATE_OWNER[table][0]
        owner = self._tables[kind].get(self._private_owner[table].get(rid, ""))
        if owner is not None and any(getattr(owner, f) != v for f, v in fields.items()):
            new = dataclasses.replace(owner, **fields)
            if new != owner:
                self._tables[kind] = self._tables[kind].set(owner.id, new)
                if kind == "vport":
                    self._index_vport(owner, new)
                self._dirty.add(kind)
                self._note(kind, owner.id)

    def _index_vport(self, old, new) -> None:
        self._subnet_ports, self._macs = index_vport(self._subnet_ports, self._macs, old, new)
        if self._placement is not None:
            self._placement = self._placement.moved(old, new)

    def reconcile(self, idl: ovs.db.idl.Idl) -> None:
        """Rebuild the tables whose row count differs from the IDL's replica.

        After a reconnect the IDL reloads everything without reporting deletions; a size
        mismatch reveals it. Skipped while a transaction is being built (its rows are not
        committed).
        """
        if idl.txn is not None:
            return
        for table in PRIVATE_OWNER:
            rows = idl.tables[table].rows
            if len(rows) != len(self._private[table]):
                self._private[table] = immutables.Map({str(u): _private_fields(table, r) for u, r in rows.items()})
                self._private_owner[table], self._private_link[table] = {}, {}
                self._tables[PRIVATE_OWNER[table][0]] = immutables.Map()  # rebuilt below, joined again
        for kind, (table, _p, _q) in KINDS.items():
            rows = idl.tables[table].rows
            if len(rows) != len(self._tables[kind]):
                self._tables[kind] = immutables.Map({str(u): self._object(kind, r) for u, r in rows.items()})
                self._dirty.add(kind)
                self._changed = None  # a reload: which objects changed is not known
                if kind == "vport":
                    self._subnet_ports, self._macs = immutables.Map(), immutables.Map()
                    if self._placement is not None:
                        self._placement = Placement()
                    for vport in self._tables["vport"].values():
                        self._index_vport(None, vport)
        rows = idl.tables[COUNTERS_TABLE].rows
        if len(rows) != len(self._counter_rows):
            self._counter_rows = immutables.Map({str(u): row_to_counters(r) for u, r in rows.items()})
            self._counters_dirty = True
        self.traces.reconcile(idl.tables[TRACE_TABLE].rows)

    def publish(self) -> None:
        """Publish the changes applied since the last call as new snapshots."""
        if self._counters_dirty:
            self._counters_dirty = False
            self.counters = model.CounterSnapshot(self._counter_rows)
        if self.traces.publish():
            self._on_new_state()  # wakes the IDL thread, which tells the trace listeners
        if self._complete_domains is not None:
            complete = self._complete_domains()
            if complete != self._complete:
                self._complete = complete
                self._dirty.add("domain")
        if not self._dirty:
            return
        self._dirty.clear()
        maps = {plural: self._tables[kind] for kind, (_t, plural, _p) in KINDS.items()}
        self.version += 1
        if self.changelog is not None:
            changed = self._changed
            self.changelog.record(self.version, None if changed is None else
                                  {KINDS[kind][1]: frozenset(ids) for kind, ids in changed.items()})
            self._changed = {}
        self.state = DirectoryState(**maps, subnet_ports=self._subnet_ports, macs=self._macs,
                                    complete_domains=self._complete, placement=self._placement,
                                    version=self.version, changelog=self.changelog)
        self._on_new_state()

    # -- lookups for writers (under the IDL lock) --
    def has(self, kind: str, obj_id: str) -> bool:
        """True if the object is mirrored (whether or not published yet)."""
        return obj_id in self._tables[kind]

    def counter_report(self, row_id: str) -> model.HostCounters | None:
        """The mirrored ``HostCounters`` row ``row_id``, if it has reached the replica."""
        return self._counter_rows.get(row_id)
