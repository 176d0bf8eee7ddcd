"""A fresh agent's start-up: process start -> OpenFlow connection -> first confirmed table.

    .venv/bin/python bench/agent_startup.py [--runs 5] [--reference REV] [--json FILE]

A 1-host lab with the directory (a domain, one subnet, two vports bound to the host: a tiny
directory). The host's VRS agent is started with the real launcher ``--runs`` times in each of
two situations, and stopped (SIGTERM) after each run:

* ``fresh``: br-int does not exist (deleted before the run): the agent creates it, its
  controller target and the VXLAN port, like on a new host;
* ``restart``: right after that, the same agent again: br-int is there with the previous
  run's flows and its controller target, which OVS keeps retrying while no agent listens.

Each pair starts from a new br-int, so no OVS connection state carries over from one run (or
one tree's agent) to the next.

The agent logs its own milestones, in seconds since its process started (``nuage_ryu/agent/
startup.py``; also ``nuage_agent_startup_seconds``): app_start (imports and config done),
bridge_ready, directory_synced, agent_started (its start() returned), openflow_up, first_table
(the switch confirmed the first complete table). The bench also times, from outside, from just
before the launch to the log line. Figures: median and max over the runs.

``--reference REV``: also run the agent of that git revision (``git archive`` into a temporary
directory, run with this venv's packages), alternating with this tree's agent run by run, so both
see the same machine load; the summary then has both and their ratio. REV must log the start-up
line (f78ddd8, the commit that added it, is the tree before the start-up fixes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from nuage_ryu.agent import startup  # noqa: E402
from nuage_ryu.lab.lab import Lab  # noqa: E402
from nuage_ryu.lab.plane import ControlPlane  # noqa: E402
from tests.lab_helpers import wait_until  # noqa: E402

LINE = re.compile(r"first table ([\d.]+) s after process start \(([^)]*)\)")
MILESTONES = (startup.APP_START, startup.BRIDGE_READY, startup.DIRECTORY_SYNCED, startup.AGENT_STARTED,
              startup.OPENFLOW_UP, startup.FIRST_TABLE)


def parse(text: str) -> dict[str, float] | None:
    """The milestones of the last start-up line in an agent log (None when there is none yet)."""
    found = LINE.findall(text)
    if not found:
        return None
    total, steps = found[-1]
    out = {startup.FIRST_TABLE: float(total)}
    for step in steps.split(", "):
        name, _, at = step.rpartition(" ")
        out[name] = float(at)
    return out


# Runs ``python -m nuage_ryu.cmd.manager ARGS`` from another source tree (argv[1]) with this venv's
# packages: nuage_ryu from that tree, and its apps/ and ovsdb/ folders as nuage_ryu.apps / .db (the
# editable install would otherwise map those two to this tree).
BOOT = r"""
import importlib.util, runpy, sys
ref = sys.argv.pop(1)
sys.path.insert(0, ref)
import nuage_ryu
assert nuage_ryu.__file__.startswith(ref), nuage_ryu.__file__
for name, folder in (("nuage_ryu.apps", "apps"), ("nuage_ryu.db", "ovsdb")):
    spec = importlib.util.spec_from_file_location(name, f"{ref}/{folder}/__init__.py",
                                                  submodule_search_locations=[f"{ref}/{folder}"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
assert sys.argv[1:3] == ["-m", "nuage_ryu.cmd.manager"], sys.argv
sys.argv = [sys.argv[0], *sys.argv[3:]]
runpy.run_module("nuage_ryu.cmd.manager", run_name="__main__", alter_sys=True)
"""


def reference_python(rev: str, tmp: str) -> str:
    """An executable that runs the launcher of git revision ``rev`` (see BOOT)."""
    tree = os.path.join(tmp, "tree")
    os.makedirs(tree)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    boot = os.path.join(tmp, "boot.py")
    with open(boot, "w") as f:
        f.write(BOOT)
    wrapper = os.path.join(tmp, "python")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {sys.executable} {boot} {tree} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    return wrapper


def one_run(plane: ControlPlane, host, fresh: bool) -> dict[str, float]:
    if fresh:
        host.ovs.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", "br-int"])
    log = plane.log_path(f"agent-{host.name}")
    offset = os.path.getsize(log) if os.path.exists(log) else 0
    t0 = time.monotonic()
    proc = plane.start_agent(host, wait=False)

    def milestones():
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}; see {log}")
        with open(log, errors="replace") as f:
            f.seek(offset)
            return parse(f.read())

    found = wait_until(milestones, timeout=60, interval=0.02, message="the agent's first table")
    found["outside"] = time.monotonic() - t0
    plane.stop_process(f"agent-{host.name}")
    return found


def summary(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    names = [*MILESTONES, "outside"]
    return {n: {"median_s": round(statistics.median(r[n] for r in runs), 3),
                "max_s": round(max(r[n] for r in runs), 3)} for n in names if all(n in r for r in runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="agent starts per situation (default 5)")
    ap.add_argument("--reference", metavar="REV", help="also run this git revision's agent (e.g. f78ddd8)")
    ap.add_argument("--json", metavar="FILE", help="also write the results here")
    args = ap.parse_args()
    results: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "loadavg_before": os.getloadavg()[0]}, "runs": args.runs,
                     "reference": args.reference}
    state = tempfile.mkdtemp(prefix="nr-startup-")
    ref_tmp = tempfile.mkdtemp(prefix="nr-startup-ref-")
    trees = {"this tree": sys.executable}
    if args.reference:
        trees[f"reference {args.reference}"] = reference_python(args.reference, ref_tmp)
    lab = Lab(state, f"hrs{os.getpid() % 10000}")
    plane = None
    try:
        lab.up(1)
        plane = ControlPlane(lab, tls=False)  # the reference tree may predate [tls]
        os.makedirs(plane.root, exist_ok=True)
        plane.start_directory()
        host = lab.hosts[0]
        api = plane.client()
        ent = api.request("POST", "/enterprises", {"name": "startup"})
        dom = api.request("POST", f"/enterprises/{ent['id']}/domains", {"name": "d"})
        zone = api.request("POST", f"/domains/{dom['id']}/zones", {"name": "z"})
        sub = api.request("POST", f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.80.0.0/24"})
        for i in range(2):
            api.request("POST", f"/subnets/{sub['id']}/vports", {"name": f"v{i}", "host": host.host_name})
        runs: dict[str, dict[str, list]] = {s: {t: [] for t in trees} for s in ("fresh", "restart")}
        for _ in range(args.runs):
            for tree, python in trees.items():  # each tree in turn: both see the same load
                plane.python = python
                # A pair on a new br-int (so that no OVS connection state is left from another tree's
                # agent): the fresh start, then a restart of the same agent.
                runs["fresh"][tree].append(one_run(plane, host, fresh=True))
                runs["restart"][tree].append(one_run(plane, host, fresh=False))
        plane.python = sys.executable
    finally:
        if plane is not None:
            plane.stop()
        lab.down()
        subprocess.run(["rm", "-rf", ref_tmp], check=False)
    results["machine"]["loadavg_after"] = os.getloadavg()[0]
    results["runs_by_situation"] = runs
    for situation, by_tree in runs.items():
        results[f"{situation}_summary"] = {tree: summary(r) for tree, r in by_tree.items()}
        for tree, table in results[f"{situation}_summary"].items():
            print(f"{situation}, {tree}:")
            for name, v in table.items():
                print(f"  {name:17} median {v['median_s']:6.3f} s   max {v['max_s']:6.3f} s")
        if len(by_tree) == 2:
            this, ref = (results[f"{situation}_summary"][t][startup.FIRST_TABLE]["median_s"] for t in by_tree)
            print(f"  first_table ratio this/reference: {this / ref:.2f}")
    print(f"load average {results['machine']['loadavg_before']:.2f} -> {results['machine']['loadavg_after']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
