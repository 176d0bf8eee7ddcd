"""A scoped store's share without a walk of the directory: ask for the fixed point at once, fetch by uuid.

Measured on ovsdb-server 3.1 (docs/scale.md "Agent start-up"): for every new monitor it copies
every row of every monitored table whose initial rows are asked for (whatever the condition:
0.42 s of CPU at 100k vports even when every condition is ``[false]``), and it answers each
``monitor_cond_change`` by evaluating the new condition on every row of the table (0.15–0.18 s
per change of the VPort condition at 100k). A fresh agent paid that three times. Here:

1. **Before the first monitor request** (``pre_read``, a short connection of its own) the store
   reads its hosts' rows of the placement index (``placement_rows.py``), the domains of its own
   vports and their enterprises: the first request already carries the local domains.
2. **No initial rows for the big tables**: the monitor asks for VPort and VPortStatus (``FETCHED``)
   with ``"select": {"initial": false}`` (and for tables whose condition is ``[false]`` too: there
   is nothing to send, but 3.1 would copy them all). Their changes still arrive as usual.
3. **The rows come by uuid** (``ShareFetch``, on the IDL's own connection, right after each
   monitor reply that replaced the replica): the index rows of the monitored hosts and domains
   name the vports; they are selected by ``_uuid`` (the one lookup ovsdb-server indexes), then
   the status rows of the store's own vports. ovsdb-server sends every update of a transaction
   committed before a request's reply ahead of that reply, so a fetched row is never older than
   the updates already applied; an update that modifies a row not fetched yet is skipped and the
   row fetched (its fetched state includes it). Rows outside the condition in force when the
   select was sent are not taken (the server will never delete them).

Until the fetch is done the store does not call the replica synced: it publishes no snapshot and
plans no write, so nobody sees the share without its vports. Without the index (a server with
schema 1.4.0) the store monitors as before.
"""

from __future__ import annotations

import errno
import json
import logging
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ovs.jsonrpc
import ovs.poller
import ovs.stream

from nuage_ryu.directory import scope
from nuage_ryu.directory.store.placement_rows import DOMAIN_TABLE, HOST_TABLE
from nuage_ryu.directory.store.rows import stored

LOG = logging.getLogger(__name__)
DATABASE = "Nuage_Directory"
FETCHED = ("VPort", "VPortStatus")  # monitored without initial rows, fetched by uuid
# Small tables (they grow with domains and hosts, not vports) monitored without initial rows too,
# fetched by one select per clause of their condition: a scan of a few hundred rows that copies
# none, where the initial reply copied every row of the table (docs/scale.md).
BY_CLAUSE = ("Enterprise", "Domain", "Zone", "Subnet", "PolicyGroup", "ACL", "Host", "HostLiveness",
             "TraceRequest")
NO_INITIAL = {"initial": False, "insert": True, "delete": True, "modify": True}
MAX_OPS = 500  # selects per fetch transaction


def _select_uuid(table: str, rid: str, columns: Sequence[str]) -> dict:
    return {"op": "select", "table": table, "where": [["_uuid", "==", ["uuid", rid]]], "columns": list(columns)}


def _members(result: dict) -> set[str]:
    rows = result.get("rows") or []
    return {m[1] for row in rows for m in _set_items(row.get("vports"))}


def _set_items(value) -> list:
    if not value:
        return []
    if value[0] == "set":
        return value[1]
    return [value]  # a single uuid


class _Rpc:
    """A blocking JSON-RPC connection for the pre-read (python-ovs streams: unix, tcp, ssl)."""

    def __init__(self, remote: str, deadline: float):
        self._deadline = deadline
        remotes = [r.strip() for r in remote.split(",") if r.strip()]
        random.shuffle(remotes)
        last = None
        for target in remotes:
            err, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(target),
                                                        max(1, int((deadline - time.monotonic()) * 1000)))
            if not err:
                self._conn = ovs.jsonrpc.Connection(stream)
                return
            last = err
        raise OSError(last or 0, f"cannot connect to {remote}")

    def transact(self, ops: list[dict]) -> list:
        request = ovs.jsonrpc.Message.create_request("transact", [DATABASE, *ops])
        self._conn.send(request)
        while True:
            self._conn.run()
            err, msg = self._conn.recv()
            if err and err != errno.EAGAIN:
                raise OSError(err, "the directory database closed the connection")
            if msg is not None:
                if msg.type == ovs.jsonrpc.Message.T_REQUEST and msg.method == "echo":
                    self._conn.send(ovs.jsonrpc.Message.create_reply(msg.params, msg.id))
                elif msg.id == request.id:
                    if msg.type == ovs.jsonrpc.Message.T_ERROR:
                        raise OSError(0, f"the directory database refused the read: {msg.error}")
                    return msg.result
                continue
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the directory database did not answer the pre-read in time")
            poller = ovs.poller.Poller()
            self._conn.wait(poller)
            self._conn.recv_wait(poller)
            poller.timer_wait(int(remaining * 1000))
            poller.block()

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True)
class PreRead:
    """What the pre-read learnt: ``index`` False when the server has no placement index (the
    store then monitors as before); ``scope`` None when it could not read the share (the first
    request then names the hosts only and the store widens as the rows arrive); ``own``: the
    ids of the hosts' own vports."""

    index: bool
    scope: scope.Scope | None = None
    own: frozenset[str] = frozenset()


def pre_read(remote: str, hosts: Iterable[str], timeout: float = 5.0) -> PreRead:
    """The share of ``hosts`` as far as the placement index tells it without any walk: their
    local domains and those domains' enterprises (carriers: the hosts themselves; the store
    widens the Host condition once it holds the domains' vports), and the ids of the hosts' own
    vports. A server that cannot be reached is assumed to have the index (if it has not, the
    fetch fails and the store monitors as before from its next connection)."""
    hosts = sorted(set(hosts))
    try:
        rpc = _Rpc(remote, time.monotonic() + timeout)
    except (OSError, TimeoutError) as exc:
        LOG.info("no pre-read of the share (%s): the first monitor request names the hosts only", exc)
        return PreRead(True)
    try:
        res = rpc.transact([{"op": "select", "table": HOST_TABLE, "where": [["host", "==", h]],
                             "columns": ["vports"]} for h in hosts])
        if any("error" in r for r in res):
            LOG.info("the directory database has no placement index (%s): monitoring without it",
                     next(r for r in res if "error" in r))
            return PreRead(False)
        own = set().union(*(_members(r) for r in res)) if res else set()
        domains: set[str] = set()
        for i in range(0, len(own), MAX_OPS):
            chunk = sorted(own)[i:i + MAX_OPS]
            for r in rpc.transact([_select_uuid("VPort", v, ["domain"]) for v in chunk]):
                domains.update(row["domain"][1] for row in r.get("rows") or [])
        enterprises: set[str] = set()
        if domains:
            for r in rpc.transact([_select_uuid("Domain", d, ["enterprise"]) for d in sorted(domains)]):
                enterprises.update(row["enterprise"][1] for row in r.get("rows") or [])
        found = scope.Scope(frozenset(hosts), frozenset(domains), frozenset(enterprises), frozenset(hosts))
        return PreRead(True, found, frozenset(own))
    except (OSError, TimeoutError, KeyError, IndexError, TypeError) as exc:
        LOG.warning("pre-read of the share failed (%s): the first monitor request names the hosts only", exc)
        return PreRead(True)
    finally:
        rpc.close()


def _clause_matches(clause, rid: str, row: dict) -> bool:
    if clause is True or clause is False:
        return clause
    column, function, value = clause
    if function != "==":
        return True  # not a condition this store builds: keep the row (the server decides)
    have = ["uuid", rid] if column == "_uuid" else row.get(column)
    return have == value


def matches(cond: Sequence, rid: str, row: dict) -> bool:
    """Whether a row (as a select returns it) satisfies a monitor condition (a disjunction)."""
    return any(_clause_matches(c, rid, row) for c in cond)


class ShareFetch:
    """The rows of ``FETCHED`` for the conditions of the monitor request, by uuid (see the module).

    Driven by the store's IDL (``connection._Idl``): ``monitor_requested`` when a monitor request
    goes out, ``replica_cleared`` when its reply replaces the replica, ``skipped`` for an update
    to a row not held, ``on_reply`` for the answers of its own selects. All under the IDL lock.
    """

    def __init__(self, hosts: Iterable[str], known: Iterable[str] = ()):
        self.hosts = frozenset(hosts)
        self.enabled = True
        self._known = set(known)  # vport ids from the pre-read: fetched in the first round
        self._pending: dict[object, tuple[str, list[tuple[str, str]], dict[str, list]]] = {}
        self._monitor_cond: dict[str, list] = {}
        self._fetching = False
        self._tried: set[tuple[str, str]] = set()
        self._skipped: set[tuple[str, str]] = set()
        self._members: set[str] = set()  # vport ids the index rows of this round named
        self.rounds = 0  # rounds of the last fetch
        self.fetches = 0  # fetches started (one per monitor reply that replaced the replica)
        self.skips = 0  # updates to rows not held yet, skipped (the rows fetched instead)

    @property
    def done(self) -> bool:
        """No fetch in progress: the replica holds every row its monitor's conditions select."""
        return not self._fetching

    # -- hooks from the IDL --
    def monitor_requested(self, requests: dict) -> None:
        """A monitor request is about to be sent: ask for no initial rows of the fetched tables
        (and of the tables whose condition selects nothing); remember the conditions."""
        for table, reqs in requests.items():
            for req in reqs:
                where = req.get("where")
                fetched = self.enabled and (table in FETCHED or table in BY_CLAUSE)
                if fetched or where == [False]:
                    req["select"] = dict(NO_INITIAL)
                if fetched:
                    self._monitor_cond[table] = list(where) if where is not None else [True]

    def replica_cleared(self, idl) -> None:
        """A monitor reply replaces the replica: fetch the fetched tables' rows again."""
        if not self.enabled:
            self._fetching = False
            return
        self._pending.clear()
        self._members.clear()
        self._tried.clear()
        self._skipped.clear()
        self._fetching = True
        self.rounds = 0
        self.fetches += 1
        self._send(idl, self._first_round(idl))

    def skipped(self, idl, table: str, rid) -> bool:
        """An update modifies a row of ``table`` the replica does not hold: True if that is
        expected here (the row is fetched; the fetched state includes the change). Outside a
        fetch (it should not happen: the server sends updates of rows it sent) a fetch of that
        row starts."""
        if not self.enabled or (table not in FETCHED and table not in BY_CLAUSE):
            return False
        self.skips += 1
        if not self._fetching:
            self._fetching = True
            self._send(idl, [(table, str(rid))])
            return True
        self._skipped.add((table, str(rid)))
        return True

    def owns(self, msg) -> bool:
        """Whether a reply is the answer to one of this fetch's selects."""
        return msg.id in self._pending

    def on_reply(self, idl, msg) -> None:
        """Take the rows a select answered; send the next round or finish."""
        kind, asked, conds = self._pending.pop(msg.id)
        if msg.type == ovs.jsonrpc.Message.T_ERROR or not isinstance(msg.result, list):
            self._give_up(idl, f"error {msg.error}")
            return
        results = msg.result
        if any(isinstance(r, dict) and "error" in r for r in results):
            self._give_up(idl, str(next(r for r in results if isinstance(r, dict) and "error" in r)))
            return
        updates: dict[str, dict[str, dict]] = {}
        for (table, rid), res in zip(asked, results, strict=False):
            if table in (HOST_TABLE, DOMAIN_TABLE):
                self._members |= _members(res)
                continue
            if isinstance(rid, tuple):  # a select by one clause: any number of rows
                held = idl.tables[table].rows
                for row in res.get("rows") or []:
                    row_id = row.pop("_uuid")[1]
                    row.pop("_version", None)
                    self._tried.add((table, row_id))
                    if uuid.UUID(row_id) not in held and matches(conds.get(table, [True]), row_id, row):
                        updates.setdefault(table, {})[row_id] = {"initial": row}
                continue
            self._tried.add((table, rid))
            rows = res.get("rows") or []
            if rows and matches(conds.get(table, [True]), rid, rows[0]):
                updates.setdefault(table, {})[rid] = {"initial": rows[0]}
        if updates:
            idl.inject(updates)
        if not self._pending:
            members, self._members = self._members, set()
            self._send(idl, self._next_round(idl, members))

    # -- rounds --
    def _first_round(self, idl) -> list[tuple[str, str]]:
        cond = self._monitor_cond.get("VPort", [False])
        asked = [(HOST_TABLE, h) for h in sorted(scope.condition_values(cond, "host"))]
        asked += [(DOMAIN_TABLE, d) for d in sorted(scope.condition_domains(cond, "domain"))]
        asked += [("VPort", v) for v in sorted(self._known)]
        self._known = set()  # only the first fetch: later ones have the index rows
        for table in BY_CLAUSE:
            for clause in self._monitor_cond.get(table, [False]):
                if clause is True:
                    asked.append((table, ("where", "[]")))
                elif isinstance(clause, list):
                    asked.append((table, ("where", json.dumps([clause]))))
        return asked

    def _next_round(self, idl, members: set[str]) -> list[tuple[str, str]]:
        held = idl.tables["VPort"].rows
        asked = [("VPort", v) for v in sorted(members)
                 if ("VPort", v) not in self._tried and uuid.UUID(v) not in held]
        statuses = idl.tables["VPortStatus"].rows
        for row in list(held.values()):
            if row.host in self.hosts:
                for link in stored(row, "port_status").as_list():
                    sid = str(link)
                    if ("VPortStatus", sid) not in self._tried and link not in statuses:
                        asked.append(("VPortStatus", sid))
        for table, rid in sorted(self._skipped):
            if uuid.UUID(rid) not in idl.tables[table].rows and (table, rid) not in self._tried:
                asked.append((table, rid))
        self._skipped.clear()
        return asked

    def _send(self, idl, asked: list[tuple[str, str]]) -> None:
        if not asked:
            self._fetching = False
            LOG.debug("share fetched in %d rounds", self.rounds)
            return
        self.rounds += 1
        conds = {}
        for table in (*FETCHED, *BY_CLAUSE):  # the condition in force at the server when it runs the select
            state = idl.tables[table].condition_state
            conds[table] = state.requested if state.requested is not None else state.acked
        for i in range(0, len(asked), MAX_OPS):
            chunk = asked[i:i + MAX_OPS]
            ops = []
            for table, key in chunk:
                if table in (HOST_TABLE, DOMAIN_TABLE):
                    col = "host" if table == HOST_TABLE else "domain"
                    ops.append({"op": "select", "table": table, "where": [[col, "==", key]], "columns": ["vports"]})
                elif isinstance(key, tuple):
                    ops.append({"op": "select", "table": table, "where": json.loads(key[1]),
                                "columns": ["_uuid", *idl.tables[table].columns]})
                else:
                    ops.append(_select_uuid(table, key, list(idl.tables[table].columns)))
            msg = ovs.jsonrpc.Message.create_request("transact", [DATABASE, *ops])
            self._pending[msg.id] = ("fetch", chunk, conds)
            idl.send_raw(msg)

    def _give_up(self, idl, why: str) -> None:
        """The fetch cannot work here (e.g. the server lost its index): monitor the fetched tables
        with their initial rows from now on, over a new connection."""
        LOG.warning("fetching the share by uuid failed (%s); monitoring with initial rows instead", why)
        self.enabled = False
        self._pending.clear()
        idl.force_reconnect()  # still "fetching" (not synced) until the new monitor's reply
