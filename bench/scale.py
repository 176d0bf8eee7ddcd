"""Scale bench (issue 10, item 6): what one host's agent pays as the rest of the directory grows.

``--part per-host`` (a): one real scoped agent store (``DirectoryStore(scope_hosts=[H])``, the
store the VRS agent runs, feeding a real ``AgentCore`` compile on every update as the agent's
worker does) with a fixed local share -- 2 domains, 20 vports on H, 20 more vports of those
domains on 4 other hosts -- while the rest of the directory grows 1k -> 10k -> 100k vports (in
domains H has no vport in, 500 vports per domain, on hosts that are not H). At each size, in a
fresh agent process:

- start-up: ``DirectoryStore.start()`` until the share is converged (conditions widened to the
  fixed point and acknowledged) plus the first compile of the host's flows: wall time, the agent
  process's CPU time, and the ovsdb-server's CPU time spent meanwhile (it evaluates each new
  monitor condition over the whole table);
- RSS of the agent process after start-up;
- CPU per unrelated change: the agent process's CPU time while the loader makes changes outside
  the share (vport creates in other domains, other hosts' heartbeats, other vports' status),
  divided by their number (upper bound: includes the one local "fence" change that tells when
  they are over);
- CPU per change in a local domain (a rule's port changed: the agent receives it and recompiles
  that rule's flows).

The directory is loaded with raw OVSDB transactions in batches (thousands of rows per transaction),
not through the REST API: the bench measures the agent, not the loader.

``--part in-share`` (item 2): the same agent process with a local share of ``--shares`` vports
(2 local domains, 10 vports of H in each, the rest on peer hosts) and nothing else: the agent's
CPU per rule change (a rule's port) and per membership change (a peer vport moved to the other
group), ``--changes`` of each. ``NUAGE_BENCH_TREE=/path/to/another/checkout`` runs the agent side
(and the loader) on that tree: the reference ("before") run.

``--part fanout`` (b) and (c): ``bench/scale_fanout.py``.

Run:  .venv/bin/python bench/scale.py --part per-host [--sizes 1000,10000,100000]
      .venv/bin/python bench/scale.py --part in-share [--shares 40,2000] [--changes 50]
      .venv/bin/python bench/scale.py --part fanout [--hosts 1000 --vports 100000 --domains 200 --relays 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# NUAGE_BENCH_TREE: run the agent side on another checkout of the project (a reference run).
THIS_TREE = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, os.environ.get("NUAGE_BENCH_TREE") or THIS_TREE)
if os.environ.get("NUAGE_BENCH_TREE"):
    # nuage_ryu.db is the tree's ovsdb/ folder (setup.cfg package_dir): take the reference tree's,
    # not the installed one, so that its schema is the reference's too
    import importlib.util

    _db = Path(os.environ["NUAGE_BENCH_TREE"]) / "ovsdb"
    _spec = importlib.util.spec_from_file_location("nuage_ryu.db", _db / "__init__.py",
                                                   submodule_search_locations=[str(_db)])
    sys.modules["nuage_ryu.db"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["nuage_ryu.db"])

from nuage_ryu.db.server import OvsdbServer  # noqa: E402
from nuage_ryu.directory.store import schema_path  # noqa: E402

DB = "Nuage_Directory"
LOCAL = "bench-local"
PER_DOMAIN = 500  # vports per unrelated domain
HOSTS_PER_DOMAIN = 5  # clustered placement of the unrelated domains
BATCH = 4000  # rows per loading transaction


class Ovsdb:
    """A minimal OVSDB JSON-RPC client for loading (answers the server's echo requests)."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = ""
        self.dec = json.JSONDecoder()
        self.next_id = 0

    def _recv(self) -> dict:
        while True:
            stripped = self.buf.lstrip()
            if stripped:
                try:
                    msg, end = self.dec.raw_decode(stripped)
                    self.buf = stripped[end:]
                    return msg
                except ValueError:
                    pass
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("ovsdb-server closed the connection")
            self.buf += data.decode()

    def transact(self, *ops) -> list:
        self.next_id += 1
        self.sock.sendall(json.dumps({"method": "transact", "params": [DB, *ops], "id": self.next_id}).encode())
        while True:
            msg = self._recv()
            if msg.get("method") == "echo":
                self.sock.sendall(json.dumps({"result": msg["params"], "id": msg["id"]}).encode())
                continue
            if msg.get("id") == self.next_id:
                if msg.get("error"):
                    raise RuntimeError(msg["error"])
                for res in msg["result"]:
                    if isinstance(res, dict) and "error" in res:
                        raise RuntimeError(f"{res} in a transaction of {len(ops)} ops")
                return msg["result"]


def _u(x: str) -> list:
    return ["uuid", x]


class Loader:
    """Writes the directory: the local share once, then unrelated domains up to a total vport count."""

    def __init__(self, db: Ovsdb, schema: str | None = None):
        self.db = db
        # the schema of the tree under test has the placement index (1.5.0) or not (a reference)
        self.placement_index = "HostVPorts" in json.loads(Path(schema or schema_path()).read_text())["tables"]
        self.enterprise = str(uuid.uuid4())
        self.vports = 0
        self.domains = 0
        self.hosts: set[str] = set()
        self.local: list[dict] = []  # the local domains: {"domain", "subnet"}
        self.unrelated: list[dict] = []
        self.serial = 0
        self.index_keys: set[tuple[str, str]] = set()  # placement index rows written (schema 1.5.0)

    def _ops_domain(self, name: str) -> tuple[list, dict]:
        n = self.domains
        self.domains += 1
        d, z, s = (str(uuid.uuid4()) for _ in range(3))
        groups = [str(uuid.uuid4()) for _ in range(2)]
        ops = [
            {"op": "insert", "table": "Domain", "uuid": d, "row": {
                "enterprise": _u(self.enterprise), "name": name, "vni": 10000 + n, "ct_zone": 1 + n,
                "default_action": "deny", "router_mac": f"02:fe:00:00:{n // 256:02x}:{n % 256:02x}"}},
            {"op": "insert", "table": "Zone", "uuid": z, "row": {"domain": _u(d), "name": "z"}},
            {"op": "insert", "table": "Subnet", "uuid": s, "row": {
                "zone": _u(z), "domain": _u(d), "name": "s", "cidr": "10.0.0.0/8", "gateway": "10.0.0.1"}},
        ]
        for i, g in enumerate(groups):
            ops.append({"op": "insert", "table": "PolicyGroup", "uuid": g, "row": {"domain": _u(d), "name": f"g{i}"}})
        acls = [str(uuid.uuid4()) for _ in range(4)]
        for r, acl in enumerate(acls):
            ops.append({"op": "insert", "table": "ACL", "uuid": acl, "row": {
                "domain": _u(d), "priority": 100 + r, "src_type": "policygroup", "src_policygroup": _u(groups[r % 2]),
                "dst_type": "policygroup", "dst_policygroup": _u(groups[(r + 1) % 2]), "protocol": "tcp",
                "dst_ports": str(8000 + r), "action": "allow", "stateful": True}})
        return ops, {"domain": d, "subnet": s, "groups": groups, "acls": acls, "count": 0}

    def _ops_host(self, name: str) -> list:
        if name in self.hosts:
            return []
        self.hosts.add(name)
        n = len(self.hosts)
        return [{"op": "insert", "table": "Host", "row": {
            "name": name, "tunnel_ip": f"172.16.{n // 250}.{n % 250 + 1}", "datapath_id": f"{n:016x}"}}]

    def _ops_vport(self, dom: dict, host: str) -> list:
        self.serial += 1
        n = self.serial
        dom["count"] += 1
        self.vports += 1
        st = f"st{n}"
        return [
            {"op": "insert", "table": "VPortStatus", "uuid-name": st, "row": {"host": host, "status": "down"}},
            {"op": "insert", "table": "VPort", "uuid": str(uuid.uuid4()), "row": {
                "subnet": _u(dom["subnet"]), "domain": _u(dom["domain"]), "name": f"v{n}", "type": "container",
                "host": host, "ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                "mac": f"02:00:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
                "gateway": "10.0.0.1", "policygroups": ["set", [_u(dom["groups"][n % 2])]],
                "port_status": ["named-uuid", st]}},
        ]

    def _flush(self, ops: list) -> None:
        for i in range(0, len(ops), BATCH):
            chunk = ops[i:i + BATCH]
            self.db.transact(*chunk, *self._index_ops(chunk))

    def _index_ops(self, ops: list) -> list:
        """The placement index's rows for the vports inserted by ``ops`` (as the directory's
        writers keep it: nuage_ryu/directory/store/placement_rows.py)."""
        if not self.placement_index:
            return []
        members: dict[tuple[str, str, str], list] = {}
        for op in ops:
            if op["table"] == "VPort" and op["op"] == "insert":
                row = op["row"]
                members.setdefault(("HostVPorts", "host", row["host"]), []).append(_u(op["uuid"]))
                members.setdefault(("DomainVPorts", "domain", row["domain"][1]), []).append(_u(op["uuid"]))
        out = []
        for (table, col, key), refs in members.items():
            if (table, key) in self.index_keys:
                out.append({"op": "mutate", "table": table, "where": [[col, "==", key]],
                            "mutations": [["vports", "insert", ["set", refs]]]})
            else:
                self.index_keys.add((table, key))
                out.append({"op": "insert", "table": table, "row": {col: key, "vports": ["set", refs]}})
        return out

    def load_local_share(self, share: int = 40, peer_hosts: int = 4) -> None:
        """Two local domains, 10 vports on H each; the rest of ``share`` vports on ``peer_hosts`` peers."""
        ops = [{"op": "insert", "table": "Enterprise", "uuid": self.enterprise, "row": {"name": "bench"}}]
        ops += self._ops_host(LOCAL)
        self.peer_vports: list[tuple[str, dict]] = []  # (vport name, its domain)
        for k in range(2):
            dom_ops, dom = self._ops_domain(f"local{k}")
            ops += dom_ops
            self.local.append(dom)
            for _ in range(10):
                ops += self._ops_vport(dom, LOCAL)
            for i in range(share // 2 - 10):
                peer = f"peer{i % peer_hosts}"
                ops += self._ops_host(peer)
                ops += self._ops_vport(dom, peer)
                self.peer_vports.append((f"v{self.serial}", dom))
        self._flush(ops)

    def membership_change(self) -> tuple[str, str]:
        """A peer vport of a local domain moves to the other policy group of its domain (the agent
        recompiles that member's clause flows); returns (vport name, its new group's uuid)."""
        self.serial += 1
        name, dom = self.peer_vports[self.serial % len(self.peer_vports)]
        current = int(name[1:]) % 2 if not hasattr(self, "_groups") else self._groups.get(name, int(name[1:]) % 2)
        new = 1 - current
        self.__dict__.setdefault("_groups", {})[name] = new
        group = dom["groups"][new]
        self.db.transact({"op": "update", "table": "VPort", "where": [["name", "==", name]],
                          "row": {"policygroups": ["set", [_u(group)]]}})
        return name, group

    def grow_to(self, total: int) -> float:
        """Add unrelated vports (and their domains, hosts) until ``total`` vports; returns the seconds taken."""
        start = time.monotonic()
        ops: list = []
        while self.vports < total:
            if not self.unrelated or self.unrelated[-1]["count"] >= PER_DOMAIN:
                dom_ops, dom = self._ops_domain(f"other{self.domains}")
                ops += dom_ops
                self.unrelated.append(dom)
            dom = self.unrelated[-1]
            host = f"h{(len(self.unrelated) - 1) * HOSTS_PER_DOMAIN + dom['count'] % HOSTS_PER_DOMAIN}"
            ops += self._ops_host(host)
            ops += self._ops_vport(dom, host)
            if len(ops) >= BATCH:
                self._flush(ops)
                ops = []
        self._flush(ops)
        return time.monotonic() - start

    # -- single changes, as the REST API and other agents make them --
    def unrelated_changes(self, n: int) -> None:
        """``n`` single-row changes outside the share: vport creates, heartbeats, status flips."""
        doms = self.unrelated[:50]
        for i in range(n):
            dom = doms[i % len(doms)]
            kind = i % 3
            if kind == 0:
                host = f"h{self.unrelated.index(dom) * HOSTS_PER_DOMAIN}"
                ops = self._ops_vport(dom, host)
                self.db.transact(*ops, *self._index_ops(ops))
            elif kind == 1:  # another host's heartbeat
                self.db.transact({"op": "update", "table": "HostLiveness", "where": [["name", "==", "h1"]],
                                  "row": {"last_seen": int(time.time() * 1000) + i}})
            else:  # another vport's status
                self.db.transact({"op": "update", "table": "VPortStatus", "where": [["host", "==", "h2"]],
                                  "row": {"status": "up" if i % 2 else "down"}})

    def local_change(self) -> str:
        """One rule of a local domain changed (its port: the agent recompiles it); returns the new port.

        The share keeps its size (no vport is added), so every size starts with the same share."""
        self.serial += 1
        dom = self.local[self.serial % 2]
        port = str(20000 + self.serial)
        self.db.transact({"op": "update", "table": "ACL", "where": [["_uuid", "==", _u(dom["acls"][0])]],
                          "row": {"dst_ports": port}})
        return port

    def ensure_liveness_rows(self) -> None:
        """Give h1 a HostLiveness row (as its agent's registration would) for the heartbeat changes."""
        self.db.transact(
            {"op": "insert", "table": "HostLiveness", "uuid-name": "l",
             "row": {"name": "h1", "connected": True, "last_seen": 1}},
            {"op": "update", "table": "Host", "where": [["name", "==", "h1"]],
             "row": {"liveness": ["named-uuid", "l"]}})


# -- the agent side (a child process, so that RSS and CPU are its own) --------------------------

def agent_main(remote: str) -> None:
    """Run one scoped store + AgentCore; answer the parent's commands on stdin/stdout."""
    import threading

    from nuage_ryu.agent.core import AgentCore
    from nuage_ryu.directory.store import DirectoryStore

    t0, cpu0 = time.monotonic(), time.process_time()
    store = DirectoryStore(remote, scope_hosts=[LOCAL])
    store.start(timeout=600)
    t_store = time.monotonic() - t0
    core = AgentCore(LOCAL)
    lock = threading.Lock()
    state = store.snapshot()
    ofports = {v.id: 10 + i for i, v in enumerate(state.vports_on_host(LOCAL))}
    with lock:
        core.set_directory(state)
        core.set_ports(ofports, 1)
        core.recompute()
    t_start, cpu_start = time.monotonic() - t0, time.process_time() - cpu0
    calls = [0]

    def on_update(new_state) -> None:  # what the agent's worker does on a wake-up
        calls[0] += 1
        with lock:
            core.set_directory(new_state)
            core.recompute()

    store.add_listener(on_update)
    with open("/proc/self/status") as status:
        rss_kb = int(next(line for line in status if line.startswith("VmRSS")).split()[1])
    print(json.dumps({"startup_s": t_start, "store_start_s": t_store, "startup_cpu_s": cpu_start, "rss_kb": rss_kb,
                      "share_vports": len(state.vports), "share_domains": len(state.domains),
                      "flows": len(core.compiler.flows)}), flush=True)
    by_name: dict[str, str] = {}
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "cpu":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime, "calls": calls[0]}), flush=True)
        elif cmd == "wait":  # until a rule with dst_ports ``arg`` is compiled
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with lock:
                    view = core.view
                if view is not None and any(r.dst_ports == arg for r in view.acl_rules.values()):
                    break
                time.sleep(0.002)
            print(json.dumps({"ok": True}), flush=True)
        elif cmd == "waitpg":  # until vport ``name`` is in policy group ``uuid`` in the compiled view
            name, group = arg.split()
            if not by_name:  # once: the peers' vports stay (polling must not walk the share)
                by_name.update((v.name, v.id) for v in core.state.vports.values())
            vid = by_name.get(name)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with lock:
                    view = core.view
                if view is not None and vid in view.vports and group in view.vports[vid].policygroups:
                    break
                time.sleep(0.002)
            print(json.dumps({"ok": True}), flush=True)
        elif cmd == "quit":
            break
    store.stop()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Agent:
    def __init__(self, remote: str, server_pid: int, tree: str | None = None):
        """``tree``: the checkout whose agent side runs (None: this one, or NUAGE_BENCH_TREE's)."""
        server_cpu = process_cpu_s(server_pid)
        env = dict(os.environ)
        if tree is not None:
            env.pop("NUAGE_BENCH_TREE", None)
            if tree != THIS_TREE:
                env["NUAGE_BENCH_TREE"] = tree
        self.proc = subprocess.Popen([sys.executable, __file__, "--agent", remote], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.started = self._read()
        # what serving this agent's start-up cost the server (nothing else talks to it meanwhile)
        self.started["server_startup_cpu_s"] = process_cpu_s(server_pid) - server_cpu

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the agent process exited")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.ask("quit")
        except (BrokenPipeError, RuntimeError, ValueError):
            pass
        self.proc.wait(30)


def start_ups(remote: str, server_pid: int, tree: str | None) -> dict:
    """One fresh agent process started and stopped: its start-up figures."""
    agent = Agent(remote, server_pid, tree)
    agent.close()
    return agent.started


def measure(loader: Loader, remote: str, server_pid: int, unrelated: int, local: int, repeat: int,
            tree: str | None = None, starts: list[dict] | None = None) -> dict:
    # start-up and RSS: the median of ``repeat`` fresh agent processes (the machine is shared)
    starts = list(starts or [])
    for _ in range(repeat - 1 - len(starts)):
        starts.append(start_ups(remote, server_pid, tree))
    agent = Agent(remote, server_pid, tree)
    starts.append(agent.started)
    try:
        out = dict(agent.started)
        for key in ("startup_s", "store_start_s", "startup_cpu_s", "server_startup_cpu_s", "rss_kb"):
            out[key] = statistics.median(s[key] for s in starts)
        out["startup_all_s"] = [round(s["startup_s"], 3) for s in starts]
        # warm-up: one local change (first compile paths)
        agent.ask(f"wait {loader.local_change()}")
        before = agent.ask("cpu")
        loader.unrelated_changes(unrelated)
        fence = loader.local_change()
        agent.ask(f"wait {fence}")
        after = agent.ask("cpu")
        out["unrelated_changes"] = unrelated
        out["cpu_per_unrelated_ms"] = (after["cpu_s"] - before["cpu_s"]) * 1000 / unrelated
        out["listener_calls_during_unrelated"] = after["calls"] - before["calls"]  # 1 = the fence
        before = agent.ask("cpu")
        for _ in range(local):
            agent.ask(f"wait {loader.local_change()}")
        after = agent.ask("cpu")
        out["local_changes"] = local
        out["cpu_per_local_ms"] = (after["cpu_s"] - before["cpu_s"]) * 1000 / local
        return out
    finally:
        agent.close()


def in_share(shares: list[int], changes: int) -> list[dict]:
    """CPU per change inside the share as the share grows (fixed rest: none)."""
    results = []
    for share in shares:
        with tempfile.TemporaryDirectory(prefix="scl-inshare-") as tmp:
            srv = OvsdbServer(os.path.join(tmp, "directory.db"), schema_path(), os.path.join(tmp, "db.sock"))
            srv.start()
            try:
                loader = Loader(Ovsdb(os.path.join(tmp, "db.sock")))
                loader.load_local_share(share, peer_hosts=max(4, share // 40))
                agent = Agent(srv.remote, srv._proc.pid)
                try:
                    out = {"share_vports": agent.started["share_vports"], "flows": agent.started["flows"]}
                    agent.ask(f"wait {loader.local_change()}")  # warm-up
                    agent.ask("waitpg {} {}".format(*loader.membership_change()))
                    before = agent.ask("cpu")
                    for _ in range(changes):
                        agent.ask(f"wait {loader.local_change()}")
                    mid = agent.ask("cpu")
                    for _ in range(changes):
                        agent.ask("waitpg {} {}".format(*loader.membership_change()))
                    after = agent.ask("cpu")
                    out["cpu_per_rule_change_ms"] = (mid["cpu_s"] - before["cpu_s"]) * 1000 / changes
                    out["cpu_per_membership_change_ms"] = (after["cpu_s"] - mid["cpu_s"]) * 1000 / changes
                    out["load_avg"] = os.getloadavg()[0]
                finally:
                    agent.close()
            finally:
                srv.stop()
        results.append(out)
        print(json.dumps(out), flush=True)
    return results


def per_host(sizes: list[int], unrelated: int, local: int, repeat: int,
             reference: str | None = None) -> dict[str, list[dict]]:
    """Part (a). ``reference``: another checkout measured in the same run on a directory of its
    own schema, loaded alike; at each size the two trees' agents start alternately."""
    trees = {"after": THIS_TREE} if reference is None else {"before": reference, "after": THIS_TREE}
    results: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="hs-scale-") as tmp:
        servers, loaders = {}, {}
        try:
            for name, tree in trees.items():
                schema = os.path.join(tree, "ovsdb", "nuage_directory.ovsschema")
                sock = os.path.join(tmp, f"{name}.sock")
                servers[name] = OvsdbServer(os.path.join(tmp, f"{name}.db"), schema, sock)
                servers[name].start()
                loaders[name] = Loader(Ovsdb(sock), schema)
                loaders[name].load_local_share()
            for size in sizes:
                load_s = {}
                for name, loader in loaders.items():
                    load_s[name] = loader.grow_to(size)
                    if size == sizes[0]:  # h1 exists once the first unrelated domain does
                        loader.ensure_liveness_rows()
                starts: dict[str, list[dict]] = {name: [] for name in trees}
                for _ in range(repeat - 1):  # alternately, so that both see the same load
                    for name, tree in trees.items():
                        srv = servers[name]
                        starts[name].append(start_ups(srv.remote, srv._proc.pid, tree))
                for name, tree in trees.items():
                    srv = servers[name]
                    res = measure(loaders[name], srv.remote, srv._proc.pid, unrelated, local, repeat,
                                  tree, starts[name])
                    res.update(tree=name, total_vports=loaders[name].vports, load_s=load_s[name],
                               load_avg=os.getloadavg()[0])
                    results[name].append(res)
                    print(json.dumps(res), flush=True)
        finally:
            for srv in servers.values():
                srv.stop()
    return results


def report(results: list[dict]) -> None:
    base = results[0]
    print(f"\n{base.get('tree', '')}")
    print("| total vports | load (s) | start-up (s) | × | agent CPU at start (s) | × | server CPU per start (s) "
          "| RSS (MB) | × | CPU/unrelated change (ms) | listener calls | CPU/local change (ms) | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['total_vports']} | {r['load_s']:.1f} | {r['startup_s']:.3f} | "
              f"{r['startup_s'] / base['startup_s']:.2f} | {r['startup_cpu_s']:.3f} | "
              f"{r['startup_cpu_s'] / base['startup_cpu_s']:.2f} | {r['server_startup_cpu_s']:.2f} | "
              f"{r['rss_kb'] / 1024:.1f} | "
              f"{r['rss_kb'] / base['rss_kb']:.2f} | {r['cpu_per_unrelated_ms']:.4f} | "
              f"{r['listener_calls_during_unrelated']} | {r['cpu_per_local_ms']:.2f} | {r['load_avg']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["per-host", "in-share", "fanout"], default="per-host")
    ap.add_argument("--hosts", type=int, default=1000, help="fanout: simulated hosts")
    ap.add_argument("--vports", type=int, default=100000, help="fanout: vports in total")
    ap.add_argument("--domains", type=int, default=200, help="fanout: domains")
    ap.add_argument("--relays", type=int, default=10, help="fanout: relays (0: hosts on the primary)")
    ap.add_argument("--procs", type=int, default=8, help="fanout: processes holding the simulated hosts")
    ap.add_argument("--shares", default="40,2000", help="in-share: local share sizes (vports)")
    ap.add_argument("--changes", type=int, default=50, help="in-share, fanout: changes of each kind")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--unrelated", type=int, default=600, help="unrelated changes per size")
    ap.add_argument("--local", type=int, default=30, help="local-domain changes per size")
    ap.add_argument("--repeat", type=int, default=5, help="agent start-ups per size (median)")
    ap.add_argument("--reference", help="per-host: another checkout (e.g. a git worktree of main) measured "
                    "in the same run, its agents started alternately with this tree's")
    ap.add_argument("--agent", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.agent:
        agent_main(args.agent)
        return
    print(f"load average at start: {os.getloadavg()}", flush=True)
    if args.part == "fanout":
        import scale_fanout  # bench/scale_fanout.py: parts (b) and (c)

        res = scale_fanout.run(args.hosts, args.vports, args.domains, args.relays, args.procs, args.changes)
        print(json.dumps(res, indent=1))
        return
    if args.part == "in-share":
        in_share([int(s) for s in args.shares.split(",")], args.changes)
        print(f"load average at end: {os.getloadavg()}")
        return
    results = per_host([int(s) for s in args.sizes.split(",")], args.unrelated, args.local, args.repeat,
                       args.reference)
    for rows in results.values():
        report(rows)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
