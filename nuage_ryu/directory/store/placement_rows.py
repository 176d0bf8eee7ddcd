"""The placement index in the database (schema 1.5.0): the vports of each host and of each domain.

Tables ``HostVPorts {host, vports}`` and ``DomainVPorts {domain, vports}`` (one row per host
name and per domain id, ``vports`` a set of *weak* references to ``VPort``). Why they exist:
ovsdb-server (3.1, and still 3.4) evaluates a monitor condition by walking the whole table,
and 3.1 copies every row of every monitored table for each new monitor; an agent that asked
for its vports by condition paid a walk of all the directory's vports at every start. With
this index an agent reads the ids of its share's vports (a handful of rows) and fetches those
vports by ``_uuid``, the one lookup ovsdb-server indexes (``store/share_fetch.py``,
docs/scale.md "Agent start-up").

Kept by the directory's writers in the same transaction as the vport change: a vport insert
adds it to its host's and its domain's row (created on first use), a move between hosts or
domains moves it. Deletions are the database's own: a weak reference to a deleted row is
dropped with it. Adding to a set is a ``mutate``, so concurrent writers never conflict on it;
two writers creating the same host's row at once clash on the unique index, which the
transaction path treats as a race (re-planned, the row is there then).
"""

from __future__ import annotations

import uuid

import ovs.db.idl

HOST_TABLE = "HostVPorts"
DOMAIN_TABLE = "DomainVPorts"
# table -> its key column (a host name, a domain id as text)
TABLES = {HOST_TABLE: "host", DOMAIN_TABLE: "domain"}


def register(helper: ovs.db.idl.SchemaHelper) -> None:
    """Register the index for a writer: the key columns replicated, ``vports`` written only
    (python-ovs "readonly": not monitored), so the writer never receives the big sets back."""
    for table, key in TABLES.items():
        helper.register_columns(table, [key, "vports"], readonly=["vports"])


class KeyRows:
    """Which index row holds which key, from the IDL's row events (for writers)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, uuid.UUID]] = {t: {} for t in TABLES}

    def on_row(self, table: str, event, row) -> None:
        """Follow one row change of an index table."""
        key = getattr(row, TABLES[table])
        if event == ovs.db.idl.ROW_DELETE:
            if self._rows[table].get(key) == row.uuid:
                del self._rows[table][key]
        else:
            self._rows[table][key] = row.uuid

    def row(self, idl: ovs.db.idl.Idl, table: str, key: str):
        """The IDL row of ``key`` in ``table``, or None."""
        rows = idl.tables[table].rows
        rid = self._rows[table].get(key)
        row = rows.get(rid) if rid is not None else None
        if rid is not None and row is None:  # a reload dropped it without telling: look again
            self._rows[table] = {getattr(r, TABLES[table]): u for u, r in rows.items()}
            rid = self._rows[table].get(key)
            row = rows.get(rid) if rid is not None else None
        return row


class PlacementWrites:
    """The index changes of one transaction, collected per vport."""

    def __init__(self, idl: ovs.db.idl.Idl, txn: ovs.db.idl.Transaction, keys: KeyRows):
        self._idl, self._txn, self._keys = idl, txn, keys
        self._new: dict[tuple[str, str], object] = {}  # index rows inserted by this transaction

    def placed(self, vport_id: uuid.UUID, old: tuple[str | None, str | None], new: tuple[str, str]) -> None:
        """The vport ``vport_id`` (inserted or updated in this transaction) moved from (host,
        domain) ``old`` ((None, None): a new vport) to ``new``."""
        for table, before, after in ((HOST_TABLE, old[0], new[0]), (DOMAIN_TABLE, old[1], new[1])):
            if before == after:
                continue
            if before:
                row = self._keys.row(self._idl, table, before)
                if row is not None:
                    row.delvalue("vports", vport_id)
            if after:
                self._index_row(table, after).addvalue("vports", vport_id)

    def domain_deleted(self, domain_id: str) -> None:
        """A domain is deleted in this transaction (it has no vports left): its index row goes too."""
        row = self._keys.row(self._idl, DOMAIN_TABLE, domain_id)
        if row is not None:
            row.delete()

    def _index_row(self, table: str, key: str):
        row = self._keys.row(self._idl, table, key) or self._new.get((table, key))
        if row is None:
            row = self._new[(table, key)] = self._txn.insert(self._idl.tables[table])
            setattr(row, TABLES[table], key)
        return row


def backfill(vports) -> dict[str, dict[str, set[str]]]:
    """The index that ``vports`` (objects with ``id``, ``host``, ``domain``) make: table -> key
    -> member ids (for a database converted from 1.4.0, whose index is empty)."""
    want: dict[str, dict[str, set[str]]] = {HOST_TABLE: {}, DOMAIN_TABLE: {}}
    for vp in vports:
        if vp.host:
            want[HOST_TABLE].setdefault(vp.host, set()).add(vp.id)
        want[DOMAIN_TABLE].setdefault(vp.domain, set()).add(vp.id)
    return want


def build_backfill(idl: ovs.db.idl.Idl, txn: ovs.db.idl.Transaction, want: dict[str, dict[str, set[str]]]) -> None:
    """Insert the index rows of ``want`` (``backfill``) in ``txn``."""
    for table, keys in want.items():
        for key, members in sorted(keys.items()):
            row = txn.insert(idl.tables[table])
            setattr(row, TABLES[table], key)
            for member in sorted(members):
                row.addvalue("vports", uuid.UUID(member))


