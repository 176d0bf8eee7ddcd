"""Benchmark: CNI ADD -> vport up latency and attach churn, through the real nuage-cni executable.

``--mode lab`` (default): a 2-host lab (``nuage_ryu.lab``) with the directory
and a real VRS agent per host; the agent hosts the attach service and reports a
vport up once its flows are confirmed on br-int, so ADD returns at "vport up".
ADDs alternate between the two hosts. ``--mode single``: one private OVS and the
standalone attach service (``python -m nuage_ryu.agent.attach.agentd --up-mode
ofport``: up = OVS assigned the port), no flows.

Each ADD/DEL is a fresh ``nuage-cni`` process (process start included).

    .venv/bin/python bench/cni_attach.py [--mode lab|single] [--count 100] [--parallel 8]

Prints p50/p90/p99/max of sequential ADD and DEL latency, and ADD+DEL pairs per
second sequentially and with --parallel concurrent workers (through nuage-cni, and
straight on the agent socket to show what the process starts cost).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nuage_ryu.plugins.agent_client import AgentClient  # noqa: E402
from tests.attach_helpers import (  # noqa: E402
    agent_process,
    directory_service,
    host_state,
    make_network,
    prepare_bridge,
    run_cni,
)
from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name  # noqa: E402

HOST = "bench-host"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 1), "p90_ms": round(percentile(ms, 90), 1),
            "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1),
            "mean_ms": round(statistics.mean(ms), 1)}


def timed(command: str, conf: dict, cid: str, ns: str) -> float:
    start = time.monotonic()
    rc, out = run_cni(command, conf, cid, ns)
    elapsed = time.monotonic() - start
    if rc != 0:
        raise RuntimeError(f"{command} {cid} failed: {out}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("lab", "single"), default="lab")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args()
    results: dict = {"mode": args.mode, "count": args.count, "parallel": args.parallel,
                     "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()[0]}
    with contextlib.ExitStack() as stack:
        base = {"cniVersion": "1.0.0", "name": "nuage", "type": "nuage-cni",
                "enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}
        if args.mode == "lab":
            from tests.lab_helpers import lab_with_plane

            lab, plane = stack.enter_context(lab_with_plane(2, tag="bn"))
            directory = plane.client()
            make_network(directory, cidr="10.64.0.0/20")
            confs = [dict(base, agent_socket=plane.agent_socket(h)) for h in lab.hosts]

            def leftovers() -> list:
                return [v["id"] for h in lab.hosts for v in directory.host_vports(h.host_name)]
        else:
            directory = stack.enter_context(directory_service())
            ovs = stack.enter_context(private_ovs())
            make_network(directory, cidr="10.64.0.0/20")
            prepare_bridge(ovs)
            sock = os.path.join(directory.state_dir, "agent.sock")
            stack.enter_context(agent_process(sock, ovs.db_remote, directory, HOST, ovs.netns))
            confs = [dict(base, agent_socket=sock)]

            def leftovers() -> list:
                state = host_state(ovs, directory, HOST)
                return state["ports"] + state["links"] + state["vports"]
        spaces = [f"/var/run/netns/{stack.enter_context(namespace(unique_netns_name('nrb')))}"
                  for _ in range(args.count)]
        print(f"setup done: {args.count} namespaces; sequential ADDs...", flush=True)
        adds = [timed("ADD", confs[i % len(confs)], f"bench-{i}", ns) for i, ns in enumerate(spaces)]
        dels = [timed("DEL", confs[i % len(confs)], f"bench-{i}", ns) for i, ns in enumerate(spaces)]
        results["add_to_up"] = summary(adds)
        results["del"] = summary(dels)
        results["sequential_pairs_per_s"] = round(args.count / (sum(adds) + sum(dels)), 1)
        assert leftovers() == []

        def pair(i: int) -> None:
            conf = confs[i % len(confs)]
            timed("ADD", conf, f"churn-{i}", spaces[i])
            timed("DEL", conf, f"churn-{i}", spaces[i])

        print(f"churn with {args.parallel} workers...", flush=True)
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(pair, range(args.count)))
        elapsed = time.monotonic() - start
        results["parallel_pairs_per_s"] = round(args.count / elapsed, 1)
        assert leftovers() == []

        # The same churn straight on the agent socket (no CNI process start): the agent's own capacity.
        def api_pair(i: int) -> None:
            conf = confs[i % len(confs)]
            agent = AgentClient(conf["agent_socket"])
            agent.attach(container_id=f"api-{i}", ifname="eth0", netns=spaces[i], network=conf["name"],
                         **{k: conf[k] for k in ("enterprise", "domain", "zone", "subnet")})
            agent.detach(f"api-{i}", "eth0")

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(api_pair, range(args.count)))
        results["agent_api_parallel_pairs_per_s"] = round(args.count / (time.monotonic() - start), 1)
        results["leaked_after_churn"] = leftovers()
        results["loadavg_after"] = os.getloadavg()[0]
        assert results["leaked_after_churn"] == []
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
