"""Policy latency on a 5-host lab: REST change -> enforced on every host.

    .venv/bin/python bench/policy_latency.py [--hosts 5] [--iterations 50]

A lab of N hosts with the directory and one VRS agent per host (``lab_with_plane``), a domain with
default deny, policy groups web and app, one web and one app container on every host, and the rule
web -> app tcp/8080 (stateful allow). Then, ``--iterations`` times, four changes through the REST API:

* rule deleted        (``DELETE /acls/{id}``)
* rule created        (``POST /domains/{id}/acls``, the same rule again: a new id)
* membership removed  (``DELETE /policygroups/{web}/vports/{vport}``, the web vport of the middle host)
* membership added    (``POST /policygroups/{web}/vports``)

Enforced = the change is in every host's br-int. Each bundle is atomic, so it is enough to watch one
flow family per change: the rule's verdict flows (cookie ``ACL_RULE``/rule id: gone, or as many as
the first rule had on that host) and the member's clause flows (cookie ``POLICY_MEMBER``/vport id:
gone, or as many as before). Every host's bridge is polled over one persistent OpenFlow 1.4
connection to its management socket (a flow-stats request filtered by cookie, ~0.3 ms), all hosts
in turn every ~2 ms: that is the resolution. Latency is from just before the REST request is sent;
the REST round trip (directory validation + OVSDB commit) is reported on its own, and each agent's
own figure (``nuage_policy_apply_seconds``: directory update seen -> bundle committed) is read from
its /metrics before and after the run.

Finally a real-traffic check: after the last change, web of host 1 connects to app of host N.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import struct
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from nuage_ryu.vrs.cookies import CookieKind, cookie_for  # noqa: E402
from tests.lab_helpers import Containers, lab_with_plane, ns_run, wait_until  # noqa: E402

OFP_VERSION = 0x05  # OpenFlow 1.4
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 18, 19
OFPMP_FLOW = 1
OFPMPF_REPLY_MORE = 1
POLL_INTERVAL = 0.002


class FlowCounter:
    """A minimal OpenFlow 1.4 client on a bridge's management socket: counts flows by exact cookie."""

    def __init__(self, mgmt_path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(mgmt_path)
        self.xid = 0
        self._send(OFPT_HELLO, b"")
        while self._recv()[0] != OFPT_HELLO:
            pass

    def _send(self, msg_type: int, body: bytes, xid: int | None = None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.sock.sendall(struct.pack("!BBHI", OFP_VERSION, msg_type, 8 + len(body), xid) + body)
        return xid

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("bridge closed the connection")
            buf += chunk
        return buf

    def _recv(self) -> tuple[int, int, bytes]:
        _version, msg_type, length, xid = struct.unpack("!BBHI", self._read(8))
        body = self._read(length - 8)
        if msg_type == OFPT_ECHO_REQUEST:
            self._send(OFPT_ECHO_REPLY, body, xid)
        elif msg_type == OFPT_ERROR:
            raise RuntimeError(f"OpenFlow error {body[:4].hex()}")
        return msg_type, xid, body

    def count(self, cookie: int) -> int:
        """Flows of br-int whose cookie is exactly ``cookie`` (all tables)."""
        request = (struct.pack("!HH4x", OFPMP_FLOW, 0)
                   + struct.pack("!B3xII4xQQ", 0xFF, 0xFFFFFFFF, 0xFFFFFFFF, cookie, 0xFFFFFFFFFFFFFFFF)
                   + struct.pack("!HH4x", 1, 4))  # empty OXM match, padded to 8
        xid = self._send(OFPT_MULTIPART_REQUEST, request)
        flows = 0
        while True:
            msg_type, rxid, body = self._recv()
            if msg_type != OFPT_MULTIPART_REPLY or rxid != xid:
                continue
            _mp_type, flags = struct.unpack("!HH", body[:4])
            pos = 8
            while pos < len(body):
                (length,) = struct.unpack("!H", body[pos:pos + 2])
                flows += 1
                pos += length
            if not flags & OFPMPF_REPLY_MORE:
                return flows

    def close(self) -> None:
        self.sock.close()


def wait_enforced(counters: dict, cookie: int, expected: dict, t0: float, deadline: float = 10.0) -> dict:
    """Poll every host until its count of ``cookie`` flows is ``expected[host]``; seconds since t0 per host."""
    done: dict[str, float] = {}
    pending = set(expected)
    while pending:
        for host in sorted(pending):
            if counters[host].count(cookie) == expected[host]:
                done[host] = time.perf_counter() - t0
                pending.discard(host)
        if pending:
            if time.perf_counter() - t0 > deadline:
                raise RuntimeError(f"not enforced within {deadline}s on {sorted(pending)}")
            time.sleep(POLL_INTERVAL)
    return done


def apply_metric(lab_host) -> tuple[float, float, float]:
    """(sum, count, count <= 100 ms) of the agent's nuage_policy_apply_seconds (its /metrics, in the host netns)."""
    out = ns_run(lab_host.netns, ["curl", "-sf", "http://127.0.0.1:9100/metrics"], timeout=10).stdout
    total = count = fast = 0.0
    for line in out.splitlines():
        m = re.match(r"nuage_policy_apply_seconds_(sum|count|bucket)\{([^}]*)\} (\S+)", line)
        if not m:
            continue
        if m.group(1) == "sum":
            total += float(m.group(3))
        elif m.group(1) == "count":
            count += float(m.group(3))
        elif 'le="0.1"' in m.group(2):
            fast += float(m.group(3))
    return total, count, fast


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=50)
    args = ap.parse_args(argv)

    with lab_with_plane(args.hosts, tag="bl") as (lab, plane):
        net = Containers(lab, plane)
        counters: dict[str, FlowCounter] = {}
        try:
            client = net.client
            ent = client.request("POST", "/enterprises", {"name": "latency"})
            dom = client.request("POST", f"/enterprises/{ent['id']}/domains",
                                 {"name": "prod", "default_action": "deny"})
            zone = client.request("POST", f"/domains/{dom['id']}/zones", {"name": "z"})
            subnet = client.request("POST", f"/zones/{zone['id']}/subnets",
                                    {"name": "s", "cidr": "10.60.0.0/16", "gateway": "10.60.0.1"})
            groups = {g: client.request("POST", f"/domains/{dom['id']}/policygroups", {"name": g})["id"]
                      for g in ("web", "app")}
            rule_body = {"priority": 10, "source": {"type": "policygroup", "id": groups["web"]},
                         "destination": {"type": "policygroup", "id": groups["app"]},
                         "protocol": "tcp", "dst_ports": "8080", "action": "allow", "stateful": True}
            rule = client.request("POST", f"/domains/{dom['id']}/acls", rule_body)
            hosts = lab.hosts
            web, app = {}, {}
            for i, h in enumerate(hosts):
                web[h.name] = net.add(f"w{i + 1}", h.name, subnet, policygroups=[groups["web"]])
                app[h.name] = net.add(f"a{i + 1}", h.name, subnet, policygroups=[groups["app"]])
            counters = {h.name: FlowCounter(os.path.join(h.rundir, "br-int.mgmt")) for h in hosts}
            member = web[hosts[len(hosts) // 2].name]
            member_cookie = cookie_for(CookieKind.POLICY_MEMBER, member.vport["id"])

            def counts(cookie: int) -> dict[str, int]:
                return {name: c.count(cookie) for name, c in counters.items()}

            # What "enforced" looks like: the flow counts once everything is in place and stable.
            def stable(cookie: int) -> dict[str, int] | None:
                first = counts(cookie)
                if not all(first.values()):
                    return None
                time.sleep(0.2)  # bench only: two reads 0.2 s apart must agree
                return first if counts(cookie) == first else None

            rule_flows = wait_until(lambda: stable(cookie_for(CookieKind.ACL_RULE, rule["id"])), timeout=30,
                                    message="the rule's flows on every host")
            member_flows = wait_until(lambda: stable(member_cookie), timeout=30,
                                      message="the member's flows on every host")
            print(f"{len(hosts)} hosts, {2 * len(hosts)} containers; rule verdict flows per host {rule_flows}; "
                  f"member clause flows per host {member_flows}", flush=True)
            nothing = dict.fromkeys(counters, 0)
            apply_before = {h.name: apply_metric(h) for h in hosts}

            kinds = ("rule deleted", "rule created", "membership removed", "membership added")
            latency: dict[str, list[float]] = {k: [] for k in kinds}
            first_host: dict[str, list[float]] = {k: [] for k in kinds}
            rest: dict[str, list[float]] = {k: [] for k in kinds}
            samples: list[tuple[float, str, float, dict]] = []  # (all hosts, kind, REST call, per host)

            def measure(kind: str, method: str, path: str, body, cookie_of, expected) -> dict | None:
                t0 = time.perf_counter()
                reply = client.request(method, path, body)
                rest[kind].append(time.perf_counter() - t0)
                done = wait_enforced(counters, cookie_of(reply), expected, t0)
                latency[kind].append(max(done.values()))
                samples.append((max(done.values()), kind, rest[kind][-1], done))
                first_host[kind].append(min(done.values()))
                return reply

            web_members = f"/policygroups/{groups['web']}/vports"
            for it in range(args.iterations):
                old = cookie_for(CookieKind.ACL_RULE, rule["id"])
                measure("rule deleted", "DELETE", f"/acls/{rule['id']}", None, lambda _r, c=old: c, nothing)
                rule = measure("rule created", "POST", f"/domains/{dom['id']}/acls", rule_body,
                               lambda r: cookie_for(CookieKind.ACL_RULE, r["id"]), rule_flows)
                measure("membership removed", "DELETE", f"{web_members}/{member.vport['id']}", None,
                        lambda _r: member_cookie, nothing)
                measure("membership added", "POST", web_members, {"vports": [member.vport["id"]]},
                        lambda _r: member_cookie, member_flows)
                if (it + 1) % 10 == 0:
                    print(f"iteration {it + 1}: last all-hosts latencies (ms) "
                          + ", ".join(f"{k} {latency[k][-1] * 1000:.1f}" for k in kinds), flush=True)

            apply_after = {h.name: apply_metric(h) for h in hosts}
            # Real traffic after the last change (rule and membership in place): host 1's web -> host N's app.
            server = app[hosts[-1].name].serve_tcp(8080, seconds=60)
            try:
                wait_until(lambda: web[hosts[0].name].tcp_connect(app[hosts[-1].name].ip, 8080), timeout=15,
                           message="web of h1 -> app of the last host")
            finally:
                server.kill()
                server.wait()
        finally:
            for c in counters.values():
                c.close()
            net.cleanup()
    ovs = os.popen("ovs-vswitchd --version").read().splitlines()[0]

    everything = [v for k in kinds for v in latency[k]]
    all_rest = [v for k in kinds for v in rest[k]]
    print()
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `.venv/bin/python bench/policy_latency.py "
          f"--hosts {args.hosts} --iterations {args.iterations}`; {ovs}, netdev, {os.cpu_count()} cores "
          f"(shared). {len(everything)} changes; ms from sending the REST request to the change being in "
          f"every host's br-int (poll resolution ~{POLL_INTERVAL * 1000:.0f} ms + one request per host).")
    print()
    print("| change | n | p50 | p90 | p99 | max | first host p50 | REST call p50 |")
    print("|---|---|---|---|---|---|---|---|")
    for k in (*kinds, "all"):
        vals = everything if k == "all" else latency[k]
        first = [v for kk in kinds for v in first_host[kk]] if k == "all" else first_host[k]
        r = all_rest if k == "all" else rest[k]
        print(f"| {k} | {len(vals)} | {pct(vals, 50) * 1000:.1f} | {pct(vals, 90) * 1000:.1f} | "
              f"{pct(vals, 99) * 1000:.1f} | {max(vals) * 1000:.1f} | {pct(first, 50) * 1000:.1f} | "
              f"{pct(r, 50) * 1000:.1f} |")
    print()
    print("Slowest changes (ms): " + "; ".join(
        f"{kind} {worst * 1000:.1f} (REST call {call * 1000:.1f}; per host "
        + ", ".join(f"{h} {t * 1000:.1f}" for h, t in sorted(done.items())) + ")"
        for worst, kind, call, done in sorted(samples, key=lambda x: x[0], reverse=True)[:3]))
    print()
    applied = {h: tuple(a - b for a, b in zip(apply_after[h], apply_before[h], strict=True)) for h in apply_after}
    print("Agents' own figure, nuage_policy_apply_seconds (directory update seen -> bundle committed) over the "
          "run: mean (updates, of which > 100 ms): " + ", ".join(
              f"{h.rsplit('-', 1)[-1]} {s / n * 1000:.1f} ms ({n:.0f}, {n - fast:.0f})"
              for h, (s, n, fast) in sorted(applied.items()) if n))
    print(f"target p50 < 50 ms: {'met' if pct(everything, 50) < 0.050 else 'MISSED'}; "
          f"p99 < 200 ms: {'met' if pct(everything, 99) < 0.200 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
