"""The rows this process inserted, taken from the database's update without parsing them again.

After a commit the database sends the new rows back in a monitor update, and python-ovs turns
each column into a ``Datum`` (``Idl.__row_update``) that the mirror then reads back into the model
object the planner had already built: ≈35 % of a bulk load's CPU went there. The transaction path
knows both ends: the JSON row it sent (``insert_json``) and the model object it planned. So
before python-ovs parses an update, the rows in it that are *exactly* one of those (same table,
same UUID, same JSON: the database leaves out default columns as the sender did) are taken out:
the replica gets a ``Row`` whose columns are parsed only when something reads them
(``LazyColumns``), and the mirror gets the planned object (``Mirror.on_row(..., known=...)``).

Anything else goes the ordinary way, so this can only make an update cheaper, never different:
a row changed by another writer before the update was sent (the server then sends its final
contents), a row of an attempt that was re-planned with other values (writes in doubt: see
``transactions.py``), an update that arrives after the attempt was given up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import ovs.db.data
import ovs.db.idl
import ovs.db.types


@dataclass(frozen=True)
class KnownRow:
    """What the mirror takes, as planned, for a new row this process inserted.

    ``obj``: the model object of a model table's row (None: read it from the row); ``links``: the
    row ids its private-row link columns hold (a vport's ``port_status``); ``fields``: the model
    fields of a private row (a ``VPortStatus``: ``{"status": "down"}``).
    """

    obj: object | None = None
    links: dict[str, str] = field(default_factory=dict)
    fields: dict | None = None


class OwnInserts:
    """Rows expected back from the database: (table, UUID) -> (JSON row as sent, ``KnownRow``).

    Filled by the transaction path while it builds an attempt, emptied when the attempt is over
    (caller holds the store's lock, as for all IDL access). ``taken`` counts the rows recognised.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[dict, KnownRow]] = {}
        self.taken = 0

    def __bool__(self) -> bool:
        return bool(self._rows)

    def expect(self, table: str, row_uuid: str, row: dict, known: KnownRow) -> None:
        """``row`` (JSON, as sent in the insert) is on its way into ``table``; ``known``: what it holds."""
        self._rows[(table, row_uuid)] = (row, known)

    def forget(self) -> None:
        """The attempt is over: rows still expected are parsed the ordinary way if they come."""
        self._rows.clear()

    def take(self, table: str, row_uuid: str, row_json) -> KnownRow | None:
        """The ``KnownRow`` if ``row_json`` is exactly the row expected at (table, UUID), which is
        then no longer expected; None otherwise."""
        expected = self._rows.get((table, row_uuid))
        if expected is None or expected[0] != row_json:
            return None
        del self._rows[(table, row_uuid)]
        self.taken += 1
        return expected[1]


class LazyColumns(ovs.db.idl.ColumnDefaultDict):
    """A replica row's committed columns, each parsed from the update's JSON when first read.

    python-ovs reads a row's committed columns by column (``[]``, ``in``, iteration over every
    column): all go through ``__missing__``, which parses and keeps the column (or gives the
    column's default, as ``ColumnDefaultDict`` does). ``get`` and ``items`` are made to do the same.
    """

    __slots__ = ("_json",)

    def __init__(self, table: ovs.db.idl.IdlTable, row_json: dict):
        super().__init__(table)
        self._json = row_json

    def __missing__(self, column: str):
        col = self._table.columns[column]
        raw = self._json.get(column)
        if raw is None:
            if col.type.n_min == 0 or col.type.is_map():
                return ovs.db.data.Datum.default(col.type)  # empty, as ColumnDefaultDict gives it
            # A column of exactly one value left out as default: parsed from its default's JSON,
            # as python-ovs does (Idl.__add_default; its Datum.default of a scalar is malformed).
            key = col.type.key.type
            raw = ["uuid", str(uuid.UUID(int=0))] if key == ovs.db.types.UuidType else key.default
        datum = self[column] = ovs.db.data.Datum.from_json(col.type, raw)
        return datum

    def get(self, column, default=None):
        return self[column] if column in self._table.columns else default

    def items(self):
        return [(column, self[column]) for column in self._table.columns]


Notify = Callable[[str, ovs.db.idl.Row, KnownRow], None]


def take_own_rows(idl: ovs.db.idl.Idl, own: OwnInserts, table_updates, notify: Notify):
    """Put the rows of ``table_updates`` that ``own`` expects into the replica (lazily parsed) and
    ``notify(ROW_CREATE, row, known)`` each; return the rest of the update for python-ovs.

    ``table_updates``: ``<table-updates2>`` as received (update2/update3). Anything not in the
    expected shape is left in the rest untouched.
    """
    if not isinstance(table_updates, dict):
        return table_updates
    rest: dict = {}
    taken: list[tuple[ovs.db.idl.Row, KnownRow]] = []
    for table_name, table_update in table_updates.items():
        table = idl.tables.get(table_name)
        if table is None or not isinstance(table_update, dict):
            rest[table_name] = table_update
            continue
        kept: dict = {}
        for uuid_string, row_update in table_update.items():
            row_json = None
            if isinstance(row_update, dict) and len(row_update) == 1:
                row_json = row_update.get("insert", row_update.get("initial"))
            if isinstance(row_json, dict):
                known = own.take(table_name, uuid_string, row_json)
                if known is not None:
                    row_uuid = uuid.UUID(uuid_string)
                    if row_uuid not in table.rows:
                        row = ovs.db.idl.Row(idl, table, row_uuid, LazyColumns(table, row_json))
                        table.rows[row_uuid] = row
                        taken.append((row, known))
                        continue
            kept[uuid_string] = row_update
        if kept:
            rest[table_name] = kept
    for row, known in taken:
        idl.change_seqno += 1
        notify(ovs.db.idl.ROW_CREATE, row, known)
    return rest
