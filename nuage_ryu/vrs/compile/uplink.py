"""br-phy's steering flows (docs/external.md §1): what the physical bridge pulls out of its NORMAL
switching and hands to br-int. Pure; installed by ``nuage_ryu.agent.uplink`` over the bridge's
management socket. br-phy's own NORMAL flow (not ours) does everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile.base import IP, match
from nuage_ryu.vrs.compile.external import CT_KNOWN, domain_is_external
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import OFPP_NORMAL, Ct, Flow, Output
from nuage_ryu.vrs.view import HostView

ARP = P.ETH_TYPE_ARP
VXLAN_UDP_PORT = 4789
_PROTO = {"tcp": P.IP_PROTO_TCP, "udp": P.IP_PROTO_UDP}
_PORT_FIELD = {"tcp": "tcp_dst", "udp": "udp_dst"}
UPLINK_COOKIE = cookie_for(CookieKind.UPLINK, "steering")


@dataclass(frozen=True)
class UplinkView:
    """What br-phy's steering depends on: its ports, the host's address, the local floating IPs and
    published ports."""

    ip: str
    uplink_ofport: int  # the underlay NIC on br-phy
    patch_ofport: int  # br-phy's end of the patch to br-int
    floating_ips: tuple[str, ...] = ()
    published: tuple[tuple[str, int], ...] = ()  # (protocol, host port)


def uplink_view(view: HostView, uplink_ofport: int, patch_ofport: int) -> UplinkView | None:
    """br-phy's input from a br-int view (None without external connectivity)."""
    if view.external is None:
        return None
    local = [v for v in view.vports.values()
             if v.host == view.host_name and domain_is_external(view, view.domains.get(v.domain_id))]
    fips = tuple(sorted({v.floating_ip for v in local if v.floating_ip}))
    published = tuple(sorted({(m.protocol, m.host_port) for v in local for m in v.published}))
    return UplinkView(view.external.ip, uplink_ofport, patch_ofport, fips, published)


def compile_uplink(uplink: UplinkView | None) -> list[Flow]:
    """br-phy's steering flows; br-phy's own NORMAL flow (not ours) does everything else."""
    if uplink is None:
        return []
    c = UPLINK_COOKIE
    t0, t1 = P.UPLINK_CLASSIFY.number, P.UPLINK_CT_STATE.number
    to_int = (Output(uplink.patch_ofport),)
    flows = [
        # The host's VXLAN traffic never pays for a conntrack lookup.
        Flow(t0, P.PRIO_UPLINK_TUNNEL, match(in_port=uplink.uplink_ofport, eth_type=IP, ip_proto=P.IP_PROTO_UDP,
                                            ipv4_dst=uplink.ip, udp_dst=VXLAN_UDP_PORT), (Output(OFPP_NORMAL),), c),
        # Replies and continuations of connections br-int translated in the external zone.
        Flow(t0, P.PRIO_UPLINK_LOOKUP, match(in_port=uplink.uplink_ofport, eth_type=IP, ipv4_dst=uplink.ip),
             (Ct(zone=P.EXT_ZONE, table=t1),), c),
        *(Flow(t1, P.PRIO_UPLINK_LOOKUP, match(ct_state=state), to_int, c) for state in CT_KNOWN),
        Flow(t1, P.PRIO_TABLE_MISS, (), (Output(OFPP_NORMAL),), c),
    ]
    for protocol, port in uplink.published:
        flows.append(Flow(t0, P.PRIO_UPLINK_STEER,
                          match(in_port=uplink.uplink_ofport, eth_type=IP, ip_proto=_PROTO[protocol],
                                ipv4_dst=uplink.ip, **{_PORT_FIELD[protocol]: port}), to_int, c))
    for fip in uplink.floating_ips:
        flows += [
            Flow(t0, P.PRIO_UPLINK_STEER, match(in_port=uplink.uplink_ofport, eth_type=IP, ipv4_dst=fip), to_int, c),
            Flow(t0, P.PRIO_UPLINK_STEER, match(in_port=uplink.uplink_ofport, eth_type=ARP, arp_tpa=fip), to_int, c),
        ]
    return flows
