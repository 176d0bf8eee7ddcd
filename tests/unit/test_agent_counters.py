"""Per-rule counters: cookies map back to rules/default actions; only the sender-side table counts."""

from nuage_ryu.agent.counters import COUNTED_TABLE, DEFAULT_RULE_ID, CounterIndex, CounterKey, aggregate
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.pipeline import EGRESS_POLICY
from nuage_ryu.vrs.view import AclRule, Domain, HostView


def view():
    return HostView.of("h1", 1, domains=[Domain("d1", 7, "02:00:00:00:00:01", "deny", 3)],
                       acl_rules=[AclRule("r1", "d1", 10, action="allow"), AclRule("r2", "d1", 20, action="deny")])


def test_sums_flows_of_a_rule_and_ignores_other_tables_and_cookies():
    index = CounterIndex(view())
    r1 = cookie_for(CookieKind.ACL_RULE, "r1")
    default = cookie_for(CookieKind.ACL_DEFAULT, "d1")
    out = aggregate(index, [
        (COUNTED_TABLE, r1, 3, 300),
        (COUNTED_TABLE, r1, 2, 200),                       # a rule may own several verdict flows
        (EGRESS_POLICY.number, r1, 5, 500),                # receiver side: not counted twice
        (COUNTED_TABLE, default, 4, 240),
        (COUNTED_TABLE, cookie_for(CookieKind.POLICY_MEMBER, "x"), 9, 900),  # clause flows: not verdicts
        (COUNTED_TABLE, 0x1234, 1, 1),                     # foreign cookie
    ])
    assert (out[CounterKey("d1", "r1", "allow")].packets, out[CounterKey("d1", "r1", "allow")].bytes) == (5, 500)
    assert out[CounterKey("d1", DEFAULT_RULE_ID, "deny")].packets == 4
    assert out[CounterKey("d1", "r2", "deny")].packets == 0  # known rule, no traffic: reported as 0


def test_empty_view_has_no_counters():
    assert aggregate(CounterIndex(None), [(COUNTED_TABLE, 1, 1, 1)]) == {}


def test_an_audit_rule_counts_what_it_would_decide_in_the_sender_audit_table():
    # docs/policy.md "Audit mode": the audit rule's verdict flow in INGRESS_AUDIT carries its cookie;
    # the enforcing rules' silent stops there carry the domain's ACL_AUDIT cookie and count nothing.
    from nuage_ryu.vrs.pipeline import EGRESS_AUDIT, INGRESS_AUDIT

    out = aggregate(CounterIndex(view()), [
        (INGRESS_AUDIT.number, cookie_for(CookieKind.ACL_RULE, "r2"), 7, 700),
        (INGRESS_AUDIT.number, cookie_for(CookieKind.ACL_AUDIT, "d1"), 9, 900),
        (EGRESS_AUDIT.number, cookie_for(CookieKind.ACL_RULE, "r2"), 5, 500),  # receiver side: not twice
    ])
    assert out[CounterKey("d1", "r2", "deny")].packets == 7
    assert out[CounterKey("d1", "r1", "allow")].packets == 0
