"""Policy bugs found by users or by the differential test (tests/unit/test_policy_differential.py),
each as the packet story that failed. The simulator keeps OVS's flow identity (``ovs_identity``), so
flows the compiler thinks are different but OVS thinks are one show up here as they do on a bridge."""

from __future__ import annotations

from nuage_ryu.vrs.compile import FlowCompiler, compile_host
from nuage_ryu.vrs.flow import Conjunction, Flow, match
from nuage_ryu.vrs.simulator import TableSimulator, ovs_identity
from tests.unit.test_policy_rules import ANY, WEB, Endpoint, V, net_of, rule, send, views
from tests.unit.vrs_fixtures import port_of, to_vport

EVERYWHERE = Endpoint("cidr", cidr="0.0.0.0/0")
# docs/api.md's example next to a ping rule: both compile a clause flow matching just "ip" in the domain.
PING = rule("ping", 50, ANY, ANY, "icmp", icmp_type=8)
HTTPS_TO_WEB = rule("https-web", 100, EVERYWHERE, WEB, "tcp", "443")


def ping(sim: TableSimulator, src: str, dst: str) -> bool:
    return not sim.process(to_vport(V[src], V[dst], proto=1, type=8), port_of(src)).dropped


def test_the_simulator_takes_a_zero_mask_for_no_match_field_as_ovs_does():
    plain = Flow(22, 10, match(eth_type=0x0800), (Conjunction(1, 1, 2),))
    slash0 = Flow(22, 10, match(eth_type=0x0800, ipv4_src=("0.0.0.0", "0.0.0.0")), (Conjunction(2, 1, 2),))
    assert ovs_identity(plain) == ovs_identity(slash0)
    sim = TableSimulator([plain, slash0])
    assert sim.flows() == [slash0]  # the second add replaced the first, as OFPFC_ADD does in OVS
    full = Flow(22, 10, match(eth_type=0x0800, ipv4_src=("10.0.0.1", "255.255.255.255")))
    assert ovs_identity(full) == ovs_identity(Flow(22, 10, match(eth_type=0x0800, ipv4_src="10.0.0.1")))


def test_a_ping_rule_and_a_rule_from_0_0_0_0_slash_0_both_decide_their_own_traffic():
    net = net_of([PING, HTTPS_TO_WEB])
    for src, dst in (("a2", "a1"), ("a3", "a4"), ("a5", "a2")):
        assert send(net, src, dst, proto=1, type=8), (src, dst)  # rule 50
    for src, dst in (("a2", "a1"), ("a5", "a1"), ("a3", "a4")):
        assert send(net, src, dst, dport=443), (src, dst)  # rule 100
    assert not send(net, "a1", "a2", dport=443)  # app is not web
    assert not send(net, "a2", "a1", dport=80)


def test_deleting_the_0_0_0_0_slash_0_rule_brings_ping_back_without_a_restart():
    fc = FlowCompiler()
    sim = TableSimulator()
    sim.apply(fc.update(views([PING, HTTPS_TO_WEB])["h1"]))
    assert ping(sim, "a2", "a1")
    assert not sim.process(to_vport(V["a2"], V["a1"], dport=443), port_of("a2")).dropped
    sim.apply(fc.update(views([PING])["h1"]))
    assert ping(sim, "a2", "a1")  # the shared clause flow stays, with the ping rule's conjunction only
    assert sim.process(to_vport(V["a2"], V["a1"], dport=443), port_of("a2")).dropped
    sim.apply(fc.update(views([PING, HTTPS_TO_WEB])["h1"]))  # and adding it back merges again
    assert ping(sim, "a2", "a1")
    assert not sim.process(to_vport(V["a2"], V["a1"], dport=443), port_of("a2")).dropped
    assert fc.conflicts == []


def test_deleting_the_ping_rule_keeps_the_0_0_0_0_slash_0_rule_working():
    fc = FlowCompiler()
    sim = TableSimulator()
    sim.apply(fc.update(views([PING, HTTPS_TO_WEB])["h1"]))
    sim.apply(fc.update(views([HTTPS_TO_WEB])["h1"]))
    assert not ping(sim, "a2", "a1")
    assert not sim.process(to_vport(V["a2"], V["a1"], dport=443), port_of("a2")).dropped


def test_the_shared_clause_flow_is_one_flow_carrying_both_rules_conjunctions():
    flows = compile_host(views([PING, HTTPS_TO_WEB])["h1"])
    identities = [ovs_identity(f) for f in flows]
    assert len(identities) == len(set(identities))  # nothing for OVS to overwrite
    shared = [f for f in flows if f.table == 22 and len(f.actions) == 2
              and all(isinstance(a, Conjunction) for a in f.actions)]
    assert len(shared) == 1


def test_a_rule_from_0_0_0_0_slash_0_to_any_with_any_protocol_matches_everything():
    # Its source clause and its catch-all clause have one OVS identity and one owner.
    net = net_of([rule("all", 10, EVERYWHERE, ANY, action="allow")])
    assert send(net, "a2", "a1", dport=1234)
    assert send(net, "a4", "a3", proto=17, dport=53)


def test_a_rule_from_0_0_0_0_slash_0_to_0_0_0_0_slash_0_matches_its_service():
    net = net_of([rule("https", 10, EVERYWHERE, EVERYWHERE, "tcp", "443")])
    assert send(net, "a2", "a1", dport=443)
    assert send(net, "a4", "a3", dport=443)
    assert not send(net, "a2", "a1", dport=444)


def test_two_bare_metal_servers_behind_one_gateway_port_reach_each_other():
    # Found by the differential test: OVS never outputs a packet to the port it came in on unless
    # told IN_PORT, so a server's packet to another VLAN of its own gateway port was dropped.
    from nuage_ryu.vrs.view import Domain, Host, HostView, LocalPort, Subnet, VPort

    gw = 13
    servers = [VPort("s1", "A", "A1", "02:00:00:00:00:0a", "10.0.1.10", "h1", "host", vlan=10),
               VPort("s2", "A", "A1", "02:00:00:00:00:0b", "10.0.1.11", "h1", "host", vlan=20)]
    view = HostView.of("h1", 100, [Domain("A", 1001, "02:aa:00:00:00:01", "allow", 1)],
                       [Subnet("A1", "A", "10.0.1.0/24", "10.0.1.1")], servers, [Host("h1", "192.168.0.1")],
                       [LocalPort("s1", gw), LocalPort("s2", gw)])
    sim = TableSimulator(compile_host(view))
    for src, dst in (servers, servers[::-1]):
        pkt = {"eth_src": src.mac, "eth_dst": dst.mac, "eth_type": 0x0800, "ipv4_src": src.ip, "ipv4_dst": dst.ip,
               "ip_proto": 1, "icmpv4_type": 8, "icmpv4_code": 0, "nw_ttl": 64, "vlan_vid": 0x1000 | src.vlan}
        out = sim.process(pkt, gw).outputs
        assert [(d.port, d.packet["vlan_vid"]) for d in out] == [(gw, 0x1000 | dst.vlan)], (src.id, dst.id)
