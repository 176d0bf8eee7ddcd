"""The placement index (schema 1.5.0) and a scoped store's share fetched by uuid, against a real ovsdb-server.

docs/scale.md "Agent start-up": the writers keep ``HostVPorts``/``DomainVPorts`` in the same
transaction as each vport change; an agent's store reads its share's vport ids there before its
first monitor request and fetches those rows by ``_uuid`` (store/share_fetch.py). What must hold:
the index always equals the vports; a fresh agent's first request already names its domains;
whatever is written while an agent starts or reconnects ends up in its replica, and no snapshot
is published without the fetched rows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid

import pytest

from nuage_ryu.db.server import OvsdbServer
from nuage_ryu.directory import validate
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.store.placement_rows import DOMAIN_TABLE, HOST_TABLE
from nuage_ryu.directory.testing import wait_until
from nuage_ryu.directory.validate import bulk
from tests.schema_helpers import current_schema, old_database

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


def create(store, kind, parent, body):
    change, state = store.apply(lambda s: validate.plan_create(s, kind, parent, body))
    return state.get(*change.result)


def index(remote: str) -> dict[str, dict[str, set[str]]]:
    """The placement index as the database holds it: table -> key -> vport ids (non-empty rows)."""
    out = subprocess.run(["ovsdb-client", "transact", remote, json.dumps([
        "Nuage_Directory", {"op": "select", "table": HOST_TABLE, "where": []},
        {"op": "select", "table": DOMAIN_TABLE, "where": []}])], check=True, capture_output=True, text=True).stdout
    result = {}
    for (table, col), res in zip(((HOST_TABLE, "host"), (DOMAIN_TABLE, "domain")), json.loads(out), strict=True):
        rows = {}
        for row in res["rows"]:
            v = row["vports"]
            members = {m[1] for m in v[1]} if v[0] == "set" else {v[1]}
            if members:
                rows[row[col]] = members
        result[table] = rows
    return result


def expected(state) -> dict[str, dict[str, set[str]]]:
    want: dict[str, dict[str, set[str]]] = {HOST_TABLE: {}, DOMAIN_TABLE: {}}
    for vp in state.vports.values():
        if vp.host:
            want[HOST_TABLE].setdefault(vp.host, set()).add(vp.id)
        want[DOMAIN_TABLE].setdefault(vp.domain, set()).add(vp.id)
    return want


def domain_tree(api, ent, name, cidr):
    dom = create(api, "domain", ent.id, {"name": name})
    zone = create(api, "zone", dom.id, {"name": "z"})
    sub = create(api, "subnet", zone.id, {"name": "s", "cidr": cidr})
    create(api, "policygroup", dom.id, {"name": "web"})
    return dom, sub


def test_the_index_follows_vport_creates_moves_bulk_and_deletes(api, server):
    ent = create(api, "enterprise", None, {"name": "acme"})
    blue, blue_sub = domain_tree(api, ent, "blue", "10.1.0.0/24")
    red, red_sub = domain_tree(api, ent, "red", "10.2.0.0/24")
    a = create(api, "vport", blue_sub.id, {"name": "a", "host": "h1"})
    b = create(api, "vport", blue_sub.id, {"name": "b", "host": "h1"})
    c = create(api, "vport", red_sub.id, {"name": "c", "host": "h2"})
    assert index(server.remote) == expected(api.snapshot())
    api.apply(lambda s: validate.plan_update(s, "vport", b.id, {"host": "h3"}))  # moved to another host
    ops = bulk.parse_bulk({"operations": [
        {"action": "create", "kind": "vport", "parent": red_sub.id, "body": {"name": f"bulk{i}", "host": f"h{i % 3}"}}
        for i in range(30)]})
    new_ids = [str(uuid.uuid4()) for _ in ops]
    api.apply(lambda s: bulk.plan_bulk(s, ops, new_ids).change)
    validate_delete = validate.plan_delete
    api.apply(lambda s: validate_delete(s, "vport", a.id))
    api.apply(lambda s: validate_delete(s, "vport", c.id))
    state = api.snapshot()
    assert len(state.vports) == 31
    assert index(server.remote) == expected(state)
    assert b.id in index(server.remote)[HOST_TABLE]["h3"] and b.id not in index(server.remote)[HOST_TABLE]["h1"]
    assert blue.id in index(server.remote)[DOMAIN_TABLE] and red.id in index(server.remote)[DOMAIN_TABLE]
    api.apply(lambda s: validate_delete(s, "domain", blue.id, cascade=True))  # with its vport b
    out = subprocess.run(["ovsdb-client", "transact", server.remote, json.dumps([
        "Nuage_Directory", {"op": "select", "table": DOMAIN_TABLE, "where": [], "columns": ["domain"]}])],
        check=True, capture_output=True, text=True).stdout
    assert {row["domain"] for row in json.loads(out)[0]["rows"]} == {red.id}  # blue's row went with it
    assert index(server.remote) == expected(api.snapshot())


def test_a_fresh_agent_names_its_domains_in_its_first_monitor_request(api, server):
    """The VPort condition is never changed after the start: the only condition change is the
    Host table's (the carriers, known once the domains' vports are in: a small table)."""
    ent = create(api, "enterprise", None, {"name": "acme"})
    blue, blue_sub = domain_tree(api, ent, "blue", "10.1.0.0/24")
    red, red_sub = domain_tree(api, ent, "red", "10.2.0.0/24")
    other, other_sub = domain_tree(api, ent, "other", "10.3.0.0/24")
    for host, sub in (("h1", blue_sub), ("h1", red_sub), ("h2", blue_sub), ("h3", red_sub), ("h4", other_sub)):
        create(api, "vport", sub.id, {"name": f"{host}-{sub.id[:4]}", "host": host})
    agent = DirectoryStore(server.remote, scope_hosts=["h1"])
    sent: list[str] = []
    try:
        agent.start()
        idl = agent._conn.idl
        original = idl.send_request

        def record(msg):
            sent.append(msg.method)
            return original(msg)

        idl.send_request = record
        state = agent.snapshot()
        assert agent.scope_settled()
        assert set(state.domains) == {blue.id, red.id}
        assert {v.host for v in state.vports.values()} == {"h1", "h2", "h3"}
        assert {h for h in (v.host for v in state.vports.values())} == set(agent.share().carriers)
        assert agent._conn._fetch is not None and agent._conn._fetch.rounds >= 1
        assert idl.cond_seqno <= 1  # the Host widening only
        assert idl.tables["VPort"].condition_state.acked == [
            ["host", "==", "h1"], ["domain", "==", ["uuid", min(blue.id, red.id)]],
            ["domain", "==", ["uuid", max(blue.id, red.id)]]]
        assert all(v.status == "down" for v in state.vports_on_host("h1"))
        vid = next(iter(state.vports_on_host("h1"))).id
        agent.set_vport_status(vid, "up")  # its own status row came by fetch: the write updates it
        wait_until(lambda: api.snapshot().vports[vid].status == "up", 5, what="the status in the API")
        assert "monitor_cond_change" not in sent
    finally:
        agent.stop()


def test_vports_written_while_agents_start_all_reach_them(api, server):
    """A writer creates, moves and changes vports of the agent's domains while agents start: each
    agent ends with exactly the vports of its share (rows fetched, updates to rows not yet fetched
    skipped and fetched, rows inserted meanwhile received)."""
    ent = create(api, "enterprise", None, {"name": "acme"})
    blue, blue_sub = domain_tree(api, ent, "blue", "10.1.0.0/24")
    red, red_sub = domain_tree(api, ent, "red", "10.2.0.0/24")
    group = next(g for g in api.snapshot().policygroups.values() if g.domain == blue.id)
    for i in range(20):
        create(api, "vport", blue_sub.id, {"name": f"seed{i}", "host": "h1" if i < 5 else "h2"})
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        n = 0
        try:
            while not stop.is_set():
                n += 1
                state = api.snapshot()
                blues = sorted(v.id for v in state.vports.values() if v.domain == blue.id)
                if n % 3 == 0:
                    create(api, "vport", blue_sub.id, {"name": f"w{n}", "host": f"h{n % 4 + 1}"})
                elif n % 3 == 1:
                    vid = blues[n % len(blues)]
                    groups = [] if state.vports[vid].policygroups else [group.id]
                    api.apply(lambda s, vid=vid, groups=groups: validate.plan_update(
                        s, "vport", vid, {"policygroups": groups}))
                else:
                    create(api, "vport", red_sub.id, {"name": f"r{n}", "host": f"h{n % 4 + 1}"})
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    agents = []
    try:
        for _ in range(5):
            st = DirectoryStore(server.remote, scope_hosts=["h1"])
            st.start()
            agents.append(st)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    try:
        truth = api.snapshot()
        share_domains = {v.domain for v in truth.vports.values() if v.host == "h1"}
        want = {v.id: v for v in truth.vports.values() if v.domain in share_domains}
        for st in agents:
            wait_until(lambda st=st: st.scope_settled() and {
                k: (v.host, v.policygroups) for k, v in st.snapshot().vports.items()} == {
                k: (v.host, v.policygroups) for k, v in want.items()}, 15, what="the agent's share to match")
    finally:
        for st in agents:
            st.stop()


def test_a_restarted_server_is_fetched_from_again_and_nothing_partial_is_published(tmp_path):
    db, sock = str(tmp_path / "directory.db"), str(tmp_path / "db.sock")
    srv = OvsdbServer(db, schema_path(), sock)
    srv.start()
    api = DirectoryStore(srv.remote, all_counters=True)
    agent = DirectoryStore(srv.remote, scope_hosts=["h1"])
    try:
        api.start()
        ent = create(api, "enterprise", None, {"name": "acme"})
        _blue, blue_sub = domain_tree(api, ent, "blue", "10.1.0.0/24")
        for i in range(10):
            create(api, "vport", blue_sub.id, {"name": f"v{i}", "host": "h1" if i % 2 else "h2"})
        agent.start()
        held = set(agent.snapshot().vports)
        assert len(held) == 10
        seen: list[int] = []
        agent.add_listener(lambda state: seen.append(len(state.vports)))
        fetch = agent._conn._fetch
        assert fetch.fetches == 1
        srv.stop()  # a new server process has no history for the IDL's last transaction id
        srv.start()
        wait_until(lambda: agent.connected and fetch.fetches == 2 and fetch.done and agent.scope_settled()
                   and len(seen) > 0, 30, what="the agent to reconnect and fetch")
        late = create(api, "vport", blue_sub.id, {"name": "late", "host": "h2"})
        wait_until(lambda: late.id in agent.snapshot().vports, 10, what="a vport created after the restart")
        assert held <= set(agent.snapshot().vports)
        assert all(n >= 10 for n in seen), seen  # no snapshot without the fetched vports
    finally:
        agent.stop()
        api.stop()
        srv.stop()


def test_a_database_from_1_4_is_converted_and_its_index_filled_and_an_old_server_still_works(tmp_path):
    old = current_schema()
    old["version"] = "1.4.0"
    del old["tables"][HOST_TABLE], old["tables"][DOMAIN_TABLE]
    db, old_path = old_database(tmp_path, old)
    ops = [{"op": "insert", "table": "Enterprise", "uuid-name": "e", "row": {"name": "acme"}},
           {"op": "insert", "table": "Domain", "uuid-name": "d",
            "row": {"name": "d", "enterprise": ["named-uuid", "e"], "vni": 5000, "ct_zone": 5,
                    "default_action": "deny", "router_mac": "02:00:00:00:00:05"}},
           {"op": "insert", "table": "Zone", "uuid-name": "z", "row": {"name": "z", "domain": ["named-uuid", "d"]}},
           {"op": "insert", "table": "Subnet", "uuid-name": "s",
            "row": {"name": "s", "zone": ["named-uuid", "z"], "domain": ["named-uuid", "d"],
                    "cidr": "10.0.0.0/24", "gateway": "10.0.0.1"}}]
    for i, host in enumerate(("h1", "h1", "h2")):
        ops += [{"op": "insert", "table": "VPortStatus", "uuid-name": f"st{i}",
                 "row": {"host": host, "status": "down"}},
                {"op": "insert", "table": "VPort", "row": {
                    "name": f"v{i}", "subnet": ["named-uuid", "s"], "domain": ["named-uuid", "d"], "type": "container",
                    "host": host, "ip": f"10.0.0.{i + 2}", "mac": f"02:00:00:00:00:0{i + 2}",
                    "port_status": ["named-uuid", f"st{i}"]}}]
    subprocess.run(["ovsdb-tool", "transact", db, json.dumps(["Nuage_Directory", *ops])], check=True,
                   capture_output=True)
    # an agent on a server that still runs 1.4.0 (no index): it monitors as before
    srv = OvsdbServer(db, str(old_path), str(tmp_path / "old.sock"))
    srv.start()
    agent = DirectoryStore(srv.remote, scope_hosts=["h1"])
    try:
        agent.start()
        assert agent._conn._fetch is None
        assert len(agent.snapshot().vports) == 3 and agent.scope_settled()
    finally:
        agent.stop()
        srv.stop()
    srv = OvsdbServer(db, schema_path(), str(tmp_path / "db.sock"))
    srv.start()  # converts to 1.5.0: the index is empty
    api = DirectoryStore(srv.remote, all_counters=True)
    agent = DirectoryStore(srv.remote, scope_hosts=["h1"])
    try:
        api.start()  # fills the index
        assert index(srv.remote) == expected(api.snapshot())
        agent.start()
        assert agent._conn._fetch is not None
        assert len(agent.snapshot().vports) == 3 and agent.scope_settled()
        assert {v.name for v in agent.snapshot().vports_on_host("h1")} == {"v0", "v1"}
    finally:
        agent.stop()
        api.stop()
        srv.stop()


def test_a_change_committed_between_the_monitor_and_the_fetch_is_not_lost(api, server, monkeypatch):
    """Deterministic form of the race: right when the monitor reply arrives (before the first
    fetch goes out) a share vport is changed and another created. The change's update reaches
    the agent before the fetched row: it is skipped and the fetched row carries it; the new
    vport arrives as an insert."""
    from nuage_ryu.directory.store import share_fetch

    ent = create(api, "enterprise", None, {"name": "acme"})
    _blue, blue_sub = domain_tree(api, ent, "blue", "10.1.0.0/24")
    group = next(iter(api.snapshot().policygroups.values()))
    mine = create(api, "vport", blue_sub.id, {"name": "mine", "host": "h1"})
    peer = create(api, "vport", blue_sub.id, {"name": "peer", "host": "h2"})
    original = share_fetch.ShareFetch.replica_cleared
    made = []

    def cleared(self, idl):
        if not made:
            api.apply(lambda s: validate.plan_update(s, "vport", peer.id, {"policygroups": [group.id]}))
            made.append(create(api, "vport", blue_sub.id, {"name": "new", "host": "h3"}))
        original(self, idl)

    monkeypatch.setattr(share_fetch.ShareFetch, "replica_cleared", cleared)
    agent = DirectoryStore(server.remote, scope_hosts=["h1"])
    try:
        agent.start()
        state = agent.snapshot()
        assert set(state.vports) == {mine.id, peer.id, made[0].id}
        assert set(state.vports[peer.id].policygroups) == {group.id}
        assert agent._conn._fetch.skips >= 1
    finally:
        agent.stop()
