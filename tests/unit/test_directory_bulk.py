"""Bulk planning on in-memory states: each operation validated as its single call, one merged change."""

import uuid

import pytest

from nuage_ryu.directory import validate as v
from nuage_ryu.directory.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ValidationError
from nuage_ryu.directory.model import DirectoryState
from nuage_ryu.directory.validate import bulk


def new_ids(ops):
    return [str(uuid.uuid4()) for _ in ops]


def plan(state, raw, **kw):
    ops = bulk.parse_bulk({"operations": raw})
    return bulk.plan_bulk(state, ops, new_ids(ops), **kw)


def run(state, raw, **kw):
    """Plan and apply in memory (what the store commits as one transaction)."""
    p = plan(state, raw, **kw)
    return v.apply_change(state, p.change), p


@pytest.fixture
def base():
    state, p = run(DirectoryState(), [
        {"action": "create", "kind": "enterprise", "ref": "e", "body": {"name": "acme"}},
        {"action": "create", "kind": "domain", "parent": "$e", "ref": "d", "body": {"name": "prod"}},
        {"action": "create", "kind": "zone", "parent": "$d", "ref": "z", "body": {"name": "web"}},
        {"action": "create", "kind": "subnet", "parent": "$z", "ref": "s",
         "body": {"name": "front", "cidr": "10.0.1.0/24"}},
        {"action": "create", "kind": "policygroup", "parent": "$d", "ref": "pg", "body": {"name": "www"}},
    ])
    ent, dom, zone, sub, pg = p.ids
    return state, {"ent": ent, "dom": dom, "zone": zone, "sub": sub, "pg": pg}


def vports(sub, n, start=0, **body):
    return [{"action": "create", "kind": "vport", "parent": sub, "body": {"name": f"v{i}", **body}}
            for i in range(start, start + n)]


def test_refs_chain_a_whole_tree_in_one_change(base):
    state, ids = base
    assert state.subnets[ids["sub"]].domain == ids["dom"]
    assert state.policygroups[ids["pg"]].domain == ids["dom"]


def test_many_vports_in_one_subnet_get_distinct_addresses_and_macs(base):
    state, ids = base
    state, p = run(state, vports(ids["sub"], 200))
    ports = [state.vports[i] for i in p.ids]
    assert len({x.ip for x in ports}) == 200 and len({x.mac for x in ports}) == 200
    assert ports[0].ip == "10.0.1.2" and ports[-1].ip == "10.0.1.201"
    assert len(p.change.ops) == 200


def test_a_bad_operation_at_the_end_fails_all_and_names_its_index(base):
    state, ids = base
    raw = ([{"action": "create", "kind": "subnet", "parent": ids["zone"], "ref": "big",
             "body": {"name": "big", "cidr": "10.1.0.0/16"}}] + vports("$big", 498)
           + [{"action": "create", "kind": "vport", "parent": "$big", "body": {"name": "v3"}}])
    with pytest.raises(Conflict) as info:
        plan(state, raw)
    assert info.value.operation == 499
    assert "operation 499 (create vport 'v3')" in info.value.message and "already exists" in info.value.message


def test_an_exhausted_subnet_within_the_bulk_is_a_conflict(base):
    state, ids = base
    raw = [{"action": "create", "kind": "subnet", "parent": ids["zone"], "ref": "tiny",
            "body": {"name": "tiny", "cidr": "10.0.8.0/29"}}] + vports("$tiny", 6)
    with pytest.raises(Conflict, match="operation 6 .*exhausted"):  # a /29 holds the gateway and 5 vports
        plan(state, raw)
    state, p = run(state, raw[:6])
    assert len(state.vports_of_subnet(p.ids[0])) == 5


def test_later_operations_see_earlier_ones(base):
    state, ids = base
    state, p = run(state, [
        {"action": "create", "kind": "policygroup", "parent": ids["dom"], "ref": "app", "body": {"name": "app"}},
        {"action": "create", "kind": "vport", "parent": ids["sub"], "ref": "a1",
         "body": {"name": "a1", "policygroups": ["$app", ids["pg"]]}},
        {"action": "create", "kind": "acl", "parent": ids["dom"], "ref": "r",
         "body": {"priority": 100, "source": {"type": "policygroup", "id": "$app"},
                  "destination": {"type": "subnet", "id": ids["sub"]}}},
        {"action": "update", "kind": "acl", "id": "$r", "body": {"stateful": False}},
        {"action": "update", "kind": "vport", "id": "$a1", "body": {"host": "node-1"}},
    ])
    app, a1, rule = p.ids[0], p.ids[1], p.ids[2]
    assert state.vports[a1].policygroups == {app, ids["pg"]} and state.vports[a1].host == "node-1"
    assert state.acls[rule].source.id == app and state.acls[rule].stateful is False
    # create + update of the same object: one insert each
    assert sorted(op.action for op in p.change.ops) == ["insert"] * 3


def test_create_then_delete_writes_nothing(base):
    state, ids = base
    p = plan(state, [{"action": "create", "kind": "zone", "parent": ids["dom"], "ref": "tmp", "body": {"name": "t"}},
                     {"action": "delete", "kind": "zone", "id": "$tmp"}])
    assert p.change.ops == []


def test_delete_then_reuse_a_name_and_an_address(base):
    state, ids = base
    state, p = run(state, vports(ids["sub"], 1, ip="10.0.1.50"))
    (vid,) = p.ids
    state, p = run(state, [{"action": "delete", "kind": "vport", "id": vid}]
                   + vports(ids["sub"], 1, ip="10.0.1.50"))
    assert vid not in state.vports and state.vports[p.ids[1]].ip == "10.0.1.50"


def test_cascade_delete_and_dependents_as_in_single_calls(base):
    state, ids = base
    with pytest.raises(Conflict, match="operation 0 .*still has"):
        plan(state, [{"action": "delete", "kind": "domain", "id": ids["dom"]}])
    state, _p = run(state, [{"action": "delete", "kind": "domain", "id": ids["dom"], "cascade": True}])
    assert not state.zones and not state.subnets and not state.policygroups


def test_reference_errors(base):
    state, ids = base
    with pytest.raises(BadRequest, match="unknown reference '\\$nope'"):
        plan(state, vports("$nope", 1))
    with pytest.raises(ValidationError, match="is a zone, not a subnet"):
        plan(state, [{"action": "create", "kind": "zone", "parent": ids["dom"], "ref": "z", "body": {"name": "z"}}]
             + vports("$z", 1))
    with pytest.raises(BadRequest, match="already used"):
        bulk.parse_bulk({"operations": [{"action": "create", "kind": "enterprise", "ref": "x", "body": {"name": "a"}},
                                        {"action": "create", "kind": "enterprise", "ref": "x",
                                         "body": {"name": "b"}}]})
    with pytest.raises(NotFound, match="operation 0"):
        plan(state, [{"action": "update", "kind": "zone", "id": str(uuid.uuid4()), "body": {"name": "q"}}])


@pytest.mark.parametrize("body,match", [
    ([], "body must be"),
    ({"operations": []}, "non-empty"),
    ({"operations": [{"action": "make", "kind": "zone"}]}, "action must be"),
    ({"operations": [{"action": "create", "kind": "token", "body": {}}]}, "kind must be"),
    ({"operations": [{"action": "delete", "kind": "zone", "id": "x", "body": {}}]}, "unexpected body"),
    ({"operations": [{"action": "create", "kind": "zone", "body": {"name": "z"}}]}, "parent must be"),
    ({"operations": [{"action": "delete", "kind": "zone", "id": "x", "cascade": "yes"}]}, "cascade"),
])
def test_malformed_bulk_bodies_are_400(body, match):
    with pytest.raises(BadRequest, match=match):
        bulk.parse_bulk(body)


def test_size_limit():
    ops = [{"action": "create", "kind": "enterprise", "body": {"name": f"e{i}"}} for i in range(11)]
    with pytest.raises(PayloadTooLarge, match="at most 10"):
        bulk.parse_bulk({"operations": ops}, max_operations=10)


def test_authorize_sees_the_working_state(base):
    state, ids = base
    seen = []

    def authorize(s, op, parent, obj):
        seen.append((op.index, parent, obj, parent is None or s.get("domain", parent) is not None
                     or s.get("zone", parent) is not None))

    plan(state, [{"action": "create", "kind": "zone", "parent": ids["dom"], "ref": "z", "body": {"name": "z2"}},
                 {"action": "create", "kind": "subnet", "parent": "$z", "body": {"name": "s", "cidr": "10.0.2.0/24"}}],
         authorize=authorize)
    assert [s[3] for s in seen] == [True, True] and seen[1][1] != "$z"


def test_guards_dedup_and_skip_new_rows(base):
    state, ids = base
    p = plan(state, [{"action": "create", "kind": "subnet", "parent": ids["zone"],
                      "body": {"name": f"s{i}", "cidr": f"10.0.{10 + i}.0/24"}} for i in range(3)])
    assert p.change.guards == [("domain", ids["dom"], "subnet_epoch")]
    p = plan(state, [
        {"action": "create", "kind": "domain", "parent": ids["ent"], "ref": "d2", "body": {"name": "d2"}},
        {"action": "create", "kind": "zone", "parent": "$d2", "ref": "z", "body": {"name": "z"}},
        {"action": "create", "kind": "subnet", "parent": "$z", "body": {"name": "s", "cidr": "10.0.1.0/24"}}])
    assert p.change.guards == []


def test_overlap_within_the_bulk_is_refused(base):
    state, ids = base
    with pytest.raises(Conflict, match="operation 1 .*overlaps"):
        plan(state, [{"action": "create", "kind": "subnet", "parent": ids["zone"],
                      "body": {"name": "a", "cidr": "10.0.20.0/24"}},
                     {"action": "create", "kind": "subnet", "parent": ids["zone"],
                      "body": {"name": "b", "cidr": "10.0.20.128/25"}}])
