"""The directory REST API against a real nuage-ryu-manager with the embedded ovsdb-server.

Everything runs on 127.0.0.1 with a free port and a temporary state_dir; the
manager (and its ovsdb-server child) are stopped by pid at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading

import pytest

from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.errors import DirectoryError
from nuage_ryu.directory.store import DirectoryStore
from nuage_ryu.directory.testing import ManagerProcess, free_port, pid_alive, wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


def expect_error(status, code, fn, *args, **kwargs):
    with pytest.raises(DirectoryError) as info:
        fn(*args, **kwargs)
    assert (info.value.status, info.value.code) == (status, code), info.value
    assert info.value.message
    return info.value


@pytest.fixture
def tree(admin, request):
    """enterprise / domain / zone / subnet / policygroup, unique per test."""
    name = request.node.name[:40].replace("[", "-").replace("]", "")
    ent = admin.post("/enterprises", {"name": name})
    dom = admin.post(f"/enterprises/{ent['id']}/domains", {"name": "prod"})
    zone = admin.post(f"/domains/{dom['id']}/zones", {"name": "web"})
    sub = admin.post(f"/zones/{zone['id']}/subnets", {"name": "front", "cidr": "10.0.1.0/24"})
    pg = admin.post(f"/domains/{dom['id']}/policygroups", {"name": "www"})
    yield {"ent": ent, "dom": dom, "zone": zone, "sub": sub, "pg": pg}
    try:
        admin.delete(f"/enterprises/{ent['id']}", cascade="true")
    except DirectoryError:
        pass


def test_token_file_created_0600(manager):
    path = os.path.join(manager.state_dir, "api-token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(manager.token) >= 32


def test_full_crud_of_every_object(admin, tree):
    ent, dom, zone, sub, pg = (tree[k] for k in ("ent", "dom", "zone", "sub", "pg"))
    assert dom["vni"] >= 1 and dom["default_action"] == "deny" and dom["ct_zone"] >= 1
    assert (sub["gateway"], sub["domain"]) == ("10.0.1.1", dom["id"])
    vport = admin.post(f"/subnets/{sub['id']}/vports",
                       {"name": "c1", "host": "node-1", "policygroups": [pg["id"]],
                        "external_ids": {"container_id": "abc", "ifname": "eth0"}})
    assert (vport["ip"], vport["gateway"], vport["status"]) == ("10.0.1.2", "10.0.1.1", "down")
    assert vport["mac"].startswith("02:") and vport["zone"] == zone["id"]
    acl = admin.post(f"/domains/{dom['id']}/acls",
                     {"priority": 100, "source": {"type": "policygroup", "id": pg["id"]},
                      "destination": {"type": "cidr", "cidr": "0.0.0.0/0"}, "protocol": "tcp",
                      "dst_ports": "443", "action": "allow"})
    assert acl["counters"] == {"packets": 0, "bytes": 0, "by_host": {}} and acl["warnings"] == []
    assert acl["stateful"] is True
    host = admin.post("/hosts", {"name": f"h-{ent['id'][:8]}", "tunnel_ip": "192.0.2.1"})
    assert host["connected"] is False and host["last_seen"] is None

    # show
    for path, obj in ((f"/enterprises/{ent['id']}", ent), (f"/domains/{dom['id']}", dom),
                      (f"/zones/{zone['id']}", zone), (f"/subnets/{sub['id']}", sub),
                      (f"/vports/{vport['id']}", vport), (f"/policygroups/{pg['id']}", pg),
                      (f"/hosts/{host['id']}", host)):
        assert admin.get(path) == obj
    shown_acl = admin.get(f"/acls/{acl['id']}")
    assert shown_acl == {k: v for k, v in acl.items() if k != "warnings"}

    # list + ?name=
    assert [d["id"] for d in admin.get(f"/enterprises/{ent['id']}/domains")] == [dom["id"]]
    assert admin.get(f"/domains/{dom['id']}/zones", name="web") == [zone]
    assert admin.get(f"/domains/{dom['id']}/zones", name="nope") == []
    assert admin.get(f"/zones/{zone['id']}/subnets") == [sub]
    assert admin.get(f"/subnets/{sub['id']}/vports") == [vport]
    assert admin.get(f"/domains/{dom['id']}/policygroups") == [pg]
    assert [a["id"] for a in admin.get(f"/domains/{dom['id']}/acls")] == [acl["id"]]
    assert host in admin.get("/hosts")
    assert admin.get("/enterprises", name=ent["name"]) == [ent]

    # update (PUT of mutable fields; a GET body can be sent back)
    assert admin.put(f"/enterprises/{ent['id']}", {"description": "tenant"})["description"] == "tenant"
    assert admin.put(f"/domains/{dom['id']}", {"default_action": "allow"})["default_action"] == "allow"
    assert admin.put(f"/zones/{zone['id']}", {"name": "web2"})["name"] == "web2"
    assert admin.put(f"/subnets/{sub['id']}", {"description": "x"})["description"] == "x"
    body = admin.get(f"/vports/{vport['id']}")
    body["host"] = "node-2"
    assert admin.put(f"/vports/{vport['id']}", body)["host"] == "node-2"
    assert admin.put(f"/policygroups/{pg['id']}", {"name": "www2"})["name"] == "www2"
    upd = admin.put(f"/acls/{acl['id']}", {"dst_ports": "8000-8080", "priority": 90})
    assert (upd["dst_ports"], upd["priority"], upd["warnings"]) == ("8000-8080", 90, [])
    assert admin.put(f"/hosts/{host['id']}", {"datapath_id": "0xab"})["datapath_id"] == "00000000000000ab"

    # delete, leaves first
    for path in (f"/acls/{acl['id']}", f"/vports/{vport['id']}", f"/policygroups/{pg['id']}",
                 f"/subnets/{sub['id']}", f"/zones/{zone['id']}", f"/domains/{dom['id']}",
                 f"/enterprises/{ent['id']}", f"/hosts/{host['id']}"):
        assert admin.delete(path) is None
        expect_error(404, "not_found", admin.get, path)


def test_delete_with_children_409_then_cascade(admin, tree):
    dom, sub, pg = tree["dom"], tree["sub"], tree["pg"]
    vp = admin.post(f"/subnets/{sub['id']}/vports", {"name": "c1", "policygroups": [pg["id"]]})
    err = expect_error(409, "conflict", admin.delete, f"/domains/{dom['id']}")
    assert "cascade=true" in err.message
    expect_error(409, "conflict", admin.delete, f"/policygroups/{pg['id']}")
    admin.delete(f"/policygroups/{pg['id']}", cascade="true")
    assert admin.get(f"/vports/{vp['id']}")["policygroups"] == []
    admin.delete(f"/domains/{dom['id']}", cascade="true")
    expect_error(404, "not_found", admin.get, f"/vports/{vp['id']}")
    expect_error(404, "not_found", admin.get, f"/zones/{tree['zone']['id']}")


def test_policygroup_membership(admin, tree):
    sub, pg = tree["sub"], tree["pg"]
    a = admin.post(f"/subnets/{sub['id']}/vports", {"name": "a"})
    b = admin.post(f"/subnets/{sub['id']}/vports", {"name": "b"})
    assert admin.get(f"/policygroups/{pg['id']}/vports") == []
    members = f"/policygroups/{pg['id']}/vports"
    assert [v["id"] for v in admin.post(members, {"vports": [a["id"]]})] == [a["id"]]
    assert [v["id"] for v in admin.put(members, {"vports": [b["id"]]})] == [b["id"]]
    assert admin.get(f"/vports/{b['id']}")["policygroups"] == [pg["id"]]
    assert admin.get(f"/vports/{a['id']}")["policygroups"] == []
    admin.delete(f"/policygroups/{pg['id']}/vports/{b['id']}")
    assert admin.get(f"/policygroups/{pg['id']}/vports") == []
    expect_error(404, "not_found", admin.delete, f"/policygroups/{pg['id']}/vports/{b['id']}")
    expect_error(400, "bad_request", admin.put, f"/policygroups/{pg['id']}/vports", {"members": []})


def test_tenant_isolation(manager, admin, tree):
    mine = tree["ent"]
    other = admin.post("/enterprises", {"name": "isolation-other"})
    try:
        odom = admin.post(f"/enterprises/{other['id']}/domains", {"name": "theirs"})
        created = admin.post("/tokens", {"enterprise": mine["id"], "name": "ci"})
        assert created["token"].startswith("nrt_") and created["enterprise"] == mine["id"]
        assert "token" not in admin.get(f"/tokens/{created['id']}")
        # only the hash is stored
        with open(os.path.join(manager.state_dir, "directory", "directory.db"), "rb") as f:
            store_dump = f.read()
        assert created["token"].encode() not in store_dump
        tenant = manager.client(created["token"])
        try:
            assert [e["id"] for e in tenant.get("/enterprises")] == [mine["id"]]
            assert tenant.get(f"/enterprises/{mine['id']}/domains")[0]["id"] == tree["dom"]["id"]
            # other tenants' objects are 404, reads and writes alike
            for path in (f"/enterprises/{other['id']}", f"/domains/{odom['id']}",
                         f"/enterprises/{other['id']}/domains"):
                expect_error(404, "not_found", tenant.get, path)
            expect_error(404, "not_found", tenant.post, f"/enterprises/{other['id']}/domains", {"name": "x"})
            expect_error(404, "not_found", tenant.put, f"/domains/{odom['id']}", {"name": "x"})
            expect_error(404, "not_found", tenant.delete, f"/domains/{odom['id']}")
            # admin-only operations are 403
            expect_error(403, "forbidden", tenant.post, "/enterprises", {"name": "new"})
            expect_error(403, "forbidden", tenant.post, "/hosts", {"name": "h"})
            expect_error(403, "forbidden", tenant.get, "/tokens")
            expect_error(403, "forbidden", tenant.post, "/tokens", {"enterprise": mine["id"]})
            expect_error(403, "forbidden", tenant.delete, f"/enterprises/{mine['id']}")
            tenant.get("/hosts")  # reading hosts is fine
            # own objects can be managed
            zone = tenant.post(f"/domains/{tree['dom']['id']}/zones", {"name": "tenant-zone"})
            tenant.delete(f"/zones/{zone['id']}")
            # revoked token: 401
            admin.delete(f"/tokens/{created['id']}")
            expect_error(401, "unauthorized", tenant.get, "/enterprises")
        finally:
            tenant.close()
    finally:
        admin.delete(f"/enterprises/{other['id']}", cascade="true")


def _count_objects(admin) -> int:
    total = 0
    for ent in admin.get("/enterprises"):
        total += 1
        for dom in admin.get(f"/enterprises/{ent['id']}/domains"):
            total += 1 + len(admin.get(f"/domains/{dom['id']}/acls"))
            total += len(admin.get(f"/domains/{dom['id']}/policygroups"))
            for zone in admin.get(f"/domains/{dom['id']}/zones"):
                total += 1
                for sub in admin.get(f"/zones/{zone['id']}/subnets"):
                    total += 1 + len(admin.get(f"/subnets/{sub['id']}/vports"))
    return total + len(admin.get("/hosts"))


def test_every_error_class_and_nothing_changes(manager, admin, tree):
    dom, sub = tree["dom"], tree["sub"]
    before = _count_objects(admin)
    raw = admin.raw
    # 400: malformed JSON, wrong types, unknown fields, unknown parameters, empty body
    for body in (b'{"name": ', b"[1,2]", b"", b'{"name": 5}', b'{"name": "x", "bogus": 1}', b"\xff\xfe",
                 b'{"name": "\\ud800"}', b"[" * 100000, b'{"name": NaN}'):
        status, _h, data = raw("POST", "/api/v1/enterprises", body)
        assert status == 400, (body, data)
        assert set(json.loads(data)["error"]) == {"code", "message"}
    status, _h, data = raw("POST", "/api/v1/enterprises", b'{"name": "' + b"x" * (2 << 20) + b'"}')
    assert status == 413 and json.loads(data)["error"]["code"] == "payload_too_large"
    expect_error(400, "bad_request", admin.get, "/enterprises", colour="red")
    expect_error(400, "bad_request", admin.delete, f"/domains/{dom['id']}", cascade="maybe")
    # 401
    status, headers, data = DirectoryClient(manager.url, token=None).raw("GET", "/api/v1/enterprises")
    assert status == 401 and json.loads(data)["error"]["code"] == "unauthorized"
    assert "Bearer" in headers.get("WWW-Authenticate", "")
    expect_error(401, "unauthorized", manager.client("wrong-token").get, "/enterprises")
    # 404: unknown path, unknown id, malformed id
    expect_error(404, "not_found", admin.get, "/nothing")
    expect_error(404, "not_found", admin.get, "/domains/00000000-0000-0000-0000-000000000000")
    expect_error(404, "not_found", admin.get, "/domains/not-a-uuid")
    status, _h, _d = raw("GET", "/elsewhere")
    assert status == 404
    # 405
    status, headers, data = raw("PATCH", f"/api/v1/domains/{dom['id']}")
    assert status == 405 and "PUT" in headers["Allow"]
    assert json.loads(data)["error"]["code"] == "method_not_allowed"
    # 409: duplicates, overlap, ip in use, exhaustion
    expect_error(409, "conflict", admin.post, f"/enterprises/{tree['ent']['id']}/domains", {"name": "prod"})
    expect_error(409, "conflict", admin.post, f"/enterprises/{tree['ent']['id']}/domains",
                 {"name": "x", "vni": dom["vni"]})
    expect_error(409, "conflict", admin.post, f"/zones/{tree['zone']['id']}/subnets",
                 {"name": "overlap", "cidr": "10.0.0.0/16"})
    # 422: invalid values
    expect_error(422, "validation_error", admin.post, f"/zones/{tree['zone']['id']}/subnets",
                 {"name": "bad", "cidr": "10.0.300.0/24"})
    expect_error(422, "validation_error", admin.post, f"/domains/{dom['id']}/acls",
                 {"priority": 1, "protocol": "icmp", "dst_ports": "80"})
    vports = f"/subnets/{sub['id']}/vports"
    expect_error(422, "validation_error", admin.post, vports, {"name": "v", "ip": "10.0.2.5"})
    expect_error(422, "validation_error", admin.post, vports, {"name": "v", "status": "up"})
    assert _count_objects(admin) == before  # bad input changed nothing

    tiny = admin.post(f"/zones/{tree['zone']['id']}/subnets", {"name": "p2p", "cidr": "10.0.9.0/31"})
    admin.post(f"/subnets/{tiny['id']}/vports", {"name": "only"})
    err = expect_error(409, "conflict", admin.post, f"/subnets/{tiny['id']}/vports", {"name": "more"})
    assert "exhausted" in err.message


def test_fifty_concurrent_vport_creates_get_distinct_addresses(manager, admin, tree):
    sub = tree["sub"]
    results, errors = [], []

    def create(i):
        client = manager.client()
        try:
            results.append(client.post(f"/subnets/{sub['id']}/vports", {"name": f"par-{i}"}))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 50
    assert len({r["ip"] for r in results}) == 50
    assert len({r["mac"] for r in results}) == 50
    listed = admin.get(f"/subnets/{sub['id']}/vports")
    assert sorted(v["ip"] for v in listed) == sorted(r["ip"] for r in results)
    assert "10.0.1.1" not in {r["ip"] for r in results}


def test_vport_status_comes_from_the_agent_side(manager, admin, tree):
    vp = admin.post(f"/subnets/{tree['sub']['id']}/vports", {"name": "c1", "host": "node-1"})
    assert vp["status"] == "down"
    agent = DirectoryStore("unix:" + manager.db_socket)  # what the VRS agent does, over OVSDB
    agent.start()
    try:
        agent.register_host("node-agent", "192.0.2.7", "0x2a")
        agent.set_vport_status(vp["id"], "up")
    finally:
        agent.stop()
    assert admin.get(f"/vports/{vp['id']}")["status"] == "up"
    host = admin.get("/hosts", name="node-agent")[0]
    assert host["connected"] is True and host["last_seen"] and host["datapath_id"] == "000000000000002a"
    admin.delete(f"/hosts/{host['id']}")


def test_acl_write_time_checks_and_shadow_warnings(admin, tree):
    dom, zone, sub, pg = tree["dom"], tree["zone"], tree["sub"], tree["pg"]
    acls = f"/domains/{dom['id']}/acls"
    web = admin.post(acls, {"priority": 100, "source": {"type": "policygroup", "id": pg["id"]},
                            "protocol": "tcp", "dst_ports": "80-443"})
    assert web["warnings"] == []
    # duplicate priority (also through an update), another domain's endpoint: refused, nothing changes
    other = admin.post(f"/enterprises/{tree['ent']['id']}/domains", {"name": "other"})
    other_pg = admin.post(f"/domains/{other['id']}/policygroups", {"name": "www"})
    err = expect_error(422, "validation_error", admin.post, acls, {"priority": 100})
    assert web["id"] in err.message
    ssh = admin.post(acls, {"priority": 300, "protocol": "tcp", "dst_ports": "22"})
    expect_error(422, "validation_error", admin.put, f"/acls/{ssh['id']}", {"priority": 100})
    err = expect_error(422, "validation_error", admin.post, acls,
                       {"priority": 5, "destination": {"type": "policygroup", "id": other_pg["id"]}})
    assert "does not exist in this domain" in err.message
    assert [a["id"] for a in admin.get(acls)] == [web["id"], ssh["id"]]
    assert admin.get(f"/acls/{ssh['id']}")["priority"] == 300

    # a rule inside an earlier one's traffic is created, with a warning naming the earlier rule
    https = admin.post(acls, {"priority": 200, "source": {"type": "policygroup", "id": pg["id"]},
                              "destination": {"type": "subnet", "id": sub["id"]}, "protocol": "tcp",
                              "dst_ports": "443", "action": "deny"})
    assert [(w["code"], w["rule"], w["by"]) for w in https["warnings"]] == [("shadowed", https["id"], web["id"])]
    assert "never match" in https["warnings"][0]["message"]
    assert "warnings" not in admin.get(f"/acls/{https['id']}")
    # moving it ahead of the broader rule: no longer shadowed
    assert admin.put(f"/acls/{https['id']}", {"priority": 50})["warnings"] == []
    # a new catch-all for the zone ahead of everything warns about each rule it shadows
    zone_rule = admin.post(acls, {"priority": 10, "destination": {"type": "zone", "id": zone["id"]}})
    assert [(w["rule"], w["by"]) for w in zone_rule["warnings"]] == [(https["id"], zone_rule["id"])]
    shown = admin.put(f"/acls/{zone_rule['id']}", {"destination": {"type": "any"}})
    assert [w["rule"] for w in shown["warnings"]] == [https["id"], web["id"], ssh["id"]]


def test_counters_reported_by_two_hosts_show_in_get(manager, admin, tree):
    dom = tree["dom"]
    rule = admin.post(f"/domains/{dom['id']}/acls", {"priority": 10, "protocol": "tcp"})
    assert rule["counters"] == {"packets": 0, "bytes": 0, "by_host": {}}
    assert admin.get(f"/domains/{dom['id']}")["default_action_counters"] == {"packets": 0, "bytes": 0,
                                                                            "by_host": {}}
    gone = admin.post(f"/domains/{dom['id']}/acls", {"priority": 20})
    admin.delete(f"/acls/{gone['id']}")
    agents = []
    try:
        for name, counts in (("cnt-1", (10, 1500)), ("cnt-2", (4, 256))):
            agent = DirectoryStore("unix:" + manager.db_socket)  # what each VRS agent does, over OVSDB
            agent.start()
            agents.append(agent)
            agent.register_host(name, None, None)
            wait_until(lambda agent=agent: rule["id"] in agent.snapshot().acls, 5, what="the agent to see the rule")
            # the deleted rule is still in this (stale) report: ignored, the rest is stored
            assert agent.report_counters(name, {rule["id"]: counts, gone["id"]: (1, 1)}, {dom["id"]: (1, 100)})
    finally:
        for agent in agents:
            agent.stop()
    expected = {"packets": 14, "bytes": 1756, "by_host": {"cnt-1": {"packets": 10, "bytes": 1500},
                                                          "cnt-2": {"packets": 4, "bytes": 256}}}
    shown = wait_until(lambda: (lambda a: a if a["counters"]["packets"] == 14 else None)(
        admin.get(f"/acls/{rule['id']}")), 5, what="GET to show both hosts' counters")
    assert shown["counters"] == expected
    assert admin.get(f"/domains/{dom['id']}/acls")[0]["counters"] == expected
    assert admin.get(f"/domains/{dom['id']}")["default_action_counters"]["packets"] == 2
    # a GET body sent back with PUT is accepted although the counters moved meanwhile
    body = dict(shown, description="counted", counters={"packets": 0, "bytes": 0, "by_host": {}})
    assert admin.put(f"/acls/{rule['id']}", body)["counters"] == expected
    expect_error(422, "validation_error", admin.post, f"/domains/{dom['id']}/acls",
                 {"priority": 30, "counters": expected})
    for host in admin.get("/hosts"):
        if host["name"] in ("cnt-1", "cnt-2"):
            admin.delete(f"/hosts/{host['id']}")
    wait_until(lambda: admin.get(f"/acls/{rule['id']}")["counters"]["by_host"] == {}, 5,
               what="deleted hosts' counters to go")


def test_unix_socket_api(manager):
    client = DirectoryClient("unix:" + manager.api_socket, token=manager.token)
    try:
        assert isinstance(client.get("/enterprises"), list)
    finally:
        client.close()


def test_persistence_across_manager_restart(tmp_path):
    mgr = ManagerProcess(str(tmp_path))
    mgr.start()
    try:
        client = mgr.client()
        ent = client.post("/enterprises", {"name": "persist"})
        dom = client.post(f"/enterprises/{ent['id']}/domains", {"name": "d", "vni": 4242})
        zone = client.post(f"/domains/{dom['id']}/zones", {"name": "z"})
        sub = client.post(f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.1.0.0/16"})
        vp = client.post(f"/subnets/{sub['id']}/vports", {"name": "v"})
        token = mgr.token
        client.close()
        db_pids = list(mgr.children)
        assert db_pids and all(pid_alive(p) for p in db_pids)
        assert mgr.stop() == 0
        assert not any(pid_alive(p) for p in db_pids)  # stopping the app stopped ovsdb-server

        mgr.start()
        assert mgr.token == token
        client = mgr.client()
        assert client.get(f"/vports/{vp['id']}") == vp
        assert client.get(f"/domains/{dom['id']}")["vni"] == 4242
        # allocation continues after a restart without handing out a used address
        assert client.post(f"/subnets/{sub['id']}/vports", {"name": "w"})["ip"] != vp["ip"]
        client.close()
    finally:
        mgr.stop()


def test_embedded_ovsdb_server_is_restarted_if_it_dies(tmp_path):
    db_port = free_port()  # [directory] listen: the extra OVSDB listener for remote agents
    mgr = ManagerProcess(str(tmp_path), extra=f"listen = ptcp:{db_port}:127.0.0.1\n")
    mgr.start()
    try:
        client = mgr.client()
        ent = client.post("/enterprises", {"name": "before-crash"})
        (db_pid,) = mgr.children
        os.kill(db_pid, 9)
        wait_until(lambda: not pid_alive(db_pid), 10, what="ovsdb-server to die")

        def api_writes():
            try:
                return client.post("/enterprises", {"name": "after-crash"})
            except DirectoryError as exc:
                assert exc.status == 503, exc
                return None

        after = wait_until(api_writes, 30, 0.1, "writes to succeed after the restart")
        names = {e["name"] for e in client.get("/enterprises")}
        assert names == {"before-crash", "after-crash"} and ent["id"] != after["id"]
        client.close()
        remote_agent = DirectoryStore(f"tcp:127.0.0.1:{db_port}")
        remote_agent.start()
        try:
            assert {e.name for e in remote_agent.snapshot().enterprises.values()} == names
        finally:
            remote_agent.stop()
    finally:
        mgr.stop()
