"""Trace answer time on a 3-host lab: ``POST /api/v1/trace`` from the client's side.

    .venv/bin/python bench/trace.py [--hosts 3] [--iterations 50]

A lab of N hosts with the directory and one VRS agent per host (``lab_with_plane``), the demo's
acme domain (default deny; rule 100 web -> app tcp/8080 and rule 200 app -> db tcp/5432, stateful),
web1 on h1, app1 on h2, db1 on h3 and web2 on h2. Each iteration traces four packets:

* web1 -> app1 tcp/8080  allowed by rule 100, across hosts (h1 -> h2)
* web2 -> app1 tcp/8080  allowed by rule 100, on one host (h2)
* web1 -> db1 tcp/5432   denied (default action), h1
* app1 -> db1 tcp/5432   allowed by rule 200, h2 -> h3

each twice: with the datapath check (the source host's agent runs ofproto/trace; every answer must
say ``datapath: agree``) and, as the reference of the same run, without it (``datapath: false``:
the directory's policy answer only). Reported: the client's wall time per call (p50/p90/max), the
directory's ask -> answer time (``datapath_detail.seconds``), the agent's own ``ovs-appctl`` run
(``observed.seconds``), and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from nuage_ryu.lab.demo import build_tenants  # noqa: E402
from tests.lab_helpers import Containers, lab_with_plane  # noqa: E402

CASES = (("web1", "app1", 8080), ("web2", "app1", 8080), ("web1", "db1", 5432), ("app1", "db1", 5432))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(pct(ms, 0.5), 2), "p90_ms": round(pct(ms, 0.9), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.mean(ms), 2)}


def measure(lab, containers, iterations: int) -> dict:
    """Build the lab's tenants and containers, then trace the cases ``iterations`` times both ways."""
    client = containers.client
    acme = build_tenants(client)
    last = lab.hosts[-1].name if len(lab.hosts) >= 3 else "h2"
    for name, host, tier in (("web1", "h1", "web"), ("app1", "h2", "app"), ("db1", last, "db"),
                             ("web2", "h2", "web")):
        containers.add(name, host, acme["subnets"][tier], policygroups=[acme["groups"][tier]["id"]])
    for src, dst, port in CASES:  # warm-up: first ovs-appctl of each host, first snapshot
        client.request("POST", "/trace", {"from": src, "to": dst, "port": port})
    times: dict[str, list[float]] = {"with_datapath": [], "policy_only": []}
    ask, appctl, disagreements = [], [], []
    for _ in range(iterations):
        for src, dst, port in CASES:
            for mode, extra in (("with_datapath", {}), ("policy_only", {"datapath": False})):
                t0 = time.perf_counter()
                answer = client.request("POST", "/trace", {"from": src, "to": dst, "port": port, **extra})
                times[mode].append(1000 * (time.perf_counter() - t0))
                if mode == "policy_only":
                    continue
                if answer["datapath"] != "agree":
                    disagreements.append((src, dst, port, answer["datapath"], answer.get("datapath_detail")))
                detail = answer.get("datapath_detail") or {}
                if "seconds" in detail:
                    ask.append(1000 * detail["seconds"])
                observed = detail.get("observed") or {}
                if "seconds" in observed:
                    appctl.append(1000 * observed["seconds"])
    return {"with_datapath": summary(times["with_datapath"]), "policy_only": summary(times["policy_only"]),
            "directory_ask_to_answer": summary(ask), "agent_ofproto_trace": summary(appctl),
            "ratio_p50": round(pct(times["with_datapath"], 0.5) / pct(times["policy_only"], 0.5), 1),
            "disagreements": disagreements[:5], "n_disagreements": len(disagreements)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with lab_with_plane(args.hosts, tag="trcb") as (lab, plane), Containers(lab, plane) as containers:
        measured = measure(lab, containers, args.iterations)
    results = {"hosts": args.hosts, "iterations": args.iterations, "cases": len(CASES), **measured,
               "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if measured["n_disagreements"] else 0


if __name__ == "__main__":
    sys.exit(main())
