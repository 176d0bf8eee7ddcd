"""Verdict logs and audit mode end to end (issue 12 items 3-4): a 2-host lab, real traffic.

* a logged deny (rule ``log: true``) gives one JSON record in the sending agent's log with the
  rule's id and name, the 5-tuple and both vports' names, and the same record reaches
  ``nuage-ctl flows --follow`` (agents -> directory database over TLS with RBAC -> REST long poll);
* an audit deny (``enforce: false``) before an allow lets the connection through and logs
  "would deny" (record ``enforced: false``), also visible as ``GET /verdicts?verdict=audit``;
* a logged-rule flood beyond ``[vrs] verdict_log_rate`` is dropped at the bridge's meter, in the
  datapath: the meter's statistics and ``nuage_verdict_meter_dropped_packets_total`` count the
  drops, the agent logs no more than the meter let through.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading

import pytest

from tests.lab_helpers import Containers, lab_with_plane, ns_run, wait_until

pytestmark = pytest.mark.integration

SSH, DB, WEB, FLOOD = 22, 5432, 8080, 9999
FLOOD_PPS, FLOOD_SECONDS = 2000, 2.0  # 20x the default verdict_log_rate (100/s, burst 100)
FLOOD_SCRIPT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, pps, seconds = (sys.argv[1], int(sys.argv[2])), int(sys.argv[3]), float(sys.argv[4])
sent, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    while sent < int((time.monotonic() - start) * pps) + 1:
        s.sendto(b"x" * 32, dst)
        sent += 1
    time.sleep(0.001)
"""


@pytest.fixture(scope="module")
def lab():
    with lab_with_plane(2, tag="vdt") as (lab, plane):
        containers = Containers(lab, plane)
        client = plane.client()
        ent = client.request("POST", "/enterprises", {"name": "vdt-acme"})
        dom = client.request("POST", f"/enterprises/{ent['id']}/domains", {"name": "vdt-prod"})
        zone = client.request("POST", f"/domains/{dom['id']}/zones", {"name": "z"})
        subnet = client.request("POST", f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.61.1.0/24"})
        groups = {g: client.request("POST", f"/domains/{dom['id']}/policygroups", {"name": g})["id"]
                  for g in ("web", "db")}

        def acl(priority, name, proto, port, action, **extra):
            body = {"priority": priority, "name": name, "protocol": proto, "dst_ports": str(port),
                    "action": action, "source": {"type": "policygroup", "id": groups["web"]},
                    "destination": {"type": "policygroup", "id": groups["db"]}, **extra}
            return client.request("POST", f"/domains/{dom['id']}/acls", body)

        rules = {
            "no-ssh": acl(10, "no-ssh", "tcp", SSH, "deny", log=True),
            "try-deny-web": acl(20, "try-deny-web", "tcp", WEB, "deny", enforce=False),
            "web": acl(30, "web", "tcp", WEB, "allow"),
            "db": acl(40, "db", "tcp", DB, "allow"),
            "flood": acl(50, "flood", "udp", FLOOD, "deny", log=True),
        }
        web1 = containers.add("web1", lab.hosts[0].name, subnet, policygroups=[groups["web"]])
        db1 = containers.add("db1", lab.hosts[1].name, subnet, policygroups=[groups["db"]])
        procs: list[subprocess.Popen] = []
        try:
            yield {"lab": lab, "plane": plane, "client": client, "domain": dom, "rules": rules,
                   "web1": web1, "db1": db1, "procs": procs}
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
            containers.cleanup()


def agent_records(plane, host) -> list[dict]:
    """The verdict records (JSON lines of logger nuage_ryu.verdict) in a lab agent's log."""
    with open(plane.log_path(f"agent-{host.name}"), errors="replace") as f:
        text = f.read()
    return [json.loads(m) for m in re.findall(r"nuage_ryu\.verdict[^{]*(\{.*\})\s*$", text, re.M)]


def serve(k, port: int) -> None:
    k["procs"].append(k["db1"].serve_tcp(port, seconds=300))

    def listening() -> bool:
        return re.search(rf":{port}\s", ns_run(k["db1"].netns, ["ss", "-Htln"]).stdout) is not None

    wait_until(listening, timeout=10, message=f"server on {port}")


def follow(plane, *args: str) -> tuple[subprocess.Popen, queue.Queue]:
    """``nuage-ctl flows --follow ARGS -o json`` in the background; its lines arrive on the queue."""
    ctl = os.path.join(os.path.dirname(sys.executable), "nuage-ctl")
    proc = subprocess.Popen([ctl, "--socket", plane.api_socket,
                             "--token-file", plane.token_file, "flows", "--follow", "--last", "20", "-o", "json",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(x)) for x in proc.stdout], daemon=True).start()
    return proc, lines


def next_matching(lines: queue.Queue, pred, timeout: float = 30.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no matching record on nuage-ctl flows --follow"
        try:
            record = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if pred(record):
            return record


def test_a_logged_deny_is_a_record_in_the_agent_log_and_in_nuage_ctl_flows_follow(lab):
    k = lab
    web1, db1, plane = k["web1"], k["db1"], k["plane"]
    proc, lines = follow(plane, "--domain", "vdt-prod", "--verdict", "deny")
    k["procs"].append(proc)
    serve(k, SSH)
    # (--last 20: a record that arrives before the follower's first call is in its first answer.)
    assert not web1.tcp_connect(db1.ip, SSH, timeout=1.0)  # denied: the SYN is dropped
    rule = k["rules"]["no-ssh"]

    def logged():
        return [r for r in agent_records(plane, web1.host) if r["rule_id"] == rule["id"]]

    wait_until(logged, timeout=20, message="the deny's record in h1's agent log")
    record = logged()[0]
    assert record["rule"] == "no-ssh" and record["priority"] == 10 and record["verdict"] == "deny"
    assert record["enforced"] is True and record["side"] == "sender" and record["default_action"] is False
    assert (record["protocol"], record["src_ip"], record["dst_ip"], record["dst_port"]) == \
        ("tcp", web1.ip, db1.ip, SSH)
    assert (record["src_vport"], record["dst_vport"]) == ("web1", "db1")
    assert record["host"] == web1.host.host_name and record["domain"] == "vdt-prod"
    assert isinstance(record["src_port"], int) and record["src_port"] > 0
    streamed = next_matching(lines, lambda r: r["rule_id"] == rule["id"])
    assert {k2: streamed[k2] for k2 in record} == record  # the same record, as the agent wrote it
    # The receiver never saw it: the sender's deny dropped the packet.
    assert not [r for r in agent_records(plane, db1.host) if r["rule_id"] == rule["id"]]


def test_an_audit_deny_lets_traffic_through_and_logs_would_deny(lab):
    k = lab
    web1, db1, plane, client = k["web1"], k["db1"], k["plane"], k["client"]
    serve(k, WEB)
    assert web1.tcp_connect(db1.ip, WEB)  # the allow at priority 30 decides
    audit = k["rules"]["try-deny-web"]

    def would_deny():
        return [r for r in agent_records(plane, web1.host) if r["rule_id"] == audit["id"]]

    wait_until(would_deny, timeout=20, message="the audit rule's record in h1's agent log")
    record = would_deny()[0]
    assert (record["verdict"], record["enforced"], record["dst_port"]) == ("deny", False, WEB)
    assert (record["src_vport"], record["dst_vport"]) == ("web1", "db1")
    # Stateful: the connection's first packet only, on each host that decided it (sender, receiver).
    assert len({(r["host"], r["src_port"]) for r in would_deny()}) == len(would_deny())

    def in_api():
        page = client.request("GET", "/verdicts", params={"verdict": "audit", "last": "50"})
        return [r for r in page["records"] if r["rule_id"] == audit["id"]]

    # Each host sends its own records (once a second): the sender's (h1) and, the packet being allowed
    # across the overlay, the receiver's (h2), which re-decided it.
    wait_until(lambda: {r["side"] for r in in_api()} == {"sender", "receiver"}, timeout=20,
               message="both hosts' audit records in GET /verdicts?verdict=audit")
    assert {r["host"] for r in in_api()} == {web1.host.host_name, db1.host.host_name}
    # The audit rule counts what it would have decided (its counters, GET /acls/{id}).
    wait_until(lambda: client.request("GET", f"/acls/{audit['id']}")["counters"]["packets"] >= 1, timeout=30,
               message="the audit rule's counters")


def meter_stats(host) -> tuple[int, int]:
    """(packets into the verdict-log meter, packets its band dropped)."""
    out = host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "meter-stats", "br-int"]).stdout
    match = re.search(r"meter:1 .*?packet_in_count:(\d+).*?bands:\s*0: packet_count:(\d+)", out, re.S)
    assert match, out
    return int(match.group(1)), int(match.group(2))


def rule_packets(host, rule_id: str) -> int:
    """Packets the rule's verdict flows on ``host``'s sending side decided (OVS flow statistics)."""
    from nuage_ryu.vrs.compile import rule_cookie

    out = host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "dump-flows", "br-int",
                        f"table=22,cookie={rule_cookie(rule_id):#x}/-1"]).stdout
    return sum(int(n) for n in re.findall(r"n_packets=(\d+)", out))


def metric(host, name: str) -> float:
    out = ns_run(host.netns, ["curl", "-sf", "http://127.0.0.1:9100/metrics"], timeout=10).stdout
    total = 0.0
    for line in out.splitlines():
        if line.startswith(name + "{") and f'host="{host.host_name}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_flood_of_logged_packets_is_dropped_at_the_meter_and_counted(lab):
    k = lab
    web1, db1, plane = k["web1"], k["db1"], k["plane"]
    h1 = web1.host
    rule = k["rules"]["flood"]
    into0, dropped0 = meter_stats(h1)
    proc = ns_run(web1.netns, [sys.executable, "-c", FLOOD_SCRIPT, db1.ip, str(FLOOD), str(FLOOD_PPS),
                               str(FLOOD_SECONDS)], timeout=60)
    assert proc.returncode == 0, proc.stderr
    # Each packet is a new decision (a deny commits nothing), so each sends a copy to the meter.
    # One copy per decided packet, no other copy (OVS updates flow statistics every ~0.5 s: wait for them).
    decided = wait_until(lambda: (rule_packets(h1, rule["id"]) == meter_stats(h1)[0] - into0 > 0
                                  and rule_packets(h1, rule["id"])), timeout=10,
                         message="the rule's packets = the copies at the meter")
    assert decided >= FLOOD_PPS * FLOOD_SECONDS / 4, decided  # most of the flood reached the bridge
    into, dropped = (a - b for a, b in zip(meter_stats(h1), (into0, dropped0), strict=True))
    assert dropped >= decided / 2, (decided, dropped)  # 100/s + a burst of 100 pass, over 2 s
    wait_until(lambda: metric(h1, "nuage_verdict_meter_dropped_packets_total") >= dropped + dropped0, timeout=30,
               message="the meter's drops in the agent's /metrics")

    def logged():
        return len([r for r in agent_records(plane, h1) if r["rule_id"] == rule["id"]])

    # Every copy the meter let through is a record; the rest never reached the agent.
    wait_until(lambda: logged() == into - dropped, timeout=20,
               message=f"{into - dropped} records of the flood in the agent's log")
    assert metric(h1, "nuage_verdict_records_total") >= logged()
    # Forwarding was never metered: the allowed connection still works during and after.
    serve(k, DB)
    assert web1.tcp_connect(db1.ip, DB)
