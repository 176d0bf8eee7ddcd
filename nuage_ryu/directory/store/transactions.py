"""The one transaction path of the store: plan on the replica, commit as ONE OVSDB transaction, re-plan.

Every write goes through ``TransactionPath.run(planner, deadline)``. The planner is called on
the current snapshot and returns one of the two kinds of change:

* a ``Change`` (``validate``): insert/update/delete operations on model objects, with guards.
  Object ids are chosen by the planner and inserted with ``persist_uuid``, so the id the API
  returns is the row UUID;
* a ``RowChange``: a callback that builds rows that are not model objects (a host's counter
  report). Such a write is idempotent (the caller sends the same totals again), so an index
  conflict is a race to re-plan, and an outcome that did not arrive is reported, not waited for.

The database enforces the invariants that must hold with several writers (several API
processes on one Raft cluster): referential integrity, unique indexes, and for subnet overlap a
verify-and-increment of the domain's ``subnet_epoch``. A transaction that loses a race is
re-planned on the fresh state (TRY_AGAIN, or an index conflict on an automatically chosen
address/VNI); any other index conflict is a 409.

Writes in doubt (a leader change lost the reply: the attempt may have committed): the path
remembers every such ``Change`` and, before and after each new attempt, looks whether the rows
one of them inserted are visible now; if so that attempt committed and is the answer. While an
attempt is in doubt the path waits longer for the cluster (``UNCERTAIN_GRACE_S``): a 503 would
make the client retry a write that may have committed, and the retry would get a false 409.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import ovs.db.idl
import ovs.poller

from nuage_ryu.directory.errors import Conflict, NotFound, Unavailable, ValidationError
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.store.connection import Connection
from nuage_ryu.directory.store.echo import KnownRow, OwnInserts
from nuage_ryu.directory.store.insert_json import RowEncoder, insert_op
from nuage_ryu.directory.store.mirror import Mirror
from nuage_ryu.directory.store.placement_rows import TABLES as PLACEMENT_TABLES
from nuage_ryu.directory.store.placement_rows import KeyRows, PlacementWrites
from nuage_ryu.directory.store.rows import REF_FIELDS, STATUS_TABLE, TABLE_KIND, columns, linked_rows, stored
from nuage_ryu.directory.validate import Change
from nuage_ryu.directory.validate.change import new_object

# How often a write is re-planned after losing a race before giving up (409/503).
MAX_ATTEMPTS = 20
# How long after it reached the store a write whose outcome is in doubt (leader change) may wait
# for the cluster to show it: under the clients' 30 s timeout (DirectoryClient), so that the client
# gets the answer (or a 503) rather than a timeout of its own. Writes queued behind it wait for the
# lock only until their own deadline (Connection.locked).
UNCERTAIN_GRACE_S = 20.0
# How often the database may close the connection while one write is in flight before that write
# is given up (503): a transaction the server cannot even parse makes it drop the connection, and
# re-sending it forever would stop every other write with it.
MAX_DROPS = 3

_Txn = ovs.db.idl.Transaction


class CommitUnconfirmed(Unavailable):
    """A transaction was sent but its outcome did not arrive in time (it may have committed)."""


@dataclass(frozen=True)
class RowChange:
    """A change given as a callback that builds its rows in the transaction: ``build(idl, txn)``.

    ``what`` names the write in errors ("the counters"). ``build`` None: nothing to write.
    ``not_replicated``: the rows the planner needs have not reached the replica yet (e.g. a
    monitor condition was just widened): the path catches up and plans again.
    """

    what: str
    build: Callable[[ovs.db.idl.Idl, ovs.db.idl.Transaction], None] | None = None
    not_replicated: bool = False


Planned = Change | RowChange


def _is_empty(planned: Planned) -> bool:
    return planned.build is None if isinstance(planned, RowChange) else not planned.ops


def _index_conflict_is_a_race(planned: Planned, error: str = "") -> bool:
    # A Change's index conflict is a race only on values it picked itself, or on a placement
    # index row another writer created first (placement_rows.py); a RowChange's always (another
    # writer linked the same row first).
    if isinstance(planned, RowChange) or _index_table(error) in PLACEMENT_TABLES:
        return True
    return planned.auto_assigned


_INDEX_RE = re.compile(
    r'rows in "(\w+)" table to have identical values \((.*?)\) for index on columns? (.*?)\.')


def _index_table(error: str) -> str | None:
    """The table whose unique index an OVSDB constraint violation is about, if any."""
    m = _INDEX_RE.search(error.replace('\\"', '"'))
    return m.group(1) if m else None


def _conflict_message(error: str) -> str:
    """Turn an OVSDB error into a message for the user."""
    try:
        err = json.loads(error)
    except ValueError:
        err = {"error": error}
    details = err.get("details", "") if isinstance(err, dict) else ""
    kind = err.get("error", "") if isinstance(err, dict) else str(err)
    m = _INDEX_RE.search(details or "")
    if m:
        table, values, cols = m.groups()
        names = [c for c in re.findall(r'"(\w+)"', cols) if c not in REF_FIELDS] or ["name"]
        return (f"another {TABLE_KIND.get(table, table)} already has this {' and '.join(names)} "
                f"({values}); a concurrent request got it first")
    if kind == "referential integrity violation":
        return f"the object is still referenced by other objects ({details})"
    return f"{kind}: {details}" if details else kind


def _refusal(planned: Planned, error: str) -> Exception:
    """The error for a transaction the database refused (not a race)."""
    if isinstance(planned, RowChange):
        return Unavailable(f"the directory database refused {planned.what}: {error}")
    if '"constraint violation"' in error and _index_table(error) == "ACL":
        return ValidationError(_conflict_message(error))  # duplicate priority: see validate
    if '"constraint violation"' in error or "referential integrity" in error:
        return Conflict(_conflict_message(error))
    return Unavailable(f"the directory database refused the change: {error}")


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_nul(v) for v in value)
    return False


def check_storable(kind: str, fields: dict) -> None:
    """ValidationError for a value ovsdb-server cannot take: its JSON parser refuses NUL in strings
    and answers by closing the connection, so such a value must never be sent (whatever the
    planner let through)."""
    for col, value in fields.items():
        if _has_nul(value):
            raise ValidationError(f"{kind} field {col!r} contains a NUL character, "
                                  "which the directory database cannot store")


def _build_change(idl: ovs.db.idl.Idl, txn: ovs.db.idl.Transaction, change: Change,
                  encoder: RowEncoder, own: OwnInserts, placement_keys: KeyRows | None = None) -> None:
    placement = PlacementWrites(idl, txn, placement_keys) if placement_keys is not None else None
    for op in change.ops:
        if op.action == "update":  # an insert's values are checked by its encoder
            check_storable(op.kind, columns(op.fields))
    for kind, obj_id, column in change.guards:
        row = idl.tables[KINDS[kind][0]].rows.get(uuid.UUID(obj_id))
        if row is not None:
            row.verify(column)
            setattr(row, column, getattr(row, column) + 1)
    for op in change.ops:
        if op.action == "insert":
            _insert(txn, encoder, own, op)
            if placement is not None and op.kind == "vport":
                placement.placed(uuid.UUID(op.id), (None, None), (op.fields.get("host", ""), op.fields["domain"]))
            continue
        table = idl.tables[KINDS[op.kind][0]]
        row = table.rows.get(uuid.UUID(op.id))
        if row is None:
            raise NotFound(f"{op.kind} {op.id} not found")
        if op.action == "delete":
            if placement is not None and op.kind == "domain":
                placement.domain_deleted(op.id)
            row.delete()  # a vport's status row goes with it (garbage-collected by the database)
            continue
        placed = None
        if placement is not None and op.kind == "vport":
            placed = (row.host, str(stored(row, "domain").as_scalar()))
        for col, value in columns(op.fields).items():
            setattr(row, col, value)
        if op.kind == "vport" and "host" in op.fields:
            _bind_status(idl, txn, row, op)
        if placed is not None:
            placement.placed(row.uuid, placed, (op.fields.get("host", placed[0]), op.fields.get("domain", placed[1])))


def _insert(txn: ovs.db.idl.Transaction, encoder: RowEncoder, own: OwnInserts, op) -> None:
    """A new object's row as a raw ``insert`` (``insert_json``), expected back (``echo``).

    A new vport gets its status row (``down``, for its host) in the same transaction. The status
    lives in a row of its own so that only the vport's host (and the REST API) is told when it
    changes: see docs/scale.md.
    """
    table = KINDS[op.kind][0]
    row = encoder.row(table, columns(op.fields), op.kind)
    links = {}
    if op.kind == "vport":
        status_id = links["port_status"] = str(uuid.uuid4())
        status = encoder.row(STATUS_TABLE, {"host": op.fields["host"], "status": "down"}, "vport")
        txn.add_op(insert_op(STATUS_TABLE, status_id, status))
        own.expect(STATUS_TABLE, status_id, status, KnownRow(fields={"status": "down"}))
        row["port_status"] = ["uuid", status_id]
    txn.add_op(insert_op(table, op.id, row))
    # The mirror takes the planned object (what bulk planning and dry runs already build) for the
    # row; a token's planner leaves a host token's enterprise out, so a token is read from its row.
    own.expect(table, op.id, row, KnownRow(new_object(op) if op.kind != "token" else None, links))


def _bind_status(idl: ovs.db.idl.Idl, txn: ovs.db.idl.Transaction, vport_row, op) -> None:
    """A vport moved to another host gets its status row handed to that host, ``down`` again
    (one is inserted if it has none)."""
    link = linked_rows(vport_row, "port_status")
    status = idl.tables[STATUS_TABLE].rows.get(link[0]) if link else None
    if status is None:
        status = txn.insert(idl.tables[STATUS_TABLE])
        vport_row.port_status = [status]
    elif status.host == op.fields["host"]:
        return
    status.host = op.fields["host"]
    status.status = "down"


class TransactionPath:
    """Plans and commits every write of one store (see the module docstring)."""

    def __init__(self, conn: Connection, mirror: Mirror, placement_keys: KeyRows | None = None):
        """``placement_keys``: a writer of vports keeps the placement index (placement_rows.py)."""
        self._conn = conn
        self._mirror = mirror
        self._placement_keys = placement_keys
        self._encoder: RowEncoder | None = None  # for the IDL it was made for (conn.idl)

    def refresh(self) -> None:
        """Bring the mirror up to the IDL's replica and publish (caller holds the lock)."""
        self._mirror.reconcile(self._conn.idl)
        self._mirror.publish()

    def run(self, planner: Callable[[DirectoryState], Planned], deadline: float
            ) -> tuple[Planned, DirectoryState]:
        """Plan on the current state and commit as one transaction; re-plan on lost races.

        Returns the applied change and the state right after it. Raises DirectoryError.
        """
        conn, mirror = self._conn, self._mirror
        arrived = time.monotonic()
        with conn.locked(deadline):
            # Attempts whose outcome is unknown (reply lost in a leader change): any of them may
            # have committed, and its rows may only become visible after a later attempt planned.
            uncertain: list[Change] = []
            drops = 0
            planned: Planned | None = None
            for _attempt in range(MAX_ATTEMPTS):
                if conn.idl is None:
                    raise Unavailable("the directory store is stopped")
                # A 503 tells the client "not done, retry"; for a write that may have committed that
                # would turn its retry into a false 409. So with an attempt in doubt, wait longer
                # (bounded) for the cluster to come back and show whether it committed.
                until = max(deadline, arrived + UNCERTAIN_GRACE_S) if uncertain else deadline
                conn.wait_synced(until)
                self.refresh()
                done = self._committed_earlier(uncertain)
                if done is not None:
                    return done, mirror.state
                try:
                    planned = planner(mirror.state)
                except Conflict:
                    # e.g. "name exists" because an earlier attempt did commit after all
                    done = self._committed_earlier(uncertain, catch_up=True)
                    if done is not None:
                        return done, mirror.state
                    raise
                if isinstance(planned, RowChange) and planned.not_replicated:
                    self._catch_up()
                    continue
                if _is_empty(planned):
                    return planned, mirror.state
                session = conn.session_seqno()
                try:
                    status, error = self._commit(planned, until)
                except CommitUnconfirmed:
                    if isinstance(planned, RowChange):
                        raise  # idempotent: the caller sends it again
                    status, error = _Txn.TRY_AGAIN, ""  # outcome unknown: as a lost reply
                if status in (_Txn.SUCCESS, _Txn.UNCHANGED):
                    mirror.publish()
                    conn.wake()
                    return planned, mirror.state
                if status == _Txn.ERROR and (
                        '"constraint violation"' not in error or not _index_conflict_is_a_race(planned, error)) and (
                        '"duplicate uuid"' not in error):
                    done = self._committed_earlier(uncertain, catch_up=True)
                    if done is not None:  # this attempt clashed with an earlier one's own rows
                        return done, mirror.state
                    raise _refusal(planned, error)
                if status == _Txn.TRY_AGAIN and conn.session_seqno() != session:
                    drops += 1  # the connection went down while this write was in flight
                    if drops >= MAX_DROPS:
                        done = self._committed_earlier(uncertain, catch_up=True)
                        if done is not None:
                            return done, mirror.state
                        conn.reset_backoff()
                        raise Unavailable(f"the directory database closed the connection {drops} times "
                                          "while this change was in flight; it was not retried further")
                # Lost a race (TRY_AGAIN after a failed verify or a reconnect, an index conflict on an
                # automatically chosen value) or the outcome is unknown (leader change): if the
                # previous attempt did commit, its inserted rows are there now; otherwise re-plan.
                if isinstance(planned, Change):
                    uncertain.append(planned)
                self._catch_up()
                done = self._committed_earlier(uncertain)
                if done is not None:
                    return done, mirror.state
            if isinstance(planned, RowChange):
                raise Unavailable(f"could not store {planned.what}; try again")
            raise Unavailable("too many concurrent changes; try again")

    def _committed_earlier(self, uncertain: list[Change], catch_up: bool = False) -> Change | None:
        """The earlier attempt whose inserted rows are visible now (it committed), if any."""
        if not uncertain:
            return None
        if catch_up:
            self._catch_up()
        for change in reversed(uncertain):
            if self._inserts_present(change):
                self._mirror.publish()
                self._conn.wake()
                return change
        return None

    def _catch_up(self) -> None:
        self._conn.catch_up()
        self._mirror.reconcile(self._conn.idl)

    def _inserts_present(self, change: Change) -> bool:
        inserts = [op for op in change.ops if op.action == "insert"]
        return bool(inserts) and all(self._mirror.has(op.kind, op.id) for op in inserts)

    def _commit(self, planned: Planned, deadline: float) -> tuple[int, str]:
        idl = self._conn.idl
        own = idl.own_inserts
        txn = ovs.db.idl.Transaction(idl)
        try:
            if isinstance(planned, RowChange):
                planned.build(idl, txn)
            else:
                if self._encoder is None or self._encoder.idl is not idl:
                    self._encoder = RowEncoder(idl)
                _build_change(idl, txn, planned, self._encoder, own, self._placement_keys)
            while True:
                status = txn.commit()
                if status != _Txn.INCOMPLETE:
                    return status, txn.get_error()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CommitUnconfirmed("the directory database did not confirm the change in time")
                idl.run()
                poller = ovs.poller.Poller()
                idl.wait(poller)
                txn.wait(poller)
                poller.timer_wait(int(min(remaining, 0.5) * 1000))
                poller.block()
        except BaseException:
            # Whatever went wrong, the IDL must not keep a half-built transaction: the next
            # write would find idl.txn still set.
            txn.abort()
            raise
        finally:
            # This attempt's new rows came back with the update before its reply, or will be
            # parsed the ordinary way if they come later (an attempt in doubt: see echo.py).
            own.forget()
