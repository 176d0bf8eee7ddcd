"""Policy flow count vs group size (conjunctive matches keep it linear).

A domain with policy groups ``web`` (N members) and ``app`` (M members), K = 10 port
rules web -> app (tcp 9000..9009, stateful allow), on a host holding all members
(the worst case for the sending side). The count is the flows the policy adds
to the host (total minus the same host without rules). Target: < 3 (N + M + K).

Variants: ``ranges`` (each rule a port range, several prefixes each), ``interleaved``
(allow/deny alternate on distinct ports: they still share one priority level),
``interleaved-overlap`` (the deny rules' ports overlap the allows': every rule needs a
level of its own, the worst case), ``split`` (web on this host, app on another).

Also: compile time for 1,000 rules over 100 groups of 100 members (10,000 vports),
on a host holding 100 of them.

Run:  .venv/bin/python bench/policy_flowcount.py
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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

K = 10
DOMAIN = Domain("d", 7000, "02:ff:00:00:00:01", "deny", 1)
SUBNET = Subnet("s", "d", "10.0.0.0/8", "10.0.0.1")
HOSTS = [Host("h1", "192.168.0.1"), Host("h2", "192.168.0.2")]
WEB, APP = Endpoint("policygroup", "web"), Endpoint("policygroup", "app")


def vport(i: int, group: str, host: str) -> VPort:
    return VPort(f"v{i}", "d", "s", f"02:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:01",
                 f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", host, policygroups=frozenset({group}))


def rules(variant: str) -> list[AclRule]:
    out = []
    for k in range(K):
        ports = f"{9000 + 100 * k}-{9000 + 100 * k + 99}" if variant == "ranges" else str(9000 + k)
        action = "deny" if variant.startswith("interleaved") and k % 2 else "allow"
        if variant == "interleaved-overlap" and action == "deny":
            ports = "9000-9999"  # overlaps every allow: each rule needs a priority level of its own
        out.append(AclRule(f"r{k}", "d", 10 + k, WEB, APP, "tcp", ports, action=action))
    return out


def policy_flows(n: int, m: int, variant: str) -> int:
    app_host = "h2" if variant == "split" else "h1"
    vports = [vport(i, "web", "h1") for i in range(n)] + [vport(n + i, "app", app_host) for i in range(m)]
    local = [LocalPort(v.id, 10 + i) for i, v in enumerate(vports) if v.host == "h1"]
    groups = [PolicyGroup("web", "d"), PolicyGroup("app", "d")]
    base = HostView.of("h1", 1, [DOMAIN], [SUBNET], vports, HOSTS, local, groups, [])
    fc = FlowCompiler()
    fc.update(base)
    without = len(fc.flows)
    fc.update(base.replace(acl_rules=rules(variant)))
    return len(fc.flows) - without


def big_compile() -> tuple[int, float, float]:
    """1,000 rules over 100 groups x 100 members; returns (flows on h1, full compile s, 1-rule update s)."""
    rnd = random.Random(1)
    vports = [VPort(f"v{i}", "d", "s", f"02:01:00:{i >> 8 & 255:02x}:{i & 255:02x}:01",
                    f"10.1.{i >> 8}.{i & 255}", "h1" if i % 100 == 0 else "h2",
                    policygroups=frozenset({f"g{i // 100}"})) for i in range(10_000)]
    groups = [PolicyGroup(f"g{g}", "d") for g in range(100)]
    acl = [AclRule(f"r{k}", "d", 1 + k, Endpoint("policygroup", f"g{rnd.randrange(100)}"),
                   Endpoint("policygroup", f"g{rnd.randrange(100)}"), "tcp", str(1000 + k % 50),
                   action="deny" if k % 10 == 9 else "allow") for k in range(1000)]
    local = [LocalPort(v.id, 10 + i) for i, v in enumerate(v for v in vports if v.host == "h1")]
    view = HostView.of("h1", 1, [DOMAIN], [SUBNET], vports, HOSTS, local, groups, acl)
    fc = FlowCompiler()
    t = time.perf_counter()
    fc.update(view)
    full = time.perf_counter() - t
    changed = list(acl)
    changed[500] = AclRule(**{**vars(acl[500]), "dst_ports": "2000-2999"})
    gc.freeze()  # as the agent should after its first compile (see docs/pipeline.md)
    one = float("inf")
    for target in (view.replace(acl_rules=changed), view) * 2:  # best of 4, the machine is shared
        t = time.perf_counter()
        fc.update(target)
        one = min(one, time.perf_counter() - t)
    gc.unfreeze()
    return len(fc.flows), full, one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-big", action="store_true", help="skip the 1,000-rule compile")
    args = parser.parse_args()
    print(f"K = {K} port rules web -> app; policy flows on the host (target < 3(N+M+K))\n")
    print("| N = M | allow, one port each | allow, ranges | allow/deny alternating | allow/deny, overlapping "
          "| split hosts | 3(N+M+K) |")
    print("|---|---|---|---|---|---|---|")
    for n in (10, 100, 1000):
        row = [policy_flows(n, n, v) for v in ("ports", "ranges", "interleaved", "interleaved-overlap", "split")]
        print(f"| {n} | " + " | ".join(str(c) for c in row) + f" | {3 * (2 * n + K)} |")
    if not args.no_big:
        flows, full, one = big_compile()
        print(f"\n1,000 rules, 100 groups x 100 members, host with 100 local members: {flows} flows, "
              f"full compile {full:.2f} s, one rule changed {one * 1000:.0f} ms")


if __name__ == "__main__":
    main()
