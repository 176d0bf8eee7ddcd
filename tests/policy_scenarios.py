"""Random policy scenarios for the differential tests (hypothesis strategies; no tests here).

A scenario is a small system - up to two tenants on three hosts, each with zones, subnets (the
second tenant may reuse the first one's CIDRs), vports, policy groups and rules - plus packets
between vports of one domain. ``Scenario.views()`` gives each host's ``HostView``; ``run_case``
sends one packet (and, when the policy lets it through, its reply and a continuation) through a
set of simulated bridges and says what the reference evaluator expected at each step.

The values are drawn where bugs hide: ``0.0.0.0/0`` and ``/32`` CIDRs, prefixes of every length
around vport addresses, zones without subnets, port ranges and the ports on both sides of their
ends, protocol numbers, ICMP types with and without codes, stateless rules with and without a
reverse rule, and memberships in a group of the other tenant.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from hypothesis import strategies as st

from nuage_ryu.vrs import reference as R
from nuage_ryu.vrs.simulator import Overlay
from nuage_ryu.vrs.view import AclRule, Domain, Endpoint, Host, HostView, LocalPort, PolicyGroup, Subnet, VPort

TUN = 100
GATEWAY_OFPORT = 13  # the port every host's VLAN-tagged bare-metal vports share
SYN, ACK = 0x02, 0x10
HOSTS = (Host("h1", "192.168.0.1"), Host("h2", "192.168.0.2"), Host("h3", "192.168.0.3"))
HOST_NAMES = tuple(h.name for h in HOSTS)
DOMAINS = (Domain("D1", 2001, "02:d1:00:00:00:01", "deny", 1), Domain("D2", 2002, "02:d2:00:00:00:01", "deny", 2))
SUBNET_POOL = ("10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/25", "10.1.0.0/24", "172.16.5.0/28")
HOST_OFFSETS = range(2, 14)  # vport addresses: network + offset (fits a /28, never the gateway .1)
OTHER_CIDRS = ("0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/16", "192.0.2.0/24", "10.0.0.0/23", "0.0.0.0/1")
PROTOCOLS = ("any", "tcp", "tcp", "udp", "icmp", "47", "132")
NAMED_PORTS = (1, 22, 53, 80, 443, 1023, 1024, 8080, 40000, 65535)
PACKET_PROTOCOLS = (R.TCP, R.TCP, R.UDP, R.ICMP, 47, 132)
ICMP_TYPES = (8, 8, 0, 13, 3)


@dataclass(frozen=True)
class Scenario:
    """One drawn system: objects of both tenants, rules, and the vports' ofports on their hosts."""

    domains: tuple[Domain, ...]
    subnets: tuple[Subnet, ...]
    vports: tuple[VPort, ...]
    groups: tuple[PolicyGroup, ...]
    rules: tuple[AclRule, ...]
    ofports: dict[str, int] = field(default_factory=dict)  # vport id -> ofport (unique on every bridge)

    def view(self, host: str) -> HostView:
        local = [LocalPort(v.id, self.ofports[v.id]) for v in self.vports if v.host == host]
        return HostView.of(host, TUN, self.domains, self.subnets, self.vports, HOSTS, local, self.groups,
                           self.rules)

    def views(self) -> dict[str, HostView]:
        return {h: self.view(h) for h in HOST_NAMES}

    def policy(self, domain_id: str) -> R.DomainPolicy:
        domain = next(d for d in self.domains if d.id == domain_id)
        return R.DomainPolicy.build(domain, self.rules, self.subnets, self.vports,
                                    {g.id: g.domain_id for g in self.groups})

    def vport(self, vid: str) -> VPort:
        return next(v for v in self.vports if v.id == vid)

    def interesting_ports(self) -> list[int]:
        """Rule port-range ends and their neighbours, plus a few well-known ports."""
        out = set(NAMED_PORTS)
        for r in self.rules:
            if r.dst_ports:
                lo, _, hi = r.dst_ports.partition("-")
                for p in (int(lo) - 1, int(lo), int(hi or lo), int(hi or lo) + 1):
                    if 1 <= p <= 65535:
                        out.add(p)
        return sorted(out)


def _address(cidr: str, offset: int) -> str:
    return str(ipaddress.IPv4Network(cidr).network_address + offset)


@st.composite
def topologies(draw) -> Scenario:
    """Domains, subnets, zones, vports and groups (no rules yet)."""
    n_domains = draw(st.integers(1, 2))
    defaults = draw(st.lists(st.sampled_from(("allow", "deny")), min_size=n_domains, max_size=n_domains))
    domains = tuple(dataclasses.replace(d, default_action=a) for d, a in zip(DOMAINS, defaults, strict=False))
    subnets, vports, groups = [], [], []
    for di, d in enumerate(domains):
        cidrs = draw(st.lists(st.sampled_from(SUBNET_POOL), min_size=1, max_size=3, unique=True))
        n_zones = draw(st.integers(1, 3))  # a zone may end up without subnets
        for si, cidr in enumerate(cidrs):
            zone = f"{d.id}z{draw(st.integers(1, n_zones))}"
            subnets.append(Subnet(f"{d.id}s{si + 1}", d.id, cidr, _address(cidr, 1), zone))
        groups += [PolicyGroup(f"{d.id}g{k}", d.id) for k in (1, 2, 3)]
        mine = [s for s in subnets if s.domain_id == d.id]
        n_vports = draw(st.integers(2, 6))
        used = set()
        for k in range(n_vports):
            subnet = draw(st.sampled_from(mine))
            offset = draw(st.sampled_from(HOST_OFFSETS).filter(lambda o, s=subnet, u=used: (s.id, o) not in u))
            used.add((subnet.id, offset))
            member_of = draw(st.sets(st.sampled_from([f"{d.id}g{g}" for g in (1, 2, 3)]), max_size=2))
            if draw(st.integers(0, 9)) == 0:  # a membership the directory would refuse: must not count
                member_of = member_of | {f"{DOMAINS[1 - di].id}g1"}
            # Now and then a bare-metal server behind its host's shared gateway port, told apart by VLAN.
            vlan = 100 + len(vports) if draw(st.integers(0, 5)) == 0 else None
            vports.append(VPort(f"{d.id}v{k + 1}", d.id, subnet.id, f"02:00:00:00:{di + 1:02x}:{k + 1:02x}",
                                _address(subnet.cidr, offset), draw(st.sampled_from(HOST_NAMES)),
                                "host" if vlan else "container", frozenset(member_of), vlan))
    ofports = {v.id: GATEWAY_OFPORT if v.vlan else i + 1 for i, v in enumerate(vports)}
    # Verdict records of the default action (docs/policy.md), drawn last.
    domains = tuple(dataclasses.replace(d, log_default=draw(st.booleans())) for d in domains)
    return Scenario(domains, tuple(subnets), tuple(vports), tuple(groups), (), ofports)


@st.composite
def endpoints(draw, sc: Scenario, domain_id: str) -> Endpoint:
    kind = draw(st.sampled_from(("any", "any", "policygroup", "zone", "subnet", "cidr", "cidr", "cidr")))
    if kind == "any":
        return Endpoint()
    if kind == "policygroup":
        return Endpoint("policygroup", draw(st.sampled_from([g.id for g in sc.groups if g.domain_id == domain_id])))
    if kind == "zone":
        return Endpoint("zone", f"{domain_id}z{draw(st.integers(1, 3))}")
    if kind == "subnet":
        return Endpoint("subnet", draw(st.sampled_from([s.id for s in sc.subnets if s.domain_id == domain_id])))
    mine = [v.ip for v in sc.vports if v.domain_id == domain_id]
    how = draw(st.sampled_from(("host", "prefix", "subnet", "other")))
    if how == "host":
        return Endpoint("cidr", cidr=f"{draw(st.sampled_from(mine))}/32")
    if how == "prefix":
        length = draw(st.integers(0, 32))
        net = ipaddress.IPv4Network(f"{draw(st.sampled_from(mine))}/{length}", strict=False)
        return Endpoint("cidr", cidr=str(net))
    if how == "subnet":
        return Endpoint("cidr", cidr=draw(st.sampled_from([s.cidr for s in sc.subnets if s.domain_id == domain_id])))
    return Endpoint("cidr", cidr=draw(st.sampled_from(OTHER_CIDRS)))


@st.composite
def rules_for(draw, sc: Scenario, domain_id: str, rule_id: str, priority: int) -> AclRule:
    """One rule as the directory would store it (the directory's validation rules hold)."""
    proto = draw(st.sampled_from(PROTOCOLS))
    ports = icmp_type = icmp_code = None
    if proto in ("tcp", "udp") and draw(st.booleans()):
        lo = draw(st.sampled_from(NAMED_PORTS) | st.integers(1, 65535))
        shape = draw(st.sampled_from(("one", "range", "range", "all", "high")))
        if shape == "one":
            ports = str(lo)
        elif shape == "range":
            hi = min(65535, lo + draw(st.integers(1, 3000)))
            ports = f"{lo}-{hi}"
        else:
            ports = "1-65535" if shape == "all" else "1024-65535"
    if proto == "icmp" and draw(st.booleans()):
        icmp_type = draw(st.sampled_from((0, 8, 13, 3)))
        if draw(st.booleans()):
            icmp_code = draw(st.sampled_from((0, 1)))
    rule = AclRule(rule_id, domain_id, priority, draw(endpoints(sc, domain_id)), draw(endpoints(sc, domain_id)),
                   proto, ports, icmp_type, icmp_code, draw(st.sampled_from(("allow", "allow", "deny"))),
                   draw(st.booleans()))
    # Logged rules and audit rules (enforce: false), about one in three and one in four.
    return dataclasses.replace(rule, log=draw(st.integers(0, 2)) == 0, enforce=draw(st.integers(0, 3)) != 0)


@st.composite
def scenarios(draw, max_rules: int = 7) -> Scenario:
    sc = draw(topologies())
    rules = []
    for d in sc.domains:
        n = draw(st.integers(1 if max_rules else 0, max_rules))
        prios = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n, unique=True))
        rules += [draw(rules_for(sc, d.id, f"{d.id}r{i + 1}", p)) for i, p in enumerate(prios)]
    return dataclasses.replace(sc, rules=tuple(rules))


@dataclass(frozen=True)
class Case:
    """One packet between two vports of a domain (ports/ICMP fields used per protocol)."""

    src: str
    dst: str
    protocol: int
    src_port: int
    dst_port: int
    icmp_type: int
    icmp_code: int


@st.composite
def cases(draw, sc: Scenario) -> Case:
    """A packet; half of them aimed at one rule (its endpoints and service), so that rules, and the
    order between overlapping ones, decide often rather than the default action."""
    if sc.rules and draw(st.booleans()):
        aimed = _aimed_case(draw, sc, draw(st.sampled_from(sc.rules)))
        if aimed is not None:
            return aimed
    domain = draw(st.sampled_from([d.id for d in sc.domains]))
    ids = [v.id for v in sc.vports if v.domain_id == domain]
    src, dst = draw(st.permutations(ids))[:2]
    ports = sc.interesting_ports()
    return Case(src, dst, draw(st.sampled_from(PACKET_PROTOCOLS)), draw(st.sampled_from(ports)),
                draw(st.sampled_from(ports)), draw(st.sampled_from(ICMP_TYPES)), draw(st.sampled_from((0, 0, 1))))


def _aimed_case(draw, sc: Scenario, rule: AclRule) -> Case | None:
    policy = sc.policy(rule.domain_id)
    mine = [v for v in sc.vports if v.domain_id == rule.domain_id]
    srcs = [v.id for v in mine if R.endpoint_matches(policy, rule.source, v.ip)]
    if not srcs:
        return None
    src = draw(st.sampled_from(srcs))
    dsts = [v.id for v in mine if v.id != src and R.endpoint_matches(policy, rule.destination, v.ip)]
    if not dsts:
        return None
    number = R.protocol_number(rule.protocol)
    proto = draw(st.sampled_from(PACKET_PROTOCOLS)) if number is None else number
    ports = sc.interesting_ports()
    dport = draw(st.sampled_from(ports))
    if rule.dst_ports and draw(st.booleans()):
        lo, _, hi = rule.dst_ports.partition("-")
        dport = draw(st.integers(int(lo), int(hi or lo)))
    icmp_type = rule.icmp_type if rule.icmp_type is not None else draw(st.sampled_from(ICMP_TYPES))
    icmp_code = rule.icmp_code if rule.icmp_code is not None else draw(st.sampled_from((0, 0, 1)))
    return Case(src, draw(st.sampled_from(dsts)), proto, draw(st.sampled_from(ports)), dport, icmp_type, icmp_code)


# ---- running a case -------------------------------------------------------------------------------


def reference_packet(sc: Scenario, case: Case) -> R.Packet:
    src, dst = sc.vport(case.src), sc.vport(case.dst)
    if case.protocol in (R.TCP, R.UDP):
        return R.Packet(src.ip, dst.ip, case.protocol, case.src_port, case.dst_port)
    if case.protocol == R.ICMP:
        return R.Packet(src.ip, dst.ip, R.ICMP, icmp_type=case.icmp_type, icmp_code=case.icmp_code)
    return R.Packet(src.ip, dst.ip, case.protocol)


def wire_packet(sc: Scenario, sender: VPort, receiver: VPort, pkt: R.Packet, tcp_flags: int = SYN) -> dict:
    """The frame ``sender``'s stack sends: to the peer's MAC in its subnet, else to the router's."""
    router = next(d.router_mac for d in sc.domains if d.id == sender.domain_id)
    out = {"eth_src": sender.mac, "eth_dst": receiver.mac if sender.subnet_id == receiver.subnet_id else router,
           "eth_type": 0x0800, "ipv4_src": pkt.src_ip, "ipv4_dst": pkt.dst_ip, "ip_proto": pkt.protocol,
           "nw_ttl": 64}
    if sender.vlan is not None:
        out["vlan_vid"] = 0x1000 | sender.vlan
    if pkt.protocol == R.TCP:
        out.update(tcp_src=pkt.src_port, tcp_dst=pkt.dst_port, tcp_flags=tcp_flags)
    elif pkt.protocol == R.UDP:
        out.update(udp_src=pkt.src_port, udp_dst=pkt.dst_port)
    elif pkt.protocol == R.ICMP:
        out.update(icmpv4_type=pkt.icmp_type, icmpv4_code=pkt.icmp_code)
    return out


def delivered(net: Overlay, sc: Scenario, sender: VPort, receiver: VPort, pkt: R.Packet, tcp_flags: int = SYN) -> bool:
    """Did the packet reach ``receiver`` (and nothing else)? (``net.samples``: its verdict copies.)"""
    got = net.send(sender.host, wire_packet(sc, sender, receiver, pkt, tcp_flags), sc.ofports[sender.id])
    assert len(got) <= 1, got
    if not got:
        return False
    host, out = got[0]
    tag = out.packet.get("vlan_vid") if out.packet.get("vlan_vid") else None
    want_tag = 0x1000 | receiver.vlan if receiver.vlan is not None else None
    return host == receiver.host and out.port == sc.ofports[receiver.id] and tag == want_tag


def has_reply(pkt: R.Packet) -> bool:
    return pkt.protocol != R.ICMP or pkt.icmp_type in R.ICMP_REPLY


def sample_records(sc: Scenario, samples) -> list[tuple[str, str, str, bool]]:
    """The simulator's verdict copies as (host, side, deciding rule id or "default", enforced)."""
    from nuage_ryu.vrs.compile import default_action_cookie, rule_cookie
    from nuage_ryu.vrs.pipeline import VERDICT_LOG_TABLES

    names = {rule_cookie(r.id): r.id for r in sc.rules}
    names.update({default_action_cookie(d.id): R.DEFAULT for d in sc.domains})
    out = []
    for host, sample in samples:
        side, enforced = VERDICT_LOG_TABLES.get(sample.table, ("table %d" % sample.table, None))
        out.append((host, side, names.get(sample.cookie, hex(sample.cookie)), enforced))
    return out


def expected_records(sender: VPort, receiver: VPort, decision: R.Decision) -> list[tuple[str, str, str, bool]]:
    """Where the reference's verdict records of one packet appear: on the sending host, and again on
    the receiving host when the packet crossed the overlay (it re-decides traffic from the tunnel)."""
    recs = [(r.deciding, r.enforced) for r in decision.records]
    out = [(sender.host, "sender", rid, enforced) for rid, enforced in recs]
    if decision.allowed and receiver.host != sender.host:
        out += [(receiver.host, "receiver", rid, enforced) for rid, enforced in recs]
    return out


def check_records(net: Overlay, sc: Scenario, what: str, sender: VPort, receiver: VPort,
                  decision: R.Decision) -> list[str]:
    got, want = sample_records(sc, net.samples), expected_records(sender, receiver, decision)
    return [] if got == want else [f"{what}: verdict records {got}, reference {want} ({decision})"]


def run_case(net: Overlay, sc: Scenario, case: Case) -> list[str]:
    """Send the case's packet, then its reply and a continuation while they are expected to pass.
    Returns the disagreements with the reference (empty: all agree), deliveries and verdict records
    (logged rules, audit rules, the logged default). Conntrack starts empty."""
    for sim in net.hosts.values():
        sim.conntrack.flush()
    policy = sc.policy(sc.vport(case.src).domain_id)
    src, dst = sc.vport(case.src), sc.vport(case.dst)
    pkt = reference_packet(sc, case)
    first = R.decide(policy, pkt)
    problems = []
    got = delivered(net, sc, src, dst, pkt)
    if got != first.allowed:
        return [f"request {pkt}: simulator {'allow' if got else 'deny'}, reference {first}"]
    problems += check_records(net, sc, f"request {pkt}", src, dst, first)
    if not got or not has_reply(pkt):
        return problems
    back = R.decide_reply(policy, pkt, first)
    got = delivered(net, sc, dst, src, pkt.reply(), SYN | ACK)
    if got != back.allowed:
        problems.append(f"reply {pkt.reply()} of {pkt}: simulator {'allow' if got else 'deny'}, reference {back}")
    else:
        problems += check_records(net, sc, f"reply of {pkt}", dst, src, back)
    if pkt.protocol == R.TCP:
        more = R.decide_continuation(policy, pkt, first)
        got = delivered(net, sc, src, dst, pkt, ACK)
        if got != more.allowed:
            problems.append(f"continuation of {pkt}: simulator {'allow' if got else 'deny'}, reference {more}")
        else:
            problems += check_records(net, sc, f"continuation of {pkt}", src, dst, more)
    return problems


def describe(sc: Scenario) -> str:
    """A scenario as readable lines (for assertion messages)."""
    lines = [f"domain {d.id} default {d.default_action} log_default={d.log_default}" for d in sc.domains]
    lines += [f"subnet {s.id} {s.cidr} zone {s.zone_id}" for s in sc.subnets]
    lines += [f"vport {v.id} {v.ip} {v.subnet_id} {v.host} groups {sorted(v.policygroups)}" for v in sc.vports]
    for r in sorted(sc.rules, key=lambda r: (r.domain_id, r.priority)):
        lines.append(f"rule {r.id} prio {r.priority} {r.source} -> {r.destination} {r.protocol} "
                     f"ports={r.dst_ports} icmp={r.icmp_type}/{r.icmp_code} {r.action} stateful={r.stateful} "
                     f"log={r.log} enforce={r.enforce}")
    return "\n".join(lines)
