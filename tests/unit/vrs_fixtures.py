"""Shared topology and packet builders for the VRS simulator tests (no tests here).

Three hosts, two tenants that reuse the same addresses, a third domain only on h3:

    domain A (VNI 1001, zone 1)  subnet A1 10.0.1.0/24, A2 10.0.2.0/24
        a1 10.0.1.10 h1:1   a2 10.0.1.11 h1:2   a3 10.0.2.10 h1:3
        a4 10.0.1.12 h2:1   a5 10.0.2.11 h2:2
    domain B (VNI 1002, zone 2)  subnet B1 10.0.1.0/24 (same CIDR as A1)
        b1 10.0.1.10 h1:4   b2 10.0.1.11 h2:3   b3 10.0.1.12 h2:4
    domain C (VNI 1003, zone 3)  subnet C1 10.9.0.0/24
        c1 10.9.0.10 h3:1
"""

from __future__ import annotations

from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.simulator import Overlay, TableSimulator
from nuage_ryu.vrs.view import Domain, Host, HostView, LocalPort, Subnet, VPort

TUN = 100  # VXLAN ofport on every host
SYN, ACK = 0x02, 0x10  # tcp_flags: conntrack only opens a TCP connection on a SYN
HOSTS = [Host("h1", "192.168.0.1"), Host("h2", "192.168.0.2"), Host("h3", "192.168.0.3")]
ROUTER_A = "02:aa:00:00:00:01"
ROUTER_B = "02:bb:00:00:00:01"


def domains(default_action: str = "allow") -> list[Domain]:
    return [
        Domain("A", 1001, ROUTER_A, default_action, 1),
        Domain("B", 1002, ROUTER_B, default_action, 2),
        Domain("C", 1003, "02:cc:00:00:00:01", default_action, 3),
    ]


SUBNETS = [
    Subnet("A1", "A", "10.0.1.0/24", "10.0.1.1", "zA"),
    Subnet("A2", "A", "10.0.2.0/24", "10.0.2.1", "zA2"),
    Subnet("B1", "B", "10.0.1.0/24", "10.0.1.1", "zB"),
    Subnet("C1", "C", "10.9.0.0/24", "10.9.0.1", "zC"),
]


def vp(vid, domain, subnet, n, ip, host, **kw) -> VPort:
    return VPort(vid, domain, subnet, f"02:00:00:00:00:{n:02x}", ip, host, **kw)


VPORTS = [
    vp("a1", "A", "A1", 0x11, "10.0.1.10", "h1"),
    vp("a2", "A", "A1", 0x12, "10.0.1.11", "h1"),
    vp("a3", "A", "A2", 0x13, "10.0.2.10", "h1"),
    vp("a4", "A", "A1", 0x14, "10.0.1.12", "h2"),
    vp("a5", "A", "A2", 0x15, "10.0.2.11", "h2"),
    vp("b1", "B", "B1", 0x21, "10.0.1.10", "h1"),
    vp("b2", "B", "B1", 0x22, "10.0.1.11", "h2"),
    vp("b3", "B", "B1", 0x23, "10.0.1.12", "h2"),
    vp("c1", "C", "C1", 0x31, "10.9.0.10", "h3"),
]
OFPORTS = {"a1": 1, "a2": 2, "a3": 3, "b1": 4, "a4": 1, "a5": 2, "b2": 3, "b3": 4, "c1": 1}
BY_ID = {v.id: v for v in VPORTS}


def view_for(host: str, vports=None, default_action: str = "allow", **extra) -> HostView:
    vports = VPORTS if vports is None else vports
    local = [LocalPort(v.id, OFPORTS[v.id]) for v in vports if v.host == host and v.id in OFPORTS]
    return HostView.of(host, TUN, domains(default_action), SUBNETS, vports, HOSTS, local, **extra)


def sim_for(host: str, **kw) -> TableSimulator:
    return TableSimulator(compile_host(view_for(host, **kw)))


def overlay(**kw) -> Overlay:
    net = Overlay({h.name: TUN for h in HOSTS})
    for h in HOSTS:
        net.add_host(h.name, h.tunnel_ip, sim_for(h.name, **kw))
    return net


def port_of(vid: str) -> int:
    return OFPORTS[vid]


def ip_packet(src: VPort, dst_ip: str, dst_mac: str, proto: int = 6, ttl: int = 64, **l4) -> dict:
    pkt = {"eth_src": src.mac, "eth_dst": dst_mac, "eth_type": 0x0800, "ipv4_src": src.ip,
           "ipv4_dst": dst_ip, "ip_proto": proto, "nw_ttl": ttl}
    if proto == 6:
        pkt.update(tcp_src=l4.get("sport", 40000), tcp_dst=l4.get("dport", 80),
                   tcp_flags=l4.get("flags", SYN))
    elif proto == 17:
        pkt.update(udp_src=l4.get("sport", 40000), udp_dst=l4.get("dport", 53))
    elif proto == 1:
        pkt.update(icmpv4_type=l4.get("type", 8), icmpv4_code=l4.get("code", 0))
    return pkt


def to_vport(src: VPort, dst: VPort, **kw) -> dict:
    """A packet from src to dst as src's stack builds it: L2 in the same subnet, else via the router."""
    router = {"A": ROUTER_A, "B": ROUTER_B}.get(src.domain_id)
    mac = dst.mac if src.subnet_id == dst.subnet_id else router
    return ip_packet(src, dst.ip, mac, **kw)


def arp_request(src: VPort, target_ip: str) -> dict:
    return {"eth_src": src.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806, "arp_op": 1,
            "arp_sha": src.mac, "arp_spa": src.ip, "arp_tha": "00:00:00:00:00:00", "arp_tpa": target_ip}
