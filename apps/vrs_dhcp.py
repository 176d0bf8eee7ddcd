"""DHCP for VMs and bare-metal servers: the VRS agent's local DHCP responder.

One feature per app (Dragonflow style). The VRS agent's CLASSIFY table sends a
DHCP request (UDP 68 -> 67 from the vport's own MAC) of a ``vm`` or ``host``
vport to the controller; this app answers it from directory data, so that an
unmodified DHCP client gets its directory-assigned IP, gateway and MTU:

    packet-in (datapath, in_port, frame)
      -> the agent's ``ManagedBridge`` for the datapath id
      -> the vport on in_port (a gateway port may carry several bare-metal
         vports: the frame's 802.1Q tag picks the one with that VLAN)
      -> a ``Lease`` from the bridge's directory snapshot
      -> ``nuage_ryu.vrs.dhcp.handle_dhcp`` on the untagged frame
      -> packet-out of the reply on in_port, re-tagged with the VLAN it came with.

It must run in the same process as the agent (``nuage_ryu.apps.vrs_agent``),
found through os-ken's service bricks; both are in the "vrs" and "all" role sets.

The handler never blocks and never raises: it reads the bridge's current
directory snapshot and port map without the agent's lock (both are immutable
objects that the agent's worker replaces by assignment, never mutates), and
anything it cannot use (garbage, a foreign MAC, an unknown port or datapath) is
counted under ``nuage_dhcp_packets_total{result}`` on the agent's Prometheus
registry and dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from nuage_ryu.apps.companion import AgentCompanion
from nuage_ryu.framework import MAIN_DISPATCHER, ofp_event, ofproto_v1_4, set_ev_cls
from nuage_ryu.vrs import dhcp
from nuage_ryu.vrs.pipeline import VERDICT_LOG_TABLES
from nuage_ryu.vrs.view import gateway_vlan

VXLAN_OVERHEAD = 50
ETH_TYPE_8021Q = 0x8100
OFPVID_PRESENT = 0x1000
DHCP_VPORT_TYPES = ("vm", "host")

# Results of a packet-in (the ``result`` label): the responder's own outcomes ...
RESPONDER_RESULTS = (dhcp.OFFERS, dhcp.ACKS, dhcp.NAKS, dhcp.MALFORMED, dhcp.IGNORED, dhcp.FOREIGN_MAC)
# ... and the ones decided here, before a frame reaches the responder.
NO_AGENT = "no_agent"  # the VrsAgent app is not loaded in this process
UNKNOWN_DATAPATH = "unknown_datapath"  # a bridge the agent does not manage
UNKNOWN_VPORT = "unknown_vport"  # no vm/host vport of this host on that port (and VLAN)
NO_LEASE = "no_lease"  # the vport's subnet or domain is missing/incomplete in the snapshot
ERROR = "error"  # a bug: caught, logged (rate-limited) and counted
RESULTS = (*RESPONDER_RESULTS, NO_AGENT, UNKNOWN_DATAPATH, UNKNOWN_VPORT, NO_LEASE, ERROR)


def split_vlan(frame) -> tuple[bytes, int | None]:
    """(frame without its outer 802.1Q tag, the tag's VLAN id); (frame, None) when untagged or too short."""
    if not isinstance(frame, (bytes, bytearray)):
        return b"", None
    frame = bytes(frame)
    if len(frame) < 18 or int.from_bytes(frame[12:14], "big") != ETH_TYPE_8021Q:
        return frame, None
    return frame[:12] + frame[16:], int.from_bytes(frame[14:16], "big") & 0x0FFF


class PortIndex:
    """{ofport: [vport id, ...]}: the reverse of a bridge's {vport id: ofport}, rebuilt when that map changes."""

    def __init__(self) -> None:
        self._source: Mapping[str, int] | None = None
        self._by_port: dict[int, list[str]] = {}

    def vport_ids(self, ofports: Mapping[str, int], ofport) -> list[str]:
        if ofports is not self._source:  # the agent replaces the map on every port change
            by_port: dict[int, list[str]] = {}
            for vport_id, port in ofports.items():
                by_port.setdefault(port, []).append(vport_id)
            self._by_port, self._source = by_port, ofports
        return self._by_port.get(ofport, [])


def find_vport(state, host_name: str, vport_ids, vlan: int | None):
    """The vm/host vport of ``host_name`` among ``vport_ids`` (all on one port) that uses VLAN ``vlan``."""
    if state is None:
        return None
    for vport_id in vport_ids:
        vport = state.vports.get(vport_id)
        if vport is None or vport.host != host_name or vport.type not in DHCP_VPORT_TYPES:
            continue
        if gateway_vlan(vport) == vlan:
            return vport
    return None


def lease_for(state, vport, mtu: int | None) -> dhcp.Lease | None:
    """What the directory assigns to ``vport``; None if the snapshot lacks its subnet or domain."""
    subnet = state.subnets.get(vport.subnet)
    domain = state.domains.get(vport.domain)
    if subnet is None or domain is None or not vport.ip or not vport.mac or not domain.router_mac:
        return None
    try:
        prefixlen = ipaddress.IPv4Network(subnet.cidr, strict=False).prefixlen
        ipaddress.IPv4Address(vport.ip)
    except ValueError:
        return None
    gateway = vport.gateway or subnet.gateway
    if not gateway:
        return None
    return dhcp.Lease(ip=vport.ip, prefixlen=prefixlen, gateway=gateway, mac=vport.mac,
                      server_mac=domain.router_mac, mtu=mtu)


class DhcpCollector:
    """Prometheus view of the counters: ``nuage_dhcp_packets_total{result}``.

    Reads a fixed list of keys (never iterates the live Counter), so a scrape
    racing the handler thread is safe.
    """

    def __init__(self, stats: dhcp.DhcpStats) -> None:
        self.stats = stats

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily("nuage_dhcp_packets", "DHCP packet-ins handled by the VRS agent, by result",
                                     labels=["result"])
        for result in RESULTS:
            family.add_metric([result], self.stats.counts.get(result, 0))
        yield family


class VrsDhcp(AgentCompanion):
    """Answers DHCP for the vm and host vports of the bridges the VrsAgent manages."""

    OFP_VERSIONS = [ofproto_v1_4.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats = dhcp.DhcpStats()
        self._ports: dict[int, PortIndex] = {}  # by datapath id

    def start(self):
        if self.vrs_agent() is None:
            self.logger.warning("VrsAgent is not loaded in this process: DHCP requests will go unanswered; "
                                "run nuage_ryu.apps.vrs_agent together with nuage_ryu.apps.vrs_dhcp")
        return super().start()

    def collector(self):
        return DhcpCollector(self.stats)

    # -- OpenFlow ----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        try:
            result = self.handle_packet_in(ev.msg)
        except Exception:  # never let one packet take the app's event thread down
            result = ERROR
            self.log_failure("DHCP packet-in failed (counted as %r)", ERROR)
        if result is not None:
            self.stats.bump(result)

    def handle_packet_in(self, msg) -> str | None:
        """Answer one packet-in; returns a result to count here, None when the responder counted it."""
        if msg.table_id in VERDICT_LOG_TABLES:
            return None  # a verdict copy (policy/audit tables): nuage_ryu.apps.vrs_verdicts' packet-in
        dp = msg.datapath
        agent = self.vrs_agent()
        if agent is None:
            return NO_AGENT
        dpid = getattr(dp, "id", None)
        bridge = agent.bridges.get(dpid)
        if bridge is None:
            return UNKNOWN_DATAPATH
        in_port = msg.match.get("in_port")
        core = bridge.core
        state, ofports = core.state, core.ofports  # one consistent read of each (replaced, never mutated)
        frame, vlan = split_vlan(msg.data)
        ids = self._ports.setdefault(dpid, PortIndex()).vport_ids(ofports, in_port)
        vport = find_vport(state, bridge.host_name, ids, vlan)
        if vport is None:
            return UNKNOWN_VPORT
        lease = lease_for(state, vport, agent.CONF.vrs.underlay_mtu - VXLAN_OVERHEAD)
        if lease is None:
            return NO_LEASE
        reply = dhcp.handle_dhcp(frame, lease, self.stats)  # counts its own outcome, never raises
        if reply is not None:
            dp.send_msg(self.packet_out(dp, in_port, vlan, reply))
        return None

    @staticmethod
    def packet_out(dp, port: int, vlan: int | None, frame: bytes):
        """``frame`` out of ``port``, tagged with ``vlan`` if the request came tagged."""
        parser, ofp = dp.ofproto_parser, dp.ofproto
        actions = []
        if vlan is not None:
            actions += [parser.OFPActionPushVlan(ETH_TYPE_8021Q),
                        parser.OFPActionSetField(vlan_vid=OFPVID_PRESENT | vlan)]
        actions.append(parser.OFPActionOutput(port))
        return parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                   actions=actions, data=frame)
