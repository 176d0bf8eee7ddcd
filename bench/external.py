"""External connectivity figures (docs/external.md §9): NAT throughput and connection rate.

    .venv/bin/python bench/external.py [--seconds 5] [--connections 500] [--rounds 3]

A 2-host lab with the outside world (router + internet server 203.0.113.80). Containers x1 (h1)
and x2 (h2) are in one domain with egress NAT on; the flows on both hosts are exactly what the
compiler produces (``compile_host``, ``external.compile_uplink``), pushed with ovs-ofctl
(``tests.external_helpers.hand_world``): the agent does not change the datapath's speed. In the same
run, with iperf3 (TCP, one stream):

* container -> outside server through egress NAT (two conntrack NAT stages in OVS, the host's
  kernel routing, the router),
* container -> container on the overlay (VXLAN between the two hosts' userspace datapaths),
* host -> outside server (the host's own stack, no OVS NAT: what the path costs without it),

and the connection setup rate: ``--connections`` TCP connections opened at once (connect, one
line each way, close), ``--rounds`` times, to the outside server through NAT and to x2 on the overlay.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.external_helpers import (  # noqa: E402
    Spec,
    concurrent_connections,
    domain,
    hand_world,
    start_echo_server,
    subnet,
)

ECHO_PORT = 8081


def iperf(netns: str, server: str, seconds: float) -> float:
    """Gbit/s received by the server, one TCP stream."""
    proc = subprocess.run(["ip", "netns", "exec", netns, "iperf3", "-c", server, "-t", str(seconds), "-J"],
                          capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"iperf3 from {netns} to {server}: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return json.loads(proc.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    specs = [Spec("x1", "A", "sA", "10.0.1.10", "02:00:00:00:01:10", "h1"),
             Spec("x2", "A", "sA", "10.0.1.11", "02:00:00:00:01:11", "h2")]
    started = time.monotonic()
    with hand_world(specs, n_hosts=2, tag="hxb") as w:
        w.install([domain("A", 1)], [subnet("sA", "A", "10.0.1.0/24")], w.vports())
        inet = w.lab.node_netns("inet")
        servers = [subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for ns in (inet, w.netns["x2"])]
        echo = [start_echo_server(inet, ECHO_PORT), start_echo_server(w.netns["x2"], ECHO_PORT)]
        try:
            time.sleep(0.5)  # iperf3 -s has no readiness signal; a failed first run is retried below
            x1, h1 = w.netns["x1"], w.hosts["h1"].host.netns
            figures = {}
            for label, ns, target in (("nat", x1, w.lab.internet_ip), ("overlay", x1, "10.0.1.11"),
                                      ("host", h1, w.lab.internet_ip)):
                try:
                    figures[f"{label}_gbps"] = iperf(ns, target, args.seconds)
                except RuntimeError:
                    time.sleep(1)
                    figures[f"{label}_gbps"] = iperf(ns, target, args.seconds)
            for label, target in (("nat", w.lab.internet_ip), ("overlay", "10.0.1.11")):
                rates, failed = [], 0
                for _ in range(args.rounds):
                    r = concurrent_connections(x1, target, ECHO_PORT, args.connections, timeout=30)
                    rates.append(r["ok"] / r["seconds"])
                    failed += r["failed"]
                figures[f"{label}_conn_per_s"] = statistics.median(rates)
                figures[f"{label}_conn_failed"] = failed
        finally:
            for proc in servers + echo:
                proc.kill()
                proc.wait()
    figures["nat_vs_overlay"] = figures["nat_gbps"] / figures["overlay_gbps"]
    figures["nat_vs_host"] = figures["nat_gbps"] / figures["host_gbps"]
    figures["connections"] = args.connections
    figures["rounds"] = args.rounds
    figures["total_s"] = time.monotonic() - started
    print(json.dumps(figures, indent=2))
    print(f"| {figures['nat_gbps']:.2f} | {figures['overlay_gbps']:.2f} | {figures['host_gbps']:.2f} | "
          f"{figures['nat_vs_overlay']:.2f} | {figures['nat_conn_per_s']:.0f} | {figures['overlay_conn_per_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
