"""Compile + install time for 1,000 rules over 100 groups of 100 members, on a real bridge.

    .venv/bin/python bench/policy_install.py [--local-per-group 1] [--rounds 3]

The view (synthetic ``HostView``, the same shape as ``bench/policy_flowcount.py``'s big case): one domain,
10,000 vports in 100 policy groups of 100, 1,000 rules between random groups (tcp ports 1000..1049,
every 10th a deny, the rest stateful allows); this host holds ``--local-per-group`` members of every
group (default 1: 100 local vports), the others are on a second host.

1. compile: ``FlowCompiler().update(view)`` (pure compiler, ACL owners included), wall time;
2. install: the compiled flows handed to the sync engine (``BridgeSync`` in the flow-sync harness app
   under nuage-ryu-manager, as ``bench/flow_programming.py`` drives it) on a private ovs-vswitchd with a
   netdev bridge: time from ``set_desired`` to the bundle's COMMIT reply, then the bridge's flow count
   checked with ``ovs-ofctl dump-aggregate``;
3. incremental: one rule's ports changed; a remote vport moved to another group; this host's only
   member of a group moved to another group (the rules from that group lose their last sender here):
   compile (the diff) and install (one bundle with only the changed flows), each until confirmed.

Each round starts from an empty bridge and a fresh compiler.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import platform
import random
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from flow_programming import DPID, Lab, flow_count  # noqa: E402

from nuage_ryu.vrs.compile import FlowCompiler  # noqa: E402
from nuage_ryu.vrs.view import (  # noqa: E402
    AclRule,
    Domain,
    Endpoint,
    Host,
    HostView,
    LocalPort,
    PolicyGroup,
    Subnet,
    VPort,
)

N_GROUPS, GROUP_SIZE, N_RULES = 100, 100, 1000
DOMAIN = Domain("d", 7000, "02:ff:00:00:00:01", "deny", 1)
SUBNET = Subnet("s", "d", "10.0.0.0/8", "10.0.0.1")
HOSTS = [Host("h1", "192.168.0.1"), Host("h2", "192.168.0.2")]
TUNNEL_OFPORT = 1


def build_view(local_per_group: int) -> HostView:
    rnd = random.Random(1)
    vports = []
    for i in range(N_GROUPS * GROUP_SIZE):
        local = i % GROUP_SIZE < local_per_group
        vports.append(VPort(f"v{i}", "d", "s", f"02:01:00:{i >> 8 & 255:02x}:{i & 255:02x}:01",
                            f"10.1.{i >> 8}.{i & 255}", "h1" if local else "h2",
                            policygroups=frozenset({f"g{i // GROUP_SIZE}"})))
    groups = [PolicyGroup(f"g{g}", "d") for g in range(N_GROUPS)]
    rules = [AclRule(f"r{k}", "d", 1 + k, Endpoint("policygroup", f"g{rnd.randrange(N_GROUPS)}"),
                     Endpoint("policygroup", f"g{rnd.randrange(N_GROUPS)}"), "tcp", str(1000 + k % 50),
                     action="deny" if k % 10 == 9 else "allow") for k in range(N_RULES)]
    local = [LocalPort(v.id, 10 + i) for i, v in enumerate(v for v in vports if v.host == "h1")]
    return HostView.of("h1", TUNNEL_OFPORT, [DOMAIN], [SUBNET], vports, HOSTS, local, groups, rules)


def rule_changed(view: HostView) -> HostView:
    rules = dict(view.acl_rules)
    rules["r500"] = AclRule(**{**vars(rules["r500"]), "dst_ports": "2000-2999"})
    return view.replace(acl_rules=rules.values())


def moved(vport_id: str):
    """A change: the vport leaves its group (g0) for g1."""
    def change(view: HostView) -> HostView:
        vports = dict(view.vports)
        vports[vport_id] = VPort(**{**vars(vports[vport_id]), "policygroups": frozenset({"g1"})})
        return view.replace(vports=vports.values())
    return change


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local-per-group", type=int, default=1, help="members of each group on this host")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    view = build_view(args.local_per_group)
    n_local = len(view.local_ports)
    res: dict[str, list[float]] = {k: [] for k in (
        "compile", "install", "install wall", "rule change compile", "rule change install",
        "remote member compile", "remote member install", "last local member compile", "last local member install")}
    sizes = {}
    engine: dict[str, list[float]] = {"prepare + diff": [], "encode": []}  # BridgeSync.stats of each install
    parts: dict[str, list[float]] = {}  # label -> [desired() s, prepare + diff s, encode s] of the last round
    with Lab() as lab:
        lab.start_app()

        def install(flows, cmd: str = "set_desired") -> tuple[float, float, list[int]]:
            path = os.path.join(lab.rundir, "desired.pickle")
            with open(path, "wb") as f:
                pickle.dump(flows, f)
            t = time.perf_counter()
            reply = lab.call(cmd=cmd, pickle=path, timeout=600)
            wall = time.perf_counter() - t
            st = reply["bridges"][DPID]
            if st["errors"] or st["quarantined"]:
                raise RuntimeError(f"the bridge refused flows: {st}")
            engine["prepare + diff"].append(st["last_prepare_s"] + st["last_diff_s"])
            engine["encode"].append(st["last_encode_s"])
            return reply["elapsed"], wall, reply["sent"][DPID]

        install([])  # the engine's baseline (its canary only)
        base = flow_count(lab.mgmt)
        for r in range(args.rounds):
            gc.collect()
            fc = FlowCompiler()
            t = time.perf_counter()
            fc.update(view)
            res["compile"].append(time.perf_counter() - t)
            t = time.perf_counter()
            flows = fc.desired()
            parts["full install"] = [time.perf_counter() - t]
            policy = sum(1 for f in flows if f.table in (22, 42))
            elapsed, wall, sent = install(flows)
            parts["full install"] += [engine["prepare + diff"][-1], engine["encode"][-1]]
            res["install"].append(elapsed)
            res["install wall"].append(wall)
            on_bridge = flow_count(lab.mgmt) - base  # base: the engine's canary, also one of the compiled flows
            if on_bridge != len(flows) - 1:
                raise RuntimeError(f"{on_bridge} flows on the bridge, {len(flows)} compiled")
            sizes = {"flows": len(flows), "policy flows": policy, "bundles": sent[0]}
            current = view
            # v1 is on the other host; v0 is g0's only member on this host (with --local-per-group 1): when
            # it leaves, the rules from g0 have no sender here any more and their flows go too.
            for label, change in (("rule change", rule_changed), ("remote member", moved("v1")),
                                  ("last local member", moved("v0"))):
                current = change(current)
                t = time.perf_counter()
                diff = fc.update(current)
                res[f"{label} compile"].append(time.perf_counter() - t)
                # What the agent sends for an update: the compiler's diff (BridgeSync.apply_diff).
                elapsed, _wall, sent = install(diff, cmd="apply_diff")
                parts[label] = [0.0, engine["prepare + diff"][-1], engine["encode"][-1]]
                res[f"{label} install"].append(elapsed)
                sizes[label] = f"+{len(diff.add)} -{len(diff.delete)} flows, {sent[0]} bundle"
                if flow_count(lab.mgmt) - base != len(fc.flows) - 1:
                    raise RuntimeError(f"{label}: bridge and compiler disagree")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in res.items()), flush=True)
            install([])  # empty bridge for the next round
        ovs = lab.ovs.run(["ovs-vswitchd", "--version"]).stdout.splitlines()[0]

    print()
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `.venv/bin/python bench/policy_install.py "
          f"--local-per-group {args.local_per_group} --rounds {args.rounds}`; {ovs}, netdev bridge, Python "
          f"{platform.python_version()}, {os.cpu_count()} cores (shared). {N_RULES:,} rules, {N_GROUPS} groups x "
          f"{GROUP_SIZE} members ({N_GROUPS * GROUP_SIZE:,} vports), {n_local} local: {sizes['flows']:,} flows on "
          f"the bridge ({sizes['policy flows']:,} in the policy tables), installed in {sizes['bundles']} bundle.")
    print()
    print("| step | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |")
    print("|---|" + "---|" * (args.rounds + 1))
    labels = {
        "compile": "full compile (FlowCompiler.update)",
        "install": "install, set_desired -> COMMIT reply (sync engine)",  # changes: apply_diff
        "install wall": "install as seen by the caller (+ pickle load, control socket)",
        "rule change compile": f"one rule's ports changed: compile ({sizes['rule change']})",
        "rule change install": "one rule's ports changed: install (apply_diff of the compiler's diff + bundle)",
        "remote member compile": f"a remote vport moves to another group: compile ({sizes['remote member']})",
        "remote member install": "a remote vport moves to another group: install",
        "last local member compile": f"a group's only local vport moves to another group: compile "
                                     f"({sizes['last local member']})",
        "last local member install": "a group's only local vport moves to another group: install",
    }
    for key, vals in res.items():
        print(f"| {labels[key]} | " + " | ".join(f"{v:.3f} s" for v in vals)
              + f" | **{statistics.median(vals):.3f} s** |")
    print()
    print("Inside an install (last round): `FlowCompiler.desired()` (the full sorted list, only for the first "
          "install; updates hand the engine just the compiler's diff via `apply_diff`), the engine's prepare + "
          "diff, encoding the bundle; the rest of an install is OVS applying the bundle and the transport.")
    print()
    print("| install | desired() | engine prepare + diff | engine encode |")
    print("|---|---|---|---|")
    for label, (sorting, diff, encode) in parts.items():
        print(f"| {label} | {sorting:.3f} s | {diff:.3f} s | {encode:.3f} s |")
    total = [c + i for c, i in zip(res["compile"], res["install"], strict=True)]
    print(f"\ncompile + install, median: {statistics.median(total):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
