"""ACL policy compiler: a domain's rules -> conjunctive flows in INGRESS_POLICY and EGRESS_POLICY.

Semantics (docs/policy.md): the rules of a domain are evaluated by priority, lower
number first; the first rule that matches a *new* connection decides (allow or
deny); no match -> the domain's default action. A stateful allow commits the
connection to conntrack (the domain's zone), so its replies and continuations pass
the ``*_CT_STATE`` tables without re-evaluation; a stateless allow commits nothing,
so replies need their own rule.

Where: the sending host evaluates the rules in INGRESS_POLICY (source known by its
port, REG_SRC_PORT), the receiving host evaluates them again in EGRESS_POLICY for
traffic from the overlay (destination known by REG_DST_PORT, source by IP) and
commits there too, so that both ends' conntrack recognise the replies.

How: each rule is a conjunction of up to three clauses - source, destination,
service (protocol + one port prefix / ICMP type) - so a rule between N and M
members with K port prefixes costs N + M + K + 1 flows, not N*M*K. A rule with a
single non-trivial clause gets a catch-all second clause (OVS needs n_clauses >= 2);
a rule with none is one plain flow.

Priorities: each rule gets a *level* (``plan_domain``): the first one below every
earlier rule that has another verdict and a service that may overlap its own.
Rules of one level share one OpenFlow priority; any conjunction satisfied there
gives the right verdict, so first-match semantics hold, and clause flows with the
same match (e.g. a group member used by several rules) become one flow carrying
several ``conjunction`` actions - merged by ``base.merge_same_key``, which
avoids the OVS pitfall where identical matches with different conj ids overwrite
each other.

Owners: (OwnerTag.ACL, rule) owns a rule's verdict (conj_id), service, catch-all and CIDR
endpoint flows; (OwnerTag.ACL_MEMBER, rule, vport) owns the clause flows of one policy-group
member. A membership change recompiles only that member's owner (plus the rule's
own flows when it is the first/last member that makes a table (in)active).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile.base import (
    IP,
    REG_DOMAIN,
    REG_DST_PORT,
    REG_SRC_PORT,
    Owner,
    OwnerKind,
    OwnerTag,
    cidr_match,
    match,
)
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import Conjunction, Ct, Flow, Goto
from nuage_ryu.vrs.view import AclRule, Domain, Endpoint, HostView, PolicyGroup, VPort
from nuage_ryu.vrs.view_update import ViewDelta, view_index

PROTOCOLS = {"tcp": P.IP_PROTO_TCP, "udp": P.IP_PROTO_UDP, "icmp": P.IP_PROTO_ICMP}
PORT_FIELD = {P.IP_PROTO_TCP: "tcp_dst", P.IP_PROTO_UDP: "udp_dst"}
SIDES = ("ingress", "egress")  # sending host, receiving host
POLICY_TABLE = {"ingress": P.INGRESS_POLICY, "egress": P.EGRESS_POLICY}
ACCEPTED_TABLE = {"ingress": P.L3_LOOKUP, "egress": P.OUTPUT}


class PolicyError(ValueError):
    """A rule the compiler cannot express (bad ports, protocol, priority)."""


def port_range_masks(first: int, last: int) -> list[tuple[int, int]]:
    """Cover first..last with (value, mask) prefixes: 1000-1999 -> 1000/0xfff8, 1008/0xfff0, ..."""
    if not 0 <= first <= last <= 0xFFFF:
        raise PolicyError(f"bad port range {first}-{last}")
    out = []
    while first <= last:
        size = first & -first if first else 0x10000
        while first + size - 1 > last:
            size >>= 1
        out.append((first, 0xFFFF & ~(size - 1)))
        first += size
    return out


def parse_ports(spec: str) -> tuple[int, int]:
    """"80" -> (80, 80); "8000-8080" -> (8000, 8080)."""
    lo, _, hi = str(spec).partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError as exc:
        raise PolicyError(f"bad ports {spec!r}") from exc
    return first, last


def service_matches(rule: AclRule) -> list[dict]:
    """The service clause as a list of alternative matches; [] means "any service"."""
    proto = rule.protocol
    if proto in (None, "any"):
        return []
    number = PROTOCOLS.get(proto) if isinstance(proto, str) else int(proto)
    if number is None:
        try:
            number = int(proto)
        except ValueError as exc:
            raise PolicyError(f"unknown protocol {proto!r}") from exc
    base = {"eth_type": IP, "ip_proto": number}
    if rule.dst_ports and number in PORT_FIELD:
        field = PORT_FIELD[number]
        first, last = parse_ports(rule.dst_ports)
        if (first, last) == (0, 0xFFFF):
            return [base]
        return [{**base, field: value if mask == 0xFFFF else (value, mask)}
                for value, mask in port_range_masks(first, last)]
    if number == P.IP_PROTO_ICMP:
        if rule.icmp_type is not None:
            base["icmpv4_type"] = rule.icmp_type
        if rule.icmp_code is not None:
            base["icmpv4_code"] = rule.icmp_code
    return [base]


def conj_ids(rule_ids: Iterable[str]) -> dict[str, int]:
    """A stable, non-zero, collision-free 32-bit conjunction id per rule (shared by both tables)."""
    out: dict[str, int] = {}
    used: set[int] = set()
    for rid in sorted(rule_ids):
        cid = int.from_bytes(hashlib.blake2b(rid.encode(), digest_size=4).digest(), "big") % 0xFFFFFFFF + 1
        while cid in used:
            cid = cid % 0xFFFFFFFF + 1
        used.add(cid)
        out[rid] = cid
    return out


@dataclass(frozen=True)
class RulePlan:
    """How one rule compiles: its level's OpenFlow priority, conj id and clause numbering."""

    rule: AclRule
    vni: int
    ct_zone: int
    priority: int
    conj_id: int
    clauses: tuple[tuple[str, int], ...]  # (("src", 1), ("svc", 2), ("any", 3)...); () = plain flow
    services: tuple[tuple, ...]  # service_matches as sorted item tuples

    @property
    def n_clauses(self) -> int:
        return len(self.clauses)

    def clause(self, name: str) -> int | None:
        for clause_name, number in self.clauses:  # at most 3 entries: faster than building a dict
            if clause_name == name:
                return number
        return None


def _is_trivial(ep: Endpoint) -> bool:
    return ep.type == "any"


def _values_meet(a, b) -> bool:
    """Do two (value or (value, mask)) matches of one field accept a common value?"""
    va, ma = a if isinstance(a, tuple) else (a, -1)
    vb, mb = b if isinstance(b, tuple) else (b, -1)
    return (va ^ vb) & ma & mb == 0


def services_may_overlap(a: tuple[tuple, ...], b: tuple[tuple, ...]) -> bool:
    """Can one packet match both service clauses? ``()`` is "any service"."""
    if not a or not b:
        return True
    for alt_a in a:
        fields_a = dict(alt_a)
        for alt_b in b:
            if all(_values_meet(fields_a[name], value) for name, value in alt_b if name in fields_a):
                return True
    return False


def plan_domain(domain: Domain, rules: list[AclRule], ids: dict[str, int]) -> dict[str, RulePlan]:
    """Give each rule of a domain its priority *level* and number its clauses.

    Rule order must hold only between rules that can match the same packet and decide differently,
    so a rule goes one level below (lower OpenFlow priority than) every earlier rule with another
    verdict whose service may overlap its own, and shares a level otherwise. Rules of one level
    share one priority, so clause flows with the same match merge into one flow instead of being
    repeated per rule: K port rules between two groups cost N + M + 2K flows whatever their
    actions, as long as their services (ports, protocols) are distinct. Endpoints are not compared:
    they depend on group membership, and a membership change must not move other rules' flows.
    A rule that matches everything is a plain flow, alone on its level below all earlier rules;
    later rules (which it shadows) go below it.
    """
    plans: dict[str, RulePlan] = {}
    placed: list[tuple[tuple, tuple, int]] = []  # (verdict, services, level) of earlier rules
    floor = 0
    for rule in sorted(rules, key=lambda r: r.priority):
        try:
            services = tuple(tuple(sorted(m.items())) for m in service_matches(rule))
            P.acl_priority(rule.priority)  # in range
        except (PolicyError, ValueError):
            continue  # the directory validates rules; an inexpressible one is skipped, not guessed
        dims = [name for name, trivial in (("src", _is_trivial(rule.source)),
                                            ("dst", _is_trivial(rule.destination)),
                                            ("svc", not services)) if not trivial]
        verdict = (rule.action, rule.stateful and rule.action == "allow")
        if not dims:
            # Matches every packet: a plain flow, which cannot share a conjunction's catch-all match.
            level = max((lv + 1 for _v, _s, lv in placed), default=floor)
            floor = level + 1
            clauses: tuple = ()
        else:
            level = max([floor] + [lv + 1 for v, svc, lv in placed
                                   if v != verdict and services_may_overlap(svc, services)])
            if len(dims) == 1:
                dims.append("any")
            clauses = tuple((name, i + 1) for i, name in enumerate(dims))
        placed.append((verdict, services, level))
        plans[rule.id] = RulePlan(rule, domain.vni, domain.ct_zone, P.acl_level_priority(level),
                                  ids[rule.id], clauses, services)
    return plans


_plan_cache: dict[tuple, dict[str, RulePlan]] = {}  # (domain, rules, ids) -> plans; bounded below


def plan_domain_cached(domain: Domain, rules: list[AclRule], ids: dict[str, int]) -> dict[str, RulePlan]:
    """``plan_domain``, remembered: levels cost O(rules^2) and rules change far less often than vports."""
    ordered = tuple(sorted(rules, key=lambda r: r.id))
    key = (domain, ordered, tuple(ids[r.id] for r in ordered))
    plans = _plan_cache.get(key)
    if plans is None:
        if len(_plan_cache) >= 256:
            _plan_cache.clear()
        plans = _plan_cache[key] = plan_domain(domain, rules, ids)
    return plans


def _conj_base(rule_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(rule_id.encode(), digest_size=4).digest(), "big") % 0xFFFFFFFF + 1


class PolicyIndex:
    """Per-view lookups the policy compiler needs (built once per HostView, or updated from the
    last view's index and a ``ViewDelta``: ``updated``)."""

    def __init__(self, view: HostView) -> None:
        present = view.present_domains()
        self.members: dict[str, list[VPort]] = {}
        for v in view.vports.values():
            if v.domain_id in present:
                for g in v.policygroups:
                    group = view.policygroups.get(g)
                    # A group only holds vports of its own domain (the directory checks it; a stale
                    # or foreign membership is ignored here rather than compiled).
                    if group is not None and group.domain_id == v.domain_id:
                        self.members.setdefault(g, []).append(v)
        for group in self.members.values():
            group.sort(key=_by_id)
        self.zone_cidrs = _zone_cidrs(view)
        by_domain: dict[str, list[AclRule]] = {}
        for r in view.acl_rules.values():
            if r.domain_id in present and r.domain_id in view.domains:
                by_domain.setdefault(r.domain_id, []).append(r)
        self.ids = conj_ids(view.acl_rules)
        # Some rule's id was moved off its hash by a collision: removing a rule may move it back.
        self.displaced = any(cid != _conj_base(rid) for rid, cid in self.ids.items())
        self.plans: dict[str, RulePlan] = {}
        self.active: dict[str, dict[str, bool]] = {}  # rule id -> side -> can complete (memo)
        for did, rules in by_domain.items():
            self.plans.update(plan_domain_cached(view.domains[did], rules, ids=self.ids))
        self.dirty_rules: frozenset[str] | None = None  # rules that may differ from the last view's; None: all

    @classmethod
    def updated(cls, old: PolicyIndex, old_view: HostView, view: HostView, delta: ViewDelta) -> PolicyIndex:
        """The index of ``view``, from ``old`` (``old_view``'s) and what changed between them.

        ``dirty_rules`` of the result: every rule whose plan, CIDRs, activity or members may differ
        (the others' memoised activity is carried over)."""
        present = view.present_domains()
        vidx = view_index(view)
        idx = cls.__new__(cls)
        # Members: the groups named by a changed vport (before or after) or changed themselves.
        touched = set(delta.policygroups)
        for vid in delta.vports | delta.local_ports:
            for v in (old_view.vports.get(vid), view.vports.get(vid)):
                if v is not None:
                    touched.update(v.policygroups)
        idx.members = dict(old.members)
        for g in touched:
            group = view.policygroups.get(g)
            if g in delta.policygroups:  # the group itself came, went or moved: list it again
                members = sorted((v for vid in vidx.members_named.get(g, ())
                                  if _valid_member(v := view.vports[vid], group, present)), key=_by_id)
            else:  # keep the unchanged members (still valid: same group, same present domains), redo the changed
                members = list(old.members.get(g, ()))
                for vid in delta.vports:
                    i = bisect.bisect_left(members, vid, key=_by_id)
                    if i < len(members) and members[i].id == vid:
                        del members[i]
                    v = view.vports.get(vid)
                    if v is not None and g in v.policygroups and _valid_member(v, group, present):
                        bisect.insort(members, v, key=_by_id)
            if members:
                idx.members[g] = members
            else:
                idx.members.pop(g, None)
        idx.zone_cidrs = _zone_cidrs(view) if delta.subnets else old.zone_cidrs
        # Plans: again for each domain whose rules or own row changed (levels depend on all its rules).
        replan = set(delta.domains)
        for rid in delta.acl_rules:
            for r in (old_view.acl_rules.get(rid), view.acl_rules.get(rid)):
                if r is not None:
                    replan.add(r.domain_id)
        idx.displaced = old.displaced
        idx.ids = _conj_ids_updated(old.ids, view, delta.acl_rules, old.displaced)
        if idx.ids is None:  # a conjunction id collision moves other rules' ids: plan all again
            full = cls(view)
            full.dirty_rules = frozenset(old.plans) | frozenset(full.plans)
            return full
        old_vidx = view_index(old_view)
        dirty = set(delta.acl_rules)
        idx.plans = dict(old.plans)
        for d in replan:
            for rid in old_vidx.rules_by_domain.get(d, ()):
                idx.plans.pop(rid, None)
                dirty.add(rid)
            if d in present and d in view.domains:
                rules = [view.acl_rules[rid] for rid in vidx.rules_by_domain.get(d, ())]
                plans = plan_domain_cached(view.domains[d], rules, ids=idx.ids)
                idx.plans.update(plans)
                dirty.update(plans)
        for rid in delta.acl_rules:
            if rid not in view.acl_rules:
                idx.plans.pop(rid, None)
        if delta.subnets:  # zone and subnet endpoints' CIDRs
            dirty.update(rid for rid, plan in idx.plans.items()
                         if plan.rule.source.type in ("zone", "subnet")
                         or plan.rule.destination.type in ("zone", "subnet"))
        for g in touched:
            dirty.update(vidx.rules_by_group.get(g, ()))
            dirty.update(old_vidx.rules_by_group.get(g, ()))
        idx.active = {rid: act for rid, act in old.active.items() if rid not in dirty}
        idx.dirty_rules = frozenset(dirty)
        return idx

    def is_member(self, view: HostView, group_id: str, vport: VPort) -> bool:
        """Is ``vport`` (of ``view``) a member of the policy group, as ``members`` lists them?"""
        group = view.policygroups.get(group_id)
        return (group_id in vport.policygroups and group is not None and group.domain_id == vport.domain_id
                and vport.domain_id in view.present_domains())

    def cidrs(self, ep: Endpoint) -> list[str] | None:
        """CIDRs of a zone/subnet/cidr endpoint; None for policy groups and "any"."""
        if ep.type == "cidr":
            return [ep.cidr]
        if ep.type == "zone":
            return sorted(self.zone_cidrs.get(ep.id, []))
        return None

    def group_members(self, ep: Endpoint) -> list[VPort]:
        return self.members.get(ep.id, []) if ep.type == "policygroup" else []


def _by_id(v: VPort) -> str:
    return v.id


def _valid_member(v: VPort, group: PolicyGroup | None, present: frozenset[str]) -> bool:
    # As PolicyIndex.__init__ lists members.
    return v.domain_id in present and group is not None and group.domain_id == v.domain_id


def _zone_cidrs(view: HostView) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in view.subnets.values():
        if s.zone_id is not None:
            out.setdefault(s.zone_id, []).append(s.cidr)
    return out


def _conj_ids_updated(old: dict[str, int], view: HostView, changed: frozenset[str],
                      displaced: bool) -> dict[str, int] | None:
    """``conj_ids(view.acl_rules)`` from the last ids and the rules that changed; None when a rule
    added or removed may take or free an id another rule was moved to or from (then compute all)."""
    if not changed:
        return old
    ids = dict(old)
    for rid in changed:
        if rid not in view.acl_rules and rid in ids:
            if displaced:
                return None
            del ids[rid]
    used = set(ids.values())
    for rid in sorted(changed):
        if rid in view.acl_rules and rid not in ids:
            cid = _conj_base(rid)
            if cid in used:
                return None
            ids[rid] = cid
            used.add(cid)
    if len(ids) != len(view.acl_rules) or any(ids[r] != _conj_base(r) for r in changed if r in ids):
        return None
    return ids


def policy_index(view: HostView) -> PolicyIndex:
    """The PolicyIndex of a view, built once per view (kept with the view: a view is immutable)."""
    idx = view.__dict__.get("_policy_index")
    if idx is None:
        idx = PolicyIndex(view)
        view.__dict__["_policy_index"] = idx
    return idx


def updated_policy_index(old_view: HostView, view: HostView, delta: ViewDelta) -> PolicyIndex:
    """The PolicyIndex of ``view`` updated from ``old_view``'s (kept with the view)."""
    idx = view.__dict__.get("_policy_index")
    if idx is None:
        idx = PolicyIndex.updated(policy_index(old_view), old_view, view, delta)
        view.__dict__["_policy_index"] = idx
    return idx


def _endpoint_cidrs(view: HostView, idx: PolicyIndex, ep: Endpoint) -> list[str] | None:
    if ep.type == "subnet":
        s = view.subnets.get(ep.id)
        return [s.cidr] if s is not None else []
    return idx.cidrs(ep)


# A member's role in a clause, per side: which register/field identifies it there.
def _member_match(side: str, role: str, plan: RulePlan, vport: VPort, ofport: int | None) -> dict | None:
    if side == "ingress" and role == "src":
        return {REG_SRC_PORT: ofport} if ofport is not None else None  # only local vports send here
    if side == "egress" and role == "dst":
        return {REG_DST_PORT: ofport} if ofport is not None else None  # only local vports receive here
    if side == "egress" and role == "src" and ofport is not None:
        return None  # a local sender never arrives from the tunnel
    field = "ipv4_src" if role == "src" else "ipv4_dst"
    return {REG_DOMAIN: plan.vni, "eth_type": IP, field: vport.ip}


def _ofport(view: HostView, vport: VPort) -> int | None:
    """The vport's logical port (what REG_SRC_PORT/REG_DST_PORT carry), None if not local."""
    return view.logical_port(vport)


def _clause_sizes(view: HostView, idx: PolicyIndex, plan: RulePlan) -> dict[str, bool]:
    """Per side: can this rule's conjunction ever complete there (every clause has a flow)?"""
    cached = idx.active.get(plan.rule.id)
    if cached is not None:
        return cached
    active = {}
    for side in SIDES:
        ok = True
        for role in ("src", "dst"):
            if plan.clause(role) is None:
                continue
            ep = plan.rule.source if role == "src" else plan.rule.destination
            cidrs = _endpoint_cidrs(view, idx, ep)
            if cidrs is not None:
                ok = ok and bool(cidrs)
            else:
                ok = ok and any(_member_match(side, role, plan, v, _ofport(view, v)) is not None
                                for v in idx.group_members(ep))
        active[side] = ok
    idx.active[plan.rule.id] = active
    return active


def _verdict(plan: RulePlan, side: str, zone: int) -> tuple:
    rule = plan.rule
    if rule.action != "allow":
        return (Goto(P.POLICY_DROP.number),)  # dropped there, counted per vport
    go = Goto(ACCEPTED_TABLE[side].number)
    return (Ct(zone=zone, commit=True), go) if rule.stateful else (go,)


def rule_cookie(rule_id: str) -> int:
    """The cookie of a rule's verdict flows: what its counters are read by (``counters.CounterIndex``)."""
    return cookie_for(CookieKind.ACL_RULE, rule_id)


def compile_rule(view: HostView, plan: RulePlan) -> list[Flow]:
    """A rule's own flows: verdict (conj_id), service, catch-all and CIDR-endpoint clause flows."""
    idx = policy_index(view)
    rule = plan.rule
    cookie = rule_cookie(rule.id)
    member_cookie = cookie_for(CookieKind.POLICY_MEMBER, f"{rule.domain_id}/rule-clauses")
    flows: list[Flow] = []
    active = _clause_sizes(view, idx, plan)
    for side in SIDES:
        table = POLICY_TABLE[side].number
        if not plan.clauses:
            flows.append(Flow(table, plan.priority, match(eth_type=IP, **{REG_DOMAIN: plan.vni}),
                              _verdict(plan, side, plan.ct_zone), cookie))
            continue
        if not active[side]:
            continue
        # eth_type: OVS accepts ct() only with an IP prerequisite in the match.
        flows.append(Flow(table, plan.priority, match(conj_id=plan.conj_id, eth_type=IP),
                          _verdict(plan, side, plan.ct_zone), cookie))
        conj = lambda name: (Conjunction(plan.conj_id, plan.clause(name), plan.n_clauses),)  # noqa: E731
        if plan.clause("svc"):
            for svc in plan.services:
                flows.append(Flow(table, plan.priority, match(**{REG_DOMAIN: plan.vni}, **dict(svc)),
                                  conj("svc"), member_cookie))
        if plan.clause("any"):
            flows.append(Flow(table, plan.priority, match(eth_type=IP, **{REG_DOMAIN: plan.vni}), conj("any"),
                              member_cookie))
        for role, ep, field in (("src", rule.source, "ipv4_src"), ("dst", rule.destination, "ipv4_dst")):
            if plan.clause(role) is None:
                continue
            for cidr in _endpoint_cidrs(view, idx, ep) or ():
                flows.append(Flow(table, plan.priority,
                                  match(eth_type=IP, **{REG_DOMAIN: plan.vni, field: cidr_match(cidr)}),
                                  conj(role), member_cookie))
    return flows


def compile_member(view: HostView, plan: RulePlan, vport: VPort) -> list[Flow]:
    """The clause flows that make one policy-group member part of a rule's source/destination."""
    idx = policy_index(view)
    active = _clause_sizes(view, idx, plan)
    cookie = cookie_for(CookieKind.POLICY_MEMBER, vport.id)
    ofport = _ofport(view, vport)
    flows = []
    for side in SIDES:
        if not active[side]:
            continue
        for role, ep in (("src", plan.rule.source), ("dst", plan.rule.destination)):
            number = plan.clause(role)
            if number is None or ep.type != "policygroup" or ep.id not in vport.policygroups:
                continue
            m = _member_match(side, role, plan, vport, ofport)
            if m is not None:
                flows.append(Flow(POLICY_TABLE[side].number, plan.priority, match(**m),
                                  (Conjunction(plan.conj_id, number, plan.n_clauses),), cookie))
    return flows


# ---- owners (for driver.FlowCompiler) ---------------------------------------------------


def _rule_input(view: HostView, idx: PolicyIndex, plan: RulePlan) -> tuple:
    active = _clause_sizes(view, idx, plan)
    act = (active["ingress"], active["egress"])
    cidr_data = tuple(tuple(_endpoint_cidrs(view, idx, ep) or ()) for ep in (plan.rule.source,
                                                                             plan.rule.destination))
    return (plan, cidr_data, act)


def _member_shape(plan: RulePlan) -> tuple:
    # A member's flows depend on the rule only through its level's priority, conj id and clause
    # numbering: small values, so 10^5 member fingerprints compare fast.
    return (plan.priority, plan.conj_id, plan.clauses, plan.vni)


def _policy_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    idx = policy_index(view)
    out: dict[Owner, object] = {}
    for rid, plan in idx.plans.items():
        fp = out[(OwnerTag.ACL, rid)] = _rule_input(view, idx, plan)
        act = fp[2]
        shape = _member_shape(plan)
        roles: dict[str, tuple] = {}
        for role, ep in (("src", plan.rule.source), ("dst", plan.rule.destination)):
            for v in idx.group_members(ep):
                roles[v.id] = (*roles.get(v.id, ()), role, v.ip)
        for vid, role_ips in roles.items():
            v = view.vports[vid]
            out[(OwnerTag.ACL_MEMBER, rid, vid)] = (shape, act, role_ips, view.logical_port(v))
    return out


def _policy_affected(old: HostView, new: HostView, delta: ViewDelta) -> set[Owner]:
    """The rules whose plan, CIDRs, activity or members may have changed, and their member owners:
    all of a rule's members when its shape, endpoints or activity changed, else only the changed
    vports among them."""
    old_idx = policy_index(old)
    idx = updated_policy_index(old, new, delta)
    dirty = idx.dirty_rules if idx.dirty_rules is not None else frozenset(old_idx.plans) | frozenset(idx.plans)
    changed_vports = delta.vports | delta.local_ports
    out: set[Owner] = set()
    for rid in dirty:
        out.add((OwnerTag.ACL, rid))
        before, after = old_idx.plans.get(rid), idx.plans.get(rid)
        whole = (before is None or after is None or _member_shape(before) != _member_shape(after)
                 or before.rule.source != after.rule.source or before.rule.destination != after.rule.destination
                 or old_idx.active.get(rid) != _clause_sizes(new, idx, after))
        if whole:
            for plan, ix in ((before, old_idx), (after, idx)):
                if plan is not None:
                    for ep in (plan.rule.source, plan.rule.destination):
                        out.update((OwnerTag.ACL_MEMBER, rid, v.id) for v in ix.group_members(ep))
            continue
        groups = {ep.id for ep in (after.rule.source, after.rule.destination) if ep.type == "policygroup"}
        for g in groups & delta.policygroups:  # the group itself came or went: all its members
            for ix in (old_idx, idx):
                out.update((OwnerTag.ACL_MEMBER, rid, v.id) for v in ix.members.get(g, ()))
        for vid in changed_vports:
            for v in (old.vports.get(vid), new.vports.get(vid)):
                if v is not None and not groups.isdisjoint(v.policygroups):
                    out.add((OwnerTag.ACL_MEMBER, rid, vid))
    return out


def _policy_inputs_of(view: HostView, present: frozenset[str], owners) -> dict[Owner, object]:
    idx = policy_index(view)
    out: dict[Owner, object] = {}
    for owner in owners:
        plan = idx.plans.get(owner[1])
        if plan is None:
            continue
        if owner[0] == OwnerTag.ACL:
            out[owner] = _rule_input(view, idx, plan)
            continue
        v = view.vports.get(owner[2])
        if v is None:
            continue
        role_ips: tuple = ()
        for role, ep in (("src", plan.rule.source), ("dst", plan.rule.destination)):
            if ep.type == "policygroup" and idx.is_member(view, ep.id, v):
                role_ips = (*role_ips, role, v.ip)
        if role_ips:
            active = _clause_sizes(view, idx, plan)
            out[owner] = (_member_shape(plan), (active["ingress"], active["egress"]), role_ips,
                          view.logical_port(v))
    return out


def _compile_owner(view: HostView, owner: Owner) -> list[Flow]:
    idx = policy_index(view)
    plan = idx.plans[owner[1]]
    if owner[0] == OwnerTag.ACL:
        return compile_rule(view, plan)
    return compile_member(view, plan, view.vports[owner[2]])


ACL_OWNERS = OwnerKind((OwnerTag.ACL, OwnerTag.ACL_MEMBER), _policy_inputs, _compile_owner,
                       _policy_affected, _policy_inputs_of)
