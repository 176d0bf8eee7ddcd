"""Host Open vSwitch management over OVSDB (ovsdbapp): integration bridge, tunnel, container ports.

``HostOVS`` keeps one IDL connection to a host's Open_vSwitch database and
offers idempotent "ensure" operations: each call is one OVSDB transaction,
always committed with ``check_error=True``, and re-running it with the same
arguments changes nothing (it never recreates a row that is already right, so
a re-run does not bounce the controller connection or renumber a port).

Container ports carry the contract described in docs/ovsdb.md on their
Interface's ``external_ids`` (keys and the ``VPortPort`` record: contract.py).

Every failure surfaces as ``HostOVSError`` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence

from ovs import jsonrpc, poller, stream
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend.ovs_idl import command, connection, event, idlutils, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from nuage_ryu.hostovs import controller_target
from nuage_ryu.hostovs.contract import VPortPort, vport_external_ids, vport_port
from nuage_ryu.hostovs.pipelined import PipelinedConnection

SCHEMA_NAME = "Open_vSwitch"
DEFAULT_PROTOCOLS = ("OpenFlow13", "OpenFlow14", "OpenFlow15")
VXLAN_PORT = "vxlan0"
# The patch pair of external connectivity: its br-int end and its br-phy end (docs/external.md).
EXTERNAL_PATCH_INT = "patch-ext"
EXTERNAL_PATCH_PHYS = "patch-int"

# Controller connection tuning: out-of-band (the management network is not the
# overlay), a 10 s probe like Neutron's of_inactivity_probe, and a short
# reconnect backoff so that a restarted agent is picked up within a second.
DEFAULT_INACTIVITY_PROBE_MS = 10000
DEFAULT_MAX_BACKOFF_MS = 1000
CONTROLLER_SESSION_KEY = "nuage-session"  # Controller external_ids: the agent session connected last


# Columns ovs-vswitchd keeps rewriting on its own (counters, link and daemon state) that nothing
# here reads: not monitored, so ovsdb-server does not send them and the IDL does not parse them.
# A new port otherwise arrives as a series of updates of these (link state, speed, duplex, status,
# statistics, ifindex, mtu), and every port's statistics came again every few seconds.
UNREAD_STATUS_COLUMNS = {
    "Open_vSwitch": ("statistics",),
    "Bridge": ("status", "rstp_status"),
    "Port": ("statistics", "status", "rstp_statistics", "rstp_status", "bond_active_slave"),
    "Interface": ("statistics", "status", "link_state", "link_speed", "link_resets", "duplex", "admin_state",
                  "lacp_current", "bfd_status", "cfm_fault", "cfm_fault_status", "cfm_remote_mpids",
                  "cfm_flap_count", "cfm_health", "cfm_remote_opstate", "ifindex", "mtu"),
    "Controller": ("status",),
}
MONITORED_TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface", "Controller", "SSL")


def register_monitored(helper, schema: dict) -> None:
    """Monitor the tables this module uses, every column but the ``UNREAD_STATUS_COLUMNS``."""
    for table in MONITORED_TABLES:
        columns = schema["tables"][table]["columns"]
        skip = set(UNREAD_STATUS_COLUMNS.get(table, ()))
        helper.register_columns(table, [c for c in columns if c not in skip])


class QuietRowEvent(event.RowEvent):
    """A RowEvent whose match does not format the rows for a debug log.

    ovsdbapp's ``RowEvent.matches`` renders the whole row and its old values
    (``row2str``) for a ``LOG.debug`` on every match, also with debug logging off:
    that was a third of the agent's CPU in a burst of attaches (every port's ofport
    waiter and the interface watch match each new port).

    Its ``run`` gets no row (None): the handler below skips the copy of the whole row
    (``frozen_row``) that ovsdbapp makes for every match, for events that only signal.
    """

    reads_row = False

    def matches(self, ev, row, old=None):
        return (ev in self.events and row._table.name == self.table
                and self.base_match(ev, row, old) and self.match_fn(ev, row, old))


class HostOVSError(Exception):
    """The host's Open_vSwitch database is unreachable or refused an operation."""


@dataclasses.dataclass(frozen=True)
class VPortSpec:
    """What ``add_vport_ports`` needs to know about one container port."""

    ifname: str
    vport_id: str
    container_id: str
    extra_ids: Mapping[str, str] | None = None
    ofport_request: int | None = None
    iface_type: str = ""
    mac: str | None = None


def datapath_id_for(host_name: str) -> int:
    """A stable, non-zero 63-bit OpenFlow datapath id derived from ``host_name``.

    63 bits (not 64) so that it fits the signed 64-bit integers of OVSDB and of
    most JSON tooling; a hash so that the id survives bridge re-creation.
    """
    if not host_name:
        raise HostOVSError("host name must not be empty")
    digest = hashlib.sha256(host_name.encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1) or 1


def format_datapath_id(datapath_id: int) -> str:
    """The 16-hex-digit form OVS expects in ``other_config:datapath-id``."""
    if not 0 < datapath_id < (1 << 64):
        raise HostOVSError(f"datapath id out of range: {datapath_id}")
    return f"{datapath_id:016x}"


def fetch_schema(remote: str, timeout: float) -> dict:
    """The Open_vSwitch schema JSON from the first answering remote, within ``timeout`` seconds.

    ovsdbapp's own fetch blocks without a deadline on an unresponsive TCP
    remote; this one gives up in time so callers can report a one-line error.
    """
    deadline = time.monotonic() + timeout
    problems = []
    for target in idlutils.parse_connection(remote):
        error, strm = stream.Stream.open(target)
        if error:
            problems.append(f"{target}: {_strerror(error)}")
            continue
        rpc = None
        try:
            while (error := strm.connect()) == errno.EAGAIN:
                if not _block_until(deadline, strm.run_wait, strm.connect_wait):
                    error = errno.ETIMEDOUT
                    break
            if error:
                problems.append(f"{target}: {_strerror(error)}")
                continue
            rpc = jsonrpc.Connection(strm)
            request = jsonrpc.Message.create_request("get_schema", [SCHEMA_NAME])
            rpc.send(request)
            while True:
                rpc.run()
                error, reply = rpc.recv()
                if reply is not None and reply.id == request.id:
                    if reply.error:
                        problems.append(f"{target}: {reply.error}")
                        break
                    return reply.result
                if error and error != errno.EAGAIN:
                    problems.append(f"{target}: {_strerror(error)}")
                    break
                if error and not _block_until(deadline, rpc.wait, rpc.recv_wait):
                    problems.append(f"{target}: {_strerror(errno.ETIMEDOUT)}")
                    break
        finally:
            if rpc is not None:
                rpc.close()
            else:
                strm.close()
    raise HostOVSError(f"cannot reach OVSDB at {remote}: {'; '.join(problems) or 'no remote given'}")


def _strerror(error: int) -> str:
    return "end of file" if error == -1 else os.strerror(error)


def _block_until(deadline: float, *waiters) -> bool:
    """Block on the waiters' fds until something happens or ``deadline``; False when it passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    waiting = poller.Poller()
    for wait in waiters:
        wait(waiting)
    waiting.timer_wait(int(remaining * 1000) + 1)
    waiting.block()
    return True


class _RowEventHandler(event.RowEventHandler):
    """ovsdbapp's handler, freezing a matched row only for events that read it.

    ovsdbapp copies every column of a matched row (``frozen_row``) so that the notify
    thread sees a stable value; the waiters and the interface watch only signal.
    """

    def notify(self, ev, row, updates=None):
        frozen = None
        for match in self.matching_events(ev, row, updates):
            if getattr(match, "reads_row", True):
                if frozen is None:
                    frozen = self._on_matching(ev, row, updates)
                self.notifications.put((match, ev, frozen, updates))
            else:
                self.notifications.put((match, ev, None, None))


class _EventIdl(connection.OvsdbIdl):
    """An IDL that hands row changes to a RowEventHandler (for WaitEvents)."""

    def __init__(self, remote: str, helper) -> None:
        super().__init__(remote, helper)
        self.notify_handler = _RowEventHandler()

    def notify(self, ev, row, updates=None):
        self.notify_handler.notify(ev, row, updates)


class _HostApi(impl_idl.OvsdbIdl):
    """ovsdbapp's Open_vSwitch API with a per-object connection.

    ovsdbapp keeps the connection on the *class*, so a second API object for a
    different database (several lab hosts in one process) would silently reuse
    the first connection. Here it belongs to the instance.
    """

    @property
    def ovsdb_connection(self):
        return self.__dict__.get("_host_connection")

    @ovsdb_connection.setter
    def ovsdb_connection(self, conn):
        self.__dict__["_host_connection"] = conn

    def create_transaction(self, check_error=True, log_errors=False, **kwargs):
        return _Transaction(self, self.ovsdb_connection, check_error=check_error,
                            log_errors=log_errors)


class _Transaction(transaction.Transaction):
    """A plain transaction; it does not wait for ovs-vswitchd (see HostOVS.wait_for_vswitchd)."""

    def pre_commit(self, txn):
        # ovsdbapp's AddPortCommand records the interfaces it inserts here.
        txn.expected_ifaces = set()


class _QuietWaitEvent(QuietRowEvent, event.WaitEvent):
    """A WaitEvent with the quiet match."""


class _InterfaceOfportReady(_QuietWaitEvent):
    """Fires once the named Interface has an ofport (assigned, or -1 for failure)."""

    def __init__(self, ifname: str, timeout: float) -> None:
        super().__init__((self.ROW_CREATE, self.ROW_UPDATE), "Interface",
                         (("name", "=", ifname),), timeout=timeout)
        self.event_name = f"InterfaceOfportReady({ifname})"

    def match_fn(self, ev, row, old):
        return bool(row.ofport)


class _VswitchdCaughtUp(_QuietWaitEvent):
    """Fires once ovs-vswitchd reports cur_cfg >= the awaited next_cfg."""

    def __init__(self, next_cfg: int, timeout: float) -> None:
        super().__init__((self.ROW_UPDATE,), "Open_vSwitch", None, timeout=timeout)
        self.next_cfg = next_cfg

    def match_fn(self, ev, row, old):
        return row.cur_cfg >= self.next_cfg


class _BumpNextCfg(command.BaseCommand):
    """Increment Open_vSwitch.next_cfg; the result is the new value.

    A verified read-modify-write rather than the IDL's increment(), which the
    IDL drops from transactions that change nothing else.
    """

    def run_idl(self, txn):
        ovs = self.api._ovs
        ovs.verify("next_cfg")
        self.result = ovs.next_cfg + 1
        ovs.next_cfg = self.result


class _EnsureControllers(command.BaseCommand):
    """Make a bridge's controllers exactly ``targets`` with the given settings.

    Rows whose target is already right (in either spelling: ``controller_target``) are kept
    (only their settings are corrected), so re-running never drops a live OpenFlow connection.
    ``renew``: a kept row that is not connected is replaced by one with the other spelling of its
    target, so that ovs-vswitchd tries it at once instead of at its next back-off step (up to 8 s
    for a target it has retried since before any agent connected); the bridge keeps its flows.
    """

    def __init__(self, api, bridge: str, targets: Sequence[str], settings: Mapping[str, object],
                 renew: bool = False):
        super().__init__(api)
        self.bridge = bridge
        self.targets = list(dict.fromkeys(controller_target.canonical(t) for t in targets))
        self.settings = settings
        self.renew = renew

    def run_idl(self, txn):
        br = idlutils.row_by_value(self.api.idl, "Bridge", "name", self.bridge)
        # A bridge inserted earlier in this transaction has no column values yet.
        current = getattr(br, "controller", [])
        existing = {controller_target.canonical(row.target): row for row in current}
        rows = []
        for target in self.targets:
            row = existing.get(target)
            other = controller_target.respelled(row.target) if row is not None and self.renew else None
            if row is None or (other is not None and not row.is_connected):
                row = txn.insert(self.api._tables["Controller"])
                row.target = target if other is None else other
            _set_if_changed(row, self.settings)
            rows.append(row)
        if {r.uuid for r in rows} != {r.uuid for r in current}:  # a set column: order is meaningless
            br.controller = rows


class _MarkControllers(command.BaseCommand):
    """Set ``external_ids:<key>=<value>`` on every controller row of a bridge."""

    def __init__(self, api, bridge: str, key: str, value: str):
        super().__init__(api)
        self.bridge = bridge
        self.key = key
        self.value = value

    def run_idl(self, txn):
        br = idlutils.row_by_value(self.api.idl, "Bridge", "name", self.bridge)
        for row in getattr(br, "controller", []):
            row.setkey("external_ids", self.key, self.value)


class _EnsureSSL(command.BaseCommand):
    """Point the switch's SSL settings (Open_vSwitch.ssl, as ``ovs-vsctl set-ssl``) at these files."""

    def __init__(self, api, key_file: str, cert_file: str, ca_file: str):
        super().__init__(api)
        self.wanted = {"private_key": key_file, "certificate": cert_file, "ca_cert": ca_file,
                       "bootstrap_ca_cert": False}

    def run_idl(self, txn):
        root = next(iter(self.api.idl.tables["Open_vSwitch"].rows.values()))
        current = getattr(root, "ssl", [])
        row = current[0] if current else txn.insert(self.api._tables["SSL"])
        _set_if_changed(row, self.wanted)
        if not current:
            root.ssl = [row]


class _EnsurePort(command.BaseCommand):
    """Create (or correct) a one-interface port on a bridge; result is the Interface name."""

    def __init__(self, api, bridge: str, name: str, iface_columns: Mapping[str, object]):
        super().__init__(api)
        self.bridge = bridge
        self.name = name
        self.iface_columns = iface_columns

    def run_idl(self, txn):
        try:
            br = idlutils.row_by_value(self.api.idl, "Bridge", "name", self.bridge)
        except idlutils.RowNotFound:
            raise HostOVSError(f"bridge {self.bridge} does not exist") from None
        port = idlutils.row_by_value(self.api.idl, "Port", "name", self.name, None)
        if port is None:
            port = txn.insert(self.api._tables["Port"])
            port.name = self.name
            iface = txn.insert(self.api._tables["Interface"])
            iface.name = self.name
            port.interfaces = [iface]
            br.addvalue("ports", port)
        else:
            owner = next((b for b in self.api._tables["Bridge"].rows.values() if port in b.ports), None)
            if owner is not None and owner.uuid != br.uuid:
                raise HostOVSError(f"port {self.name} already exists on bridge {owner.name}")
            if owner is None:
                br.addvalue("ports", port)
            iface = next((i for i in port.interfaces if i.name == self.name), None)
            if iface is None:
                raise HostOVSError(f"port {self.name} has no interface of the same name")
        _set_if_changed(iface, self.iface_columns)
        self.result = self.name


class _DeletePorts(command.BaseCommand):
    """Remove the named ports (and their interfaces) from a bridge; absent ones are skipped.

    ovsdbapp's DelPortCommand reads the bridge's whole ``ports`` column for every port it
    deletes, and in a transaction that already removes some, each read also filters the
    pending removes: a batch of N deletes on a bridge of P ports cost O(N * (P + N)) row
    conversions. Here the column is read once for the whole batch.
    """

    def __init__(self, api, bridge: str, names: Iterable[str]):
        super().__init__(api)
        self.bridge = bridge
        self.names = list(names)

    def run_idl(self, txn):
        br = idlutils.row_by_value(self.api.idl, "Bridge", "name", self.bridge, None)
        if br is None:
            return  # Port rows are not roots: a bridge's ports went with it
        on_bridge = {row.uuid for row in br.ports}  # before this transaction's changes
        for name in dict.fromkeys(self.names):
            port = idlutils.row_by_value(self.api.idl, "Port", "name", name, None)
            if port is None or port.uuid not in on_bridge:
                continue
            br.delvalue("ports", port)
            for interface in port.interfaces:
                interface.delete()
            port.delete()


def _set_if_changed(row, columns: Mapping[str, object]) -> None:
    """Write only the columns whose value differs, so re-runs are no-ops."""
    for column, wanted in columns.items():
        # Rows inserted in this transaction have no values to compare with.
        current = getattr(row, column, None)
        if isinstance(current, list) and not isinstance(wanted, list):
            # Optional scalar columns read back as [] or [value].
            wanted_cmp = [] if wanted is None else [wanted]
        else:
            wanted_cmp = wanted
        if current != wanted_cmp:
            setattr(row, column, wanted_cmp)


class HostOVS:
    """Idempotent management of one host's Open vSwitch over OVSDB.

    ``remote`` is an OVSDB connection string (``unix:/path/db.sock``,
    ``tcp:IP:PORT``, or a comma-separated list). ``timeout`` bounds connecting
    and every transaction. Thread-safe: transactions are serialised by
    the connection thread (pipelined.py), and reads take the connection lock,
    which a transaction holds only while it runs, not while it waits for its reply.
    """

    def __init__(self, remote: str, timeout: float = 10.0) -> None:
        self.remote = remote
        self.timeout = timeout
        schema = fetch_schema(remote, timeout)
        helper = idlutils.create_schema_helper(schema)
        register_monitored(helper, schema)
        self._idl = _EventIdl(remote, helper)
        self._conn = PipelinedConnection(self._idl, timeout)  # reads never wait for a commit's reply
        self.api = _HostApi(self._conn, start=False)
        try:
            self._conn.start()
        except Exception as exc:  # ovsdbapp raises a bare TimeoutException or socket errors
            self._idl.close()
            self._idl.notify_handler.shutdown()
            # A bare ovsdbapp TimeoutException has no message, and its str() itself raises.
            what = f"no answer within {timeout:g}s" if isinstance(exc, ovsdbapp_exceptions.TimeoutException) \
                else str(exc)
            raise HostOVSError(f"cannot reach OVSDB at {remote}: {what}") from None
        self._closed = False

    # Transactions -------------------------------------------------------------

    def _commit(self, commands: Iterable[command.BaseCommand]) -> list:
        """Run ``commands`` in one transaction with check_error; HostOVSError on any failure."""
        if getattr(self, "_closed", True):
            raise HostOVSError(f"connection to {self.remote} is closed")
        try:
            with self.api.transaction(check_error=True, log_errors=False) as txn:
                for cmd in commands:
                    txn.add(cmd)
            return [cmd.result for cmd in txn.commands]
        except HostOVSError:
            raise
        except idlutils.RowNotFound as exc:
            raise HostOVSError(f"OVSDB {self.remote}: {exc}") from None
        except ovsdbapp_exceptions.TimeoutException:
            raise HostOVSError(
                f"OVSDB {self.remote}: transaction timed out after {self.timeout:g}s") from None
        except RuntimeError as exc:
            raise HostOVSError(f"OVSDB {self.remote}: {str(exc).splitlines()[0]}") from None

    # Integration bridge and tunnel ------------------------------------------------

    def set_ssl(self, key_file: str, cert_file: str, ca_file: str) -> None:
        """The switch's own identity for ``ssl:`` controller connections (like ``ovs-vsctl set-ssl``).

        ovs-vswitchd reads the files itself: they must be readable on this host. Idempotent.
        """
        self._commit([_EnsureSSL(self.api, key_file, cert_file, ca_file)])

    def ensure_integration_bridge(self, name: str, datapath_type: str, controllers: Sequence[str],
                                  datapath_id: int,
                                  protocols: Sequence[str] = DEFAULT_PROTOCOLS,
                                  external_ids: Mapping[str, str] | None = None,
                                  inactivity_probe_ms: int = DEFAULT_INACTIVITY_PROBE_MS,
                                  max_backoff_ms: int = DEFAULT_MAX_BACKOFF_MS,
                                  renew_controllers: bool = False) -> None:
        """Create or correct the integration bridge ``name`` in one transaction.

        fail_mode=secure (no flows without the controller: never a learning
        switch that would leak traffic between tenants), the given OpenFlow
        protocols, datapath type, fixed datapath id, in-band control disabled,
        and exactly ``controllers`` as its controller targets.

        ``renew_controllers`` (the agent, whose OpenFlow listener is up by then): a controller
        row that is not connected gets its target's other spelling, so that ovs-vswitchd
        connects at once rather than at the next step of its back-off (``controller_target``).
        """
        if datapath_type not in ("system", "netdev"):
            raise HostOVSError(f"datapath_type must be 'system' or 'netdev', not {datapath_type!r}")
        if not controllers:
            raise HostOVSError("at least one controller target is required")
        other_config = {"datapath-id": format_datapath_id(datapath_id), "disable-in-band": "true"}
        settings = {"connection_mode": "out-of-band", "inactivity_probe": inactivity_probe_ms,
                    "max_backoff": max_backoff_ms}
        commands = [
            self.api.add_br(name, may_exist=True, datapath_type=datapath_type),
            self.api.db_set("Bridge", name,
                            ("fail_mode", "secure"),
                            ("protocols", list(protocols)),
                            ("other_config", other_config)),
            _EnsureControllers(self.api, name, controllers, settings, renew_controllers),
        ]
        if external_ids:
            commands.append(self.api.db_set("Bridge", name, ("external_ids", dict(external_ids))))
        self._commit(commands)

    def mark_controller_session(self, bridge: str, session: str) -> None:
        """Record on ``bridge``'s controller rows which agent session holds them (``nuage-session``).

        Written on every OpenFlow connect. Besides telling an operator which agent process and
        connection last took the bridge, the write makes ovs-vswitchd reconfigure its controllers
        *while connected*, the only moment OVS 3.1 applies a controller's ``max_backoff`` and
        ``inactivity_probe`` to the connection: it creates active controller connections with a
        fixed 8 s max backoff and 5 s probe, and until a reconfiguration reaches the live
        connection a restarted agent waits up to 8 s for the switch to come back (docs/scale.md).
        """
        self._commit([_MarkControllers(self.api, bridge, CONTROLLER_SESSION_KEY, session)])

    def ensure_tunnel_port(self, bridge: str, local_ip: str, name: str = VXLAN_PORT,
                           dst_port: int | None = None, ofport_request: int | None = None) -> None:
        """Create or correct the single flow-based VXLAN port of ``bridge``.

        remote_ip=flow and key=flow: the pipeline picks the remote tunnel
        endpoint and the VNI per packet, so one port serves every peer.
        """
        options = {"remote_ip": "flow", "key": "flow", "local_ip": local_ip}
        if dst_port is not None:
            options["dst_port"] = str(dst_port)
        columns = {"type": "vxlan", "options": options}
        if ofport_request is not None:
            columns["ofport_request"] = ofport_request
        self._commit([_EnsurePort(self.api, bridge, name, columns)])

    def ensure_physical_bridge(self, name: str, datapath_type: str, uplink: str | None = None) -> None:
        """Create or correct an underlay bridge (e.g. ``br-phy``) with ``uplink`` as its port.

        fail_mode=standalone: it is a plain learning switch between the host's
        underlay NIC and its internal port, which carries the tunnel IP. With the
        userspace datapath this is what lets OVS encapsulate VXLAN itself and
        terminate it on the way in (native tunnelling).
        """
        commands = [
            self.api.add_br(name, may_exist=True, datapath_type=datapath_type),
            self.api.db_set("Bridge", name, ("fail_mode", "standalone")),
        ]
        if uplink:
            commands.append(_EnsurePort(self.api, name, uplink, {"type": ""}))
        self._commit(commands)

    def ensure_external_patch(self, integration_bridge: str, physical_bridge: str,
                              int_port: str = EXTERNAL_PATCH_INT, phys_port: str = EXTERNAL_PATCH_PHYS) -> None:
        """Create or correct the patch pair between br-int and br-phy (external connectivity).

        NATed traffic leaves br-int through ``int_port`` and enters br-phy through ``phys_port``,
        and the other way round (docs/external.md). Both ends in one transaction, so a half pair
        never exists.
        """
        self._commit([
            _EnsurePort(self.api, integration_bridge, int_port, {"type": "patch", "options": {"peer": phys_port}}),
            _EnsurePort(self.api, physical_bridge, phys_port, {"type": "patch", "options": {"peer": int_port}}),
        ])

    def delete_bridge(self, name: str) -> None:
        """Remove bridge ``name`` if it exists."""
        self._commit([self.api.del_br(name, if_exists=True)])

    # Container (vport) ports --------------------------------------------------------

    def add_vport_port(self, bridge: str, ifname: str, vport_id: str, container_id: str,
                       extra_ids: Mapping[str, str] | None = None,
                       ofport_request: int | None = None, iface_type: str = "",
                       mac: str | None = None) -> None:
        """Attach interface ``ifname`` to ``bridge`` as the port of vport ``vport_id``.

        The Interface's external_ids become exactly the contract keys plus
        ``extra_ids``. Re-running with the same arguments is a no-op.
        """
        self.add_vport_ports(bridge, [VPortSpec(ifname, vport_id, container_id, extra_ids=extra_ids,
                                                ofport_request=ofport_request, iface_type=iface_type,
                                                mac=mac)])

    def add_vport_ports(self, bridge: str, specs: Iterable[VPortSpec]) -> None:
        """``add_vport_port`` for many ports in one transaction (all or nothing)."""
        self.change_vport_ports(bridge, specs, ())

    def change_vport_ports(self, bridge: str, add: Iterable[VPortSpec], delete: Iterable[str]) -> None:
        """Add the ports ``add`` and remove the ports ``delete`` in one transaction (all or nothing).

        Every OVSDB transaction costs ovs-vswitchd a full bridge reconfiguration, whatever its
        size: the attaches and detaches of a host in churn share one. Absent ``delete`` ports are
        skipped; a name must not be in both.
        """
        commands = self._port_commands(bridge, add)
        names = list(delete)
        if names:
            commands.insert(0, _DeletePorts(self.api, bridge, names))
        if commands:
            self._commit(commands)

    def _port_commands(self, bridge: str, specs: Iterable[VPortSpec]) -> list:
        commands = []
        for spec in specs:
            if not spec.ifname or len(spec.ifname) > 15:
                raise HostOVSError(f"invalid interface name {spec.ifname!r} (1 to 15 characters)")
            if not spec.vport_id:
                raise HostOVSError(f"vport id of {spec.ifname} must not be empty")
            columns: dict[str, object] = {
                "type": spec.iface_type,
                "external_ids": vport_external_ids(spec.vport_id, spec.container_id, spec.ifname,
                                                   spec.extra_ids),
            }
            if spec.ofport_request is not None:
                columns["ofport_request"] = spec.ofport_request
            if spec.mac is not None:
                columns["mac"] = spec.mac
            commands.append(_EnsurePort(self.api, bridge, spec.ifname, columns))
        return commands

    def delete_vport_port(self, bridge: str, ifname: str) -> None:
        """Remove port ``ifname`` from ``bridge``; nothing happens if it is not there."""
        self.delete_vport_ports(bridge, [ifname])

    def delete_vport_ports(self, bridge: str, ifnames: Iterable[str]) -> None:
        """Remove several ports from ``bridge`` in one transaction; absent ones are skipped."""
        names = list(ifnames)
        if names:
            self._commit([_DeletePorts(self.api, bridge, names)])

    def list_vport_ports(self, bridge: str) -> list[VPortPort]:
        """The container ports of ``bridge`` (interfaces that carry a nuage vport id), by name."""
        found = []
        with self._conn.lock:
            br = idlutils.row_by_value(self._idl, "Bridge", "name", bridge, None)
            if br is None:
                raise HostOVSError(f"bridge {bridge} does not exist")
            for port in _committed(br, "ports"):
                for iface in _committed(port, "interfaces"):
                    record = vport_port(_committed(iface, "name"), _ofport(iface), _committed(iface, "external_ids"))
                    if record is not None:
                        found.append(record)
        return sorted(found, key=lambda p: p.ifname)

    # Reads and waits ---------------------------------------------------------------

    def get_ofport(self, ifname: str) -> int | None:
        """The OpenFlow port number of ``ifname``; None if not assigned yet or absent.

        Raises HostOVSError if ovs-vswitchd failed to add the interface (ofport -1).
        """
        with self._conn.lock:
            iface = idlutils.row_by_value(self._idl, "Interface", "name", ifname, None)
            if iface is None:
                return None
            ofport = _ofport(iface)
            error = iface.error[0] if iface.error else "unknown error"
        if ofport == -1:
            raise HostOVSError(f"ovs-vswitchd could not add interface {ifname}: {error}")
        return ofport

    def wait_for_ofport(self, ifname: str, timeout: float | None = None) -> int:
        """Block until ovs-vswitchd assigned ``ifname`` an ofport, and return it.

        Driven by an OVSDB row event on the Interface table (no polling):
        the event is registered first, then the cache is checked, so a change
        that lands in between is never missed.
        """
        timeout = self.timeout if timeout is None else timeout
        waiter = _InterfaceOfportReady(ifname, timeout)
        self._idl.notify_handler.watch_event(waiter)
        try:
            ofport = self.get_ofport(ifname)
            if ofport is None and waiter.wait():
                ofport = self.get_ofport(ifname)
        finally:
            self._idl.notify_handler.unwatch_event(waiter)
        if ofport is None:
            raise HostOVSError(f"interface {ifname} got no ofport within {timeout:g}s "
                               "(is ovs-vswitchd running?)")
        return ofport

    def wait_for_vswitchd(self, timeout: float | None = None) -> None:
        """Block until ovs-vswitchd has applied every change committed so far.

        Same mechanism as ovs-vsctl without --no-wait: bump next_cfg, then wait
        (row event on Open_vSwitch) for cur_cfg to reach it.
        """
        timeout = self.timeout if timeout is None else timeout
        (target,) = self._commit([_BumpNextCfg(self.api)])
        waiter = _VswitchdCaughtUp(target, timeout)
        self._idl.notify_handler.watch_event(waiter)
        try:
            with self._conn.lock:
                done = self.api._ovs.cur_cfg >= target
            if not done and not waiter.wait():
                raise HostOVSError(f"ovs-vswitchd did not apply the configuration within {timeout:g}s "
                                   f"(is it running against {self.remote}?)")
        finally:
            self._idl.notify_handler.unwatch_event(waiter)

    def bridge_config(self, name: str) -> dict[str, object]:
        """A plain-data view of a bridge's settings (for status output and tests)."""
        with self._conn.lock:
            br = idlutils.row_by_value(self._idl, "Bridge", "name", name, None)
            if br is None:
                raise HostOVSError(f"bridge {name} does not exist")
            ports = _committed(br, "ports")
            controllers = _committed(br, "controller")
            datapath_id = _committed(br, "datapath_id")
            fail_mode = _committed(br, "fail_mode")
            return {
                "name": _committed(br, "name"),
                "datapath_type": _committed(br, "datapath_type"),
                "datapath_id": datapath_id[0] if datapath_id else None,
                "fail_mode": fail_mode[0] if fail_mode else None,
                "protocols": list(_committed(br, "protocols")),
                "other_config": dict(_committed(br, "other_config")),
                "external_ids": dict(_committed(br, "external_ids")),
                "controllers": [{"target": controller_target.canonical(c.target),
                                 "is_connected": bool(c.is_connected),
                                 "connection_mode": c.connection_mode[0] if c.connection_mode else None}
                                for c in sorted(controllers, key=lambda c: controller_target.canonical(c.target))],
                "ports": sorted(_committed(p, "name") for p in ports),
            }

    def interface_config(self, ifname: str) -> dict[str, object] | None:
        """A plain-data view of one Interface row, or None if absent."""
        with self._conn.lock:
            iface = idlutils.row_by_value(self._idl, "Interface", "name", ifname, None)
            if iface is None:
                return None
            return {"name": iface.name, "type": iface.type, "ofport": _ofport(iface),
                    "options": dict(iface.options), "external_ids": dict(iface.external_ids),
                    "error": iface.error[0] if iface.error else None,
                    "mac_in_use": iface.mac_in_use[0] if iface.mac_in_use else None}

    def watch_event(self, row_event: event.RowEvent) -> None:
        """Run ``row_event`` (an ovsdbapp RowEvent) on matching changes of the registered tables.

        Its ``run`` is called from this connection's event thread; keep it short.
        """
        self._idl.notify_handler.watch_event(row_event)

    def unwatch_event(self, row_event: event.RowEvent) -> None:
        """Stop delivering ``row_event``."""
        self._idl.notify_handler.unwatch_event(row_event)

    # Lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the connection thread and the event thread; safe to call twice."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._conn.stop(timeout=self.timeout)  # its thread closes the idl on the way out
        self._idl.notify_handler.shutdown()

    def __enter__(self) -> HostOVS:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _ofport(iface) -> int | None:
    ofport = _committed(iface, "ofport")
    return ofport[0] if ofport else None


def _committed(row, column: str):
    """``getattr(row, column)`` for a read outside a transaction, without the datum rebuild.

    python-ovs's ``Row.__getattr__`` re-encodes a set or map column from Python values
    (with a constraint check per element) on every read, to merge pending changes: a
    listing of 100 container ports cost ~5 ms of CPU, and the agent lists them every
    round of a burst. Rows of the IDL's cache keep the committed datum in ``_data``;
    converting just that gives the same value. Anything else (a row inserted in a
    transaction, a column not in ``_data``) goes the ordinary way.
    """
    data = getattr(row, "_data", None)
    if data is None or getattr(row, "_changes", None):
        return getattr(row, column)
    try:
        datum = data[column]  # a column never set reads as its default, like getattr
    except KeyError:
        return getattr(row, column)
    return datum.to_python(row._uuid_to_row)

