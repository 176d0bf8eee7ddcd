"""Trace requests, mirror side: the rows of table ``TraceRequest`` as immutable models.

The directory asks a host's agent to run a packet through ``ofproto/trace``.

The directory cannot reach the agents (they may be on other machines, behind relays); both
follow the directory database, so the question and its answer travel through it: one
``TraceRequest`` row per question, inserted by the REST API with the source host's name,
received by that host's agent only (its monitor condition names its own hosts,
``nuage_ryu/directory/scope.py``), answered there (RBAC lets a host update ``answer``/``state`` of
its own rows only, ``ovsdb/rbac.py``), read back by the API and deleted. Rows carry an expiry,
so that a request nobody answered (the API crashed, the host is gone) is removed by the next one.

The mirror keeps these rows apart from the model state (like counter reports): a trace request
neither invalidates the state's indexes nor wakes the agents' recompute listeners. Its planners
(``traces.py``) are ``RowChange``s for the store's one transaction path.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import immutables
import ovs.db.idl

TRACE_TABLE = "TraceRequest"
PENDING, ANSWERED = "pending", "answered"
MAX_JSON = 1 << 16  # an answer is a few kB; a bigger one is cut to its error


@dataclass(frozen=True)
class TraceRequest:
    """One question to a host's agent and, once ``state`` is ``answered``, its answer."""

    id: str
    host: str
    request: dict
    answer: dict | None
    state: str
    expires: int  # ms since the epoch: after this nobody waits for the answer

    def expired(self, now_ms: int | None = None) -> bool:
        return (now_ms if now_ms is not None else int(time.time() * 1000)) > self.expires


def _json(text: str) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"error": "unreadable JSON"}
    return value if isinstance(value, dict) else {"error": "not a JSON object"}


def row_to_trace(row) -> TraceRequest:
    """The model of a ``TraceRequest`` row."""
    return TraceRequest(str(row.uuid), row.host, _json(row.request) or {}, _json(row.answer), row.state,
                        row.expires)


class TraceRows:
    """The mirrored trace requests, published as an immutable map; waiters are woken on each change.

    ``on_row`` and ``publish`` run under the store's IDL lock (called by the mirror); ``wait`` and
    ``snapshot`` from any thread.
    """

    def __init__(self) -> None:
        self._rows: immutables.Map = immutables.Map()
        self._dirty = False
        self._published: immutables.Map = immutables.Map()
        self.version = 0
        self._changed = threading.Condition()

    def on_row(self, event, row) -> None:
        rid = str(row.uuid)
        if event == ovs.db.idl.ROW_DELETE:
            if rid in self._rows:
                self._rows = self._rows.delete(rid)
        else:
            self._rows = self._rows.set(rid, row_to_trace(row))
        self._dirty = True

    def reconcile(self, idl_rows) -> None:
        """After a reconnect the IDL reloads without reporting deletions: rebuild on a size mismatch."""
        if len(idl_rows) != len(self._rows):
            self._rows = immutables.Map({str(u): row_to_trace(r) for u, r in idl_rows.items()})
            self._dirty = True

    def publish(self) -> bool:
        """Publish the changes since the last call; True when there were any."""
        if not self._dirty:
            return False
        self._dirty = False
        with self._changed:
            self._published = self._rows
            self.version += 1
            self._changed.notify_all()
        return True

    def snapshot(self) -> immutables.Map:
        """{request id: TraceRequest}, as last published."""
        return self._published

    def wait_answer(self, request_id: str, deadline: float) -> TraceRequest | None:
        """Block until request ``request_id`` is answered (its row), or None at ``deadline`` (monotonic)."""
        with self._changed:
            while True:
                req = self._published.get(request_id)
                if req is not None and req.state == ANSWERED:
                    return req
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
