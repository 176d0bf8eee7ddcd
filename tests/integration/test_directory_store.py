"""DirectoryStore against a real ovsdb-server: several writers, listeners, agent writes, schema upgrades."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from nuage_ryu.db.server import OvsdbServer, prepare_db
from nuage_ryu.directory import validate
from nuage_ryu.directory.errors import Conflict, NotFound, Unavailable, ValidationError
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.store.transactions import UNCERTAIN_GRACE_S
from nuage_ryu.directory.store.verdicts import VerdictFeed
from nuage_ryu.directory.testing import wait_until
from tests.schema_helpers import current_schema, old_database

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


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


def raced(planner_factory, stores, barrier_timeout: float = 10, join_timeout: float = 30):
    """Run one planner per store so that both plan on the same state before either commits."""
    barrier = threading.Barrier(len(stores), timeout=barrier_timeout)
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
        t.join(join_timeout)
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


def test_a_write_queued_behind_a_write_in_doubt_is_answered_by_its_own_deadline(server):
    """While one write waits for a database that stopped answering (its outcome in doubt, as in a
    Raft leader change), the next write of the same store gets a 503 at its own deadline instead
    of waiting for the first one's grace; once the database answers again the first one commits,
    once."""
    st = DirectoryStore(server.remote, write_timeout=1.0)
    st.start()
    results: dict = {}
    try:
        ent = create(st, "enterprise", None, {"name": "acme"})
        lock = st._conn.lock

        def lock_held() -> bool:
            if lock.acquire(blocking=False):
                lock.release()
                return False
            return True

        def in_doubt() -> None:
            try:
                results["domain"] = create(st, "domain", ent.id, {"name": "prod"})
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                results["error"] = exc

        os.kill(server.pid, signal.SIGSTOP)
        first = threading.Thread(target=in_doubt)
        first.start()
        wait_until(lock_held, 5, what="the first write to hold the store's lock")
        start = time.monotonic()
        with pytest.raises(Unavailable, match="busy"):
            create(st, "domain", ent.id, {"name": "dev"})
        assert time.monotonic() - start < UNCERTAIN_GRACE_S / 2  # its own 1 s deadline, not the grace
        assert first.is_alive()  # still waiting for the database: in doubt, not answered 503
    finally:
        os.kill(server.pid, signal.SIGCONT)
    first.join(UNCERTAIN_GRACE_S + 10)
    try:
        assert "error" not in results, results.get("error")
        names = [d.name for d in st.snapshot().domains.values()]
        assert names == ["prod"] and results["domain"].name == "prod"
    finally:
        st.stop()


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


@pytest.fixture
def api_and_agents(server):
    """The API's store (replicates every host's counters) and two agents' stores (only their own)."""
    made = [DirectoryStore(server.remote, all_counters=True), DirectoryStore(server.remote),
            DirectoryStore(server.remote)]
    for st in made:
        st.start()
    yield made
    for st in made:
        st.stop()


def rules_of(store, acl_id):
    return store.counters().of_rule(acl_id)


def test_counters_of_two_hosts_are_summed_and_deleted_rules_ignored(api_and_agents):
    api, agent1, agent2 = api_and_agents
    _ent, dom, _zone, _sub = tree(api)
    web = create(api, "acl", dom.id, {"priority": 10, "protocol": "tcp", "dst_ports": "80"})
    ssh = create(api, "acl", dom.id, {"priority": 20, "protocol": "tcp", "dst_ports": "22"})
    for agent, name in ((agent1, "node-1"), (agent2, "node-2")):
        agent.register_host(name, None, None)
        wait_until(lambda agent=agent: ssh.id in agent.snapshot().acls, 5, what="the agent to see the rules")
    never = "00000000-0000-0000-0000-00000000dead"
    assert agent1.report_counters("node-1", {web.id: (10, 1000), ssh.id: (1, 60)}, {dom.id: (3, 180)})
    assert not agent1.report_counters("node-1", {web.id: (10, 1000), ssh.id: (1, 60)}, {dom.id: (3, 180)})
    assert agent2.report_counters("node-2", {web.id: (5, 500), never: (7, 700)}, {never: (1, 1)})

    def summed():
        return rules_of(api, web.id) == {"packets": 15, "bytes": 1500, "by_host": {
            "node-1": {"packets": 10, "bytes": 1000}, "node-2": {"packets": 5, "bytes": 500}}}

    wait_until(summed, 5, what="the API store to see both hosts' counters")
    assert api.counters().of_default(dom.id)["by_host"] == {"node-1": {"packets": 3, "bytes": 180}}
    assert set(api.counters().of_host("node-2").rules) == {web.id}  # the unknown id was not stored
    # each agent replicates only its own host's report, not every host's
    assert [r.host for r in agent1.counters().reports.values()] == ["node-1"]
    assert [r.host for r in agent2.counters().reports.values()] == ["node-2"]

    # a rule deleted while agent2 still reports it: dropped, the rest of the batch is stored
    api.apply(lambda s: validate.plan_delete(s, "acl", ssh.id))
    assert agent2.report_counters("node-2", {web.id: (6, 600), ssh.id: (2, 120)}, {})
    wait_until(lambda: rules_of(api, web.id)["packets"] == 16, 5, what="node-2's new total")
    assert ssh.id not in api.counters().of_host("node-2").rules
    # the database removed the deleted rule from node-1's report too (weak reference)
    wait_until(lambda: ssh.id not in api.counters().of_host("node-1").rules, 5, what="node-1's entry to go")
    assert rules_of(api, ssh.id) == {"packets": 0, "bytes": 0, "by_host": {}}

    # a restarted agent (fresh store, its row already exists) reports totals that restarted from zero
    agent1.stop()
    restarted = DirectoryStore(agent1.remote)
    restarted.start()
    try:
        assert restarted.report_counters("node-1", {web.id: (2, 200)}, {})
    finally:
        restarted.stop()
    wait_until(lambda: rules_of(api, web.id)["packets"] == 8, 5, what="node-1's total to go down")
    assert api.counters().of_default(dom.id)["by_host"] == {}  # node-1's complete report has no default now

    # deleting a host deletes its counters (the row is owned by the Host row)
    host2 = api.snapshot().host_by_name("node-2")
    api.apply(lambda s: validate.plan_delete(s, "host", host2.id))
    wait_until(lambda: rules_of(api, web.id)["by_host"].keys() == {"node-1"}, 5, what="node-2's counters to go")


def test_report_counters_refuses_bad_input_and_unknown_hosts(api_and_agents):
    _api, agent, _other = api_and_agents
    with pytest.raises(NotFound):
        agent.report_counters("nobody", {}, {})
    agent.register_host("node-1", None, None)
    for rules in ({"x": (-1, 0)}, {"x": (1,)}, {"x": ("1", 2)}, {"x": (True, 2)}):
        with pytest.raises(ValidationError):
            agent.report_counters("node-1", rules, {})
    assert agent.counters().of_host("node-1") is None  # nothing was written


def test_counter_reports_never_make_rest_writes_replan(api_and_agents):
    """Agents report in a loop while the API updates the same rules: every REST write commits on its
    first attempt (no verify on anything the reports touch), and no report fails."""
    api, agent1, agent2 = api_and_agents
    _ent, dom, _zone, _sub = tree(api)
    rules = [create(api, "acl", dom.id, {"priority": 10 + i}) for i in range(5)]
    for agent, name in ((agent1, "node-1"), (agent2, "node-2")):
        agent.register_host(name, None, None)
        wait_until(lambda agent=agent: len(agent.snapshot().acls) == 5, 5, what="the agent to see the rules")
    stop = threading.Event()
    errors: list = []
    reports = [0, 0]

    def report(i, agent, name):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if agent.report_counters(name, {r.id: (n, 100 * n) for r in rules}, {dom.id: (n, n)}):
                    reports[i] += 1
            except Exception as exc:  # collected
                errors.append(exc)

    threads = [threading.Thread(target=report, args=(0, agent1, "node-1")),
               threading.Thread(target=report, args=(1, agent2, "node-2"))]
    for t in threads:
        t.start()
    attempts = []
    try:
        wait_until(lambda: min(reports) >= 5, 10, what="both agents to be reporting")
        for i in range(40):
            planned = [0]

            def plan(state, i=i, planned=planned):
                planned[0] += 1
                return validate.plan_update(state, "acl", rules[i % 5].id, {"description": f"edit {i}"})

            api.apply(plan)
            attempts.append(planned[0])
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    assert min(reports) >= 5
    assert attempts == [1] * 40


def test_schema_upgrade_converts_and_keeps_data(tmp_path):
    old = current_schema()
    old["version"] = "0.9.0"
    del old["tables"]["Enterprise"]["columns"]["description"]
    db, _ = old_database(tmp_path, old)
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


def test_database_from_before_counters_is_converted_and_takes_reports(tmp_path):
    old = current_schema()
    old["version"] = "1.0.0"  # the schema before HostCounters existed
    del old["tables"]["HostCounters"]
    del old["tables"]["Host"]["columns"]["counters"]
    db, _ = old_database(tmp_path, old)
    subprocess.run(["ovsdb-tool", "transact", db,
                    '["Nuage_Directory",{"op":"insert","table":"Host","row":{"name":"node-1"}}]'],
                   check=True, capture_output=True)
    srv = OvsdbServer(db, schema_path(), str(tmp_path / "db.sock"))
    srv.start()  # converts
    st = DirectoryStore(srv.remote, all_counters=True)
    try:
        st.start()
        _ent, dom, _zone, _sub = tree(st)
        assert st.report_counters("node-1", {}, {dom.id: (4, 240)})
        assert st.counters().of_default(dom.id)["by_host"] == {"node-1": {"packets": 4, "bytes": 240}}
    finally:
        st.stop()
        srv.stop()


def test_a_host_from_before_agent_versions_is_converted_and_takes_its_agents_version(tmp_path):
    old = current_schema()
    old["version"] = "1.3.0"  # the schema before Host.agent_version
    del old["tables"]["Host"]["columns"]["agent_version"]
    db, _ = old_database(tmp_path, old)
    subprocess.run(["ovsdb-tool", "transact", db,
                    '["Nuage_Directory",{"op":"insert","table":"Host","row":{"name":"node-1","tunnel_ip":"192.0.2.1"}}]'],
                   check=True, capture_output=True)
    srv = OvsdbServer(db, schema_path(), str(tmp_path / "db.sock"))
    srv.start()  # converts
    st = DirectoryStore(srv.remote)
    try:
        st.start()
        host = st.snapshot().host_by_name("node-1")
        assert (host.tunnel_ip, host.agent_version) == ("192.0.2.1", "")
        st.register_host("node-1", "192.0.2.1", None, agent_version="1.4.0.dev0")
        wait_until(lambda: st.snapshot().host_by_name("node-1").agent_version == "1.4.0.dev0", 10,
                   what="the agent's version in the host row")
    finally:
        st.stop()
        srv.stop()


def test_rules_and_domains_from_before_verdict_logs_are_converted_enforced_and_not_logged(tmp_path):
    """Schema 1.4.0 adds ACL.log, ACL.enforce, Domain.log_default and the Verdict table (docs/policy.md):
    a rule written before them is converted to an enforced, unlogged rule (enforce stored as an empty
    set = true), its domain's default action unlogged, and records can be stored at once."""
    old = current_schema()
    old["version"] = "1.3.0"
    del old["tables"]["ACL"]["columns"]["log"]
    del old["tables"]["ACL"]["columns"]["enforce"]
    del old["tables"]["Domain"]["columns"]["log_default"]
    del old["tables"]["Verdict"]
    db, _ = old_database(tmp_path, old)
    ops = [{"op": "insert", "table": "Enterprise", "uuid-name": "e", "row": {"name": "e"}},
           {"op": "insert", "table": "Domain", "uuid-name": "d",
            "row": {"enterprise": ["named-uuid", "e"], "name": "d", "vni": 7, "ct_zone": 7,
                    "default_action": "deny", "router_mac": "02:00:00:00:00:07"}},
           {"op": "insert", "table": "ACL", "uuid-name": "a",
            "row": {"domain": ["named-uuid", "d"], "priority": 10, "src_type": "any", "dst_type": "any",
                    "protocol": "any", "action": "deny", "stateful": True}}]
    out = subprocess.run(["ovsdb-tool", "transact", db, json.dumps(["Nuage_Directory", *ops])],
                         check=True, capture_output=True, text=True).stdout
    _ent, dom, acl = (r["uuid"][1] for r in json.loads(out))
    srv = OvsdbServer(db, schema_path(), str(tmp_path / "db.sock"))
    srv.start()  # converts to 1.4.0
    feed = VerdictFeed()
    st = DirectoryStore(srv.remote, all_counters=True, verdict_feed=feed)
    try:
        st.start()
        rule, domain = st.snapshot().acls[acl], st.snapshot().domains[dom]
        assert (rule.action, rule.log, rule.enforce, domain.log_default) == ("deny", False, True, False)
        st.register_host("h1", "192.0.2.1", None)
        st.insert_verdicts("h1", [{"domain_id": dom, "rule_id": acl, "verdict": "deny", "epoch": 1.0}])
        wait_until(lambda: feed.read(None, 10, lambda r: True)["records"], 10, what="the record in the feed")
        assert feed.read(None, 10, lambda r: True)["records"][0]["host"] == "h1"
        assert st.verdict_rows() == 1
        st.trim_verdicts(0)
        wait_until(lambda: st.verdict_rows() == 0, 10, what="the trim")
    finally:
        st.stop()
        srv.stop()
