"""External connectivity flows: egress NAT, floating IPs, published ports (docs/external.md).

Pure: HostView -> br-int's flows, in three owner kinds (br-phy's steering is ``compile.uplink``):

* ``(OwnerTag.EXTERNAL_STATIC,)``: the skeleton of the EXT_* tables on a host with an ExternalUplink
  (the external patch port's entry, the external NAT zone both ways, the hand-off to br-phy);
* ``(OwnerTag.EXTERNAL, domain)``: a domain's exits (L3_LOOKUP), its NAT zone, its transit address,
  when the domain is present and has egress NAT on or a local vport with a floating IP or a
  published port;
* ``(OwnerTag.EXTERNAL_VPORT, vport)``: a local vport of such a domain: delivery from the outside,
  its floating IP (ARP answer, both rewrites), its published ports;

Order of policy and NAT: the sender-side policy (INGRESS_POLICY) has run on the private
addresses before L3_LOOKUP sends a packet here; inbound packets are un-NATed before the
receive-side policy (EGRESS_CT / EGRESS_POLICY) sees them.
"""

from __future__ import annotations

import weakref

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile.base import REG_DOMAIN, REG_DST_PORT, Owner, OwnerKind, OwnerTag, cidr_match, match
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import OFPP_IN_PORT, Ct, DecTtl, Flow, Goto, Move, Nat, Output, SetField
from nuage_ryu.vrs.view import Domain, ExternalUplink, HostView, VPort
from nuage_ryu.vrs.view_update import ViewDelta, view_index

IP = P.ETH_TYPE_IPV4
ARP = P.ETH_TYPE_ARP
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


_EXTERNAL_DOMAINS: weakref.WeakKeyDictionary[HostView, frozenset[str]] = weakref.WeakKeyDictionary()


def external_domains(view: HostView) -> frozenset[str]:
    """Ids of the domains that get external flows on this host: present, with a policy zone in range,
    and egress NAT on or a local vport with a floating IP or a published port. One pass over the
    vports per view (a view is immutable; every owner of every kind asks)."""
    found = _EXTERNAL_DOMAINS.get(view)
    if found is None:
        found = frozenset()
        if view.external is not None:
            published = {v.domain_id for v in view.vports.values()
                         if v.host == view.host_name and (v.floating_ip or v.published)}
            present = view.present_domains()
            found = frozenset(d.id for d in view.domains.values()
                              if d.id in present and 1 <= d.ct_zone <= P.MAX_EXTERNAL_CT_ZONE
                              and (d.egress_nat or d.id in published))
        _EXTERNAL_DOMAINS[view] = found
    return found


def domain_is_external(view: HostView, domain: Domain | None) -> bool:
    """Does the domain get external flows on this host?"""
    return domain is not None and domain.id in external_domains(view)


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
    return {(OwnerTag.EXTERNAL_STATIC,): view.external}


def _domain_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    out: dict[Owner, object] = {}
    for d in view.domains.values():
        external = domain_is_external(view, d)
        cidrs = tuple(sorted(s.cidr for s in view.subnets.values() if s.domain_id == d.id)) if external else ()
        out[(OwnerTag.EXTERNAL, d.id)] = (d, external, view.external if external else None, cidrs)
    return out


def _vport_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    out: dict[Owner, object] = {}
    for v in view.vports.values():
        if v.host != view.host_name:
            continue
        domain = view.domains.get(v.domain_id)
        external = domain_is_external(view, domain)
        out[(OwnerTag.EXTERNAL_VPORT, v.id)] = (v, domain, view.logical_port(v), view.external) if external else None
    return out


def _carry_external_domains(old: HostView, new: HostView, delta: ViewDelta) -> None:
    """``external_domains(new)`` from ``old``'s when nothing it reads changed (it walks every vport)."""
    if new in _EXTERNAL_DOMAINS or old not in _EXTERNAL_DOMAINS or delta.domains:
        return
    for vid in delta.vports:
        for v in (old.vports.get(vid), new.vports.get(vid)):
            if v is not None and v.host == new.host_name:
                return  # a local vport's floating IP or published ports may have changed
    _EXTERNAL_DOMAINS[new] = _EXTERNAL_DOMAINS[old]


def _domains_affected(old: HostView, new: HostView, delta: ViewDelta) -> set[Owner]:
    _carry_external_domains(old, new, delta)
    if external_domains(old) != external_domains(new):
        ids = set(old.domains) | set(new.domains)
    else:
        ids = set(delta.domains)
        for sid in delta.subnets:
            for s in (old.subnets.get(sid), new.subnets.get(sid)):
                if s is not None:
                    ids.add(s.domain_id)
    return {(OwnerTag.EXTERNAL, d) for d in ids}


def _domain_inputs_of(view: HostView, present: frozenset[str], owners) -> dict[Owner, object]:
    out: dict[Owner, object] = {}
    for owner in owners:
        d = view.domains.get(owner[1])
        if d is None:
            continue
        external = domain_is_external(view, d)
        cidrs = tuple(sorted(view.subnets[sid].cidr for sid in view_index(view).subnets_by_domain.get(d.id, ())
                             )) if external else ()
        out[owner] = (d, external, view.external if external else None, cidrs)
    return out


def _vports_affected(old: HostView, new: HostView, delta: ViewDelta) -> set[Owner]:
    _carry_external_domains(old, new, delta)
    if delta.domains or external_domains(old) != external_domains(new):
        ids = set(view_index(old).vports_by_host.get(old.host_name, ()))
        ids.update(view_index(new).vports_by_host.get(new.host_name, ()))
    else:
        ids = set()
    ids |= delta.vports | delta.local_ports
    return {(OwnerTag.EXTERNAL_VPORT, vid) for vid in ids}


def _vport_inputs_of(view: HostView, present: frozenset[str], owners) -> dict[Owner, object]:
    out: dict[Owner, object] = {}
    for owner in owners:
        v = view.vports.get(owner[1])
        if v is None or v.host != view.host_name:
            continue
        domain = view.domains.get(v.domain_id)
        external = domain_is_external(view, domain)
        out[owner] = (v, domain, view.logical_port(v), view.external) if external else None
    return out


EXTERNAL_STATIC_OWNERS = OwnerKind((OwnerTag.EXTERNAL_STATIC,), _static_inputs,
                                   lambda view, owner: compile_external_static(view),
                                   lambda old, new, delta: [(OwnerTag.EXTERNAL_STATIC,)],
                                   lambda view, present, owners: _static_inputs(view, present))
EXTERNAL_DOMAIN_OWNERS = OwnerKind((OwnerTag.EXTERNAL,), _domain_inputs,
                                   lambda view, owner: compile_external_domain(view, view.domains[owner[1]]),
                                   _domains_affected, _domain_inputs_of)
EXTERNAL_VPORT_OWNERS = OwnerKind((OwnerTag.EXTERNAL_VPORT,), _vport_inputs,
                                  lambda view, owner: compile_external_vport(view, view.vports[owner[1]]),
                                  _vports_affected, _vport_inputs_of)
