"""One host's integration bridge: the I/O around its ``AgentCore``.

``ManagedBridge`` does what the core decides, on three channels:

* the host's Open_vSwitch database (``HostOVS``): br-int and the VXLAN port at
  start, the vport port rows and gateway ofports when the core asks for them,
  an ``InterfaceWatch`` whose changes re-dirty the core's port cache;
* the bridge's ``BridgeSync`` (created per OpenFlow connection): the whole
  desired set or a diff as the core's ``push_plan`` says; its replies, errors
  and confirmations (mapped back to flow generations by the core);
* the OpenFlow datapath: the counted table's flow statistics, requested and
  collected as the core says;

and writes what concerns the directory (vport status, counters) through the
``DirectoryStore`` it is handed, outside OpenFlow handlers (vport statuses on a
thread of their own: status_writer.py).

All work on the core and the sync engine runs under ``lock`` (shared by every
bridge of the agent); OVSDB reads and directory writes happen outside it, as
they may block.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

from nuage_ryu import tls
from nuage_ryu.agent import counters, drops, startup, verdicts
from nuage_ryu.agent.core import DIFF, FULL, AgentCore, Confirmation
from nuage_ryu.agent.metrics import AgentMetrics
from nuage_ryu.agent.status_writer import StatusWriter
from nuage_ryu.agent.uplink import HostUplink, mgmt_socket_of
from nuage_ryu.hostovs.host import VXLAN_PORT, HostOVS, datapath_id_for
from nuage_ryu.hostovs.watch import InterfaceWatch
from nuage_ryu.pki import Credentials
from nuage_ryu.vrs import sync
from nuage_ryu.vrs.pipeline import DEFAULT_NAT_PORTS

_sessions = itertools.count(1)  # OpenFlow connections of this process, over all bridges
FLOWS_CONFIRMED_KEPT = 4096  # vports whose "flows confirmed" time is remembered (attach timings)


def _status_in(state, vport_id: str) -> str | None:
    """The status of ``vport_id`` in the snapshot ``state`` (None: not there)."""
    vport = state.vports.get(vport_id) if state is not None else None
    return None if vport is None else vport.status


class ManagedBridge:
    """One host's integration bridge: its OVSDB, its compiled flows, its OpenFlow sync."""

    def __init__(self, host_name: str, tunnel_ip: str, ovsdb_remote: str, *, bridge: str, datapath_type: str,
                 metrics: AgentMetrics, lock: threading.RLock, on_change: Callable[[], None],
                 logger: logging.Logger, external_bridge: str = "",
                 nat_ports: tuple[int, int] = DEFAULT_NAT_PORTS,
                 startup_clock: startup.StartupClock | None = None,
                 verdict_meter: tuple[int, int] = (100, 0)) -> None:
        self.host_name = host_name
        self.tunnel_ip = tunnel_ip
        self.ovsdb_remote = ovsdb_remote
        self.bridge = bridge
        self.datapath_type = datapath_type
        self.datapath_id = datapath_id_for(host_name)
        self.core = AgentCore(host_name)
        self.sync: sync.BridgeSync | None = None  # None while the bridge is disconnected
        self.datapath = None
        self.host_ovs: HostOVS | None = None
        self.watch: InterfaceWatch | None = None
        self._metrics = metrics
        self._lock = lock
        self._on_change = on_change  # wakes the agent's worker
        self._log = logger
        self._flows_confirmed: dict[str, float] = {}  # vport id -> when the core decided it is up
        self.external_bridge = external_bridge  # "" = no external connectivity (docs/external.md)
        self.nat_ports = nat_ports
        self.uplink: HostUplink | None = None
        self._startup = startup_clock or startup.StartupClock()
        self._session_to_mark: str | None = None  # set on connect, written by the worker
        self.verdict_meter = verdict_meter  # (packets/s, burst) of the verdict-log meter (docs/policy.md)
        self._meter_xids: set[int] = set()  # its METER_MODs: an "already exists" answer is expected
        # The last complete uplink reading, kept until the next port listing: br-phy's ports and
        # the patch pair change only with an Interface change, which asks for a listing anyway.
        # (Re-read every worker round, it was a few OVSDB lookups per round, ~6 rounds per attach.)
        self._uplink_reading: tuple | None = None
        self._drops = drops.DropPoll()  # POLICY_DROP statistics: the per-vport drop counters
        self._drop_index: tuple[object, dict[int, str]] = (None, {})  # (snapshot, its cookie -> vport id)
        self._status_writer: StatusWriter | None = None  # made on the first write (it needs the store)
        self._status_store = None

    # -- the host's OVSDB ------------------------------------------------------
    def ensure(self, controllers: list[str], creds: Credentials | None = None) -> None:
        """Create/correct br-int and the VXLAN port; follow the bridge's vport interfaces.

        With ``creds`` the switch gets them as its SSL identity and connects over ``ssl:``.
        """
        self.host_ovs = HostOVS(self.ovsdb_remote)
        if creds is not None:
            self.host_ovs.set_ssl(creds.key_file, creds.cert_file, creds.ca_file)
        controllers = tls.controller_targets(controllers, creds)
        self.host_ovs.ensure_integration_bridge(self.bridge, self.datapath_type, controllers, self.datapath_id,
                                                renew_controllers=True)
        if self.tunnel_ip:
            self.host_ovs.ensure_tunnel_port(self.bridge, self.tunnel_ip)
        if self.external_bridge:
            self.uplink = HostUplink(self.host_ovs, self.bridge, self.external_bridge, self.tunnel_ip,
                                     mgmt_socket_of(self.ovsdb_remote, self.external_bridge), self.nat_ports,
                                     self._log)
            self.uplink.ensure()
        self.watch = InterfaceWatch(self.host_ovs, self.ports_changed)

    def ports_changed(self) -> None:
        """The bridge's interfaces changed (OVSDB thread): re-list them, then recompute."""
        self.core.ports_changed()
        self._on_change()

    def close(self) -> None:
        if self._status_writer is not None:
            self._status_writer.close()
            self._status_writer = None
        if self.uplink is not None:
            self.uplink.close()
        if self.watch is not None:
            self.watch.close()
        if self.host_ovs is not None:
            self.host_ovs.close()

    def read_ports(self, state) -> tuple[dict[str, int], int | None]:
        """({vport id: ofport}, VXLAN ofport) from the host's OVSDB (outside the lock: it may block).

        Container and VM ports carry their vport id in external_ids; a bare-metal vport is
        reached through the gateway port its directory entry names (with its VLAN).
        """
        core = self.core
        if core.take_port_listing():
            self._uplink_reading = None  # the interfaces changed: read the uplink again too
            ports = self.host_ovs.list_vport_ports(self.bridge)
            tunnel = self.host_ovs.get_ofport(VXLAN_PORT) if self.tunnel_ip else None
            core.ports_listed([(p.vport_id, p.ofport) for p in ports], tunnel)
        gateway_ofports = {}
        for vport_id, ifname in core.gateway_ports(state):
            try:
                ofport = self.host_ovs.get_ofport(ifname)
            except Exception as exc:  # e.g. OVS could not add the interface (ofport -1)
                self._log.warning("%s: gateway port %s of vport %s: %s", self.host_name, ifname, vport_id, exc)
                continue
            if ofport:
                gateway_ofports[vport_id] = ofport
        return core.local_ports(gateway_ofports)

    # -- one worker round --------------------------------------------------------
    def refresh(self, store, seen_at: float) -> None:
        """Recompute from the directory's latest snapshot and the ports; write vport statuses.

        ``seen_at`` (monotonic) is when the directory update was seen. A failure is logged: the
        next change (or the periodic resync) retries.
        """
        try:
            self._mark_session()
            state = store.snapshot()
            self._metrics.rules.set_directory(self.host_name, state)
            self._metrics.last_update.labels(self.host_name).set(time.time())
            ofports, tunnel = self.read_ports(state)
            external, uplink_ports = self._read_uplink()
            with self._lock:
                self.core.set_external(external, uplink_ports)
                self.recompute(state, ofports, tunnel, seen_at)
                steering = self.core.uplink_view()
            if self.uplink is not None:
                self.uplink.sync(steering)  # br-phy over its management socket (blocking: outside the lock)
            self.write_statuses(store)
        except Exception:
            self._log.exception("%s: recompute failed; retrying on the next change", self.host_name)

    def _read_uplink(self) -> tuple:
        """(ExternalUplink, uplink ports) as ``HostUplink.read``; a complete reading is reused."""
        if self.uplink is None:
            return None, None
        if self._uplink_reading is not None:
            return self._uplink_reading
        reading = self.uplink.read()
        if reading[0] is not None:  # incomplete (ports still coming): read again next round
            self._uplink_reading = reading
        return reading

    def _mark_session(self) -> None:
        """Write the connected session on the bridge's controller rows (see HostOVS.mark_controller_session)."""
        session, self._session_to_mark = self._session_to_mark, None
        if session is None:
            return
        try:
            self.host_ovs.mark_controller_session(self.bridge, session)
        except Exception as exc:  # only OVS's reconnect back-off depends on it: log, go on
            self._log.warning("%s: could not mark the controller session: %s", self.host_name, exc)

    def recompute(self, state, ofports: dict[str, int], tunnel: int | None, seen_at: float) -> None:
        """Feed the core; hand the sync engine what its push plan says (under the lock)."""
        core = self.core
        core.set_directory(state, seen_at)
        core.set_ports(ofports, tunnel)
        generation, diff = core.recompute()
        if diff:
            self._metrics.flows.labels(self.host_name).set(len(core.compiler.flows))
            self._log.debug("%s: generation %d: +%d -%d flows", self.host_name, generation,
                            len(diff.add), len(diff.delete))
        plan = core.push_plan(diff)
        if plan == FULL:
            self.push_desired()
        elif plan == DIFF:
            self._handed_over(self.sync.apply_diff(diff))  # only what changed: cheap at any table size

    def push_desired(self) -> None:
        """Hand the whole desired set to the sync engine (on connect: it reconciles with a read-back)."""
        self._handed_over(self.sync.set_desired(self.core.desired()))

    def _handed_over(self, msgs) -> None:
        """Tell the core which sync generation now carries its flows; send the engine's answer."""
        self._confirmed(self.core.pushed(self.sync.generation, time.monotonic()))
        sync.send(self.datapath, msgs)

    def flows_confirmed_at(self, vport_id: str) -> float | None:
        """When (monotonic) this bridge last confirmed the flows of ``vport_id``; None if unknown."""
        return self._flows_confirmed.get(vport_id)

    def write_statuses(self, store) -> None:
        """Hand the vport statuses the core decided to the status writer (status_writer.py).

        The writer sends them on its own thread, so the worker goes on with the next round
        meanwhile; everything decided while a write is in flight is the next transaction (a
        burst of attaches is a few writes, not one per vport); a refused batch is written one
        by one.
        """
        with self._lock:
            updates = self.core.status_updates()
            state = self.core.state
        writer = self._writer_for(store)
        new = writer.offer(updates, lambda vport_id: _status_in(state, vport_id))
        if not new:
            return
        now = time.monotonic()
        for vport_id, status in new:
            if status == "up":
                self._flows_confirmed.pop(vport_id, None)
                self._flows_confirmed[vport_id] = now
        while len(self._flows_confirmed) > FLOWS_CONFIRMED_KEPT:
            del self._flows_confirmed[next(iter(self._flows_confirmed))]

    def _writer_for(self, store) -> StatusWriter:
        if self._status_writer is None or self._status_store is not store:
            if self._status_writer is not None:
                self._status_writer.close()
            self._status_writer = StatusWriter(store.set_vport_statuses, store.set_vport_status, self._log,
                                               name=f"vport-status-{self.host_name}")
            self._status_store = store
        return self._status_writer

    # -- OpenFlow ----------------------------------------------------------------
    def state_changed(self, datapath, up: bool) -> None:
        """The bridge's OpenFlow connection came up (``up``) or went down."""
        with self._lock:
            self._metrics.connected.labels(self.host_name).set(1 if up else 0)
            if up:
                if self.uplink is not None:
                    self.uplink.forget()  # OVS may have restarted: br-phy's flows are re-pushed whole
                self._uplink_reading = None
                self._startup.bridge_mark(self.host_name, startup.OPENFLOW_UP)
                self._session_to_mark = f"{os.getpid()}.{next(_sessions)}"
                self._connected(datapath)
                self._log.info("%s/%s connected; reconciling its flows", self.host_name, self.bridge)
            elif self.datapath is datapath:
                self._disconnected()
                self._log.warning("%s/%s disconnected; its flows stay in place (fail_mode=secure)",
                                  self.host_name, self.bridge)
        self._on_change()

    def _connected(self, datapath) -> None:
        self.datapath = datapath
        self._send_verdict_meter(datapath)  # before any flow: OVS binds controller(meter_id) at flow add
        self.sync = sync.BridgeSync(on_confirmed=self._on_confirmed, on_failed=self._on_failed,
                                    name=f"{self.host_name}/{self.bridge}")
        self.core.connected()
        self._drops.forget()
        sync.send(datapath, self.sync.on_connect())
        if self.core.push_plan() == FULL:  # the directory is known already
            self.push_desired()

    def _disconnected(self) -> None:
        self.core.disconnected()
        self._drops.forget()
        if self.sync is not None:
            self.sync.on_disconnect()
        self.sync = None
        self.datapath = None

    def on_flow_stats_reply(self, msg) -> None:
        """A flow-stats reply: the counters request's, else the sync engine's read-back."""
        with self._lock:
            if self._drops.awaits(msg.xid):
                self._drops_received(msg)
                return
            if not self.core.awaits_counters(msg.xid):
                self._feed(msg.datapath, "on_flow_stats_reply", msg)
                return
            entries = [(e.table_id, e.cookie, e.packet_count, e.byte_count) for e in msg.body]
            more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
            if self.core.counters_received(entries, more, msg.xid):
                self._metrics.rules.update(self.host_name, self.core.rule_counters)

    def on_bundle_reply(self, msg) -> None:
        """A bundle control reply (the sync engine's COMMIT)."""
        with self._lock:
            self._feed(msg.datapath, "on_bundle_reply", msg)

    def _send_verdict_meter(self, datapath) -> None:
        mods = verdicts.meter_mods(*self.verdict_meter)
        self._meter_xids = {xid for xid, _raw in mods}
        sync.send(datapath, [raw for _xid, raw in mods])

    def on_error(self, msg) -> None:
        """An OpenFlow error (the sync engine knows which of its messages it answers)."""
        if msg.xid in self._meter_xids:  # ADD of a meter that exists (agent restart): MODIFY follows
            self._log.debug("%s: verdict meter: OpenFlow error type %d code %d", self.host_name, msg.type,
                            msg.code)
            return
        with self._lock:
            self._feed(msg.datapath, "on_error", msg)

    def _feed(self, datapath, handler_name: str, msg) -> None:
        if self.sync is not None and datapath is self.datapath:
            sync.send(datapath, getattr(self.sync, handler_name)(msg))

    def _on_confirmed(self, _cookies, sync_generation: int) -> None:
        self._confirmed(self.core.confirmed(sync_generation, time.monotonic()))

    def _confirmed(self, confirmation: Confirmation | None) -> None:
        """The bridge holds a new flow generation: its metrics; wake the worker to write statuses."""
        if confirmation is None:
            return
        milestones = self._startup.first_table(self.host_name)
        if milestones is not None:
            self._log.info("%s: %s", self.host_name, startup.describe(milestones))
            for name, seconds in milestones.items():
                self._metrics.startup.labels(self.host_name, name).set(seconds)
        for latency in confirmation.latencies:
            self._metrics.policy_apply.labels(self.host_name).observe(latency)
        self._metrics.bundles.labels(self.host_name).set(self.sync.stats.bundles)
        self._metrics.last_sync.labels(self.host_name).set(time.time())
        if self._status_store is not None:
            # The vports this confirmation makes up go to the status writer now (offering never
            # blocks: the writer's thread does the directory write), not a worker round later.
            self.write_statuses(self._status_store)
        self._on_change()

    def _on_failed(self, flow, err_type: int, err_code: int) -> None:
        self._log.error("%s: %s refused a flow (type %d code %d): %s", self.host_name, self.bridge,
                        err_type, err_code, flow)

    # -- policy counters -----------------------------------------------------------
    def poll_counters(self, store) -> None:
        """Report the counters collected last round to the directory; ask the bridge for new ones.

        The directory write happens here (a timer thread), never in the OpenFlow handler that
        collected them.
        """
        report = None
        with self._lock:
            if self.core.unreported:
                report = self.core.counters_report()
            self._request_counters()
        if report is None:
            return
        try:
            store.report_counters(self.host_name, *report)
        except Exception as exc:  # counters are best effort: the next round retries
            self._log.info("%s: counters not reported: %s", self.host_name, exc)

    def _request_counters(self) -> None:
        """Ask the bridge for the statistics of the table where policy is counted, and of POLICY_DROP."""
        if self.datapath is None:
            return
        dp = self.datapath
        if self.core.counters_due():
            for table in counters.COUNTED_TABLES:  # the policy table and the audit table (docs/policy.md)
                req = dp.ofproto_parser.OFPFlowStatsRequest(dp, table_id=table)
                dp.set_xid(req)
                self.core.counters_requested(req.xid)
                dp.send_msg(req)
        if self._drops.due():
            req = dp.ofproto_parser.OFPFlowStatsRequest(dp, table_id=drops.DROP_TABLE)
            dp.set_xid(req)
            self._drops.requested(req.xid)
            dp.send_msg(req)

    def _drops_received(self, msg) -> None:
        """A part of the POLICY_DROP statistics reply (under the lock): per-vport drop totals."""
        state = self._metrics.rules.state_of(self.host_name)
        if self._drop_index[0] is not state:
            local = state.vports_on_host(self.host_name) if state is not None else ()
            self._drop_index = (state, drops.drop_index(v.id for v in local))
        entries = [(e.table_id, e.priority, e.cookie, e.packet_count, e.byte_count) for e in msg.body]
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        totals = self._drops.received(self._drop_index[1], entries, more)
        if totals is not None:
            self._metrics.rules.update_drops(self.host_name, totals)
