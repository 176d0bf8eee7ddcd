"""Per-vport policy drops: what policy denies ends on the vport's own drop flow, counted by direction."""

from __future__ import annotations

import dataclasses

from nuage_ryu.agent import drops
from nuage_ryu.agent.drops import FROM_VPORT, TO_VPORT, DropKey, DropPoll, aggregate, drop_index
from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.simulator import TableSimulator
from nuage_ryu.vrs.view import AclRule, Endpoint, PolicyGroup, PublishedPort
from tests.unit.test_vrs_external import PATCH, fip_vports, reply_from_outside, sim
from tests.unit.vrs_fixtures import BY_ID, TUN, port_of, to_vport, view_for

a1, a2, a4 = BY_ID["a1"], BY_ID["a2"], BY_ID["a4"]
FROM_H2_TUNNEL_IP = "192.168.0.2"


def last_step(result):
    step = result.trace[-1]
    return step.table, step.priority, step.cookie


def test_a_default_deny_from_a_local_vport_ends_on_its_sent_drop_flow():
    sim = TableSimulator(compile_host(view_for("h1", default_action="deny")))
    res = sim.process(to_vport(a1, a2), port_of("a1"))
    assert res.dropped
    assert last_step(res) == (P.POLICY_DROP.number, P.PRIO_DROP_SENT, cookie_for(CookieKind.VPORT, "a1"))


def test_a_deny_rule_for_traffic_from_the_overlay_ends_on_the_receivers_drop_flow():
    # allow by default, one deny rule: a4 (h2) may not reach the "locked" group (a1 on h1)
    locked = [dataclasses.replace(a1, policygroups=frozenset({"locked"}))]
    vports = locked + [v for v in view_for("h1").vports.values() if v.id != "a1"]
    rule = AclRule("deny-locked", "A", 10, destination=Endpoint("policygroup", "locked"), action="deny")
    view = view_for("h1", vports=vports, policygroups=[PolicyGroup("locked", "A")], acl_rules=[rule])
    sim = TableSimulator(compile_host(view))
    pkt = dict(to_vport(a4, a1), tunnel_id=1001, tun_ipv4_src=FROM_H2_TUNNEL_IP)
    res = sim.process(pkt, TUN)
    assert res.dropped
    assert last_step(res) == (P.POLICY_DROP.number, P.PRIO_DROP_RECEIVED, cookie_for(CookieKind.VPORT, "a1"))
    # the verdict flow of the rule was on the way (its counter counts it too)
    assert cookie_for(CookieKind.ACL_RULE, "deny-locked") in res.cookies
    # what the rule allows is not counted as a drop
    assert not sim.process(dict(to_vport(a4, BY_ID["a2"]), tunnel_id=1001, tun_ipv4_src=FROM_H2_TUNNEL_IP),
                           TUN).dropped


def test_allowed_traffic_never_reaches_the_drop_table():
    sim = TableSimulator(compile_host(view_for("h1", default_action="allow")))
    res = sim.process(to_vport(a1, a2), port_of("a1"))
    assert res.ports == [port_of("a2")]
    assert P.POLICY_DROP.number not in [s.table for s in res.trace]


def test_each_local_vport_has_one_drop_flow_each_way_and_remote_ones_none():
    flows = [f for f in compile_host(view_for("h1", default_action="deny")) if f.table == P.POLICY_DROP.number]
    by_cookie = {}
    for f in flows:
        by_cookie.setdefault(f.cookie, set()).add(f.priority)
    for vid in ("a1", "a2", "a3", "b1"):
        assert by_cookie.pop(cookie_for(CookieKind.VPORT, vid)) == {P.PRIO_DROP_SENT, P.PRIO_DROP_RECEIVED}
    assert set(by_cookie) == {cookie_for(CookieKind.STATIC, "pipeline")}  # only the table-miss drop is left


def test_aggregate_sums_per_vport_and_direction_and_ignores_the_rest():
    index = drop_index(["a1", "a2"])
    c1 = cookie_for(CookieKind.VPORT, "a1")
    out = aggregate(index, [
        (drops.DROP_TABLE, P.PRIO_DROP_SENT, c1, 3, 300),
        (drops.DROP_TABLE, P.PRIO_DROP_RECEIVED, c1, 2, 128),
        (drops.DROP_TABLE, P.PRIO_TABLE_MISS, cookie_for(CookieKind.STATIC, "pipeline"), 9, 9),  # not a vport's
        (P.CLASSIFY.number, P.PRIO_DROP_SENT, c1, 7, 7),  # another table: the vport's port flows
    ])
    assert (out[DropKey("a1", FROM_VPORT)].packets, out[DropKey("a1", FROM_VPORT)].bytes) == (3, 300)
    assert out[DropKey("a1", TO_VPORT)].packets == 2
    assert out[DropKey("a2", FROM_VPORT)].packets == 0  # known vport, nothing dropped: reported as 0
    assert len(out) == 4


def test_poll_collects_a_multipart_reply_and_forgets_on_reconnect():
    poll = DropPoll()
    index = drop_index(["a1"])
    c1 = cookie_for(CookieKind.VPORT, "a1")
    assert poll.due()
    poll.requested(7)
    assert not poll.due() and poll.awaits(7) and not poll.awaits(8)
    assert poll.received(index, [(drops.DROP_TABLE, P.PRIO_DROP_SENT, c1, 1, 10)], more=True) is None
    totals = poll.received(index, [(drops.DROP_TABLE, P.PRIO_DROP_SENT, c1, 2, 20)], more=False)
    assert totals[DropKey("a1", FROM_VPORT)].packets == 3
    assert poll.due()
    poll.requested(9)
    poll.forget()
    assert poll.due() and not poll.awaits(9)


def test_a_connection_from_outside_denied_by_default_counts_as_the_published_vports_to_vport_drop():
    published = (PublishedPort("tcp", 8080, 80),)
    s, _ = sim(vports=fip_vports(fip=None, published=published), egress=(), default_action="deny")
    res = s.process({**reply_from_outside(8080, flags=0x02), "tcp_src": 50000}, PATCH)
    assert res.dropped
    assert last_step(res) == (P.POLICY_DROP.number, P.PRIO_DROP_RECEIVED, cookie_for(CookieKind.VPORT, "a1"))
