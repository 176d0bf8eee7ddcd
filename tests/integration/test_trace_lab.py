"""Explain a packet on a real 3-host lab: POST /api/v1/trace and ``nuage-ctl trace`` answer the demo's
15 matrix cases with the right rule, and the source host's ofproto/trace agrees.

The lab is the demo's (nuage_ryu/lab/demo.py): acme's 3-tier application (default deny, rule 100
web -> app tcp/8080, rule 200 app -> db tcp/5432, both stateful) and globex (default allow, the same
CIDR as acme's web tier); containers web1/web2/app1/db1/web3, g1/g2, a VM vm1 and a bare-metal
server db2 behind a ToR gateway port (VLAN 100), on the same hosts as in the demo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.errors import DirectoryError
from nuage_ryu.lab import guests
from nuage_ryu.lab.demo import MATRIX, build_tenants
from tests.lab_helpers import Containers, lab_with_plane, ns_run, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, OVS)")]

PLAN = (("web1", "acme", "h1", "web"), ("web2", "acme", "h2", "web"), ("app1", "acme", "h2", "app"),
        ("db1", "acme", "h3", "db"), ("web3", "acme", "h3", "web"), ("g1", "globex", "h1", "web"),
        ("g2", "globex", "h3", "web"))


def expected_deciding(why: str) -> int | None:
    """The priority of the rule the demo names in its 'why' column; None: the default action."""
    for priority in (100, 200):
        if f"rule {priority}" in why:
            return priority
    return None


@pytest.fixture(scope="module")
def demo_lab():
    with lab_with_plane(3, tag="trc") as (lab, plane), Containers(lab, plane) as containers:
        client = containers.client
        tor = None
        try:
            acme = build_tenants(client)
            (globex,) = [e for e in client.request("GET", "/enterprises") if e["name"] == "globex"]
            (gdomain,) = client.request("GET", f"/enterprises/{globex['id']}/domains")
            (gzone,) = client.request("GET", f"/domains/{gdomain['id']}/zones")
            (gsubnet,) = client.request("GET", f"/zones/{gzone['id']}/subnets")
            for name, tenant, host, tier in PLAN:
                if tenant == "acme":
                    containers.add(name, host, acme["subnets"][tier], policygroups=[acme["groups"][tier]["id"]])
                else:
                    containers.add(name, host, gsubnet)
            containers.add("vm1", "h3", acme["subnets"]["web"], type="vm", policygroups=[acme["groups"]["web"]["id"]])
            h1 = lab.host("h1")
            tor = guests.add_tor(h1, f"{lab.prefix}-tor", f"{lab.prefix}gw1", f"{lab.prefix}tk1")
            db2 = client.request("POST", f"/subnets/{acme['subnets']['db']['id']}/vports", {
                "name": "db2", "type": "host", "host": h1.host_name, "policygroups": [acme["groups"]["db"]["id"]],
                "external_ids": {"gateway_port": tor.gateway_port, "vlan": "100"}})
            wait_until(lambda: client.request("GET", f"/vports/{db2['id']}")["status"] == "up", timeout=30,
                       message="bare-metal vport db2 up")
            yield lab, plane, containers
        finally:
            if tor is not None:
                guests.remove_tor(tor)


def trace(client, src: str, dst: str, **fields) -> dict:
    return client.request("POST", "/trace", {"from": src, "to": dst, **fields})


def test_the_demo_matrix_is_explained_with_its_rule_and_the_datapath_agrees(demo_lab):
    _lab, plane, _containers = demo_lab
    client = plane.client()
    answers = []
    for src, dst, port, allowed, why in MATRIX:
        answer = trace(client, src.split("@")[0], dst.split("@")[0], protocol="tcp", port=port)
        answers.append(answer)
        label = f"{src} -> {dst}:{port} ({why}): {json.dumps(answer, indent=1)[:3000]}"
        assert answer["verdict"] == ("allow" if allowed else "deny"), label
        want = expected_deciding(why)
        if want is None:
            assert answer["rule"] is None and answer["default_action"] is True, label
        else:
            assert answer["rule"]["priority"] == want and answer["default_action"] is False, label
        assert answer["datapath"] == "agree", label
        assert answer["path"]["hosts"][0] == answer["from"]["host"], label
        assert answer["path"]["hops"][0]["observed"] is True, label
    print(f"{len(answers)} traces, all datapath: agree; answer times "
          f"{sorted(a['datapath_detail']['seconds'] for a in answers)}")


def test_the_path_names_both_hosts_and_the_tables_of_a_crossing_flow(demo_lab):
    client = demo_lab[1].client()
    answer = trace(client, "web1", "app1", protocol="tcp", port=8080)
    assert answer["path"]["hosts"] == [answer["from"]["host"], answer["to"]["host"]]
    sender, receiver = answer["path"]["hops"]
    names = [t["name"] for t in sender["tables"]]
    assert names[:4] == ["CLASSIFY", "INGRESS_CT", "INGRESS_CT_STATE", "INGRESS_POLICY"], names
    assert names[-1] == "OUTPUT" and receiver["role"] == "receiver"
    observed = answer["datapath_detail"]["observed"]
    assert observed["output"]["host"] == answer["to"]["host"] and observed["policy"]["rule"] == answer["rule"]["id"]
    denied = trace(client, "web1", "db1", protocol="tcp", port=5432)
    assert [t["name"] for t in denied["path"]["hops"][0]["tables"]][-2:] == ["INGRESS_POLICY", "POLICY_DROP"]
    assert denied["datapath_detail"]["observed"]["policy"]["default_action"] is True


def test_icmp_udp_and_address_ends(demo_lab):
    client = demo_lab[1].client()
    ping = trace(client, "web1", "app1", protocol="icmp")
    assert ping["verdict"] == "deny" and ping["default_action"] and ping["datapath"] == "agree"
    to_ip = trace(client, "app1", trace(client, "app1", "db1", protocol="tcp", port=5432)["to"]["ip"],
                  protocol="tcp", port=5432)
    assert to_ip["rule"]["priority"] == 200 and to_ip["datapath"] == "agree"
    held = trace(client, to_ip["from"]["ip"], "db1", protocol="tcp", port=5432)  # app1's address: app1 itself
    assert held["from"]["name"] == "app1" and held["rule"]["priority"] == 200 and held["datapath"] == "agree"
    from_ip = trace(client, "10.10.2.200", "db1", protocol="udp", port=53)  # an address no vport holds
    assert from_ip["datapath"] == "unavailable" and "address" in from_ip["datapath_detail"]["reason"]
    assert from_ip["verdict"] == "deny"


def test_bad_requests_are_4xx_with_a_json_body(demo_lab):
    client = demo_lab[1].client()
    for body, status in (({"from": "web1"}, 422), ({"from": "web1", "to": "nobody"}, 404),
                         ({"from": "web1", "to": "app1", "protocol": "tcp"}, 422),
                         ({"from": "web1", "to": "app1", "protocol": "gre"}, 422),
                         ({"from": "web1", "to": "app1", "port": 99999}, 422),
                         ({"from": "web1", "to": "app1", "extra": 1}, 400),
                         ({"from": "10.99.0.1", "to": "10.99.0.2"}, 422), ([1, 2], 400)):
        with pytest.raises(DirectoryError) as err:
            client.request("POST", "/trace", body)
        assert err.value.status == status, (body, err.value)


def test_a_tenant_traces_only_inside_its_enterprise(demo_lab):
    client = demo_lab[1].client()
    (acme,) = [e for e in client.request("GET", "/enterprises") if e["name"] == "acme"]
    token = client.request("POST", "/tokens", {"enterprise": acme["id"], "name": "trc-tenant"})["token"]
    tenant = DirectoryClient("unix:" + demo_lab[1].api_socket, token, timeout=10.0, keep_alive=False)
    assert trace(tenant, "web1", "app1", protocol="tcp", port=8080)["datapath"] == "agree"
    with pytest.raises(DirectoryError) as err:
        trace(tenant, "g1", "g2", protocol="tcp", port=8080)
    assert err.value.status == 404


def test_nuage_ctl_trace_answers_like_the_api(demo_lab):
    plane = demo_lab[1]
    ctl = os.path.join(os.path.dirname(sys.executable), "nuage-ctl")
    base = [ctl, "--socket", plane.api_socket, "--token-file", plane.token_file, "trace"]
    proc = subprocess.run(base + ["web1", "db1", "--protocol", "tcp", "--port", "5432"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "deny" in proc.stdout and "default action" in proc.stdout and "agree" in proc.stdout, proc.stdout
    print(proc.stdout)
    proc = subprocess.run(base + ["app1", "db1", "--port", "5432", "-o", "json"], capture_output=True,
                          text=True, timeout=60)
    answer = json.loads(proc.stdout)
    assert answer["rule"]["priority"] == 200 and answer["datapath"] == "agree"
    if os.environ.get("NUAGE_TRACE_SAMPLE"):  # refreshes the canned answer of the golden test
        with open(os.environ["NUAGE_TRACE_SAMPLE"], "w") as f:
            f.write(proc.stdout)


def test_a_host_answers_only_its_own_trace_requests(demo_lab):
    """RBAC (ovsdb/rbac.py): with h1's certificate, a host may write the answer of h1's trace requests
    only; another host's request, a new request, or deleting one are refused."""
    from tests.integration.test_rbac import _transact

    lab, plane, _containers = demo_lab
    h1, h2 = lab.hosts[0], lab.hosts[1]

    def insert(host_name: str) -> str:
        out = ns_run(plane.lab.controller_node.netns, [
            "ovsdb-client", "transact", plane.local_directory_db, json.dumps(["Nuage_Directory", {
                "op": "insert", "table": "TraceRequest", "row": {
                    "host": host_name, "request": "{}", "answer": "", "state": "pending",
                    "expires": 0}}])])
        return json.loads(out.stdout)[0]["uuid"][1]

    def answer(row: str) -> dict:
        return {"op": "update", "table": "TraceRequest", "where": [["_uuid", "==", ["uuid", row]]],
                "row": {"answer": '{"verdict": "allow"}', "state": "answered"}}

    theirs, mine = insert(h2.host_name), insert(h1.host_name)
    assert "permission error" in _transact(plane, h1, answer(theirs))
    out = _transact(plane, h1, answer(mine))
    assert json.loads(out)[0] == {"count": 1}, out
    assert "permission error" in _transact(plane, h1, {"op": "insert", "table": "TraceRequest", "row": {
        "host": h1.host_name, "request": "{}", "answer": "", "state": "pending", "expires": 0}})
    assert "permission error" in _transact(plane, h1, {"op": "delete", "table": "TraceRequest",
                                                       "where": [["_uuid", "==", ["uuid", mine]]]})
    # Expired rows like these are deleted by the directory with its next trace request.
    trace(plane.client(), "web1", "app1", protocol="tcp", port=8080)
    out = ns_run(plane.lab.controller_node.netns, ["ovsdb-client", "transact", plane.local_directory_db, json.dumps(
        ["Nuage_Directory", {"op": "select", "table": "TraceRequest", "where": [], "columns": ["_uuid"]}])])
    assert json.loads(out.stdout)[0]["rows"] == [], out.stdout
