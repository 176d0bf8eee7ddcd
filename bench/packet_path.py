"""Packet path costs: ct() passes, recirculations and tables per packet and per host, from ofproto/trace.

    .venv/bin/python bench/packet_path.py [--group-size 100] [--rules 100] [--shortcut] [--no-docs]

Builds the lab of ``bench/dataplane.py`` (2 hosts, agents, the 3-tier policy with phantom members, the
endpoint containers and the NORMAL + VXLAN baseline) and asks each host's own OVS, with
``ovs-appctl ofproto/trace --ct-next``, what one packet of each case costs there: datapath passes on
br-int, ct() actions executed, recirculations, OpenFlow tables visited, and the megaflow match of every
pass. The packet that leaves the sending host's trace (rewritten MACs, TTL, tunnel VNI/destination) is
what the receiving host is asked about. A packet that arrives over VXLAN costs one more datapath pass on
the receiving host that ofproto/trace of br-int does not show: the outer packet's ``tnl_pop`` on br-phy's
uplink, followed by a recirculation (``recirc_id(0),in_port(<uplink>),...udp(dst=4789) actions:tnl_pop``
in ``dpctl/dump-flows``); the table adds it in the "+ tnl_pop" column. The baseline pays it too.

Cases (the topology of ``dataplane.ENDPOINTS``): same host / cross host, same subnet / routed, stateful
allow (first packet, a later packet, the reply), deny by rule and by default, a stateless allow pair.

With ``--shortcut`` the last rows trace the cross-host routed case again with the flows of
``dataplane.install_shortcut`` (the phase-B what-if: the sending host sends TCP without SYN through
``ct()`` without recirculation and skips its policy; the receiving host decides as before).

Writes the table into docs/pipeline.md between the packet-path markers unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

import dataplane  # noqa: E402

from nuage_ryu.hostovs.host import VXLAN_PORT  # noqa: E402
from nuage_ryu.lab.lab import LabHost  # noqa: E402
from tests.lab_helpers import Container, Containers, lab_with_plane  # noqa: E402

START, END = "<!-- bench:packet_path:start -->", "<!-- bench:packet_path:end -->"
CLIENT_PORT = 40000
TABLE_LINE = re.compile(r"^\s{0,3}(\d+)\. ", re.M)
ACTIONS_LINE = re.compile(r"^Datapath actions: (.*)$", re.M)
MEGAFLOW_LINE = re.compile(r"^Megaflow: (.*)$", re.M)
FINAL_LINE = re.compile(r"^Final flow: (.*)$", re.M)


@dataclass
class Hop:
    """What one packet cost on one host, as ofproto/trace tells it."""

    host: str
    passes: int  # datapath passes through br-int (1 + recirculations)
    ct: int  # ct() actions executed (lookups and commits)
    commits: int
    recirculations: int
    tables: list[int]
    megaflows: list[str]
    actions: str  # datapath actions of the last pass
    tunnelled: bool  # arrived over VXLAN (one tnl_pop pass more, not in the trace)
    final: dict

    @property
    def dropped(self) -> bool:
        return self.actions.strip() == "drop"

    @property
    def to_tunnel(self) -> bool:
        return "tnl_push" in self.actions


def parse(text: str, host: str, tunnelled: bool) -> Hop:
    """A Hop from ofproto/trace output (every br-int section; br-phy's NORMAL is not counted)."""
    tables = []
    for section in re.split(r"^bridge\(\"", text, flags=re.M)[1:]:
        if section.startswith("br-int"):
            tables += [int(t) for t in TABLE_LINE.findall(section)]
    actions = ACTIONS_LINE.findall(text)
    finals = FINAL_LINE.findall(text)
    final = {}
    for item in (finals[-1] if finals else "").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            final[k.strip()] = v.strip()
    return Hop(host=host, passes=len(actions), ct=sum(a.count("ct(") for a in actions),
               commits=sum(a.count("ct(commit") for a in actions),
               recirculations=sum(a.count("recirc(") for a in actions), tables=tables,
               megaflows=MEGAFLOW_LINE.findall(text), actions=actions[-1] if actions else "",
               tunnelled=tunnelled, final=final)


def trace(host: LabHost, flow: str, ct_states: list[str]) -> str:
    args = ["ofproto/trace", "br-int", flow]
    for state in ct_states:
        args += ["--ct-next", state]
    return host.ovs.appctl(*args)


def ofport(host: LabHost, ifname: str) -> int:
    return int(host.ovs.vsctl("get", "interface", ifname, "ofport").strip())


@dataclass
class Packet:
    src: Container
    dst: Container
    sport: int
    dport: int
    flags: str  # tcp_flags
    ct_sender: list[str]  # --ct-next states on the sending host
    ct_receiver: list[str]


def walk(pkt: Packet, router_mac: str) -> list[Hop]:
    """Trace ``pkt`` on the sending host and, if it left over VXLAN, on the receiving host."""
    same_subnet = pkt.src.vport["gateway"] == pkt.dst.vport["gateway"]
    dl_dst = pkt.dst.vport["mac"] if same_subnet else router_mac
    in_port = ofport(pkt.src.host, pkt.src.host_ifname)
    flow = (f"in_port={in_port},tcp,dl_src={pkt.src.vport['mac']},dl_dst={dl_dst},nw_src={pkt.src.ip},"
            f"nw_dst={pkt.dst.ip},nw_ttl=64,tp_src={pkt.sport},tp_dst={pkt.dport},tcp_flags={pkt.flags}")
    first = parse(trace(pkt.src.host, flow, pkt.ct_sender), pkt.src.host.name, tunnelled=False)
    hops = [first]
    if first.to_tunnel and pkt.dst.host.name != pkt.src.host.name:
        f = first.final
        vx = ofport(pkt.dst.host, VXLAN_PORT)
        remote = (f"in_port={vx},tun_id={_vni(first)},"
                  f"tun_src={pkt.src.host.underlay_ip},tun_dst={pkt.dst.host.underlay_ip},tcp,"
                  f"dl_src={f['dl_src']},dl_dst={f['dl_dst']},nw_src={pkt.src.ip},nw_dst={pkt.dst.ip},"
                  f"nw_ttl={f['nw_ttl']},tp_src={pkt.sport},tp_dst={pkt.dport},tcp_flags={pkt.flags}")
        hops.append(parse(trace(pkt.dst.host, remote, pkt.ct_receiver), pkt.dst.host.name, tunnelled=True))
    return hops


def _vni(hop: Hop) -> str:
    m = re.search(r"vni=(0x[0-9a-f]+)", hop.actions)
    return m.group(1) if m else "0x0"


def cases(eps: dict[str, Container]) -> list[tuple[str, str, Packet]]:
    """(case, packet, Packet) in the order of the doc table."""
    web1, web2, web3, app1, app2, db1 = (eps[n] for n in ("web1", "web2", "web3", "app1", "app2", "db1"))
    port = dataplane.IPERF_PORT
    new, est, rpl, inv = "trk,new", "trk,est", "trk,est,rpl", "trk,inv"
    out = []
    for case, src, dst in (("same host, same subnet (web1 → web2)", web1, web2),
                           ("same host, routed (web1 → app1)", web1, app1),
                           ("cross host, same subnet (web1 → web3)", web1, web3),
                           ("cross host, routed (web1 → app2)", web1, app2)):
        out += [(case, "first (SYN, +new)", Packet(src, dst, CLIENT_PORT, port, "syn", [new], [new])),
                (case, "later (+est)", Packet(src, dst, CLIENT_PORT, port, "ack", [est], [est])),
                (case, "reply (+est+rpl)", Packet(dst, src, port, CLIENT_PORT, "ack", [rpl], [rpl]))]
    out += [("deny rule (web1 → db1:5432, cross host)", "first (SYN, +new)",
             Packet(web1, db1, CLIENT_PORT, dataplane.DENY_PORT, "syn", [new], [new])),
            ("default deny (web1 → app1:22, same host)", "first (SYN, +new)",
             Packet(web1, app1, CLIENT_PORT, 22, "syn", [new], [new])),
            ("stateless allow (app1 → db1:9999, cross host)", "request (+new every packet)",
             Packet(app1, db1, CLIENT_PORT, dataplane.STATELESS_PORT, "ack", [new], [new])),
            ("stateless allow (app1 → db1:9999, cross host)", "reply (+inv: never committed)",
             Packet(db1, app1, dataplane.STATELESS_PORT, CLIENT_PORT, "ack", [inv], [inv]))]
    return out


def spoofed_source(topo) -> tuple[str, str, list[Hop]]:
    """h1 (as a compromised host would) sends to app2 over VXLAN with the source IP of a web member
    that lives on another host: does h2's receiver-side policy still let it in?"""
    eps = topo.endpoints
    web1, app2 = eps["web1"], eps["app2"]
    h1, h2 = web1.host, app2.host
    spoofed = topo.phantom_ips["web"][0]
    flow = (f"in_port={ofport(h2, VXLAN_PORT)},tun_id={hex(topo.domain['vni'])},tun_src={h1.underlay_ip},"
            f"tun_dst={h2.underlay_ip},tcp,dl_src={topo.domain['router_mac']},dl_dst={app2.vport['mac']},"
            f"nw_src={spoofed},nw_dst={app2.ip},nw_ttl=63,tp_src={CLIENT_PORT},tp_dst={dataplane.IPERF_PORT},"
            "tcp_flags=syn")
    hop = parse(trace(h2, flow, ["trk,new"]), h2.name, tunnelled=True)
    return ("spoofed source: h1 sends as a web member of another host (→ app2:5201)", "first (SYN, +new)", [hop])


def verdict(hops: list[Hop]) -> str:
    last = hops[-1]
    if last.dropped:
        return f"drop on {last.host}"
    if last.to_tunnel:
        return f"tunnelled by {last.host}, not delivered"
    return f"delivered on {last.host}"


def _host_cell(hop: Hop) -> str:
    extra = " + tnl_pop" if hop.tunnelled else ""
    return (f"{hop.host}: {hop.passes}{extra} passes, {hop.ct} ct ({hop.commits} commit), "
            f"{hop.recirculations} recirc, tables {'→'.join(str(t) for t in hop.tables)}")


def table(results: list[tuple[str, str, list[Hop]]]) -> str:
    lines = ["| case | packet | verdict | per host: datapath passes, ct(), recirculations, tables | "
             "total ct() / recirc (incl. tnl_pop) |", "|---|---|---|---|---|"]
    for case, what, hops in results:
        ct = sum(h.ct for h in hops)
        recirc = sum(h.recirculations + (1 if h.tunnelled else 0) for h in hops)
        lines.append(f"| {case} | {what} | {verdict(hops)} | {'<br>'.join(_host_cell(h) for h in hops)} | "
                     f"{ct} / {recirc} |")
    return "\n".join(lines)


def megaflow_examples(results: list[tuple[str, str, list[Hop]]]) -> str:
    """The megaflow matches of the cross-host routed case: what each datapath pass matches on."""
    lines = []
    for case, what, hops in results:
        if not case.startswith("cross host, routed"):
            continue
        for hop in hops:
            for i, mf in enumerate(hop.megaflows):
                lines.append(f"{what:18} {hop.host} pass {i + 1}: {mf}")
    return "```\n" + "\n".join(lines) + "\n```"


def run(lab, topo, shortcut: bool = False) -> list[tuple[str, str, list[Hop]]]:
    """Every case; with ``shortcut`` also the cross-host routed case under the phase-B what-if flows."""
    router_mac = topo.domain["router_mac"]
    results = [(case, what, walk(pkt, router_mac)) for case, what, pkt in cases(topo.endpoints)]
    results.append(spoofed_source(topo))
    if shortcut:
        dataplane.install_shortcut(topo)
        try:
            results += [(f"what-if: {case}, sender shortcut", what, walk(pkt, router_mac))
                        for case, what, pkt in cases(topo.endpoints) if case.startswith("cross host, routed")]
        finally:
            dataplane.remove_shortcut(topo)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group-size", type=int, default=100)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--shortcut", action="store_true",
                    help="also trace the cross-host case with the what-if sender shortcut of bench/dataplane.py")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--tag", default="bp", help="lab prefix tag")
    args = ap.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with lab_with_plane(2, tag=args.tag) as (lab, plane):
        net = Containers(lab, plane)
        try:
            topo = dataplane.build_policy(lab, net, args.group_size, args.rules)
            results = run(lab, topo, shortcut=args.shortcut)
            flows = {h.name: dataplane.br_int_flows(h) for h in lab.hosts}
        finally:
            net.cleanup()
    ovs = os.popen("ovs-vswitchd --version").read().splitlines()[0]
    text = "\n".join([
        f"Traced {started}: `.venv/bin/python bench/packet_path.py --group-size {args.group_size} --rules "
        f"{args.rules}{' --shortcut' if args.shortcut else ''}`; {ovs}; the policy of bench/dataplane.py "
        "(br-int flows per host: "
        + ", ".join(f"{h} {n}" for h, n in flows.items()) + "). Counts from `ofproto/trace --ct-next` on "
        "each host's own bridge; the VXLAN decapsulation pass (`tnl_pop`, one recirculation) of a tunnelled "
        "packet is added where marked. The NORMAL + VXLAN baseline: 1 pass, no ct() on a host that sends; "
        "1 + tnl_pop on a host that receives over VXLAN.",
        "",
        table(results),
        "",
        "Megaflow matches per datapath pass, cross host routed (what the classifier un-wildcarded):",
        "",
        megaflow_examples(results),
    ])
    print(text)
    if not args.no_docs:
        dataplane.write_doc(text, start=START, end=END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
