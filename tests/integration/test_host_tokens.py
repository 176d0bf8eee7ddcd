"""Host tokens: a host's attach service reads the directory and writes only its own vports (issue 11).

Before, every agent's attach service held the admin token: a compromised host could change any
tenant's policy over REST. Now each host has a token of its own (``POST /tokens {"host"}``,
``nuage-ctl host enroll``); everything outside its own vports is 403, in single calls and in bulk.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from nuage_ryu.directory.errors import Forbidden, Unauthorized
from nuage_ryu.directory.testing import ManagerProcess
from tests.lab_helpers import lab_with_plane, ns_run
from tests.schema_helpers import current_schema, old_database

pytestmark = pytest.mark.integration


@pytest.fixture
def manager(tmp_path):
    mgr = ManagerProcess(str(tmp_path / "dir")).start()
    try:
        yield mgr
    finally:
        mgr.stop()


def _tree(api, name="acme", cidr="10.1.0.0/24"):
    ent = api.post("/enterprises", {"name": name})
    dom = api.post(f"/enterprises/{ent['id']}/domains", {"name": "d"})
    zone = api.post(f"/domains/{dom['id']}/zones", {"name": "z"})
    sub = api.post(f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": cidr})
    acl = api.post(f"/domains/{dom['id']}/acls", {"priority": 10, "action": "deny"})
    pg = api.post(f"/domains/{dom['id']}/policygroups", {"name": "web"})
    return ent, dom, sub, acl, pg


def _refused(call, *args) -> Forbidden:
    with pytest.raises(Forbidden) as info:
        call(*args)
    return info.value


def test_a_host_token_reads_everything_but_tokens_and_writes_only_its_own_vports(manager):
    admin = manager.client()
    ent, dom, sub, acl, pg = _tree(admin)
    theirs = admin.post(f"/subnets/{sub['id']}/vports", {"name": "theirs", "host": "h2"})
    issued = admin.post("/tokens", {"host": "h1", "name": "host h1"})
    assert issued["host"] == "h1" and issued["enterprise"] is None
    h1 = manager.client(issued["token"])

    # Reads: what the attach service needs (names -> subnet, groups, vports), every tenant.
    assert [e["name"] for e in h1.list("/enterprises")] == ["acme"]
    assert h1.get(f"/subnets/{sub['id']}")["cidr"] == "10.1.0.0/24"
    assert h1.get(f"/acls/{acl['id']}")["action"] == "deny"
    _refused(h1.list, "/tokens")
    _refused(h1.get, f"/tokens/{issued['id']}")

    # Policy, tenants, hosts, tokens: refused, and unchanged.
    err = _refused(h1.put, f"/acls/{acl['id']}", {"action": "allow"})
    assert err.code == "forbidden" and "host token" in err.message
    assert admin.get(f"/acls/{acl['id']}")["action"] == "deny"
    _refused(h1.post, "/enterprises", {"name": "evil"})
    _refused(h1.post, f"/domains/{dom['id']}/acls", {"priority": 1, "action": "allow"})
    _refused(h1.delete, f"/domains/{dom['id']}")
    _refused(h1.put, f"/domains/{dom['id']}", {"default_action": "allow"})
    _refused(h1.post, "/hosts", {"name": "h9"})
    _refused(h1.post, "/tokens", {"host": "h1"})
    _refused(h1.post, f"/policygroups/{pg['id']}/vports", {"vports": [theirs["id"]]})

    # Vports: only on its own host.
    _refused(h1.post, f"/subnets/{sub['id']}/vports", {"name": "x", "host": "h2"})
    _refused(h1.post, f"/subnets/{sub['id']}/vports", {"name": "x"})  # no host: not its own
    _refused(h1.put, f"/vports/{theirs['id']}", {"host": "h1"})  # taking over another host's vport
    _refused(h1.delete, f"/vports/{theirs['id']}")
    mine = h1.post(f"/subnets/{sub['id']}/vports", {"name": "mine", "host": "h1", "policygroups": [pg["id"]]})
    _refused(h1.put, f"/vports/{mine['id']}", {"host": "h2"})  # giving it away
    assert h1.put(f"/vports/{mine['id']}", {"external_ids": {"k": "v"}})["external_ids"] == {"k": "v"}
    assert h1.delete_vport(mine["id"]) is True
    assert admin.get(f"/vports/{theirs['id']}")["host"] == "h2"
    # The audit log names the host as the principal, for refused calls too.
    with open(os.path.join(manager.state_dir, "audit.log")) as f:
        entries = [json.loads(line) for line in f]
    assert {"principal": "host:h1", "status": 403, "path": f"/api/v1/acls/{acl['id']}"}.items() <= \
        next(e for e in entries if e["path"].endswith(acl["id"])).items()
    assert any(e["principal"] == "host:h1" and e["status"] == 201 for e in entries)


def test_one_foreign_operation_fails_a_host_tokens_whole_bulk_request(manager):
    admin = manager.client()
    _ent, _dom, sub, acl, _pg = _tree(admin)
    h1 = manager.client(admin.post("/tokens", {"host": "h1"})["token"])
    ops = [{"action": "create", "kind": "vport", "parent": sub["id"], "body": {"name": "a", "host": "h1"}},
           {"action": "update", "kind": "acl", "id": acl["id"], "body": {"action": "allow"}}]
    with pytest.raises(Forbidden) as info:
        h1.request("POST", "/bulk", {"operations": ops})
    assert "operation 1" in info.value.message and "host token" in info.value.message
    assert admin.list(f"/subnets/{sub['id']}/vports") == []  # all or nothing
    assert admin.get(f"/acls/{acl['id']}")["action"] == "deny"
    ops[1] = {"action": "create", "kind": "vport", "parent": sub["id"], "body": {"name": "b", "host": "h2"}}
    with pytest.raises(Forbidden):
        h1.request("POST", "/bulk", {"operations": ops})
    ops[1] = {"action": "update", "kind": "vport", "id": "$a", "body": {"external_ids": {"k": "v"}}}
    ops[0]["ref"] = "a"
    answer = h1.request("POST", "/bulk", {"operations": ops})
    assert [r["object"]["host"] for r in answer["results"]] == ["h1", "h1"]


def test_issuing_a_host_token_again_rotates_it_and_deleting_it_revokes_it(manager):
    admin = manager.client()
    first = admin.post("/tokens", {"host": "h1"})
    other = admin.post("/tokens", {"host": "h2"})
    assert manager.client(first["token"]).list("/hosts") == []
    second = admin.post("/tokens", {"host": "h1"})
    with pytest.raises(Unauthorized):
        manager.client(first["token"]).list("/hosts")
    assert manager.client(second["token"]).list("/hosts") == []
    assert manager.client(other["token"]).list("/hosts") == []  # another host's token is untouched
    assert sorted(t["host"] for t in admin.list("/tokens")) == ["h1", "h2"]
    admin.delete(f"/tokens/{second['id']}")
    with pytest.raises(Unauthorized):
        manager.client(second["token"]).list("/hosts")
    # A token is for an enterprise or a host, not both, not neither.
    ent = admin.post("/enterprises", {"name": "e"})
    for body in ({}, {"host": "h1", "enterprise": ent["id"]}, {"host": ""}):
        with pytest.raises(Exception) as info:
            admin.post("/tokens", body)
        assert getattr(info.value, "status", None) == 422, body
    # The audit log never holds a secret.
    with open(os.path.join(manager.state_dir, "audit.log")) as f:
        entries = [json.loads(line) for line in f]
    assert not any(second["token"] in json.dumps(e) for e in entries)


def test_nuage_ctl_host_enroll_writes_key_certificate_and_token_and_revoke_withdraws_them(manager, tmp_path):
    ctl = [os.path.join(os.path.dirname(sys.executable), "nuage-ctl"), "--url", manager.url,
           "--token-file", os.path.join(manager.state_dir, "api-token")]
    pki_dir = str(tmp_path / "pki")
    subprocess.run([*ctl, "pki", "init", "--dir", pki_dir], check=True, capture_output=True)
    out = subprocess.run([*ctl, "-o", "json", "host", "enroll", "node-1", "--dir", pki_dir, "--san", "192.0.2.11"],
                         check=True, capture_output=True, text=True)
    result = json.loads(out.stdout)
    folder = os.path.join(pki_dir, "node-1")
    assert result["token_file"] == os.path.join(folder, "node-1-token")
    assert sorted(os.listdir(folder)) == ["ca-cert.pem", "node-1-cert.pem", "node-1-key.pem", "node-1-token"]
    assert os.stat(result["token_file"]).st_mode & 0o777 == 0o600
    with open(result["token_file"]) as f:
        first = f.read().strip()
    assert manager.client(first).list("/hosts") == []
    # Again: rotation (a new key, certificate and token; the old token is refused).
    subprocess.run([*ctl, "host", "enroll", "node-1", "--dir", pki_dir], check=True, capture_output=True)
    with open(result["token_file"]) as f:
        second = f.read().strip()
    assert second != first
    with pytest.raises(Unauthorized):
        manager.client(first).list("/hosts")
    manager.client().post("/hosts", {"name": "node-1"})
    out = subprocess.run([*ctl, "host", "revoke", "node-1"], check=True, capture_output=True, text=True)
    assert "1 token(s) and 1 host row(s) deleted" in out.stdout
    with pytest.raises(Unauthorized):
        manager.client(second).list("/hosts")
    assert manager.client().list("/hosts") == []
    token_list = subprocess.run([*ctl, "token", "create", "--host", "node-2", "-o", "json"], check=True,
                                capture_output=True, text=True)
    assert json.loads(token_list.stdout)["host"] == "node-2"


def test_a_database_of_schema_1_3_is_converted_and_its_enterprise_tokens_keep_working(tmp_path):
    old = current_schema()
    old["version"] = "1.3.0"  # before host tokens: every token had an enterprise
    token_cols = old["tables"]["ApiToken"]["columns"]
    del token_cols["host"]
    token_cols["enterprise"] = {"type": {"key": {"type": "uuid", "refTable": "Enterprise"}}}
    state = tmp_path / "dir"
    db, _ = old_database(tmp_path, old, str(state / "directory" / "directory.db"))
    secret = "nrt_from_before"
    txn = ["Nuage_Directory",
           {"op": "insert", "table": "Enterprise", "uuid-name": "e", "row": {"name": "kept"}},
           {"op": "insert", "table": "ApiToken", "row": {"enterprise": ["named-uuid", "e"], "name": "old",
                                                        "token_hash": hashlib.sha256(secret.encode()).hexdigest()}}]
    subprocess.run(["ovsdb-tool", "transact", db, json.dumps(txn)], check=True, capture_output=True)
    mgr = ManagerProcess(str(state)).start()  # converts in place
    try:
        assert [e["name"] for e in mgr.client(secret).list("/enterprises")] == ["kept"]
        (token,) = mgr.client().list("/tokens")
        assert token["host"] == "" and token["name"] == "old"
    finally:
        mgr.stop()


def _curl(host, plane, token, method, path, body=None):
    """One REST call from ``host``'s namespace over HTTPS: (status, JSON body)."""
    ca = os.path.join(plane.pki_dir, "ca-cert.pem")
    argv = ["curl", "-sS", "--max-time", "20", "--cacert", ca, "-o", "-", "-w", "\n%{http_code}", "-X", method,
            "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
            plane.directory_api + "/api/v1" + path]
    if body is not None:
        argv += ["--data", json.dumps(body)]
    out = ns_run(host.netns, argv)
    text, _, status = out.stdout.rpartition("\n")
    return int(status or 0), (json.loads(text) if text.strip() else None)


def test_from_a_hosts_namespace_its_token_cannot_change_another_tenants_policy():
    with lab_with_plane(2, tag="hau") as (lab, plane):
        h1, h2 = lab.hosts
        api = plane.client()
        _ent, _dom, sub, acl, _pg = _tree(api, "victim", "10.9.0.0/24")
        with open(plane.host_token_file(h1)) as f:
            token = f.read().strip()
        with open(plane.token_file) as f:
            admin_token = f.read().strip()
        # The agent holds its own token only: nothing under its config, state or credentials is the admin's.
        conf = os.path.join(plane.root, f"agent-{h1.name}.ini")
        with open(conf) as f:
            assert f"directory_token_file = {plane.host_token_file(h1)}" in f.read()
        for folder in (os.path.join(plane.root, h1.name), os.path.join(plane.pki_dir, h1.host_name)):
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        assert admin_token.encode() not in f.read(), path
        with open(conf, "rb") as f:
            assert admin_token.encode() not in f.read()

        status, body = _curl(h1, plane, token, "PUT", f"/acls/{acl['id']}", {"action": "allow"})
        assert status == 403 and body["error"]["code"] == "forbidden", body
        assert api.get(f"/acls/{acl['id']}")["action"] == "deny"
        status, body = _curl(h1, plane, token, "POST", f"/subnets/{sub['id']}/vports",
                             {"name": "x", "host": h2.host_name})
        assert status == 403 and body["error"]["code"] == "forbidden", body
        status, body = _curl(h1, plane, token, "POST", f"/subnets/{sub['id']}/vports",
                             {"name": "mine", "host": h1.host_name})
        assert status == 201 and body["host"] == h1.host_name, body
        assert _curl(h1, plane, token, "DELETE", f"/vports/{body['id']}")[0] == 204
