"""A scoped DirectoryStore (a VRS agent's) against a real ovsdb-server: it follows only its hosts' share.

The REST side is a full store (``api``); each agent is a store scoped to its host(s). What an
agent holds is checked on its snapshots, and "nothing was sent" on its IDL's change counter
and on how often its listeners ran.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import pytest

from nuage_ryu.db.server import OvsdbServer
from nuage_ryu.directory import validate
from nuage_ryu.directory.errors import ValidationError
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.testing import wait_until
from tests.schema_helpers import current_schema, old_database

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@pytest.fixture
def agents(server):
    made = []

    def make(*hosts):
        st = DirectoryStore(server.remote, scope_hosts=hosts)
        st.start()
        made.append(st)
        return st

    yield make
    for st in made:
        st.stop()


def create(store, kind, parent, body):
    change, state = store.apply(lambda s: validate.plan_create(s, kind, parent, body))
    return state.get(*change.result)


def delete(store, kind, obj_id):
    store.apply(lambda s: validate.plan_delete(s, kind, obj_id))


def domain_tree(api, ent, name, cidr):
    """A domain with a zone, a subnet, a policy group and a rule; returns (domain, subnet, group, rule)."""
    dom = create(api, "domain", ent.id, {"name": name})
    zone = create(api, "zone", dom.id, {"name": "z"})
    sub = create(api, "subnet", zone.id, {"name": "s", "cidr": cidr})
    group = create(api, "policygroup", dom.id, {"name": "web"})
    rule = create(api, "acl", dom.id, {"priority": 10, "source": {"type": "policygroup", "id": group.id}})
    return dom, sub, group, rule


@pytest.fixture
def two_domains(api):
    ent = create(api, "enterprise", None, {"name": "acme"})
    for name, ip in (("h1", "192.0.2.1"), ("h2", "192.0.2.2"), ("h3", "192.0.2.3")):
        api.register_host(name, ip, None)
    return ent, domain_tree(api, ent, "blue", "10.1.0.0/24"), domain_tree(api, ent, "red", "10.2.0.0/24")


def holds_domain(state, dom, sub, group, rule) -> bool:
    return (dom.id in state.domains and sub.id in state.subnets and group.id in state.policygroups
            and rule.id in state.acls and sub.zone in state.zones)


def test_an_agent_receives_nothing_of_a_domain_it_has_no_vport_in(api, agents, two_domains):
    _ent, (blue, blue_sub, *_), (red, red_sub, *_rest) = two_domains
    create(api, "vport", blue_sub.id, {"name": "b1", "host": "h1"})
    red_vport = create(api, "vport", red_sub.id, {"name": "r2", "host": "h2"})
    agent = agents("h1")
    state = agent.snapshot()
    assert agent.scope_settled()
    assert set(state.domains) == {blue.id}
    assert red.id not in {s.domain for s in state.subnets.values()}
    assert red_vport.id not in state.vports
    assert {h.name for h in state.hosts.values()} == {"h1"}  # h2 carries only red
    assert state.tokens == {}
    # further red changes are not sent at all: the IDL's change counter moves by what one blue
    # change alone moves it by
    def blue_change(name):
        seqno = agent._conn.idl.change_seqno
        create(api, "vport", blue_sub.id, {"name": name, "host": "h1"})
        wait_until(lambda: any(v.name == name for v in agent.snapshot().vports.values()), 5,
                   what="the blue change to arrive")
        return seqno

    seqno = blue_change("reference")
    one_change = agent._conn.idl.change_seqno - seqno
    for i in range(5):
        create(api, "vport", red_sub.id, {"name": f"more{i}", "host": "h3"})
    create(api, "acl", red.id, {"priority": 20})
    seqno = blue_change("marker")
    assert agent._conn.idl.change_seqno - seqno == one_change  # the blue change, and nothing of red
    assert set(agent.snapshot().domains) == {blue.id}


def test_the_first_local_vport_brings_its_domain_and_the_last_one_takes_it_away(api, agents, two_domains):
    _ent, blue_objs, red_objs = two_domains
    red, red_sub = red_objs[0], red_objs[1]
    create(api, "vport", blue_objs[1].id, {"name": "b1", "host": "h1"})
    remote = create(api, "vport", red_sub.id, {"name": "r2", "host": "h2"})
    agent = agents("h1")
    assert not holds_domain(agent.snapshot(), *red_objs)
    # complete: every snapshot that calls red complete holds all of red's objects
    premature: list = []

    def check(state):
        if red.id in (state.complete_domains or ()) and not holds_domain(state, *red_objs):
            premature.append(state)

    agent.add_listener(check)
    local = create(api, "vport", red_sub.id, {"name": "r1", "host": "h1"})
    wait_until(lambda: holds_domain(agent.snapshot(), *red_objs) and agent.scope_settled(), 5,
               what="red's objects to arrive")
    state = agent.snapshot()
    assert red.id in state.complete_domains
    assert remote.id in state.vports  # the other vports of the domain ...
    assert "h2" in {h.name for h in state.hosts.values()}  # ... and the hosts carrying them
    assert premature == []
    delete(api, "vport", local.id)
    wait_until(lambda: red.id not in agent.snapshot().domains and agent.scope_settled(), 5,
               what="red to be dropped")
    state = agent.snapshot()
    assert not (set(state.acls) & {red_objs[3].id}) and remote.id not in state.vports
    assert red.id not in state.complete_domains
    assert "h2" not in {h.name for h in state.hosts.values()}


def test_a_new_domain_is_complete_only_after_its_condition_is_acknowledged(api, agents, two_domains):
    """The vport arrives first (by its host), its domain after the widened condition: the snapshots
    in between show the vport with its domain not complete yet."""
    _ent, _blue, red_objs = two_domains
    red, red_sub = red_objs[0], red_objs[1]
    agent = agents("h1")
    seen: list = []
    agent.add_listener(lambda state: seen.append(state))
    local = create(api, "vport", red_sub.id, {"name": "r1", "host": "h1"})
    wait_until(lambda: red.id in (agent.snapshot().complete_domains or ()), 5, what="red to be complete")
    with_vport = [s for s in seen if local.id in s.vports]
    assert with_vport and not with_vport[0].domain_complete(red.id)  # the vport came first
    assert all(holds_domain(s, *red_objs) for s in with_vport if s.domain_complete(red.id))


def test_central_mode_follows_the_union_of_its_hosts(api, agents, two_domains):
    _ent, (blue, blue_sub, *_), (red, red_sub, *_rest) = two_domains
    create(api, "vport", blue_sub.id, {"name": "b1", "host": "h1"})
    create(api, "vport", red_sub.id, {"name": "r2", "host": "h2"})
    create(api, "vport", red_sub.id, {"name": "r3", "host": "h3"})
    both = agents("h1", "h2")
    assert set(both.snapshot().domains) == {blue.id, red.id}
    assert {h.name for h in both.snapshot().hosts.values()} == {"h1", "h2", "h3"}
    only_h1 = agents("h1")
    assert set(only_h1.snapshot().domains) == {blue.id}


def test_another_hosts_heartbeat_and_vport_status_wake_no_agent(api, agents, server, two_domains):
    _ent, (_blue, blue_sub, *_), _red = two_domains
    mine = create(api, "vport", blue_sub.id, {"name": "b1", "host": "h1"})
    theirs = create(api, "vport", blue_sub.id, {"name": "b2", "host": "h2"})  # same domain
    agent = agents("h1")
    other = DirectoryStore(server.remote, scope_hosts=["h2"])
    other.start()
    try:
        calls = []
        agent.add_listener(lambda state: calls.append(state))

        def own_status(status):  # a write of its own: it arrives, and wakes the listener once
            seqno = agent._conn.idl.change_seqno
            agent.set_vport_status(mine.id, status)
            wait_until(lambda: calls and calls[-1] is agent.snapshot()
                       and agent.snapshot().vports[mine.id].status == status, 5, what="its own status")
            return agent._conn.idl.change_seqno - seqno

        one_status = own_status("up")
        idl_seqno, fired = agent._conn.idl.change_seqno, len(calls)
        for _ in range(5):
            other.heartbeat("h2")
        other.set_vport_status(theirs.id, "up")
        wait_until(lambda: api.snapshot().vports[theirs.id].status == "up", 5, what="the API to see it up")
        wait_until(lambda: api.snapshot().host_by_name("h2").last_seen > 0, 5)
        agent.heartbeat("h1")  # its own heartbeat arrives (one row) but wakes nothing
        assert own_status("down") == one_status
        assert agent._conn.idl.change_seqno - idl_seqno == one_status + 1  # + its own heartbeat's row
        assert len(calls) == fired + 1
        assert agent.snapshot().vports[theirs.id].status == "down"  # other vports' status: never sent
        assert agent.snapshot().host_by_name("h2").last_seen == 0  # other hosts' liveness: never sent
    finally:
        other.stop()


def test_an_agent_writes_its_own_liveness_and_the_api_shows_it(api, agents, two_domains):
    agent = agents("h1")
    agent.heartbeat("h1")
    agent.set_host_connected("h1", False)
    wait_until(lambda: api.snapshot().host_by_name("h1").connected is False, 5, what="h1 disconnected")
    assert api.snapshot().host_by_name("h2").connected is True
    with pytest.raises(ValidationError):
        agent.report_counters("h2", {}, {})  # not one of its hosts


def test_a_vport_moved_to_another_host_hands_its_status_row_over(api, agents, two_domains):
    _ent, (_blue, blue_sub, *_), _red = two_domains
    vport = create(api, "vport", blue_sub.id, {"name": "b1", "host": "h1"})
    create(api, "vport", blue_sub.id, {"name": "b0", "host": "h1"})  # keeps blue in h1's share
    h1 = agents("h1")
    h1.set_vport_status(vport.id, "up")
    wait_until(lambda: api.snapshot().vports[vport.id].status == "up", 5, what="up")
    api.apply(lambda s: validate.plan_update(s, "vport", vport.id, {"host": "h2"}))
    wait_until(lambda: api.snapshot().vports[vport.id].status == "down", 5, what="down after the move")
    h2 = agents("h2")
    h2.set_vport_status(vport.id, "up")
    wait_until(lambda: api.snapshot().vports[vport.id].status == "up", 5, what="up on h2")
    # h1 still holds the vport (same domain) but no longer its status row: no stale "up"
    wait_until(lambda: h1.snapshot().vports[vport.id].host == "h2", 5, what="h1 to see the move")
    assert h1.snapshot().vports[vport.id].status == "down"


def test_a_database_from_before_the_private_tables_is_converted(tmp_path):
    """Schema 1.1.0 kept status and liveness in the VPort and Host rows: converted, they start
    ``down``/disconnected and the agents' writes create the private rows."""
    old = current_schema()
    old["version"] = "1.1.0"
    del old["tables"]["HostLiveness"], old["tables"]["VPortStatus"]
    del old["tables"]["VPort"]["columns"]["port_status"], old["tables"]["Host"]["columns"]["liveness"]
    old["tables"]["VPort"]["columns"]["status"] = {"type": {"key": {"type": "string",
                                                                    "enum": ["set", ["down", "up"]]}}}
    old["tables"]["Host"]["columns"]["connected"] = {"type": "boolean"}
    old["tables"]["Host"]["columns"]["last_seen"] = {"type": "integer"}
    db, old_path = old_database(tmp_path, old)
    srv = OvsdbServer(db, str(old_path), str(tmp_path / "old.sock"))
    srv.start()
    try:
        # fill it the old way (a full store of the old schema cannot be used: write raw rows)
        subprocess.run(["ovsdb-client", "transact", srv.remote, json.dumps([
            "Nuage_Directory",
            {"op": "insert", "table": "Host", "row": {"name": "h1", "connected": True}},
            {"op": "insert", "table": "Enterprise", "row": {"name": "acme"}, "uuid-name": "e"},
            {"op": "insert", "table": "Domain", "uuid-name": "d",
             "row": {"name": "d", "enterprise": ["named-uuid", "e"], "vni": 5000, "ct_zone": 5,
                     "default_action": "deny"}},
            {"op": "insert", "table": "Zone", "uuid-name": "z", "row": {"name": "z", "domain": ["named-uuid", "d"]}},
            {"op": "insert", "table": "Subnet", "uuid-name": "s",
             "row": {"name": "s", "zone": ["named-uuid", "z"], "domain": ["named-uuid", "d"],
                     "cidr": "10.0.0.0/24", "gateway": "10.0.0.1"}},
            {"op": "insert", "table": "VPort", "row": {
                "name": "v", "subnet": ["named-uuid", "s"], "domain": ["named-uuid", "d"], "type": "container",
                "host": "h1", "ip": "10.0.0.2", "mac": "02:00:00:00:00:02", "status": "up"}}])],
            check=True, capture_output=True)
    finally:
        srv.stop()
    srv = OvsdbServer(db, schema_path(), str(tmp_path / "db.sock"))
    srv.start()  # converts
    api = DirectoryStore(srv.remote, all_counters=True)
    agent = DirectoryStore(srv.remote, scope_hosts=["h1"])
    try:
        api.start()
        agent.start()
        (vport,) = agent.snapshot().vports.values()
        assert vport.status == "down" and not agent.snapshot().host_by_name("h1").connected
        agent.register_host("h1", "192.0.2.1", None)
        agent.set_vport_status(vport.id, "up")
        wait_until(lambda: api.snapshot().vports[vport.id].status == "up", 5, what="status up")
        assert api.snapshot().host_by_name("h1").connected
    finally:
        agent.stop()
        api.stop()
        srv.stop()


def test_listeners_of_a_scoped_store_run_on_the_idl_thread(api, agents, two_domains):
    agent = agents("h1")
    threads = []
    done = threading.Event()

    def listener(_state):
        threads.append(threading.current_thread().name)
        done.set()

    agent.add_listener(listener)
    _ent, (_blue, blue_sub, *_), _red = two_domains
    create(api, "vport", blue_sub.id, {"name": "b1", "host": "h1"})
    assert done.wait(5)
    assert set(threads) == {"directory-idl"}


def test_a_scoped_store_keeps_its_share_across_a_raft_leader_change(tmp_path):
    """After the leader is killed the IDL reconnects to the new leader with its conditions: it still
    widens for a new local domain and narrows when the domain's last local vport goes."""
    import os
    import signal

    from nuage_ryu.db import cluster
    from nuage_ryu.directory.testing import free_port

    members = cluster.create_cluster(str(tmp_path / "cluster"), 3,
                                     ports=[(free_port(), free_port()) for _ in range(3)])
    api = agent = None
    try:
        for m in members:
            cluster.start_member(m)
        cluster.wait_for_leader(members)
        remote = cluster.connection_string(members)
        api = DirectoryStore(remote, all_counters=True)
        api.start(timeout=30)
        ent = create(api, "enterprise", None, {"name": "acme"})
        for name in ("h1", "h2"):
            api.register_host(name, None, None)
        blue = domain_tree(api, ent, "blue", "10.1.0.0/24")
        red = domain_tree(api, ent, "red", "10.2.0.0/24")
        create(api, "vport", blue[1].id, {"name": "b1", "host": "h1"})
        create(api, "vport", red[1].id, {"name": "r2", "host": "h2"})
        agent = DirectoryStore(remote, scope_hosts=["h1"])
        agent.start(timeout=30)
        assert set(agent.snapshot().domains) == {blue[0].id}

        leader = cluster.find_leader(members)
        os.kill(leader.pid, signal.SIGKILL)
        cluster.wait_for_leader([m for m in members if m is not leader])

        def created():
            try:
                return create(api, "vport", red[1].id, {"name": "r1", "host": "h1"})
            except Exception:  # 503 while the cluster elects; a retry after a commit gets 409
                found = [v for v in api.snapshot().vports.values() if v.name == "r1"]
                return found[0] if found else None

        local = wait_until(created, 60, 0.2, "the vport create to be acknowledged")
        wait_until(lambda: holds_domain(agent.snapshot(), *red) and agent.scope_settled(), 30,
                   what="red's objects to arrive after the leader change")
        delete(api, "vport", local.id)
        wait_until(lambda: red[0].id not in agent.snapshot().domains and agent.scope_settled(), 30,
                   what="red to be dropped")
        assert red[3].id not in agent.snapshot().acls
    finally:
        for st in (agent, api):
            if st is not None:
                st.stop()
        for m in members:
            cluster.stop_member(m, signal.SIGKILL)
