"""An agent's share of the directory: the scope computed from what it holds, and its monitor conditions."""

from types import SimpleNamespace as NS

from nuage_ryu.directory.scope import Scope, acknowledged_domains, monitor_conditions, scope_of

DOMAINS = {"d1": NS(enterprise="e1"), "d2": NS(enterprise="e1"), "d3": NS(enterprise="e2")}


def vp(host, domain):
    return NS(host=host, domain=domain)


def test_a_host_without_vports_follows_only_itself():
    scope = scope_of(["h1"], [vp("h2", "d1")], DOMAINS)
    assert scope == Scope(frozenset({"h1"}), frozenset(), frozenset(), frozenset({"h1"}))


def test_domains_of_own_vports_are_local_and_their_carriers_are_followed():
    vports = [vp("h1", "d1"), vp("h2", "d1"), vp("h3", "d2"), vp("h4", "d3")]
    scope = scope_of(["h1"], vports, DOMAINS)
    assert scope.domains == {"d1"}
    assert scope.carriers == {"h1", "h2"}
    assert scope.enterprises == {"e1"}


def test_central_mode_scopes_to_the_union_of_its_hosts():
    vports = [vp("h1", "d1"), vp("h3", "d3"), vp("h4", "d3"), vp("h5", "d2")]
    scope = scope_of(["h1", "h3"], vports, DOMAINS)
    assert scope.domains == {"d1", "d3"}
    assert scope.carriers == {"h1", "h3", "h4"}


def test_conditions_ask_for_own_vports_first_then_the_local_domains():
    empty = monitor_conditions(scope_of(["h1"], [], DOMAINS))
    assert empty["VPort"] == [["host", "==", "h1"]]
    assert empty["Domain"] == [False] and empty["ACL"] == [False]
    cond = monitor_conditions(scope_of(["h1"], [vp("h1", "d2"), vp("h1", "d1")], DOMAINS))
    assert cond["VPort"] == [["host", "==", "h1"], ["domain", "==", ["uuid", "d1"]],
                             ["domain", "==", ["uuid", "d2"]]]
    assert cond["ACL"] == [["domain", "==", ["uuid", "d1"]], ["domain", "==", ["uuid", "d2"]]]
    assert cond["Domain"] == [["_uuid", "==", ["uuid", "d1"]], ["_uuid", "==", ["uuid", "d2"]]]


def test_tokens_and_other_hosts_private_rows_are_never_asked_for():
    cond = monitor_conditions(scope_of(["h1"], [vp("h1", "d1"), vp("h2", "d1")], DOMAINS))
    assert cond["ApiToken"] == [False]
    assert cond["HostCounters"] == [["host", "==", "h1"]]
    assert cond["Host"] == [["name", "==", "h1"], ["name", "==", "h2"]]


def test_a_domain_is_complete_once_every_domain_table_acknowledged_it():
    both = monitor_conditions(scope_of(["h1"], [vp("h1", "d1"), vp("h1", "d2")], DOMAINS))
    one = monitor_conditions(scope_of(["h1"], [vp("h1", "d1")], DOMAINS))
    assert acknowledged_domains(both) == {"d1", "d2"}
    # the ACL condition naming d2 is not acknowledged yet: d2 is not complete
    assert acknowledged_domains(dict(both, ACL=one["ACL"])) == {"d1"}
    assert acknowledged_domains(monitor_conditions(scope_of(["h1"], [], DOMAINS))) == frozenset()
