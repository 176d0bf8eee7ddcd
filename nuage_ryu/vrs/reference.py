"""Reference evaluator of a domain's security policy, straight from docs/policy.md.

It answers "what should happen to this packet?" by reading the rules as the documentation states
them - addresses, memberships, priorities - with nothing of the flow compiler: no levels, no
conjunctions, no conntrack tables. The differential test (tests/unit/test_policy_differential.py)
holds the compiled pipeline to it, and a trace names the rule it returns as the deciding one.

Semantics implemented (docs/policy.md "Semantics"):

- The rules of the packet's domain are tried by ``priority``, lower number first; the first rule
  whose source, destination and service all match decides. No match: the domain's
  ``default_action``.
- Endpoints: ``any``; ``policygroup`` - the vport holding the address is a member (groups of
  another domain do not count); ``zone`` - the address is inside a subnet of the zone;
  ``subnet`` - inside the subnet's CIDR; ``cidr`` - inside the prefix (``0.0.0.0/0`` is every
  address, a ``/32`` one address).
- Service: protocol ``any`` matches every packet; otherwise the IP protocol number must be equal
  (``tcp`` = 6, ``udp`` = 17, ``icmp`` = 1). ``dst_ports`` (tcp/udp) is an inclusive range on the
  destination port; ``icmp_type``/``icmp_code`` (icmp), each optional, must be equal.
- Connections: an allowing decision is *stateful* when the rule is stateful, and always for the
  default allow. The packets of a connection a stateful decision allowed - its replies and the
  rest of the original direction - pass without looking at the rules. Every other packet (a
  reply after a stateless allow, an unsolicited reply) is decided by the rules like a new one:
  a stateless allow needs a rule for the reverse direction.
- Audit mode (``enforce: false``): an audit rule decides nothing. Walking the rules by priority,
  the first matching *enforcing* rule decides (else the default action); the first matching audit
  rule met before it is the packet's *would-be* decider - what it would get if every audit rule
  were enforced - and is counted and logged ("would deny"). A packet has at most one would-be
  decider; an audit rule after the deciding rule is never reached.
- Verdict records (docs/policy.md "Verdict logs"): every evaluation of the rules (not a packet of
  an allowed connection) produces the would-be decider's record, if any, then the decider's own if
  it is logged (``log``, or the domain's ``log_default`` for the default action).

Pure: no I/O, no threads; inputs are the compiler's own view objects (``nuage_ryu.vrs.view``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from nuage_ryu.vrs.view import AclRule, Domain, Endpoint, HostView, Subnet, VPort

PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
TCP, UDP, ICMP = 6, 17, 1
# ICMP query -> its reply type (echo, timestamp, information, address mask): a conntrack "connection".
ICMP_REPLY = {8: 0, 13: 14, 15: 16, 17: 18}
DEFAULT = "default"


class UndefinedCase(ValueError):
    """A rule or packet outside the documented semantics (the directory never stores such a rule)."""


@dataclass(frozen=True)
class Packet:
    """One IPv4 packet inside a domain, as the sending vport's stack builds it.

    ``src_port``/``dst_port`` are read for tcp and udp only, ``icmp_type``/``icmp_code`` for icmp.
    """

    src_ip: str
    dst_ip: str
    protocol: int
    src_port: int = 0
    dst_port: int = 0
    icmp_type: int = 0
    icmp_code: int = 0

    def reply(self) -> Packet:
        """The answer the destination sends back (ports swapped; an ICMP query gets its reply type)."""
        if self.protocol == ICMP:
            if self.icmp_type not in ICMP_REPLY:
                raise UndefinedCase(f"ICMP type {self.icmp_type} has no reply")
            return Packet(self.dst_ip, self.src_ip, ICMP, icmp_type=ICMP_REPLY[self.icmp_type],
                          icmp_code=self.icmp_code)
        return Packet(self.dst_ip, self.src_ip, self.protocol, self.dst_port, self.src_port)


@dataclass(frozen=True)
class VerdictRecord:
    """One verdict record an evaluation produces: the rule (None: the default action), what it
    decides, and whether that is enforced (False: an audit rule's "would ...")."""

    rule: AclRule | None
    verdict: str
    enforced: bool = True

    @property
    def deciding(self) -> str:
        return self.rule.id if self.rule is not None else DEFAULT


@dataclass(frozen=True)
class Decision:
    """What the policy does with a packet, and why.

    ``rule`` is the deciding rule, None for the domain's default action (or when ``established``);
    ``stateful``: an allowed packet commits its connection, so its replies pass;
    ``established``: the packet passed as part of a connection an earlier stateful decision allowed
    (``rule`` then names that decision's rule, None for the default allow).
    """

    verdict: str  # "allow" | "deny"
    rule: AclRule | None
    stateful: bool = False
    established: bool = False
    audit: AclRule | None = None  # the would-be decider (an audit rule before the decider), if any
    records: tuple[VerdictRecord, ...] = ()  # the verdict records of this evaluation, in order

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    @property
    def deciding(self) -> str:
        """The deciding rule's id, or "default" for the domain's default action."""
        return self.rule.id if self.rule is not None else DEFAULT


@dataclass(frozen=True)
class DomainPolicy:
    """The facts the semantics read for one domain: rules, subnets (with zones), group members."""

    domain: Domain
    rules: tuple[AclRule, ...]  # sorted by priority
    subnets: tuple[Subnet, ...]
    groups_by_ip: dict[str, frozenset[str]] = field(default_factory=dict)  # vport IP -> its groups

    @classmethod
    def build(cls, domain: Domain, rules: Iterable[AclRule], subnets: Iterable[Subnet],
              vports: Iterable[VPort], group_domains: dict[str, str]) -> DomainPolicy:
        """``group_domains`` is {policy group id: its domain id}; memberships elsewhere are ignored."""
        members = {}
        for v in vports:
            if v.domain_id == domain.id:
                members[v.ip] = frozenset(g for g in v.policygroups if group_domains.get(g) == domain.id)
        return cls(domain,
                   tuple(sorted((r for r in rules if r.domain_id == domain.id), key=lambda r: r.priority)),
                   tuple(s for s in subnets if s.domain_id == domain.id), members)

    @classmethod
    def from_view(cls, view: HostView, domain_id: str) -> DomainPolicy:
        """The policy of one domain of a host view (the view holds all of a present domain)."""
        return cls.build(view.domains[domain_id], view.acl_rules.values(), view.subnets.values(),
                         view.vports.values(), {g.id: g.domain_id for g in view.policygroups.values()})


def _in(ip: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr, strict=False)


def endpoint_matches(policy: DomainPolicy, ep: Endpoint, ip: str) -> bool:
    """Does the address ``ip`` of the domain belong to the endpoint?"""
    if ep.type == "any":
        return True
    if ep.type == "policygroup":
        return ep.id in policy.groups_by_ip.get(ip, ())
    if ep.type == "zone":
        return any(s.zone_id == ep.id and _in(ip, s.cidr) for s in policy.subnets)
    if ep.type == "subnet":
        return any(s.id == ep.id and _in(ip, s.cidr) for s in policy.subnets)
    if ep.type == "cidr":
        return _in(ip, ep.cidr)
    raise UndefinedCase(f"unknown endpoint type {ep.type!r}")


def protocol_number(protocol: str | int) -> int | None:
    """IP protocol number of a rule's ``protocol``; None for ``any``."""
    if protocol in (None, "any"):
        return None
    if isinstance(protocol, str):
        if protocol in PROTOCOL_NUMBERS:
            return PROTOCOL_NUMBERS[protocol]
        if not protocol.isdigit():
            raise UndefinedCase(f"unknown protocol {protocol!r}")
    return int(protocol)


def service_matches(rule: AclRule, pkt: Packet) -> bool:
    """Protocol, destination port range and ICMP type/code of the rule, against the packet."""
    number = protocol_number(rule.protocol)
    if number is None:
        return True
    if number != pkt.protocol:
        return False
    if number in (TCP, UDP) and rule.dst_ports:
        lo, _, hi = str(rule.dst_ports).partition("-")
        if not int(lo) <= pkt.dst_port <= int(hi or lo):
            return False
    if number == ICMP:
        if rule.icmp_type is not None and rule.icmp_type != pkt.icmp_type:
            return False
        if rule.icmp_code is not None and rule.icmp_code != pkt.icmp_code:
            return False
    return True


def rule_matches(policy: DomainPolicy, rule: AclRule, pkt: Packet) -> bool:
    return (endpoint_matches(policy, rule.source, pkt.src_ip)
            and endpoint_matches(policy, rule.destination, pkt.dst_ip)
            and service_matches(rule, pkt))


def decide(policy: DomainPolicy, pkt: Packet) -> Decision:
    """The decision for a packet that is not part of an allowed connection: first matching
    enforcing rule by priority, else the default action (a default allow is stateful); with the
    first audit rule matching before it and the verdict records of the evaluation."""
    audit = None
    for rule in policy.rules:
        if not rule_matches(policy, rule, pkt):
            continue
        if not rule.enforce:
            audit = audit or rule
            continue
        allow = rule.action == "allow"
        return Decision(rule.action, rule, stateful=allow and rule.stateful, audit=audit,
                        records=_records(audit, rule, rule.action, rule.log))
    allow = policy.domain.default_action == "allow"
    verdict = "allow" if allow else "deny"
    return Decision(verdict, None, stateful=allow, audit=audit,
                    records=_records(audit, None, verdict, policy.domain.log_default))


def _records(audit: AclRule | None, rule: AclRule | None, verdict: str, logged: bool) -> tuple:
    out = [VerdictRecord(audit, audit.action, False)] if audit is not None else []
    if logged:
        out.append(VerdictRecord(rule, verdict, True))
    return tuple(out)


def decide_reply(policy: DomainPolicy, request: Packet, first: Decision | None = None) -> Decision:
    """The decision for the reply to ``request`` (after ``first``, the request's own decision).

    A stateful allow let the connection in: the reply is part of it. Otherwise (stateless allow)
    the reply is a packet of its own, decided by the rules."""
    first = decide(policy, request) if first is None else first
    if first.allowed and first.stateful:
        return replace(first, established=True, audit=None, records=())  # the rules are not visited
    return decide(policy, request.reply())


def decide_continuation(policy: DomainPolicy, request: Packet, first: Decision | None = None) -> Decision:
    """A later packet of the request's direction (e.g. the TCP ACK after the SYN)."""
    first = decide(policy, request) if first is None else first
    if first.allowed and first.stateful:
        return replace(first, established=True, audit=None, records=())
    return decide(policy, request)
