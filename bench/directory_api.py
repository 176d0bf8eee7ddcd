"""Directory REST benchmarks: vport-create latency/throughput and bulk load times.

    .venv/bin/python bench/directory_api.py [--creates 1000] [--vports 10000] [--rules 1000]
                                            [--bulk-vports 10000] [--batch 1000] [--bulk-only] [--json FILE]
    .venv/bin/python bench/directory_api.py --bulk-rate [--bulk-vports 10000] [--batch 2000]
                                            [--existing 100000] [--json FILE]

Runs a real nuage-ryu-manager (embedded ovsdb-server) on 127.0.0.1 with a fresh
state dir; clients are stdlib keep-alive HTTP connections, one per thread.
Measures:
  * create-vport latency p50/p99/max and throughput with 1 and 8 concurrent clients
  * time to load N vports (8 clients) into one /16 and M ACL rules (8 clients)
  * bulk load: N vports through POST /api/v1/bulk in batches (2 clients, one transaction per
    batch), into one /16 and into a directory that already holds the single-create load
  * the directory's CPU seconds per run (manager + ovsdb-server): vports per CPU second is the
    figure that other load on the machine does not distort
  * paging through a large subnet with limit=1000 (every vport once)

``--bulk-rate`` (issue 10 item 4: bulk >= 2,000 vports/s, single creates >= 600/s at 8 clients)
measures only that: one 8-client single-create run, a bulk load of ``--bulk-vports`` into an empty
directory, the directory grown to ``--existing`` vports by bulk, and the same bulk load again at
that size, and once more after a restart of the API process (the database kept). Each run
reports wall vports/s, the CPU seconds of the API process and of its
ovsdb-server apart, vports per API CPU-second, and the load average before and after it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nuage_ryu.directory.testing import ManagerProcess  # noqa: E402


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids`` (the manager and its ovsdb-server)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def api_and_db_cpu(mgr: ManagerProcess) -> tuple[float, float]:
    """CPU seconds so far of the API process (nuage-ryu-manager) and of its ovsdb-server children."""
    return process_cpu([mgr.proc.pid]), process_cpu(list(mgr.children))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


SERVER_CPU: dict = {}  # the last run's CPU seconds of the directory (manager + ovsdb-server)


def run_clients(mgr: ManagerProcess, n_clients: int, jobs: list, make_request) -> tuple[list[float], float]:
    """Split ``jobs`` over ``n_clients`` threads; returns (latencies in s, wall time in s).

    Also records the directory's CPU seconds for the run in SERVER_CPU["last"]: on a machine
    shared with other work, CPU per object is the figure that load does not distort."""
    latencies: list[float] = []
    errors: list[Exception] = []
    lock = threading.Lock()
    chunks = [jobs[i::n_clients] for i in range(n_clients)]
    start_barrier = threading.Barrier(n_clients + 1)

    def worker(chunk):
        client = mgr.client()
        local = []
        start_barrier.wait()
        try:
            for job in chunk:
                t0 = time.perf_counter()
                make_request(client, job)
                local.append(time.perf_counter() - t0)
        except Exception as exc:  # reported after the run
            errors.append(exc)
        finally:
            client.close()
            with lock:
                latencies.extend(local)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    pids = [mgr.proc.pid, *mgr.children]
    start_barrier.wait()
    cpu0 = process_cpu(pids)
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    SERVER_CPU["last"] = process_cpu(pids) - cpu0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return latencies, wall


def summary(name: str, latencies: list[float], wall: float) -> dict:
    return {
        "server_cpu_s": round(SERVER_CPU.get("last", 0.0), 3),
        "name": name,
        "requests": len(latencies),
        "wall_s": round(wall, 3),
        "throughput_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=1000, help="vport creates per concurrency level")
    parser.add_argument("--vports", type=int, default=10000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--bulk-vports", type=int, default=10000, help="vports loaded through the bulk API")
    parser.add_argument("--batch", type=int, default=1000, help="operations per bulk request")
    parser.add_argument("--bulk-clients", type=int, default=2,
                        help="concurrent bulk clients (2: one prepares its next batch while the other commits)")
    parser.add_argument("--bulk-only", action="store_true", help="only the bulk runs (and one 8-client create run)")
    parser.add_argument("--bulk-rate", action="store_true",
                        help="only the bulk-rate runs: empty directory and at --existing vports (see the docstring)")
    parser.add_argument("--existing", type=int, default=100000,
                        help="--bulk-rate: vports in the directory for the second bulk run (0: skip it)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.bulk_rate:
        return bulk_rate(args)

    results = new_results()
    with bench_directory() as (_state, mgr, admin, dom, zone):

        def create_vport(subnet_id, prefix="v"):
            return lambda client, i: client.post(f"/subnets/{subnet_id}/vports", {"name": f"{prefix}{i}"})

        def bulk_load(subnet_id: str, n: int, prefix: str, label: str) -> None:
            batches = [[{"action": "create", "kind": "vport", "parent": subnet_id,
                         "body": {"name": f"{prefix}{i}"}} for i in range(lo, min(n, lo + args.batch))]
                       for lo in range(0, n, args.batch)]
            lat, wall = run_clients(mgr, args.bulk_clients, batches,
                                    lambda c, ops: c.post("/bulk", {"operations": ops}))
            run = summary(label, lat, wall)
            run["vports_per_s"] = round(n / wall, 1)
            run["vports_per_server_cpu_s"] = round(n / max(run["server_cpu_s"], 1e-3), 1)
            run["loadavg"] = os.getloadavg()
            results["runs"].append(run)
            print(json.dumps(run), flush=True)

        for n_clients in ((8,) if args.bulk_only else (1, 8)):
            sub = admin.post(f"/zones/{zone['id']}/subnets",
                             {"name": f"lat{n_clients}", "cidr": f"10.{n_clients}.0.0/16"})
            lat, wall = run_clients(mgr, n_clients, list(range(args.creates)), create_vport(sub["id"]))
            results["runs"].append(summary(f"create vport, {n_clients} client(s)", lat, wall))
            results["runs"][-1]["loadavg"] = os.getloadavg()
            results["runs"][-1]["vports_per_server_cpu_s"] = round(
                args.creates / max(results["runs"][-1]["server_cpu_s"], 1e-3), 1)
            print(json.dumps(results["runs"][-1]), flush=True)

        bulk_sub = admin.post(f"/zones/{zone['id']}/subnets", {"name": "bulk", "cidr": "10.200.0.0/16"})
        bulk_load(bulk_sub["id"], args.bulk_vports, "b",
                  f"bulk load {args.bulk_vports} vports, batches of {args.batch}, {args.bulk_clients} clients")
        t0 = time.perf_counter()
        seen, token, pages = 0, None, 0
        while True:
            status, headers, raw = admin.raw("GET", f"/api/v1/subnets/{bulk_sub['id']}/vports",
                                             params={"limit": 1000, **({"page_token": token} if token else {})})
            seen += len(json.loads(raw))
            pages += 1
            token = next((v for k, v in headers.items() if k.lower() == "x-next-page-token"), None)
            if not token:
                break
        results["runs"].append({"name": f"page through {seen} vports, limit 1000 ({pages} pages)",
                                "wall_s": round(time.perf_counter() - t0, 3)})
        print(json.dumps(results["runs"][-1]), flush=True)
        if args.bulk_only:
            admin.close()
            return _finish(results, args)

        sub = admin.post(f"/zones/{zone['id']}/subnets", {"name": "load", "cidr": "10.100.0.0/16"})
        lat, wall = run_clients(mgr, 8, list(range(args.vports)), create_vport(sub["id"]))
        results["runs"].append(summary(f"load {args.vports} vports, 8 clients", lat, wall))
        print(json.dumps(results["runs"][-1]), flush=True)

        pgs = [admin.post(f"/domains/{dom['id']}/policygroups", {"name": f"pg{i}"})["id"]
               for i in range(20)]

        def create_rule(client, i):
            client.post(f"/domains/{dom['id']}/acls", {
                "priority": i + 1, "source": {"type": "policygroup", "id": pgs[i % 20]},
                "destination": {"type": "policygroup", "id": pgs[(i + 1) % 20]},
                "protocol": "tcp", "dst_ports": str(1 + i % 65535)})

        lat, wall = run_clients(mgr, 8, list(range(args.rules)), create_rule)
        results["runs"].append(summary(f"load {args.rules} ACL rules, 8 clients", lat, wall))
        print(json.dumps(results["runs"][-1]), flush=True)

        # With the directory loaded: one more latency sample at 8 clients.
        lat, wall = run_clients(mgr, 8, list(range(args.creates)), create_vport(sub["id"], "after"))
        results["runs"].append(summary(f"create vport at {args.vports}+ vports, 8 clients", lat, wall))
        print(json.dumps(results["runs"][-1]), flush=True)

        t0 = time.perf_counter()
        listed = admin.get(f"/subnets/{sub['id']}/vports")
        results["runs"].append({"name": f"list {len(listed)} vports of one subnet",
                                "wall_s": round(time.perf_counter() - t0, 3)})
        print(json.dumps(results["runs"][-1]), flush=True)

        sub2 = admin.post(f"/zones/{zone['id']}/subnets", {"name": "bulk2", "cidr": "10.201.0.0/16"})
        bulk_load(sub2["id"], args.bulk_vports, "c",
                  f"bulk load {args.bulk_vports} vports at {2 * args.vports + args.bulk_vports}+ vports, "
                  f"batches of {args.batch}, {args.bulk_clients} clients")
        admin.close()
    return _finish(results, args)


def bulk_rate(args) -> int:
    """The ``--bulk-rate`` runs (module docstring)."""
    results = new_results()
    with bench_directory() as (state, mgr, admin, _dom, zone):
        subnets: dict[int, str] = {}

        def subnet_for(i: int) -> str:
            # 50,000 vports per /16: a large directory spreads over a few subnets
            k = i // 50000
            if k not in subnets:
                subnets[k] = admin.post(f"/zones/{zone['id']}/subnets",
                                        {"name": f"s{k}", "cidr": f"10.{100 + k}.0.0/16"})["id"]
            return subnets[k]

        def measured(label: str, n: int, run) -> dict:
            load0 = os.getloadavg()
            api0, db0 = api_and_db_cpu(mgr)
            lat, wall = run()
            api1, db1 = api_and_db_cpu(mgr)
            out = summary(label, lat, wall)
            out.update({"vports": n, "vports_per_s": round(n / wall, 1),
                        "api_cpu_s": round(api1 - api0, 3), "ovsdb_cpu_s": round(db1 - db0, 3),
                        "vports_per_api_cpu_s": round(n / max(api1 - api0, 1e-3), 1),
                        "loadavg_before": load0, "loadavg_after": os.getloadavg()})
            results["runs"].append(out)
            print(json.dumps(out), flush=True)
            return out

        def bulk(first: int, n: int, label: str) -> dict:
            batches = []
            for lo in range(first, first + n, args.batch):
                hi = min(first + n, lo + args.batch)
                batches.append([{"action": "create", "kind": "vport", "parent": subnet_for(i),
                                 "body": {"name": f"v{i}"}} for i in range(lo, hi)])
            return measured(label, n, lambda: run_clients(
                mgr, args.bulk_clients, batches, lambda c, ops: c.post("/bulk", {"operations": ops})))

        single = admin.post(f"/zones/{zone['id']}/subnets", {"name": "single", "cidr": "10.8.0.0/16"})["id"]
        measured(f"create vport, 8 clients, {args.creates}", args.creates, lambda: run_clients(
            mgr, 8, list(range(args.creates)),
            lambda c, i: c.post(f"/subnets/{single}/vports", {"name": f"s{i}"})))
        n = args.bulk_vports
        bulk(0, n, f"bulk {n} vports into an empty directory, batches of {args.batch}, "
                   f"{args.bulk_clients} clients")
        if args.existing > n:
            bulk(n, args.existing - n, f"grow the directory to {args.existing} vports by bulk")
            bulk(args.existing, n, f"bulk {n} vports at {args.existing} vports, batches of {args.batch}, "
                                   f"{args.bulk_clients} clients")
            # The same once more after a restart of the API (the database kept): the replica is
            # then loaded at start-up, as in production after an upgrade or a failover. The
            # database is compacted first: its log of ~50 bulk transactions would otherwise make
            # the embedded ovsdb-server miss its 10 s start-up deadline on a loaded machine.
            admin.close()
            subprocess.run(["ovs-appctl", "-t", os.path.join(state, "directory", "ovsdb-server.ctl"),
                            "ovsdb-server/compact"], check=True, capture_output=True, timeout=120)
            mgr.stop()
            mgr.start(timeout=300)
            admin = mgr.client()
            bulk(args.existing + n, n, f"bulk {n} vports at {args.existing + n} vports after an API restart, "
                                       f"batches of {args.batch}, {args.bulk_clients} clients")
        admin.close()
    return _finish(results, args)


def new_results() -> dict:
    """The results document: the machine, then one entry per run."""
    return {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "loadavg_start": os.getloadavg()}, "runs": []}


@contextlib.contextmanager
def bench_directory():
    """(state dir, its running directory, an admin client, the bench domain, its zone); stopped after."""
    with tempfile.TemporaryDirectory(prefix="nuage-bench-") as state:
        mgr = ManagerProcess(state)
        mgr.start()
        try:
            admin = mgr.client()
            ent = admin.post("/enterprises", {"name": "bench"})
            dom = admin.post(f"/enterprises/{ent['id']}/domains", {"name": "d"})
            zone = admin.post(f"/domains/{dom['id']}/zones", {"name": "z"})
            yield state, mgr, admin, dom, zone
        finally:
            mgr.stop()


def _finish(results: dict, args) -> int:
    results["machine"]["loadavg_end"] = os.getloadavg()
    print(json.dumps(results["machine"]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
