"""What every owner kind's compiler shares: the match builder, address helpers, the owner vocabulary
and the merge of flows that have one OpenFlow identity.

An *owner* is the object a group of flows belongs to: ``(OwnerTag.VPORT, vport_id)`` and so on. Each
``OwnerTag`` names the cookie kinds (``cookies.CookieKind``) its flows may carry, so the owner
vocabulary and the on-switch cookie vocabulary are one: a unit test holds compiled flows to it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.cookies import CookieKind
from nuage_ryu.vrs.flow import OFPP_IN_PORT, Conjunction, Flow, MatchField, Move, Output, SetField
from nuage_ryu.vrs.view import HostView
from nuage_ryu.vrs.view_update import ViewDelta

IP = P.ETH_TYPE_IPV4
REG_DOMAIN = P.REG_DOMAIN.field
REG_SRC_PORT = P.REG_SRC_PORT.field
REG_DST_PORT = P.REG_DST_PORT.field
REG_DST_HOST = P.REG_DST_HOST.field


# ---- owners ---------------------------------------------------------------------------


class OwnerTag(StrEnum):
    """The kind of object that owns flows: the first element of an ``Owner``.

    A member compares and hashes as its string (``OwnerTag.VPORT == "vport"``); ``cookie_kinds`` are
    the cookie kinds the flows of such an owner carry.
    """

    cookie_kinds: frozenset[CookieKind]

    STATIC = "static", (CookieKind.STATIC, CookieKind.CANARY)
    DOMAIN = "domain", (CookieKind.DOMAIN, CookieKind.ACL_DEFAULT)
    SUBNET = "subnet", (CookieKind.SUBNET,)
    VPORT = "vport", (CookieKind.VPORT, CookieKind.REMOTE_VPORT)
    ACL = "acl", (CookieKind.ACL_RULE, CookieKind.POLICY_MEMBER)  # a rule's own flows
    ACL_MEMBER = "acl-member", (CookieKind.POLICY_MEMBER,)  # one group member's clause flows of a rule
    # External connectivity (docs/external.md)
    EXTERNAL_STATIC = "external-static", (CookieKind.EXTERNAL,)  # the EXT_* tables' skeleton
    EXTERNAL = "external", (CookieKind.EXTERNAL,)  # a domain's exits and NAT zone
    EXTERNAL_VPORT = "external-vport", (CookieKind.EXTERNAL, CookieKind.FLOATING_IP, CookieKind.PORT_MAPPING)

    def __new__(cls, value: str, cookie_kinds: tuple[CookieKind, ...]) -> OwnerTag:
        member = str.__new__(cls, value)
        member._value_ = value
        member.cookie_kinds = frozenset(cookie_kinds)
        return member


# Cookie kinds no owner of br-int writes: REMOTE_HOST is reserved; UPLINK is br-phy's steering
# (``compile.uplink``). Every other kind belongs to at least one OwnerTag.
UNOWNED_COOKIE_KINDS = frozenset({CookieKind.REMOTE_HOST, CookieKind.UPLINK})

# (OwnerTag.STATIC,), (OwnerTag.DOMAIN, id), (OwnerTag.SUBNET, id), (OwnerTag.VPORT, id),
# (OwnerTag.ACL, rule id), (OwnerTag.ACL_MEMBER, rule id, vport id)
Owner = tuple[str, ...]


@dataclass(frozen=True)
class OwnerKind:
    """How to enumerate one kind of owner in a view and compile one of them.

    ``inputs(view, present)`` returns {owner: fingerprint} for owners tagged with one of ``tags``; an
    owner is recompiled when its fingerprint changes. The fingerprint must contain everything
    ``compile`` reads.

    Per change (``FlowCompiler.update`` with a ``ViewDelta``): ``affected(old, new, delta)`` names
    every owner whose fingerprint may differ between the two views (a superset: new, gone and
    changed owners), and ``inputs_of(view, present, owners)`` gives the fingerprints of those of
    ``owners`` that exist in ``view`` (the same values ``inputs`` gives). A kind without them is
    fingerprinted whole on every change (fine for kinds with a few owners).
    """

    tags: tuple[OwnerTag, ...]
    inputs: Callable[[HostView, frozenset[str]], dict[Owner, object]]
    compile: Callable[[HostView, Owner], list[Flow]]
    affected: Callable[[HostView, HostView, ViewDelta], Iterable[Owner]] | None = None
    inputs_of: Callable[[HostView, frozenset[str], Iterable[Owner]], dict[Owner, object]] | None = None


# ---- matches and addresses ------------------------------------------------------------


def match(**fields) -> tuple[MatchField, ...]:
    """``flow.match`` with the same canonical result, faster: a match never repeats a field name, so
    sorting by name (C string compare) orders the MatchFields exactly as sorting them would, and the
    MatchFields themselves are interned (the same reg6=VNI or eth_type appears in thousands of flows).
    The compiler builds ~10^5 matches per host; this was its hottest spot.

    Matches are OVS's identity: a field with an all-zero mask matches everything and is left out
    (OVS stores ``ipv4_src=0.0.0.0/0`` as no ``ipv4_src``), so two owners' flows that OVS takes for
    one flow get one key here and are merged, instead of the second overwriting the first."""
    out = tuple([_field(name, value[0], value[1]) if isinstance(value, tuple) else _field(name, value, None)
                 for name, value in sorted(fields.items())])
    for f in out:
        if f is None:  # rare (a /0): filter only then
            return tuple(f for f in out if f is not None)
    return out


_ZERO_MASKS = (0, "0.0.0.0", "00:00:00:00:00:00")


@lru_cache(maxsize=1 << 18)
def _field(name: str, value, mask) -> MatchField | None:
    if mask is None:
        return MatchField(name, value, None)
    if mask in _ZERO_MASKS:
        return None  # a wildcard: not a match field at all
    if mask == "255.255.255.255":
        return MatchField(name, value, None)
    if isinstance(mask, str) and isinstance(value, str) and "." in mask:
        value = str(ipaddress.IPv4Address(ip_to_int(value) & ip_to_int(mask)))  # OVS keeps value & mask
    return MatchField(name, value, mask)


@lru_cache(maxsize=65536)  # a few subnets/CIDRs, compiled once per vport: memoise the parsing
def cidr_match(cidr: str) -> str | tuple[str, str]:
    """An IPv4 match value for a CIDR: exact for a /32, (network, netmask) otherwise."""
    net = ipaddress.IPv4Network(cidr, strict=False)
    if net.prefixlen == 32:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


@lru_cache(maxsize=65536)
def ip_to_int(ip: str) -> int:
    """A dotted IPv4 address as the integer a 32-bit register holds."""
    return int(ipaddress.IPv4Address(ip))


# ---- flows shared by several owner kinds ---------------------------------------------------


def arp_reply_flow(vni: int, ip: str, mac: str, subnet_cidr: str, cookie: int) -> Flow:
    """Turn an ARP request for ``ip`` into the reply "ip is-at mac" and send it back where it came from.

    Only asked from inside ``subnet_cidr`` (the target's subnet), as on a real link: an address of
    another subnet is reached through the gateway, never by its MAC.
    """
    return Flow(P.ARP_RESPONDER.number, P.PRIO_ARP_REPLY,
                match(eth_type=P.ETH_TYPE_ARP, arp_op=P.ARP_REQUEST, arp_tpa=ip, arp_spa=cidr_match(subnet_cidr),
                      **{REG_DOMAIN: vni}), (
                    Move("eth_src", "eth_dst", 48),
                    SetField("eth_src", mac),
                    SetField("arp_op", P.ARP_REPLY),
                    Move("arp_sha", "arp_tha", 48),
                    Move("arp_spa", "arp_tpa", 32),
                    SetField("arp_sha", mac),
                    SetField("arp_spa", ip),
                    Output(OFPP_IN_PORT),
                ), cookie)


# ---- merge ----------------------------------------------------------------------------------


def _is_conjunctive(flow: Flow) -> bool:
    return bool(flow.actions) and all(isinstance(a, Conjunction) for a in flow.actions)


class FlowConflict(Exception):
    """Two owners want different, non-mergeable flows with the same OpenFlow identity."""


def merge_same_key(flows: Iterable[Flow]) -> Flow:
    """Combine flows that share one OpenFlow identity.

    Conjunctive flows (only ``conjunction`` actions) merge into one flow with the union of their
    conjunction actions, as OVS requires. Identical flows collapse. Anything else is a conflict:
    the compiler returns the lowest-cookie flow (deterministic) and ``FlowCompiler`` records it.
    """
    flows = list(flows)
    first = flows[0]
    if len(flows) == 1:
        return first
    if all(_is_conjunctive(f) for f in flows):
        actions = sorted({a for f in flows for a in f.actions}, key=lambda a: (a.conj_id, a.clause))
        return Flow(first.table, first.priority, first.match, tuple(actions), min(f.cookie for f in flows),
                    first.idle_timeout, first.hard_timeout)
    distinct = {(f.actions, f.cookie) for f in flows}
    if len(distinct) == 1:
        return first
    raise FlowConflict(sorted(flows, key=lambda f: f.cookie)[0])
