"""The physical bridge's steering flows (``vrs.compile.uplink``), kept in sync over its management
socket (docs/external.md).

br-phy is not a controller-managed bridge (fail_mode standalone, its NORMAL flow switches the
underlay), so the agent reaches it the way ``ovs-ofctl`` does: the unix socket
``<OVS rundir>/<bridge>.mgmt``. ``UplinkBridge.sync(flows)`` drives the project's sync engine
(``sync.BridgeSync``: read what the bridge has, send the difference in one bundle) over a
blocking OpenFlow 1.4 channel; only flows of cookie kind UPLINK are ours, so the NORMAL flow and
anything an operator added stay. ``announce(ip, mac)`` sends a gratuitous ARP out of the uplink
(a floating IP that arrived on this host: routers and switches learn its new place at once).

Blocking by design: it is called from the agent's worker thread, never from an event handler,
and every call is bounded by ``timeout``.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable

from nuage_ryu.hostovs.host import EXTERNAL_PATCH_INT, EXTERNAL_PATCH_PHYS, HostOVSError
from nuage_ryu.vrs import ofwire, sync
from nuage_ryu.vrs.compile.external import external_mac
from nuage_ryu.vrs.compile.uplink import compile_uplink
from nuage_ryu.vrs.cookies import KIND_MASK, CookieKind, kind_cookie
from nuage_ryu.vrs.flow import Flow
from nuage_ryu.vrs.view import ExternalUplink

OFP_VERSION = 5  # OpenFlow 1.4
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_PACKET_OUT = 13
OFPP_CONTROLLER = 0xFFFFFFFD
NO_BUFFER = 0xFFFFFFFF
_HEADER = struct.Struct("!BBHI")


class UplinkError(Exception):
    """The physical bridge could not be reached or refused the flows."""


def owns_uplink_flow(cookie: int) -> bool:
    """Flows of the UPLINK kind are the agent's on br-phy; everything else is left alone."""
    return cookie & KIND_MASK == kind_cookie(CookieKind.UPLINK)


class _Reply:
    """The attributes ``BridgeSync`` reads from an os-ken message, taken from raw bytes."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)


class OpenFlowChannel:
    """A blocking OpenFlow 1.4 connection to a bridge's management socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self._buf = b""
        try:
            self.sock.connect(path)
            self.send(_HEADER.pack(OFP_VERSION, OFPT_HELLO, 8, 1))
            if self.recv()[0] != OFPT_HELLO:
                raise UplinkError(f"{path}: no OpenFlow hello")
        except OSError as exc:
            self.close()
            raise UplinkError(f"cannot talk OpenFlow to {path}: {exc}") from None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> tuple[int, int, bytes]:
        """The next message (type, xid, bytes); echo requests are answered on the way."""
        while True:
            if len(self._buf) >= 8:
                _, mtype, length, xid = _HEADER.unpack_from(self._buf)
                if len(self._buf) >= length:
                    msg, self._buf = self._buf[:length], self._buf[length:]
                    if mtype == OFPT_ECHO_REQUEST:
                        self.send(_HEADER.pack(OFP_VERSION, OFPT_ECHO_REPLY, 8, xid) + msg[8:])
                        continue
                    return mtype, xid, msg
            data = self.sock.recv(1 << 20)
            if not data:
                raise UplinkError(f"{self.path}: the switch closed the connection")
            self._buf += data

    def close(self) -> None:
        self.sock.close()


def _drive(channel: OpenFlowChannel, engine: sync.BridgeSync, messages: list[bytes], timeout: float) -> list:
    """Send ``messages``, feed the replies to ``engine`` until it settles; the errors seen."""
    errors = []
    for m in messages:
        channel.send(m)
    deadline = time.monotonic() + timeout
    while engine.state in (sync.READING, sync.PUSHING):
        if time.monotonic() > deadline:
            raise UplinkError("the physical bridge did not answer in time")
        mtype, xid, raw = channel.recv()
        if mtype == ofwire.OFPT_MULTIPART_REPLY:
            out = engine.on_flow_stats_reply(raw)
        elif mtype == ofwire.OFPT_BUNDLE_CONTROL:
            bundle_id, ctype = struct.unpack_from("!IH", raw, 8)
            out = engine.on_bundle_reply(_Reply(xid=xid, bundle_id=bundle_id, type=ctype))
        elif mtype == OFPT_ERROR:
            etype, code = struct.unpack_from("!HH", raw, 8)
            errors.append((xid, etype, code))
            out = engine.on_error(_Reply(xid=xid, type=etype, code=code))
        else:
            out = []
        for m in out:
            channel.send(m)
    return errors


class UplinkBridge:
    """br-phy's steering flows for one host: ``sync`` them, ``announce`` floating IPs."""

    def __init__(self, mgmt_socket: str, timeout: float = 10.0) -> None:
        self.mgmt_socket = mgmt_socket
        self.timeout = timeout
        self._channel: OpenFlowChannel | None = None
        self._engine: sync.BridgeSync | None = None

    def _connect(self) -> tuple[OpenFlowChannel, sync.BridgeSync]:
        if self._channel is None:
            channel = OpenFlowChannel(self.mgmt_socket, self.timeout)
            engine = sync.BridgeSync(owns=owns_uplink_flow, canary=None)
            try:
                _drive(channel, engine, engine.on_connect(), self.timeout)
            except (OSError, UplinkError):
                channel.close()
                raise
            self._channel, self._engine = channel, engine
        return self._channel, self._engine

    def sync(self, flows: Iterable[Flow]) -> None:
        """Make br-phy's UPLINK flows exactly ``flows`` (one bundle with the difference)."""
        wanted = list(flows)
        for attempt in (1, 2):  # a stale connection (OVS restarted) is retried once, from scratch
            try:
                channel, engine = self._connect()
                errors = _drive(channel, engine, engine.set_desired(wanted), self.timeout)
                if errors or not engine.in_sync:
                    raise UplinkError(f"br-phy refused the steering flows: {errors}")
                return
            except (OSError, UplinkError):
                self.close()
                if attempt == 2:
                    raise

    def announce(self, ip: str, mac: str, port: int) -> None:
        """A gratuitous ARP "ip is-at mac" out of ``port`` (the uplink)."""
        channel, _ = self._connect()
        channel.send(packet_out(gratuitous_arp(ip, mac), port, xid=0x6A7))

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._engine = None


def gratuitous_arp(ip: str, mac: str) -> bytes:
    """An Ethernet broadcast ARP request for ``ip`` from ``ip`` (RFC 5227 announcement)."""
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = socket.inet_aton(ip)
    return (b"\xff" * 6 + hw + struct.pack("!H", 0x0806)
            + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + addr + b"\x00" * 6 + addr)


def packet_out(frame: bytes, port: int, xid: int) -> bytes:
    """OFPT_PACKET_OUT (OpenFlow 1.4) sending ``frame`` out of ``port``."""
    action = struct.pack("!HHIH6x", 0, 16, port, 0)
    body = struct.pack("!IIH6x", NO_BUFFER, OFPP_CONTROLLER, len(action)) + action + frame
    return _HEADER.pack(OFP_VERSION, OFPT_PACKET_OUT, 8 + len(body), xid) + body


class HostUplink:
    """The agent's side of one host's external connectivity (docs/external.md), around ``UplinkBridge``.

    ``ensure``: the patch pair br-int <-> br-phy (OVSDB). ``read``: the host's ExternalUplink for the
    compiler and br-phy's (uplink, patch) ofports, or (None, None) when the host has no physical
    bridge to use. ``sync``: br-phy's steering flows for an UplinkView, then a gratuitous ARP for every
    floating IP that was not served here before. Blocking (OVSDB reads, the management socket): call
    it outside the agent's lock.
    """

    def __init__(self, host_ovs, integration_bridge: str, physical_bridge: str, tunnel_ip: str,
                 mgmt_socket: str | None, nat_ports: tuple[int, int], logger) -> None:
        self.host_ovs = host_ovs
        self.integration_bridge = integration_bridge
        self.physical_bridge = physical_bridge
        self.tunnel_ip = tunnel_ip
        self.nat_ports = nat_ports
        self.bridge = UplinkBridge(mgmt_socket) if mgmt_socket else None
        self._log = logger
        self._synced = None  # the UplinkView br-phy holds, None = unknown (re-sync)
        self._enabled = False

    def ensure(self) -> bool:
        """Create/correct the patch pair; False (logged) when the physical bridge is missing."""
        if self.bridge is None or not self.tunnel_ip:
            return False
        try:
            self.host_ovs.bridge_config(self.physical_bridge)
            self.host_ovs.ensure_external_patch(self.integration_bridge, self.physical_bridge)
        except HostOVSError as exc:
            self._log.warning("no external connectivity: %s", exc)
            return False
        self._enabled = True
        return True

    def read(self):
        """(ExternalUplink, (uplink ofport, patch ofport on br-phy)), or (None, None)."""
        if not self._enabled:
            return None, None
        patch_int = self.host_ovs.get_ofport(EXTERNAL_PATCH_INT)
        patch_phys = self.host_ovs.get_ofport(EXTERNAL_PATCH_PHYS)
        local = self.host_ovs.interface_config(self.physical_bridge) or {}
        ports = self.host_ovs.bridge_config(self.physical_bridge)["ports"]
        uplinks = [p for p in ports if p not in (self.physical_bridge, EXTERNAL_PATCH_PHYS)]
        uplink_ofport = self.host_ovs.get_ofport(uplinks[0]) if len(uplinks) == 1 else None
        if not (patch_int and patch_phys and uplink_ofport and local.get("mac_in_use")):
            return None, None  # not all ports exist yet: the next change retries
        return (ExternalUplink(self.tunnel_ip, local["mac_in_use"], patch_int, self.nat_ports),
                (uplink_ofport, patch_phys))

    def forget(self) -> None:
        """br-phy's flows are unknown again (OVS restarted): the next ``sync`` pushes them whole."""
        self._synced = None
        if self.bridge is not None:
            self.bridge.close()

    def sync(self, view) -> None:
        """Make br-phy's steering match ``view`` (an UplinkView or None) and announce new floating IPs."""
        if self.bridge is None or view == self._synced:
            return
        before = set(self._synced.floating_ips) if self._synced is not None else set()
        self.bridge.sync(compile_uplink(view))
        if view is not None:
            mac = external_mac(view.ip)
            for fip in sorted(set(view.floating_ips) - before):
                self.bridge.announce(fip, mac, view.uplink_ofport)
        self._synced = view

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()


def mgmt_socket_of(ovsdb_remote: str, bridge: str) -> str | None:
    """``<rundir>/<bridge>.mgmt`` next to a unix OVSDB socket; None for a remote OVSDB (central mode)."""
    if not ovsdb_remote.startswith("unix:"):
        return None
    return os.path.join(os.path.dirname(ovsdb_remote[len("unix:"):]), f"{bridge}.mgmt")


def parse_port_range(text: str) -> tuple[int, int]:
    """"61000-65535" -> (61000, 65535) (ValueError when not FIRST-LAST within 1..65535)."""
    first, _, last = text.partition("-")
    low, high = int(first), int(last or first)
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"bad port range {text!r}")
    return low, high
