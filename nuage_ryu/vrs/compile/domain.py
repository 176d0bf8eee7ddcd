"""Flows of a domain present on the host (conntrack in its zone, its default policy action) and of its
subnets (the gateway's ARP answer)."""

from __future__ import annotations

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile.base import IP, REG_DOMAIN, Owner, OwnerKind, OwnerTag, arp_reply_flow, match
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import Ct, Flow, Goto
from nuage_ryu.vrs.view import Domain, HostView, Subnet
from nuage_ryu.vrs.view_update import ViewDelta, view_index


def default_action_cookie(domain_id: str) -> int:
    """The cookie of a domain's default-action flows: what its counters are read by."""
    return cookie_for(CookieKind.ACL_DEFAULT, domain_id)


def compile_domain(view: HostView, domain: Domain) -> list[Flow]:
    """Conntrack in the domain's zone and its default policy action.

    Tunnel classification is per remote vport (``compile.vport``): a packet from the overlay is accepted
    only with the source address of a vport living on the host it came from.
    """
    if domain.id not in view.present_domains():
        return []
    c = cookie_for(CookieKind.DOMAIN, domain.id)
    in_domain = {REG_DOMAIN: domain.vni}
    flows = [
        Flow(P.INGRESS_CT.number, P.PRIO_CT_SEND, match(eth_type=IP, **in_domain),
             (Ct(zone=domain.ct_zone, table=P.INGRESS_CT_STATE.number),), c),
        Flow(P.EGRESS_CT.number, P.PRIO_CT_SEND, match(eth_type=IP, **in_domain),
             (Ct(zone=domain.ct_zone, table=P.EGRESS_CT_STATE.number),), c),
    ]
    d = default_action_cookie(domain.id)
    allow = domain.default_action == "allow"
    # A default allow is stateful: it commits the connection so that its replies come
    # back as +est (conntrack marks a reply of an uncommitted connection +inv).
    # OVS accepts ct() only with an IP match (only IP reaches the policy tables anyway).
    commit = (Ct(zone=domain.ct_zone, commit=True),)
    deny = (Goto(P.POLICY_DROP.number),)  # dropped there, counted per vport
    flows += [
        Flow(P.INGRESS_POLICY.number, P.PRIO_DEFAULT_ACTION, match(eth_type=IP, **in_domain),
             (*commit, Goto(P.L3_LOOKUP.number)) if allow else deny, d),
        Flow(P.EGRESS_POLICY.number, P.PRIO_DEFAULT_ACTION, match(eth_type=IP, **in_domain),
             (*commit, Goto(P.OUTPUT.number)) if allow else deny, d),
    ]
    return flows


def compile_subnet(view: HostView, subnet: Subnet) -> list[Flow]:
    """The subnet gateway answers ARP with the domain's virtual router MAC."""
    domain = view.domains.get(subnet.domain_id)
    if domain is None or domain.id not in view.present_domains():
        return []
    return [arp_reply_flow(domain.vni, subnet.gateway, domain.router_mac, subnet.cidr,
                           cookie_for(CookieKind.SUBNET, subnet.id))]


def _domain_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    return {(OwnerTag.DOMAIN, d.id): (d, d.id in present) for d in view.domains.values()}


def _domains_affected(old: HostView, new: HostView, delta: ViewDelta) -> list[Owner]:
    return [(OwnerTag.DOMAIN, d) for d in delta.domains]


def _domain_inputs_of(view: HostView, present: frozenset[str], owners) -> dict[Owner, object]:
    return {o: (d, d.id in present) for o in owners if (d := view.domains.get(o[1])) is not None}


def _subnet_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    return {(OwnerTag.SUBNET, s.id): (s, view.domains.get(s.domain_id), s.domain_id in present)
            for s in view.subnets.values()}


def _subnets_affected(old: HostView, new: HostView, delta: ViewDelta) -> set[Owner]:
    out = {(OwnerTag.SUBNET, s) for s in delta.subnets}
    by_domain = view_index(new).subnets_by_domain
    for d in delta.domains:
        out.update((OwnerTag.SUBNET, s) for s in by_domain.get(d, ()))
    return out


def _subnet_inputs_of(view: HostView, present: frozenset[str], owners) -> dict[Owner, object]:
    return {o: (s, view.domains.get(s.domain_id), s.domain_id in present)
            for o in owners if (s := view.subnets.get(o[1])) is not None}


DOMAIN_OWNERS = OwnerKind((OwnerTag.DOMAIN,), _domain_inputs,
                          lambda view, owner: compile_domain(view, view.domains[owner[1]]),
                          _domains_affected, _domain_inputs_of)
SUBNET_OWNERS = OwnerKind((OwnerTag.SUBNET,), _subnet_inputs,
                          lambda view, owner: compile_subnet(view, view.subnets[owner[1]]),
                          _subnets_affected, _subnet_inputs_of)
