"""VRS agent: follows the directory and programs this host's Open vSwitch.

Thin glue (Faucet-style) between the outside world and the pure core:

* the directory, through an OVSDB IDL monitor (``DirectoryStore``): every
  applied update wakes the worker;
* the local Open_vSwitch database (``HostOVS``): ensures br-int and the VXLAN
  port at start; container ports coming and going wake the worker;
* OpenFlow 1.4 from br-int: connection, flow-stats and bundle replies go to the
  bridge's ``BridgeSync`` state machine, whose answers are sent back;
* the plugins, through the agent API on ``[vrs] agent_socket``: an
  ``AttachService`` (veth, OVSDB port, vport in the directory) whose "vport is
  up" signal is this agent's own: it waits until the directory snapshot shows
  the status this agent wrote after the vport's flows were confirmed.

Per-host agent (the default): the bridge of this host, from the ``[vrs]``
options. Central mode (``[vrs] managed_hosts``): one agent programs the bridges
of several hosts that all connect to it (their OVSDB reachable from here); the
plugins' agent socket then stays off. Each bridge is a ``ManagedBridge``.

One worker thread recomputes every bridge's ``AgentCore`` (directory snapshot +
ports -> flow diff) and hands the desired flows to its ``BridgeSync``;
``self._lock`` serialises the worker and the OpenFlow handlers around them. Directory writes
(host registration, heartbeat, vport status) happen on the worker or heartbeat
threads, never in an OpenFlow handler, so handlers never block.
"""

from __future__ import annotations

import gc
import socket
import threading
import time

from prometheus_client import CollectorRegistry, start_http_server

from nuage_ryu import config
from nuage_ryu.agent.attach.factory import AgentApiSettings, start_agent_api
from nuage_ryu.directory.store import DirectoryStore
from nuage_ryu.framework import (
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    BaseApp,
    hub,
    ofp_event,
    ofproto_v1_4,
    set_ev_cls,
)
from nuage_ryu.hostovs.host import VXLAN_PORT, HostOVS, datapath_id_for, format_datapath_id
from nuage_ryu.hostovs.watch import InterfaceWatch
from nuage_ryu.vrs import counters, ofwire, sync
from nuage_ryu.vrs.agent import AgentCore
from nuage_ryu.vrs.metrics import AgentMetrics
from nuage_ryu.vrs.view import gateway_port

HEARTBEAT_INTERVAL_S = 5.0
# Upper bound between two recomputes even without a wake-up (belt and braces:
# a lost notification must not leave the bridge stale for long).
RESYNC_INTERVAL_S = 10.0


class ManagedBridge:
    """One host's integration bridge: its OVSDB, its compiled flows, its OpenFlow sync.

    All methods run under the app's lock (worker thread or OpenFlow handlers).
    """

    def __init__(self, app: VrsAgent, host_name: str, tunnel_ip: str, ovsdb_remote: str) -> None:
        self.app = app
        self.host_name = host_name
        self.tunnel_ip = tunnel_ip
        self.ovsdb_remote = ovsdb_remote
        self.bridge = app.CONF.vrs.bridge
        self.datapath_id = datapath_id_for(host_name)
        self.core = AgentCore(host_name)
        self.sync: sync.BridgeSync | None = None  # None while the bridge is disconnected
        self.datapath = None
        self.host_ovs: HostOVS | None = None
        self.watch: InterfaceWatch | None = None
        self._core_generation: dict[int, int] = {}  # sync generation -> AgentCore generation
        self._seen_at: dict[int, float] = {}  # core generation -> when its directory update was seen
        self._stats_xid: int | None = None
        self._stats_entries: list[tuple[int, int, int, int]] = []
        self.rule_counters: dict = {}
        self._ports_dirty = True
        self._vport_ofports: dict[str, int] | None = None
        self._tunnel_ofport: int | None = None
        self.unreported = False  # rule_counters changed since the last report to the directory

    def ensure(self, controllers: list[str]) -> None:
        """Create/correct br-int and the VXLAN port; follow the bridge's vport interfaces."""
        conf = self.app.CONF.vrs
        self.host_ovs = HostOVS(self.ovsdb_remote)
        self.host_ovs.ensure_integration_bridge(self.bridge, conf.datapath_type, controllers, self.datapath_id)
        if self.tunnel_ip:
            self.host_ovs.ensure_tunnel_port(self.bridge, self.tunnel_ip)
        self.watch = InterfaceWatch(self.host_ovs, self.ports_changed)

    def ports_changed(self) -> None:
        """The bridge's interfaces changed (OVSDB thread): re-list them, then recompute."""
        self._ports_dirty = True
        self.app.kick()

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        if self.host_ovs is not None:
            self.host_ovs.close()

    def read_ports(self, state) -> tuple[dict[str, int], int | None]:
        """({vport id: ofport}, VXLAN ofport) from the host's OVSDB (outside the app lock: it may block).

        Container and VM ports carry their vport id in external_ids; a bare-metal vport is
        reached through the gateway port its directory entry names (with its VLAN).
        """
        if self._ports_dirty or self._vport_ofports is None:
            # Listing reads every port row of the IDL (slow in python-ovs at 100+ ports): only
            # after the interface watch saw a change, not on every directory update.
            self._ports_dirty = False  # before listing: a change during the listing re-dirties it
            ports = self.host_ovs.list_vport_ports(self.bridge)
            self._vport_ofports = {p.vport_id: p.ofport for p in ports if p.ofport and p.ofport > 0}
            self._tunnel_ofport = self.host_ovs.get_ofport(VXLAN_PORT) if self.tunnel_ip else None
        ofports = dict(self._vport_ofports)
        for vport in state.vports.values():
            ifname = gateway_port(vport)
            if ifname and vport.host == self.host_name:
                try:
                    ofport = self.host_ovs.get_ofport(ifname)
                except Exception as exc:  # e.g. OVS could not add the interface (ofport -1)
                    self.app.logger.warning("%s: gateway port %s of vport %s: %s", self.host_name, ifname,
                                            vport.id, exc)
                    continue
                if ofport:
                    ofports[vport.id] = ofport
        return ofports, self._tunnel_ofport

    def recompute(self, state, ofports: dict[str, int], tunnel: int | None, seen_at: float) -> None:
        self.core.set_directory(state)
        self.core.set_ports(ofports, tunnel)
        generation, diff = self.core.recompute()
        if diff:
            self._seen_at.setdefault(generation, seen_at)
            self.app.metrics.flows.labels(self.host_name).set(len(self.core.compiler.flows))
            self.app.logger.debug("%s: generation %d: +%d -%d flows", self.host_name, generation,
                                  len(diff.add), len(diff.delete))
        if self.sync is None:
            return
        if self.sync.desired is None:
            self.push_desired(generation)
        elif diff:
            msgs = self.sync.apply_diff(diff)  # only what changed: cheap at any table size
            self._core_generation[self.sync.generation] = generation
            sync.send(self.datapath, msgs)

    def push_desired(self, core_generation: int) -> None:
        """Hand the whole desired set to the sync engine (on connect: it reconciles with a read-back)."""
        msgs = self.sync.set_desired(self.core.desired())
        self._core_generation[self.sync.generation] = core_generation
        sync.send(self.datapath, msgs)

    def connected(self, datapath) -> None:
        self.datapath = datapath
        self.sync = sync.BridgeSync(on_confirmed=self._on_confirmed, on_failed=self._on_failed,
                                    name=f"{self.host_name}/{self.bridge}")
        self._core_generation.clear()
        sync.send(datapath, self.sync.on_connect())
        if self.core.state is not None:
            self.push_desired(self.core.generation)

    def disconnected(self) -> None:
        self._stats_xid = None
        if self.sync is not None:
            self.sync.on_disconnect()
        self.sync = None
        self.datapath = None

    def request_counters(self) -> None:
        """Ask the bridge for the statistics of the table where policy is counted."""
        if self.datapath is None or self._stats_xid is not None:
            return
        dp = self.datapath
        req = dp.ofproto_parser.OFPFlowStatsRequest(dp, table_id=counters.COUNTED_TABLE)
        dp.set_xid(req)
        self._stats_xid = req.xid
        self._stats_entries = []
        dp.send_msg(req)

    def on_counters_reply(self, msg) -> bool:
        """Collect a flow-stats reply to request_counters(); True when the counters were updated."""
        if msg.xid != self._stats_xid:
            return False
        self._stats_entries += [(e.table_id, e.cookie, e.packet_count, e.byte_count) for e in msg.body]
        if msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE:
            return False
        self._stats_xid = None
        self.rule_counters = counters.aggregate(counters.CounterIndex(self.core.view), self._stats_entries)
        self.unreported = True
        self.app.metrics.rules.update(self.host_name, self.rule_counters)
        return True

    def counters_report(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        """The latest counters as the directory wants them: (per rule, per domain default action)."""
        rules, defaults = {}, {}
        for key, counter in self.rule_counters.items():
            target = defaults if key.rule_id == counters.DEFAULT_RULE_ID else rules
            target[key.domain_id if target is defaults else key.rule_id] = (counter.packets, counter.bytes)
        self.unreported = False
        return rules, defaults

    def feed(self, datapath, handler_name: str, msg) -> None:
        if self.sync is not None and datapath is self.datapath:
            sync.send(datapath, getattr(self.sync, handler_name)(msg))

    def _on_confirmed(self, _cookies, sync_generation: int) -> None:
        core_generation = self._core_generation.pop(sync_generation, None)
        for old in [g for g in self._core_generation if g < sync_generation]:
            del self._core_generation[old]
        if core_generation is not None:
            self.core.confirm(core_generation)
            now = time.monotonic()
            for gen in [g for g in self._seen_at if g <= core_generation]:
                self.app.metrics.policy_apply.labels(self.host_name).observe(now - self._seen_at.pop(gen))
            self.app.metrics.bundles.labels(self.host_name).set(self.sync.stats.bundles)
            self.app.kick()  # statuses are written by the worker, not in the handler

    def _on_failed(self, flow, err_type: int, err_code: int) -> None:
        self.app.logger.error("%s: %s refused a flow (type %d code %d): %s", self.host_name, self.bridge,
                              err_type, err_code, flow)


class VrsAgent(BaseApp):
    """The VRS agent: the local host's bridge (default), or several hosts' bridges (central mode)."""

    OFP_VERSIONS = [ofproto_v1_4.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bridges: dict[int, ManagedBridge] = {}  # by datapath id
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._running = False
        self.store: DirectoryStore | None = None
        self._statuses = threading.Condition()  # notified on every directory snapshot
        self._update_seen_at = time.monotonic()
        self.attach_server = None
        self.metrics = AgentMetrics(kwargs.get("metrics_registry") or CollectorRegistry())
        self._metrics_server = None

    def _managed_hosts(self) -> list[tuple[str, str, str]]:
        """(host name, tunnel IP, OVSDB remote) of every bridge this agent programs."""
        conf = self.CONF.vrs
        if conf.managed_hosts:
            return [config.parse_managed_host(entry) for entry in conf.managed_hosts]
        return [(conf.host_name or socket.gethostname(), conf.tunnel_ip, conf.ovsdb_connection)]

    # -- lifecycle ---------------------------------------------------------------
    def start(self):
        conf = self.CONF.vrs
        ofwire.install_lazy_flow_stats()  # flow-stats replies are decoded by the sync engine
        try:
            for host_name, tunnel_ip, remote in self._managed_hosts():
                bridge = ManagedBridge(self, host_name, tunnel_ip, remote)
                self.bridges[bridge.datapath_id] = bridge
                bridge.ensure(list(conf.controller))
            self.store = DirectoryStore(config.directory_remote(self.CONF))
            self.store.start()
            for bridge in self.bridges.values():
                self.store.register_host(bridge.host_name, bridge.tunnel_ip, format_datapath_id(bridge.datapath_id))
            self.store.add_listener(self._on_directory_update)
            if not conf.managed_hosts:
                self._start_agent_api(next(iter(self.bridges.values())))
        except BaseException:
            self._close_resources()
            raise
        self._start_metrics()
        self._running = True
        super().start()
        self.threads.append(hub.spawn(self._worker))
        self.threads.append(hub.spawn(self._heartbeat))
        self.threads.append(hub.spawn(self._poll_counters))
        for bridge in self.bridges.values():
            self.logger.info("VRS agent for host %s on %s (dpid %016x)", bridge.host_name, bridge.bridge,
                             bridge.datapath_id)
        self.kick()

    def _start_agent_api(self, bridge: ManagedBridge) -> None:
        conf = self.CONF.vrs
        if not conf.agent_socket:
            return
        settings = AgentApiSettings(socket_path=conf.agent_socket, directory_api=conf.directory_api,
                                    token_file=config.directory_token_file(self.CONF),
                                    host_name=bridge.host_name, bridge=bridge.bridge,
                                    underlay_mtu=conf.underlay_mtu)
        self.attach_server = start_agent_api(settings, bridge.host_ovs, wait_vport_up=self.wait_vport_up)
        self.logger.info("agent API on %s", conf.agent_socket)

    def _start_metrics(self) -> None:
        listen = self.CONF.vrs.metrics_listen
        if not listen:
            return
        host, _, port = listen.rpartition(":")
        try:
            self._metrics_server, _thread = start_http_server(int(port), host or "127.0.0.1",
                                                              registry=self.metrics.registry)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot serve metrics on {listen}: {exc}") from None
        self.logger.info("metrics on http://%s/metrics", listen)

    def _on_directory_update(self, _state) -> None:
        self._update_seen_at = time.monotonic()
        self.kick()
        with self._statuses:
            self._statuses.notify_all()

    def wait_vport_up(self, vport_id: str, timeout: float) -> bool:
        """Block until the directory shows ``vport_id`` up (its flows are on the bridge)."""
        deadline = time.monotonic() + timeout
        with self._statuses:
            while True:
                vport = self.store.snapshot().vports.get(vport_id)
                if vport is not None and vport.status == "up":
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._statuses.wait(remaining)

    def stop(self):
        # os-ken's AppManager calls stop() (which joins self.threads) before close():
        # the worker and heartbeat threads must learn about the shutdown first.
        self._running = False
        self._stopping.set()
        self._wake.set()
        super().stop()

    def close(self):
        self._running = False
        self._stopping.set()
        self._wake.set()
        self._close_resources()

    def _close_resources(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        if self.attach_server is not None:
            self.attach_server.stop()
            self.attach_server = None
        if self.store is not None:
            for bridge in self.bridges.values():
                try:
                    self.store.set_host_connected(bridge.host_name, False)
                except Exception as exc:  # the directory may already be gone at shutdown
                    self.logger.warning("could not mark %s disconnected: %s", bridge.host_name, exc)
            self.store.stop()
            self.store = None
        for bridge in self.bridges.values():
            bridge.close()

    def kick(self) -> None:
        """Something changed: let the worker recompute (coalesces bursts)."""
        self._wake.set()

    # -- worker ----------------------------------------------------------------
    def _worker(self):
        frozen = False
        while self._running:
            if not self._wake.wait(RESYNC_INTERVAL_S):
                for bridge in list(self.bridges.values()):
                    bridge.ports_changed()  # periodic full re-read: a lost event heals here
            self._wake.clear()
            if not self._running:
                break
            seen_at = self._update_seen_at
            for bridge in list(self.bridges.values()):
                try:
                    state = self.store.snapshot()
                    ofports, tunnel = bridge.read_ports(state)
                    with self._lock:
                        bridge.recompute(state, ofports, tunnel, seen_at)
                    self._write_statuses(bridge)
                except Exception:
                    self.logger.exception("%s: recompute failed; retrying on the next change", bridge.host_name)
            if not frozen and all(b.core.state is not None for b in self.bridges.values()):
                # The compiled state lives for the whole run: move it out of the cyclic GC's
                # sight, or every later collection walks it (hundreds of ms at 10k+ flows).
                gc.freeze()
                frozen = True

    def _write_statuses(self, bridge: ManagedBridge) -> None:
        with self._lock:
            updates = bridge.core.status_updates()
        for vport_id, status in updates:
            try:
                self.store.set_vport_status(vport_id, status)
            except Exception as exc:  # e.g. deleted meanwhile; the next snapshot settles it
                self.logger.info("vport %s status %s not written: %s", vport_id, status, exc)

    def _heartbeat(self):
        while not self._stopping.wait(HEARTBEAT_INTERVAL_S):
            for bridge in list(self.bridges.values()):
                try:
                    self.store.heartbeat(bridge.host_name)
                except Exception as exc:
                    self.logger.warning("heartbeat of %s failed: %s", bridge.host_name, exc)

    def _poll_counters(self):
        """Read the policy counters from every bridge; report the previous round to the directory.

        The directory write happens here, never in the OpenFlow handler that collected them.
        """
        while not self._stopping.wait(self.CONF.vrs.stats_interval):
            reports = []
            with self._lock:
                for bridge in self.bridges.values():
                    if bridge.unreported:
                        reports.append((bridge.host_name, *bridge.counters_report()))
                    bridge.request_counters()
            for host_name, rules, defaults in reports:
                try:
                    self.store.report_counters(host_name, rules, defaults)
                except Exception as exc:  # counters are best effort: the next round retries
                    self.logger.info("%s: counters not reported: %s", host_name, exc)

    # -- OpenFlow ----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def state_change(self, ev):
        datapath = ev.datapath
        bridge = self.bridges.get(datapath.id)
        if bridge is None:
            if ev.state == MAIN_DISPATCHER:
                self.logger.warning("ignoring datapath %016x: not a bridge this agent manages", datapath.id or 0)
            return
        with self._lock:
            self.metrics.connected.labels(bridge.host_name).set(1 if ev.state == MAIN_DISPATCHER else 0)
            if ev.state == MAIN_DISPATCHER:
                bridge.connected(datapath)
                self.logger.info("%s/%s connected; reconciling its flows", bridge.host_name, bridge.bridge)
            elif bridge.datapath is datapath:
                bridge.disconnected()
                self.logger.warning("%s/%s disconnected; its flows stay in place (fail_mode=secure)",
                                    bridge.host_name, bridge.bridge)
        self.kick()

    def _feed(self, datapath, handler_name: str, msg) -> None:
        bridge = self.bridges.get(datapath.id)
        if bridge is not None:
            with self._lock:
                bridge.feed(datapath, handler_name, msg)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply(self, ev):
        bridge = self.bridges.get(ev.msg.datapath.id)
        if bridge is None:
            return
        with self._lock:
            if not bridge.on_counters_reply(ev.msg):
                bridge.feed(ev.msg.datapath, "on_flow_stats_reply", ev.msg)

    @set_ev_cls(ofp_event.EventOFPBundleCtrlMsg, MAIN_DISPATCHER)
    def bundle_reply(self, ev):
        self._feed(ev.msg.datapath, "on_bundle_reply", ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def error_msg(self, ev):
        self._feed(ev.msg.datapath, "on_error", ev.msg)
