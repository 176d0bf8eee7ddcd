"""Benchmark: CNI ADD -> vport up latency, bursts, churn and mass DEL, through the real nuage-cni executable.

``--mode lab`` (default): a lab (``nuage_ryu.lab``) of ``--hosts`` hosts with the
directory and a real VRS agent per host; the agent hosts the attach service and
reports a vport up once its flows are confirmed on br-int, so ADD returns at
"vport up". ``--mode single``: one private OVS and the standalone attach service
(``python -m nuage_ryu.agent.attach.agentd --up-mode ofport``: up = OVS assigned
the port), no flows.

Each ADD/DEL is a fresh ``nuage-cni`` process (process start included), the one
installed in the venv's bin (``make setup`` writes the ``-I -S`` launcher there).

Scenarios (``--scenarios``, default all, in this order):

* ``single``: sequential ADDs then DELs, one at a time: ADD -> up p50/p90/p99;
* ``burst``: ``--burst`` simultaneous ADDs on *each* host (so hosts x burst in all),
  then as many simultaneous DELs (a node drain); latency of each from the burst's
  start, the time until all are up / gone, and what is left behind (must be nothing);
  references from the same run: as many simultaneous ``nuage-cni VERSION`` execs
  (process starts only), and the burst straight on the agent sockets (agent only);
* ``churn``: ``--parallel`` workers per host doing ADD+DEL pairs through nuage-cni
  for ``--churn-seconds``; pairs/s per host; the same straight on the agent socket;
* per-phase timings (veth, netns, OVSDB, directory, flows, status) of every attach and
  detach of the run, read from each agent's Prometheus histogram
  ``nuage_attach_phase_seconds`` (lab mode) -- their mean and the count.
* CPU: for every scenario the CPU seconds (user + system, reaped children included) of
  every process involved -- the nuage-cni execs (the bench's reaped children), each
  host's agent, ovs-vswitchd and ovsdb-server, the directory API process and its
  ovsdb-server (bench/cpu_meter.py) -- in all and per operation, with the agents'
  group-commit batches; and what each burns while idle (``--idle-seconds`` before the
  scenarios). CPU time barely depends on the neighbours' load; wall time does.

``--cni PATH`` runs another build of the plugin (e.g. the compiled one of
``python -m nuage_ryu.plugins.launcher install --compiled --bin DIR``).

    .venv/bin/python bench/cni_attach.py [--mode lab|single] [--hosts 2] [--burst 100] [--count 50] [--cni PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cpu_meter import CpuMeter, children_of, command_of  # noqa: E402  (bench/, the script's folder)

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
SCENARIOS = ("single", "burst", "churn")
METRICS_PORT = 9100  # the agents' default metrics_listen, inside each lab host's namespace


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


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Target:
    """Where the containers go: one agent socket per host, and how to see what a host has left."""

    def __init__(self, confs: list[dict], leftovers, metrics=None, meter: CpuMeter | None = None) -> None:
        self.confs = confs
        self.leftovers = leftovers   # () -> list of what is left on every host
        self.metrics = metrics       # () -> Prometheus text of every agent, or None
        self.meter = meter or CpuMeter({})  # CPU seconds of every process involved, per scenario

    def batches(self) -> dict:
        """{step: [batches, items]} of the agents' group commits so far (summed over hosts)."""
        total: dict = {}
        for conf in self.confs:
            try:
                stats = AgentClient(conf["agent_socket"]).status().get("batches") or {}
            except Exception:  # noqa: BLE001 - a figure for the report, not a check
                continue
            for step, value in stats.items():
                if isinstance(value, dict):
                    entry = total.setdefault(step, [0, 0])
                    entry[0] += value["batches"]
                    entry[1] += value["items"]
        return total

    def measured(self, work, ops: int) -> tuple:
        """(what ``work()`` returned, the CPU it cost by process, per operation of ``ops``).

        The CPU figures also carry how many group-commit batches the agents ran for it
        (``batches``: {step: [batches, items]}): fewer batches, less work per container."""
        batches_before = self.batches()
        before = self.meter.snapshot()
        value = work()
        cpu = CpuMeter.delta(before, self.meter.snapshot(), per=ops)
        after = self.batches()
        cpu["batches"] = {step: [n - batches_before.get(step, [0, 0])[0], items - batches_before.get(step, [0, 0])[1]]
                          for step, (n, items) in after.items()}
        return value, cpu


def simultaneous(command: str, target: Target, jobs: list[tuple[int, int, str]], tag: str) -> dict:
    """Run ``command`` for every job at once (threads released together); latencies from that moment."""
    gate = threading.Barrier(len(jobs) + 1)
    done: list[float] = [0.0] * len(jobs)
    errors: list[str] = []
    origin = [0.0]

    def one(k: int) -> None:
        h, i, ns = jobs[k]
        gate.wait()
        rc, res = run_cni(command, target.confs[h], f"{tag}-{h}-{i}", ns)
        done[k] = time.monotonic() - origin[0]
        if rc != 0:
            errors.append(f"{command} {tag}-{h}-{i}: {res}")

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    load_before = load()
    origin[0] = time.monotonic()
    gate.wait()
    for t in threads:
        t.join()
    out = summary(done)
    out.update(all_done_s=round(max(done), 3), errors=errors[:5], failed=len(errors), loadavg_before=load_before)
    return out


def at_once(calls: list) -> tuple[list[float], list[str]]:
    """Run the callables together (one barrier); (seconds from the release to each one's end, errors)."""
    gate = threading.Barrier(len(calls) + 1)
    done: list[float] = [0.0] * len(calls)
    errors: list[str] = []
    origin = [0.0]

    def one(k: int) -> None:
        gate.wait()
        try:
            calls[k]()
        except Exception as exc:
            errors.append(str(exc)[:200])
        done[k] = time.monotonic() - origin[0]

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    origin[0] = time.monotonic()
    gate.wait()
    for t in threads:
        t.join()
    return done, errors


def burst(target: Target, spaces: list[list[str]], tag: str) -> dict:
    """len(spaces[h]) simultaneous ADDs on every host h, then as many simultaneous DELs.

    With two references measured in the same run: as many simultaneous ``nuage-cni VERSION``
    execs (the process starts alone, no agent work), and the same burst straight on the agent
    sockets (the agent's work alone, no process start).
    """
    jobs = [(h, i, ns) for h, host_spaces in enumerate(spaces) for i, ns in enumerate(host_spaces)]
    out: dict = {"hosts": len(spaces), "containers": len(jobs)}
    load_before = load()
    (done, errors), cpu = target.measured(
        lambda: at_once([lambda: run_cni("VERSION", {"cniVersion": "1.0.0"}) for _ in jobs]), len(jobs))
    out["version_execs_reference"] = dict(summary(done), all_done_s=round(max(done), 3), loadavg_before=load_before,
                                          cpu=cpu)
    for command in ("ADD", "DEL"):
        result, cpu = target.measured(functools.partial(simultaneous, command, target, jobs, tag), len(jobs))
        out[command.lower()] = dict(result, cpu=cpu)
    out["left_behind"] = target.leftovers()

    def api(command: str, h: int, i: int, ns: str):
        conf = target.confs[h]
        agent = AgentClient(conf["agent_socket"])
        if command == "attach":
            return lambda: agent.attach(container_id=f"{tag}-api-{h}-{i}", ifname="eth0", netns=ns,
                                        network=conf["name"],
                                        **{k: conf[k] for k in ("enterprise", "domain", "zone", "subnet")})
        return lambda: agent.detach(f"{tag}-api-{h}-{i}", "eth0")

    for command in ("attach", "detach"):
        load_before = load()
        calls = [api(command, *job) for job in jobs]
        (done, errors), cpu = target.measured(functools.partial(at_once, calls), len(jobs))
        out[f"agent_api_{command}"] = dict(summary(done), all_done_s=round(max(done), 3), errors=errors[:3],
                                           failed=len(errors), loadavg_before=load_before, cpu=cpu)
    out["left_behind_api"] = target.leftovers()
    out["agent_batches"] = [AgentClient(conf["agent_socket"]).status().get("batches") for conf in target.confs]
    return out


def churn(target: Target, spaces: list[list[str]], parallel: int, seconds: float, via_api: bool) -> dict:
    """``parallel`` workers per host doing ADD+DEL pairs for ``seconds``; pairs/s per host."""
    stop = time.monotonic() + seconds
    pairs = [0] * len(spaces)
    errors: list[str] = []

    def worker(h: int, w: int) -> None:
        conf = target.confs[h]
        agent = AgentClient(conf["agent_socket"])
        n = 0
        while time.monotonic() < stop:
            ns = spaces[h][w]
            cid = f"{'api' if via_api else 'churn'}-{h}-{w}-{n}"
            try:
                if via_api:
                    agent.attach(container_id=cid, ifname="eth0", netns=ns, network=conf["name"],
                                 **{k: conf[k] for k in ("enterprise", "domain", "zone", "subnet")})
                    agent.detach(cid, "eth0")
                else:
                    timed("ADD", conf, cid, ns)
                    timed("DEL", conf, cid, ns)
                pairs[h] += 1
            except Exception as exc:
                errors.append(str(exc)[:200])
                return
            n += 1

    def run() -> None:
        with concurrent.futures.ThreadPoolExecutor(parallel * len(spaces)) as pool:
            list(pool.map(lambda hw: worker(*hw), [(h, w) for h in range(len(spaces)) for w in range(parallel)]))

    start = time.monotonic()
    before = target.meter.snapshot()
    run()
    after = target.meter.snapshot()
    elapsed = time.monotonic() - start
    return {"pairs_per_s_per_host": round(sum(pairs) / len(spaces) / elapsed, 1), "pairs": sum(pairs),
            "seconds": round(elapsed, 1), "errors": errors[:5],
            "cpu_per_pair": CpuMeter.delta(before, after, per=max(1, sum(pairs))),
            "left_behind": target.leftovers()}


def phase_means(texts: list[str]) -> dict:
    """{operation: {phase: {"n", "mean_ms"}}} from the agents' nuage_attach_phase_seconds histograms."""
    sums: dict = {}
    for text in texts:
        for line in text.splitlines():
            if not line.startswith(("nuage_attach_phase_seconds_sum", "nuage_attach_phase_seconds_count")):
                continue
            name, _, value = line.rpartition(" ")
            labels = dict(part.split("=", 1) for part in name[name.index("{") + 1:name.index("}")].split(","))
            op, phase = labels["operation"].strip('"'), labels["phase"].strip('"')
            entry = sums.setdefault(op, {}).setdefault(phase, [0.0, 0.0])
            entry[0 if "_sum" in name else 1] += float(value)
    return {op: {phase: {"n": int(c), "mean_ms": round(s / c * 1000, 2) if c else None}
                 for phase, (s, c) in phases.items()} for op, phases in sums.items()}


def scrape(netns: str) -> str:
    code = (f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics',"
            " timeout=5).read().decode())")
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=30)
    return proc.stdout


def lab_processes(lab, plane) -> dict[str, int]:
    """name -> pid of every lab process an attach involves: agents, OVS daemons, directory + its DB."""
    procs: dict[str, int] = {}
    for h in lab.hosts:
        procs[f"{h.name} agent"] = plane.procs[f"agent-{h.name}"].pid
        for daemon, pid in sorted(h.ovs.pids().items()):
            procs[f"{h.name} {daemon}"] = pid
    directory = plane.procs["directory"].pid
    procs["directory API"] = directory
    for child in children_of(directory):
        procs[f"directory {command_of(child)}"] = child
    return procs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("lab", "single"), default="lab")
    parser.add_argument("--hosts", type=int, default=2, help="lab hosts (lab mode)")
    parser.add_argument("--count", type=int, default=50, help="sequential ADDs of the single scenario")
    parser.add_argument("--burst", type=int, default=100, help="simultaneous ADDs per host")
    parser.add_argument("--parallel", type=int, default=8, help="churn workers per host")
    parser.add_argument("--churn-seconds", type=float, default=10.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="CPU of every process while idle, measured before the scenarios")
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--cni", default="", help="the nuage-cni executable to run (default: the venv's; "
                        "e.g. the compiled one of `launcher install --compiled --bin DIR`)")
    args = parser.parse_args()
    if args.cni:
        os.environ["NUAGE_TEST_CNI"] = os.path.abspath(args.cni)  # tests.attach_helpers.run_cni runs it
    scenarios = [s for s in args.scenarios.split(",") if s]
    results: dict = {"mode": args.mode, "cpus": os.cpu_count(), "loadavg_start": load(),
                     "nuage_cni": os.path.realpath(os.environ.get("NUAGE_TEST_CNI")
                                                   or os.path.join(os.path.dirname(sys.executable), "nuage-cni"))}
    with contextlib.ExitStack() as stack:
        base = {"cniVersion": "1.0.0", "name": "nuage", "type": "nuage-cni",
                "enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}
        if args.mode == "lab":
            from tests.lab_helpers import lab_with_plane

            lab, plane = stack.enter_context(lab_with_plane(args.hosts, tag="hnb"))
            directory = plane.client()
            make_network(directory, cidr="10.64.0.0/18")
            n_hosts = len(lab.hosts)

            def leftovers() -> list:
                left = []
                for h in lab.hosts:
                    state = host_state(h.ovs, directory, h.host_name)
                    left += state["ports"] + state["links"] + state["vports"]
                return left

            target = Target([dict(base, agent_socket=plane.agent_socket(h)) for h in lab.hosts], leftovers,
                            lambda: [scrape(h.netns) for h in lab.hosts], CpuMeter(lab_processes(lab, plane)))
        else:
            directory = stack.enter_context(directory_service())
            ovs = stack.enter_context(private_ovs())
            make_network(directory, cidr="10.64.0.0/18")
            prepare_bridge(ovs)
            sock = os.path.join(directory.state_dir, "agent.sock")
            stack.enter_context(agent_process(sock, ovs.db_remote, directory, HOST, ovs.netns))
            n_hosts = 1

            def leftovers() -> list:
                state = host_state(ovs, directory, HOST)
                return state["ports"] + state["links"] + state["vports"]

            target = Target([dict(base, agent_socket=sock)], leftovers,
                            meter=CpuMeter({f"host {d}": pid for d, pid in ovs.pids().items()}))
        per_host = max(args.burst, args.parallel, args.count if "single" in scenarios else 0)
        spaces = [[f"/var/run/netns/{stack.enter_context(namespace(unique_netns_name('hnb')))}"
                   for _ in range(per_host)] for _ in range(n_hosts)]
        print(f"setup done: {n_hosts} host(s), {per_host} namespaces each; processes "
              f"{json.dumps(target.meter.processes)}", flush=True)
        results["processes"] = target.meter.processes
        # What every process burns doing nothing (OVS's periodic work, the agents' heartbeats and
        # stats polls): per second, to set against the scenarios' CPU.
        idle_start = time.monotonic()
        _, idle = target.measured(lambda: time.sleep(args.idle_seconds), 0)
        elapsed = time.monotonic() - idle_start
        results["idle_cpu_ms_per_s"] = {name: round(v * 1000 / elapsed, 2) for name, v in idle["cpu_s"].items()}
        if "single" in scenarios:
            conf = target.confs[0]
            some = list(enumerate(spaces[0][:args.count]))
            adds, cpu_add = target.measured(lambda: [timed("ADD", conf, f"single-{i}", ns) for i, ns in some],
                                            len(some))
            dels, cpu_del = target.measured(lambda: [timed("DEL", conf, f"single-{i}", ns) for i, ns in some],
                                            len(some))
            results["single"] = {"add_to_up": summary(adds), "del": summary(dels), "loadavg": load(),
                                 "cpu_add": cpu_add, "cpu_del": cpu_del, "left_behind": leftovers()}
            print(json.dumps({"single": results["single"]}), flush=True)
        if "burst" in scenarios:
            results["burst"] = burst(target, [s[:args.burst] for s in spaces], "burst")
            print(json.dumps({"burst": results["burst"]}), flush=True)
        if "churn" in scenarios:
            results["churn_cni"] = churn(target, spaces, args.parallel, args.churn_seconds, via_api=False)
            results["churn_cni"]["loadavg"] = load()
            results["churn_agent_api"] = churn(target, spaces, args.parallel, args.churn_seconds, via_api=True)
            results["churn_agent_api"]["loadavg"] = load()
            print(json.dumps({k: results[k] for k in ("churn_cni", "churn_agent_api")}), flush=True)
        if target.metrics is not None:
            results["phases"] = phase_means(target.metrics())
        results["loadavg_end"] = load()
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
