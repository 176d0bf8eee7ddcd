"""Pure flow compiler: HostView -> the flows one bridge should have.

Flows are grouped by *owner* (the static skeleton, a domain, a subnet, a vport,
an ACL rule): each owner's flows depend only on a small part of the view, its
*inputs*. ``FlowCompiler`` keeps every owner's inputs and flows, and on
``update(new_view)`` recompiles only the owners whose inputs changed, returning
the ``FlowDiff`` to send. Every flow carries its owner's cookie.

Only domains *present* on the host (at least one vport here) produce flows, so
a host's flow count follows the vports of its own domains, not the whole system.

Two owners may produce flows with the same OpenFlow identity only when both are
pure ``conjunction`` flows (policy clause flows shared by several rules); such
flows are merged into one flow carrying all their conjunction actions, because
OVS would otherwise keep just the last one added and silently break the others.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.cookies import CANARY_COOKIE, STATIC_COOKIE, CookieKind, cookie_for
from nuage_ryu.vrs.flow import (
    OFPP_IN_PORT,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Flow,
    FlowDiff,
    Goto,
    MatchField,
    Move,
    Output,
    PopVlan,
    PushVlan,
    SetField,
)
from nuage_ryu.vrs.view import Domain, HostView, Subnet, VPort

Owner = tuple[str, ...]  # ("static",), ("domain", id), ("subnet", id), ("vport", id), ("acl", id)...

IP = P.ETH_TYPE_IPV4
REG_DOMAIN = P.REG_DOMAIN.field
REG_SRC_PORT = P.REG_SRC_PORT.field
REG_DST_PORT = P.REG_DST_PORT.field
REG_DST_HOST = P.REG_DST_HOST.field


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
    return int(ipaddress.IPv4Address(ip))


# ---- static skeleton ------------------------------------------------------------

_TABLES_WITH_MISS_DROP = (
    P.CLASSIFY, P.ARP_RESPONDER, P.INGRESS_CT, P.L3_LOOKUP, P.OVERLAY_LOOKUP, P.EGRESS_CT, P.OUTPUT,
)

# ct_state matches: (value, mask). "+trk+est" must also be "-inv" to pass.
CT_ESTABLISHED = (P.CT_TRK | P.CT_EST, P.CT_TRK | P.CT_EST | P.CT_INV)
CT_RELATED = (P.CT_TRK | P.CT_REL, P.CT_TRK | P.CT_REL | P.CT_INV)


def compile_static(view: HostView) -> list[Flow]:
    """The skeleton every bridge has: table-miss drops, conntrack verdicts, canary, tunnel output."""
    c = STATIC_COOKIE
    flows = [Flow(t.number, P.PRIO_TABLE_MISS, (), (), c) for t in _TABLES_WITH_MISS_DROP]
    for ct_table, accepted, rules in (
        (P.INGRESS_CT_STATE, P.L3_LOOKUP, P.INGRESS_POLICY),
        (P.EGRESS_CT_STATE, P.OUTPUT, P.EGRESS_POLICY),
    ):
        # Continuations and replies of a connection a stateful allow committed pass without
        # re-evaluating the rules (a rule change never cuts a connection it still allows).
        # Everything else - +new, and +inv too - goes to the rules: OVS conntrack marks every
        # packet of an uncommitted TCP/ICMP exchange after the first one +inv (a SYN-ACK or an
        # echo reply it never saw the start of), and those are exactly what stateless rules
        # must be able to allow. ct(commit) never commits a +inv packet.
        flows += [
            Flow(ct_table.number, P.PRIO_CT_ESTABLISHED, match(ct_state=CT_ESTABLISHED),
                 (Goto(accepted.number),), c),
            Flow(ct_table.number, P.PRIO_CT_ESTABLISHED, match(ct_state=CT_RELATED),
                 (Goto(accepted.number),), c),
            Flow(ct_table.number, P.PRIO_CT_NEW, (), (Goto(rules.number),), c),
        ]
    flows.append(Flow(P.CANARY.number, P.PRIO_CANARY, (), (), CANARY_COOKIE))
    tun = view.tunnel_port_ofport
    if tun is not None:
        # One flow for every remote destination: L3_LOOKUP left the VNI in REG_DOMAIN and the
        # remote host's tunnel IP in REG_DST_HOST.
        flows.append(Flow(P.OUTPUT.number, P.PRIO_OUTPUT, match(**{REG_DST_PORT: tun}), (
            Move(REG_DOMAIN, "tunnel_id", P.VNI_BITS),
            Move(REG_DST_HOST, "tun_ipv4_dst", 32),
            Output(tun),
        ), c))
    return flows


# ---- per domain -------------------------------------------------------------------


def domain_peer_tunnel_ips(view: HostView, domain: Domain) -> tuple[str, ...]:
    """Tunnel IPs of the other hosts that have vports of ``domain`` (sorted)."""
    return view.peer_tunnel_ips().get(domain.id, ())


def compile_domain(view: HostView, domain: Domain) -> list[Flow]:
    """Tunnel classification by VNI, conntrack in the domain's zone, and its default policy action."""
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
    if view.tunnel_port_ofport is not None:
        # A VNI is accepted only from the hosts that have vports of the domain: another tenant's host
        # (or anything else on the underlay) cannot inject into it by guessing the VNI.
        for tunnel_ip in domain_peer_tunnel_ips(view, domain):
            flows.append(Flow(P.CLASSIFY.number, P.PRIO_TUNNEL,
                              match(in_port=view.tunnel_port_ofport, tunnel_id=domain.vni,
                                    tun_ipv4_src=tunnel_ip),
                              (SetField(REG_DOMAIN, domain.vni), Goto(P.OVERLAY_LOOKUP.number)), c))
    d = cookie_for(CookieKind.ACL_DEFAULT, domain.id)
    allow = domain.default_action == "allow"
    # A default allow is stateful: it commits the connection so that its replies come
    # back as +est (conntrack marks a reply of an uncommitted connection +inv).
    # OVS accepts ct() only with an IP match (only IP reaches the policy tables anyway).
    commit = (Ct(zone=domain.ct_zone, commit=True),)
    flows += [
        Flow(P.INGRESS_POLICY.number, P.PRIO_DEFAULT_ACTION, match(eth_type=IP, **in_domain),
             (*commit, Goto(P.L3_LOOKUP.number)) if allow else (), d),
        Flow(P.EGRESS_POLICY.number, P.PRIO_DEFAULT_ACTION, match(eth_type=IP, **in_domain),
             (*commit, Goto(P.OUTPUT.number)) if allow else (), d),
    ]
    return flows


# ---- ARP responder -----------------------------------------------------------------


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


def compile_subnet(view: HostView, subnet: Subnet) -> list[Flow]:
    """The subnet gateway answers ARP with the domain's virtual router MAC."""
    domain = view.domains.get(subnet.domain_id)
    if domain is None or domain.id not in view.present_domains():
        return []
    return [arp_reply_flow(domain.vni, subnet.gateway, domain.router_mac, subnet.cidr,
                           cookie_for(CookieKind.SUBNET, subnet.id))]


# ---- per vport ---------------------------------------------------------------------


def vport_cookie(view: HostView, vport: VPort) -> int:
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


# ---- owners, inputs, merge --------------------------------------------------------------


@dataclass(frozen=True)
class OwnerKind:
    """How to enumerate one kind of owner in a view and compile one of them.

    ``inputs(view, present)`` returns {owner: fingerprint}; an owner is recompiled when its
    fingerprint changes. The fingerprint must contain everything ``compile`` reads.
    """

    name: str
    inputs: Callable[[HostView, frozenset[str]], dict[Owner, object]]
    compile: Callable[[HostView, Owner], list[Flow]]


def _static_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    return {("static",): view.tunnel_port_ofport}


def _domain_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    peers = view.peer_tunnel_ips()
    return {("domain", d.id): (d, d.id in present, view.tunnel_port_ofport, peers.get(d.id, ()))
            for d in view.domains.values()}


def _subnet_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    return {("subnet", s.id): (s, view.domains.get(s.domain_id), s.domain_id in present)
            for s in view.subnets.values()}


def _vport_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    out: dict[Owner, object] = {}
    for v in view.vports.values():
        if v.domain_id not in present:
            out[("vport", v.id)] = None
            continue
        local = v.host == view.host_name
        where = view.local_ports.get(v.id) if local else view.hosts.get(v.host)
        out[("vport", v.id)] = (v, view.domains.get(v.domain_id), view.subnets.get(v.subnet_id), local,
                                where, view.tunnel_port_ofport)
    return out


OWNER_KINDS: list[OwnerKind] = [
    OwnerKind("static", _static_inputs, lambda view, owner: compile_static(view)),
    OwnerKind("domain", _domain_inputs, lambda view, owner: compile_domain(view, view.domains[owner[1]])),
    OwnerKind("subnet", _subnet_inputs, lambda view, owner: compile_subnet(view, view.subnets[owner[1]])),
    OwnerKind("vport", _vport_inputs, lambda view, owner: compile_vport(view, view.vports[owner[1]])),
]


def register_owner_kind(kind: OwnerKind) -> None:
    """Add an owner kind (the policy module registers ACL rules this way)."""
    if all(k.name != kind.name for k in OWNER_KINDS):
        OWNER_KINDS.append(kind)


def _owner_kinds() -> list[OwnerKind]:
    # Import for its side effect: the policy compiler registers its owner kind.
    from nuage_ryu.vrs import policy  # noqa: F401

    return OWNER_KINDS


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


class FlowCompiler:
    """Incremental compiler for one bridge: keeps each owner's inputs and flows between updates."""

    def __init__(self) -> None:
        self.view: HostView | None = None
        self._inputs: dict[Owner, object] = {}
        self._owned: dict[Owner, list[Flow]] = {}
        self._by_key: dict[tuple, dict[Owner, Flow]] = {}
        self.flows: dict[tuple, Flow] = {}  # the merged desired flows, by OpenFlow identity
        self.conflicts: list[tuple[tuple, list[Owner]]] = []  # key clashes found by the last update
        self.recompiled: list[Owner] = []  # owners the last update recompiled (for tests and logs)

    def update(self, view: HostView) -> FlowDiff:
        """Switch to ``view``; returns what must change in the bridge (only changed flows)."""
        present = view.present_domains()
        inputs: dict[Owner, object] = {}
        compilers: dict[str, OwnerKind] = {}  # owner[0] -> the kind that compiles it
        for kind in _owner_kinds():
            fps = kind.inputs(view, present)
            inputs.update(fps)
            compilers.update(dict.fromkeys({o[0] for o in fps}, kind))
        old = self._inputs
        missing = object()
        changed = [o for o, fp in inputs.items() if old.get(o, missing) != fp]
        gone = [o for o in self._inputs if o not in inputs]
        touched: set[tuple] = set()
        own_conflicts: list[tuple[tuple, list[Owner]]] = []
        for owner in gone:
            touched |= self._drop(owner)
        for owner in changed:
            touched |= self._drop(owner)
            new = compilers[owner[0]].compile(view, owner)
            self._owned[owner] = new
            for flow in new:
                holders = self._by_key.setdefault(flow.key, {})
                if owner in holders:
                    # Two of its own flows OVS takes for one (a rule's 0.0.0.0/0 clause and its
                    # catch-all clause): both count, as two owners' flows would.
                    try:
                        flow = merge_same_key((holders[owner], flow))
                    except FlowConflict as clash:
                        own_conflicts.append((flow.key, [owner]))
                        flow = clash.args[0]
                holders[owner] = flow
                touched.add(flow.key)
        self._inputs = inputs
        self.view = view
        self.recompiled = changed
        self.conflicts = own_conflicts
        diff = FlowDiff()
        for key in touched:
            before = self.flows.get(key)
            contributors = self._by_key.get(key)
            if not contributors:
                if before is not None:
                    diff.delete.append(before)
                    del self.flows[key]
                continue
            after = self._merge(key, contributors)
            if before is None or before.actions != after.actions or before.cookie != after.cookie:
                diff.add.append(after)
            self.flows[key] = after
        # Stable, cheap order for logs and bundles (comparing whole matches is slow at 100k flows).
        diff.add.sort(key=lambda f: (f.table, -f.priority))
        diff.delete.sort(key=lambda f: (f.table, -f.priority))
        return diff

    def _drop(self, owner: Owner) -> set[tuple]:
        keys = set()
        for flow in self._owned.pop(owner, ()):
            holders = self._by_key.get(flow.key)
            if holders is not None:
                holders.pop(owner, None)
                if not holders:
                    del self._by_key[flow.key]
            keys.add(flow.key)
        return keys

    def _merge(self, key: tuple, contributors: dict[Owner, Flow]) -> Flow:
        ordered = [contributors[o] for o in sorted(contributors)]
        try:
            return merge_same_key(ordered)
        except FlowConflict as clash:
            self.conflicts.append((key, sorted(contributors)))
            return clash.args[0]

    def owned_by(self, owner: Owner) -> list[Flow]:
        """The flows an owner produced in the last update (before merging)."""
        return list(self._owned.get(owner, ()))

    def desired(self) -> list[Flow]:
        """All desired flows, merged, in a stable order."""
        return sorted(self.flows.values(), key=_stable_order)


def _stable_order(flow: Flow) -> tuple:
    # Not flow.key itself: MatchFields of one field can mix an exact value (mask None) and a masked
    # one, which do not compare.
    return (flow.table, -flow.priority, tuple((m.name, str(m.value), str(m.mask)) for m in flow.match))


def compile_host(view: HostView) -> list[Flow]:
    """All flows for one bridge (non-incremental convenience over ``FlowCompiler``)."""
    fc = FlowCompiler()
    fc.update(view)
    return fc.desired()
