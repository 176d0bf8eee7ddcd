"""ACL semantics, checked by sending packets through the compiled pipeline of three hosts."""

from __future__ import annotations

import dataclasses

import pytest

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import FlowCompiler, compile_host, port_range_masks
from nuage_ryu.vrs.cookies import CookieKind, cookie_for, kind_of
from nuage_ryu.vrs.flow import Conjunction
from nuage_ryu.vrs.simulator import Overlay, TableSimulator
from nuage_ryu.vrs.view import AclRule, Endpoint, PolicyGroup
from tests.unit.vrs_fixtures import ACK, HOSTS, SYN, TUN, VPORTS, port_of, to_vport, view_for

GROUPS = {"a1": {"web"}, "a4": {"web"}, "a2": {"app"}, "a5": {"app"}, "a3": {"db"}}
PGS = [PolicyGroup("web", "A"), PolicyGroup("app", "A"), PolicyGroup("db", "A"), PolicyGroup("bweb", "B")]
WEB, APP, DB = (Endpoint("policygroup", g) for g in ("web", "app", "db"))
ANY = Endpoint()


def members(groups=GROUPS):
    return [dataclasses.replace(v, policygroups=frozenset(groups.get(v.id, ()))) for v in VPORTS]


V = {v.id: v for v in members()}


def rule(rid, prio, src=ANY, dst=ANY, proto="any", ports=None, action="allow", stateful=True, domain="A",
         icmp_type=None, icmp_code=None):
    return AclRule(rid, domain, prio, src, dst, proto, ports, icmp_type, icmp_code, action, stateful)


def views(rules, default="deny", groups=GROUPS):
    return {h.name: view_for(h.name, vports=members(groups), default_action=default, acl_rules=rules,
                             policygroups=PGS) for h in HOSTS}


def net_of(rules, default="deny", groups=GROUPS) -> Overlay:
    net = Overlay({h.name: TUN for h in HOSTS})
    for h in HOSTS:
        net.add_host(h.name, h.tunnel_ip, TableSimulator(compile_host(views(rules, default, groups)[h.name])))
    return net


def send(net, src, dst, **kw) -> bool:
    """True when the packet from vport src reaches vport dst (and only there)."""
    got = net.send(V[src].host, to_vport(V[src], V[dst], **kw), port_of(src))
    assert got in ([], [(V[dst].host, got[0][1])] if got else []), got
    return bool(got) and got[0][1].port == port_of(dst)


def reply(net, src, dst, flags=SYN | ACK, **kw) -> bool:
    """The reply (SYN-ACK by default) of a tcp connection src:40000 -> dst:dport, sent by dst."""
    return send(net, dst, src, sport=kw.get("dport", 80), dport=40000, flags=flags)


THREE_TIER = [
    rule("web-app", 10, WEB, APP, "tcp", "8080"),
    rule("app-db", 20, APP, DB, "tcp", "5432"),
]


@pytest.mark.parametrize("src,dst", [("a1", "a2"), ("a4", "a2"), ("a1", "a5"), ("a4", "a5")])
def test_three_tier_allowed_path_and_stateful_reply_same_and_cross_host(src, dst):
    net = net_of(THREE_TIER)
    assert send(net, src, dst, dport=8080)  # SYN
    assert reply(net, src, dst, dport=8080)  # stateful: the SYN-ACK comes back
    assert send(net, src, dst, dport=8080, flags=ACK)  # and the connection continues
    assert reply(net, src, dst, dport=8080, flags=ACK)


def test_three_tier_everything_else_denied():
    net = net_of(THREE_TIER)
    assert not send(net, "a1", "a2", dport=80)  # wrong port
    assert not send(net, "a2", "a1", dport=8080)  # wrong direction: app may not open to web
    assert not send(net, "a1", "a3", dport=5432)  # web may not reach db
    assert send(net, "a2", "a3", dport=5432)
    assert not send(net, "a3", "a2", dport=5432)
    assert not send(net, "a1", "a2", dport=8080, proto=17)  # udp, not tcp


def test_stateless_allow_does_not_let_replies_back():
    net = net_of([rule("web-app", 10, WEB, APP, "tcp", "8080", stateful=False)])
    for src, dst in (("a1", "a2"), ("a4", "a2")):
        assert send(net, src, dst, dport=8080)
        assert not reply(net, src, dst, dport=8080)
        # Later packets of the exchange are +inv in conntrack (never committed) yet still allowed.
        assert send(net, src, dst, dport=8080, flags=ACK)
        assert not reply(net, src, dst, dport=8080, flags=ACK)


def test_stateless_needs_and_gets_a_reverse_rule():
    net = net_of([rule("web-app", 10, WEB, APP, "tcp", "8080", stateful=False),
                  rule("app-web", 11, APP, WEB, "tcp", "1024-65535", stateful=False)])
    for src, dst in (("a1", "a2"), ("a4", "a2"), ("a1", "a5")):
        assert send(net, src, dst, dport=8080)
        assert reply(net, src, dst, dport=8080)  # a SYN-ACK nobody committed: +inv, allowed by rule
        assert send(net, src, dst, dport=8080, flags=ACK)


def test_lower_priority_number_wins():
    deny_first = [rule("d", 10, WEB, APP, "tcp", action="deny"), rule("a", 20, WEB, APP, "tcp", "8080")]
    allow_first = [rule("d", 30, WEB, APP, "tcp", action="deny"), rule("a", 20, WEB, APP, "tcp", "8080")]
    assert not send(net_of(deny_first), "a1", "a2", dport=8080)
    assert send(net_of(allow_first), "a1", "a2", dport=8080)


def test_narrow_deny_inside_a_wider_allow():
    net = net_of([rule("d", 5, WEB, APP, "tcp", "8081", action="deny"),
                  rule("a", 10, WEB, APP, "tcp", "8000-8100")])
    assert send(net, "a1", "a2", dport=8080)
    assert not send(net, "a1", "a2", dport=8081)


def test_interleaved_verdicts_keep_rule_order():
    net = net_of([rule("r1", 10, WEB, APP, "tcp", "8080"),
                  rule("r2", 20, WEB, APP, "tcp", action="deny"),
                  rule("r3", 30, WEB, ANY)])
    assert send(net, "a1", "a2", dport=8080)  # r1
    assert not send(net, "a1", "a2", dport=8081)  # r2
    assert send(net, "a1", "a2", proto=17, dport=53)  # r3 (udp is not r2's)
    assert send(net, "a1", "a3", dport=8081)  # r3 (db is not r2's)


def test_port_range_boundaries_exactly():
    net = net_of([rule("a", 10, WEB, APP, "tcp", "8000-8100", stateful=False)])
    for port in list(range(7990, 8010)) + list(range(8090, 8110)) + [0, 1, 65535]:
        assert send(net, "a1", "a2", dport=port) == (8000 <= port <= 8100), port


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 65535), (1, 65534), (1000, 1999), (8080, 8080), (5, 17)])
def test_port_range_masks_cover_exactly(lo, hi):
    covered = {p for v, m in port_range_masks(lo, hi) for p in range(v, v + (0xFFFF & ~m) + 1)}
    assert covered == set(range(lo, hi + 1))


@pytest.mark.parametrize("src,dst,expect", [
    (Endpoint("zone", "zA"), ANY, {("a1", "a3"): True, ("a3", "a1"): False, ("a4", "a5"): True}),
    (ANY, Endpoint("subnet", "A2"), {("a1", "a3"): True, ("a3", "a1"): False, ("a4", "a3"): True}),
    (Endpoint("cidr", cidr="10.0.1.10/31"), ANY, {("a1", "a3"): True, ("a2", "a3"): True,
                                                 ("a4", "a3"): False}),
    (ANY, Endpoint("cidr", cidr="10.0.2.11/32"), {("a1", "a5"): True, ("a1", "a3"): False}),
    (WEB, ANY, {("a1", "a3"): True, ("a4", "a2"): True, ("a2", "a1"): False}),
    (ANY, ANY, {("a1", "a3"): True, ("a3", "a1"): True, ("a5", "a4"): True}),
])
def test_each_endpoint_type(src, dst, expect):
    net = net_of([rule("r", 10, src, dst, "tcp", "22")])
    for (s, d), allowed in expect.items():
        assert send(net, s, d, dport=22) == allowed, (s, d)
        assert not send(net, s, d, dport=23)


def test_any_to_any_without_service_is_one_plain_rule():
    net = net_of([rule("all", 10)])
    assert send(net, "a3", "a5", proto=17, dport=9)
    assert send(net, "a2", "a4", proto=47)


def test_icmp_type_and_code_and_stateful_echo_reply():
    net = net_of([rule("ping", 10, WEB, APP, "icmp", icmp_type=8, icmp_code=0)])
    assert send(net, "a1", "a2", proto=1, type=8, code=0)
    assert send(net, "a2", "a1", proto=1, type=0, code=0)  # the echo reply, by conntrack
    assert not send(net, "a1", "a2", proto=1, type=13, code=0)
    assert not send(net, "a1", "a2", proto=1, type=8, code=1)
    assert not send(net, "a2", "a1", proto=1, type=8, code=0)  # app may not ping web


def test_protocol_by_number_and_udp():
    net = net_of([rule("gre", 10, WEB, APP, 47, stateful=False), rule("dns", 11, WEB, DB, "udp", "53")])
    assert send(net, "a1", "a2", proto=47)
    assert not send(net, "a1", "a2", proto=50)
    assert send(net, "a1", "a3", proto=17, dport=53)
    assert not send(net, "a1", "a3", proto=6, dport=53)


def test_default_allow_with_deny_rules():
    net = net_of([rule("no-db", 10, WEB, DB, action="deny"), rule("db-no", 11, DB, WEB, action="deny")],
                 default="allow")
    assert not send(net, "a1", "a3", dport=5432)
    assert not send(net, "a3", "a1", dport=5432)
    assert send(net, "a1", "a2", dport=1234)
    assert send(net, "a2", "a4", dport=1234)
    assert reply(net, "a2", "a4", dport=1234)  # the default allow is stateful


def test_default_deny_drops_replies_of_nothing():
    net = net_of([])
    assert not reply(net, "a1", "a2")  # an unsolicited SYN-ACK (+inv) is not let through
    assert not send(net, "a1", "a2", flags=ACK)


def test_default_deny_counts_under_the_default_cookie_and_rules_under_their_own():
    net = net_of(THREE_TIER)
    sim = net.hosts["h1"]
    denied = sim.process(to_vport(V["a1"], V["a3"]), port_of("a1"))
    assert denied.dropped and cookie_for(CookieKind.ACL_DEFAULT, "A") in denied.cookies
    allowed = sim.process(to_vport(V["a1"], V["a2"], dport=8080), port_of("a1"))
    assert cookie_for(CookieKind.ACL_RULE, "web-app") in allowed.cookies


def test_rules_of_another_tenant_with_the_same_addresses_do_not_apply():
    b_rules = [rule("b-all", 1, Endpoint("cidr", cidr="10.0.0.0/8"), ANY, domain="B")]
    net = net_of(b_rules)
    assert not send(net, "a1", "a2")  # A is still default deny
    assert send(net, "b1", "b2")  # B's 10.0.1.10 -> 10.0.1.11 across hosts


def test_k_rules_between_the_same_groups_share_member_flows():
    ports = [str(8000 + i) for i in range(5)]
    rules = [rule(f"p{i}", 10 + i, WEB, APP, "tcp", p) for i, p in enumerate(ports)]
    flows = compile_host(views(rules)["h1"])
    member_flows = [f for f in flows if f.table == P.INGRESS_POLICY.number
                    and kind_of(f.cookie) == CookieKind.POLICY_MEMBER
                    and f.match_dict().get(P.REG_SRC_PORT.field) == port_of("a1")]
    assert len(member_flows) == 1  # one flow for web member a1 ...
    assert len([a for a in member_flows[0].actions if isinstance(a, Conjunction)]) == 5  # ... in 5 rules
    net = net_of(rules)
    for p in ports:
        assert send(net, "a1", "a2", dport=int(p))
    assert not send(net, "a1", "a2", dport=8005)


def test_removing_a_rule_keeps_connections_it_allowed_but_blocks_new_ones():
    fc = FlowCompiler()
    fc.update(views(THREE_TIER)["h1"])
    sim = TableSimulator(fc.desired())
    conn = to_vport(V["a1"], V["a2"], dport=8080)
    assert sim.process(conn, port_of("a1")).ports == [port_of("a2")]
    back = to_vport(V["a2"], V["a1"], sport=8080, dport=40000, flags=SYN | ACK)
    assert sim.process(back, port_of("a2")).ports == [port_of("a1")]
    sim.apply(fc.update(views(THREE_TIER[1:])["h1"]))
    assert sim.process(dict(conn, tcp_flags=ACK), port_of("a1")).ports == [port_of("a2")]  # established
    assert sim.process(dict(back, tcp_flags=ACK), port_of("a2")).ports == [port_of("a1")]
    assert sim.process(dict(conn, tcp_src=40001), port_of("a1")).dropped  # new connection


def test_membership_change_touches_only_that_members_flows():
    fc = FlowCompiler()
    fc.update(views(THREE_TIER)["h1"])
    sim = TableSimulator(fc.desired())
    assert sim.process(to_vport(V["a3"], V["a2"], dport=8080), port_of("a3")).dropped
    groups = dict(GROUPS, a3={"db", "web"})
    diff = fc.update(views(THREE_TIER, groups=groups)["h1"])
    assert {kind_of(f.cookie) for f in diff.add} == {CookieKind.POLICY_MEMBER}
    assert {f.cookie for f in diff.add} == {cookie_for(CookieKind.POLICY_MEMBER, "a3")}
    assert not diff.delete
    assert all(o[0] == "acl-member" and o[2] == "a3" for o in fc.recompiled if o[0].startswith("acl"))
    sim.apply(diff)
    assert sim.process(to_vport(V["a3"], V["a2"], dport=8080), port_of("a3")).ports == [port_of("a2")]


def test_incremental_policy_equals_full_compile():
    fc = FlowCompiler()
    steps = [THREE_TIER, THREE_TIER + [rule("x", 15, ANY, DB, action="deny")], THREE_TIER[:1], []]
    for rules in steps:
        view = views(rules)["h1"]
        fc.update(view)
        assert {f.key: f for f in fc.desired()} == {f.key: f for f in compile_host(view)}
        assert fc.conflicts == []


def test_flow_count_is_linear_in_members_and_ports():
    many = {f"w{i}": {"web"} for i in range(30)} | {f"p{i}": {"app"} for i in range(20)}
    from tests.unit.vrs_fixtures import vp

    extra = [vp(f"w{i}", "A", "A1", 0x80 + i, f"10.0.1.{100 + i}", "h1") for i in range(30)]
    extra += [vp(f"p{i}", "A", "A2", 0xC0 + i, f"10.0.2.{100 + i}", "h2") for i in range(20)]
    extra = [dataclasses.replace(v, policygroups=frozenset(many[v.id])) for v in extra]
    rules = [rule(f"k{i}", 10 + i, WEB, APP, "tcp", f"{9000 + i}") for i in range(10)]
    base = view_for("h1", vports=VPORTS + extra, acl_rules=[], policygroups=PGS)
    with_rules = base.replace(acl_rules=rules)
    policy = len(compile_host(with_rules)) - len(compile_host(base))
    n, m, k = 30, 20, 10
    assert policy < 3 * (n + m + k), policy


def test_membership_in_a_group_of_another_domain_is_ignored():
    groups = dict(GROUPS, b1={"web"})  # b1 is in domain B, "web" belongs to A
    net = net_of(THREE_TIER, groups=groups)
    assert not send(net, "b1", "b2", dport=8080)  # B is default deny and A's rule is not B's
    flows = compile_host(views(THREE_TIER, groups=groups)["h1"])
    assert cookie_for(CookieKind.POLICY_MEMBER, "b1") not in {f.cookie for f in flows}
