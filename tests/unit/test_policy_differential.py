"""Differential test of the whole policy path: random systems and policies are compiled for every
host, random packets (with their replies and continuations) go through the simulated bridges, and the
result must be what the reference evaluator of docs/policy.md (``nuage_ryu.vrs.reference``) says.

The same is checked after random sequences of changes (rules added, removed, edited; memberships;
vports moving host; the default action) applied incrementally with ``FlowCompiler.update``, whose
tables must also equal a full compile. Deterministic in CI (derandomized, fixed example counts);
``NUAGE_HYPOTHESIS_PROFILE=deep`` runs ten times more.
"""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuage_ryu.vrs import reference as R
from nuage_ryu.vrs.compile import FlowCompiler, compile_host
from nuage_ryu.vrs.simulator import Overlay, TableSimulator, ovs_identity
from tests.policy_scenarios import (
    ACK,
    HOST_NAMES,
    HOSTS,
    TUN,
    Case,
    Scenario,
    cases,
    delivered,
    describe,
    has_reply,
    reference_packet,
    rules_for,
    run_case,
    scenarios,
)

PROFILES = {"ci": 1, "deep": 10}
SCALE = PROFILES[os.environ.get("NUAGE_HYPOTHESIS_PROFILE", "ci")]
PACKETS_PER_POLICY = 15
FULL_EXAMPLES = 150 * SCALE
CHANGE_EXAMPLES = 40 * SCALE
STEPS, PACKETS_PER_STEP = 5, 6
COMMON = dict(derandomize=True, database=None, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def overlay(sims: dict[str, TableSimulator]) -> Overlay:
    net = Overlay({h.name: TUN for h in HOSTS})
    for h in HOSTS:
        net.add_host(h.name, h.tunnel_ip, sims[h.name])
    return net


def compiled(sc: Scenario) -> Overlay:
    return overlay({h: TableSimulator(compile_host(v)) for h, v in sc.views().items()})


def test_compiled_policies_give_the_reference_verdict_for_random_packets():
    counted = {"policies": 0, "cases": 0, "logged": 0, "audited": 0}

    @settings(max_examples=FULL_EXAMPLES, **COMMON)
    @given(st.data())
    def check(data):
        sc = data.draw(scenarios())
        net = compiled(sc)
        for _ in range(PACKETS_PER_POLICY):
            case = data.draw(cases(sc))
            problems = run_case(net, sc, case)
            assert not problems, "\n".join(problems) + "\n" + describe(sc)
            first = R.decide(sc.policy(sc.vport(case.src).domain_id), reference_packet(sc, case))
            counted["logged"] += any(r.enforced for r in first.records)
            counted["audited"] += first.audit is not None
        counted["policies"] += 1
        counted["cases"] += PACKETS_PER_POLICY

    check()
    print(f"differential: {counted['policies']} policies, {counted['cases']} packet x policy cases "
          f"({counted['logged']} with a logged decision, {counted['audited']} with an audit rule's would-be one)")
    assert counted["cases"] >= 2000
    # The verdict records are checked often enough to mean something (docs/policy.md).
    assert counted["logged"] >= 200 and counted["audited"] >= 100, counted


@st.composite
def changes(draw, sc: Scenario, step: int) -> Scenario:
    """One change a user (or a vport's life) makes to the system."""
    kind = draw(st.sampled_from(("rule+", "rule+", "rule-", "rule~", "member", "move", "default", "log-default")))
    rules = list(sc.rules)
    if kind == "rule+" or (kind in ("rule-", "rule~") and not rules):
        domain = draw(st.sampled_from([d.id for d in sc.domains]))
        used = {r.priority for r in rules if r.domain_id == domain}
        prio = draw(st.integers(1, 300).filter(lambda p: p not in used))
        rules.append(draw(rules_for(sc, domain, f"{domain}c{step}", prio)))
    elif kind == "rule-":
        rules.pop(draw(st.integers(0, len(rules) - 1)))
    elif kind == "rule~":
        i = draw(st.integers(0, len(rules) - 1))
        old = rules[i]
        rules[i] = draw(rules_for(sc, old.domain_id, old.id, old.priority))
    elif kind == "member":
        vport = draw(st.sampled_from(sc.vports))
        groups = [g.id for g in sc.groups if g.domain_id == vport.domain_id]
        new = dataclasses.replace(vport, policygroups=frozenset(draw(st.sets(st.sampled_from(groups), max_size=2))))
        return dataclasses.replace(sc, vports=tuple(new if v.id == vport.id else v for v in sc.vports))
    elif kind == "move":
        vport = draw(st.sampled_from(sc.vports))
        new = dataclasses.replace(vport, host=draw(st.sampled_from(HOST_NAMES)))
        return dataclasses.replace(sc, vports=tuple(new if v.id == vport.id else v for v in sc.vports))
    elif kind == "log-default":
        domain = draw(st.sampled_from(sc.domains))
        flipped = dataclasses.replace(domain, log_default=not domain.log_default)
        return dataclasses.replace(sc, domains=tuple(flipped if d.id == domain.id else d for d in sc.domains))
    else:
        domain = draw(st.sampled_from(sc.domains))
        flipped = dataclasses.replace(domain, default_action="allow" if domain.default_action == "deny" else "deny")
        return dataclasses.replace(sc, domains=tuple(flipped if d.id == domain.id else d for d in sc.domains))
    return dataclasses.replace(sc, rules=tuple(rules))


def established_connection(net: Overlay, sc: Scenario, case: Case) -> Case | None:
    """Open the case's connection (request and reply) if the reference lets it be established."""
    policy = sc.policy(sc.vport(case.src).domain_id)
    pkt = reference_packet(sc, case)
    first = R.decide(policy, pkt)
    if not (first.allowed and first.stateful and has_reply(pkt)):
        return None
    assert run_case(net, sc, case) == []
    return case


def connection_continues(net: Overlay, sc: Scenario, case: Case) -> bool:
    """Do the next packets of an established connection (both directions) still pass?"""
    src, dst = sc.vport(case.src), sc.vport(case.dst)
    pkt = reference_packet(sc, case)
    return delivered(net, sc, src, dst, pkt, ACK) and delivered(net, sc, dst, src, pkt.reply(), ACK)


def test_incrementally_updated_policies_equal_a_full_compile_and_give_the_reference_verdict():
    counted = {"steps": 0, "cases": 0, "kept": 0}

    @settings(max_examples=CHANGE_EXAMPLES, **COMMON)
    @given(st.data())
    def check(data):
        sc = data.draw(scenarios(max_rules=5))
        compilers = {h: FlowCompiler() for h in HOST_NAMES}
        sims = {h: TableSimulator() for h in HOST_NAMES}
        for h, view in sc.views().items():
            sims[h].apply(compilers[h].update(view))
        net = overlay(sims)
        for step in range(STEPS):
            before = sc
            kept = established_connection(net, sc, data.draw(cases(sc)))
            sc = data.draw(changes(sc, step))
            for h, view in sc.views().items():
                sims[h].apply(compilers[h].update(view))
            if kept is not None and all(before.vport(v).host == sc.vport(v).host for v in (kept.src, kept.dst)):
                # docs/policy.md: a rule change never interrupts a connection already committed
                assert connection_continues(net, sc, kept), f"{kept} after step {step}\n{describe(sc)}"
                counted["kept"] += 1
                full = compile_host(view)
                assert {ovs_identity(f): f for f in sims[h].flows()} == {ovs_identity(f): f for f in full}, \
                    f"{h} after step {step}\n{describe(sc)}"
                assert compilers[h].conflicts == []
            for _ in range(PACKETS_PER_STEP):
                case = data.draw(cases(sc))
                problems = run_case(net, sc, case)
                assert not problems, f"after step {step}: " + "\n".join(problems) + "\n" + describe(sc)
            counted["steps"] += 1
            counted["cases"] += PACKETS_PER_STEP

    check()
    print(f"differential, incremental: {counted['steps']} change steps, {counted['cases']} packet x policy cases, "
          f"{counted['kept']} established connections kept across a change")
    assert counted["cases"] >= 1000
