"""Cross-check the table simulator against OVS's own ``ofproto/trace`` on a lab host.

The flows a host should hold are compiled here from the same inputs the agent
uses (the directory snapshot and the host's vport ofports), loaded into the
simulator, and a sample of packets is run through both the simulator and
``ovs-appctl ofproto/trace`` on the real bridge. The verdicts must agree: the
set of OpenFlow output ports, and for each the tunnel VNI/destination and the
rewritten destination MAC and TTL.
"""

from __future__ import annotations

import re

from nuage_ryu.directory.store import DirectoryStore
from nuage_ryu.hostovs.host import VXLAN_PORT, HostOVS
from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.simulator import TableSimulator
from nuage_ryu.vrs.view import from_directory

OUTPUT_RE = re.compile(r"^\s*output:(\d+)", re.M)
FINAL_RE = re.compile(r"^Final flow: (.*)$", re.M)


def host_flows(lab_host, directory_db: str):
    store = DirectoryStore(directory_db)
    store.start()
    try:
        state = store.snapshot()
    finally:
        store.stop()
    with HostOVS(lab_host.db_remote) as ovs:
        ofports = {p.vport_id: p.ofport for p in ovs.list_vport_ports("br-int") if p.ofport}
        tunnel = ovs.get_ofport(VXLAN_PORT)
    return compile_host(from_directory(state, lab_host.host_name, tunnel, ofports)), ofports


def icmp_packet(src, dst_ip: str, dst_mac: str) -> dict:
    return {"eth_src": src.vport["mac"], "eth_dst": dst_mac, "eth_type": 0x0800, "ipv4_src": src.ip,
            "ipv4_dst": dst_ip, "ip_proto": 1, "icmpv4_type": 8, "icmpv4_code": 0, "nw_ttl": 64}


def ofctl_flow(pkt: dict, in_port: int) -> str:
    return (f"in_port={in_port},icmp,dl_src={pkt['eth_src']},dl_dst={pkt['eth_dst']},"
            f"nw_src={pkt['ipv4_src']},nw_dst={pkt['ipv4_dst']},nw_ttl={pkt['nw_ttl']},icmp_type=8,icmp_code=0")


def parse_trace(text: str) -> dict:
    """{"ports": set of OpenFlow output ports, "final": {field: value}} from ofproto/trace output."""
    final = {}
    matches = FINAL_RE.findall(text)
    if matches:
        for item in matches[-1].split(","):
            if "=" in item:
                key, value = item.split("=", 1)
                final[key.strip()] = value.strip()
    dropped = "Datapath actions: drop" in text
    return {"ports": set() if dropped else {int(p) for p in OUTPUT_RE.findall(text)}, "final": final}


def compare_with_ofproto_trace(lab_host, src, targets, directory_db: str) -> list[str]:
    """Mismatches (human-readable) between the simulator and ofproto/trace for src -> each target."""
    flows, ofports = host_flows(lab_host, directory_db)
    sim = TableSimulator(flows)
    in_port = ofports[src.vport["id"]]
    router_mac = None
    mismatches = []
    cases = []
    for t in targets:
        same_subnet = t.vport["gateway"] == src.vport["gateway"]
        if not same_subnet and router_mac is None:
            router_mac = _router_mac(sim, src, in_port)
        cases.append((t.name, icmp_packet(src, t.ip, t.vport["mac"] if same_subnet else router_mac)))
    cases.append(("unknown", icmp_packet(src, "10.250.250.250", "02:00:00:00:00:99")))
    spoof = icmp_packet(src, targets[0].ip, targets[0].vport["mac"])
    spoof["ipv4_src"] = "10.250.0.1"
    cases.append(("spoofed", spoof))
    for name, pkt in cases:
        result = sim.process(dict(pkt), in_port)
        trace = lab_host.ovs.appctl("ofproto/trace", "br-int", ofctl_flow(pkt, in_port))
        got = parse_trace(trace)
        want_ports = set(result.ports)
        if want_ports != got["ports"]:
            mismatches.append(f"{name}: simulator ports {sorted(want_ports)}, "
                              f"ofproto/trace {sorted(got['ports'])}")
            continue
        for delivery in result.outputs:
            out = delivery.packet
            checks = {"dl_dst": out.get("eth_dst"), "nw_ttl": str(out.get("nw_ttl"))}
            if delivery.tunnel:
                checks["tun_id"] = hex(delivery.tunnel[0])
                checks["tun_dst"] = delivery.tunnel[1]
            for key, value in checks.items():
                if key in got["final"] and got["final"][key] != value:
                    mismatches.append(f"{name}: {key} simulator {value}, ofproto/trace {got['final'][key]}")
    return mismatches


def _router_mac(sim, src, in_port) -> str:
    """Ask the ARP responder for the gateway's MAC, as the container would."""
    reply = sim.process({"eth_src": src.vport["mac"], "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": 0x0806,
                         "arp_op": 1, "arp_spa": src.ip, "arp_sha": src.vport["mac"],
                         "arp_tpa": src.vport["gateway"], "arp_tha": "00:00:00:00:00:00"}, in_port)
    return reply.outputs[0].packet["arp_sha"]
