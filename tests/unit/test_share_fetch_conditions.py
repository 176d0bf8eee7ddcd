"""The share fetch's pure parts: which fetched rows a monitor condition keeps, which values it names."""

from nuage_ryu.directory import scope
from nuage_ryu.directory.store.share_fetch import BY_CLAUSE, FETCHED, NO_INITIAL, ShareFetch, matches

D1, D2, V = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", \
    "33333333-3333-3333-3333-333333333333"


def test_a_row_is_kept_only_when_the_condition_in_force_selects_it():
    cond = scope.monitor_conditions(scope.Scope(frozenset({"h1"}), frozenset({D1})))["VPort"]
    assert matches(cond, V, {"host": "h1", "domain": ["uuid", D2]})
    assert matches(cond, V, {"host": "h9", "domain": ["uuid", D1]})
    assert not matches(cond, V, {"host": "h9", "domain": ["uuid", D2]})  # a domain narrowed away
    assert not matches([False], V, {"host": "h1"})
    assert matches([["_uuid", "==", ["uuid", V]]], V, {})


def test_condition_values_and_domains():
    cond = scope.monitor_conditions(scope.Scope(frozenset({"h1", "h2"}), frozenset({D1, D2})))["VPort"]
    assert scope.condition_values(cond, "host") == {"h1", "h2"}
    assert scope.condition_domains(cond, "domain") == {D1, D2}


def test_the_monitor_request_asks_no_initial_rows_of_fetched_and_empty_tables():
    fetch = ShareFetch(["h1"])
    requests = {"VPort": [{"columns": ["host"], "where": [["host", "==", "h1"]]}],
                "VPortStatus": [{"columns": ["host"], "where": [["host", "==", "h1"]]}],
                "ApiToken": [{"columns": ["name"], "where": [False]}],
                "Domain": [{"columns": ["name"], "where": [["_uuid", "==", ["uuid", D1]]]}]}
    fetch.monitor_requested(requests)
    for table in (*FETCHED, "ApiToken", "Domain"):  # Domain: fetched by clause (BY_CLAUSE)
        assert requests[table][0]["select"] == NO_INITIAL
    assert "Domain" in BY_CLAUSE
    fetch.enabled = False  # without the index: only the empty tables
    again = {"VPort": [{"columns": ["host"], "where": [["host", "==", "h1"]]}],
             "ApiToken": [{"columns": ["name"], "where": [False]}]}
    fetch.monitor_requested(again)
    assert "select" not in again["VPort"][0] and again["ApiToken"][0]["select"] == NO_INITIAL
