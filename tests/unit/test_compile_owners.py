"""The owner vocabulary of the compiler is one with the cookie kinds: each owner's flows carry only the
cookie kinds its OwnerTag declares, and every cookie kind has an owner (except the reserved ones)."""

from __future__ import annotations

import dataclasses

from nuage_ryu.vrs.compile import OWNER_KINDS, UNOWNED_COOKIE_KINDS, FlowCompiler, OwnerTag
from nuage_ryu.vrs.cookies import CookieKind, kind_of
from nuage_ryu.vrs.view import Endpoint, ExternalUplink, PublishedPort
from tests.unit.test_policy_rules import APP, THREE_TIER, WEB, rule, views

# Every kind of owner on one host: local and remote vports, two present domains and an absent one,
# subnets, rules between groups, to a zone and to a CIDR, an audit rule.
RULES = [*THREE_TIER, rule("to-zone", 30, WEB, Endpoint("zone", "zA2"), "udp", "53"),
         rule("from-cidr", 40, Endpoint("cidr", cidr="10.0.2.0/24"), APP, "icmp"),
         # an audit rule (docs/policy.md): its domain gets audit tables (owner acl-audit)
         dataclasses.replace(rule("try-deny", 50, WEB, APP, "tcp", "22", "deny"), enforce=False, log=True)]


def h1_view():
    """... plus external connectivity (docs/external.md): an uplink, egress NAT in the domains, and a
    local vport with a floating IP and a published port."""
    view = views(RULES)["h1"]
    local = sorted(v.id for v in view.vports.values() if v.host == "h1")[0]
    return view.replace(
        external=ExternalUplink("192.0.2.11", "0a:00:00:00:00:0b", 90),
        domains=[dataclasses.replace(d, egress_nat=True) for d in view.domains.values()],
        vports=[dataclasses.replace(v, floating_ip="192.0.2.200", published=(PublishedPort("tcp", 8080, 80),))
                if v.id == local else v for v in view.vports.values()])


def compiled_h1() -> FlowCompiler:
    fc = FlowCompiler()
    fc.update(h1_view())
    return fc


def test_every_cookie_kind_has_an_owner_tag_but_the_reserved_ones():
    declared = {kind for tag in OwnerTag for kind in tag.cookie_kinds}
    assert all(tag.cookie_kinds for tag in OwnerTag)
    assert declared == set(CookieKind) - UNOWNED_COOKIE_KINDS
    assert not declared & UNOWNED_COOKIE_KINDS


def test_every_owner_tag_is_compiled_by_exactly_one_owner_kind():
    tags = [tag for kind in OWNER_KINDS for tag in kind.tags]
    assert sorted(tags) == sorted(OwnerTag)


def test_owner_kinds_enumerate_only_their_own_tags():
    view = h1_view()
    for kind in OWNER_KINDS:
        owners = kind.inputs(view, view.present_domains())
        assert owners and {owner[0] for owner in owners} <= set(kind.tags), kind.tags


def test_flows_carry_only_the_cookie_kinds_of_their_owner():
    fc = compiled_h1()
    seen: dict[OwnerTag, set[CookieKind]] = {}
    for owner in fc.recompiled:  # the first update compiles every owner
        tag = OwnerTag(owner[0])
        kinds = {kind_of(flow.cookie) for flow in fc.owned_by(owner)}
        assert kinds <= tag.cookie_kinds, (owner, kinds)
        seen.setdefault(tag, set()).update(kinds)
    # ... and each declared kind is really written by its owner tag on such a host.
    assert {tag: tag.cookie_kinds for tag in OwnerTag} == seen


def test_every_owned_cookie_kind_is_on_the_bridge():
    kinds = {kind_of(flow.cookie) for flow in compiled_h1().desired()}
    assert kinds == set(CookieKind) - UNOWNED_COOKIE_KINDS
