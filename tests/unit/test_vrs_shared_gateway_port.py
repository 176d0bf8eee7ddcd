"""Two bare-metal servers of different tenants behind one gateway port, told apart by VLAN.

Regression: the OUTPUT flow of a tagged vport used to match only the gateway's
ofport, so the two servers' flows collided and traffic to one left with the
other's VLAN (a cross-tenant leak).
"""

from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.simulator import TableSimulator
from nuage_ryu.vrs.view import Domain, Host, HostView, LocalPort, Subnet, VPort

GW_PORT, VM_PORT, TUN = 7, 8, 100
OFPVID_PRESENT = 0x1000


def view() -> HostView:
    doms = [Domain("A", 1001, "02:aa:00:00:00:01", "allow", 1), Domain("B", 1002, "02:bb:00:00:00:01", "allow", 2)]
    subnets = [Subnet("A1", "A", "10.0.1.0/24", "10.0.1.1"), Subnet("B1", "B", "10.0.1.0/24", "10.0.1.1")]
    vports = [
        VPort("sa", "A", "A1", "02:00:00:00:00:0a", "10.0.1.10", "h1", "host", vlan=10),
        VPort("sb", "B", "B1", "02:00:00:00:00:0b", "10.0.1.10", "h1", "host", vlan=20),
        VPort("va", "A", "A1", "02:00:00:00:00:1a", "10.0.1.20", "h1", "vm"),
    ]
    ports = [LocalPort("sa", GW_PORT), LocalPort("sb", GW_PORT), LocalPort("va", VM_PORT)]
    return HostView.of("h1", TUN, doms, subnets, vports, [Host("h1", "192.168.0.1")], ports)


def icmp(src_mac, src_ip, dst_mac, dst_ip) -> dict:
    return {"eth_src": src_mac, "eth_dst": dst_mac, "eth_type": 0x0800, "ipv4_src": src_ip, "ipv4_dst": dst_ip,
            "ip_proto": 1, "icmpv4_type": 8, "nw_ttl": 64}


def test_each_server_is_reached_with_its_own_vlan_only():
    sim = TableSimulator(compile_host(view()))
    # the VM of tenant A sends to its server: out of the gateway port tagged 10, never 20
    res = sim.process(icmp("02:00:00:00:00:1a", "10.0.1.20", "02:00:00:00:00:0a", "10.0.1.10"), VM_PORT)
    assert [d.port for d in res.outputs] == [GW_PORT]
    assert res.outputs[0].packet["vlan_vid"] == OFPVID_PRESENT | 10


def test_servers_on_one_port_keep_their_tenants_apart():
    sim = TableSimulator(compile_host(view()))
    # server B (VLAN 20, tenant B) tries tenant A's VM address: no such vport in B -> dropped
    pkt = icmp("02:00:00:00:00:0b", "10.0.1.10", "02:00:00:00:00:1a", "10.0.1.20")
    pkt["vlan_vid"] = OFPVID_PRESENT | 20
    assert sim.process(pkt, GW_PORT).dropped
    # server A (VLAN 10) reaches the VM untagged on its own port
    pkt = icmp("02:00:00:00:00:0a", "10.0.1.10", "02:00:00:00:00:1a", "10.0.1.20")
    pkt["vlan_vid"] = OFPVID_PRESENT | 10
    res = sim.process(pkt, GW_PORT)
    assert [d.port for d in res.outputs] == [VM_PORT]
    assert res.outputs[0].packet.get("vlan_vid", 0) == 0
