"""External connectivity flows: egress NAT, floating IPs, published ports (docs/external.md).

Pure: HostView -> flows, in three owner kinds plus the physical bridge's steering flows:

* ``("external-static",)``: the skeleton of the EXT_* tables on a host with an ExternalUplink
  (the external patch port's entry, the external NAT zone both ways, the hand-off to br-phy);
* ``("external", domain)``: a domain's exits (L3_LOOKUP), its NAT zone, its transit address,
  when the domain is present and has egress NAT on or a local vport with a floating IP or a
  published port;
* ``("external-vport", vport)``: a local vport of such a domain: delivery from the outside,
  its floating IP (ARP answer, both rewrites), its published ports;
* ``compile_uplink``: br-phy's flows (not br-int's): what to pull out of NORMAL switching.

Order of policy and NAT: the sender-side policy (INGRESS_POLICY) has run on the private
addresses before L3_LOOKUP sends a packet here; inbound packets are un-NATed before the
receive-side policy (EGRESS_CT / EGRESS_POLICY) sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compiler import REG_DOMAIN, REG_DST_PORT, Owner, OwnerKind, cidr_match, match, register_owner_kind
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import OFPP_IN_PORT, OFPP_NORMAL, Ct, DecTtl, Flow, Goto, Move, Nat, Output, SetField
from nuage_ryu.vrs.view import Domain, ExternalUplink, HostView, VPort

IP = P.ETH_TYPE_IPV4
ARP = P.ETH_TYPE_ARP
VXLAN_UDP_PORT = 4789
_PROTO = {"tcp": P.IP_PROTO_TCP, "udp": P.IP_PROTO_UDP}
_PORT_FIELD = {"tcp": "tcp_dst", "udp": "udp_dst"}

# ct_state matches (value, mask): an established or related connection that is not invalid; a new one.
CT_KNOWN = ((P.CT_TRK | P.CT_EST, P.CT_TRK | P.CT_EST | P.CT_INV),
            (P.CT_TRK | P.CT_REL, P.CT_TRK | P.CT_REL | P.CT_INV))
CT_NEW = (P.CT_TRK | P.CT_NEW, P.CT_TRK | P.CT_NEW | P.CT_INV)

_EXT_TABLES = (P.EXT_INGRESS, P.EXT_INGRESS_STATE, P.EXT_INGRESS_DOMAIN, P.EXT_DELIVER,
               P.EXT_EGRESS, P.EXT_EGRESS_STATE, P.EXT_PAT, P.EXT_TO_UPLINK)


def external_mac(ip: str) -> str:
    """The MAC br-int uses on the underlay for this host (frames to br-phy, floating IP ARP answers):
    locally administered, derived from the host's address so that it is stable and distinct per host."""
    octets = [int(x) for x in ip.split(".")]
    return "02:5e:" + ":".join(f"{o:02x}" for o in octets)


STATIC_COOKIE = cookie_for(CookieKind.EXTERNAL, "static")


# ---- the skeleton ---------------------------------------------------------------------------


def compile_external_static(view: HostView) -> list[Flow]:
    """Entry from the patch port, the external NAT zone in both directions, the hand-off to br-phy."""
    ext = view.external
    if ext is None:
        return []
    c = STATIC_COOKIE
    low, high = ext.ports
    flows = [Flow(t.number, P.PRIO_TABLE_MISS, (), (), c) for t in _EXT_TABLES]
    flows += [
        Flow(P.CLASSIFY.number, P.PRIO_EXT_FROM_UPLINK, match(in_port=ext.patch_ofport, eth_type=IP),
             (Goto(P.EXT_INGRESS.number),), c),
        # Un-SNAT a reply (host address -> transit), re-DNAT a published port's continuation.
        Flow(P.EXT_INGRESS.number, P.PRIO_EXT_DEFAULT, match(eth_type=IP),
             (Ct(zone=P.EXT_ZONE, table=P.EXT_INGRESS_STATE.number, nat=Nat()),), c),
        # Transit -> the host's address; an existing connection (a published port's reply) keeps its own.
        Flow(P.EXT_PAT.number, P.PRIO_EXT_DEFAULT, match(eth_type=IP),
             (Ct(zone=P.EXT_ZONE, commit=True, table=P.EXT_TO_UPLINK.number,
                 nat=Nat("src", ext.ip, port=low, port_max=high if high != low else None)),), c),
        # To the host's own stack on br-phy, which routes it out (its routes, its ARP).
        Flow(P.EXT_TO_UPLINK.number, P.PRIO_EXT_DEFAULT, match(eth_type=IP),
             (SetField("eth_src", external_mac(ext.ip)), SetField("eth_dst", ext.mac), Output(ext.patch_ofport)), c),
    ]
    flows += [Flow(P.EXT_EGRESS_STATE.number, P.PRIO_EXT_KNOWN, match(eth_type=IP, ct_state=state),
                   (Goto(P.EXT_PAT.number),), c) for state in CT_KNOWN]
    return flows


# ---- per domain ---------------------------------------------------------------------------------


def has_external_vports(view: HostView, domain: Domain) -> bool:
    """A local vport of the domain has a floating IP or a published port."""
    return any(v.domain_id == domain.id and v.host == view.host_name and (v.floating_ip or v.published)
               for v in view.vports.values())


def domain_is_external(view: HostView, domain: Domain | None) -> bool:
    """Does the domain get external flows on this host?"""
    return (domain is not None and view.external is not None and domain.id in view.present_domains()
            and 1 <= domain.ct_zone <= P.MAX_EXTERNAL_CT_ZONE
            and (domain.egress_nat or has_external_vports(view, domain)))


def compile_external_domain(view: HostView, domain: Domain) -> list[Flow]:
    """The domain's exits from L3_LOOKUP and its NAT zone; SNAT of new connections if egress_nat."""
    if not domain_is_external(view, domain):
        return []
    c = cookie_for(CookieKind.EXTERNAL, domain.id)
    vni = {REG_DOMAIN: domain.vni}
    zone = P.nat_zone(domain.ct_zone)
    transit = P.transit_ip(domain.ct_zone)
    flows = [
        # An unknown address inside the domain never leaks out (the subnets' own drop, before the exit).
        *(Flow(P.L3_LOOKUP.number, P.PRIO_EXT_OWN_SUBNET, match(eth_type=IP, ipv4_dst=cidr_match(s.cidr), **vni),
               (), c)
          for s in view.subnets.values() if s.domain_id == domain.id),
        Flow(P.L3_LOOKUP.number, P.PRIO_EXT_ROUTE, match(eth_type=IP, eth_dst=domain.router_mac, **vni),
             (DecTtl(), Goto(P.EXT_EGRESS.number)), c),
        Flow(P.EXT_EGRESS.number, P.PRIO_EXT_DEFAULT, match(eth_type=IP, **vni),
             (Ct(zone=zone, table=P.EXT_EGRESS_STATE.number, nat=Nat()),), c),
        Flow(P.EXT_INGRESS_DOMAIN.number, P.PRIO_EXT_DEFAULT, match(eth_type=IP, **vni),
             (Ct(zone=zone, table=P.EXT_DELIVER.number, nat=Nat()),), c),
    ]
    flows += [Flow(P.EXT_INGRESS_STATE.number, P.PRIO_EXT_KNOWN, match(eth_type=IP, ct_state=state, ipv4_dst=transit),
                   (SetField(REG_DOMAIN, domain.vni), Goto(P.EXT_INGRESS_DOMAIN.number)), c)
              for state in CT_KNOWN]
    if domain.egress_nat:
        flows.append(Flow(P.EXT_EGRESS_STATE.number, P.PRIO_EXT_DEFAULT, match(eth_type=IP, ct_state=CT_NEW, **vni),
                          (Ct(zone=zone, commit=True, table=P.EXT_PAT.number, nat=Nat("src", transit)),), c))
    return flows


# ---- per local vport ------------------------------------------------------------------------------


def compile_external_vport(view: HostView, vport: VPort) -> list[Flow]:
    """Delivery from the outside to a local vport; its floating IP; its published ports."""
    domain = view.domains.get(vport.domain_id)
    logical = view.logical_port(vport)
    if logical is None or not domain_is_external(view, domain):
        return []
    ext = view.external
    vni = {REG_DOMAIN: domain.vni}
    flows = [Flow(P.EXT_DELIVER.number, P.PRIO_EXT_DEFAULT, match(eth_type=IP, ipv4_dst=vport.ip, **vni),
                  (SetField("eth_src", domain.router_mac), SetField("eth_dst", vport.mac), DecTtl(),
                   SetField(REG_DST_PORT, logical), Goto(P.EGRESS_CT.number)),
                  cookie_for(CookieKind.EXTERNAL, vport.id))]
    if vport.floating_ip:
        flows += floating_ip_flows(ext, domain, vport)
    if vport.published:
        flows += published_port_flows(ext, domain, vport)
    return flows


def floating_ip_flows(ext: ExternalUplink, domain: Domain, vport: VPort) -> list[Flow]:
    """1:1 and stateless: ARP for the floating IP is answered here, the address is rewritten both ways."""
    c = cookie_for(CookieKind.FLOATING_IP, vport.id)
    fip, mac = vport.floating_ip, external_mac(ext.ip)
    return [
        Flow(P.CLASSIFY.number, P.PRIO_EXT_FROM_UPLINK,
             match(in_port=ext.patch_ofport, eth_type=ARP, arp_op=P.ARP_REQUEST, arp_tpa=fip), (
                 Move("eth_src", "eth_dst", 48), SetField("eth_src", mac), SetField("arp_op", P.ARP_REPLY),
                 Move("arp_sha", "arp_tha", 48), Move("arp_spa", "arp_tpa", 32), SetField("arp_sha", mac),
                 SetField("arp_spa", fip), Output(OFPP_IN_PORT)), c),
        Flow(P.EXT_INGRESS.number, P.PRIO_EXT_FLOATING_IP, match(eth_type=IP, ipv4_dst=fip),
             (SetField("ipv4_dst", vport.ip), SetField(REG_DOMAIN, domain.vni), Goto(P.EXT_DELIVER.number)), c),
        Flow(P.EXT_EGRESS_STATE.number, P.PRIO_EXT_FLOATING_IP,
             match(eth_type=IP, ipv4_src=vport.ip, **{REG_DOMAIN: domain.vni}),
             (SetField("ipv4_src", fip), Goto(P.EXT_TO_UPLINK.number)), c),
    ]


def published_port_flows(ext: ExternalUplink, domain: Domain, vport: VPort) -> list[Flow]:
    """A new connection to host_port: DNAT to the transit address (external zone), then to the vport."""
    c = cookie_for(CookieKind.PORT_MAPPING, vport.id)
    transit = P.transit_ip(domain.ct_zone)
    zone = P.nat_zone(domain.ct_zone)
    flows = []
    for m in vport.published:
        port = {_PORT_FIELD[m.protocol]: m.host_port}
        flows += [
            Flow(P.EXT_INGRESS_STATE.number, P.PRIO_EXT_PUBLISHED,
                 match(eth_type=IP, ct_state=CT_NEW, ip_proto=_PROTO[m.protocol], ipv4_dst=ext.ip, **port),
                 (SetField(REG_DOMAIN, domain.vni),
                  Ct(zone=P.EXT_ZONE, commit=True, table=P.EXT_INGRESS_DOMAIN.number,
                     nat=Nat("dst", transit, port=m.host_port))), c),
            Flow(P.EXT_INGRESS_DOMAIN.number, P.PRIO_EXT_PUBLISHED,
                 match(eth_type=IP, ct_state=CT_NEW, ip_proto=_PROTO[m.protocol], ipv4_dst=transit,
                       **port, **{REG_DOMAIN: domain.vni}),
                 (Ct(zone=zone, commit=True, table=P.EXT_DELIVER.number,
                     nat=Nat("dst", vport.ip, port=m.container_port)),), c),
        ]
    return flows


# ---- owners ---------------------------------------------------------------------------------------


def _static_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    return {("external-static",): view.external}


def _domain_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    out: dict[Owner, object] = {}
    for d in view.domains.values():
        external = domain_is_external(view, d)
        cidrs = tuple(sorted(s.cidr for s in view.subnets.values() if s.domain_id == d.id)) if external else ()
        out[("external", d.id)] = (d, external, view.external if external else None, cidrs)
    return out


def _vport_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    out: dict[Owner, object] = {}
    for v in view.vports.values():
        if v.host != view.host_name:
            continue
        domain = view.domains.get(v.domain_id)
        external = domain_is_external(view, domain)
        out[("external-vport", v.id)] = (v, domain, view.logical_port(v), view.external) if external else None
    return out


OWNER_KINDS = (
    OwnerKind("external-static", _static_inputs, lambda view, owner: compile_external_static(view)),
    OwnerKind("external", _domain_inputs,
              lambda view, owner: compile_external_domain(view, view.domains[owner[1]])),
    OwnerKind("external-vport", _vport_inputs,
              lambda view, owner: compile_external_vport(view, view.vports[owner[1]])),
)


def register() -> None:
    """Add the external owner kinds to the br-int compiler (idempotent)."""
    for kind in OWNER_KINDS:
        register_owner_kind(kind)


# ---- the physical bridge (br-phy) -------------------------------------------------------------------


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
    c = cookie_for(CookieKind.UPLINK, "steering")
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


def uplink_flows_of(flows: Iterable[Flow]) -> list[Flow]:
    """The flows among ``flows`` that are br-phy steering flows (by cookie kind)."""
    kind = int(CookieKind.UPLINK) << 56
    return [f for f in flows if f.cookie & (0xFF << 56) == kind]
