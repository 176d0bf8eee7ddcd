"""The OpenAPI document matches the behaviour: real requests and responses validated with openapi-core,
and a bounded, seeded fuzz of bad bodies that must never produce a 5xx."""

from __future__ import annotations

import json
import random
import shutil

import openapi_spec_validator
import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from nuage_ryu.directory.api import ROUTES
from nuage_ryu.directory.model import FIELDS, KINDS
from nuage_ryu.directory.store import DirectoryStore
from nuage_ryu.directory.testing import wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@pytest.fixture(scope="module")
def spec(manager):
    doc = requests.get(manager.url + "/api/v1/openapi.json", timeout=10).json()
    openapi_spec_validator.validate(doc)
    return doc


class Checked:
    """Sends requests with `requests` and validates each against the OpenAPI document."""

    def __init__(self, manager, spec, token=None):
        self.base = manager.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or manager.token}"
        self.openapi = OpenAPI.from_dict(spec)
        self.checked = 0

    def __call__(self, method, path, body=None, params=None, valid_request=True):
        req = requests.Request(method, self.base + "/api/v1" + path, json=body, params=params,
                               headers=dict(self.session.headers))
        prepared = self.session.prepare_request(req)
        resp = self.session.send(prepared, timeout=30)
        oreq = RequestsOpenAPIRequest(prepared)
        if valid_request:
            self.openapi.validate_request(oreq)
        self.openapi.validate_response(oreq, RequestsOpenAPIResponse(resp))
        self.checked += 1
        return resp


def test_document_covers_every_route_and_field(spec):
    for route in ROUTES:
        item = spec["paths"]["/api/v1" + route.pattern]
        assert set(item) - {"parameters"} == {m.lower() for m in route.methods}
    schemas = spec["components"]["schemas"]
    for kind in KINDS:
        name = {"policygroup": "PolicyGroup", "acl": "ACL", "vport": "VPort", "token": "ApiToken"}.get(
            kind, kind.capitalize())
        assert set(schemas[name]["properties"]) >= {f.name for f in FIELDS[kind]}


def test_real_requests_and_responses_match_the_document(manager, spec):
    call = Checked(manager, spec)
    ent = call("POST", "/enterprises", {"name": "oa", "description": "d"}).json()
    dom = call("POST", f"/enterprises/{ent['id']}/domains", {"name": "d", "default_action": "allow"}).json()
    zone = call("POST", f"/domains/{dom['id']}/zones", {"name": "z"}).json()
    sub = call("POST", f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.0.0.0/24"}).json()
    pg = call("POST", f"/domains/{dom['id']}/policygroups", {"name": "pg"}).json()
    vp = call("POST", f"/subnets/{sub['id']}/vports", {"name": "v", "policygroups": [pg["id"]],
                                                         "external_ids": {"k": "v"}}).json()
    rule = call("POST", f"/domains/{dom['id']}/acls", {
        "priority": 10, "source": {"type": "policygroup", "id": pg["id"]},
        "destination": {"type": "cidr", "cidr": "10.9.0.0/16"}, "protocol": 6, "dst_ports": "22"}).json()
    call("POST", f"/domains/{dom['id']}/acls", {"priority": 11, "protocol": "icmp", "icmp_type": 8})
    shadowed = call("POST", f"/domains/{dom['id']}/acls", {"priority": 13, "protocol": "icmp", "icmp_type": 8,
                                                           "icmp_code": 0}).json()
    assert [w["code"] for w in shadowed["warnings"]] == ["shadowed"]  # its warning matched the schema
    agent = DirectoryStore("unix:" + manager.db_socket)
    agent.start()
    try:
        agent.register_host("oa-agent", None, None)
        wait_until(lambda: rule["id"] in agent.snapshot().acls, 5, what="the agent to see the rule")
        agent.report_counters("oa-agent", {rule["id"]: (3, 180)}, {dom["id"]: (1, 60)})
    finally:
        agent.stop()
    wait_until(lambda: call("GET", f"/acls/{rule['id']}").json()["counters"]["packets"] == 3, 5,
               what="the counters in GET")
    host = call("POST", "/hosts", {"name": "oa-host", "tunnel_ip": "192.0.2.9"}).json()
    tok = call("POST", "/tokens", {"enterprise": ent["id"], "name": "t"}).json()
    assert call("GET", f"/domains/{dom['id']}").json()["default_action_counters"]["by_host"] == {
        "oa-agent": {"packets": 1, "bytes": 60}}
    for path in ("/enterprises", f"/enterprises/{ent['id']}/domains", f"/domains/{dom['id']}/zones",
                 f"/zones/{zone['id']}/subnets", f"/subnets/{sub['id']}/vports",
                 f"/domains/{dom['id']}/policygroups", f"/domains/{dom['id']}/acls", "/hosts", "/tokens",
                 f"/policygroups/{pg['id']}/vports"):
        assert call("GET", path).status_code == 200
    call("GET", "/enterprises", params={"name": "oa"})
    for kind, obj in (("enterprises", ent), ("domains", dom), ("zones", zone), ("subnets", sub),
                      ("vports", vp), ("policygroups", pg), ("acls", rule), ("hosts", host), ("tokens", tok)):
        assert call("GET", f"/{kind}/{obj['id']}").status_code == 200
    assert call("PUT", f"/vports/{vp['id']}", {"host": "oa-host"}).status_code == 200
    assert call("PUT", f"/acls/{rule['id']}", {"dst_ports": "2222"}).status_code == 200
    assert call("PUT", f"/hosts/{host['id']}", {"datapath_id": "1"}).status_code == 200
    assert call("POST", f"/policygroups/{pg['id']}/vports", {"vports": [vp["id"]]}).status_code == 200
    assert call("PUT", f"/policygroups/{pg['id']}/vports", {"vports": []}).status_code == 200
    # error responses match the Error schema too
    overlap = {"name": "s2", "cidr": "10.0.0.0/25"}
    assert call("POST", f"/zones/{zone['id']}/subnets", overlap).status_code == 409
    # (the document now states the protocol names itself: this request is outside it, the 422 stays)
    assert call("POST", f"/domains/{dom['id']}/acls", {"priority": 12, "protocol": "gre"},
                valid_request=False).status_code == 422
    assert call("GET", "/domains/00000000-0000-0000-0000-000000000000").status_code == 404
    assert call("DELETE", f"/domains/{dom['id']}").status_code == 409
    assert call("POST", "/enterprises", {"name": 1}, valid_request=False).status_code == 400
    # (vni is readOnly on PUT in the document: accepted unchanged only, so this body is outside it)
    assert call("PUT", f"/domains/{dom['id']}", {"vni": 77}, valid_request=False).status_code == 422
    tenant = Checked(manager, spec, tok["token"])
    assert tenant("POST", "/hosts", {"name": "x"}).status_code == 403
    assert Checked(manager, spec, "bad")("GET", "/hosts").status_code == 401
    assert call("DELETE", f"/tokens/{tok['id']}").status_code == 204
    assert call("DELETE", f"/domains/{dom['id']}", params={"cascade": "true"}).status_code == 204
    assert call("DELETE", f"/enterprises/{ent['id']}").status_code == 204
    assert call("DELETE", f"/hosts/{host['id']}").status_code == 204
    agent_host = call("GET", "/hosts", params={"name": "oa-agent"}).json()[0]
    assert call("DELETE", f"/hosts/{agent_host['id']}").status_code == 204
    assert call.checked > 40


def test_bulk_and_list_pages_match_the_document(manager, spec):
    call = Checked(manager, spec)
    ent = call("POST", "/enterprises", {"name": "oa-bulk"}).json()
    ops = [{"action": "create", "kind": "domain", "parent": ent["id"], "ref": "d", "body": {"name": "d"}},
           {"action": "create", "kind": "zone", "parent": "$d", "ref": "z", "body": {"name": "z"}},
           {"action": "create", "kind": "subnet", "parent": "$z", "ref": "s", "body": {"name": "s",
                                                                                    "cidr": "10.3.0.0/24"}},
           {"action": "create", "kind": "policygroup", "parent": "$d", "ref": "g", "body": {"name": "g"}},
           {"action": "create", "kind": "acl", "parent": "$d", "ref": "r", "body": {
               "priority": 1, "source": {"type": "policygroup", "id": "$g"}}},
           {"action": "create", "kind": "acl", "parent": "$d", "body": {
               "priority": 2, "source": {"type": "policygroup", "id": "$g"}}},
           {"action": "update", "kind": "acl", "id": "$r", "body": {"stateful": False}}]
    ops += [{"action": "create", "kind": "vport", "parent": "$s", "body": {"name": f"v{i}", "policygroups": ["$g"]}}
            for i in range(5)]
    assert call("POST", "/bulk", {"operations": ops}, params={"dry_run": "true"}).status_code == 200
    res = call("POST", "/bulk", {"operations": ops}).json()["results"]
    sub = res[2]["id"]
    assert call("POST", "/bulk", {"operations": ops[7:8]}).status_code == 400  # unknown $s
    assert call("POST", "/bulk", {"operations": [{"action": "create", "kind": "vport", "parent": sub,
                                                  "body": {"name": "v1"}}]}).status_code == 409
    first = call("GET", f"/subnets/{sub}/vports", params={"limit": 2, "host": "", "status": "down"})
    assert first.status_code == 200 and len(first.json()) == 2 and first.headers["X-Next-Page-Token"]
    rest = call("GET", f"/subnets/{sub}/vports", params={"limit": 10, "page_token": first.headers["X-Next-Page-Token"]})
    assert len(rest.json()) == 3 and "X-Next-Page-Token" not in rest.headers
    assert call("GET", f"/policygroups/{res[3]['id']}/vports", params={"limit": 1}).status_code == 200
    assert call("GET", f"/domains/{res[0]['id']}/acls", params={"policygroup": res[3]["id"], "action": "allow"}
                ).status_code == 200
    assert call("GET", "/hosts", params={"connected": "true"}).status_code == 200
    assert call("GET", f"/subnets/{sub}/vports", params={"limit": "0"}, valid_request=False).status_code == 400
    assert call("DELETE", f"/enterprises/{ent['id']}", params={"cascade": "true"}).status_code == 204


def _mutations(rng: random.Random, body: dict) -> dict:
    junk = [None, 0, -1, 2**70, 1.5, True, "", "x" * 300, [], {}, ["a"], {"type": "zone"}, "10.0.0.0/33",
            "ff:ff:ff:ff:ff:ff", "\u0000", "\ud800", "999999", "1-0", {"a": 1}, 1e309]
    out = dict(body)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(list(out) + ["bogus"])
        out[key] = rng.choice(junk)
    return out


def test_fuzzed_bad_bodies_never_cause_5xx_or_change_state(manager, spec):
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {manager.token}"
    base = manager.url + "/api/v1"
    ent = s.post(base + "/enterprises", json={"name": "fuzz"}).json()
    dom = s.post(f"{base}/enterprises/{ent['id']}/domains", json={"name": "d"}).json()
    zone = s.post(f"{base}/domains/{dom['id']}/zones", json={"name": "z"}).json()
    sub = s.post(f"{base}/zones/{zone['id']}/subnets", json={"name": "s", "cidr": "10.0.0.0/24"}).json()
    valid = {
        f"/enterprises/{ent['id']}/domains": {"name": "n", "vni": 9, "default_action": "deny"},
        f"/domains/{dom['id']}/zones": {"name": "n"},
        f"/zones/{zone['id']}/subnets": {"name": "n", "cidr": "10.1.0.0/24", "gateway": "10.1.0.1"},
        f"/subnets/{sub['id']}/vports": {"name": "n", "ip": "10.0.0.9", "mac": "02:00:00:00:00:09",
                                          "type": "vm", "host": "h", "policygroups": [], "external_ids": {}},
        f"/domains/{dom['id']}/acls": {"priority": 5, "protocol": "tcp", "dst_ports": "80",
                                        "source": {"type": "any"}, "action": "allow", "stateful": True},
        "/hosts": {"name": "fuzz-host", "tunnel_ip": "192.0.2.1", "datapath_id": "1"},
    }
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    for _ in range(300):
        path, body = rng.choice(list(valid.items()))
        data = _mutations(rng, body)
        resp = s.post(base + path, data=json.dumps(data), headers={"Content-Type": "application/json"})
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        assert resp.status_code < 500, (path, data, resp.text)
        if resp.status_code == 201:  # a mutation that happened to be valid: undo it
            undo = s.delete(resp.headers["Location"], params={"cascade": "true"})
            assert undo.status_code == 204, (resp.headers["Location"], undo.text)
        else:
            err = resp.json()["error"]
            assert err["code"] and err["message"]
    assert statuses.get(400, 0) > 50 and statuses.get(422, 0) > 10
    # nothing half-applied: the tree is as it was
    assert [z["id"] for z in s.get(f"{base}/domains/{dom['id']}/zones").json()] == [zone["id"]]
    assert s.get(f"{base}/subnets/{sub['id']}/vports").json() == []
    assert s.get(f"{base}/domains/{dom['id']}/acls").json() == []
    s.delete(f"{base}/enterprises/{ent['id']}", params={"cascade": "true"})
