"""Shadowed-rule analysis (nuage_ryu/directory/shadow.py) on in-memory directories."""

import pytest

from nuage_ryu.directory import shadow
from nuage_ryu.directory.model import ACL, ANY, DirectoryState, Domain, Endpoint, PolicyGroup, Subnet, Zone

Z1, Z2, S1, S2, S3, PG, PG2 = "z1", "z2", "s1", "s2", "s3", "pg1", "pg2"


def state(*acls: ACL) -> DirectoryState:
    return DirectoryState.from_objects([
        Domain("d1", "e1", "prod", 1, 1, "02:00:00:00:00:01"),
        Domain("d2", "e1", "dev", 2, 2, "02:00:00:00:00:02"),
        Zone(Z1, "d1", "web"), Zone(Z2, "d1", "db"),
        Subnet(S1, Z1, "d1", "front", "10.0.1.0/24", "10.0.1.1"),
        Subnet(S2, Z1, "d1", "back", "10.0.2.0/24", "10.0.2.1"),
        Subnet(S3, Z2, "d1", "data", "10.9.0.0/16", "10.9.0.1"),
        PolicyGroup(PG, "d1", "www"), PolicyGroup(PG2, "d1", "api"),
        *acls,
    ])


def rule(rid, priority, src=ANY, dst=ANY, domain="d1", **kw) -> ACL:
    return ACL(rid, domain, priority, src, dst, **kw)


def cidr(text):
    return Endpoint("cidr", cidr=text)


def ep(etype, eid):
    return Endpoint(etype, id=eid)


ST = state()


@pytest.mark.parametrize("outer,inner,expected", [
    (ANY, ANY, True),
    (ANY, ep("policygroup", PG), True),
    (ANY, cidr("10.0.0.0/8"), True),
    (ep("policygroup", PG), ANY, False),
    (cidr("0.0.0.0/0"), ANY, False),  # conservative: "any" is not claimed to be a prefix
    (ep("policygroup", PG), ep("policygroup", PG), True),
    (ep("policygroup", PG), ep("policygroup", PG2), False),
    (ep("zone", Z1), ep("zone", Z1), True),
    (ep("zone", Z1), ep("subnet", S1), True),  # a zone covers its own subnets
    (ep("zone", Z2), ep("subnet", S1), False),
    (ep("subnet", S1), ep("zone", Z1), False),
    (ep("subnet", S1), ep("subnet", S1), True),
    (ep("subnet", S1), ep("subnet", S2), False),
    (cidr("10.0.0.0/8"), cidr("10.0.1.0/24"), True),
    (cidr("10.0.1.0/24"), cidr("10.0.1.0/24"), True),
    (cidr("10.0.1.0/24"), cidr("10.0.0.0/8"), False),
    (cidr("10.0.1.0/24"), cidr("10.0.2.0/24"), False),
    (cidr("10.0.0.0/16"), ep("subnet", S1), True),  # a subnet's CIDR inside a CIDR endpoint
    (cidr("10.0.1.0/25"), ep("subnet", S1), False),
    (ep("subnet", S1), cidr("10.0.1.128/25"), True),  # subnets match by prefix, like CIDRs
    (ep("subnet", S1), cidr("10.0.0.0/16"), False),
    (cidr("10.0.0.0/8"), ep("zone", Z1), False),  # a zone's subnets change: not claimed
    (cidr("10.0.0.0/8"), ep("policygroup", PG), False),  # membership changes: not claimed
    (ep("zone", Z1), ep("policygroup", PG), False),
    (ep("subnet", "gone"), ep("subnet", "gone"), True),
    (cidr("10.0.0.0/8"), ep("subnet", "gone"), False),
])
def test_endpoint_covers(outer, inner, expected):
    assert shadow.endpoint_covers(ST, outer, inner) is expected


@pytest.mark.parametrize("outer,inner,expected", [
    ({}, {"protocol": "tcp", "dst_ports": "80"}, True),  # protocol any covers everything
    ({}, {"protocol": "47"}, True),
    ({"protocol": "tcp"}, {}, False),
    ({"protocol": "tcp"}, {"protocol": "tcp", "dst_ports": "80"}, True),
    ({"protocol": "tcp"}, {"protocol": "udp"}, False),
    ({"protocol": "tcp", "dst_ports": "80"}, {"protocol": "tcp"}, False),
    ({"protocol": "tcp", "dst_ports": "80"}, {"protocol": "tcp", "dst_ports": "80"}, True),
    ({"protocol": "tcp", "dst_ports": "1-1024"}, {"protocol": "tcp", "dst_ports": "80-443"}, True),
    ({"protocol": "tcp", "dst_ports": "1-1024"}, {"protocol": "tcp", "dst_ports": "1000-1025"}, False),
    ({"protocol": "tcp", "dst_ports": "80-90"}, {"protocol": "tcp", "dst_ports": "79"}, False),
    ({"protocol": "udp", "dst_ports": "53"}, {"protocol": "tcp", "dst_ports": "53"}, False),
    ({"protocol": "icmp"}, {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0}, True),
    ({"protocol": "icmp", "icmp_type": 8}, {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0}, True),
    ({"protocol": "icmp", "icmp_type": 8}, {"protocol": "icmp", "icmp_type": 0}, False),
    ({"protocol": "icmp", "icmp_type": 8}, {"protocol": "icmp"}, False),
    ({"protocol": "icmp", "icmp_type": 3, "icmp_code": 4},
     {"protocol": "icmp", "icmp_type": 3, "icmp_code": 4}, True),
    ({"protocol": "icmp", "icmp_type": 3, "icmp_code": 4}, {"protocol": "icmp", "icmp_type": 3}, False),
    ({"protocol": "icmp", "icmp_type": 3, "icmp_code": 4},
     {"protocol": "icmp", "icmp_type": 3, "icmp_code": 1}, False),
    ({"protocol": "47"}, {"protocol": "47"}, True),
    ({"protocol": "47"}, {"protocol": "50"}, False),
])
def test_service_covers(outer, inner, expected):
    assert shadow.service_covers(rule("e", 1, **outer), rule("r", 2, **inner)) is expected


def test_covers_needs_all_three_and_the_same_domain():
    e = rule("e", 1, ep("policygroup", PG), cidr("10.0.0.0/8"), protocol="tcp")
    assert shadow.covers(ST, e, rule("r", 2, ep("policygroup", PG), ep("subnet", S1), protocol="tcp",
                                      dst_ports="443"))
    assert not shadow.covers(ST, e, rule("r", 2, ep("policygroup", PG2), ep("subnet", S1), protocol="tcp"))
    assert not shadow.covers(ST, e, rule("r", 2, ep("policygroup", PG), cidr("11.0.0.0/8"), protocol="tcp"))
    assert not shadow.covers(ST, e, rule("r", 2, ep("policygroup", PG), ep("subnet", S1), protocol="udp"))
    assert not shadow.covers(ST, e, rule("r", 2, ep("policygroup", PG), ep("subnet", S1), domain="d2",
                                         protocol="tcp"))


def test_shadowed_rule_is_warned_with_its_earliest_shadowing_rule():
    broad = rule("broad", 10, protocol="tcp", action="deny")
    web = rule("web", 20, ep("policygroup", PG), ANY, protocol="tcp", dst_ports="80")
    also = rule("also", 30, ep("policygroup", PG), ANY, protocol="tcp")
    st = state(broad, web, also)
    warnings = shadow.shadow_warnings(st, "web")
    assert [(w["code"], w["rule"], w["by"]) for w in warnings] == [("shadowed", "web", "broad")]
    assert "priority 20" in warnings[0]["message"] and "decides deny instead of allow" in warnings[0]["message"]
    # 'also' is covered by 'broad' first (reported once, for the earliest) even though 'web' comes before
    assert [w["by"] for w in shadow.shadow_warnings(st, "also")] == ["broad"]


def test_a_rule_that_shadows_later_rules_warns_about_each_of_them():
    first = rule("first", 5, ANY, ep("zone", Z1), protocol="tcp")
    later1 = rule("later1", 20, ANY, ep("subnet", S1), protocol="tcp", dst_ports="22")
    later2 = rule("later2", 30, ep("policygroup", PG), ep("subnet", S2), protocol="tcp")
    other = rule("other", 40, ANY, ep("subnet", S3), protocol="tcp")  # another zone: not shadowed
    earlier = rule("earlier", 1, ANY, ep("subnet", S1), protocol="udp")  # comes first: not shadowed
    st = state(first, later1, later2, other, earlier)
    warnings = shadow.shadow_warnings(st, "first")
    assert [(w["rule"], w["by"]) for w in warnings] == [("later1", "first"), ("later2", "first")]
    assert "same action" in warnings[0]["message"]


def test_no_warnings_for_rules_that_can_match():
    st = state(rule("a", 10, ep("policygroup", PG), ANY, protocol="tcp", dst_ports="80"),
               rule("b", 20, ep("policygroup", PG), ANY, protocol="tcp", dst_ports="81"),
               rule("c", 30, ANY, ANY, protocol="udp"),
               rule("d", 10, domain="d2"))  # another domain's catch-all shadows nothing here
    for rid in "abc":
        assert shadow.shadow_warnings(st, rid) == []
    assert shadow.shadow_warnings(st, "unknown") == []

