"""Data plane: the full nuage-ryu pipeline against a plain NORMAL + VXLAN bridge, same hosts, same run.

    .venv/bin/python bench/dataplane.py [--quick] [--shortcut] [--rounds 3] [--seconds 5] [--no-docs] [--json FILE]

A 2-host lab (``lab_with_plane``: each host its own ovsdb-server + ovs-vswitchd, userspace datapath; the
directory and one VRS agent per host) carrying a realistic policy (``build_policy``): a 3-tier domain,
default deny, subnets web / app / db, policy groups web / app / db of ``--group-size`` members each
(default 100) and ``--rules`` rules (default 100: the rules the traffic needs, a stateless pair, deny
rules, and filler allow/deny rules on other ports in front of them). Most group members are vports that
exist only in the directory, bound to four phantom hosts (directory hosts with a tunnel IP and no
machine), so every host carries their ARP answers, routes, tunnel classification and policy clauses.
Traffic flows between three endpoint namespaces: web1 (h1) -> app1 (h1) is the *same-host* pair,
web1 (h1) -> app2 (h2) the *cross-host* pair (both routed web subnet -> app subnet, stateful allow).

The baseline lives on the same hosts and in the same endpoint namespaces: every host also gets
``br-base`` (netdev datapath, standalone = one NORMAL flow, MAC learning) with one VXLAN port to the other
host (fixed remote_ip, fixed key, UDP 4790 so it never meets br-int's flow-based port), and every
endpoint a second interface ``eth1`` on it with an address in 10.254.0.0/24. Same processes, same veth
type, same MTU, same datapath thread; only the bridge differs.

Each host's ovs-vswitchd is bound to a CPU of its own (``pin_vswitchd``; ``--no-pin``: not), as the
switches of two real hosts would each have their own cores. Per pair, per mode, ``--rounds`` times,
modes interleaved (pipeline, baseline, pipeline, ...) so that a change in machine load hits both alike;
the median round is reported:

* throughput: ``iperf3 -c`` for ``--seconds``, one TCP stream, receiver's bits/s;
* RR latency: ``sockperf ping-pong --tcp --full-rtt -m 64``: round-trip time p50/p99 of a 64-byte
  request/response on one TCP connection (sockperf: C, Debian package, percentiles over every message);
* new connections/s: ``CRR_CLIENT`` (Python, below): connect, send 1 byte, read 1 byte, close, for
  ``--seconds``, one connection at a time. The client's own CPU per connection is the same in both
  modes; the loopback figure in the same namespace (no OVS) is printed as the tool's ceiling.

Before each run the datapath flows of both hosts are flushed (``dpctl/del-flows``: every run starts cold)
and the PMD stats cleared; after it, per host: ``dpctl/dump-flows`` (megaflows, and how many exact-match
the L4 ports), ``dpif-netdev/pmd-stats-show`` (upcalls = misses with upcall, recirculations, datapath
passes per packet) and ``upcall/show``'s flow count. The load average is recorded with every figure:
the machine is shared, so figures are noisy; ratios of interleaved runs are the honest part.

Results go to stdout and, unless ``--no-docs``, into docs/pipeline.md between the bench markers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from nuage_ryu.lab import netns as labnetns  # noqa: E402
from nuage_ryu.lab.lab import Lab, LabHost  # noqa: E402
from tests.lab_helpers import Container, Containers, lab_with_plane, ns_run, wait_until  # noqa: E402
from tests.trace_check import host_flows  # noqa: E402

DOC = os.path.join(REPO, "docs", "pipeline.md")
START, END = "<!-- bench:dataplane:start -->", "<!-- bench:dataplane:end -->"

IPERF_PORT, SOCKPERF_PORT, CRR_PORT, HOLD_PORT = 5201, 11111, 7000, 7001
BASE_BRIDGE, BASE_TUNNEL, BASE_VNI, BASE_UDP = "br-base", "vxbase", 4242, 4790
BASE_NET = "10.254.0"
MTU = 1450  # what the plugins give a container (underlay 1500 - VXLAN 50); both modes alike
PHANTOM_HOSTS = 4

CRR_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(512)
while True:
    c, _ = s.accept()
    try:
        if c.recv(1):
            c.sendall(b"k")
    except OSError:
        pass
    c.close()
"""

HOLD_SERVER = r"""
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4096)
held = []
while True:
    held.append(s.accept()[0])
    if len(held) > 20000:
        held.pop(0).close()
"""

HOLD_CLIENT = r"""
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = []
for _ in range(n):
    c = socket.create_connection((ip, port), timeout=5)
    c.sendall(b"x")
    conns.append(c)
print("open", len(conns), flush=True)
sys.stdin.readline()
for c in conns:
    c.close()
"""

CRR_CLIENT = r"""
import socket, sys, time
ip, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
done = failed = 0
end = time.perf_counter() + seconds
start = time.perf_counter()
while time.perf_counter() < end:
    try:
        c = socket.create_connection((ip, port), timeout=2)
        c.sendall(b"q")
        ok = c.recv(1) == b"k"
        c.close()
    except OSError:
        ok = False
    if ok:
        done += 1
    else:
        failed += 1
print(done, failed, time.perf_counter() - start)
"""


# ---- topology ---------------------------------------------------------------------------------------


@dataclass
class Topology:
    """What ``build_policy`` created: ids of the domain's objects and the endpoint containers."""

    domain: dict
    subnets: dict[str, dict]  # tier -> subnet
    groups: dict[str, str]  # tier -> policy group id
    rules: list[dict]
    endpoints: dict[str, Container] = field(default_factory=dict)
    base_ip: dict[str, str] = field(default_factory=dict)  # endpoint name -> its eth1 address
    phantom_ips: dict[str, list[str]] = field(default_factory=dict)  # tier -> addresses of phantom members


TIERS = ("web", "app", "db")
# Endpoint containers: name -> (tier, host). Traffic flows web1 -> app1 (same host), web1 -> app2 (cross
# host); the others exist for the packet-path traces (bench/packet_path.py): same subnet on one host
# (web2), same subnet across hosts (web3), a stateless / denied destination (db1).
ENDPOINTS = {"web1": ("web", "h1"), "app1": ("app", "h1"), "app2": ("app", "h2"),
             "web2": ("web", "h1"), "web3": ("web", "h2"), "db1": ("db", "h2")}
TRAFFIC = ("web1", "app1", "app2")
PAIRS = {"same host": ("web1", "app1"), "cross host": ("web1", "app2")}
STATELESS_PORT, DENY_PORT = 9999, 5432


def filler_rule(groups: dict[str, str], k: int, priority: int) -> dict:
    """Filler rule number ``k``: allow or deny (every 10th), a port or a range, ports the traffic never uses."""
    pairs = [(s, d) for s in TIERS for d in TIERS]
    src, dst = pairs[k % len(pairs)]
    ports = f"{30000 + 10 * k}-{30000 + 10 * k + 9}" if k % 7 == 3 else str(20000 + k)
    action = "deny" if k % 10 == 9 else "allow"
    return {"priority": priority, "source": {"type": "policygroup", "id": groups[src]},
            "destination": {"type": "policygroup", "id": groups[dst]}, "protocol": "tcp", "dst_ports": ports,
            "action": action, "stateful": action == "allow"}


def policy_rules(groups: dict[str, str], n_rules: int) -> list[dict]:
    """``n_rules`` rule bodies: filler rules first (priorities 100..), then the ones the traffic needs.

    The needed ones: web -> app tcp 5201 / 11111 / 7000 / 7001 (iperf3, sockperf, CRR, held connections),
    web -> web tcp 5201, app ->
    db tcp 5432 (stateful allows); web -> db tcp 5432 (deny); app -> db tcp 9999 and db -> app tcp
    1024-65535 (a stateless pair). The filler: allow and deny (every 10th), single ports and ranges,
    between all tier pairs, on ports 20000.. that the traffic never uses (so they shape the tables and
    the classifier, not the verdicts).
    """
    def pg(tier: str) -> dict:
        return {"type": "policygroup", "id": groups[tier]}

    def rule(prio, src, dst, ports, action="allow", stateful=True) -> dict:
        return {"priority": prio, "source": pg(src), "destination": pg(dst), "protocol": "tcp",
                "dst_ports": ports, "action": action, "stateful": stateful if action == "allow" else False}

    needed = [rule(0, "web", "app", str(IPERF_PORT)), rule(0, "web", "app", str(SOCKPERF_PORT)),
              rule(0, "web", "app", str(CRR_PORT)), rule(0, "web", "app", str(HOLD_PORT)),
              rule(0, "web", "web", str(IPERF_PORT)),
              rule(0, "web", "db", str(DENY_PORT), action="deny"), rule(0, "app", "db", str(DENY_PORT)),
              rule(0, "app", "db", str(STATELESS_PORT), stateful=False),
              rule(0, "db", "app", "1024-65535", stateful=False)]
    if n_rules < len(needed):
        raise SystemExit(f"--rules must be at least {len(needed)}")
    out = [filler_rule(groups, k, 0) for k in range(n_rules - len(needed))] + needed
    for i, body in enumerate(out):
        body["priority"] = 100 + i
    return out


def build_policy(lab: Lab, net: Containers, group_size: int, n_rules: int) -> Topology:
    """The 3-tier domain, its phantom members and rules, and the endpoint containers (see the module doc)."""
    client = net.client
    ent = client.request("POST", "/enterprises", {"name": "dataplane"})
    dom = client.request("POST", f"/enterprises/{ent['id']}/domains", {"name": "3tier", "default_action": "deny"})
    subnets, groups = {}, {}
    for i, tier in enumerate(TIERS, start=1):
        zone = client.request("POST", f"/domains/{dom['id']}/zones", {"name": tier})
        subnets[tier] = client.request("POST", f"/zones/{zone['id']}/subnets",
                                       {"name": tier, "cidr": f"10.71.{i}.0/24", "gateway": f"10.71.{i}.1"})
        groups[tier] = client.request("POST", f"/domains/{dom['id']}/policygroups", {"name": tier})["id"]
    topo = Topology(dom, subnets, groups, [])
    phantoms = [client.request("POST", "/hosts", {"name": f"{lab.prefix}-ph{i}",
                                                  "tunnel_ip": f"192.0.2.{200 + i}"})["name"]
                for i in range(1, PHANTOM_HOSTS + 1)]
    real = {tier: sum(1 for t, _h in ENDPOINTS.values() if t == tier) for tier in TIERS}
    for tier in TIERS:
        for i in range(group_size - real[tier]):
            vport = client.request("POST", f"/subnets/{subnets[tier]['id']}/vports",
                                   {"name": f"{tier}-ph{i}", "host": phantoms[i % len(phantoms)],
                                    "policygroups": [groups[tier]]})
            topo.phantom_ips.setdefault(tier, []).append(vport["ip"])
    for body in policy_rules(groups, n_rules):
        topo.rules.append(client.request("POST", f"/domains/{dom['id']}/acls", body))
    for name, (tier, host) in ENDPOINTS.items():
        topo.endpoints[name] = net.add(name, host, subnets[tier], policygroups=[groups[tier]])
    return topo


def ovs_env_run(host: LabHost, argv: list[str], timeout: float = 30) -> str:
    """Run an OVS tool against ``host``'s own OVS (its rundir env, inside its namespace)."""
    return host.ovs.run(argv, timeout=timeout).stdout


def build_baseline(lab: Lab, topo: Topology) -> None:
    """br-base (NORMAL) + a fixed VXLAN port on every host; ``eth1`` of every traffic endpoint on it."""
    hosts = lab.hosts
    for host in hosts:
        peer = next(h for h in hosts if h.name != host.name)
        host.ovs.vsctl("--may-exist", "add-br", BASE_BRIDGE, "--", "set", "bridge", BASE_BRIDGE,
                       "datapath_type=netdev", "fail_mode=standalone",
                       "--", "--may-exist", "add-port", BASE_BRIDGE, BASE_TUNNEL,
                       "--", "set", "interface", BASE_TUNNEL, "type=vxlan",
                       f"options:remote_ip={peer.underlay_ip}", f"options:local_ip={host.underlay_ip}",
                       f"options:key={BASE_VNI}", f"options:dst_port={BASE_UDP}")
    by_name = {h.name: h for h in hosts}
    for index, name in enumerate(TRAFFIC, start=1):
        ep = topo.endpoints[name]
        host = by_name[ep.host.name]
        host_if = f"hb{os.getpid() % 10000}x{index}"[:15]
        subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth1", "netns",
                        ep.netns], check=True)
        subprocess.run(["ip", "link", "set", host_if, "netns", host.netns], check=True)
        ns_run(host.netns, ["ip", "link", "set", host_if, "up"], check=True)
        ip = f"{BASE_NET}.{index}"
        ns_run(ep.netns, ["ip", "addr", "add", f"{ip}/24", "dev", "eth1"], check=True)
        ns_run(ep.netns, ["ip", "link", "set", "eth1", "mtu", str(MTU), "up"], check=True)
        labnetns.disable_tx_checksum(ep.netns, ["eth1"])
        labnetns.disable_tx_checksum(host.netns, [host_if])
        host.ovs.vsctl("--may-exist", "add-port", BASE_BRIDGE, host_if)
        topo.base_ip[name] = ip


def check_paths(topo: Topology) -> None:
    """Every pair connects in both modes before anything is measured (ARP and MAC learning warm).

    TCP to the CRR server, not ping: the policy allows only the benchmark's TCP ports.
    """
    src = topo.endpoints["web1"]
    for peer in ("app1", "app2"):
        for ip in (topo.endpoints[peer].ip, topo.base_ip[peer]):
            wait_until(lambda ip=ip: run_crr(src, ip, 0.2)["connections"] > 0, timeout=20,
                       message=f"web1 -> {peer} at {ip}")


# ---- what-if: the sending host's shortcut for TCP that opens nothing (issue 17, phase B plan) ---------

# Kind byte 0xee is none of nuage_ryu.vrs.cookies' kinds: the agents' sync engine leaves these flows alone.
SHORTCUT_COOKIE = 0xEE00000000000017
SHORTCUT_PAIRS = (("web1", "app2"), ("app2", "web1"))  # both directions of the cross-host pair


def install_shortcut(topo: Topology) -> None:
    """On the sending host, TCP without SYN to the remote end of the cross-host pair skips the sender's
    conntrack recirculation and policy: ``ct(zone)`` without ``table`` (updates the connection's TCP
    state, creates nothing, no recirculation), then straight to L3_LOOKUP. The receiving host is unchanged
    (it decides, with its own conntrack and rules). Only for the benchmark's pair, by destination IP:
    the real change needs L3_LOOKUP before conntrack (see the report of issue 17)."""
    zone = topo.domain["ct_zone"]
    for src, dst in SHORTCUT_PAIRS:
        host = topo.endpoints[src].host
        host.ovs.ofctl("-O", "OpenFlow14", "add-flow", "br-int",
                       f"table=20,priority=200,cookie={SHORTCUT_COOKIE:#x},tcp,reg6={topo.domain['vni']},"
                       f"nw_dst={topo.endpoints[dst].ip},tcp_flags=-syn,actions=ct(zone={zone}),goto_table:30")


def remove_shortcut(topo: Topology) -> None:
    for src, _dst in SHORTCUT_PAIRS:
        topo.endpoints[src].host.ovs.ofctl("-O", "OpenFlow14", "del-flows", "br-int",
                                           f"cookie={SHORTCUT_COOKIE:#x}/-1")


# ---- datapath statistics ----------------------------------------------------------------------------

PMD_FIELDS = {
    "packets": r"packets received: (\d+)",
    "recirculations": r"packet recirculations: (\d+)",
    "passes_per_packet": r"avg\. datapath passes per packet: ([\d.]+)",
    "emc_hits": r"emc hits: (\d+)",
    "megaflow_hits": r"megaflow hits: (\d+)",
    "upcalls": r"miss with success upcall: (\d+)",
    "failed_upcalls": r"miss with failed upcall: (\d+)",
    "cycles_per_packet": r"avg processing cycles per packet: ([\d.]+)",
}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pin_vswitchd(host: LabHost, cpu: int) -> None:
    """Bind every thread of ``host``'s ovs-vswitchd to ``cpu`` (threads it starts later inherit it).

    The default (``--no-pin`` to skip): h1's on the first CPU, h2's on the second, in both modes.
    Unbound, the scheduler of this 2-core machine sometimes ran both on one core, and such a round
    measured about half the rate of the others, whichever mode it measured (cross-host rounds of one
    run: 295-452 against 694-829 connections/s). The clients and servers stay unbound: bound too
    (client + h1's ovs-vswitchd on one core), a same-host pair's client and switch took turns on
    one core while the other idled (same-host RR 142 -> 220 us, CRR 1312 -> 206 connections/s).
    """
    pid = host.ovs.pids()["ovs-vswitchd"]
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


def vswitchd_cpu(host: LabHost) -> float:
    """CPU seconds (user + system, all threads) ovs-vswitchd of ``host`` has used so far."""
    pid = host.ovs.pids()["ovs-vswitchd"]
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def dp_reset(hosts: list[LabHost]) -> None:
    """Start a run cold: no datapath flows, PMD counters at zero."""
    for host in hosts:
        host.ovs.appctl("dpctl/del-flows")
        host.ovs.appctl("dpif-netdev/pmd-stats-clear")


def dp_stats(host: LabHost) -> dict:
    """Datapath figures of one host since ``dp_reset``: megaflows now, PMD counters, upcall/show flows."""
    flows = [line for line in host.ovs.appctl("dpctl/dump-flows").splitlines() if line.strip()]
    pmd = host.ovs.appctl("dpif-netdev/pmd-stats-show")
    stats: dict = {"megaflows": len(flows),
                   "megaflows_exact_l4": sum(1 for f in flows if _exact_l4(f)),
                   "recirc_ids": len({m for f in flows for m in re.findall(r"recirc_id\((0x[0-9a-f]+)\)", f)}),
                   "ct_actions": sum(f.split("actions:", 1)[-1].count("ct(") for f in flows)}
    # The main thread does all the work of a netdev bridge on veths; sum over every thread shown.
    for key, pattern in PMD_FIELDS.items():
        values = [float(v) for v in re.findall(pattern, pmd)]
        if key in ("passes_per_packet", "cycles_per_packet"):
            stats[key] = max(values) if values else 0.0
        else:
            stats[key] = int(sum(values))
    upcall = host.ovs.appctl("upcall/show")
    m = re.search(r"flows\s*:\s*\(current (\d+)\)", upcall)
    stats["upcall_show_flows"] = int(m.group(1)) if m else None
    return stats


def _exact_l4(flow: str) -> bool:
    """True when a megaflow's match has an exact TCP/UDP source port (one such flow per connection)."""
    key = flow.split(", packets:", 1)[0]  # the match only, not the actions (tnl_push has a udp(src=0))
    m = re.search(r"(?:tcp|udp)\(([^)]*)\)", key)
    return bool(m and re.search(r"(?:^|,)src=\d+(?:,|$)", m.group(1)))


# ---- traffic tools ------------------------------------------------------------------------------------


@dataclass
class Servers:
    """iperf3, sockperf and the CRR server in each destination namespace; stopped by pid."""

    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, ep: Container) -> None:
        for argv in (["iperf3", "-s", "-p", str(IPERF_PORT)],
                     ["sockperf", "server", "--tcp", "-i", "0.0.0.0", "-p", str(SOCKPERF_PORT)],
                     [sys.executable, "-c", CRR_SERVER, str(CRR_PORT)],
                     [sys.executable, "-c", HOLD_SERVER, str(HOLD_PORT)]):
            self.procs.append(subprocess.Popen(["ip", "netns", "exec", ep.netns, *argv],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                               start_new_session=True))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def wait_listening(ep: Container, ports: tuple[int, ...]) -> None:
    def listening() -> bool:
        out = ns_run(ep.netns, ["ss", "-Htln"]).stdout
        return all(re.search(rf":{p}\b", out) for p in ports)

    wait_until(listening, timeout=15, message=f"servers listening in {ep.name}")


def run_iperf(src: Container, ip: str, seconds: float) -> dict:
    proc = ns_run(src.netns, ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                  timeout=seconds + 30)
    data = json.loads(proc.stdout)
    if "error" in data:
        raise RuntimeError(f"iperf3 to {ip}: {data['error']}")
    end = data["end"]
    return {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
            "bytes": end["sum_received"]["bytes"],
            "retransmits": end["sum_sent"].get("retransmits", 0)}


def run_sockperf(src: Container, ip: str, seconds: float) -> dict:
    proc = ns_run(src.netns, ["sockperf", "ping-pong", "--tcp", "--full-rtt", "-i", ip, "-p", str(SOCKPERF_PORT),
                              "-m", "64", "-t", str(seconds)], timeout=seconds + 30)
    out = proc.stdout + proc.stderr

    def pct(q: str) -> float:
        m = re.search(rf"percentile {q}\s*=\s*([\d.]+)", out)
        if not m:
            raise RuntimeError(f"sockperf to {ip}: no percentile {q} in output:\n{out[-2000:]}")
        return float(m.group(1))

    observations = re.search(r"ReceivedMessages=(\d+)", out)
    return {"p50_us": pct("50.000"), "p99_us": pct("99.000"),
            "messages": int(observations.group(1)) if observations else 0}


def run_crr(src: Container, ip: str, seconds: float) -> dict:
    proc = ns_run(src.netns, [sys.executable, "-c", CRR_CLIENT, ip, str(CRR_PORT), str(seconds)],
                  timeout=seconds + 60)
    done, failed, elapsed = proc.stdout.split()
    return {"cps": int(done) / float(elapsed), "connections": int(done), "failed": int(failed)}


def held_connections(hosts: list[LabHost], src: Container, ip: str, n: int) -> dict:
    """Open ``n`` TCP connections at once and keep them; the datapath's megaflows while they are open."""
    dp_reset(hosts)
    proc = subprocess.Popen(["ip", "netns", "exec", src.netns, sys.executable, "-c", HOLD_CLIENT, ip,
                             str(HOLD_PORT), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        if line[:1] != ["open"]:
            raise RuntimeError(f"held connections to {ip}: {proc.stderr.read()[-2000:]}")
        stats = {h.name: dp_stats(h) for h in hosts}
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"connections": int(line[1]), "load": loadavg(), "datapath": stats}


def add_rules(net: Containers, topo: Topology, hosts: list[LabHost], extra: int, directory_db: str) -> dict[str, int]:
    """``extra`` more filler rules (after the existing ones); waits until every br-int's flow count has moved
    by exactly what the compiler gives for the new directory state (``tests.trace_check.host_flows``)."""
    # The agent may install flows the compiler of tests/trace_check does not produce (the difference is
    # constant): expect the installed count to move by exactly what the compiled count moves by.
    extra_now = {h.name: br_int_flows(h) - len(host_flows(h, directory_db)[0]) for h in hosts}
    first = 100 + len(topo.rules)
    for k in range(extra):
        body = filler_rule(topo.groups, 1000 + k, first + k)
        topo.rules.append(net.client.request("POST", f"/domains/{topo.domain['id']}/acls", body))
    expected = {h.name: len(host_flows(h, directory_db)[0]) + extra_now[h.name] for h in hosts}

    seen: dict[str, int] = {}

    def installed() -> dict[str, int] | None:
        seen.update({h.name: br_int_flows(h) for h in hosts})
        return dict(seen) if seen == expected else None

    try:
        return wait_until(installed, timeout=60, message="the added rules on every host")
    except AssertionError:
        raise AssertionError(f"br-int flows {seen}, compiled {expected}") from None


TOOLS: dict[str, tuple[Callable[[Container, str, float], dict], str]] = {
    "throughput": (run_iperf, "gbps"),
    "rr": (run_sockperf, "p50_us"),
    "crr": (run_crr, "cps"),
}


# ---- the measurement -------------------------------------------------------------------------------------


UNITS = {"throughput": "MB", "rr": "transaction", "crr": "connection"}


def _units(metric: str, result: dict) -> float:
    """How much work a run did, in ``UNITS[metric]`` (the denominator of the CPU cost per unit)."""
    if metric == "throughput":
        return max(result["bytes"] / 1e6, 1e-9)
    return max(result["messages" if metric == "rr" else "connections"], 1)


def loadavg() -> float:
    """1-minute load average of the machine, recorded with every figure."""
    return os.getloadavg()[0]


def modes_for(pair: str, shortcut: bool) -> tuple[str, ...]:
    """The modes measured for a pair: the what-if shortcut only changes the cross-host path."""
    return ("pipeline", "shortcut", "baseline") if shortcut and pair == "cross host" else ("pipeline", "baseline")


def idle_cpu_rates(hosts: list[LabHost], seconds: float) -> dict[str, float]:
    """ovs-vswitchd CPU seconds per second of each host with no benchmark traffic (its own housekeeping:
    main loop, revalidators), subtracted from every run so that the per-unit cost is the traffic's."""
    before = {h.name: vswitchd_cpu(h) for h in hosts}
    t0 = time.monotonic()
    time.sleep(seconds)  # bench: the idle window being measured
    elapsed = time.monotonic() - t0
    return {h.name: (vswitchd_cpu(h) - before[h.name]) / elapsed for h in hosts}


def measure(lab: Lab, topo: Topology, rounds: int, seconds: float, log=print, shortcut: bool = False) -> list[dict]:
    """Every (metric, pair, mode, round), modes interleaved; one record per run."""
    hosts = lab.hosts
    records = []
    idle = idle_cpu_rates(hosts, max(seconds, 2.0))
    log("ovs-vswitchd idle CPU (s/s): " + ", ".join(f"{h} {r:.3f}" for h, r in idle.items()))
    for metric, (tool, _key) in TOOLS.items():
        for pair, (src_name, dst_name) in PAIRS.items():
            src = topo.endpoints[src_name]
            for rnd in range(rounds):
                for mode in modes_for(pair, shortcut):
                    ip = topo.endpoints[dst_name].ip if mode != "baseline" else topo.base_ip[dst_name]
                    if mode == "shortcut":
                        install_shortcut(topo)
                    dp_reset(hosts)
                    load = loadavg()
                    cpu0 = {h.name: vswitchd_cpu(h) for h in hosts}
                    t0 = time.monotonic()
                    result = tool(src, ip, seconds)
                    elapsed = time.monotonic() - t0
                    cpu = {h.name: max(0.0, vswitchd_cpu(h) - cpu0[h.name] - idle[h.name] * elapsed)
                           for h in hosts}
                    if mode == "shortcut":
                        remove_shortcut(topo)
                    per_host = {h.name: dp_stats(h) | {"vswitchd_cpu_s": cpu[h.name]} for h in hosts}
                    result["cpu_per_unit_us"] = sum(cpu.values()) / _units(metric, result) * 1e6
                    rec = {"metric": metric, "pair": pair, "mode": mode, "round": rnd, "seconds": elapsed,
                           "load": load, "result": result, "datapath": per_host}
                    records.append(rec)
                    log(f"{metric:10} {pair:10} {mode:9} round {rnd}: "
                        + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in result.items())
                        + f"  load {load:.2f}; megaflows "
                        + ", ".join(f"{h} {s['megaflows']}" for h, s in per_host.items())
                        + "; upcalls " + ", ".join(f"{h} {s['upcalls']}" for h, s in per_host.items()))
    return records


def held_runs(lab: Lab, topo: Topology, n: int, rules: int, modes=("pipeline", "baseline")) -> list[dict]:
    """``held_connections`` for every pair and mode; one record each."""
    out = []
    for pair, (src_name, dst_name) in PAIRS.items():
        for mode in modes:
            ip = topo.endpoints[dst_name].ip if mode == "pipeline" else topo.base_ip[dst_name]
            rec = held_connections(lab.hosts, topo.endpoints[src_name], ip, n)
            rec.update(pair=pair, mode=mode, rules=rules)
            out.append(rec)
            print(f"held {rec['connections']} connections {pair} {mode} ({rules} rules): megaflows "
                  + ", ".join(f"{h} {s['megaflows']} ({s['megaflows_exact_l4']} exact L4)"
                              for h, s in rec["datapath"].items()) + f"; load {rec['load']:.2f}", flush=True)
    return out


def loopback_crr(src: Container, seconds: float) -> dict:
    """The CRR tool against itself over the namespace's loopback: the client's own ceiling."""
    server = subprocess.Popen(["ip", "netns", "exec", src.netns, sys.executable, "-c", CRR_SERVER,
                               str(CRR_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_listening(src, (CRR_PORT,))
        return run_crr(src, "127.0.0.1", seconds) | {"load": loadavg()}
    finally:
        server.terminate()
        server.wait(5)


def median_run(records: list[dict], metric: str, pair: str, mode: str) -> dict:
    """The run with the median value of the metric's key figure (an actual run, not an average)."""
    key = TOOLS[metric][1]
    runs = sorted((r for r in records if (r["metric"], r["pair"], r["mode"]) == (metric, pair, mode)),
                  key=lambda r: r["result"][key])
    return runs[(len(runs) - 1) // 2]


def summarise(records: list[dict]) -> list[dict]:
    """One row per (metric, pair): the median run of each mode, their ratio and datapath figures."""
    rows = []
    for metric, (_tool, key) in TOOLS.items():
        for pair in PAIRS:
            full, base = (median_run(records, metric, pair, m) for m in ("pipeline", "baseline"))
            ratio = full["result"][key] / base["result"][key] if base["result"][key] else float("nan")
            all_ratios = []
            for rnd in sorted({r["round"] for r in records}):
                by_mode = {r["mode"]: r["result"][key] for r in records
                           if (r["metric"], r["pair"], r["round"]) == (metric, pair, rnd)}
                if by_mode.get("baseline"):
                    all_ratios.append(by_mode["pipeline"] / by_mode["baseline"])
            row = {"metric": metric, "pair": pair, "pipeline": full, "baseline": base, "ratio": ratio,
                   "round_ratios": all_ratios}
            if any(r["mode"] == "shortcut" and r["pair"] == pair for r in records):
                short = median_run(records, metric, pair, "shortcut")
                row["shortcut"] = short
                row["shortcut_ratio"] = short["result"][key] / base["result"][key] if base["result"][key] else 0.0
            rows.append(row)
    return rows


METRIC_LABEL = {"throughput": ("TCP throughput (Gbit/s)", "{:.2f}"),
                "rr": ("RR latency p50 / p99 (µs, round trip)", None),
                "crr": ("new connections/s", "{:.0f}")}
TARGETS = {"throughput": ("≥ 0.95×", lambda r: r >= 0.95), "rr": ("p50 ≤ 1.1×", lambda r: r <= 1.1),
           "crr": ("≥ 0.9×", lambda r: r >= 0.9)}


def _value(metric: str, run: dict) -> str:
    res = run["result"]
    if metric == "rr":
        return f"{res['p50_us']:.0f} / {res['p99_us']:.0f}"
    return METRIC_LABEL[metric][1].format(res[TOOLS[metric][1]])


def _dp(run: dict, seconds_key: str = "seconds") -> str:
    """Megaflows and upcalls/s of a run, per host that saw packets."""
    parts = []
    for host, s in run["datapath"].items():
        if not s["packets"]:
            continue
        rate = s["upcalls"] / run[seconds_key] if run[seconds_key] else 0.0
        parts.append(f"{host}: {s['megaflows']} mf ({s['megaflows_exact_l4']} exact L4), "
                     f"{rate:.0f} upcalls/s, {s['passes_per_packet']:.2f} passes/pkt")
    return "; ".join(parts)


def report(rows: list[dict], args, topo: Topology, flows: dict[str, int], ceiling: dict, started: str,
           held: list[dict], flows_more: dict[str, int]) -> str:
    ovs = subprocess.run(["ovs-vswitchd", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    loads = [r[m]["load"] for r in rows for m in ("pipeline", "baseline")]
    lines = [
        f"Measured {started}: `.venv/bin/python bench/dataplane.py{' --quick' if args.quick else ''}"
        f"{' --shortcut' if args.shortcut else ''}{' --no-pin' if args.no_pin else ''} "
        f"--rounds {args.rounds} --seconds {args.seconds:g}`; {ovs}, netdev datapath on veths, "
        + ("each ovs-vswitchd bound to a CPU of its own (h1 0, h2 1; clients and servers unbound), "
           if args.pin else "ovs-vswitchd unbound, ") +
        f"{os.cpu_count()} cores shared with other jobs (1-min load average during the runs "
        f"{min(loads):.1f}..{max(loads):.1f}). Policy: {args.rules} rules, groups of "
        f"{args.group_size} ({sum(map(len, topo.phantom_ips.values()))} phantom members on {PHANTOM_HOSTS} "
        "phantom hosts); "
        "br-int flows per host: " + ", ".join(f"{h} {n}" for h, n in flows.items()) + ". "
        f"Median of {args.rounds} interleaved rounds per mode; ratio = pipeline / baseline "
        "(all rounds' ratios in brackets).",
        "",
        "| metric | pair | full pipeline | baseline (NORMAL + VXLAN) | ratio | target | load (p/b) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        metric = row["metric"]
        target, ok = TARGETS[metric]
        ratio = row["ratio"]
        if metric == "rr":
            p99 = row["pipeline"]["result"]["p99_us"] / row["baseline"]["result"]["p99_us"]
            ratio_text = f"{ratio:.2f}× (p99 {p99:.2f}×)"
        else:
            ratio_text = f"{ratio:.2f}×"
        rounds = ", ".join(f"{r:.2f}" for r in row["round_ratios"])
        lines.append(f"| {METRIC_LABEL[metric][0]} | {row['pair']} | {_value(metric, row['pipeline'])} | "
                     f"{_value(metric, row['baseline'])} | {ratio_text} [{rounds}] | {target}: "
                     f"{'met' if ok(ratio) else 'missed'} | {row['pipeline']['load']:.1f} / "
                     f"{row['baseline']['load']:.1f} |")
    shortcut_rows = [row for row in rows if "shortcut" in row]
    if shortcut_rows:
        lines += ["", "What-if, phase B's sender shortcut (`--shortcut`: on the sending host, TCP without SYN to the "
                      "other host skips the sender's ct recirculation and policy; flows added by the bench, "
                      "see `install_shortcut`), cross host, same run:", "",
                  "| metric | full pipeline | with the shortcut | baseline | shortcut / baseline | "
                  "vswitchd CPU per unit: pipeline / shortcut / baseline | datapath (shortcut) |",
                  "|---|---|---|---|---|---|---|"]
        for row in shortcut_rows:
            metric = row["metric"]
            lines.append(f"| {METRIC_LABEL[metric][0]} | {_value(metric, row['pipeline'])} | "
                         f"{_value(metric, row['shortcut'])} | {_value(metric, row['baseline'])} | "
                         f"{row['shortcut_ratio']:.2f}× | "
                         + " / ".join(f"{row[m]['result']['cpu_per_unit_us']:.0f}"
                                      for m in ("pipeline", "shortcut", "baseline"))
                         + f" µs/{UNITS[metric]} | {_dp(row['shortcut'])} |")
    lines += ["", "ovs-vswitchd CPU time (user + system, all threads, both hosts, minus each host's idle rate "
                  "measured before the runs) per unit of work, same median runs: less sensitive to the "
                  "machine's load than the rates above, since it counts what the datapath spent rather than "
                  "what it got.", "",
              "| metric | pair | full pipeline | baseline | ratio |", "|---|---|---|---|---|"]
    for row in rows:
        metric = row["metric"]
        full, base = (row[m]["result"]["cpu_per_unit_us"] for m in ("pipeline", "baseline"))
        lines.append(f"| {metric} | {row['pair']} | {full:.0f} µs/{UNITS[metric]} | {base:.0f} µs/{UNITS[metric]} | "
                     f"{full / base if base else float('nan'):.2f}× |")
    lines += ["", f"CRR tool ceiling (same client over the namespace's loopback, no OVS): "
                  f"{ceiling['cps']:.0f} connections/s (load {ceiling['load']:.1f}).", "",
              "Datapath of the median runs (per host that carried packets: megaflows after the run, how many "
              "match an L4 source port exactly, upcalls per second of the run, datapath passes per packet "
              "= 1 + recirculations):", "",
              "| metric | pair | full pipeline | baseline |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['metric']} | {row['pair']} | {_dp(row['pipeline'])} | {_dp(row['baseline'])} |")
    lines += ["", f"Megaflows while {args.connections} TCP connections are held open at once (web1 -> the "
                  f"pair's destination, port {HOLD_PORT}; br-int flows per host after the rules were added: "
              + ", ".join(f"{h} {n}" for h, n in flows_more.items()) + "):", "",
              "| pair | mode | rules | connections | megaflows per host (exact L4 source port) | load |",
              "|---|---|---|---|---|---|"]
    for rec in held:
        mf = ", ".join(f"{h} {s['megaflows']} ({s['megaflows_exact_l4']})" for h, s in rec["datapath"].items())
        lines.append(f"| {rec['pair']} | {rec['mode']} | {rec['rules']} | {rec['connections']} | {mf} | "
                     f"{rec['load']:.1f} |")
    return "\n".join(lines)


def write_doc(text: str, doc: str = DOC, start: str = START, end: str = END) -> None:
    """Replace what is between the bench markers of ``doc`` with ``text``."""
    with open(doc) as f:
        content = f.read()
    if start not in content or end not in content:
        raise SystemExit(f"{doc} has no bench markers {start} ... {end}")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(doc, "w") as f:
        f.write(head + start + "\n" + text + "\n" + end + tail)


def br_int_flows(host: LabHost) -> int:
    out = host.ovs.ofctl("-O", "OpenFlow14", "dump-aggregate", "br-int")
    return int(re.search(r"flow_count=(\d+)", out).group(1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: groups of 10, 10 rules, 1 round of 1 s (checks the bench, not the speed)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--group-size", type=int, default=None)
    ap.add_argument("--rules", type=int, default=None)
    ap.add_argument("--connections", type=int, default=None, help="concurrent connections held open")
    ap.add_argument("--more-rules", type=int, default=None,
                    help="rules added before the held connections are measured again")
    ap.add_argument("--shortcut", action="store_true",
                    help="also measure the cross-host pair with phase B's sender shortcut (what-if flows)")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--json", help="also write every run's record to this file")
    ap.add_argument("--tag", default="bd", help="lab prefix tag")
    ap.add_argument("--no-pin", action="store_true", help="leave both ovs-vswitchd unbound (see pin_vswitchd)")
    args = ap.parse_args(argv)
    args.pin = not args.no_pin and (os.cpu_count() or 1) >= 2  # one CPU each: needs two
    quick = {"rounds": 1, "seconds": 1.0, "group_size": 10, "rules": 12, "connections": 100, "more_rules": 10}
    full = {"rounds": 3, "seconds": 5.0, "group_size": 100, "rules": 100, "connections": 1000,
            "more_rules": 400}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    servers = Servers()
    with lab_with_plane(2, tag=args.tag) as (lab, plane):
        net = Containers(lab, plane)
        try:
            topo = build_policy(lab, net, args.group_size, args.rules)
            build_baseline(lab, topo)
            if args.pin:
                for host, cpu in zip(lab.hosts, (0, 1), strict=True):
                    pin_vswitchd(host, cpu)
            for dst in ("app1", "app2"):
                servers.start(topo.endpoints[dst])
                wait_listening(topo.endpoints[dst], (IPERF_PORT, SOCKPERF_PORT, CRR_PORT))
            check_paths(topo)
            flows = {h.name: br_int_flows(h) for h in lab.hosts}
            print(f"policy: {len(topo.rules)} rules, groups of {args.group_size}; br-int flows {flows}", flush=True)
            records = measure(lab, topo, args.rounds, args.seconds, log=lambda s: print(s, flush=True),
                              shortcut=args.shortcut)
            ceiling = loopback_crr(topo.endpoints["web1"], args.seconds)
            held = held_runs(lab, topo, args.connections, len(topo.rules))
            flows_more = add_rules(net, topo, lab.hosts, args.more_rules, plane.local_directory_db)
            print(f"{len(topo.rules)} rules now; br-int flows {flows_more}", flush=True)
            held += held_runs(lab, topo, args.connections, len(topo.rules), modes=("pipeline",))
        finally:
            servers.stop()
            net.cleanup()
    rows = summarise(records)
    text = report(rows, args, topo, flows, ceiling, started, held, flows_more)
    print()
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"records": records, "rows": rows, "flows": flows, "ceiling": ceiling, "held": held,
                       "flows_more_rules": flows_more, "quick": args.quick}, f, indent=1)
    if not args.no_docs:
        write_doc(text)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
