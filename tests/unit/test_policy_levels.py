"""Priority levels (rules share OpenFlow priorities when order cannot matter) and a randomized
check of the whole policy compiler against a direct first-match evaluation of the rules."""

from __future__ import annotations

import ipaddress
import random

import pytest

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import compile_host, policy_index, service_matches, services_may_overlap
from nuage_ryu.vrs.cookies import CookieKind, kind_of
from tests.unit.test_policy_rules import ANY, APP, DB, GROUPS, WEB, Endpoint, V, net_of, rule, send, views
from tests.unit.vrs_fixtures import SUBNETS, port_of


def svc(r):
    return tuple(tuple(sorted(m.items())) for m in service_matches(r))


@pytest.mark.parametrize("a,b,overlap", [
    (rule("x", 1, proto="tcp", ports="80"), rule("y", 2, proto="tcp", ports="81"), False),
    (rule("x", 1, proto="tcp", ports="80-90"), rule("y", 2, proto="tcp", ports="85"), True),
    (rule("x", 1, proto="tcp", ports="80"), rule("y", 2, proto="udp", ports="80"), False),
    (rule("x", 1, proto="tcp"), rule("y", 2, proto="tcp", ports="22"), True),
    (rule("x", 1), rule("y", 2, proto="tcp", ports="22"), True),
    (rule("x", 1, proto="icmp", icmp_type=8), rule("y", 2, proto="icmp", icmp_type=0), False),
    (rule("x", 1, proto="icmp", icmp_type=8), rule("y", 2, proto="icmp"), True),
    (rule("x", 1, proto=47), rule("y", 2, proto="tcp"), False),
    (rule("x", 1, proto="tcp", ports="1024-65535"), rule("y", 2, proto="tcp", ports="0-1023"), False),
])
def test_service_overlap(a, b, overlap):
    assert services_may_overlap(svc(a), svc(b)) == overlap
    assert services_may_overlap(svc(b), svc(a)) == overlap


def test_alternating_verdicts_on_distinct_ports_share_one_level_and_member_flows():
    rules = [rule(f"p{i}", 10 + i, WEB, APP, "tcp", str(8000 + i), action="deny" if i % 2 else "allow")
             for i in range(6)]
    view = views(rules)["h1"]
    assert len({p.priority for p in policy_index(view).plans.values()}) == 1
    member = [f for f in compile_host(view) if f.table == P.INGRESS_POLICY.number
              and kind_of(f.cookie) == CookieKind.POLICY_MEMBER
              and f.match_dict().get(P.REG_SRC_PORT.field) == port_of("a1")]
    assert len(member) == 1 and len(member[0].actions) == 6
    net = net_of(rules)
    for i in range(6):
        assert send(net, "a1", "a2", dport=8000 + i) == (i % 2 == 0), i


def test_overlapping_rules_of_other_verdicts_go_to_lower_levels():
    rules = [rule("allow-any-tcp", 10, WEB, APP, "tcp"), rule("deny-80", 20, WEB, APP, "tcp", "80", action="deny"),
             rule("allow-80", 30, ANY, APP, "tcp", "80"), rule("deny-udp", 40, ANY, ANY, "udp", action="deny")]
    plans = policy_index(views(rules)["h1"]).plans
    prio = {rid: p.priority for rid, p in plans.items()}
    assert prio["allow-any-tcp"] > prio["deny-80"] > prio["allow-80"]
    assert prio["deny-udp"] == prio["allow-any-tcp"]  # udp never meets the tcp rules


def test_a_match_everything_rule_shadows_the_rest():
    rules = [rule("web", 10, WEB, APP, "tcp", "80"), rule("all", 20, action="deny"), rule("late", 30, ANY, DB)]
    net = net_of(rules, default="allow")
    assert send(net, "a1", "a2", dport=80)
    assert not send(net, "a1", "a2", dport=81)
    assert not send(net, "a1", "a3", dport=81)  # "late" allows, but "all" comes first


# ---- randomized: compiled pipeline == first-match semantics ---------------------------------------

ZONE_OF = {s.id: s.zone_id for s in SUBNETS}
CIDR_OF = {s.id: s.cidr for s in SUBNETS}
ENDPOINTS = [ANY, WEB, APP, DB, Endpoint("zone", "zA"), Endpoint("zone", "zA2"), Endpoint("subnet", "A1"),
             Endpoint("subnet", "A2"), Endpoint("cidr", cidr="10.0.1.8/30"), Endpoint("cidr", cidr="10.0.2.0/24")]


def endpoint_has(ep: Endpoint, vport_id: str) -> bool:
    v = V[vport_id]
    if ep.type == "any":
        return True
    if ep.type == "policygroup":
        return ep.id in GROUPS.get(vport_id, ())
    if ep.type == "zone":
        return ZONE_OF[v.subnet_id] == ep.id
    if ep.type == "subnet":
        return v.subnet_id == ep.id
    return ipaddress.IPv4Address(v.ip) in ipaddress.IPv4Network(ep.cidr)


def rule_matches(r, src: str, dst: str, proto: int, dport: int) -> bool:
    if not (endpoint_has(r.source, src) and endpoint_has(r.destination, dst)):
        return False
    if r.protocol == "any":
        return True
    number = {"tcp": 6, "udp": 17}.get(r.protocol, r.protocol)
    if number != proto:
        return False
    if r.dst_ports:
        lo, _, hi = r.dst_ports.partition("-")
        return int(lo) <= dport <= int(hi or lo)
    return True


def expected(rules, default: str, src, dst, proto, dport) -> bool:
    for r in sorted(rules, key=lambda r: r.priority):
        if rule_matches(r, src, dst, proto, dport):
            return r.action == "allow"
    return default == "allow"


def random_rule(rnd: random.Random, i: int):
    proto = rnd.choice(["any", "tcp", "tcp", "udp", 47])
    ports = None
    if proto in ("tcp", "udp") and rnd.random() < 0.8:
        lo = rnd.randrange(1, 40)
        ports = str(lo) if rnd.random() < 0.5 else f"{lo}-{lo + rnd.randrange(1, 30)}"
    return rule(f"r{i}", rnd.randrange(1, 1000) * 10 + i, rnd.choice(ENDPOINTS), rnd.choice(ENDPOINTS), proto,
                ports, action=rnd.choice(["allow", "deny"]), stateful=rnd.random() < 0.5)


@pytest.mark.parametrize("seed", range(100))
def test_random_rule_sets_agree_with_first_match_semantics(seed):
    rnd = random.Random(seed)
    rules = [random_rule(rnd, i) for i in range(rnd.randrange(1, 9))]
    default = rnd.choice(["allow", "deny"])
    net = net_of(rules, default=default)
    vports = ["a1", "a2", "a3", "a4", "a5"]
    for k in range(40):
        src, dst = rnd.sample(vports, 2)
        proto = rnd.choice([6, 6, 17, 47])
        dport = rnd.randrange(1, 70)
        want = expected(rules, default, src, dst, proto, dport)
        for sim in net.hosts.values():  # each packet is a new connection (GRE has no ports to tell them apart)
            sim.conntrack.flush()
        got = send(net, src, dst, proto=proto, dport=dport, sport=30000 + k)
        assert got == want, (seed, src, dst, proto, dport, rules)


def test_exact_and_masked_values_of_one_field_at_one_priority_compile():
    # Regression: ordering the flows compared an exact tcp_dst (mask None) with a masked one.
    rules = [rule("exact", 10, WEB, APP, "tcp", "28"), rule("range", 11, WEB, APP, "tcp", "28-29")]
    flows = compile_host(views(rules)["h1"])
    ports = [f.match_dict()["tcp_dst"] for f in flows if "tcp_dst" in f.match_dict()]
    assert 28 in ports and (28, 0xFFFE) in ports
    net = net_of(rules)
    assert send(net, "a1", "a2", dport=29) and not send(net, "a1", "a2", dport=30)


@pytest.mark.parametrize("seed", range(20))
def test_random_change_sequences_incremental_equals_full_compile(seed):
    import dataclasses

    from nuage_ryu.vrs.compile import FlowCompiler
    from nuage_ryu.vrs.flow import index
    from nuage_ryu.vrs.simulator import TableSimulator
    from tests.unit.test_policy_rules import PGS, members
    from tests.unit.vrs_fixtures import view_for

    rnd = random.Random(1000 + seed)
    rules = [random_rule(rnd, i) for i in range(5)]
    groups = {k: set(v) for k, v in GROUPS.items()}
    hosts = {v: V[v].host for v in V}
    fc = FlowCompiler()
    sim = TableSimulator()
    for step in range(12):
        change = rnd.choice(["rule+", "rule-", "rule~", "member", "move"])
        if change == "rule+":
            rules.append(random_rule(rnd, 100 + step))
        elif change == "rule-" and rules:
            rules.pop(rnd.randrange(len(rules)))
        elif change == "rule~" and rules:
            i = rnd.randrange(len(rules))
            rules[i] = dataclasses.replace(random_rule(rnd, 200 + step), id=rules[i].id)
        elif change == "member":
            vid = rnd.choice(["a1", "a2", "a3", "a4", "a5"])
            groups[vid] = {rnd.choice(["web", "app", "db"])} if rnd.random() < 0.8 else set()
        else:
            vid = rnd.choice(["a4", "a5"])
            hosts[vid] = rnd.choice(["h2", "h3"])
        vports = [dataclasses.replace(v, host=hosts[v.id]) for v in members(groups)]
        view = view_for("h1", vports=vports, acl_rules=rules, policygroups=PGS)
        diff = fc.update(view)
        sim.apply(diff)
        full = index(compile_host(view))
        assert index(fc.desired()) == full, (seed, step, change)
        assert index(sim.flows()) == full  # applying the diffs gives the same table
        assert fc.conflicts == []
