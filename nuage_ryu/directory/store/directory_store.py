"""``DirectoryStore``: the directory database client used by the REST API and the VRS agents.

It wires the store's parts together: the connection (IDL, lock, thread), the mirror (rows ->
immutable snapshots), and the one transaction path that every write goes through: the REST
planners (``apply``), the agents' writes and their counter reports alike.

A *scoped* store (``scope_hosts``: a VRS agent) follows only its hosts' share of the directory:
monitor conditions (``nuage_ryu.directory.scope``) that it widens and narrows as rows arrive,
recomputing the share after each batch of row changes. See docs/scale.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable

from nuage_ryu.directory import model, scope
from nuage_ryu.directory.errors import Unavailable
from nuage_ryu.directory.model import DirectoryState
from nuage_ryu.directory.store import agent_writes, placement_rows, share_fetch, traces, verdicts
from nuage_ryu.directory.store.connection import Connection, fetch_supported
from nuage_ryu.directory.store.counters import CounterWatch, check_counts, plan_report
from nuage_ryu.directory.store.mirror import Mirror, initial_conditions, schema_helper, schema_path
from nuage_ryu.directory.store.rows import VERDICT_TABLE
from nuage_ryu.directory.store.trace_rows import TraceRequest
from nuage_ryu.directory.store.transactions import RowChange, TransactionPath
from nuage_ryu.directory.validate import Change, check_hostname

LOG = logging.getLogger(__name__)


class DirectoryStore:
    """The directory database client used by the REST API and the VRS agent.

    ``remote``: one OVSDB remote or a comma separated list of Raft cluster members
    (``tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,...``) or of relays (one is picked at random, the
    next on failure); writes go to the leader.

    Listeners are called from the IDL thread, after applied updates, with the newest snapshot
    (batches that arrive while a listener runs are coalesced into one call with the latest
    state); they must not block for long. They may call the write methods (the lock is
    re-entrant), but the monitor then waits for that transaction.
    """

    def __init__(self, remote: str, *, schema: str | None = None, write_timeout: float = 10.0,
                 all_counters: bool = False, scope_hosts: Iterable[str] | None = None,
                 leader_only: bool = True, verdict_feed: verdicts.VerdictFeed | None = None):
        """``all_counters``: replicate every host's counter reports (the REST API needs them). When
        False (agents), only the reports of hosts this store itself reports for are replicated,
        so that N agents do not each receive the counters of all N hosts.

        ``scope_hosts``: follow only the share of these hosts (a VRS agent; several in central
        mode): their vports, the domains those are in with all their objects, the hosts carrying
        them; liveness, vport status and counters of these hosts only. None: the whole directory.

        ``leader_only``: for a Raft cluster, connect to the leader only (False: any member or a
        relay; writes are still forwarded to the leader by the server).

        ``verdict_feed``: replicate the agents' verdict records into it (the REST API's store;
        needs ``all_counters``, i.e. a full replica). Without it, no Verdict row is replicated."""
        self.remote = remote
        self.all_counters = all_counters
        self.write_timeout = write_timeout
        self.scope_hosts = frozenset(scope_hosts) if scope_hosts is not None else None
        if self.scope_hosts is not None:
            for host in self.scope_hosts:
                check_hostname(host, "scope_hosts")
        self._schema = schema or schema_path()
        self._conn = Connection(remote, leader_only=leader_only)
        scoped = self.scope_hosts is not None
        self.verdicts = verdict_feed if all_counters and not scoped else None
        # A full store writes vports, so it keeps the placement index (placement_rows.py).
        self._placement_keys = None if scoped else placement_rows.KeyRows()
        self._mirror = Mirror(on_new_state=self._conn.wake_from_writer,
                              complete_domains=self._complete_domains if scoped else None,
                              on_verdict_row=self.verdicts.on_row if self.verdicts is not None else None,
                              placement_keys=self._placement_keys)
        self._path = TransactionPath(self._conn, self._mirror, self._placement_keys)
        self._counter_watch = CounterWatch(all_counters, self.scope_hosts or frozenset())
        self._listeners: list[Callable[[DirectoryState], None]] = []
        self._fired_version = 0
        self._trace_listeners: list[Callable[[object], None]] = []
        self._fired_traces = 0
        # Scoped mode: the share last asked for, and the snapshot it was computed from.
        self._scope = scope.scope_of(self.scope_hosts, (), {}) if scoped else None
        self._scoped_state: DirectoryState | None = None

    # -- lifecycle --
    def start(self, timeout: float = 10.0) -> None:
        """Connect, wait for the initial contents (a scoped store: its whole share, its conditions
        acknowledged), and start the IDL thread."""
        deadline = time.monotonic() + timeout
        fetch = None
        if self._scope is not None:
            # The share as the placement index tells it, before the first monitor request: that
            # request then carries the local domains, and the big tables' rows come by uuid
            # (store/share_fetch.py; docs/scale.md "Agent start-up").
            pre = share_fetch.pre_read(self.remote, self.scope_hosts, min(5.0, timeout)) if fetch_supported() else None
            if pre is not None and pre.index:
                if pre.scope is not None:
                    self._scope = pre.scope
                fetch = share_fetch.ShareFetch(self.scope_hosts, pre.own)
            conditions = scope.monitor_conditions(self._scope)
        else:
            conditions = initial_conditions(self.all_counters)
            if self.verdicts is None:
                conditions[VERDICT_TABLE] = [False]
        self._conn.open(schema_helper(self._schema, placement_writer=self._placement_keys is not None),
                        self._mirror.on_row, conditions, timeout, fetch)
        with self._conn.lock:
            self._mirror.publish()
            if self.verdicts is not None:
                self.verdicts.flush()
            if self._scope is not None:
                self._converge(deadline)
        if self._placement_keys is not None:
            self._backfill_placement()
        self._conn.start_thread(self._after_run, self._fire_listeners)

    def _backfill_placement(self) -> None:
        """A database converted from 1.4.0 has an empty placement index: fill it, once, from the
        vports (a writer's store at start; concurrent writers doing the same race on the index's
        unique keys, and the loser finds the rows there when it re-plans)."""
        idl = self._conn.idl

        def planner(state: DirectoryState) -> RowChange:
            if not state.vports or any(idl.tables[t].rows for t in placement_rows.TABLES):
                return RowChange("the placement index")
            want = placement_rows.backfill(state.vports.values())
            LOG.info("filling the placement index of %d vports (a database from before schema 1.5.0)",
                     len(state.vports))
            return RowChange("the placement index", lambda i, txn: placement_rows.build_backfill(i, txn, want))

        with self._conn.lock:
            self._path.run(planner, time.monotonic() + max(self.write_timeout, 60.0))

    def _after_run(self) -> None:
        """After each ``idl.run()`` of the IDL thread (under the lock): publish, then re-scope."""
        if self.verdicts is not None:
            self.verdicts.flush()  # the verdict rows of the batch just applied (store/verdicts.py)
        self._refresh()

    def _refresh(self) -> None:
        # While a share fetch is in progress the replica lacks the fetched rows: publish nothing.
        if self._conn.fetched():
            self._path.refresh()
            self._rescope()

    def _converge(self, deadline: float) -> None:
        """Widen the conditions until the share is a fixed point and acknowledged (under the lock)."""
        while True:
            self._refresh()
            if self._settled():
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"the directory database at {self.remote} did not send this host's share")
            # run, look, and only then block: the reply to a condition change often arrives within
            # the same run, and blocking after it would wait for the timer
            self._conn.idl.run()
            self._refresh()
            if self._settled():
                return
            self._conn.block(0.05)

    def _rescope(self) -> None:
        """Recompute the share from the newest snapshot; change the conditions that differ."""
        if self._scope is None:
            return
        state = self._mirror.state
        if state is self._scoped_state:
            return
        self._scoped_state = state
        new = _share(self.scope_hosts, state)
        if new == self._scope:
            return
        self._scope = new
        idl = self._conn.idl
        for table, cond in scope.monitor_conditions(new).items():
            if idl.tables[table].condition_state.latest != cond:
                idl.cond_change(table, cond)

    def _settled(self) -> bool:
        # Caller holds the lock; the snapshot is the newest published one.
        return (self._conn.conditions_acknowledged() and self._conn.fetched()
                and self._scoped_state is self._mirror.state)

    def _complete_domains(self) -> frozenset[str]:
        """The domains whose objects the replica holds completely (called by the mirror at publish)."""
        idl = self._conn.idl
        if idl is None or idl.state != idl.IDL_S_MONITORING or not self._conn.fetched():
            return frozenset()
        return scope.acknowledged_domains(
            {t: idl.tables[t].condition_state.acked for t in scope.DOMAIN_TABLES})

    def scope_settled(self) -> bool:
        """A scoped store: the share in the latest snapshot is complete (its conditions are the
        fixed point of what it holds, and acknowledged). Always True for a full store."""
        if self._scope is None:
            return True
        with self._conn.lock:
            return self._conn.idl is not None and self._settled() and self._scope == scope.scope_of(
                self.scope_hosts, self._mirror.state.vports.values(), self._mirror.state.domains)

    def share(self) -> scope.Scope | None:
        """The share a scoped store currently asks for (None: a full store)."""
        return self._scope

    def stop(self) -> None:
        """Stop the IDL thread and close the connection."""
        self._conn.close()

    def _fire_listeners(self) -> None:
        self._fire_trace_listeners()
        state, version = self._mirror.state, self._mirror.version
        if version == self._fired_version:
            return
        self._fired_version = version
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # a broken listener must not stop the IDL thread
                LOG.exception("directory listener failed")

    def _fire_trace_listeners(self) -> None:
        rows = self._mirror.traces
        if rows.version == self._fired_traces:
            return
        self._fired_traces = rows.version
        snapshot = rows.snapshot()
        for listener in list(self._trace_listeners):
            try:
                listener(snapshot)
            except Exception:  # a broken listener must not stop the IDL thread
                LOG.exception("trace listener failed")

    # -- reading --
    def snapshot(self) -> DirectoryState:
        """The latest published state (immutable; safe to use from any thread)."""
        return self._mirror.state

    def counters(self) -> model.CounterSnapshot:
        """The latest counter reports (immutable; safe from any thread). See ``all_counters``."""
        return self._mirror.counters

    @property
    def connected(self) -> bool:
        """True while connected to the database (the leader, for a cluster)."""
        return self._conn.connected

    def add_listener(self, callback: Callable[[DirectoryState], None]) -> None:
        """Call ``callback(state)`` from the IDL thread after each applied update batch."""
        self._listeners.append(callback)
        self._conn.wake()

    # -- trace requests (store/trace_rows.py) --
    def trace_requests(self):
        """{request id: TraceRequest} as last published (an agent's store: its own hosts' only)."""
        return self._mirror.traces.snapshot()

    def add_trace_listener(self, callback: Callable[[object], None]) -> None:
        """Call ``callback(trace_requests)`` from the IDL thread whenever a trace request changes."""
        self._trace_listeners.append(callback)
        self._conn.wake()

    def ask_trace(self, host: str, request: dict, expires_ms: int) -> str:
        """Insert a pending trace request for ``host``'s agent; returns its id. Expired requests
        left behind (nobody withdrew them) are deleted in the same transaction."""
        check_hostname(host, "host")
        request_id = str(uuid.uuid4())
        now = agent_writes.now_ms()
        stale = [r.id for r in self.trace_requests().values() if r.expired(now)]
        self.apply(traces.plan_request(request_id, host, request, expires_ms, stale))
        return request_id

    def wait_trace(self, request_id: str, deadline: float) -> TraceRequest | None:
        """The answered request, or None when ``deadline`` (monotonic) passes first."""
        return self._mirror.traces.wait_answer(request_id, deadline)

    def withdraw_trace(self, request_id: str) -> None:
        """Delete a trace request (answered or not)."""
        self._write_private(traces.plan_delete(self._conn, [request_id]))

    def answer_trace(self, request_id: str, answer: dict) -> None:
        """An agent's answer to a trace request of its host (NotFound when it was withdrawn)."""
        self._write_private(traces.plan_answer(self._conn, request_id, answer))

    # -- writing: everything goes through the transaction path --
    def apply(self, planner: Callable[[DirectoryState], Change]) -> tuple[Change, DirectoryState]:
        """Plan on the current state and commit as one transaction; re-plan on lost races.

        Returns the applied change and the state right after it. Raises DirectoryError.
        """
        return self._path.run(planner, time.monotonic() + self.write_timeout)

    def register_host(self, name: str, tunnel_ip: str | None, datapath_id: str | int | None,
                      agent_version: str | None = None) -> str:
        """Create or update the Host row of an agent, mark it connected; returns the host id.

        ``datapath_id`` may be the int os-ken reports (``dp.id``) or a hex string; ``agent_version``
        is the agent's ``nuage_ryu.__version__`` (None: left as it is).
        """
        change, _state = self.apply(agent_writes.register_host(name, tunnel_ip, datapath_id, agent_version))
        self.set_host_connected(name, True)
        return change.result[1]

    def set_host_connected(self, name: str, connected: bool) -> None:
        """Mark a host (dis)connected; also refreshes last_seen when connected."""
        self._write_private(agent_writes.update_liveness(self._conn, name, agent_writes.liveness(connected)))

    def heartbeat(self, name: str) -> None:
        """Refresh a host's last_seen (agents call this periodically). Only the host's own
        HostLiveness row changes: no other agent is sent anything."""
        self._write_private(agent_writes.update_liveness(self._conn, name, agent_writes.heartbeat()))

    def set_vport_status(self, vport_id: str, status: str) -> None:
        """Set a vport's status ('up' once its flows are installed, 'down' otherwise)."""
        self._write_private(agent_writes.set_vport_status(self._conn, vport_id, status))

    def set_vport_statuses(self, updates: list[tuple[str, str]]) -> None:
        """Several (vport id, status) in one transaction; vports deleted meanwhile are skipped."""
        self._write_private(agent_writes.set_vport_statuses(self._conn, updates))

    def _write_private(self, planner) -> None:
        # The planners read links from the IDL: plan under the lock (the path takes it too).
        deadline = time.monotonic() + self.write_timeout
        with self._conn.locked(deadline):
            if self._conn.idl is None:
                raise Unavailable("the directory store is stopped")
            self._path.run(planner, deadline)

    def insert_verdicts(self, host_name: str, records: list[dict]) -> None:
        """Store a batch of ``host_name``'s verdict records (at most ``verdicts.MAX_BATCH``)."""
        check_hostname(host_name, "host")
        self._write_private(verdicts.insert_plan(host_name, records))

    def verdict_rows(self) -> int:
        """How many verdict records the replica holds (the REST API's store; 0 elsewhere)."""
        if self.verdicts is None:
            return 0
        with self._conn.lock:
            idl = self._conn.idl
            return len(idl.tables[VERDICT_TABLE].rows) if idl is not None else 0

    def trim_verdicts(self, keep: int) -> None:
        """Delete the oldest verdict records beyond the newest ``keep`` (the REST API's store only)."""
        if self.verdicts is not None:
            self._write_private(verdicts.trim_plan(self._conn, keep))

    def report_counters(self, host_name: str, rules: dict[str, tuple[int, int]],
                        defaults: dict[str, tuple[int, int]]) -> bool:
        """Store one host's current policy counters; returns True when something was written.

        ``rules``: ACL id -> (packets, bytes); ``defaults``: domain id -> (packets, bytes) of the
        domain's default action. Both are the host's **absolute totals** and its **complete**
        report: ids missing from it are dropped from the host's counters. Ids that do not exist
        (any more) are ignored; a rule deleted while the report is in flight is dropped by the
        database itself (weak references), so the batch never fails because of it.

        Nothing is written when the stored report is already equal. Only this host's row is
        written, with no ``verify``: reports of different hosts, and REST writes, never conflict.
        The host must be registered (``register_host``), else NotFound. Thread-safe like every
        write (serialised with the store's other writes in this process).
        """
        check_hostname(host_name, "host")
        rules, defaults = check_counts("rules", rules), check_counts("defaults", defaults)
        deadline = time.monotonic() + self.write_timeout
        with self._conn.locked(deadline):
            if self._conn.idl is None:
                raise Unavailable("the directory store is stopped")
            self._conn.wait_synced(deadline)
            self._counter_watch.watch(self._conn, host_name, deadline)
            planned, _state = self._path.run(
                plan_report(self._conn, self._mirror, host_name, rules, defaults), deadline)
        return planned.build is not None


def _share(hosts: frozenset[str], state: DirectoryState) -> scope.Scope:
    """``scope.scope_of`` from the mirror's placement index: proportional to the local domains and
    their carriers, not to every vport the replica holds (which it would walk on every batch)."""
    placement = state.placement
    if placement is None:
        return scope.scope_of(hosts, state.vports.values(), state.domains)
    local = placement.local_domains(hosts)
    enterprises = frozenset(state.domains[d].enterprise for d in local if d in state.domains)
    return scope.Scope(hosts, local, enterprises, placement.carriers_of(local) | hosts)
