"""Bulk changes through the store's raw-insert path against a real ovsdb-server (store/insert_json.py,
store/echo.py): the writer's replica equals a fresh reader's, refusals leave nothing behind, races re-plan."""

from __future__ import annotations

import shutil
import uuid

import pytest

from nuage_ryu.directory import validate
from nuage_ryu.directory.errors import Conflict, ValidationError
from nuage_ryu.directory.model import KINDS
from nuage_ryu.directory.store import DirectoryStore
from nuage_ryu.directory.store.mirror import REPLICATED
from nuage_ryu.directory.testing import wait_until
from nuage_ryu.directory.validate import Change, Op, bulk
from tests.integration.test_directory_store import raced as raced_planners

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@pytest.fixture
def stores(server):
    """Two API stores (two API processes on one database)."""
    made = [DirectoryStore(server.remote, all_counters=True) for _ in range(2)]
    for st in made:
        st.start()
    yield made
    for st in made:
        st.stop()


def fresh_store(server) -> DirectoryStore:
    st = DirectoryStore(server.remote, all_counters=True)
    st.start()
    return st


def run_bulk(store, operations) -> bulk.BulkPlan:
    parsed = bulk.parse_bulk({"operations": operations})
    ids = [str(uuid.uuid4()) for _ in parsed]
    plans = []

    def planner(state):
        plans.append(bulk.plan_bulk(state, parsed, ids))
        return plans[-1].change

    store.apply(planner)
    return plans[-1]


def assert_same_replica(writer: DirectoryStore, reader: DirectoryStore) -> None:
    """Same model objects, and the same committed value in every column of every IDL row."""
    wait_until(lambda: all(dict(writer.snapshot().table(k)) == dict(reader.snapshot().table(k)) for k in KINDS),
               5, what="the writer's objects to equal a fresh reader's")
    wi, ri = writer._conn.idl, reader._conn.idl
    for table in REPLICATED:
        wrows, rrows = wi.tables[table].rows, ri.tables[table].rows
        assert set(wrows) == set(rrows), table
        for row_uuid, row in rrows.items():
            for column in ri.tables[table].columns:
                assert wrows[row_uuid]._data[column] == row._data[column], (table, column)


TREE = [
    {"action": "create", "kind": "enterprise", "ref": "e", "body": {"name": "acme", "description": "d"}},
    {"action": "create", "kind": "domain", "parent": "$e", "ref": "d",
     "body": {"name": "prod", "egress_nat": True, "log_default": True, "default_action": "allow"}},
    {"action": "create", "kind": "domain", "parent": "$e", "body": {"name": "dev", "vni": 4242}},
    {"action": "create", "kind": "zone", "parent": "$d", "ref": "z", "body": {"name": "web"}},
    {"action": "create", "kind": "subnet", "parent": "$z", "ref": "s",
     "body": {"name": "front", "cidr": "10.0.0.0/24", "description": "x"}},
    {"action": "create", "kind": "subnet", "parent": "$z", "ref": "s2",
     "body": {"name": "back", "cidr": "10.0.9.0/24"}},
    {"action": "create", "kind": "policygroup", "parent": "$d", "ref": "pg1", "body": {"name": "pg1"}},
    {"action": "create", "kind": "policygroup", "parent": "$d", "ref": "pg2", "body": {"name": "pg2"}},
    {"action": "create", "kind": "host", "body": {"name": "h1", "tunnel_ip": "192.0.2.1", "datapath_id": "a2"}},
    {"action": "create", "kind": "vport", "parent": "$s", "ref": "v1",
     "body": {"name": "v1", "host": "h1", "type": "vm", "policygroups": ["$pg2", "$pg1"],
              "external_ids": {"b": "2", "a": "1", "é": "\u4e2d"}, "ip": "10.0.0.77", "mac": "02:00:00:00:00:77",
              "port_mappings": [{"protocol": "tcp", "host_port": 8080, "container_port": 80},
                                {"protocol": "udp", "host_port": 5353, "container_port": 53}]}},
    {"action": "create", "kind": "vport", "parent": "$s", "ref": "v2",
     "body": {"name": "v2", "policygroups": ["$pg1"], "description": "one group"}},
    {"action": "create", "kind": "vport", "parent": "$s2", "body": {"name": "v3", "host": "h1"}},
    {"action": "create", "kind": "acl", "parent": "$d",
     "body": {"priority": 10, "source": {"type": "policygroup", "id": "$pg1"},
              "destination": {"type": "cidr", "cidr": "10.1.0.0/16"}, "protocol": "tcp", "dst_ports": "80-90",
              "log": True}},
    {"action": "create", "kind": "acl", "parent": "$d",
     "body": {"priority": 11, "source": {"type": "zone", "id": "$z"}, "destination": {"type": "subnet", "id": "$s"},
              "protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "stateful": False, "action": "deny",
              "enforce": False}},
    {"action": "create", "kind": "acl", "parent": "$d", "body": {"priority": 12, "source": {"type": "any"},
                                                                 "destination": {"type": "any"}}},
]


def test_after_a_bulk_of_every_kind_the_writers_replica_is_what_a_fresh_reader_sees(server, stores):
    writer = stores[0]
    taken = writer._conn.idl.own_inserts.taken
    plan = run_bulk(writer, TREE)
    # every new row (15 objects, 3 vport status rows) came back as sent and was not parsed again
    assert writer._conn.idl.own_inserts.taken - taken == len(TREE) + 3
    assert not writer._conn.idl.own_inserts
    reader = fresh_store(server)
    try:
        assert_same_replica(writer, reader)
        assert_same_replica(stores[1], reader)
        v1 = writer.snapshot().vports[plan.ids[9]]
        assert (v1.status, v1.host, len(v1.policygroups)) == ("down", "h1", 2)
    finally:
        reader.stop()


def test_rows_from_a_bulk_are_then_updated_moved_and_deleted_like_any_other(server, stores):
    """The lazily parsed replica rows go through python-ovs's update paths (verify, write, delete)."""
    writer = stores[0]
    plan = run_bulk(writer, TREE)
    ids = dict(zip((op.get("ref") for op in TREE), plan.ids, strict=True))
    state = writer.snapshot()
    more = [
        {"action": "update", "kind": "vport", "id": ids["v1"], "body": {"host": "h2", "policygroups": []}},
        {"action": "update", "kind": "vport", "id": ids["v2"], "body": {"external_ids": {"k": "v"}}},
        {"action": "update", "kind": "domain", "id": ids["d"], "body": {"default_action": "deny"}},
        {"action": "delete", "kind": "policygroup", "id": ids["pg2"]},
        {"action": "create", "kind": "subnet", "parent": ids["z"], "body": {"name": "third", "cidr": "10.0.5.0/24"}},
        {"action": "create", "kind": "vport", "parent": ids["s"], "body": {"name": "v4", "host": "h2"}},
    ]
    run_bulk(writer, more)
    writer.set_vport_status(ids["v2"], "up")
    writer.apply(lambda s: validate.plan_delete(s, "subnet", ids["s2"], True))
    after = writer.snapshot()
    # the new subnet verified and bumped the epoch of a row inserted by the first bulk (a lazy row)
    assert after.domains[ids["d"]].subnet_epoch == state.domains[ids["d"]].subnet_epoch + 1
    assert after.vports[ids["v1"]].host == "h2" and after.vports[ids["v2"]].status == "up"
    reader = fresh_store(server)
    try:
        assert_same_replica(writer, reader)
    finally:
        reader.stop()


def test_a_bulk_the_database_refuses_leaves_nothing_and_no_address_taken(server, stores):
    """All or nothing at the database too: an insert the schema's index refuses (a name taken, which
    the planner would have caught: here the change is built by hand) fails the whole transaction."""
    writer = stores[0]
    ids = dict(zip((op.get("ref") for op in TREE), run_bulk(writer, TREE).ids, strict=True))
    before = writer.snapshot()
    taken = before.vports[ids["v1"]]
    bad = validate.plan_create(before, "vport", ids["s"], {"name": "fresh"})
    dup = validate.plan_create(before, "vport", ids["s"], {"name": "other", "ip": "10.0.0.200"})
    dup.ops[0].fields["name"] = taken.name  # the (subnet, name) index refuses it
    change = Change(ops=bad.ops + dup.ops)
    with pytest.raises(Conflict, match="already has this"):
        writer.apply(lambda s: change)
    assert not writer._conn.idl.own_inserts
    names = {v.name for v in before.vports.values()}
    for st in stores:  # the other stores may still be receiving the tree; none ever holds a refused row
        wait_until(lambda st=st: {v.name for v in st.snapshot().vports.values()} == names, 10)
    reader = fresh_store(server)
    try:
        assert_same_replica(writer, reader)
    finally:
        reader.stop()
    # the address the refused change had planned is free: the next create gets it
    again = writer.apply(lambda s: validate.plan_create(s, "vport", ids["s"], {"name": "fresh"}))
    assert again[1].vports[again[0].result[1]].ip == bad.ops[0].fields["ip"]


def test_a_value_the_schema_refuses_is_a_422_before_anything_is_sent(stores):
    writer = stores[0]
    ids = dict(zip((op.get("ref") for op in TREE), run_bulk(writer, TREE).ids, strict=True))
    state = writer.snapshot()
    ok = validate.plan_create(state, "vport", ids["s"], {"name": "ok"})
    bad = validate.plan_create(state, "vport", ids["s"], {"name": "bad", "ip": "10.0.0.201"})
    bad.ops[0].fields["type"] = "router"  # not in the column's enum
    with pytest.raises(ValidationError, match="'type'"):
        writer.apply(lambda s: Change(ops=ok.ops + bad.ops))
    nul = validate.plan_create(state, "vport", ids["s"], {"name": "nul", "ip": "10.0.0.202"})
    nul.ops[0].fields["external_ids"] = {"k": "a\x00b"}
    with pytest.raises(ValidationError, match="NUL"):
        writer.apply(lambda s: Change(ops=ok.ops + nul.ops))
    assert not writer._conn.idl.own_inserts
    assert {v.name for v in writer.snapshot().vports.values()} == {v.name for v in state.vports.values()}


def raced(stores, make_ops):
    """Each store plans its bulk on the same state before either commits; later attempts run freely."""
    attempts = [0] * len(stores)

    def planner_factory(i):
        parsed = bulk.parse_bulk({"operations": make_ops(i)})
        ids = [str(uuid.uuid4()) for _ in parsed]

        def plan(state):
            attempts[i] += 1
            return bulk.plan_bulk(state, parsed, ids).change
        return plan

    return raced_planners(planner_factory, stores, barrier_timeout=20, join_timeout=60), attempts


def test_two_bulks_racing_for_the_same_addresses_both_land_and_the_loser_re_plans(server, stores):
    """Both plan the same automatic addresses; the database refuses the second (unique index on the
    domain's addresses): it re-plans on the fresh state with other addresses, its first attempt's
    expected rows are not taken for the second's."""
    ids = dict(zip((op.get("ref") for op in TREE), run_bulk(stores[0], TREE).ids, strict=True))
    wait_until(lambda: ids["s2"] in stores[1].snapshot().subnets, 5)
    results, attempts = raced(stores, lambda i: [
        {"action": "create", "kind": "vport", "parent": ids["s2"], "body": {"name": f"r{i}-{k}"}} for k in range(60)])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(attempts)[0] == 1 and sorted(attempts)[1] >= 2, attempts
    reader = fresh_store(server)
    try:
        vports = [v for v in reader.snapshot().vports.values() if v.subnet == ids["s2"]]
        assert len(vports) == 121 and len({v.ip for v in vports}) == 121 and len({v.mac for v in vports}) == 121
        for st in stores:
            assert not st._conn.idl.own_inserts
            assert_same_replica(st, reader)
    finally:
        reader.stop()


def test_two_bulks_adding_subnets_to_one_domain_re_plan_on_its_epoch(server, stores):
    """Subnet creates verify-and-increment the domain's subnet_epoch: the second commit fails its
    verify (TRY_AGAIN), re-plans, and then sees the other bulk's subnet: overlapping is a 409,
    disjoint lands."""
    ids = dict(zip((op.get("ref") for op in TREE), run_bulk(stores[0], TREE).ids, strict=True))
    wait_until(lambda: ids["z"] in stores[1].snapshot().zones, 5)
    cidrs = [["10.7.0.0/24", "10.7.1.0/24"], ["10.8.0.0/24", "10.7.1.0/25"]]
    results, attempts = raced(stores, lambda i: [
        {"action": "create", "kind": "subnet", "parent": ids["z"], "ref": f"s{k}",
         "body": {"name": f"race{i}-{k}", "cidr": cidrs[i][k]}} for k in range(2)] + [
        {"action": "create", "kind": "vport", "parent": "$s0", "body": {"name": "first"}}])
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], Conflict) and "overlaps" in failures[0].message
    assert max(attempts) >= 2
    winner = stores[[i for i, r in enumerate(results) if not isinstance(r, Exception)][0]]
    names = {s.name for s in winner.snapshot().subnets.values()}
    assert len([n for n in names if n.startswith("race")]) == 2
    reader = fresh_store(server)
    try:
        for st in stores:
            assert_same_replica(st, reader)
    finally:
        reader.stop()


def test_a_row_that_comes_back_different_is_parsed_the_ordinary_way(server, stores):
    """An expected row whose JSON differs from the update's (an attempt re-planned with other
    values) is not taken: the mirror reads the row the database sent."""
    writer = stores[0]
    ids = dict(zip((op.get("ref") for op in TREE), run_bulk(writer, TREE).ids, strict=True))
    own = writer._conn.idl.own_inserts
    real_expect = own.expect

    def expect_other(table, row_uuid, row, known):
        if table == "VPort":  # as if an earlier attempt had planned another name for this id
            row = {**row, "name": "planned-elsewhere"}
        real_expect(table, row_uuid, row, known)

    own.expect = expect_other
    try:
        taken = own.taken
        change, state = writer.apply(lambda s: Change(ops=[Op("insert", "vport", str(uuid.uuid4()), {
            **validate.plan_create(s, "vport", ids["s"], {"name": "sent"}).ops[0].fields})]))
    finally:
        del own.expect
    assert own.taken == taken + 1  # its status row only
    assert {v.name for v in state.vports.values()} >= {"sent"}
    reader = fresh_store(server)
    try:
        assert_same_replica(writer, reader)
    finally:
        reader.stop()
