"""Behaviour of the compiled pipeline: where does each packet go? (simulator-based)."""

from __future__ import annotations

import dataclasses

import pytest

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.simulator import TableSimulator
from tests.unit.vrs_fixtures import (
    BY_ID,
    ROUTER_A,
    ROUTER_B,
    TUN,
    arp_request,
    ip_packet,
    overlay,
    port_of,
    sim_for,
    to_vport,
    view_for,
)

a1, a2, a3, a4, a5 = (BY_ID[f"a{i}"] for i in range(1, 6))
b1, b2, b3 = (BY_ID[f"b{i}"] for i in range(1, 4))


@pytest.fixture
def h1():
    return sim_for("h1")


@pytest.fixture
def net():
    return overlay()


# ---- unicast forwarding -------------------------------------------------------------


def test_same_subnet_same_host_is_delivered_unchanged(h1):
    pkt = to_vport(a1, a2)
    res = h1.process(pkt, port_of("a1"))
    assert res.ports == [port_of("a2")]
    out = res.outputs[0].packet
    assert (out["eth_src"], out["eth_dst"], out["nw_ttl"]) == (a1.mac, a2.mac, 64)
    assert res.outputs[0].tunnel is None


def test_across_subnets_same_host_is_routed_on_first_hop(h1):
    res = h1.process(to_vport(a1, a3, ttl=9), port_of("a1"))
    assert res.ports == [port_of("a3")]
    out = res.outputs[0].packet
    assert out["eth_src"] == ROUTER_A and out["eth_dst"] == a3.mac
    assert out["nw_ttl"] == 8
    assert out["ipv4_src"] == a1.ip and out["ipv4_dst"] == a3.ip  # no NAT


def test_routed_packet_with_ttl_1_is_dropped(h1):
    assert h1.process(to_vport(a1, a3, ttl=1), port_of("a1")).dropped


def test_l2_to_a_mac_of_another_subnet_is_dropped(h1):
    # a1 (A1) addresses a3 (A2) directly by MAC, bypassing the router: not on its link.
    assert h1.process(ip_packet(a1, a3.ip, a3.mac), port_of("a1")).dropped


def test_remote_destination_is_tunnelled_with_domain_vni_and_host_tunnel_ip(h1):
    res = h1.process(to_vport(a1, a4), port_of("a1"))
    assert res.ports == [TUN]
    assert res.outputs[0].tunnel == (1001, "192.168.0.2")


def test_remote_destination_other_tenant_uses_its_own_vni(h1):
    res = h1.process(to_vport(b1, b2), port_of("b1"))
    assert res.outputs[0].tunnel == (1002, "192.168.0.2")


def test_across_hosts_same_subnet_reaches_the_vport(net):
    (host, d), = net.send("h1", to_vport(a1, a4), port_of("a1"))
    assert (host, d.port) == ("h2", port_of("a4"))
    assert d.packet["eth_dst"] == a4.mac and d.packet["nw_ttl"] == 64


def test_across_hosts_across_subnets_is_routed_once(net):
    (host, d), = net.send("h1", to_vport(a1, a5, ttl=64), port_of("a1"))
    assert (host, d.port) == ("h2", port_of("a5"))
    assert d.packet["eth_src"] == ROUTER_A and d.packet["eth_dst"] == a5.mac
    assert d.packet["nw_ttl"] == 63  # decremented on the first hop only


def test_every_pair_in_a_domain_is_reachable(net):
    members = [a1, a2, a3, a4, a5]
    for src in members:
        for dst in members:
            if src is dst:
                continue
            got = net.send(src.host, to_vport(src, dst), port_of(src.id))
            assert [(h, d.port) for h, d in got] == [(dst.host, port_of(dst.id))], (src.id, dst.id)


def test_from_tunnel_delivered_to_local_vport_of_that_vni(h1):
    pkt = dict(to_vport(a4, a1), tunnel_id=1001, **FROM_H2)
    res = h1.process(pkt, TUN)
    assert res.ports == [port_of("a1")]


FROM_H2 = {"tun_ipv4_src": "192.168.0.2"}


def test_from_tunnel_with_other_vni_is_not_delivered(h1):
    # Same MAC/IP as a1 but the VNI of tenant B: B's 10.0.1.10 is b1, whose MAC differs.
    pkt = dict(to_vport(a4, a1), tunnel_id=1002, **FROM_H2)
    assert h1.process(pkt, TUN).dropped
    assert h1.process(dict(to_vport(a4, a1), tunnel_id=4242, **FROM_H2), TUN).dropped


def test_from_tunnel_for_a_vport_not_on_this_host_is_not_sent_back(h1):
    pkt = dict(to_vport(a1, a5), tunnel_id=1001, **FROM_H2)
    pkt["eth_src"], pkt["eth_dst"] = ROUTER_A, a5.mac
    assert h1.process(pkt, TUN).dropped


def test_from_tunnel_arp_is_dropped(h1):
    assert h1.process(dict(arp_request(a4, a1.ip), tunnel_id=1001, **FROM_H2), TUN).dropped


def test_from_tunnel_only_hosts_of_the_domain_may_send_on_its_vni(h1):
    pkt = dict(to_vport(a4, a1), tunnel_id=1001)
    assert h1.process(dict(pkt, tun_ipv4_src="192.168.0.2"), TUN).ports == [port_of("a1")]
    assert h1.process(dict(pkt, tun_ipv4_src="192.168.0.3"), TUN).dropped  # h3 has no vport of A
    assert h1.process(dict(pkt, tun_ipv4_src="192.168.9.9"), TUN).dropped  # not a host at all
    b = dict(to_vport(b2, b1), tunnel_id=1002)
    assert h1.process(dict(b, tun_ipv4_src="192.168.0.2"), TUN).ports == [port_of("b1")]


def test_from_tunnel_a_peer_host_can_send_only_as_its_own_vports():
    # The receiver's policy matches remote senders by IP: a (compromised) h2 must not be able to claim
    # the address of a vport living on h3, of one of h1's own vports, or of nobody.
    from tests.unit.vrs_fixtures import VPORTS, vp

    a6 = vp("a6", "A", "A1", 0x16, "10.0.1.13", "h3")
    sim = TableSimulator(compile_host(view_for("h1", vports=VPORTS + [a6])))
    pkt = dict(to_vport(a4, a1), tunnel_id=1001)
    assert sim.process(dict(pkt, **FROM_H2), TUN).ports == [port_of("a1")]  # a4 lives on h2
    for claimed in (a6.ip, a2.ip, "10.0.1.99"):
        assert sim.process(dict(pkt, ipv4_src=claimed, **FROM_H2), TUN).dropped, claimed
    assert sim.process(dict(pkt, ipv4_src=a6.ip, tun_ipv4_src="192.168.0.3"), TUN).ports == [port_of("a1")]


def test_from_tunnel_a_vport_that_moved_is_accepted_only_from_its_new_host():
    from tests.unit.vrs_fixtures import VPORTS

    moved = [dataclasses.replace(v, host="h3") if v.id == "a4" else v for v in VPORTS]
    sim = TableSimulator(compile_host(view_for("h1", vports=moved)))
    pkt = dict(to_vport(a4, a1), tunnel_id=1001)
    assert sim.process(dict(pkt, **FROM_H2), TUN).dropped
    assert sim.process(dict(pkt, tun_ipv4_src="192.168.0.3"), TUN).ports == [port_of("a1")]


def test_a_host_joining_a_domain_is_accepted_on_its_vni():
    from tests.unit.vrs_fixtures import VPORTS, vp

    newcomer = vp("a6", "A", "A1", 0x16, "10.0.1.13", "h3")
    sim = TableSimulator(compile_host(view_for("h1", vports=VPORTS + [newcomer])))
    pkt = dict(to_vport(newcomer, a1), tunnel_id=1001, tun_ipv4_src="192.168.0.3")
    assert sim.process(pkt, TUN).ports == [port_of("a1")]


# ---- ARP responder --------------------------------------------------------------------


@pytest.mark.parametrize("target,mac", [("a2", None), ("a4", None), ("gw", ROUTER_A)])
def test_arp_answered_locally_for_vport_and_gateway(h1, target, mac):
    ip = {"gw": "10.0.1.1"}.get(target) or BY_ID[target].ip
    mac = mac or BY_ID[target].mac
    res = h1.process(arp_request(a1, ip), port_of("a1"))
    assert res.ports == [port_of("a1")]  # back where it came from, never to the tunnel
    out = res.outputs[0].packet
    assert out["arp_op"] == 2
    assert (out["arp_sha"], out["arp_spa"]) == (mac, ip)
    assert (out["arp_tha"], out["arp_tpa"]) == (a1.mac, a1.ip)
    assert (out["eth_src"], out["eth_dst"]) == (mac, a1.mac)


@pytest.mark.parametrize("target_ip", ["10.0.2.10", "10.0.2.11", "10.0.2.1"])  # a3, a5, A2's gateway
def test_arp_for_an_address_of_another_subnet_is_not_answered(h1, target_ip):
    # Not on a1's link: a1 must go through its own gateway, as it would on a real network.
    assert h1.process(arp_request(a1, target_ip), port_of("a1")).dropped


def test_arp_for_unknown_ip_is_dropped_not_flooded(h1):
    res = h1.process(arp_request(a1, "10.0.1.99"), port_of("a1"))
    assert res.dropped
    assert TUN not in res.ports


def test_arp_reply_and_gratuitous_arp_from_vport_go_nowhere(h1):
    reply = dict(arp_request(a1, a2.ip), arp_op=2, eth_dst=a2.mac)
    assert h1.process(reply, port_of("a1")).dropped
    assert h1.process(arp_request(a1, a1.ip), port_of("a1")).dropped  # nobody else owns it


def test_arp_answer_depends_on_the_tenant(h1):
    # b1 and a1 share 10.0.1.10; asking for 10.0.1.11 gives each its own tenant's vport.
    res = h1.process(arp_request(b1, "10.0.1.11"), port_of("b1"))
    assert res.outputs[0].packet["arp_sha"] == b2.mac
    res = h1.process(arp_request(b1, "10.0.1.1"), port_of("b1"))
    assert res.outputs[0].packet["arp_sha"] == ROUTER_B


# ---- tenant isolation -------------------------------------------------------------------


def test_overlapping_tenants_same_host_never_meet(h1):
    # b1 uses a2's MAC and IP: tenant A's vport is invisible from B.
    assert h1.process(ip_packet(b1, a2.ip, a2.mac), port_of("b1")).dropped
    assert h1.process(ip_packet(b1, a3.ip, ROUTER_A), port_of("b1")).dropped
    assert h1.process(ip_packet(b1, a3.ip, ROUTER_B), port_of("b1")).dropped


def test_overlapping_tenants_across_hosts_reach_only_their_own(net):
    # 10.0.1.12 is a4 in A and b3 in B, both on h2.
    (host, d), = net.send("h1", to_vport(a1, a4), port_of("a1"))
    assert (host, d.port) == ("h2", port_of("a4"))
    (host, d), = net.send("h1", to_vport(b1, b3), port_of("b1"))
    assert (host, d.port) == ("h2", port_of("b3"))
    assert net.send("h1", ip_packet(b1, a4.ip, a4.mac), port_of("b1")) == []


# ---- port security ------------------------------------------------------------------------


def test_spoofed_source_mac_is_dropped(h1):
    pkt = dict(to_vport(a1, a2), eth_src="02:de:ad:be:ef:00")
    assert h1.process(pkt, port_of("a1")).dropped


def test_spoofed_source_ip_is_dropped(h1):
    pkt = dict(to_vport(a1, a2), ipv4_src="10.0.1.99")
    assert h1.process(pkt, port_of("a1")).dropped
    # Another local vport's own address is still a spoof from this port.
    assert h1.process(dict(to_vport(a1, a3), ipv4_src=a2.ip), port_of("a1")).dropped


def test_spoofed_arp_is_dropped(h1):
    assert h1.process(dict(arp_request(a1, a2.ip), arp_spa="10.0.1.99"), port_of("a1")).dropped
    assert h1.process(dict(arp_request(a1, a2.ip), arp_sha="02:de:ad:be:ef:00"), port_of("a1")).dropped


def test_unknown_in_port_is_dropped(h1):
    assert h1.process(to_vport(a1, a2), 77).dropped
    assert h1.process(arp_request(a1, a2.ip), 77).dropped


def test_non_ip_non_arp_is_dropped(h1):
    pkt = {"eth_src": a1.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x86DD}
    assert h1.process(pkt, port_of("a1")).dropped


def test_tagged_frame_on_untagged_port_is_dropped(h1):
    assert h1.process(dict(to_vport(a1, a2), vlan_vid=0x1000 | 5), port_of("a1")).dropped


# ---- DHCP, VLAN ---------------------------------------------------------------------------


def _dhcp_discover(v):
    return {"eth_src": v.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0800, "ipv4_src": "0.0.0.0",
            "ipv4_dst": "255.255.255.255", "ip_proto": 17, "udp_src": 68, "udp_dst": 67, "nw_ttl": 64}


def test_dhcp_from_vm_goes_to_controller_and_container_dhcp_is_dropped():
    vm = BY_ID["a2"].__class__(**{**vars(BY_ID["a2"]), "type": "vm"})
    vports = [vm if v.id == "a2" else v for v in view_for("h1").vports.values()]
    sim = TableSimulator(compile_host(view_for("h1", vports=vports)))
    res = sim.process(_dhcp_discover(vm), port_of("a2"))
    assert len(res.to_controller) == 1 and not res.outputs
    assert sim.process(_dhcp_discover(a1), port_of("a1")).dropped


def test_vlan_tagged_vport_is_untagged_inside_and_tagged_on_delivery():
    tagged = a2.__class__(**{**vars(a2), "vlan": 42})
    vports = [tagged if v.id == "a2" else v for v in view_for("h1").vports.values()]
    sim = TableSimulator(compile_host(view_for("h1", vports=vports)))
    res = sim.process(to_vport(a1, a2), port_of("a1"))
    assert res.ports == [port_of("a2")]
    assert res.outputs[0].packet["vlan_vid"] == P.OFPVID_PRESENT | 42
    back = dict(to_vport(a2, a1), vlan_vid=P.OFPVID_PRESENT | 42)
    res = sim.process(back, port_of("a2"))
    assert res.ports == [port_of("a1")] and "vlan_vid" not in res.outputs[0].packet
    assert sim.process(to_vport(a2, a1), port_of("a2")).dropped  # untagged from a tagged port
    arp = sim.process(dict(arp_request(a2, a1.ip), vlan_vid=P.OFPVID_PRESENT | 42), port_of("a2"))
    assert arp.outputs[0].packet["vlan_vid"] == P.OFPVID_PRESENT | 42  # the reply keeps the tag


# ---- policy defaults (the full rule set is tested in test_policy_*) ---------------------------


def test_default_deny_drops_everything_between_vports():
    net = overlay(default_action="deny")
    assert net.send("h1", to_vport(a1, a2), port_of("a1")) == []
    assert net.send("h1", to_vport(a1, a4), port_of("a1")) == []
    # ARP still works: it is not subject to ACLs.
    assert net.hosts["h1"].process(arp_request(a1, a2.ip), port_of("a1")).ports == [port_of("a1")]


def test_no_two_ordinary_flows_overlap_at_one_priority(net):
    # OVS leaves the choice between overlapping same-priority flows undefined: the compiled pipeline
    # must never depend on it, for any pair of vports, same or cross tenant, IP or ARP.
    vports = [a1, a2, a3, a4, a5, b1, b2, b3]
    for src in vports:
        sim = net.hosts[src.host]
        for dst in vports:
            for pkt in (to_vport(src, dst), ip_packet(src, dst.ip, dst.mac), arp_request(src, dst.ip)):
                result = sim.process(pkt, port_of(src.id))
                assert result.ambiguous == [], (src.id, dst.id, result.ambiguous)
