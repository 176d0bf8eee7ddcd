"""DirectoryStore against a real ovsdb-server: several writers, listeners, agent writes, schema upgrades."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import pytest

from nuage_ryu.db.server import OvsdbServer, prepare_db
from nuage_ryu.directory import validate
from nuage_ryu.directory.errors import Conflict, NotFound
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.testing import wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@pytest.fixture
def server(tmp_path):
    srv = OvsdbServer(str(tmp_path / "directory.db"), schema_path(), str(tmp_path / "db.sock"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def stores(server):
    """Two stores = two API processes writing to one database."""
    made = []
    for _ in range(2):
        st = DirectoryStore(server.remote)
        st.start()
        made.append(st)
    yield made
    for st in made:
        st.stop()


def create(store, kind, parent, body):
    change, state = store.apply(lambda s: validate.plan_create(s, kind, parent, body))
    return state.get(*change.result)


def tree(store):
    ent = create(store, "enterprise", None, {"name": "acme"})
    dom = create(store, "domain", ent.id, {"name": "prod"})
    zone = create(store, "zone", dom.id, {"name": "web"})
    sub = create(store, "subnet", zone.id, {"name": "front", "cidr": "10.0.1.0/24"})
    return ent, dom, zone, sub


def raced(planner_factory, stores):
    """Run one planner per store so that both plan on the same state before either commits."""
    barrier = threading.Barrier(len(stores), timeout=10)
    results: list = [None] * len(stores)

    def run(i, store):
        first = [True]
        plan = planner_factory(i)

        def planner(state):
            change = plan(state)
            if first[0]:  # only the first attempt waits; re-plans run freely
                first[0] = False
                barrier.wait()
            return change

        try:
            results[i] = store.apply(planner)
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, st)) for i, st in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def wait_synced(stores, kind, count):
    for st in stores:
        wait_until(lambda st=st: len(st.snapshot().table(kind)) == count, 5, what=f"{count} {kind}s")


def test_concurrent_writers_pick_distinct_addresses(stores):
    _ent, _dom, _zone, sub = tree(stores[0])
    wait_synced(stores, "subnet", 1)
    results = raced(lambda i: lambda s: validate.plan_create(s, "vport", sub.id, {"name": f"v{i}"}), stores)
    assert not [r for r in results if isinstance(r, Exception)], results
    ips = {r[1].vports[r[0].result[1]].ip for r in results}
    assert len(ips) == 2  # both planned 10.0.1.2; the loser re-planned after the index conflict


def test_many_writers_many_vports(stores):
    _ent, _dom, _zone, sub = tree(stores[0])
    wait_synced(stores, "subnet", 1)
    errors = []

    def worker(store, base):
        for i in range(15):
            try:
                create(store, "vport", sub.id, {"name": f"w{base}-{i}"})
            except Exception as exc:  # collected
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(stores[i % 2], i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    wait_synced(stores, "vport", 60)
    vports = stores[1].snapshot().vports.values()
    assert len({v.ip for v in vports}) == 60 and len({v.mac for v in vports}) == 60
    # delete some, then the incrementally kept per-subnet index must equal one built from scratch
    doomed = sorted(v.id for v in vports)[:10]
    for vid in doomed:
        stores[0].apply(lambda s, vid=vid: validate.plan_delete(s, "vport", vid))
    wait_synced(stores, "vport", 50)
    for st in stores:
        snap = st.snapshot()
        fresh = DirectoryState.from_objects([o for kind in KINDS for o in snap.table(kind).values()])
        kept, built = snap.subnet_ports(sub.id), fresh.subnet_ports(sub.id)
        assert (set(kept.names), set(kept.ips)) == (built.names, built.ips)
        assert dict(kept.vports) == dict(built.vports)
        assert all(snap.mac_in_use(v.mac) for v in snap.vports.values()) and len(snap._macs) == 50


def test_overlapping_subnets_from_two_writers_only_one_wins(stores):
    _ent, dom, zone, _sub = tree(stores[0])
    z2 = create(stores[0], "zone", dom.id, {"name": "db"})
    wait_synced(stores, "zone", 2)
    zones = [zone.id, z2.id]
    results = raced(lambda i: lambda s: validate.plan_create(
        s, "subnet", zones[i], {"name": f"s{i}", "cidr": ["10.5.0.0/16", "10.5.2.0/24"][i]}), stores)
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], Conflict), results
    assert "overlaps" in failures[0].message


def test_duplicate_name_race_is_a_clear_409(stores):
    results = raced(lambda i: lambda s: validate.plan_create(s, "enterprise", None, {"name": "same"}), stores)
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], Conflict)
    assert "enterprise" in failures[0].message and "name" in failures[0].message


def test_listener_called_from_idl_thread_for_remote_changes(stores):
    seen = []
    done = threading.Event()

    def listener(state):
        seen.append((threading.current_thread().name, set(e.name for e in state.enterprises.values())))
        if any("remote" in names for _t, names in seen):
            done.set()

    stores[0].add_listener(listener)
    create(stores[1], "enterprise", None, {"name": "remote"})
    assert done.wait(5)
    assert all(thread == "directory-idl" for thread, _ in seen)


def test_agent_side_writes(stores):
    st = stores[0]
    _ent, _dom, _zone, sub = tree(st)
    host_id = st.register_host("node-1", "192.0.2.1", "1")
    assert st.register_host("node-1", "192.0.2.2", 0xA2) == host_id  # upsert; int dpid as os-ken gives it
    host = st.snapshot().hosts[host_id]
    assert (host.tunnel_ip, host.datapath_id, host.connected) == ("192.0.2.2", "00000000000000a2", True)
    first_seen = host.last_seen
    st.set_host_connected("node-1", False)
    assert st.snapshot().hosts[host_id].connected is False
    wait_until(lambda: __import__("time").time() * 1000 > first_seen + 2, 1)
    st.heartbeat("node-1")
    assert st.snapshot().hosts[host_id].last_seen > first_seen
    with pytest.raises(NotFound):
        st.heartbeat("nobody")
    vp = create(st, "vport", sub.id, {"name": "c1", "host": "node-1"})
    st.set_vport_status(vp.id, "up")

    def other_sees_up():
        seen = stores[1].snapshot().vports.get(vp.id)
        return seen is not None and seen.status == "up"

    wait_until(other_sees_up, 5, what="the other store to see status up")
    assert [v.id for v in stores[1].snapshot().vports_on_host("node-1")] == [vp.id]


def test_schema_upgrade_converts_and_keeps_data(tmp_path):
    with open(schema_path()) as f:
        schema = json.load(f)
    old = json.loads(json.dumps(schema))
    old["version"] = "0.9.0"
    del old["tables"]["Enterprise"]["columns"]["description"]
    old_path = tmp_path / "old.ovsschema"
    old_path.write_text(json.dumps(old))
    db = str(tmp_path / "directory.db")
    assert prepare_db(db, str(old_path)) == "created"
    subprocess.run(["ovsdb-tool", "transact", db,
                    '["Nuage_Directory",{"op":"insert","table":"Enterprise","row":{"name":"kept"}}]'],
                   check=True, capture_output=True)
    assert prepare_db(db, schema_path()) == "converted"
    assert prepare_db(db, schema_path()) == "unchanged"
    srv = OvsdbServer(db, schema_path(), str(tmp_path / "db.sock"))
    srv.start()
    try:
        st = DirectoryStore(srv.remote)
        st.start()
        try:
            assert [e.name for e in st.snapshot().enterprises.values()] == ["kept"]
        finally:
            st.stop()
    finally:
        srv.stop()
