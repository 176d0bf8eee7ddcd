"""Incremental compilation, ownership (cookies), presence of domains, pipeline declarations."""

from __future__ import annotations

import dataclasses

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import FlowCompiler, compile_host
from nuage_ryu.vrs.cookies import (
    CANARY_COOKIE,
    FULL_MASK,
    KIND_MASK,
    CookieKind,
    cookie_for,
    is_ours,
    kind_cookie,
    kind_of,
)
from nuage_ryu.vrs.flow import Goto, index
from nuage_ryu.vrs.simulator import TableSimulator
from nuage_ryu.vrs.view import Domain, Host, HostView, LocalPort, Subnet, VPort, from_directory
from tests.unit.vrs_fixtures import BY_ID, TUN, VPORTS, port_of, to_vport, view_for, vp

a1, a2, a4 = BY_ID["a1"], BY_ID["a2"], BY_ID["a4"]


def cookies_of(flows):
    return {f.cookie for f in flows}


# ---- incremental updates ------------------------------------------------------------


def test_unchanged_view_gives_empty_diff():
    fc = FlowCompiler()
    assert fc.update(view_for("h1"))
    assert not fc.update(view_for("h1"))
    assert fc.recompiled == []


def test_moving_a_remote_vport_touches_only_its_flows():
    fc = FlowCompiler()
    fc.update(view_for("h1"))
    moved = dataclasses.replace(a4, ip="10.0.1.77")
    diff = fc.update(view_for("h1", vports=[moved if v.id == "a4" else v for v in VPORTS]))
    assert fc.recompiled == [("vport", "a4")]
    assert cookies_of(diff.add) | cookies_of(diff.delete) == {cookie_for(CookieKind.REMOTE_VPORT, "a4")}
    sim = TableSimulator(fc.desired())
    res = sim.process(to_vport(a1, moved), port_of("a1"))
    assert res.outputs[0].tunnel == (1001, "192.168.0.2")
    assert sim.process(to_vport(a1, a4), port_of("a1")).dropped  # the old address is gone


def test_incremental_result_equals_full_compile_after_a_series_of_changes():
    fc = FlowCompiler()
    fc.update(view_for("h1"))
    vports = list(VPORTS)
    steps = [
        vports + [vp("a6", "A", "A2", 0x16, "10.0.2.12", "h2")],  # new remote vport
        [v for v in vports if v.id != "a2"],  # local vport deleted
        [dataclasses.replace(v, host="h2") if v.id == "a3" else v for v in vports],  # migrated away
        vports,
    ]
    for step in steps:
        view = view_for("h1", vports=step)
        fc.update(view)
        assert index(fc.desired()) == index(compile_host(view))


def test_deleting_a_local_vport_removes_all_its_flows_and_only_them():
    fc = FlowCompiler()
    fc.update(view_for("h1"))
    mine = cookie_for(CookieKind.VPORT, "a2")
    owned = [f for f in fc.desired() if f.cookie == mine]
    assert len(owned) >= 6
    diff = fc.update(view_for("h1", vports=[v for v in VPORTS if v.id != "a2"]))
    assert not diff.add
    assert sorted(f.key for f in diff.delete) == sorted(f.key for f in owned)
    sim = TableSimulator(fc.desired())
    assert sim.process(to_vport(a1, a2), port_of("a1")).dropped


def test_a_new_domain_on_the_host_appears_and_disappears_with_its_first_and_last_vport():
    fc = FlowCompiler()
    fc.update(view_for("h1"))
    c2 = vp("c2", "C", "C1", 0x32, "10.9.0.11", "h1")
    view = view_for("h1", vports=VPORTS + [c2]).replace(local_ports=[
        *view_for("h1").local_ports.values(), LocalPort("c2", 9)])
    diff = fc.update(view)
    kinds = {kind_of(f.cookie) for f in diff.add}
    assert {CookieKind.DOMAIN, CookieKind.SUBNET, CookieKind.VPORT, CookieKind.REMOTE_VPORT} <= kinds
    diff = fc.update(view_for("h1"))
    assert not diff.add and {kind_of(f.cookie) for f in diff.delete} == kinds


def test_changing_a_vports_ofport_moves_its_delivery():
    fc = FlowCompiler()
    fc.update(view_for("h1"))
    ports = [LocalPort(p.vport_id, 12 if p.vport_id == "a2" else p.ofport)
             for p in view_for("h1").local_ports.values()]
    diff = fc.update(view_for("h1").replace(local_ports=ports))
    assert cookies_of(diff.add) == {cookie_for(CookieKind.VPORT, "a2")}
    assert TableSimulator(fc.desired()).process(to_vport(a1, a2), port_of("a1")).ports == [12]


# ---- presence: a host's flows follow its own domains ------------------------------------


def test_only_domains_present_on_the_host_produce_flows():
    h3 = compile_host(view_for("h3"))
    vnis = {m.value for f in h3 for m in f.match if m.name == P.REG_DOMAIN.field}
    assert vnis == {1003}
    assert all(kind_of(f.cookie) != CookieKind.REMOTE_VPORT for f in h3)  # c1 is alone in C


def test_vports_of_absent_domains_do_not_grow_a_hosts_flows():
    before = len(compile_host(view_for("h1")))
    more = [vp(f"c{i}", "C", "C1", 0x40 + i, f"10.9.0.{20 + i}", "h3") for i in range(50)]
    assert len(compile_host(view_for("h1", vports=VPORTS + more))) == before
    fc = FlowCompiler()
    fc.update(view_for("h1"))
    assert not fc.update(view_for("h1", vports=VPORTS + more))


# ---- cookies, canary, pipeline declarations ------------------------------------------------


def test_cookie_kind_round_trip_and_masks():
    for kind in CookieKind:
        c = cookie_for(kind, "some-id")
        assert kind_of(c) == kind and is_ours(c)
        assert c & KIND_MASK == kind_cookie(kind)
        assert c & FULL_MASK == c < 2**64
    assert cookie_for(CookieKind.VPORT, "x") != cookie_for(CookieKind.VPORT, "y")
    assert cookie_for(CookieKind.VPORT, "x") != cookie_for(CookieKind.REMOTE_VPORT, "x")
    assert kind_of(0) is None and kind_of(0xAB << 56) is None


def test_every_flow_has_a_cookie_of_ours_and_the_canary_is_there():
    flows = compile_host(view_for("h1"))
    assert all(is_ours(f.cookie) for f in flows)
    canaries = [f for f in flows if f.cookie == CANARY_COOKIE]
    assert len(canaries) == 1 and canaries[0].table == P.CANARY.number


def test_flows_use_only_declared_tables_fields_and_edges():
    for host in ("h1", "h2", "h3"):
        for f in compile_host(view_for(host)):
            table = P.table_of(f.table)
            assert {m.name for m in f.match} <= table.match_fields, (table.name, f)
            for a in f.actions:
                if isinstance(a, Goto):
                    assert P.table_of(a.table).name in table.next_tables, (table.name, f)


def test_tables_are_declared_once():
    assert len({t.number for t in P.TABLES}) == len(P.TABLES)
    assert len({t.name for t in P.TABLES}) == len(P.TABLES)
    assert len({r.field for r in P.REGISTERS}) == len(P.REGISTERS)


def test_acl_priority_order():
    assert P.acl_priority(1) > P.acl_priority(2) > P.acl_priority(65535) > P.PRIO_DEFAULT_ACTION


def test_no_tunnel_port_yet_means_remote_vports_unreachable_but_local_fine():
    view = view_for("h1").replace(tunnel_port_ofport=None)
    sim = TableSimulator(compile_host(view))
    assert sim.process(to_vport(a1, a4), port_of("a1")).dropped
    assert sim.process(to_vport(a1, a2), port_of("a1")).ports == [port_of("a2")]
    assert TUN not in {f.match_dict().get("in_port") for f in compile_host(view)}


# ---- mapping from the directory -----------------------------------------------------------------


def test_from_directory_maps_a_snapshot():
    from nuage_ryu.directory import model as M

    state = M.DirectoryState.from_objects([
        M.Domain("d1", "e1", "dom", 5000, 7, "02:00:00:aa:00:01", "allow"),
        M.Domain("d2", "e1", "elsewhere", 5001, 8, "02:00:00:aa:00:02"),
        M.Zone("z1", "d1", "zone"),
        M.Subnet("s1", "z1", "d1", "net", "10.1.0.0/24", "10.1.0.1"),
        M.VPort("v1", "s1", "d1", "p1", "10.1.0.5", "02:00:00:00:05:01", "10.1.0.1", host="hx"),
        M.VPort("v2", "s1", "d1", "p2", "10.1.0.6", "02:00:00:00:05:02", "10.1.0.1", host="hy"),
        M.Host("H1", "hx", "192.168.9.1"),
        M.Host("H2", "hy", "192.168.9.2"),
    ])
    view = from_directory(state, "hx", TUN, {"v1": 5})
    assert set(view.domains) == {"d1"}
    assert view.domains["d1"] == Domain("d1", 5000, "02:00:00:aa:00:01", "allow", 7)
    assert view.subnets["s1"] == Subnet("s1", "d1", "10.1.0.0/24", "10.1.0.1", "z1")
    assert view.vports["v2"] == VPort("v2", "d1", "s1", "02:00:00:00:05:02", "10.1.0.6", "hy")
    assert view.hosts["hy"] == Host("hy", "192.168.9.2")
    sim = TableSimulator(compile_host(view))
    pkt = {"eth_src": "02:00:00:00:05:01", "eth_dst": "02:00:00:00:05:02", "eth_type": 0x0800,
           "ipv4_src": "10.1.0.5", "ipv4_dst": "10.1.0.6", "ip_proto": 17, "udp_src": 1, "udp_dst": 2}
    assert sim.process(pkt, 5).outputs[0].tunnel == (5000, "192.168.9.2")


def test_hostview_is_plain_data():
    v = HostView.of("h", None)
    assert v.present_domains() == frozenset() and compile_host(v)  # the skeleton only


def test_conflicting_directory_data_is_reported_not_fatal():
    # A vport that claims its subnet's gateway address: two ARP answers for one IP.
    squatter = vp("a9", "A", "A1", 0x19, "10.0.1.1", "h2")
    fc = FlowCompiler()
    fc.update(view_for("h1", vports=VPORTS + [squatter]))
    assert fc.conflicts and {o[0] for o in fc.conflicts[0][1]} == {"subnet", "vport"}
    arp = [f for f in fc.desired() if f.table == P.ARP_RESPONDER.number
           and f.match_dict().get("arp_tpa") == "10.0.1.1" and f.match_dict()[P.REG_DOMAIN.field] == 1001]
    assert len(arp) == 1  # one deterministic winner, the switch gets a consistent table


def test_compiler_match_is_the_canonical_flow_match():
    from nuage_ryu.vrs import compile as compiler
    from nuage_ryu.vrs import flow as F

    fields = {"reg6": 5, "eth_type": 0x800, "ipv4_dst": ("10.0.0.0", "255.0.0.0"), "tcp_dst": (80, 0xFFF0),
              "arp_tpa": "10.0.0.1", "in_port": 3}
    assert compiler.match(**fields) == F.match(**fields)
    assert compiler.match() == F.match()
