"""Agent write latency: to the primary directly, or through an ovsdb-server relay.

    .venv/bin/python bench/relay_writes.py [--writes 300] [--json FILE]

An agent writes its host row (heartbeat) and the status of its vports. Behind a relay those
transactions are forwarded by the relay to its source and the reply comes back through it;
the alternative is a second connection from every agent to the primary. This measures what the
relay costs per write, with the agent's own client (``DirectoryStore``, ``leader_only=False``
as the agent creates it) and its own writes (``set_vport_status`` toggled up/down, ``heartbeat``).

Two directories, each with a REST API (nuage-ryu-manager) that seeds one subnet with vports:

* embedded: paths ``primary`` (the embedded server's socket) and ``relay``;
* Raft (3 members): ``leader`` (its socket only), ``follower`` (one follower's socket only:
  the follower forwards to the leader, as it does for agents that spread over the members) and
  ``relay`` (of the three members).

Writes are interleaved (one per path in turn), so machine load affects every path alike.
Latency: from the call to its return (the transaction's reply received and the store's copy
updated: the agent's next read sees it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from nuage_ryu.db import cluster  # noqa: E402
from nuage_ryu.db.relay import OvsdbRelay, wait_relay_connected  # noqa: E402
from nuage_ryu.directory.store import DirectoryStore  # noqa: E402
from nuage_ryu.directory.testing import ManagerProcess, free_port  # noqa: E402

N_VPORTS = 20
HOST = "bench-host"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def seed(mgr: ManagerProcess) -> list[str]:
    """An enterprise/domain/zone/subnet with N_VPORTS vports on HOST; their ids."""
    api = mgr.client()
    ent = api.post("/enterprises", {"name": "bench"})
    dom = api.post(f"/enterprises/{ent['id']}/domains", {"name": "d"})
    zone = api.post(f"/domains/{dom['id']}/zones", {"name": "z"})
    sub = api.post(f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.70.0.0/24"})
    ids = [api.post(f"/subnets/{sub['id']}/vports", {"name": f"v{i}", "host": HOST})["id"] for i in range(N_VPORTS)]
    api.close()
    return ids


def measure(paths: dict[str, str], vports: list[str], writes: int) -> dict:
    """Interleaved agent writes over each path; {path: {op: {p50, p99, mean}}} in ms."""
    stores = {}
    for name, remote in paths.items():
        store = DirectoryStore(remote, leader_only=False)  # as the agent creates it
        store.start(timeout=30)
        stores[name] = store
    try:
        first = next(iter(stores.values()))
        first.register_host(HOST, "192.0.2.99", 1)
        for store in stores.values():
            store.set_host_connected(HOST, True)
        samples: dict[str, dict[str, list[float]]] = {n: {"vport_status": [], "heartbeat": []} for n in stores}
        for i in range(writes):
            status = "up" if i % 2 == 0 else "down"
            for name, store in stores.items():
                vport = vports[(i * len(stores) + list(stores).index(name)) % len(vports)]
                # each vport alternates: every write changes the row
                t0 = time.perf_counter()
                store.set_vport_status(vport, status if store.snapshot().vports[vport].status != status
                                       else ("down" if status == "up" else "up"))
                samples[name]["vport_status"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                store.heartbeat(HOST)
                samples[name]["heartbeat"].append(time.perf_counter() - t0)
        return {name: {op: {"p50_ms": round(percentile(v, 50) * 1000, 2), "p99_ms": round(percentile(v, 99) * 1000, 2),
                            "mean_ms": round(sum(v) / len(v) * 1000, 2)} for op, v in ops.items()}
                for name, ops in samples.items()}
    finally:
        for store in stores.values():
            store.stop()


def embedded(tmp: str, writes: int) -> dict:
    mgr = ManagerProcess(os.path.join(tmp, "embedded")).start()
    relay = OvsdbRelay("unix:" + mgr.db_socket, os.path.join(tmp, "relay-e", "db.sock"), os.path.join(tmp, "relay-e"))
    try:
        vports = seed(mgr)
        relay.start()
        wait_relay_connected(relay.remote)
        return measure({"primary": "unix:" + mgr.db_socket, "relay": relay.remote}, vports, writes)
    finally:
        relay.stop()
        mgr.stop()


def raft(tmp: str, writes: int) -> dict:
    members = cluster.create_cluster(os.path.join(tmp, "raft"), 3, ports=[(free_port(), free_port()) for _ in range(3)])
    mgr = relay = None
    try:
        for m in members:
            cluster.start_member(m)
        leader = cluster.wait_for_leader(members)
        follower = next(m for m in members if m is not leader)
        mgr = ManagerProcess(os.path.join(tmp, "raft-api"), connection=cluster.connection_string(members)).start()
        vports = seed(mgr)
        relay = OvsdbRelay(cluster.connection_string(members, unix=True), os.path.join(tmp, "relay-r", "db.sock"),
                           os.path.join(tmp, "relay-r"))
        relay.start()
        wait_relay_connected(relay.remote)
        return measure({"leader": "unix:" + leader.socket_path, "follower": "unix:" + follower.socket_path,
                        "relay": relay.remote}, vports, writes)
    finally:
        if relay is not None:
            relay.stop()
        if mgr is not None:
            mgr.stop()
        for m in members:
            cluster.stop_member(m, signal.SIGKILL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=300, help="writes of each kind per path (default 300)")
    ap.add_argument("--json", metavar="FILE", help="also write the results here")
    args = ap.parse_args()
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "loadavg_before": os.getloadavg()[0]}, "writes": args.writes}
    with tempfile.TemporaryDirectory(prefix="nr-relay-bench-") as tmp:
        results["embedded"] = embedded(tmp, args.writes)
        results["raft"] = raft(tmp, args.writes)
    results["machine"]["loadavg_after"] = os.getloadavg()[0]
    for setup in ("embedded", "raft"):
        for path, ops in results[setup].items():
            for op, v in ops.items():
                print(f"{setup:9} {path:9} {op:13} p50 {v['p50_ms']:6.2f} ms  p99 {v['p99_ms']:6.2f} ms  "
                      f"mean {v['mean_ms']:6.2f} ms")
    print(f"load average {results['machine']['loadavg_before']:.2f} -> {results['machine']['loadavg_after']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
