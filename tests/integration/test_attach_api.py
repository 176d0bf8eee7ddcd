"""The agent socket protocol itself: every endpoint answers, bad requests get 4xx and change nothing."""

from __future__ import annotations

import os
import socket

import pytest

from nuage_ryu.plugins.agent_client import AgentClient, AgentError
from tests.attach_helpers import (
    agent_process,
    directory_service,
    host_state,
    make_network,
    prepare_bridge,
)
from tests.ovs_fixtures import private_ovs

pytestmark = pytest.mark.integration
HOST = "api-host"


def raw(sock: str, request: bytes) -> int:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(request)
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    s.close()
    return int(reply.split(b"\r\n")[0].split()[1])


def test_agent_api_endpoints_and_bad_requests():
    with directory_service() as directory, private_ovs() as ovs:
        net = make_network(directory)
        prepare_bridge(ovs)
        sock = os.path.join(directory.state_dir, "agent.sock")
        with agent_process(sock, ovs.db_remote, directory, HOST, ovs.netns):
            agent = AgentClient(sock)
            status = agent.status()
            assert status["ready"] and status["mtu"] == 1450 and status["problems"] == []
            assert agent.attachments() == []
            names = {"enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}
            resolved = agent.call("POST", "/v1/resolve", names)
            assert resolved["subnet"]["id"] == net["subnet"]["id"]
            assert agent.call("POST", "/v1/subnets/by-cidr", {"cidr": "10.10.1.0/24"})["subnets"][0]["id"] \
                == net["subnet"]["id"]
            assert agent.call("GET", f"/v1/subnets/{net['subnet']['id']}")["cidr"] == "10.10.1.0/24"
            agent.call("PUT", "/v1/networks/abc", {"subnet_id": net["subnet"]["id"]})
            assert agent.call("GET", "/v1/networks/abc")["subnet_id"] == net["subnet"]["id"]
            agent.call("DELETE", "/v1/networks/abc")
            bad = [
                ("GET", "/v1/nothing", None, 404), ("DELETE", "/v1/status", None, 400),
                ("POST", "/v1/attach", {"container_id": 1}, 400), ("POST", "/v1/attach", {"x": "y"}, 400),
                ("POST", "/v1/attach", {"container_id": "c", "ifname": "eth0", "netns": "/nope",
                                        "enterprise": "acme", "domain": "prod", "zone": "web",
                                        "subnet": "web-net"}, 400),
                ("POST", "/v1/attach", {"container_id": "c", "ifname": "nrt9", "netns": "/proc/self/ns/net",
                                        "enterprise": "acme", "domain": "prod", "zone": "web",
                                        "subnet": "nope"}, 404),
                ("POST", "/v1/detach", {}, 400), ("POST", "/v1/detach", {"container_id": "a b"}, 400),
                ("POST", "/v1/check", {"container_id": "c", "ifname": "eth0"}, 412),
                ("POST", "/v1/gc", {"valid": "x"}, 400), ("POST", "/v1/gc", {"valid": [1]}, 400),
                ("POST", "/v1/gc", {"valid": [], "owner": "kubelet"}, 400),
                ("POST", "/v1/resolve", {"enterprise": "acme"}, 400),
                ("POST", "/v1/subnets/by-cidr", {"cidr": "not-a-cidr"}, 400),
                ("GET", "/v1/subnets/00000000-0000-0000-0000-000000000000", None, 404),
                ("GET", "/v1/networks/unknown", None, 404),
                ("POST", "/v1/reservations/release", {"subnet_id": net["subnet"]["id"], "ip": "10.10.1.99"},
                 None),
            ]
            for method, path, body, status_code in bad:
                if status_code is None:
                    assert agent.call(method, path, body) == {"released": None}
                    continue
                with pytest.raises(AgentError) as err:
                    agent.call(method, path, body)
                assert err.value.status == status_code, (method, path, err.value.message)
                assert err.value.message
            assert raw(sock, b"POST /v1/attach HTTP/1.1\r\nContent-Length: 5\r\n\r\n{nope") == 400
            assert raw(sock, b"POST /v1/attach HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n") == 400
            assert host_state(ovs, directory, HOST) == {"ports": [], "links": [], "vports": []}
            assert agent.status()["ready"]
