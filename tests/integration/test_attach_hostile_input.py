"""The agent socket, the Docker plugin and nuage-cni under hostile input (issue 11, "Why" 3 and 5).

Real directory, OVS, agent process and plugin process. Each test failed on the code before:
a FIFO as CNI_NETNS hung the attach thread and every later call for that container; deeply
nested JSON answered 500 (agent), closed without a reply (Docker plugin) or CNI code 100;
duplicate keys were taken silently; Docker ids with '../' went into agent URLs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuage_ryu.plugins.agent_client import AgentClient, AgentError
from nuage_ryu.plugins.docker import NuageDriver
from tests.attach_helpers import (
    agent_process,
    directory_service,
    host_state,
    make_network,
    prepare_bridge,
    run_cni,
)
from tests.integration.test_docker_plugin import plugin_process
from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name

pytestmark = pytest.mark.integration
HOST = "hostile-host"
EMPTY = {"ports": [], "links": [], "vports": []}
DEEP = b"[" * 100000 + b"]" * 100000


@pytest.fixture(scope="module")
def lab():
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(directory_service())
        ovs = stack.enter_context(private_ovs())
        make_network(directory)
        prepare_bridge(ovs)
        agent_sock = os.path.join(directory.state_dir, "agent.sock")
        plugin_sock = os.path.join(directory.state_dir, "plugins", "nuage.sock")
        stack.enter_context(agent_process(agent_sock, ovs.db_remote, directory, HOST, ovs.netns))
        stack.enter_context(plugin_process(plugin_sock, agent_sock, os.path.join(directory.state_dir, "spec")))
        conf = {"cniVersion": "1.1.0", "name": "nuage", "type": "nuage-cni", "agent_socket": agent_sock,
                "enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}
        yield {"directory": directory, "ovs": ovs, "agent_sock": agent_sock, "plugin_sock": plugin_sock,
               "conf": conf}


def exchange(sock_path: str, request: bytes, timeout: float = 30.0) -> tuple[int, dict]:
    """One raw HTTP request on a unix socket; (status, JSON body). A closed reply raises."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head, "the server closed the connection without a reply"
    return int(head.split()[1]), json.loads(body)


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


# ---------------------------------------------------------------------------
# 3. CNI_NETNS pointing at a FIFO


def test_a_fifo_as_netns_is_refused_at_once_and_the_container_stays_usable(lab, tmp_path):
    fifo = str(tmp_path / "not-a-netns")
    os.mkfifo(fifo)
    agent = AgentClient(lab["agent_sock"], timeout=30)
    outcome: list = []

    def attach_to_fifo():  # straight to the agent socket: the plugin's own check is bypassed
        try:
            agent.attach(container_id="ctr-fifo", ifname="eth0", netns=fifo, owner="cni", network="nuage",
                         enterprise="acme", domain="prod", zone="web", subnet="web-net")
        except AgentError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attach_to_fifo, daemon=True)
    worker.start()
    worker.join(20)  # generous: it answers in milliseconds; before the fix it never did
    if worker.is_alive():
        with open(fifo, "wb"):  # unblock the agent's open() so that the module can end
            pass
        pytest.fail("the agent hung opening a FIFO given as the network namespace")
    assert outcome and outcome[0].status == 400 and "not a network namespace" in outcome[0].message
    rc, out = run_cni("ADD", lab["conf"], "ctr-fifo", fifo)
    assert (rc, out["code"]) == (1, 4), out
    assert host_state(lab["ovs"], lab["directory"], HOST) == EMPTY
    # later ADD / DEL / GC of the same container answer
    with namespace(unique_netns_name("nrh")) as name:
        netns = f"/var/run/netns/{name}"
        rc, result = run_cni("ADD", lab["conf"], "ctr-fifo", netns)
        assert rc == 0, result
        assert run_cni("DEL", lab["conf"], "ctr-fifo", netns) == (0, None)
    assert run_cni("GC", dict(lab["conf"], **{"cni.dev/valid-attachments": []})) == (0, None)
    assert host_state(lab["ovs"], lab["directory"], HOST) == EMPTY


@pytest.mark.parametrize("what", ["a folder", "/dev/null", "a regular file"])
def test_other_files_as_netns_are_refused(lab, tmp_path, what):
    path = {"a folder": str(tmp_path), "/dev/null": "/dev/null"}.get(what)
    if path is None:
        path = str(tmp_path / "file")
        open(path, "w").close()
    with pytest.raises(AgentError) as info:
        AgentClient(lab["agent_sock"], timeout=30).attach(
            container_id="ctr-file", ifname="eth0", netns=path, owner="cni", network="nuage",
            enterprise="acme", domain="prod", zone="web", subnet="web-net")
    assert info.value.status == 400
    assert host_state(lab["ovs"], lab["directory"], HOST) == EMPTY


# ---------------------------------------------------------------------------
# 5. deeply nested JSON, duplicate keys, ids in URLs: every surface


def test_agent_socket_refuses_deep_json_duplicate_keys_and_path_ids(lab):
    sock = lab["agent_sock"]
    for body in (DEEP, b'{"container_id":"a","container_id":"b"}', b"[" * 40 + b"]" * 40):
        status, answer = exchange(sock, post("/v1/detach", body))
        assert status == 400 and answer["error"]["code"] == "invalid", (body[:20], answer)
    status, answer = exchange(sock, post("/v1/detach", b"{}", b"Content-Length: x\r\n"))
    assert status == 400, answer
    agent = AgentClient(sock, timeout=30)
    for method, path, body in (("GET", "/v1/subnets/..", None), ("GET", "/v1/networks/..", None),
                               ("PUT", "/v1/networks/abc", {"subnet_id": "../enterprises"}),
                               ("POST", "/v1/reservations", {"subnet_id": "../x", "name": "r"}),
                               ("POST", "/v1/reservations/find", {"subnet_id": "..", "ip": "10.0.0.1"})):
        with pytest.raises(AgentError) as info:
            agent.call(method, path, body)
        assert info.value.status == 400, (path, info.value.message)


def test_docker_plugin_answers_deep_json_and_duplicate_keys_with_400(lab):
    sock = lab["plugin_sock"]
    for body in (DEEP, b'{"NetworkID":"a","NetworkID":"b"}'):
        status, answer = exchange(sock, post("/NetworkDriver.DeleteNetwork", body))
        assert status == 400 and answer["Err"], answer


@pytest.mark.parametrize("call,body", [
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "../../v1/status", "Options": {},
                                      "IPv4Data": [{"Pool": "10.10.1.0/24"}]}),
    ("/NetworkDriver.DeleteNetwork", {"NetworkID": "../networks/x"}),
    ("/NetworkDriver.CreateEndpoint", {"NetworkID": "a/b", "EndpointID": "e", "Interface": {}}),
    ("/IpamDriver.RequestAddress", {"PoolID": "nuage:../../enterprises", "Options": {}}),
    ("/IpamDriver.ReleaseAddress", {"PoolID": "nuage:..", "Address": "10.10.1.5"}),
    ("/NetworkDriver.Join", {"NetworkID": "n", "EndpointID": "..", "SandboxKey": "/x"}),
])
def test_docker_ids_are_checked_before_they_reach_agent_urls(lab, call, body):
    status, answer = exchange(lab["plugin_sock"], post(call, json.dumps(body).encode()))
    assert status == 200, answer
    assert "not a valid id" in answer["Err"] or "does not belong" in answer["Err"], answer


def test_cni_refuses_deep_json_and_duplicate_keys_with_a_decode_error(lab):
    for conf in ("[" * 100000 + "]" * 100000, '{"cniVersion":"1.1.0","cniVersion":"0.4.0"}'):
        rc, out = run_cni("ADD", conf, "ctr-deep", "/proc/self/ns/net")
        assert (rc, out["code"]) == (1, 6), out
        assert "internal error" not in out["msg"]


# ---------------------------------------------------------------------------
# Fuzzing (bounded): whatever arrives, a JSON answer, never a 500, a traceback or a closed socket

_KEYS = ["container_id", "ifname", "netns", "enterprise", "domain", "zone", "subnet", "policygroups", "owner",
         "network", "vport_id", "wait_up", "valid", "cidr", "subnet_id", "name", "ip", "NetworkID", "EndpointID",
         "PoolID", "Pool", "SubPool", "Address", "Options", "Interface", "IPv4Data", "IPv6Data", "SandboxKey",
         "V6", "MacAddress", "Gateway", "com.docker.network.generic", "policygroup", "RequestAddressType"]
_SCALARS = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=40) \
    | st.sampled_from(["", "..", "../../v1/status", "nuage:..", "/proc/self/ns/net", "/dev/zero", "eth0",
                       "10.10.1.0/24", "acme", "web-net", "a" * 300, "\u0000", "nuage:" + "0" * 36])
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), inner, max_size=6),
                     max_leaves=20)
_AGENT_PATHS = ["/v1/status", "/v1/attachments", "/v1/attach", "/v1/detach", "/v1/check", "/v1/gc",
                "/v1/resolve", "/v1/subnets/by-cidr", "/v1/subnets/x", "/v1/reservations",
                "/v1/reservations/find", "/v1/reservations/release", "/v1/networks/n1", "/v1/networks/..",
                "/v1/nothing"]
_BODIES = _JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200) \
    | st.sampled_from([DEEP, b'{"a":1,"a":2}', b"[NaN]", b"\xff", b'{"container_id":"\\ud800"}'])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), path=st.sampled_from(_AGENT_PATHS), body=_BODIES)
def test_fuzz_the_agent_socket(lab, method, path, body):
    status, answer = exchange(lab["agent_sock"], (method.encode() + post(path, body)[4:]) if method != "POST"
                              else post(path, body))
    assert status < 500 or answer["error"]["code"] == "unavailable", answer
    assert isinstance(answer, dict) and "Traceback" not in json.dumps(answer)
    if status >= 400:
        assert answer["error"]["code"] != "failed" or "Error:" not in answer["error"]["message"], answer


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(call=st.sampled_from(sorted(NuageDriver(AgentClient("/nonexistent")).routes()) + ["/Nope.Call"]),
       body=_BODIES)
def test_fuzz_the_docker_plugin(lab, call, body):
    status, answer = exchange(lab["plugin_sock"], post(call, body))
    assert status in (200, 400, 404), (status, answer)
    assert isinstance(answer, dict)
    assert "internal error" not in answer.get("Err", ""), (call, body[:200], answer)
