"""Shadowed ACL rules: rules that can never match because an earlier rule takes all their traffic.

Pure: a ``DirectoryState`` in, warnings out. The first matching rule of a domain decides
(lower priority number first), so a rule R never decides anything when an earlier rule E
of the same domain matches every packet R could match: E's source ⊇ R's source, E's
destination ⊇ R's destination and E's protocol/ports ⊇ R's.

"Covers" is decided conservatively, from facts that cannot change while both rules exist
(so a warning is never wrong, but some shadowed rules may go unreported):

* ``any`` covers every endpoint; an endpoint covers itself (same policy group/zone/subnet id,
  same CIDR);
* subnets and CIDRs are IP prefixes (that is how the agents match them, docs/policy.md):
  containment of the prefixes decides (a subnet's CIDR is immutable);
* a zone covers its own subnets (a subnet never moves to another zone);
* policy-group membership changes at any time, so a group is covered only by ``any`` or by
  itself, and covers only itself; likewise a zone covers no CIDR and is covered by no CIDR.
* protocol ``any`` covers every protocol; tcp/udp without ports cover any port range of the
  same protocol, a port range covers the ranges inside it; icmp without a type covers every
  icmp rule, a type without a code covers that type with any code.

The warnings never block a write; the API returns them with the rule (docs/api.md).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from nuage_ryu.directory.model import ACL, DirectoryState, Endpoint

SHADOWED = "shadowed"


@lru_cache(maxsize=4096)
def _net(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr)


def _prefix(state: DirectoryState, ep: Endpoint) -> ipaddress.IPv4Network | None:
    """The IP prefix an endpoint stands for, when it is one (cidr, subnet); else None."""
    if ep.type == "cidr":
        return _net(ep.cidr)
    if ep.type == "subnet":
        subnet = state.subnets.get(ep.id)
        return _net(subnet.cidr) if subnet is not None else None
    return None


def endpoint_covers(state: DirectoryState, outer: Endpoint, inner: Endpoint) -> bool:
    """True when every address ``inner`` can match is matched by ``outer`` (conservative)."""
    if outer.type == "any":
        return True
    if inner.type == "any":
        return False
    if outer == inner:
        return True
    if outer.type == "zone" and inner.type == "subnet":
        subnet = state.subnets.get(inner.id)
        return subnet is not None and subnet.zone == outer.id
    outer_net, inner_net = _prefix(state, outer), _prefix(state, inner)
    if outer_net is None or inner_net is None:
        return False
    return inner_net.subnet_of(outer_net)


@lru_cache(maxsize=4096)
def _port_range(ports: str) -> tuple[int, int]:
    lo, _, hi = ports.partition("-")
    return int(lo), int(hi or lo)


def service_covers(outer: ACL, inner: ACL) -> bool:
    """True when ``outer``'s protocol/ports/icmp type and code match all that ``inner``'s do."""
    if outer.protocol == "any":
        return True
    if outer.protocol != inner.protocol:
        return False
    if outer.protocol in ("tcp", "udp"):
        if outer.dst_ports is None:
            return True
        if inner.dst_ports is None:
            return False
        (olo, ohi), (ilo, ihi) = _port_range(outer.dst_ports), _port_range(inner.dst_ports)
        return olo <= ilo and ihi <= ohi
    if outer.protocol == "icmp":
        if outer.icmp_type is None:
            return True
        if inner.icmp_type != outer.icmp_type:
            return False
        return outer.icmp_code is None or inner.icmp_code == outer.icmp_code
    return True  # another IP protocol number: nothing finer to match


def covers(state: DirectoryState, earlier: ACL, later: ACL) -> bool:
    """True when ``earlier`` matches all traffic ``later`` could match (same domain, any priorities)."""
    # Cheapest test first: most pairs of rules already differ in their service.
    return (earlier.domain == later.domain
            and service_covers(earlier, later)
            and endpoint_covers(state, earlier.source, later.source)
            and endpoint_covers(state, earlier.destination, later.destination))


def _warning(shadowed: ACL, by: ACL) -> dict:
    verdict = ("with the same action (the rule is redundant)" if by.action == shadowed.action
               else f"and decides {by.action} instead of {shadowed.action}")
    return {
        "code": SHADOWED,
        "message": (f"rule {shadowed.id} (priority {shadowed.priority}) can never match: rule {by.id} "
                    f"(priority {by.priority}) comes first, matches all of its traffic {verdict}"),
        "rule": shadowed.id,
        "by": by.id,
    }


def shadow_warnings(state: DirectoryState, rule_id: str) -> list[dict]:
    """Warnings about the rule ``rule_id`` as it is in ``state``.

    First the earliest rule that shadows it (one is enough to say it never matches), then
    every later rule of the domain that it shadows itself. Empty when the rule is unknown.
    """
    rule = state.acls.get(rule_id)
    if rule is None:
        return []
    shadowed_by, shadows = None, []
    for other in state.acls_of(rule.domain):  # in priority order
        if other.priority < rule.priority:
            if shadowed_by is None and covers(state, other, rule):
                shadowed_by = other
        elif other.priority > rule.priority and covers(state, rule, other):
            shadows.append(other)
    out = [_warning(rule, shadowed_by)] if shadowed_by is not None else []
    return out + [_warning(other, rule) for other in shadows]
