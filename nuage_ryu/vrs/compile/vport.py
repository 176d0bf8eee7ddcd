"""Flows of one vport: ARP answer and routes to it from anywhere in its domain; on other hosts, its
entry from the overlay (its host's tunnel IP + its IP); on its own host, its port flows (anti-spoofing,
overlay delivery, output, DHCP to the controller)."""

from __future__ import annotations

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile.base import (
    IP,
    REG_DOMAIN,
    REG_DST_HOST,
    REG_DST_PORT,
    REG_SRC_PORT,
    Owner,
    OwnerKind,
    OwnerTag,
    arp_reply_flow,
    cidr_match,
    ip_to_int,
    match,
)
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import OFPP_IN_PORT, Controller, DecTtl, Flow, Goto, Output, PopVlan, PushVlan, SetField
from nuage_ryu.vrs.view import HostView, VPort
from nuage_ryu.vrs.view_update import ViewDelta, view_index


def vport_cookie(view: HostView, vport: VPort) -> int:
    """The cookie of a vport's flows on this host: VPORT for its own host's vports, REMOTE_VPORT otherwise."""
    kind = CookieKind.VPORT if vport.host == view.host_name else CookieKind.REMOTE_VPORT
    return cookie_for(kind, vport.id)


def _destination(view: HostView, vport: VPort) -> tuple | None:
    """Actions that make OUTPUT send to this vport, None when it cannot be reached from here."""
    logical = view.logical_port(vport)
    if logical is not None:
        return (SetField(REG_DST_PORT, logical),)
    if vport.host == view.host_name:
        return None  # ours but not plugged in yet
    host = view.hosts.get(vport.host)
    if host is None or not host.tunnel_ip or view.tunnel_port_ofport is None:
        return None
    return (SetField(REG_DST_PORT, view.tunnel_port_ofport),
            SetField(REG_DST_HOST, ip_to_int(host.tunnel_ip)))


def _overlay_entry(view: HostView, vport: VPort, vni: int, cookie: int) -> list[Flow]:
    """A remote vport's traffic enters this host from the overlay only from its own host, with its own IP.

    The receiving host's policy matches remote senders by source IP, so the IP must be bound to the host
    that owns it: otherwise any host of the domain (a compromised one) could send as a member of an
    allowed group living elsewhere. Nothing else on the underlay, and no host of another tenant, can
    inject into the domain either: the VNI, the tunnel source and the source IP must all match.
    """
    if vport.host == view.host_name or not vport.ip or view.tunnel_port_ofport is None:
        return []
    host = view.hosts.get(vport.host)
    if host is None or not host.tunnel_ip:
        return []
    return [Flow(P.CLASSIFY.number, P.PRIO_TUNNEL,
                 match(in_port=view.tunnel_port_ofport, tunnel_id=vni, tun_ipv4_src=host.tunnel_ip,
                       eth_type=IP, ipv4_src=vport.ip),
                 (SetField(REG_DOMAIN, vni), Goto(P.OVERLAY_LOOKUP.number)), cookie)]


def compile_vport(view: HostView, vport: VPort) -> list[Flow]:
    """ARP answer and routes to this vport (from anywhere in its domain) and, if local, its port flows."""
    domain = view.domains.get(vport.domain_id)
    subnet = view.subnets.get(vport.subnet_id)
    if domain is None or subnet is None or domain.id not in view.present_domains():
        return []
    c = vport_cookie(view, vport)
    vni = {REG_DOMAIN: domain.vni}
    flows = [arp_reply_flow(domain.vni, vport.ip, vport.mac, subnet.cidr, c)]
    dest = _destination(view, vport)
    if dest is not None:
        to_output = (*dest, Goto(P.OUTPUT.number))
        flows += [
            # Same subnet: plain L2 delivery; the source must be in the subnet (it was anti-spoofed).
            Flow(P.L3_LOOKUP.number, P.PRIO_L2,
                 match(eth_type=IP, eth_dst=vport.mac, ipv4_dst=vport.ip, ipv4_src=cidr_match(subnet.cidr),
                       **vni), to_output, c),
            # Any subnet of the domain via the distributed router: routed on this first hop.
            Flow(P.L3_LOOKUP.number, P.PRIO_L3,
                 match(eth_type=IP, eth_dst=domain.router_mac, ipv4_dst=vport.ip, **vni),
                 (SetField("eth_src", domain.router_mac), SetField("eth_dst", vport.mac), DecTtl(),
                  *to_output), c),
        ]
    flows += _overlay_entry(view, vport, domain.vni, c)
    local = view.local_port(vport)
    if local is None:
        return flows
    port = local.ofport
    logical = view.logical_port(vport)  # == port unless tagged: tagged vports may share a port
    tagged = vport.vlan is not None
    vlan = {"vlan_vid": P.OFPVID_PRESENT | vport.vlan} if tagged else {"vlan_vid": 0}
    mark = (SetField(REG_DOMAIN, domain.vni), SetField(REG_SRC_PORT, logical))
    pop = (PopVlan(),) if tagged else ()
    flows += [
        # Port security: only its own MAC and IP get in; anything else falls to the table-miss drop.
        Flow(P.CLASSIFY.number, P.PRIO_PORT_SECURITY,
             match(in_port=port, eth_src=vport.mac, eth_type=IP, ipv4_src=vport.ip, **vlan),
             (*pop, *mark, Goto(P.INGRESS_CT.number)), c),
        # ARP only about itself; the tag stays on so the reply goes back tagged via IN_PORT.
        Flow(P.CLASSIFY.number, P.PRIO_PORT_SECURITY,
             match(in_port=port, eth_src=vport.mac, eth_type=P.ETH_TYPE_ARP, arp_sha=vport.mac,
                   arp_spa=vport.ip, **vlan),
             (*mark, Goto(P.ARP_RESPONDER.number)), c),
        # A gratuitous ARP (its own IP as target) must not be answered: the vport would see its own
        # address "in use" by itself.
        Flow(P.ARP_RESPONDER.number, P.PRIO_GRATUITOUS_ARP,
             match(eth_type=P.ETH_TYPE_ARP, arp_op=P.ARP_REQUEST, arp_spa=vport.ip, arp_tpa=vport.ip, **vni),
             (), c),
        Flow(P.OVERLAY_LOOKUP.number, P.PRIO_OVERLAY_DELIVERY,
             match(eth_type=IP, eth_dst=vport.mac, ipv4_dst=vport.ip, **vni),
             (SetField(REG_DST_PORT, logical), Goto(P.EGRESS_CT.number)), c),
        Flow(P.OUTPUT.number, P.PRIO_OUTPUT, match(**{REG_DST_PORT: logical}),
             (PushVlan(), SetField("vlan_vid", P.OFPVID_PRESENT | vport.vlan), Output(port)) if tagged
             else (Output(port),), c),
        # What policy denies it: a drop each way, whose statistics are its drop counters.
        Flow(P.POLICY_DROP.number, P.PRIO_DROP_SENT, match(**{REG_SRC_PORT: logical}), (), c),
        Flow(P.POLICY_DROP.number, P.PRIO_DROP_RECEIVED, match(**{REG_SRC_PORT: 0, REG_DST_PORT: logical}),
             (), c),
    ]
    if tagged:
        # Another server behind the same gateway port sent it: OVS never outputs to the port a packet
        # came in on unless told IN_PORT, so that case needs its own flow.
        flows.append(Flow(P.OUTPUT.number, P.PRIO_OUTPUT_HAIRPIN, match(in_port=port, **{REG_DST_PORT: logical}),
                          (PushVlan(), SetField("vlan_vid", P.OFPVID_PRESENT | vport.vlan), Output(OFPP_IN_PORT)),
                          c))
    if vport.type in ("vm", "host"):
        # DHCP is answered by the controller (a VM or server asks for its address); reserved here.
        flows.append(Flow(P.CLASSIFY.number, P.PRIO_DHCP,
                          match(in_port=port, eth_src=vport.mac, eth_type=IP, ip_proto=P.IP_PROTO_UDP,
                                udp_src=P.DHCP_CLIENT_PORT, udp_dst=P.DHCP_SERVER_PORT, **vlan),
                          (*mark, Controller()), c))
    return flows


def _vport_input(view: HostView, present: frozenset[str], v: VPort) -> object:
    if v.domain_id not in present:
        return None
    local = v.host == view.host_name
    where = view.local_ports.get(v.id) if local else view.hosts.get(v.host)
    return (v, view.domains.get(v.domain_id), view.subnets.get(v.subnet_id), local, where,
            view.tunnel_port_ofport)


def _vport_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    return {(OwnerTag.VPORT, v.id): _vport_input(view, present, v) for v in view.vports.values()}


def _vports_affected(old: HostView, new: HostView, delta: ViewDelta) -> set[Owner]:
    """The vports changed, plugged or unplugged here, and those of a changed host, domain or subnet."""
    ids = set(delta.vports) | delta.local_ports
    idx = view_index(new)
    for index, keys in ((idx.vports_by_host, delta.hosts), (idx.vports_by_domain, delta.domains),
                        (idx.vports_by_subnet, delta.subnets)):
        for key in keys:
            ids.update(index.get(key, ()))
    return {(OwnerTag.VPORT, vid) for vid in ids}


def _vport_inputs_of(view: HostView, present: frozenset[str], owners) -> dict[Owner, object]:
    return {o: _vport_input(view, present, v) for o in owners if (v := view.vports.get(o[1])) is not None}


VPORT_OWNERS = OwnerKind((OwnerTag.VPORT,), _vport_inputs,
                         lambda view, owner: compile_vport(view, view.vports[owner[1]]),
                         _vports_affected, _vport_inputs_of)
