"""VRS agent: follows the directory and programs this host's Open vSwitch.

Thin os-ken glue (Faucet-style) around the agent package (``nuage_ryu/agent/``):
each bridge is a ``ManagedBridge`` (its OVSDB, its ``BridgeSync``, its
OpenFlow datapath) around a pure ``AgentCore``. This app owns the rest:

* the directory, through an OVSDB IDL monitor (``DirectoryStore``) scoped to
  the share of its hosts (their vports, the domains those are in, the hosts
  carrying them: docs/scale.md): every applied update wakes the worker;
* the threads: one worker recomputes every bridge on a wake-up (or every
  ``RESYNC_INTERVAL_S``), one sends heartbeats, one polls policy counters;
* OpenFlow 1.4 events, handed to the bridge of their datapath;
* the plugins, through the agent API on ``[vrs] agent_socket``: an
  ``AttachService`` (veth, OVSDB port, vport in the directory) whose "vport is
  up" signal is this agent's own: it waits until the directory snapshot shows
  the status this agent wrote after the vport's flows were confirmed;
* the Prometheus endpoint (``[vrs] metrics_listen``).

Per-host agent (the default): the bridge of this host, from the ``[vrs]``
options. Central mode (``[vrs] managed_hosts``): one agent programs the bridges
of several hosts that all connect to it (their OVSDB reachable from here); the
plugins' agent socket then stays off.

``self._lock`` (shared by every bridge) serialises the worker and the OpenFlow
handlers around the cores and sync engines. Directory writes (host
registration, heartbeat, vport status, counters) happen on the worker, heartbeat
or counter threads, never in an OpenFlow handler, so handlers never block.
"""

from __future__ import annotations

import gc
import socket
import threading
import time

from prometheus_client import CollectorRegistry, start_http_server

import nuage_ryu
from nuage_ryu import config
from nuage_ryu.agent import startup
from nuage_ryu.agent.attach.factory import AgentApiSettings, start_agent_api
from nuage_ryu.agent.bridge import ManagedBridge
from nuage_ryu.agent.metrics import AgentMetrics
from nuage_ryu.agent.tracer import Tracer
from nuage_ryu.agent.uplink import parse_port_range
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
from nuage_ryu.hostovs.host import format_datapath_id
from nuage_ryu.vrs import ofwire

HEARTBEAT_INTERVAL_S = 5.0
# Upper bound between two recomputes even without a wake-up (belt and braces:
# a lost notification must not leave the bridge stale for long).
RESYNC_INTERVAL_S = 10.0


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
        self.startup = startup.StartupClock()
        self.tracer: Tracer | None = None

    def _managed_hosts(self) -> list[tuple[str, str, str]]:
        """(host name, tunnel IP, OVSDB remote) of every bridge this agent programs."""
        conf = self.CONF.vrs
        if conf.managed_hosts:
            return [config.parse_managed_host(entry) for entry in conf.managed_hosts]
        return [(conf.host_name or socket.gethostname(), conf.tunnel_ip, conf.ovsdb_connection)]

    # -- lifecycle ---------------------------------------------------------------
    def start(self):
        conf = self.CONF.vrs
        self.startup.mark(startup.APP_START)
        ofwire.install_lazy_flow_stats()  # flow-stats replies are decoded by the sync engine
        try:
            for host_name, tunnel_ip, remote in self._managed_hosts():
                bridge = ManagedBridge(host_name, tunnel_ip, remote, bridge=conf.bridge,
                                       datapath_type=conf.datapath_type, metrics=self.metrics, lock=self._lock,
                                       on_change=self.kick, logger=self.logger,
                                       external_bridge=conf.external_bridge,
                                       nat_ports=parse_port_range(conf.nat_port_range),
                                       startup_clock=self.startup)
                self.bridges[bridge.datapath_id] = bridge
                bridge.ensure(list(conf.controller), config.tls_credentials(self.CONF))
            self.startup.mark(startup.BRIDGE_READY)
            # Only the share of the hosts this agent programs (central mode: their union), from
            # any Raft member or relay: the agents must not all crowd the leader.
            self.store = DirectoryStore(config.directory_remote(self.CONF),
                                        scope_hosts=[b.host_name for b in self.bridges.values()],
                                        leader_only=False)
            self.store.start()
            self.metrics.set_directory_probe(lambda: self.store is not None and self.store.connected)
            self.startup.mark(startup.DIRECTORY_SYNCED)
            for bridge in self.bridges.values():
                self.store.register_host(bridge.host_name, bridge.tunnel_ip, format_datapath_id(bridge.datapath_id),
                                         agent_version=nuage_ryu.__version__)
            self.store.add_listener(self._on_directory_update)
            # "Explain a packet": ofproto/trace on its own thread, never on the event path.
            self.tracer = Tracer(self.store, lambda: {b.host_name: b for b in self.bridges.values()}, self._lock,
                                 self.logger)
            self.store.add_trace_listener(self.tracer.on_requests)
            if not conf.managed_hosts:
                self._start_agent_api(next(iter(self.bridges.values())))
        except BaseException:
            self._close_resources()
            raise
        self._start_metrics()
        self._running = True
        self.startup.mark(startup.AGENT_STARTED)  # before the event loop: a switch may be waiting
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
        creds = config.tls_credentials(self.CONF)
        settings = AgentApiSettings(socket_path=conf.agent_socket, directory_api=conf.directory_api,
                                    token_file=config.directory_token_file(self.CONF),
                                    host_name=bridge.host_name, bridge=bridge.bridge,
                                    underlay_mtu=conf.underlay_mtu, ca_file=creds.ca_file if creds else None)
        self.attach_server = start_agent_api(
            settings, bridge.host_ovs, wait_vport_up=self.wait_vport_up,
            flows_confirmed_at=bridge.flows_confirmed_at,
            observe=lambda op, phases, total, outcome: self.metrics.observe_attach(
                bridge.host_name, op, phases, total, outcome))
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
        if self.tracer is not None:
            self.tracer.stop()
            self.tracer = None
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
                bridge.refresh(self.store, seen_at)
            if not frozen and all(b.core.state is not None for b in self.bridges.values()):
                # The compiled state lives for the whole run: move it out of the cyclic GC's
                # sight, or every later collection walks it (hundreds of ms at 10k+ flows).
                gc.freeze()
                frozen = True

    def _heartbeat(self):
        while not self._stopping.wait(HEARTBEAT_INTERVAL_S):
            for bridge in list(self.bridges.values()):
                try:
                    self.store.heartbeat(bridge.host_name)
                except Exception as exc:
                    self.logger.warning("heartbeat of %s failed: %s", bridge.host_name, exc)

    def _poll_counters(self):
        """Read the policy counters from every bridge; report the previous round to the directory."""
        while not self._stopping.wait(self.CONF.vrs.stats_interval):
            for bridge in list(self.bridges.values()):
                bridge.poll_counters(self.store)

    # -- OpenFlow ----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def state_change(self, ev):
        bridge = self.bridges.get(ev.datapath.id)
        if bridge is not None:
            bridge.state_changed(ev.datapath, up=ev.state == MAIN_DISPATCHER)
        elif ev.state == MAIN_DISPATCHER:
            self.logger.warning("ignoring datapath %016x: not a bridge this agent manages", ev.datapath.id or 0)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply(self, ev):
        bridge = self.bridges.get(ev.msg.datapath.id)
        if bridge is not None:
            bridge.on_flow_stats_reply(ev.msg)

    @set_ev_cls(ofp_event.EventOFPBundleCtrlMsg, MAIN_DISPATCHER)
    def bundle_reply(self, ev):
        bridge = self.bridges.get(ev.msg.datapath.id)
        if bridge is not None:
            bridge.on_bundle_reply(ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def error_msg(self, ev):
        bridge = self.bridges.get(ev.msg.datapath.id)
        if bridge is not None:
            bridge.on_error(ev.msg)
