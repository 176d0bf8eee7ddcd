"""Bulk writes, list pages and filters, against a real nuage-ryu-manager (embedded ovsdb-server)."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.errors import DirectoryError

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@pytest.fixture
def tree(admin, request):
    name = request.node.name[:40].replace("[", "-").replace("]", "")
    ent = admin.post("/enterprises", {"name": name})
    dom = admin.post(f"/enterprises/{ent['id']}/domains", {"name": "prod"})
    zone = admin.post(f"/domains/{dom['id']}/zones", {"name": "web"})
    sub = admin.post(f"/zones/{zone['id']}/subnets", {"name": "front", "cidr": "10.0.0.0/16"})
    pg = admin.post(f"/domains/{dom['id']}/policygroups", {"name": "www"})
    yield {"ent": ent, "dom": dom, "zone": zone, "sub": sub, "pg": pg}
    try:
        admin.delete(f"/enterprises/{ent['id']}", cascade="true")
    except DirectoryError:
        pass


def bulk_raw(manager, operations, token=None, params=None):
    """POST /bulk; returns (status, body) without raising."""
    client = DirectoryClient(manager.url, token=token or manager.token)
    try:
        status, _h, raw = client.raw("POST", "/api/v1/bulk", json.dumps({"operations": operations}).encode(),
                                     params=params)
    finally:
        client.close()
    return status, json.loads(raw)


def vport_ops(subnet, n, prefix="v", **body):
    return [{"action": "create", "kind": "vport", "parent": subnet, "body": {"name": f"{prefix}{i}", **body}}
            for i in range(n)]


def pages(client, path, limit, **filters):
    """Every page of a list: (items in order, number of pages)."""
    items, token, n = [], None, 0
    while True:
        params = {"limit": limit, **filters, **({"page_token": token} if token else {})}
        payload, headers = client.request_with_headers("GET", path, params=params)
        items += payload
        n += 1
        token = headers.get("x-next-page-token")
        if not token:
            return items, n


def test_a_bad_operation_at_the_end_of_500_leaves_nothing_and_ipam_unchanged(manager, admin, tree):
    sub = tree["sub"]["id"]
    anchor = admin.post(f"/subnets/{sub}/vports", {"name": "anchor"})
    ops = vport_ops(sub, 499) + [{"action": "create", "kind": "vport", "parent": sub, "body": {"name": "v7"}}]
    status, body = bulk_raw(manager, ops)
    assert status == 409 and body["error"]["operation"] == 499
    assert "operation 499" in body["error"]["message"] and "already exists" in body["error"]["message"]
    assert [v["name"] for v in admin.get(f"/subnets/{sub}/vports")] == ["anchor"]
    # the next address handed out is the one it would have been without the failed bulk
    after = admin.post(f"/subnets/{sub}/vports", {"name": "probe"})
    assert (anchor["ip"], after["ip"]) == ("10.0.0.2", "10.0.0.3")
    bad_ref = vport_ops(sub, 3) + [{"action": "create", "kind": "acl", "parent": tree["dom"]["id"],
                                    "body": {"priority": 1, "source": {"type": "policygroup", "id": "$nope"}}}]
    status, body = bulk_raw(manager, bad_ref)
    assert status == 400 and body["error"]["operation"] == 3
    assert [v["name"] for v in admin.get(f"/subnets/{sub}/vports")] == ["anchor", "probe"]


def test_many_vports_in_one_transaction_get_distinct_addresses_also_with_concurrent_single_creates(
        manager, admin, tree):
    sub = tree["sub"]["id"]
    singles: list[dict] = []

    def single_creates(k):
        client = manager.client()
        try:
            for i in range(40):
                singles.append(client.post(f"/subnets/{sub}/vports", {"name": f"s{k}-{i}"}))
        finally:
            client.close()

    threads = [threading.Thread(target=single_creates, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    results = []
    for batch in range(2):
        status, body = bulk_raw(manager, vport_ops(sub, 500, prefix=f"b{batch}-", host="node-1"))
        assert status == 200, body
        results += body["results"]
    for t in threads:
        t.join()
    listed = admin.list(f"/subnets/{sub}/vports")
    assert len(listed) == 1000 + len(singles) == 1120
    assert len({v["ip"] for v in listed}) == 1120 and len({v["mac"] for v in listed}) == 1120
    assert {r["object"]["ip"] for r in results} <= {v["ip"] for v in listed}
    assert all(r["object"]["host"] == "node-1" and r["action"] == "create" for r in results)


def test_refs_build_a_tree_and_later_operations_update_and_delete(manager, admin, tree):
    dom = tree["dom"]["id"]
    status, body = bulk_raw(manager, [
        {"action": "create", "kind": "zone", "parent": dom, "ref": "app", "body": {"name": "app"}},
        {"action": "create", "kind": "subnet", "parent": "$app", "ref": "mid", "body": {"name": "mid",
                                                                                       "cidr": "10.1.0.0/24"}},
        {"action": "create", "kind": "policygroup", "parent": dom, "ref": "pg-app", "body": {"name": "app"}},
        {"action": "create", "kind": "vport", "parent": "$mid", "ref": "a1",
         "body": {"name": "a1", "policygroups": ["$pg-app"]}},
        {"action": "create", "kind": "acl", "parent": dom, "ref": "r1",
         "body": {"priority": 10, "source": {"type": "policygroup", "id": "$pg-app"},
                  "destination": {"type": "subnet", "id": "$mid"}, "protocol": "tcp", "dst_ports": "80"}},
        {"action": "create", "kind": "acl", "parent": dom, "body": {"priority": 20, "protocol": "tcp",
                                                                     "dst_ports": "80",
                                                                     "source": {"type": "policygroup",
                                                                                "id": "$pg-app"},
                                                                     "destination": {"type": "subnet",
                                                                                     "id": "$mid"}}},
        {"action": "update", "kind": "acl", "id": "$r1", "body": {"stateful": False}},
        {"action": "delete", "kind": "policygroup", "id": tree["pg"]["id"]},
    ])
    assert status == 200, body
    res = body["results"]
    assert [r["action"] for r in res] == ["create"] * 6 + ["update", "delete"]
    assert res[3]["object"]["policygroups"] == [res[2]["id"]]
    assert res[6]["object"]["stateful"] is False and res[6]["id"] == res[4]["id"]
    assert [w["code"] for w in res[5]["warnings"]] == ["shadowed"]  # rule 20 is covered by rule 10
    assert admin.find("policygroups", tree["pg"]["id"]) is None
    assert admin.get(f"/vports/{res[3]['id']}")["zone"] == res[0]["id"]


def test_dry_run_validates_and_changes_nothing(manager, admin, tree):
    sub = tree["sub"]["id"]
    status, body = bulk_raw(manager, vport_ops(sub, 5), params={"dry_run": "true"})
    assert status == 200 and body["dry_run"] is True and len(body["results"]) == 5
    assert admin.get(f"/subnets/{sub}/vports") == []
    status, body = bulk_raw(manager, vport_ops(sub, 2) + vport_ops(sub, 1), params={"dry_run": "true"})
    assert status == 409 and body["error"]["operation"] == 2


def test_size_and_shape_limits(manager, tree):
    status, body = bulk_raw(manager, vport_ops(tree["sub"]["id"], 2001))
    assert status == 413 and "at most 2000" in body["error"]["message"]
    status, body = bulk_raw(manager, [{"action": "create", "kind": "token", "body": {}}])
    assert status == 400
    status, body = bulk_raw(manager, [])
    assert status == 400


def test_an_enterprise_token_may_do_in_bulk_exactly_what_its_single_calls_may(manager, admin, tree):
    other = admin.post("/enterprises", {"name": "bulk-other"})
    try:
        odom = admin.post(f"/enterprises/{other['id']}/domains", {"name": "theirs"})
        tok = admin.post("/tokens", {"enterprise": tree["ent"]["id"]})["token"]
        mine = [{"action": "create", "kind": "zone", "parent": tree["dom"]["id"], "ref": "z", "body": {"name": "z"}},
                {"action": "create", "kind": "subnet", "parent": "$z", "body": {"name": "s", "cidr": "10.9.0.0/24"}}]
        status, body = bulk_raw(manager, mine, token=tok)
        assert status == 200, body
        cases = [
            ({"action": "create", "kind": "zone", "parent": odom["id"], "body": {"name": "x"}}, 404),
            ({"action": "update", "kind": "domain", "id": odom["id"], "body": {"description": "x"}}, 404),
            ({"action": "delete", "kind": "domain", "id": odom["id"], "cascade": True}, 404),
            ({"action": "create", "kind": "enterprise", "body": {"name": "mine-too"}}, 403),
            ({"action": "create", "kind": "host", "body": {"name": "h"}}, 403),
            ({"action": "delete", "kind": "enterprise", "id": tree["ent"]["id"], "cascade": True}, 403),
        ]
        for op, code in cases:
            status, body = bulk_raw(manager, vport_ops(tree["sub"]["id"], 2, prefix="t") + [op], token=tok)
            assert (status, body["error"]["operation"]) == (code, 2), (op, body)
            # another tenant's object reads exactly like one that does not exist
            assert "bulk-other" not in body["error"]["message"] and "theirs" not in body["error"]["message"]
        assert admin.get(f"/subnets/{tree['sub']['id']}/vports") == []
        assert admin.get(f"/domains/{odom['id']}/zones") == []
    finally:
        admin.delete(f"/enterprises/{other['id']}", cascade="true")


def test_pages_cover_every_item_exactly_once_while_items_are_added(manager, admin, tree):
    sub = tree["sub"]["id"]
    status, body = bulk_raw(manager, vport_ops(tree["sub"]["id"], 300, prefix="p"))
    assert status == 200
    initial = {r["id"] for r in body["results"]}
    stop = threading.Event()
    added: list[str] = []

    def add_more():
        client = manager.client()
        try:
            i = 0
            while not stop.is_set() and i < 200:
                added.append(client.post(f"/subnets/{sub}/vports", {"name": f"p{i:03d}x"})["id"])
                i += 1
        finally:
            client.close()

    adder = threading.Thread(target=add_more)
    adder.start()
    try:
        items, n_pages = pages(admin, f"/subnets/{sub}/vports", 7)
    finally:
        stop.set()
        adder.join()
    ids = [v["id"] for v in items]
    assert len(ids) == len(set(ids)), "an item was returned twice"
    assert initial <= set(ids), "an item that existed all along was skipped"
    assert set(ids) <= initial | set(added)
    assert n_pages >= 300 // 7
    keys = [(v["name"], v["id"]) for v in items]
    assert keys == sorted(keys)
    # the client walks the pages itself
    assert {v["id"] for v in admin.list(f"/subnets/{sub}/vports")} == initial | set(added)


def test_filters(manager, admin, tree):
    sub, pg = tree["sub"]["id"], tree["pg"]["id"]
    ops = (vport_ops(sub, 3, prefix="h1-", host="node-1") + vport_ops(sub, 2, prefix="h2-", host="node-2")
           + vport_ops(sub, 2, prefix="g-", policygroups=[pg], type="vm"))
    status, _body = bulk_raw(manager, ops)
    assert status == 200
    path = f"/subnets/{sub}/vports"
    assert {v["name"] for v in admin.list(path, host="node-2")} == {"h2-0", "h2-1"}
    assert {v["name"] for v in admin.list(path, policygroup=pg)} == {"g-0", "g-1"}
    assert {v["name"] for v in admin.list(path, type="vm", status="down")} == {"g-0", "g-1"}
    assert admin.list(path, status="up") == []
    assert [v["name"] for v in admin.list(f"/policygroups/{pg}/vports", name="g-1")] == ["g-1"]
    rule = admin.post(f"/domains/{tree['dom']['id']}/acls", {"priority": 5, "source": {"type": "policygroup",
                                                                                        "id": pg}})
    admin.post(f"/domains/{tree['dom']['id']}/acls", {"priority": 6, "action": "deny"})
    assert [a["id"] for a in admin.list(f"/domains/{tree['dom']['id']}/acls", policygroup=pg)] == [rule["id"]]
    assert [a["priority"] for a in admin.list(f"/domains/{tree['dom']['id']}/acls", action="deny")] == [6]
    for params in ({"status": "sideways"}, {"limit": "0"}, {"limit": "1001"}, {"page_token": "garbage"},
                   {"colour": "red"}):
        with pytest.raises(DirectoryError) as info:
            admin.get(path, **params)
        assert info.value.status == 400, params
