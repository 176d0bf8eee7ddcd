"""The reference evaluator says what docs/policy.md says, and names the deciding rule."""

from __future__ import annotations

import pytest

from nuage_ryu.vrs.reference import (
    ICMP,
    TCP,
    UDP,
    DomainPolicy,
    Packet,
    UndefinedCase,
    decide,
    decide_continuation,
    decide_reply,
)
from tests.unit.test_policy_rules import ANY, APP, DB, THREE_TIER, WEB, Endpoint, rule, views

IP = {"a1": "10.0.1.10", "a2": "10.0.1.11", "a3": "10.0.2.10", "a4": "10.0.1.12", "a5": "10.0.2.11"}


def policy(rules, default="deny") -> DomainPolicy:
    return DomainPolicy.from_view(views(rules, default)["h1"], "A")


def tcp(src, dst, dport, sport=40000) -> Packet:
    return Packet(IP[src], IP[dst], TCP, sport, dport)


def test_three_tier_example_of_the_docs():
    p = policy(THREE_TIER)
    assert decide(p, tcp("a1", "a2", 8080)).deciding == "web-app"
    assert decide(p, tcp("a2", "a3", 5432)).deciding == "app-db"
    for denied in (tcp("a2", "a1", 8080), tcp("a1", "a3", 5432), tcp("a1", "a2", 80)):
        d = decide(p, denied)
        assert not d.allowed and d.deciding == "default" and d.rule is None


def test_first_match_by_priority_lower_number_first_whatever_the_list_order():
    rules = [rule("allow", 20, WEB, APP, "tcp", "8080"), rule("deny", 10, WEB, APP, "tcp", action="deny")]
    d = decide(policy(rules), tcp("a1", "a2", 8080))
    assert (d.verdict, d.deciding) == ("deny", "deny")


def test_every_endpoint_type_including_slash_0_and_slash_32():
    cases = {
        Endpoint("zone", "zA"): ("a1", "a3"),  # zA holds A1 only: a1 yes, a3 (A2) no
        Endpoint("subnet", "A2"): ("a3", "a1"),
        Endpoint("cidr", cidr="0.0.0.0/0"): ("a5", None),
        Endpoint("cidr", cidr="10.0.2.11/32"): ("a5", "a3"),
        WEB: ("a4", "a2"),
        ANY: ("a2", None),
    }
    for ep, (inside, outside) in cases.items():
        p = policy([rule("r", 10, ep, ANY, "tcp", "22")])
        assert decide(p, tcp(inside, "a1" if inside != "a1" else "a2", 22)).deciding == "r", ep
        if outside:
            assert decide(p, tcp(outside, "a4", 22)).deciding == "default", ep


def test_protocols_ports_and_icmp_type_and_code():
    p = policy([rule("ping", 10, ANY, ANY, "icmp", icmp_type=8, icmp_code=0),
                rule("dns", 20, ANY, ANY, "udp", "53"), rule("range", 30, ANY, ANY, "tcp", "8000-8100"),
                rule("gre", 40, ANY, ANY, 47), rule("gre-as-text", 50, ANY, ANY, "50")])
    assert decide(p, Packet(IP["a1"], IP["a2"], ICMP, icmp_type=8)).deciding == "ping"
    assert decide(p, Packet(IP["a1"], IP["a2"], ICMP, icmp_type=8, icmp_code=1)).deciding == "default"
    assert decide(p, Packet(IP["a1"], IP["a2"], UDP, 5000, 53)).deciding == "dns"
    assert decide(p, Packet(IP["a1"], IP["a2"], TCP, 5000, 53)).deciding == "default"
    assert [decide(p, tcp("a1", "a2", port)).deciding for port in (7999, 8000, 8100, 8101)] == \
        ["default", "range", "range", "default"]
    assert decide(p, Packet(IP["a1"], IP["a2"], 47)).deciding == "gre"
    assert decide(p, Packet(IP["a1"], IP["a2"], 50)).deciding == "gre-as-text"


def test_stateful_allow_lets_the_reply_through_and_stateless_needs_a_reverse_rule():
    request = tcp("a1", "a2", 8080)
    stateful = policy([rule("web-app", 10, WEB, APP, "tcp", "8080")])
    back = decide_reply(stateful, request)
    assert back.allowed and back.established and back.deciding == "web-app"
    assert decide_continuation(stateful, request).established
    stateless = policy([rule("web-app", 10, WEB, APP, "tcp", "8080", stateful=False)])
    assert not decide_reply(stateless, request).allowed
    with_reverse = policy([rule("web-app", 10, WEB, APP, "tcp", "8080", stateful=False),
                           rule("app-web", 11, APP, WEB, "tcp", "1024-65535", stateful=False)])
    back = decide_reply(with_reverse, request)
    assert back.allowed and not back.established and back.deciding == "app-web"


def test_default_allow_is_stateful_even_against_a_deny_for_the_reverse_direction():
    p = policy([rule("db-no", 10, DB, WEB, action="deny")], default="allow")
    request = tcp("a1", "a3", 5432)
    first = decide(p, request)
    assert first.allowed and first.stateful and first.deciding == "default"
    assert decide_reply(p, request).allowed
    assert not decide(p, request.reply()).allowed  # on its own, the reverse packet is denied


def test_an_icmp_echo_request_is_answered_by_an_echo_reply():
    ping = Packet(IP["a1"], IP["a2"], ICMP, icmp_type=8, icmp_code=0)
    assert ping.reply() == Packet(IP["a2"], IP["a1"], ICMP, icmp_type=0, icmp_code=0)
    with pytest.raises(UndefinedCase):
        Packet(IP["a1"], IP["a2"], ICMP, icmp_type=3).reply()


def test_a_membership_in_a_group_of_another_domain_does_not_count():
    import dataclasses

    from tests.unit.test_policy_rules import PGS, members
    from tests.unit.vrs_fixtures import view_for

    vports = [dataclasses.replace(v, policygroups=frozenset({"bweb"})) if v.id == "a1" else v for v in members()]
    view = view_for("h1", vports=vports, default_action="deny", policygroups=PGS,
                    acl_rules=[rule("b", 10, Endpoint("policygroup", "bweb"), ANY)])
    assert decide(DomainPolicy.from_view(view, "A"), tcp("a1", "a2", 80)).deciding == "default"
