"""Verdict logs under a flood: forwarding and the agent's other work while logged packets hit the meter.

    .venv/bin/python bench/verdict_flood.py [--rounds 3] [--seconds 5] [--pps 10000] [--no-docs]

A 2-host lab (``lab_with_plane``: each host its own ovsdb-server + ovs-vswitchd, userspace datapath; the
directory and one VRS agent per host, default ``[vrs] verdict_log_rate`` = 100/s). Domain "bench", default
deny: web1 (h1) -> db1 (h2) tcp 5201 allowed, *not logged* (the measured flow, iperf3 across the
overlay); flood1 (h1) -> sink1 (h2) udp 9999 denied by a *logged* rule: every flood packet is a new
decision that sends a copy to h1's verdict-log meter, which passes 100/s to the agent and drops the rest
in the datapath. A third mode sends the same flood to udp 9998, denied by a rule that is *not* logged:
what 10k packets/s cost the userspace datapath by themselves, so that the logging's own share shows.

Per round, modes interleaved (quiet, flood, unlogged flood, quiet, ...) so that machine load hits them alike:

* forwarding: ``iperf3 -c`` web1 -> db1 for ``--seconds``, one TCP stream, receiver's bits/s; in the
  flood mode while ``--pps`` logged packets/s are sent (paced in 1 ms slices, achieved rate recorded);
* the agent's other work: policy change latency, from the REST call creating an allow rule to its
  verdict flow on h1's bridge (``ovs-ofctl dump-flows`` polled every 10 ms), five changes per mode;
* h1's agent CPU (utime + stime) and the meter's drop counter over the mode.

Reported: medians per mode, the ratio flood/quiet (target >= 0.9 for forwarding), the load average.
Results go to stdout and, unless ``--no-docs``, into docs/policy.md between the bench markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from nuage_ryu.vrs.compile import rule_cookie  # noqa: E402
from tests.lab_helpers import Containers, lab_with_plane, ns_run, wait_until  # noqa: E402

IPERF_PORT, FLOOD_PORT, PLAIN_PORT = 5201, 9999, 9998
BEGIN, END = "<!-- bench:verdict_flood:begin -->", "<!-- bench:verdict_flood:end -->"
FLOOD_SCRIPT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, pps, seconds = (sys.argv[1], int(sys.argv[4])), int(sys.argv[2]), float(sys.argv[3])
payload, sent, start = b"x" * 32, 0, time.monotonic()
while True:
    elapsed = time.monotonic() - start
    if elapsed >= seconds:
        break
    due = int(elapsed * pps) + pps // 1000
    while sent < due:
        s.sendto(payload, dst)
        sent += 1
    time.sleep(0.001)
print(sent / (time.monotonic() - start))
"""


def loadavg() -> float:
    return os.getloadavg()[0]


def agent_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_pid(plane, host) -> int:
    """The agent's Python process (the Popen is ``ip netns exec``, which execs it: same pid)."""
    return plane.procs[f"agent-{host.name}"].pid


def meter_drops(host) -> int:
    out = host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "meter-stats", "br-int"]).stdout
    m = re.search(r"meter:1 .*?bands:\s*0: packet_count:(\d+)", out, re.S)
    return int(m.group(1)) if m else 0


def iperf(src, ip: str, seconds: float) -> float:
    proc = ns_run(src.netns, ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                  timeout=seconds + 60)
    data = json.loads(proc.stdout)
    return data["end"]["sum_received"]["bits_per_second"] / 1e9


def policy_change(client, domain_id: str, groups: dict, host, port: int) -> float:
    """Seconds from the REST call creating an allow rule to its verdict flow on ``host``'s bridge."""
    body = {"priority": 1000 + port % 10000, "protocol": "tcp", "dst_ports": str(port), "action": "allow",
            "source": {"type": "policygroup", "id": groups["web"]},
            "destination": {"type": "policygroup", "id": groups["db"]}}
    start = time.monotonic()
    acl = client.request("POST", f"/domains/{domain_id}/acls", body)
    cookie = f"cookie={rule_cookie(acl['id']):#x}/-1"
    while True:
        out = host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "dump-flows", "br-int", cookie]).stdout
        if "priority" in out:
            return time.monotonic() - start
        if time.monotonic() - start > 30:
            raise RuntimeError(f"rule {acl['id']} never reached {host.name}")
        time.sleep(0.01)


def run(rounds: int, seconds: float, pps: int, log=print) -> dict:
    with lab_with_plane(2, tag="vdtb") as (lab, plane):
        h1, h2 = lab.hosts
        net = Containers(lab, plane)
        client = plane.client()
        try:
            ent = client.request("POST", "/enterprises", {"name": "vdt-bench"})
            dom = client.request("POST", f"/enterprises/{ent['id']}/domains", {"name": "bench"})
            zone = client.request("POST", f"/domains/{dom['id']}/zones", {"name": "z"})
            sub = client.request("POST", f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.62.1.0/24"})
            groups = {g: client.request("POST", f"/domains/{dom['id']}/policygroups", {"name": g})["id"]
                      for g in ("web", "db", "flood", "sink")}

            def acl(prio, src, dst, proto, port, action, **extra):
                client.request("POST", f"/domains/{dom['id']}/acls", {
                    "priority": prio, "protocol": proto, "dst_ports": str(port), "action": action,
                    "source": {"type": "policygroup", "id": groups[src]},
                    "destination": {"type": "policygroup", "id": groups[dst]}, **extra})

            acl(10, "web", "db", "tcp", IPERF_PORT, "allow")
            acl(20, "flood", "sink", "udp", FLOOD_PORT, "deny", log=True)
            acl(30, "flood", "sink", "udp", PLAIN_PORT, "deny")
            web1 = net.add("web1", h1.name, sub, policygroups=[groups["web"]])
            db1 = net.add("db1", h2.name, sub, policygroups=[groups["db"]])
            flood1 = net.add("flood1", h1.name, sub, policygroups=[groups["flood"]])
            sink1 = net.add("sink1", h2.name, sub, policygroups=[groups["sink"]])
            server = subprocess.Popen(["ip", "netns", "exec", db1.netns, "iperf3", "-s", "-p", str(IPERF_PORT)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_until(lambda: re.search(rf":{IPERF_PORT}\s", ns_run(db1.netns, ["ss", "-Htln"]).stdout),
                           timeout=10, message="iperf3 server")
                iperf(web1, db1.ip, 1)  # warm up (ARP, megaflows)
                results: dict[str, dict[str, list]] = {m: {"gbps": [], "apply_s": [], "cpu_s": [], "drops": [],
                                                           "pps": [], "load": []}
                                                       for m in ("quiet", "flood", "unlogged")}
                port = 20000
                pid = agent_pid(plane, h1)
                for r in range(rounds):
                    for mode in ("quiet", "flood", "unlogged"):
                        res = results[mode]
                        cpu0, drops0, load0 = agent_cpu(pid), meter_drops(h1), loadavg()
                        flooder = None
                        if mode != "quiet":
                            flood_port = FLOOD_PORT if mode == "flood" else PLAIN_PORT
                            flooder = subprocess.Popen(
                                ["ip", "netns", "exec", flood1.netns, sys.executable, "-c", FLOOD_SCRIPT, sink1.ip,
                                 str(pps), str(seconds + 6), str(flood_port)], stdout=subprocess.PIPE, text=True)
                            time.sleep(0.5)
                        res["gbps"].append(iperf(web1, db1.ip, seconds))
                        for _ in range(5):
                            port += 1
                            res["apply_s"].append(policy_change(client, dom["id"], groups, h1, port))
                        if flooder is not None:
                            out, _ = flooder.communicate(timeout=60)
                            res["pps"].append(float(out.strip() or 0))
                        res["cpu_s"].append(agent_cpu(pid) - cpu0)
                        res["drops"].append(meter_drops(h1) - drops0)
                        res["load"].append((load0 + loadavg()) / 2)
                        log(f"round {r + 1} {mode}: {res['gbps'][-1]:.3f} Gbit/s, policy change "
                            f"p50 {statistics.median(res['apply_s'][-5:]) * 1000:.0f} ms, agent CPU "
                            f"{res['cpu_s'][-1]:.2f} s, meter drops {res['drops'][-1]}"
                            + (f", flood {res['pps'][-1]:.0f} pps" if flooder else "")
                            + f", load {res['load'][-1]:.2f}")
            finally:
                server.kill()
                server.wait()
        finally:
            net.cleanup()
    med = {m: {k: statistics.median(v) if v else None for k, v in res.items()} for m, res in results.items()}
    med["ratio_gbps"] = med["flood"]["gbps"] / med["quiet"]["gbps"]
    med["ratio_apply"] = med["flood"]["apply_s"] / med["quiet"]["apply_s"]
    med["ratio_unlogged"] = med["unlogged"]["gbps"] / med["quiet"]["gbps"]
    med["ratio_logging"] = med["flood"]["gbps"] / med["unlogged"]["gbps"]
    med["rounds"], med["seconds"], med["pps_target"] = rounds, seconds, pps
    return med


def markdown(med: dict) -> str:
    q, f, u = med["quiet"], med["flood"], med["unlogged"]
    verdict = "met" if med["ratio_gbps"] >= 0.9 else "MISSED"
    return "\n".join([
        f"`bench/verdict_flood.py --rounds {med['rounds']} --seconds {med['seconds']:g} --pps {med['pps_target']}`"
        f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; medians of interleaved rounds; shared 2-core "
        "machine):",
        "",
        "| | quiet | flood of logged packets | same flood, rule not logged | flood / quiet | flood / unlogged flood |",
        "|---|---|---|---|---|---|",
        f"| flood packets sent (pps, achieved) | 0 | {f['pps']:.0f} | {u['pps']:.0f} | | |",
        f"| copies dropped at the meter (per mode) | {q['drops']:.0f} | {f['drops']:.0f} | {u['drops']:.0f} | | |",
        f"| forwarding, non-logged flow web1 (h1) -> db1 (h2), iperf3 TCP, Gbit/s | {q['gbps']:.3f} | "
        f"{f['gbps']:.3f} | {u['gbps']:.3f} | **{med['ratio_gbps']:.2f}** (target >= 0.9: {verdict}) | "
        f"{med['ratio_logging']:.2f} |",
        f"| policy change, REST call -> verdict flow on h1, p50 of 5 per round, ms | {q['apply_s'] * 1000:.0f} | "
        f"{f['apply_s'] * 1000:.0f} | {u['apply_s'] * 1000:.0f} | {med['ratio_apply']:.2f} | |",
        f"| h1 agent CPU over the mode, s | {q['cpu_s']:.2f} | {f['cpu_s']:.2f} | {u['cpu_s']:.2f} | | |",
        f"| load average (1 min) | {q['load']:.2f} | {f['load']:.2f} | {u['load']:.2f} | | |",
        ""])


def write_docs(text: str) -> None:
    path = os.path.join(REPO, "docs", "policy.md")
    with open(path) as fh:
        doc = fh.read()
    head, _, rest = doc.partition(BEGIN)
    _old, _, tail = rest.partition(END)
    with open(path, "w") as fh:
        fh.write(f"{head}{BEGIN}\n{text}{END}{tail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--pps", type=int, default=10000)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    med = run(args.rounds, args.seconds, args.pps)
    text = markdown(med)
    print(text)
    if not args.no_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
