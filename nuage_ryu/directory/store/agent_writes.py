"""The VRS agents' writes, as planners for the store's transaction path: host registration,
liveness, vport status.

Registration (the Host row: name, tunnel IP, datapath id) is a pure planner on the snapshot,
like the REST API's. Liveness and vport status live in rows of their own (``HostLiveness``,
``VPortStatus``: see docs/scale.md) that the agent writes with no ``verify`` and without touching
the Host or VPort row, so that nobody but the host's own agent and the REST API is told about a
heartbeat or a status change. Those planners read the links from the IDL, so they run under the
IDL lock (the transaction path holds it while planning).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from nuage_ryu.directory import model, validate
from nuage_ryu.directory.errors import NotFound, ValidationError
from nuage_ryu.directory.model import DirectoryState
from nuage_ryu.directory.store.connection import Connection
from nuage_ryu.directory.store.rows import LIVENESS_TABLE, STATUS_TABLE, linked_rows
from nuage_ryu.directory.store.transactions import RowChange
from nuage_ryu.directory.validate import Change, Op
from nuage_ryu.directory.validate.check import check_text

Planner = Callable[[DirectoryState], Change]
RowPlanner = Callable[[DirectoryState], RowChange]


def now_ms() -> int:
    """Wall-clock time in milliseconds (the ``last_seen`` unit)."""
    return int(time.time() * 1000)


def register_host(name: str, tunnel_ip: str | None, datapath_id: str | int | None,
                  agent_version: str | None = None) -> Planner:
    """Create or update the Host row of an agent (upsert by name); its liveness is written apart
    (``update_liveness``).

    ``datapath_id`` may be the int os-ken reports (``dp.id``) or a hex string. ``agent_version``
    (the agent's ``nuage_ryu.__version__``) is a read-only field of the REST API: only the agent
    writes it, here, in the same transaction as the rest of its row; None leaves it as it is.
    """
    validate.check_hostname(name, "name")
    if isinstance(datapath_id, int):
        datapath_id = f"{datapath_id:016x}"
    body = {"tunnel_ip": tunnel_ip or "", "datapath_id": datapath_id or ""}
    if agent_version is not None:
        check_text(agent_version, "agent_version")

    def plan(state: DirectoryState) -> Change:
        host = state.host_by_name(name)
        if host is None:
            change = validate.plan_create(state, "host", None, dict(body, name=name))
            if agent_version:
                change.ops[-1].fields["agent_version"] = agent_version  # the host's insert
            return change
        change = validate.plan_update(state, "host", host.id, body)
        if agent_version is not None and host.agent_version != agent_version:
            if not change.ops:
                change.ops.append(Op("update", "host", host.id, {}))
            change.ops[0].fields["agent_version"] = agent_version
        return change

    return plan


def liveness(connected: bool) -> dict:
    """The HostLiveness fields of a host going (dis)connected; connecting also refreshes last_seen."""
    fields: dict = {"connected": bool(connected)}
    if connected:
        fields["last_seen"] = now_ms()
    return fields


def heartbeat() -> dict:
    """The HostLiveness fields of a heartbeat."""
    return {"last_seen": now_ms()}


def update_liveness(conn: Connection, name: str, fields: dict) -> RowPlanner:
    """Set ``connected``/``last_seen`` of the host named ``name`` (its HostLiveness row, created and
    linked from the Host row the first time); NotFound if there is no such host."""

    def plan(state: DirectoryState) -> RowChange:
        host = state.host_by_name(name)
        if host is None:
            raise NotFound(f"host {name} not found")
        host_row = conn.idl.tables["Host"].rows[uuid.UUID(host.id)]
        link = linked_rows(host_row, "liveness")
        current = conn.idl.tables[LIVENESS_TABLE].rows.get(link[0]) if link else None
        if link and current is None:
            return RowChange("the host's liveness", not_replicated=True)
        # Compared with the row itself: a scoped store does not join liveness into its snapshots.
        if current is not None and all(getattr(current, k) == v for k, v in fields.items()):
            return RowChange("the host's liveness")

        def build(idl, txn) -> None:
            table = idl.tables[LIVENESS_TABLE]
            if link:
                row = table.rows[link[0]]
            else:
                row = txn.insert(table)
                row.name = name
                host_row.liveness = [row]
            for key, value in fields.items():
                setattr(row, key, value)

        return RowChange("the host's liveness", build)

    return plan


def set_vport_status(conn: Connection, vport_id: str, status: str) -> RowPlanner:
    """Set a vport's status ('up' once its flows are installed, 'down' otherwise); no write if equal.

    Only the vport's VPortStatus row is written (the directory creates it with the vport); a vport
    from a database older than that table gets its row here, once.
    """
    if status not in model.VPORT_STATUSES:
        raise ValidationError(f"status {status!r} is not one of: up, down")

    def plan(state: DirectoryState) -> RowChange:
        vport = validate.get_object(state, "vport", vport_id)
        if vport.status == status:
            return RowChange("the vport status")
        vport_row = conn.idl.tables["VPort"].rows[uuid.UUID(vport_id)]
        link = linked_rows(vport_row, "port_status")
        if link and link[0] not in conn.idl.tables[STATUS_TABLE].rows:
            return RowChange("the vport status", not_replicated=True)

        def build(idl, txn) -> None:
            table = idl.tables[STATUS_TABLE]
            if link:
                row = table.rows[link[0]]
            else:
                row = txn.insert(table)
                row.host = vport.host
                vport_row.port_status = [row]
            row.status = status

        return RowChange("the vport status", build)

    return plan


def set_vport_statuses(conn: Connection, updates: list[tuple[str, str]]) -> RowPlanner:
    """Several vport statuses in one transaction (an agent's round after a burst of attaches);
    vports deleted meanwhile are skipped."""
    planners = [set_vport_status(conn, vport_id, status) for vport_id, status in updates]

    def plan(state: DirectoryState) -> RowChange:
        changes = []
        for planner in planners:
            try:
                changes.append(planner(state))
            except NotFound:  # deleted since the agent decided: nothing to write
                continue
        if any(change.not_replicated for change in changes):
            return RowChange("the vport statuses", not_replicated=True)
        builds = [change.build for change in changes if change.build is not None]
        if not builds:
            return RowChange("the vport statuses")

        def build(idl, txn) -> None:
            for one in builds:
                one(idl, txn)

        return RowChange("the vport statuses", build)

    return plan
