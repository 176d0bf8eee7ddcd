"""The directory store: an OVSDB database (schema ``Nuage_Directory``) followed with the python-ovs IDL.

Reads: the IDL keeps a replica of the database; every row update is mirrored into
immutable model objects, and after each batch of updates a new ``DirectoryState``
snapshot is published. ``snapshot()`` just returns the latest one (no lock, no copy).

Writes: ``apply(planner)`` calls the pure planner on the current snapshot, turns the
resulting ``Change`` into ONE OVSDB transaction and commits it. Object ids are chosen
by the planner and inserted with ``persist_uuid`` so that the id the API returns is
the row UUID. The database itself enforces the invariants that must hold with
several writers (several API processes on one Raft cluster): referential integrity
(strong refs to parents and policy groups), unique indexes (names per parent, VNI,
conntrack zone, (domain, ip), mac, (domain, priority)), and for subnet overlap a
verify-and-increment of the domain's ``subnet_epoch``. A transaction that loses a
race is re-planned on the fresh state (TRY_AGAIN, or an index conflict on an
automatically chosen address/VNI); any other index conflict is a 409.

Counters: the agents' per-host counter reports live in the non-root table ``HostCounters``
(one row per host, owned by its ``Host`` row; see ``report_counters``). They are mirrored into
a separate ``CounterSnapshot`` (``counters()``), not into ``DirectoryState``: a report neither
invalidates the state's indexes nor wakes the listeners.

Threading: one IDL thread runs ``idl.run()`` and calls the listeners. All IDL
access (including commits by writer threads) happens under ``self._lock``, so
in-process writers are serialised. Listeners are called from the IDL thread,
after applied updates, with the newest snapshot (batches that arrive while a
listener runs are coalesced into one call with the latest state); they must not
block for long. They may call the write methods (the lock is re-entrant), but the
monitor then waits for that transaction.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from importlib import resources
from types import MappingProxyType

import immutables
import ovs.db.idl
import ovs.poller

from nuage_ryu.directory import external, model, validate
from nuage_ryu.directory.errors import Conflict, NotFound, Unavailable, ValidationError
from nuage_ryu.directory.model import KINDS, DirectoryState, Endpoint
from nuage_ryu.directory.validate import Change, Op

LOG = logging.getLogger(__name__)

TABLE_KIND = {table: kind for kind, (table, _plural, _parent) in KINDS.items()}
COUNTERS_TABLE = "HostCounters"
# OVSDB integers are signed 64-bit; OVS counters are unsigned (and never get near this).
COUNTER_MAX = 2**63 - 1
REF_FIELDS = {"enterprise", "domain", "zone", "subnet"}
# How often a write is re-planned after losing a race before giving up (409/503).
MAX_ATTEMPTS = 20
# How long a write whose outcome is in doubt (leader change) may wait for the cluster to show it.
UNCERTAIN_GRACE_S = 30.0


class CommitUnconfirmed(Unavailable):
    """A transaction was sent but its outcome did not arrive in time (it may have committed)."""


def schema_path() -> str:
    """Path of the installed ``nuage_directory.ovsschema``."""
    return str(resources.files("nuage_ryu.db").joinpath("nuage_directory.ovsschema"))


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------
# Row <-> model conversion


def _ref(row, col: str) -> str:
    return str(row._data[col].as_scalar())


def _opt(row, col: str):
    values = row._data[col].as_list()
    return values[0] if values else None


def _endpoint(row, prefix: str) -> Endpoint:
    etype = row._data[prefix + "_type"].as_scalar()
    if etype in ("policygroup", "zone", "subnet"):
        ref = _opt(row, f"{prefix}_{etype}")
        return Endpoint(etype, id=str(ref) if ref else None)
    if etype == "cidr":
        return Endpoint("cidr", cidr=_opt(row, prefix + "_cidr"))
    return model.ANY


def row_to_object(kind: str, row):
    """Convert an IDL row into the immutable model object."""
    rid = str(row.uuid)
    if kind == "enterprise":
        return model.Enterprise(rid, row.name, row.description)
    if kind == "domain":
        return model.Domain(rid, _ref(row, "enterprise"), row.name, row.vni, row.ct_zone, row.router_mac,
                            row.default_action, row.description, row.subnet_epoch, row.egress_nat)
    if kind == "zone":
        return model.Zone(rid, _ref(row, "domain"), row.name, row.description)
    if kind == "subnet":
        return model.Subnet(rid, _ref(row, "zone"), _ref(row, "domain"), row.name, row.cidr, row.gateway,
                            row.description)
    if kind == "policygroup":
        return model.PolicyGroup(rid, _ref(row, "domain"), row.name, row.description)
    if kind == "vport":
        return model.VPort(
            rid, _ref(row, "subnet"), _ref(row, "domain"), row.name, row.ip, row.mac, row.gateway,
            row.type, row.host, row.status, row.description,
            frozenset(str(u) for u in row._data["policygroups"].as_list()),
            MappingProxyType(dict(row.external_ids)),
            row.floating_ip, external.decode_port_mappings(row.port_mappings))
    if kind == "acl":
        return model.ACL(
            rid, _ref(row, "domain"), row.priority, _endpoint(row, "src"), _endpoint(row, "dst"),
            row.protocol, _opt(row, "dst_ports"), _opt(row, "icmp_type"), _opt(row, "icmp_code"),
            row.action, row.stateful, row.name, row.description)
    if kind == "host":
        return model.Host(rid, row.name, row.tunnel_ip, row.datapath_id, row.connected, row.last_seen)
    if kind == "token":
        return model.ApiToken(rid, _ref(row, "enterprise"), row.token_hash, row.name, row.created)
    raise KeyError(kind)  # pragma: no cover


def _uuid_map(row, col: str) -> dict[str, int]:
    return {str(k.value): v.value for k, v in row._data[col].values.items()}


def row_to_counters(row) -> model.HostCounters:
    """Convert an IDL ``HostCounters`` row into the immutable report."""
    rule_bytes, default_bytes = _uuid_map(row, "rule_bytes"), _uuid_map(row, "default_bytes")
    rules = {k: (p, rule_bytes.get(k, 0)) for k, p in _uuid_map(row, "rule_packets").items()}
    defaults = {k: (p, default_bytes.get(k, 0)) for k, p in _uuid_map(row, "default_packets").items()}
    return model.HostCounters(str(row.uuid), row.host, MappingProxyType(rules), MappingProxyType(defaults))


def _check_counts(what: str, values) -> dict[str, tuple[int, int]]:
    if not isinstance(values, dict):
        raise ValidationError(f"{what} must be a dict of id -> (packets, bytes)")
    out = {}
    for key, value in values.items():
        try:
            packets, nbytes = value
        except (TypeError, ValueError):
            raise ValidationError(f"{what}[{key!r}] must be (packets, bytes)") from None
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (packets, nbytes)):
            raise ValidationError(f"{what}[{key!r}]: counts must be integers >= 0")
        out[str(key)] = (min(packets, COUNTER_MAX), min(nbytes, COUNTER_MAX))
    return out


def _columns(fields: dict) -> dict:
    """Model field values -> OVSDB column values (python-ovs representation)."""
    cols: dict = {}
    for key, value in fields.items():
        if key in REF_FIELDS:
            cols[key] = uuid.UUID(value)
        elif key in ("source", "destination"):
            prefix = "src" if key == "source" else "dst"
            cols[prefix + "_type"] = value.type
            for etype in ("policygroup", "zone", "subnet"):
                cols[f"{prefix}_{etype}"] = [uuid.UUID(value.id)] if value.type == etype else []
            cols[prefix + "_cidr"] = [value.cidr] if value.type == "cidr" else []
        elif key == "policygroups":
            cols[key] = [uuid.UUID(v) for v in sorted(value)]
        elif key == "external_ids":
            cols[key] = dict(value)
        elif key == "port_mappings":
            cols[key] = external.encode_port_mappings(value)
        elif key in ("dst_ports", "icmp_type", "icmp_code"):
            cols[key] = [] if value is None else [value]
        else:
            cols[key] = value
    return cols


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
        table, values, columns = m.groups()
        cols = [c for c in re.findall(r'"(\w+)"', columns) if c not in REF_FIELDS] or ["name"]
        return (f"another {TABLE_KIND.get(table, table)} already has this {' and '.join(cols)} "
                f"({values}); a concurrent request got it first")
    if kind == "referential integrity violation":
        return f"the object is still referenced by other objects ({details})"
    return f"{kind}: {details}" if details else kind


# ---------------------------------------------------------------------------


def _discard(m: immutables.Map, key) -> immutables.Map:
    return m.delete(key) if key in m else m


_EMPTY_PORTS = model.SubnetPorts(immutables.Map(), immutables.Map(), immutables.Map(), 0)


class _Idl(ovs.db.idl.Idl):
    """IDL that forwards each row change to the store's mirror."""

    def __init__(self, remote: str, helper, on_row):
        super().__init__(remote, helper, leader_only=True)
        self._on_row = on_row

    def notify(self, event, row, updates=None):
        self._on_row(event, row)


class DirectoryStore:
    """The directory database client used by the REST API and the VRS agent.

    ``remote``: one OVSDB remote or a comma separated list of Raft cluster members
    (``tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,...``); writes go to the leader.
    """

    def __init__(self, remote: str, *, schema: str | None = None, write_timeout: float = 10.0,
                 all_counters: bool = False):
        """``all_counters``: replicate every host's counter reports (the REST API needs them). When
        False (agents), only the reports of hosts this store itself reports for are replicated,
        so that N agents do not each receive the counters of all N hosts."""
        self.remote = remote
        self.all_counters = all_counters
        self._counter_hosts: set[str] = set()
        self._schema = schema or schema_path()
        self.write_timeout = write_timeout
        self._lock = threading.RLock()
        self._idl: _Idl | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        # The mirror is made of persistent (immutable, structure-sharing) maps: applying a row
        # change costs O(log n) and publishing a snapshot costs nothing, whatever the size.
        self._mirror: dict[str, immutables.Map] = {kind: immutables.Map() for kind in KINDS}
        # Per-subnet vport index (names, addresses) and the MAC set, kept the same way, so that
        # planning a vport create never walks all vports.
        self._subnet_ports: immutables.Map = immutables.Map()
        self._macs: immutables.Map = immutables.Map()
        self._dirty: set[str] = set(KINDS)
        self._state = DirectoryState()
        self._version = 0
        self._listeners: list[Callable[[DirectoryState], None]] = []
        self._counter_rows: immutables.Map = immutables.Map()
        self._counters_dirty = False
        self._counters = model.NO_COUNTERS

    # -- lifecycle --
    def start(self, timeout: float = 10.0) -> None:
        """Connect, wait for the initial contents, and start the IDL thread."""
        helper = ovs.db.idl.SchemaHelper(location=self._schema)
        helper.register_all()
        self._idl = _Idl(self.remote, helper, self._on_row)
        if not self.all_counters:
            # Set before the first monitor request, which then carries it.
            self._idl.cond_change(COUNTERS_TABLE, [False])
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._synced():
                if time.monotonic() > deadline:
                    self._idl.close()
                    raise Unavailable(f"cannot reach the directory database at {self.remote}")
                self._run_once(min(0.2, max(0.0, deadline - time.monotonic())))
            self._publish()
        self._thread = threading.Thread(target=self._loop, name="directory-idl", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the IDL thread and close the connection."""
        self._stopping.set()
        self._wake()
        if self._thread:
            self._thread.join(5)
        with self._lock:
            if self._idl:
                self._idl.close()
                self._idl = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _synced(self) -> bool:
        idl = self._idl
        return idl.has_ever_connected() and idl.state == idl.IDL_S_MONITORING and idl._session.is_connected()

    def _run_once(self, timeout: float) -> None:
        # Caller holds the lock. Runs the IDL, then blocks (still holding it) at most `timeout`.
        self._idl.run()
        poller = ovs.poller.Poller()
        self._idl.wait(poller)
        poller.timer_wait(int(timeout * 1000))
        poller.block()
        self._idl.run()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if self._idl is None:
                    return
                self._idl.run()
                self._check_mirror()
                self._publish()
                poller = ovs.poller.Poller()
                self._idl.wait(poller)
                poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
                poller.timer_wait(1000)
            self._fire_listeners()
            poller.block()
            try:
                while os.read(self._wake_r, 512):
                    pass
            except OSError:
                pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # -- mirror --
    def _on_row(self, event, row) -> None:
        kind = TABLE_KIND.get(row._table.name)
        if kind is None:
            if row._table.name == COUNTERS_TABLE:
                rid = str(row.uuid)
                if event == ovs.db.idl.ROW_DELETE:
                    self._counter_rows = _discard(self._counter_rows, rid)
                else:
                    self._counter_rows = self._counter_rows.set(rid, row_to_counters(row))
                self._counters_dirty = True
            return
        rid = str(row.uuid)
        table = self._mirror[kind]
        old = table.get(rid)
        if event == ovs.db.idl.ROW_DELETE:
            new = None
            if old is not None:
                self._mirror[kind] = table.delete(rid)
        else:
            new = row_to_object(kind, row)
            self._mirror[kind] = table.set(rid, new)
        if kind == "vport":
            self._index_vport(old, new)
        self._dirty.add(kind)

    def _index_vport(self, old, new) -> None:
        if old is not None:
            sp = self._subnet_ports.get(old.subnet)
            if sp is not None and old.id in sp.vports:
                sp = model.SubnetPorts(sp.vports.delete(old.id), _discard(sp.names, old.name),
                                       _discard(sp.ips, old.ip), sp.max_ip)
                self._subnet_ports = (self._subnet_ports.set(old.subnet, sp) if len(sp.vports)
                                      else self._subnet_ports.delete(old.subnet))
            self._macs = _discard(self._macs, old.mac)
        if new is not None:
            sp = self._subnet_ports.get(new.subnet) or _EMPTY_PORTS
            # max_ip only grows: it is an allocation hint ("continue after the last one handed out").
            sp = model.SubnetPorts(sp.vports.set(new.id, new), sp.names.set(new.name, True),
                                   sp.ips.set(new.ip, True), max(sp.max_ip, model.ip_int(new.ip)))
            self._subnet_ports = self._subnet_ports.set(new.subnet, sp)
            self._macs = self._macs.set(new.mac, True)

    def _check_mirror(self) -> None:
        # After a reconnect the IDL reloads everything without reporting deletions;
        # a size mismatch reveals it and that table is rebuilt from the replica.
        if self._idl.txn is not None:
            return
        for kind, (table, _p, _q) in KINDS.items():
            rows = self._idl.tables[table].rows
            if len(rows) != len(self._mirror[kind]):
                self._mirror[kind] = immutables.Map({str(u): row_to_object(kind, r) for u, r in rows.items()})
                self._dirty.add(kind)
                if kind == "vport":
                    self._subnet_ports, self._macs = immutables.Map(), immutables.Map()
                    for vport in self._mirror["vport"].values():
                        self._index_vport(None, vport)
        rows = self._idl.tables[COUNTERS_TABLE].rows
        if len(rows) != len(self._counter_rows):
            self._counter_rows = immutables.Map({str(u): row_to_counters(r) for u, r in rows.items()})
            self._counters_dirty = True

    def _publish(self) -> None:
        if self._counters_dirty:
            self._counters_dirty = False
            self._counters = model.CounterSnapshot(self._counter_rows)
        if not self._dirty:
            return
        self._dirty.clear()
        maps = {plural: self._mirror[kind] for kind, (_t, plural, _p) in KINDS.items()}
        self._state = DirectoryState(**maps, subnet_ports=self._subnet_ports, macs=self._macs)
        self._version += 1
        if threading.current_thread() is not self._thread:
            # A writer thread read this update from the connection: the listener thread would
            # otherwise only notice it at its next timer tick (up to a second later).
            self._wake()

    def _fire_listeners(self) -> None:
        state, version = self._state, self._version
        if version == getattr(self, "_fired_version", 0):
            return
        self._fired_version = version
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # a broken listener must not stop the IDL thread
                LOG.exception("directory listener failed")

    # -- reading --
    def snapshot(self) -> DirectoryState:
        """The latest published state (immutable; safe to use from any thread)."""
        return self._state

    def counters(self) -> model.CounterSnapshot:
        """The latest counter reports (immutable; safe from any thread). See ``all_counters``."""
        return self._counters

    @property
    def connected(self) -> bool:
        """True while connected to the database (the leader, for a cluster)."""
        idl = self._idl
        return bool(idl and idl._session.is_connected())

    def add_listener(self, callback: Callable[[DirectoryState], None]) -> None:
        """Call ``callback(state)`` from the IDL thread after each applied update batch."""
        self._listeners.append(callback)
        self._wake()

    # -- writing --
    def apply(self, planner: Callable[[DirectoryState], Change]) -> tuple[Change, DirectoryState]:
        """Plan on the current state and commit as one transaction; re-plan on lost races.

        Returns the applied change and the state right after it. Raises DirectoryError.
        """
        deadline = time.monotonic() + self.write_timeout
        with self._lock:
            # Attempts whose outcome is unknown (reply lost in a leader change): any of them may
            # have committed, and its rows may only become visible after a later attempt planned.
            uncertain: list[Change] = []
            uncertain_since = 0.0
            for _attempt in range(MAX_ATTEMPTS):
                if self._idl is None:
                    raise Unavailable("the directory store is stopped")
                # A 503 tells the client "not done, retry"; for a write that may have committed that
                # would turn its retry into a false 409. So with an attempt in doubt, wait longer
                # (bounded) for the cluster to come back and show whether it committed.
                until = max(deadline, uncertain_since + UNCERTAIN_GRACE_S) if uncertain else deadline
                self._wait_synced(until)
                self._check_mirror()
                self._publish()
                done = self._committed_earlier(uncertain)
                if done is not None:
                    return done, self._state
                try:
                    change = planner(self._state)
                except Conflict:
                    # e.g. "name exists" because an earlier attempt did commit after all
                    done = self._committed_earlier(uncertain, catch_up=True)
                    if done is not None:
                        return done, self._state
                    raise
                if not change.ops:
                    return change, self._state
                try:
                    status, error = self._commit(change, until)
                except CommitUnconfirmed:
                    status, error = ovs.db.idl.Transaction.TRY_AGAIN, ""  # outcome unknown: as a lost reply
                if status in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
                    self._publish()
                    self._wake()
                    return change, self._state
                if status == ovs.db.idl.Transaction.ERROR and (
                        '"constraint violation"' not in error or not change.auto_assigned) and (
                        '"duplicate uuid"' not in error):
                    done = self._committed_earlier(uncertain, catch_up=True)
                    if done is not None:  # this attempt clashed with an earlier one's own rows
                        return done, self._state
                    if '"constraint violation"' in error and _index_table(error) == "ACL":
                        raise ValidationError(_conflict_message(error))  # duplicate priority: see validate
                    if '"constraint violation"' in error or "referential integrity" in error:
                        raise Conflict(_conflict_message(error))
                    raise Unavailable(f"the directory database refused the change: {error}")
                # Lost a race (TRY_AGAIN after a failed verify or a reconnect, an index conflict on an
                # automatically chosen value) or the outcome is unknown (leader change): if the
                # previous attempt did commit, its inserted rows are there now; otherwise re-plan.
                if not uncertain:
                    uncertain_since = time.monotonic()
                uncertain.append(change)
                self._catch_up()
                done = self._committed_earlier(uncertain)
                if done is not None:
                    return done, self._state
            raise Unavailable("too many concurrent changes; try again")

    def _committed_earlier(self, uncertain: list[Change], catch_up: bool = False) -> Change | None:
        """The earlier attempt whose inserted rows are visible now (it committed), if any."""
        if not uncertain:
            return None
        if catch_up:
            self._catch_up()
        for change in reversed(uncertain):
            if self._inserts_present(change):
                self._publish()
                self._wake()
                return change
        return None

    def _wait_synced(self, deadline: float) -> None:
        while not self._synced():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable("the directory database is not reachable (no leader?)")
            self._run_once(min(0.1, remaining))
        self._idl.run()

    def _catch_up(self) -> None:
        # Let the replica receive what the winning writer committed.
        seqno = self._idl.change_seqno
        end = time.monotonic() + 0.2
        while self._idl.change_seqno == seqno and time.monotonic() < end:
            self._run_once(0.02)
        self._check_mirror()

    def _inserts_present(self, change: Change) -> bool:
        inserts = [op for op in change.ops if op.action == "insert"]
        return bool(inserts) and all(op.id in self._mirror[op.kind] for op in inserts)

    def _commit(self, change: Change | None, deadline: float,
                build: Callable[[ovs.db.idl.Transaction], None] | None = None) -> tuple[int, str]:
        idl = self._idl
        txn = ovs.db.idl.Transaction(idl)
        try:
            if build is not None:
                build(txn)
            else:
                self._build(txn, change)
            while True:
                status = txn.commit()
                if status != ovs.db.idl.Transaction.INCOMPLETE:
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

    def _build(self, txn, change: Change) -> None:
        idl = self._idl
        for kind, obj_id, column in change.guards:
            row = idl.tables[KINDS[kind][0]].rows.get(uuid.UUID(obj_id))
            if row is not None:
                row.verify(column)
                setattr(row, column, getattr(row, column) + 1)
        for op in change.ops:
            table = idl.tables[KINDS[op.kind][0]]
            if op.action == "insert":
                row = txn.insert(table, new_uuid=uuid.UUID(op.id), persist_uuid=True)
            else:
                row = table.rows.get(uuid.UUID(op.id))
                if row is None:
                    raise NotFound(f"{op.kind} {op.id} not found")
            if op.action == "delete":
                row.delete()
                continue
            for col, value in _columns(op.fields).items():
                setattr(row, col, value)

    # -- agent-side writes --
    def register_host(self, name: str, tunnel_ip: str | None, datapath_id: str | int | None) -> str:
        """Create or update the Host row of an agent, mark it connected; returns the host id.

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

        change, _state = self.apply(plan)
        return change.result[1]

    def set_host_connected(self, name: str, connected: bool) -> None:
        """Mark a host (dis)connected; also refreshes last_seen when connected."""
        fields = {"connected": bool(connected)}
        if connected:
            fields["last_seen"] = now_ms()
        self._update_host(name, fields)

    def heartbeat(self, name: str) -> None:
        """Refresh a host's last_seen (agents call this periodically)."""
        self._update_host(name, {"last_seen": now_ms()})

    def _update_host(self, name: str, fields: dict) -> None:
        def plan(state: DirectoryState) -> Change:
            host = state.host_by_name(name)
            if host is None:
                raise NotFound(f"host {name} not found")
            return Change([Op("update", "host", host.id, dict(fields))], ("host", host.id))

        self.apply(plan)

    def set_vport_status(self, vport_id: str, status: str) -> None:
        """Set a vport's status ('up' once its flows are installed, 'down' otherwise)."""
        if status not in model.VPORT_STATUSES:
            raise ValidationError(f"status {status!r} is not one of: up, down")

        def plan(state: DirectoryState) -> Change:
            vport = validate.get_object(state, "vport", vport_id)
            if vport.status == status:
                return Change([], ("vport", vport_id))
            return Change([Op("update", "vport", vport_id, {"status": status})], ("vport", vport_id))

        self.apply(plan)

    # -- counters (agent side) --
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
        validate.check_hostname(host_name, "host")
        rules, defaults = _check_counts("rules", rules), _check_counts("defaults", defaults)
        deadline = time.monotonic() + self.write_timeout
        with self._lock:
            if self._idl is None:
                raise Unavailable("the directory store is stopped")
            self._wait_synced(deadline)
            self._watch_counters(host_name, deadline)
            for _attempt in range(MAX_ATTEMPTS):
                self._check_mirror()
                self._publish()
                state = self._state
                host = state.host_by_name(host_name)
                if host is None:
                    raise NotFound(f"host {host_name} not found")
                want_rules = {k: v for k, v in rules.items() if k in state.acls}
                want_defaults = {k: v for k, v in defaults.items() if k in state.domains}
                host_row = self._idl.tables["Host"].rows[uuid.UUID(host.id)]
                link = host_row._data["counters"].as_list()
                report = self._counter_rows.get(str(link[0])) if link else None
                if link and report is None:
                    # Linked, but the row has not reached our replica yet (condition just acked).
                    self._catch_up()
                    continue
                if report is not None and report.rules == want_rules and report.defaults == want_defaults:
                    return False

                def build(txn, host_row=host_row, link=link, report=report, rules=want_rules,
                          defaults=want_defaults):
                    table = self._idl.tables[COUNTERS_TABLE]
                    if link:
                        row = table.rows[link[0]]
                    else:
                        row = txn.insert(table)
                        row.host = host_name
                        host_row.counters = [row]
                    if report is None or report.rules != rules:
                        row.rule_packets = {uuid.UUID(k): v[0] for k, v in rules.items()}
                        row.rule_bytes = {uuid.UUID(k): v[1] for k, v in rules.items()}
                    if report is None or report.defaults != defaults:
                        row.default_packets = {uuid.UUID(k): v[0] for k, v in defaults.items()}
                        row.default_bytes = {uuid.UUID(k): v[1] for k, v in defaults.items()}

                status, error = self._commit(None, deadline, build)
                if status in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
                    self._check_mirror()
                    self._publish()
                    return True
                if status == ovs.db.idl.Transaction.ERROR and '"constraint violation"' not in error:
                    raise Unavailable(f"the directory database refused the counters: {error}")
                # TRY_AGAIN (reconnect, leader change) or another writer linked a row for this host
                # first (index on HostCounters.host): catch up and write on the fresh replica.
                self._catch_up()
            raise Unavailable("could not store the counters; try again")

    def _watch_counters(self, host_name: str, deadline: float) -> None:
        """Make sure this host's counter row is replicated (agents replicate only their own hosts')."""
        if self.all_counters or host_name in self._counter_hosts:
            return
        self._counter_hosts.add(host_name)
        self._idl.cond_change(COUNTERS_TABLE, [["host", "==", h] for h in sorted(self._counter_hosts)])
        cond = self._idl.tables[COUNTERS_TABLE].condition_state
        # ovsdb-server sends the rows the new condition selects before it acknowledges it.
        while cond.new is not None or cond.requested is not None:
            if time.monotonic() > deadline:
                raise Unavailable("the directory database did not acknowledge the counters monitor")
            self._run_once(0.05)
