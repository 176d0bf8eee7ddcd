"""The VRS agents' writes, as planners for the store's transaction path: host registration,
liveness, vport status. Pure: a planner takes a ``DirectoryState`` and returns a ``Change``."""

from __future__ import annotations

import time
from collections.abc import Callable

from nuage_ryu.directory import model, validate
from nuage_ryu.directory.errors import NotFound, ValidationError
from nuage_ryu.directory.model import DirectoryState
from nuage_ryu.directory.validate import Change, Op

Planner = Callable[[DirectoryState], Change]


def now_ms() -> int:
    """Wall-clock time in milliseconds (the ``last_seen`` unit)."""
    return int(time.time() * 1000)


def register_host(name: str, tunnel_ip: str | None, datapath_id: str | int | None) -> Planner:
    """Create or update the Host row of an agent and mark it connected (upsert by name).

    ``datapath_id`` may be the int os-ken reports (``dp.id``) or a hex string.
    """
    validate.check_hostname(name, "name")
    if isinstance(datapath_id, int):
        datapath_id = f"{datapath_id:016x}"
    body = {"tunnel_ip": tunnel_ip or "", "datapath_id": datapath_id or ""}

    def plan(state: DirectoryState) -> Change:
        host = state.host_by_name(name)
        if host is None:
            change = validate.plan_create(state, "host", None, dict(body, name=name))
            change.ops[0].fields.update(connected=True, last_seen=now_ms())
            return change
        change = validate.plan_update(state, "host", host.id, body)
        extra = {"connected": True, "last_seen": now_ms()}
        if change.ops:
            change.ops[0].fields.update(extra)
        else:
            change.ops.append(Op("update", "host", host.id, extra))
        return change

    return plan


def update_host(name: str, fields: dict) -> Planner:
    """Set server-side fields (``connected``, ``last_seen``) of the host named ``name``; NotFound if none."""

    def plan(state: DirectoryState) -> Change:
        host = state.host_by_name(name)
        if host is None:
            raise NotFound(f"host {name} not found")
        return Change([Op("update", "host", host.id, dict(fields))], ("host", host.id))

    return plan


def set_host_connected(name: str, connected: bool) -> Planner:
    """Mark a host (dis)connected; also refreshes last_seen when connected."""
    fields: dict = {"connected": bool(connected)}
    if connected:
        fields["last_seen"] = now_ms()
    return update_host(name, fields)


def heartbeat(name: str) -> Planner:
    """Refresh a host's last_seen."""
    return update_host(name, {"last_seen": now_ms()})


def set_vport_status(vport_id: str, status: str) -> Planner:
    """Set a vport's status ('up' once its flows are installed, 'down' otherwise); no write if equal."""
    if status not in model.VPORT_STATUSES:
        raise ValidationError(f"status {status!r} is not one of: up, down")

    def plan(state: DirectoryState) -> Change:
        vport = validate.get_object(state, "vport", vport_id)
        if vport.status == status:
            return Change([], ("vport", vport_id))
        return Change([Op("update", "vport", vport_id, {"status": status})], ("vport", vport_id))

    return plan
