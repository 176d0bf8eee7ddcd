"""Cross-check: a real ovs-vswitchd accepts every compiled flow and ofproto/trace agrees with the simulator.

Needs the OVS binaries and root (a private ovsdb-server + ovs-vswitchd in a namespace of their own);
skipped otherwise. Covers what the lab's trace check does not: the policy tables (conjunctions, conntrack
with ``--ct-next``), ARP answers, VLAN, anti-spoofing, tunnel metadata.
"""

from __future__ import annotations

import os
import re
import tempfile

import pytest

from nuage_ryu.hostovs.process import missing_binaries
from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.ofmsg import to_ofctl
from nuage_ryu.vrs.simulator import TableSimulator
from tests.unit.test_policy_rules import THREE_TIER, V, views
from tests.unit.vrs_fixtures import ACK, SYN, TUN, arp_request, ip_packet, port_of, to_vport

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_binaries()) or os.geteuid() != 0, reason="needs OVS binaries and root"),
]

OUTPUT_RE = re.compile(r"^\s+(?:output:(\d+)|(IN_PORT))$", re.M)
DATAPATH_RE = re.compile(r"^Datapath actions: (.*)$", re.M)
FINAL_RE = re.compile(r"^Final flow: (.*)$", re.M)
# simulator field -> ofproto/trace "Final flow" field, with how to print the simulator's value
FINAL_FIELDS = {"eth_src": ("dl_src", str), "eth_dst": ("dl_dst", str), "nw_ttl": ("nw_ttl", str),
                "arp_op": ("arp_op", str), "arp_sha": ("arp_sha", str), "arp_spa": ("arp_spa", str),
                "arp_tha": ("arp_tha", str), "arp_tpa": ("arp_tpa", str), "tun_ipv4_dst": ("tun_dst", str)}
TUN_ID_RE = re.compile(r"TUN_ID\[[^\]]*\] is now (0x[0-9a-f]+)")  # "Final flow" omits tun_id


@pytest.fixture(scope="module")
def bridge():
    from tests.ovs_fixtures import private_ovs

    with private_ovs() as ovs:
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
                  "fail_mode=secure", "protocols=OpenFlow13,OpenFlow14")
        for vid in ("a1", "a2", "a3", "b1"):
            ovs.vsctl("add-port", "br-int", f"p{vid}", "--", "set", "interface", f"p{vid}", "type=internal",
                      f"ofport_request={port_of(vid)}")
        ovs.vsctl("add-port", "br-int", "vxlan0", "--", "set", "interface", "vxlan0", "type=vxlan",
                  "options:remote_ip=flow", "options:key=flow", f"ofport_request={TUN}")
        yield ovs


def install(ovs, flows) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".flows", delete=False) as fh:
        fh.write("\n".join(to_ofctl(f) for f in flows) + "\n")
    try:
        # Raises (check=True) if OVS refuses any flow: missing prerequisites, bad conjunctions...
        ovs.ofctl("-O", "OpenFlow14", "replace-flows", "br-int", fh.name)
    finally:
        os.unlink(fh.name)


def ofctl_packet(pkt: dict, in_port: int) -> str:
    names = {"eth_src": "dl_src", "eth_dst": "dl_dst", "ipv4_src": "nw_src", "ipv4_dst": "nw_dst",
             "ip_proto": "nw_proto", "nw_ttl": "nw_ttl", "tcp_src": "tcp_src", "tcp_dst": "tcp_dst",
             "tcp_flags": "tcp_flags", "udp_src": "udp_src", "udp_dst": "udp_dst",
             "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code", "arp_op": "arp_op", "arp_spa": "arp_spa",
             "arp_tpa": "arp_tpa", "arp_sha": "arp_sha", "arp_tha": "arp_tha", "eth_type": "dl_type",
             "tunnel_id": "tun_id", "tun_ipv4_src": "tun_src", "tun_ipv4_dst": "tun_dst"}
    parts = [f"in_port={in_port}"]
    for key, value in pkt.items():
        if key == "vlan_vid":
            parts.append(f"dl_vlan={value & 0xFFF}")
        elif key in names:
            parts.append(f"{names[key]}={value:#x}" if key in ("eth_type", "tcp_flags", "tunnel_id")
                         else f"{names[key]}={value}")
    return ",".join(parts)


def ovs_trace(ovs, pkt: dict, in_port: int, ct_next: str | None) -> tuple[set[int], dict]:
    """(output ports, final packet fields) according to ofproto/trace."""
    args = ["ofproto/trace", "br-int", ofctl_packet(pkt, in_port)]
    if ct_next:
        args[1:1] = ["--ct-next", ct_next]
    text = ovs.appctl(*args)
    datapath = DATAPATH_RE.findall(text)
    finals = FINAL_RE.findall(text)
    final = dict(item.split("=", 1) for item in finals[-1].split(",") if "=" in item) if finals else {}
    tun_ids = TUN_ID_RE.findall(text)
    if tun_ids:
        final["tun_id"] = tun_ids[-1]
    if not datapath or datapath[-1].strip() == "drop":
        return set(), final
    return {in_port if inport else int(port) for port, inport in OUTPUT_RE.findall(text)}, final


def test_ovs_accepts_every_flow_of_every_host(bridge):
    for host in ("h1", "h2", "h3"):
        install(bridge, compile_host(views(THREE_TIER)[host]))
    assert "table=99" in bridge.ofctl("-O", "OpenFlow14", "dump-flows", "br-int")


CASES = [
    # (name, packet, in_port, conntrack state the recirculation sees)
    ("web->app 8080 allowed", to_vport(V["a1"], V["a2"], dport=8080), "a1", "trk,new"),
    ("web->app 80 denied", to_vport(V["a1"], V["a2"], dport=80), "a1", "trk,new"),
    ("web->db denied", to_vport(V["a1"], V["a3"], dport=5432), "a1", "trk,new"),
    ("app->db allowed, routed", to_vport(V["a2"], V["a3"], dport=5432), "a2", "trk,new"),
    ("web->app remote, tunnelled", to_vport(V["a1"], V["a5"], dport=8080), "a1", "trk,new"),
    ("reply of a committed connection", to_vport(V["a2"], V["a1"], sport=8080, dport=40000, flags=SYN | ACK),
     "a2", "trk,est,rpl"),
    ("uncommitted reply is +inv: denied", to_vport(V["a2"], V["a1"], sport=8080, dport=40000, flags=ACK),
     "a2", "trk,inv"),
    ("spoofed source", dict(to_vport(V["a1"], V["a2"], dport=8080), ipv4_src="10.0.1.99"), "a1", "trk,new"),
    ("tenant B to A's address", ip_packet(V["b1"], V["a2"].ip, V["a2"].mac), "b1", "trk,new"),
    ("from the tunnel: a web member of h2 -> app 8080", dict(to_vport(V["a4"], V["a2"], dport=8080),
                                                            tunnel_id=1001, tun_ipv4_src="192.168.0.2"),
     "tunnel", "trk,new"),
    ("from the tunnel: h2 claims an address of h1's own vport", dict(
        to_vport(V["a4"], V["a2"], dport=8080), ipv4_src=V["a1"].ip, tunnel_id=1001, tun_ipv4_src="192.168.0.2"),
     "tunnel", "trk,new"),
    ("ARP for the gateway", arp_request(V["a1"], "10.0.1.1"), "a1", None),
    ("ARP for an unknown IP", arp_request(V["a1"], "10.0.1.99"), "a1", None),
]


@pytest.mark.parametrize("name,pkt,src,ct", CASES, ids=[c[0] for c in CASES])
def test_ofproto_trace_agrees_with_the_simulator(bridge, name, pkt, src, ct):
    flows = compile_host(views(THREE_TIER)["h1"])
    install(bridge, flows)
    sim = TableSimulator(flows)
    if ct == "trk,est,rpl":  # give the simulator the committed connection the trace assumes
        sim.process(to_vport(V["a1"], V["a2"], dport=8080), port_of("a1"))
    in_port = TUN if src == "tunnel" else port_of(src)
    result = sim.process(pkt, in_port)
    ports, final = ovs_trace(bridge, pkt, in_port, ct)
    assert ports == set(result.ports), name
    for delivery in result.outputs:  # the rewritten fields agree too (MACs, TTL, ARP reply, tunnel)
        compared = 0
        for field, (ovs_field, fmt) in FINAL_FIELDS.items():
            if field not in delivery.packet or (field == "tun_ipv4_dst" and not delivery.tunnel):
                continue
            assert final.get(ovs_field) == fmt(delivery.packet[field]), (name, field, final)
            compared += 1
        assert compared >= 2
        if delivery.tunnel:
            assert final.get("tun_id") == hex(delivery.tunnel[0]), name


def test_ovs_accepts_every_kind_of_rule_vlan_and_dhcp_flows(bridge):
    import dataclasses

    from tests.unit.test_policy_rules import ANY, APP, DB, WEB, Endpoint, members, rule
    from tests.unit.vrs_fixtures import view_for

    rules = [
        rule("ports", 10, WEB, APP, "tcp", "8000-8100"),
        rule("udp", 11, WEB, DB, "udp", "53", stateful=False),
        rule("icmp", 12, ANY, APP, "icmp", icmp_type=8, icmp_code=0),
        rule("gre", 13, Endpoint("zone", "zA"), Endpoint("subnet", "A2"), 47),
        rule("cidr", 14, Endpoint("cidr", cidr="10.0.0.0/16"), ANY, action="deny"),
        rule("svc-only", 15, ANY, ANY, "tcp", "22"),
        rule("all", 16),
    ]
    vports = [dataclasses.replace(v, vlan=42) if v.id == "a2" else
              dataclasses.replace(v, type="vm") if v.id == "a3" else v for v in members()]
    from tests.unit.test_policy_rules import PGS

    flows = compile_host(view_for("h1", vports=vports, acl_rules=rules, policygroups=PGS))
    install(bridge, flows)
    dumped = bridge.ofctl("-O", "OpenFlow14", "dump-flows", "br-int")
    assert dumped.count("conjunction(") >= 8 and "controller" in dumped.lower() and "push_vlan" in dumped
    # tagged traffic from a2 is accepted, untagged is not
    sim = TableSimulator(flows)
    tagged = dict(to_vport(V["a2"], V["a1"], dport=8080), vlan_vid=0x1000 | 42)
    for pkt in (tagged, to_vport(V["a2"], V["a1"], dport=8080)):
        ports, _ = ovs_trace(bridge, pkt, port_of("a2"), "trk,new")
        assert ports == set(sim.process(pkt, port_of("a2")).ports)
