"""Scale bench parts (b) and (c), issue 10: the directory and its relays serving many simulated hosts.

(b) *fan-out*: a real directory (``nuage-ryu-manager`` with its embedded ovsdb-server, the REST
API), ``--relays`` ovsdb-server relays of it, and ``--hosts`` simulated hosts spread over
``--procs`` processes. A simulated host is exactly the directory client a VRS agent runs: a
scoped ``DirectoryStore(relay, scope_hosts=[its name], leader_only=False)`` with its own
connection, IDL, monitor conditions (the same request an agent sends), mirror and threads; what
is *not* simulated is the rest of the agent (OVS, OpenFlow; no flows are compiled except on one
sample host per process, which runs a real ``AgentCore`` on every update). Hosts are spread over
the relays round-robin. The directory starts empty; the bench then loads ``--domains`` domains
of ``--vports`` vports in total through ``POST /api/v1/bulk`` (2 clients, one request per
domain: zone, subnet, 2 policy groups, 4 rules, its vports), clustered: domain i on hosts
5i .. 5i+k-1 (k = 5..10), and measures the time from the first bulk request until every
simulated host holds its complete share (every object of its domains, conditions acknowledged:
``scope_settled``), the rows each host holds, the bytes the hosts' connections received, and
CPU/RSS of the API process, the ovsdb-server, the relays and the host processes.

(c) *policy propagation*: ``--changes`` rule changes (a rule's ``dst_ports``, ``PUT /acls/ID``) and
as many membership changes (a vport moved to the other policy group, ``PUT /vports/ID``), one at a
time: from the start of the REST call until every host carrying the domain has the change in its
snapshot (the sample hosts: in their compiled view), p50/p99/max.

Run:  .venv/bin/python bench/scale.py --part fanout --hosts 50 --vports 5000 --domains 10 [--relays 1]
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("NUAGE_BENCH_TREE") or str(Path(__file__).resolve().parents[1]))

from nuage_ryu.db.relay import OvsdbRelay  # noqa: E402
from nuage_ryu.directory.testing import ManagerProcess  # noqa: E402


def _cpu_rss(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        return cpu, rss
    except OSError:
        return 0.0, 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


# ---- placement ----------------------------------------------------------------------------------


def placement(hosts: int, domains: int) -> list[list[str]]:
    """Hosts of each domain: clustered, domain i on hosts step*i .. step*i+k-1, k = 5..10."""
    step = max(1, hosts // domains)
    return [[f"sim{(step * i + j) % hosts}" for j in range(min(hosts, 5 + i % 6))] for i in range(domains)]


# ---- the simulated hosts (a child process holds many) ---------------------------------------------


def hosts_main(spec_path: str) -> None:
    """Open one scoped store per simulated host; report completion and probe times on stdout."""
    from nuage_ryu.agent.core import AgentCore
    from nuage_ryu.directory.store import DirectoryStore

    with open(spec_path) as f:
        spec = json.load(f)
    out_lock = threading.Lock()
    received = _count_received()

    def say(obj) -> None:
        with out_lock:
            print(json.dumps(obj), flush=True)

    stores: dict[str, DirectoryStore] = {}
    for name, remote in spec["hosts"]:
        store = DirectoryStore(remote, scope_hosts=[name], leader_only=False)
        store.start(timeout=120)
        stores[name] = store
    sample = spec["hosts"][0][0]
    core = AgentCore(sample)
    core_lock = threading.Lock()
    probes: dict[int, tuple] = {}  # n -> (kind, id, field, value)
    seen: dict[int, set[str]] = {}

    def check(name: str, state) -> None:
        for n, (kind, oid, field, value) in list(probes.items()):
            if name in seen.setdefault(n, set()):
                continue
            obj = state.acls.get(oid) if kind == "acl" else state.vports.get(oid)
            if obj is None:
                continue
            got = getattr(obj, field)
            if (value in got) if field == "policygroups" else (got == value):
                if name == sample:  # the sample host: once its flows are compiled from it
                    with core_lock:
                        core.set_directory(state)
                        core.set_ports({v.id: 10 + i for i, v in enumerate(state.vports_on_host(sample))}, 1)
                        core.recompute()
                seen[n].add(name)
                say({"seen": n, "host": name, "t": time.monotonic()})

    for name, store in stores.items():
        def listener(state, name=name) -> None:
            if name == sample:
                with core_lock:
                    core.set_directory(state)
                    core.set_ports({v.id: 10 + i for i, v in enumerate(state.vports_on_host(sample))}, 1)
                    core.recompute()
            if probes:
                check(name, state)
        store.add_listener(listener)
    say({"ready": len(stores)})

    expected = spec["expected"]
    done: dict[str, float] = {}

    def watch() -> None:
        while len(done) < len(stores):
            for name, store in stores.items():
                if name in done:
                    continue
                want = expected.get(name)
                if want is None:
                    continue
                st = store.snapshot()
                if (len(st.vports) == want["vports"] and len(st.acls) == want["acls"]
                        and len(st.domains) == want["domains"] and len(st.policygroups) == want["policygroups"]
                        and len(st.subnets) == want["subnets"] and store.scope_settled()):
                    done[name] = time.monotonic()
            time.sleep(0.05)
        rows = {n: sum(len(s.snapshot().table(k)) for k in ("enterprise", "domain", "zone", "subnet", "vport",
                                                              "policygroup", "acl", "host"))
                for n, s in stores.items()}
        say({"complete": max(done.values()), "first": min(done.values()), "rows": rows,
             "sample_flows": len(core.compiler.flows), "bytes_received": received[0]})

    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "watch":
            threading.Thread(target=watch, daemon=True).start()
        elif cmd["cmd"] == "probe":
            n = cmd["n"]
            probes[n] = tuple(cmd["probe"])
            for name, store in stores.items():  # already there (the update came before the probe)?
                check(name, store.snapshot())
        elif cmd["cmd"] == "unprobe":
            probes.pop(cmd["n"], None)
        elif cmd["cmd"] == "quit":
            break
    for store in stores.values():
        store.stop()


def _count_received() -> list[int]:
    """Count the bytes every OVSDB connection of this process receives (the bench's own
    instrumentation: python-ovs streams read with recv(), which /proc's I/O counters miss)."""
    import ovs.stream

    total = [0]
    recv = ovs.stream.Stream.recv

    def counting(self, n):
        error, data = recv(self, n)
        if not error and data:
            total[0] += len(data)
        return error, data

    ovs.stream.Stream.recv = counting
    return total


class HostProcess:
    def __init__(self, spec_path: str, events: queue.Queue):
        self.proc = subprocess.Popen([sys.executable, __file__, "--hosts-proc", spec_path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.events = events
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.put((self, json.loads(line)))
        self.events.put((self, None))

    def send(self, cmd: dict) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.send({"cmd": "quit"})
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# ---- the run ----------------------------------------------------------------------------------------


def _domain_ops(i: int, ent: str, hosts: list[str], n_vports: int) -> list[dict]:
    ops = [
        {"action": "create", "kind": "domain", "parent": ent, "ref": "d", "body": {"name": f"d{i}"}},
        {"action": "create", "kind": "zone", "parent": "$d", "ref": "z", "body": {"name": "z"}},
        {"action": "create", "kind": "subnet", "parent": "$z", "ref": "s",
         "body": {"name": "s", "cidr": "10.0.0.0/16"}},  # a domain is a VRF: each may reuse the CIDR
        {"action": "create", "kind": "policygroup", "parent": "$d", "ref": "g0", "body": {"name": "g0"}},
        {"action": "create", "kind": "policygroup", "parent": "$d", "ref": "g1", "body": {"name": "g1"}},
    ]
    for r in range(4):
        ops.append({"action": "create", "kind": "acl", "parent": "$d", "body": {
            "priority": 100 + r, "source": {"type": "policygroup", "id": f"$g{r % 2}"},
            "destination": {"type": "policygroup", "id": f"$g{(r + 1) % 2}"}, "protocol": "tcp",
            "dst_ports": str(8000 + r), "action": "allow"}})
    for v in range(n_vports):
        ops.append({"action": "create", "kind": "vport", "parent": "$s", "body": {
            "name": f"d{i}v{v}", "host": hosts[v % len(hosts)], "policygroups": [f"$g{v % 2}"]}})
    return ops


def run(hosts: int, vports: int, domains: int, relays: int, procs: int, changes: int) -> dict:
    per_domain = vports // domains
    where = placement(hosts, domains)
    names = [f"sim{h}" for h in range(hosts)]
    expected: dict[str, dict] = {n: {"vports": 0, "acls": 0, "domains": 0, "policygroups": 0, "subnets": 0}
                                 for n in names}
    for hs in where:
        for h in set(hs):
            e = expected[h]
            e["vports"] += per_domain
            e["acls"] += 4
            e["domains"] += 1
            e["policygroups"] += 2
            e["subnets"] += 1
    result: dict = {"hosts": hosts, "vports": per_domain * domains, "domains": domains, "relays": relays,
                    "procs": procs, "loadavg_start": os.getloadavg()}
    events: queue.Queue = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="scl-fanout-") as tmp:
        mgr = ManagerProcess(os.path.join(tmp, "dir")).start(timeout=60)
        relay_procs: list[OvsdbRelay] = []
        host_procs: list[HostProcess] = []
        try:
            server_pid = mgr.children[0] if mgr.children else None
            for r in range(relays):
                relay = OvsdbRelay(f"unix:{mgr.db_socket}", os.path.join(tmp, f"relay{r}.sock"),
                                   os.path.join(tmp, f"relay{r}"))
                relay.start()
                relay_procs.append(relay)
            remotes = [r.remote for r in relay_procs] or [f"unix:{mgr.db_socket}"]
            chunks = [names[p::procs] for p in range(procs)]
            for p, chunk in enumerate(chunks):
                spec = os.path.join(tmp, f"hosts{p}.json")
                with open(spec, "w") as f:
                    json.dump({"hosts": [[n, remotes[int(n[3:]) % len(remotes)]] for n in chunk],
                               "expected": {n: expected[n] for n in chunk}}, f)
                host_procs.append(HostProcess(spec, events))
            t_start = time.monotonic()
            ready = 0
            while ready < procs:
                proc, msg = events.get(timeout=600)
                if msg is None:
                    raise RuntimeError("a host process exited")
                ready += "ready" in msg
            result["hosts_started_s"] = time.monotonic() - t_start
            admin = mgr.client()
            ent = admin.post("/enterprises", {"name": "scale"})["id"]
            pids = {"api": mgr.proc.pid, "ovsdb-server": server_pid,
                    **{f"relay{i}": r.pid for i, r in enumerate(relay_procs)},
                    **{f"hosts{i}": hp.proc.pid for i, hp in enumerate(host_procs)}}
            cpu0 = {k: _cpu_rss(p)[0] for k, p in pids.items() if p}
            # -- (b): bulk load, then wait until every host has its share
            t0 = time.monotonic()
            for hp in host_procs:
                hp.send({"cmd": "watch"})
            host_ops = [{"action": "create", "kind": "host", "body": {
                "name": n, "tunnel_ip": f"172.16.{h // 250}.{h % 250 + 1}"}} for h, n in enumerate(names)]
            for lo in range(0, len(host_ops), 2000):
                admin.post("/bulk", {"operations": host_ops[lo:lo + 2000]})
            jobs: queue.Queue = queue.Queue()
            for i in range(domains):
                jobs.put(i)
            dom_ids: dict[int, dict] = {}

            def client_loop() -> None:
                c = mgr.client()
                while True:
                    try:
                        i = jobs.get_nowait()
                    except queue.Empty:
                        return
                    res = c.post("/bulk", {"operations": _domain_ops(i, ent, where[i], per_domain)})["results"]
                    dom_ids[i] = {"acl": next(r["id"] for r in res if r["kind"] == "acl"),
                                  "groups": [r["id"] for r in res if r["kind"] == "policygroup"],
                                  "vports": [(r["id"], r["object"]["policygroups"]) for r in res
                                             if r["kind"] == "vport"][:50]}
            clients = [threading.Thread(target=client_loop) for _ in range(2)]
            for t in clients:
                t.start()
            for t in clients:
                t.join()
            t_loaded = time.monotonic()
            result["bulk_load_s"] = t_loaded - t0
            completes, rows, received = [], {}, 0
            sample_flows = []
            pending = procs
            while pending:
                proc, msg = events.get(timeout=1800)
                if msg is None:
                    raise RuntimeError("a host process exited")
                if "complete" in msg:
                    completes.append(msg["complete"])
                    rows.update(msg["rows"])
                    sample_flows.append(msg["sample_flows"])
                    received += msg["bytes_received"]
                    pending -= 1
            result["all_hosts_complete_s"] = max(completes) - t0
            result["loadavg_after_load"] = os.getloadavg()
            result["rows_per_host"] = {"mean": statistics.mean(rows.values()), "max": max(rows.values())}
            result["sample_host_flows"] = sample_flows
            for key, pid in pids.items():
                if pid:
                    cpu, rss = _cpu_rss(pid)
                    result.setdefault("cpu_s", {})[key] = round(cpu - cpu0.get(key, 0), 2)
                    result.setdefault("rss_mb", {})[key] = round(rss, 1)
            # (all bytes the hosts' connections received from their start: the load dominates)
            result["bytes_received_per_host"] = received / hosts
            print(json.dumps(result), flush=True)
            # -- (c): one change at a time until every host carrying the domain has it
            latencies: dict[str, list[float]] = {"acl": [], "membership": []}
            n = 0
            for k in range(changes):
                for kind in ("acl", "membership"):
                    n += 1
                    i = (k * 7 + (kind == "membership")) % domains
                    info = dom_ids[i]
                    affected = set(where[i])
                    if kind == "acl":
                        value = str(20000 + n)
                        probe = ["acl", info["acl"], "dst_ports", value]
                        call = (f"/acls/{info['acl']}", {"dst_ports": value})
                    else:
                        vid, groups = info["vports"][k % len(info["vports"])]
                        new = [g for g in info["groups"] if g not in groups][:1] or info["groups"][:1]
                        info["vports"][k % len(info["vports"])] = (vid, new)
                        probe = ["vport", vid, "policygroups", new[0]]
                        call = (f"/vports/{vid}", {"policygroups": new})
                    for hp in host_procs:
                        hp.send({"cmd": "probe", "n": n, "probe": probe})
                    time.sleep(0.05)  # let every process register the probe (not part of the timing)
                    t = time.monotonic()
                    admin.put(*call)
                    got: dict[str, float] = {}
                    while not affected <= set(got):
                        proc, msg = events.get(timeout=60)
                        if msg and msg.get("seen") == n:
                            got[msg["host"]] = msg["t"]
                    latencies[kind].append(max(got[h] for h in affected) - t)
                    for hp in host_procs:
                        hp.send({"cmd": "unprobe", "n": n})
            for kind, values in latencies.items():
                if values:
                    result[f"{kind}_change_ms"] = {"p50": percentile(values, 50) * 1000,
                                                   "p99": percentile(values, 99) * 1000,
                                                   "max": max(values) * 1000, "n": len(values)}
            result["loadavg_end"] = os.getloadavg()
            return result
        finally:
            for hp in host_procs:
                hp.close()
            for relay in relay_procs:
                relay.stop()
            mgr.stop()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--hosts-proc":
    hosts_main(sys.argv[2])
