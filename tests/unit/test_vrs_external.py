"""Egress NAT, floating IPs and published ports as packet stories on the simulator (docs/external.md)."""

from __future__ import annotations

import dataclasses

import pytest

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import FlowCompiler, compile_host, external, uplink
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import Goto, Output
from nuage_ryu.vrs.simulator import TableSimulator
from nuage_ryu.vrs.view import AclRule, Endpoint, ExternalUplink, PublishedPort
from tests.unit.vrs_fixtures import ACK, BY_ID, ROUTER_A, ROUTER_B, SYN, VPORTS, domains, ip_packet, port_of, view_for

PATCH = 90
HOST_IP = "192.0.2.11"
BR_PHY_MAC = "0a:00:00:00:00:0b"
UPLINK = ExternalUplink(HOST_IP, BR_PHY_MAC, PATCH)
SERVER = "203.0.113.80"
FIP = "192.0.2.200"
a1, a2, a4, b1 = BY_ID["a1"], BY_ID["a2"], BY_ID["a4"], BY_ID["b1"]


def with_egress(*domain_ids, default_action="allow"):
    return [dataclasses.replace(d, egress_nat=d.id in domain_ids) for d in domains(default_action)]


def sim(vports=VPORTS, egress=("A", "B"), default_action="allow", rules=(), host="h1", uplink=UPLINK):
    view = view_for(host, vports=vports, default_action=default_action).replace(
        domains=with_egress(*egress, default_action=default_action), acl_rules=rules, external=uplink)
    return TableSimulator(compile_host(view)), view


def out_to_outside(vport, router, sport=40000, dport=80, proto=6):
    return ip_packet(vport, SERVER, router, proto=proto, sport=sport, dport=dport)


def reply_from_outside(to_port, sport=80, flags=SYN | ACK, dst=HOST_IP):
    return {"eth_src": "0a:00:00:00:00:01", "eth_dst": external.external_mac(HOST_IP), "eth_type": 0x0800,
            "ipv4_src": SERVER, "ipv4_dst": dst, "ip_proto": 6, "nw_ttl": 63, "tcp_src": sport,
            "tcp_dst": to_port, "tcp_flags": flags}


def test_two_tenants_with_the_same_address_both_get_their_own_replies():
    s, _ = sim()
    seen = []
    for vport, router in ((a1, ROUTER_A), (b1, ROUTER_B)):
        res = s.process(out_to_outside(vport, router), port_of(vport.id))
        assert res.ports == [PATCH], res.format()
        pkt = res.outputs[0].packet
        assert pkt["ipv4_src"] == HOST_IP and pkt["ipv4_dst"] == SERVER
        assert 61000 <= pkt["tcp_src"] <= 65535
        assert pkt["eth_dst"] == BR_PHY_MAC and pkt["eth_src"] == external.external_mac(HOST_IP)
        assert pkt["nw_ttl"] == 63
        seen.append(pkt["tcp_src"])
    assert seen[0] != seen[1]  # same private tuple, two connections, two host ports
    for vport, port in ((a1, seen[0]), (b1, seen[1])):
        res = s.process(reply_from_outside(port), PATCH)
        assert res.ports == [port_of(vport.id)], res.format()
        pkt = res.outputs[0].packet
        assert (pkt["ipv4_dst"], pkt["tcp_dst"], pkt["eth_dst"]) == (vport.ip, 40000, vport.mac)


def test_egress_off_means_no_path_out():
    s, _ = sim(egress=("B",))
    assert s.process(out_to_outside(a1, ROUTER_A), port_of("a1")).dropped
    assert s.process(out_to_outside(b1, ROUTER_B), port_of("b1")).ports == [PATCH]


def test_no_uplink_no_external_flows():
    s, view = sim(uplink=None)
    assert s.process(out_to_outside(b1, ROUTER_B), port_of("b1")).dropped
    assert not [f for f in compile_host(view) if P.table_of(f.table).name.startswith("EXT_")]


def test_a_policy_deny_on_an_outside_cidr_blocks_egress_before_nat():
    deny = AclRule("r1", "A", 10, destination=Endpoint("cidr", cidr="203.0.113.0/24"), action="deny")
    s, _ = sim(rules=[deny])
    res = s.process(out_to_outside(a1, ROUTER_A), port_of("a1"))
    assert res.dropped
    assert P.INGRESS_POLICY.number in [step.table for step in res.trace]  # decided on the private address
    other = ip_packet(a1, "198.51.100.7", ROUTER_A, sport=40001, dport=443)
    assert s.process(other, port_of("a1")).ports == [PATCH]


def test_default_deny_needs_an_allow_rule_to_leave():
    s, _ = sim(default_action="deny")
    assert s.process(out_to_outside(a1, ROUTER_A), port_of("a1")).dropped
    allow = AclRule("r1", "A", 10, source=Endpoint("subnet", id="A1"),
                    destination=Endpoint("cidr", cidr="0.0.0.0/0"), protocol="tcp", dst_ports="80")
    s, _ = sim(default_action="deny", rules=[allow])
    res = s.process(out_to_outside(a1, ROUTER_A), port_of("a1"))
    assert res.ports == [PATCH]
    back = s.process(reply_from_outside(res.outputs[0].packet["tcp_src"]), PATCH)
    assert back.ports == [port_of("a1")]  # the stateful allow lets the reply in


def test_an_unknown_address_of_the_domain_never_leaves():
    s, _ = sim()
    assert s.process(ip_packet(a1, "10.0.1.99", ROUTER_A), port_of("a1")).dropped
    assert s.process(ip_packet(a1, "10.0.2.99", ROUTER_A), port_of("a1")).dropped


def test_an_unsolicited_packet_from_outside_is_dropped():
    s, _ = sim()
    assert s.process(reply_from_outside(62000, flags=SYN), PATCH).dropped


def fip_vports(vport_id="a1", fip=FIP, published=()):
    return [dataclasses.replace(v, floating_ip=fip, published=published) if v.id == vport_id else v
            for v in VPORTS]


def test_floating_ip_inbound_reaches_its_vport_and_replies_leave_from_it():
    s, _ = sim(vports=fip_vports(), egress=())  # a floating IP works without egress NAT
    inbound = {**reply_from_outside(80, flags=SYN, dst=FIP), "tcp_src": 50000, "tcp_dst": 22}
    res = s.process(inbound, PATCH)
    assert res.ports == [port_of("a1")], res.format()
    assert res.outputs[0].packet["ipv4_dst"] == a1.ip
    reply = ip_packet(a1, SERVER, ROUTER_A, sport=22, dport=50000, flags=SYN | ACK)
    out = s.process(reply, port_of("a1"))
    assert out.ports == [PATCH], out.format()
    assert (out.outputs[0].packet["ipv4_src"], out.outputs[0].packet["tcp_src"]) == (FIP, 22)


def test_floating_ip_vport_opens_connections_from_its_floating_ip():
    s, _ = sim(vports=fip_vports(), egress=())
    res = s.process(out_to_outside(a1, ROUTER_A), port_of("a1"))
    assert res.outputs[0].packet["ipv4_src"] == FIP and res.outputs[0].packet["tcp_src"] == 40000
    # Its neighbour without a floating IP has no way out (egress NAT is off).
    assert s.process(out_to_outside(a2, ROUTER_A), port_of("a2")).dropped


def test_arp_for_the_floating_ip_is_answered_from_the_patch_port():
    s, _ = sim(vports=fip_vports(), egress=())
    req = {"eth_src": "0a:00:00:00:00:01", "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806, "arp_op": 1,
           "arp_sha": "0a:00:00:00:00:01", "arp_spa": "192.0.2.1", "arp_tha": "00:00:00:00:00:00",
           "arp_tpa": FIP}
    res = s.process(req, PATCH)
    assert res.ports == [PATCH]
    pkt = res.outputs[0].packet
    assert (pkt["arp_op"], pkt["arp_spa"], pkt["arp_sha"]) == (2, FIP, external.external_mac(HOST_IP))
    assert s.process({**req, "arp_tpa": "192.0.2.201"}, PATCH).dropped


def test_floating_ip_only_on_the_host_where_the_vport_runs():
    moved = [dataclasses.replace(v, floating_ip=FIP) if v.id == "a4" else v for v in VPORTS]  # a4 is on h2
    h1, _ = sim(vports=moved, egress=())
    h2, _ = sim(vports=moved, egress=(), host="h2", uplink=ExternalUplink("192.0.2.12", BR_PHY_MAC, PATCH))
    inbound = {**reply_from_outside(80, flags=SYN, dst=FIP), "tcp_src": 50000, "tcp_dst": 22}
    assert h1.process(inbound, PATCH).dropped
    assert h2.process(inbound, PATCH).ports == [port_of("a4")]


def test_published_port_reaches_the_container_port_and_replies_leave_from_the_host_port():
    published = (PublishedPort("tcp", 8080, 80),)
    s, _ = sim(vports=fip_vports(fip=None, published=published), egress=())
    inbound = {**reply_from_outside(8080, flags=SYN), "tcp_src": 50000}
    res = s.process(inbound, PATCH)
    assert res.ports == [port_of("a1")], res.format()
    pkt = res.outputs[0].packet
    assert (pkt["ipv4_dst"], pkt["tcp_dst"], pkt["ipv4_src"]) == (a1.ip, 80, SERVER)
    reply = ip_packet(a1, SERVER, ROUTER_A, sport=80, dport=50000, flags=SYN | ACK)
    out = s.process(reply, port_of("a1"))
    assert out.ports == [PATCH], out.format()
    assert (out.outputs[0].packet["ipv4_src"], out.outputs[0].packet["tcp_src"]) == (HOST_IP, 8080)
    # The next packet of the client's connection follows the same translation.
    again = s.process({**inbound, "tcp_flags": ACK}, PATCH)
    assert again.ports == [port_of("a1")] and again.outputs[0].packet["tcp_dst"] == 80
    # Another host port is not published; egress NAT is off so the vport cannot start connections.
    assert s.process({**inbound, "tcp_dst": 8081}, PATCH).dropped
    assert s.process(out_to_outside(a1, ROUTER_A), port_of("a1")).dropped


def test_published_port_under_default_deny_needs_an_inbound_rule():
    published = (PublishedPort("tcp", 8080, 80),)
    inbound = {**reply_from_outside(8080, flags=SYN), "tcp_src": 50000}
    s, _ = sim(vports=fip_vports(fip=None, published=published), egress=(), default_action="deny")
    assert s.process(inbound, PATCH).dropped
    rule = AclRule("r1", "A", 10, source=Endpoint("cidr", cidr="0.0.0.0/0"),
                   destination=Endpoint("subnet", id="A1"), protocol="tcp", dst_ports="80")
    s, _ = sim(vports=fip_vports(fip=None, published=published), egress=(), default_action="deny", rules=[rule])
    assert s.process(inbound, PATCH).ports == [port_of("a1")]


def test_external_flows_use_only_declared_tables_fields_and_edges():
    published = (PublishedPort("udp", 5353, 53),)
    _, view = sim(vports=fip_vports(published=published))
    for f in compile_host(view):
        table = P.table_of(f.table)
        assert {m.name for m in f.match} <= table.match_fields, (table.name, f)
        for a in f.actions:
            if isinstance(a, Goto):
                assert P.table_of(a.table).name in table.next_tables, (table.name, f)
                assert a.table > f.table


def test_switching_egress_nat_changes_only_that_domains_external_flows():
    _, view = sim(egress=())
    fc = FlowCompiler()
    fc.update(view)
    diff = fc.update(view.replace(domains=with_egress("A")))
    assert ("external", "A") in fc.recompiled
    assert diff.add and not diff.delete
    assert {f.cookie >> 56 for f in diff.add} == {11}  # EXTERNAL: nothing else changes on the switch
    off = fc.update(view)
    assert off.delete and not off.add and {f.cookie >> 56 for f in off.delete} == {11}


def test_uplink_steering_flows():
    published = (PublishedPort("tcp", 8080, 80),)
    _, view = sim(vports=fip_vports(published=published))
    steering = uplink.uplink_view(view, uplink_ofport=1, patch_ofport=2)
    assert steering.floating_ips == (FIP,) and steering.published == (("tcp", 8080),)
    flows = uplink.compile_uplink(steering)
    steer = {(f.match_dict().get("ipv4_dst"), f.match_dict().get("tcp_dst"), f.match_dict().get("arp_tpa"))
             for f in flows if f.priority == P.PRIO_UPLINK_STEER}
    assert steer == {(HOST_IP, 8080, None), (FIP, None, None), (None, None, FIP)}
    assert all(f.table in (0, 1) for f in flows)
    assert all(Output(2) in f.actions for f in flows if f.priority == P.PRIO_UPLINK_STEER)
    for f in flows:
        table = P.UPLINK_TABLES[f.table]
        assert {m.name for m in f.match} <= table.match_fields
    assert uplink.compile_uplink(None) == []


@pytest.mark.parametrize("ct_zone", [0, 0x8000])
def test_domains_outside_the_nat_zone_range_get_no_external_flows(ct_zone):
    _, view = sim()
    doms = [dataclasses.replace(d, ct_zone=ct_zone) if d.id == "A" else d for d in view.domains.values()]
    flows = compile_host(view.replace(domains=doms))
    assert not [f for f in flows if f.cookie == cookie_for(CookieKind.EXTERNAL, "A")]
