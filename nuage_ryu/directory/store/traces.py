"""Trace requests, write side: the planners of the REST API (ask, delete) and of agents (answer).

See ``trace_rows.py`` for what a trace request is and how it travels.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable

from nuage_ryu.directory.errors import NotFound
from nuage_ryu.directory.model import DirectoryState
from nuage_ryu.directory.store.connection import Connection
from nuage_ryu.directory.store.trace_rows import ANSWERED, MAX_JSON, PENDING, TRACE_TABLE
from nuage_ryu.directory.store.transactions import RowChange

TracePlanner = Callable[[DirectoryState], RowChange]


def plan_request(request_id: str, host: str, request: dict, expires_ms: int,
                 stale: Iterable[str] = ()) -> TracePlanner:
    """Insert a pending request for ``host`` (and delete the ``stale`` requests given, in the same
    transaction)."""
    text = json.dumps(request, separators=(",", ":"), sort_keys=True)
    stale = list(stale)

    def plan(_state: DirectoryState) -> RowChange:
        def build(idl, txn) -> None:
            table = idl.tables[TRACE_TABLE]
            for rid in stale:
                old = table.rows.get(uuid.UUID(rid))
                if old is not None:
                    old.delete()
            row = txn.insert(table, new_uuid=uuid.UUID(request_id), persist_uuid=True)
            row.host = host
            row.request = text
            row.answer = ""
            row.state = PENDING
            row.expires = int(expires_ms)

        return RowChange("the trace request", build)

    return plan


def plan_answer(conn: Connection, request_id: str, answer: dict) -> TracePlanner:
    """Store an agent's answer to request ``request_id`` (NotFound when it is gone: withdrawn, expired)."""
    text = json.dumps(answer, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_JSON:
        text = json.dumps({"error": f"answer of {len(text)} bytes cut (limit {MAX_JSON})"})

    def plan(_state: DirectoryState) -> RowChange:
        row = conn.idl.tables[TRACE_TABLE].rows.get(uuid.UUID(request_id))
        if row is None:
            raise NotFound(f"trace request {request_id} not found")

        def build(idl, txn) -> None:
            row.answer = text
            row.state = ANSWERED

        return RowChange("the trace answer", build)

    return plan


def plan_delete(conn: Connection, request_ids: Iterable[str]) -> TracePlanner:
    """Delete the requests given (those still there)."""
    ids = list(request_ids)

    def plan(_state: DirectoryState) -> RowChange:
        rows = [r for r in (conn.idl.tables[TRACE_TABLE].rows.get(uuid.UUID(i)) for i in ids) if r is not None]
        if not rows:
            return RowChange("the trace request")

        def build(idl, txn) -> None:
            for row in rows:
                row.delete()

        return RowChange("the trace request", build)

    return plan
