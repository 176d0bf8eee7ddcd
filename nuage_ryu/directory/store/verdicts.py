"""Verdict records in the directory database: the agents' inserts, the directory's trim, the feed.

Table ``Verdict`` (schema 1.4.0): one row per record (host, time, domain id, the record as JSON).
An agent inserts its own rows in batches and never reads the table (its monitor condition for it
is ``false``: ``nuage_ryu/directory/scope.py``); ovsdb-server RBAC lets a host insert or delete
only rows naming itself (``ovsdb/rbac.py``). The REST API's store replicates the table: each
inserted row goes into a ``VerdictFeed`` (arrival order, a cursor, waiters for long polls), and
the directory deletes the oldest rows beyond its retention (``trim_plan``). The schema's
``maxRows`` is the hard bound should no directory process run: inserts beyond it fail and the
agents drop those batches (their logs keep every record).
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
from collections.abc import Callable

import ovs.db.idl

from nuage_ryu.directory.store.rows import VERDICT_TABLE, table_name
from nuage_ryu.directory.store.transactions import RowChange

MAX_RECORD_BYTES = 4096  # a record is ~400 bytes; anything larger is not one of ours
MAX_BATCH = 500  # rows per agent transaction


def insert_plan(host: str, records: list[dict]) -> Callable:
    """A planner inserting ``records`` (an agent's batch) as rows of ``host``."""
    rows = []
    for record in records[:MAX_BATCH]:
        text = json.dumps(record, separators=(",", ":"))
        if len(text) <= MAX_RECORD_BYTES:
            rows.append((float(record.get("epoch", time.time())), str(record.get("domain_id") or ""), text))

    def plan(_state) -> RowChange:
        if not rows:
            return RowChange("the verdict records")

        def build(idl, txn) -> None:
            table = idl.tables[VERDICT_TABLE]
            for when, domain, text in rows:
                row = txn.insert(table)
                row.host, row.time, row.domain, row.record = host, when, domain, text

        return RowChange("the verdict records", build)

    return plan


def trim_plan(conn, keep: int) -> Callable:
    """A planner deleting the oldest rows beyond the newest ``keep`` (the directory's retention).

    Reads the replica (the REST API's store holds the whole table), so it runs under the IDL lock,
    like every planner of the transaction path."""

    def plan(_state) -> RowChange:
        rows = conn.idl.tables[VERDICT_TABLE].rows
        excess = len(rows) - keep
        if excess <= 0:
            return RowChange("old verdict records")
        oldest = sorted(rows.items(), key=lambda item: item[1].time)[:excess]
        ids = [rid for rid, _row in oldest]

        def build(idl, txn) -> None:
            table = idl.tables[VERDICT_TABLE].rows
            for rid in ids:
                row = table.get(rid)
                if row is not None:
                    row.delete()

        return RowChange("old verdict records", build)

    return plan


def matches(record: dict, domains: frozenset[str] | None, domain: str | None, verdict: str | None) -> bool:
    """The feed's filter: ``domains`` (the caller's visible domain ids, None = all), a domain id or
    name, and a verdict: allow | deny | audit (a record of an audit rule, enforced false)."""
    if domains is not None and record.get("domain_id") not in domains:
        return False
    if domain is not None and domain not in (record.get("domain_id"), record.get("domain")):
        return False
    if verdict == "audit":
        return record.get("enforced") is False
    if verdict is not None:
        return record.get("verdict") == verdict and record.get("enforced") is not False
    return True


class VerdictFeed:
    """The newest records as the REST API's replica received them, in that order, with a cursor.

    A cursor is ``<epoch>-<n>``: the n-th record this process received (``epoch`` changes with each
    process, so a cursor from another directory process or before a restart restarts from the
    oldest record kept, and the answer says ``reset``). Fed from the IDL thread, read from the
    REST workers; one condition variable wakes the long polls.
    """

    def __init__(self, capacity: int = 10000, waiters: int = 8) -> None:
        self._cond = threading.Condition()
        self._items: collections.deque = collections.deque(maxlen=max(1, capacity))  # (n, record)
        self._n = 0
        self.epoch = secrets.token_hex(4)
        self.max_waiters = waiters
        self._waiting = 0
        self._pending: list[tuple[float, dict]] = []  # rows of the IDL batch being applied

    # -- from the IDL thread --
    def on_row(self, event, row) -> None:
        """A Verdict row change; only inserts matter (deletes are the trim of old rows)."""
        if event != ovs.db.idl.ROW_CREATE or table_name(row) != VERDICT_TABLE:
            return
        text = row.record
        if len(text) > MAX_RECORD_BYTES:
            return
        try:
            record = json.loads(text)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        record.pop("epoch", None)
        record["host"] = row.host  # the row's host is what RBAC checked: it wins over the JSON's
        self._pending.append((row.time, record))

    def flush(self) -> None:
        """End of an IDL batch: its records join the feed in time order (the rows of one transaction,
        e.g. an agent's batch, arrive in no particular order), and the waiting polls wake once."""
        if not self._pending:
            return
        pending, self._pending = sorted(self._pending, key=lambda item: item[0]), []
        self.add(*(record for _time, record in pending))

    def add(self, *records: dict) -> None:
        with self._cond:
            for record in records:
                self._n += 1
                self._items.append((self._n, record))
            self._cond.notify_all()

    # -- from the REST workers --
    def cursor(self) -> str:
        with self._cond:
            return f"{self.epoch}-{self._n}"

    def _after(self, cursor: str | None) -> tuple[int, bool]:
        if not cursor:
            return 0, False
        epoch, _, n = cursor.partition("-")
        if epoch != self.epoch or not n.isdigit():
            return 0, True
        return int(n), False

    def read(self, cursor: str | None, limit: int, accept: Callable[[dict], bool],
             wait: float = 0.0, last: int | None = None) -> dict:
        """``{"records", "cursor", "reset", "waited"}``: up to ``limit`` accepted records after
        ``cursor`` (the oldest kept without one; ``last``: without a cursor, the newest ``last``
        accepted ones); with ``wait`` > 0 and none yet, waits up to that long for one (unless
        ``max_waiters`` polls already wait: then ``waited`` is False and ``busy`` True)."""
        after, reset = self._after(cursor)
        if last is not None and (cursor is None or reset):
            with self._cond:
                newest = [record for _n, record in reversed(self._items) if accept(record)][:min(last, limit)]
                return {"records": newest[::-1], "cursor": f"{self.epoch}-{self._n}", "reset": reset,
                        "waited": False}
        deadline = time.monotonic() + wait
        waited = False
        with self._cond:
            while True:
                out, last, full = [], after, False
                for n, record in self._items:
                    if n <= after:
                        continue
                    last = n
                    if accept(record):
                        out.append(record)
                        if len(out) >= limit:
                            full = True
                            break
                if not full:
                    last = max(self._n, after)  # everything received so far was looked at
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return {"records": out, "cursor": f"{self.epoch}-{last}", "reset": reset, "waited": waited}
                if not waited:
                    if self._waiting >= self.max_waiters:
                        return {"records": out, "cursor": f"{self.epoch}-{last}", "reset": reset,
                                "waited": False, "busy": True}
                    waited = True
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
                after = last
