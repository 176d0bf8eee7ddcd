"""The Docker plugin driven over its real unix socket with the JSON sequences dockerd sends.

There is no Docker engine here, so the test plays dockerd: it sends the calls of
``docker network create -d nuage --ipam-driver nuage --subnet ... -o ...``,
``docker run --network ...`` and ``docker rm``, and does with the answers what
dockerd does (move the interface into the sandbox, rename it, set MAC, address
and default route), then checks real traffic. Failures in the middle are
followed by dockerd's own rollback calls, and nothing may leak.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from nuage_ryu.lab import dockerd as lab_dockerd
from nuage_ryu.lab.supervise import stop_process
from nuage_ryu.plugins.agent_client import AgentClient, AgentUnavailable
from tests.attach_helpers import (
    agent_process,
    directory_service,
    host_state,
    make_network,
    ns_exec,
    prepare_bridge,
)
from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name, wait_until

pytestmark = pytest.mark.integration
HOST = "docker-host-1"
EMPTY = {"ports": [], "links": [], "vports": []}
NET_OPTS = {"enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}


def _hex() -> str:
    return lab_dockerd.new_id()


@contextlib.contextmanager
def plugin_process(sock: str, agent_sock: str, spec: str):
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "nuage-docker-plugin"),
                             "--socket", sock, "--agent-socket", agent_sock, "--spec-file", spec],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Ready = socket and spec file: the plugin writes the spec just after its socket listens.
        wait_until(lambda: (os.path.exists(sock) and os.path.exists(spec)) or proc.poll() is not None,
                   message="plugin socket and spec file")
        assert proc.poll() is None, proc.stderr.read()
        yield proc
    finally:
        stop_process(proc, timeout=5)
        proc.stderr.close()


class Dockerd(lab_dockerd.Dockerd):
    """The library's dockerd stand-in, with the test's checks and namespace bookkeeping."""

    def __init__(self, sock: str, ovs, stack: contextlib.ExitStack):
        super().__init__(sock, host_netns=ovs.netns)
        self.ovs = ovs
        self.stack = stack

    def activate(self) -> None:
        assert super().activate() == {"Implements": ["NetworkDriver", "IpamDriver"]}
        assert self.ok("/NetworkDriver.GetCapabilities", None)["Scope"] == "local"
        assert self.ok("/IpamDriver.GetCapabilities", None) == {"RequiresMACAddress": False,
                                                                "RequiresRequestReplay": False}

    def network_create(self, pool: str = "10.10.1.0/24", options: dict | None = None,
                       ipam_options: dict | None = None) -> dict:
        return super().network_create(pool, NET_OPTS if options is None else options, ipam_options)

    def run(self, net: dict, endpoint_options: dict | None = None) -> dict:
        sandbox = self.stack.enter_context(namespace(unique_netns_name("nrd")))
        return super().run(net, sandbox, endpoint_options)


@pytest.fixture(scope="module")
def lab():
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(directory_service())
        ovs = stack.enter_context(private_ovs())
        net = make_network(directory, policygroups=("web", "db"))
        prepare_bridge(ovs)
        agent_sock = os.path.join(directory.state_dir, "agent.sock")
        plugin_sock = os.path.join(directory.state_dir, "plugins", "nuage.sock")
        spec = os.path.join(directory.state_dir, "etc", "nuage.spec")
        agent = stack.enter_context(agent_process(agent_sock, ovs.db_remote, directory, HOST, ovs.netns))
        plugin = stack.enter_context(plugin_process(plugin_sock, agent_sock, spec))
        yield {"directory": directory, "ovs": ovs, "net": net, "agent_sock": agent_sock,
               "plugin_sock": plugin_sock, "spec": spec, "agent": agent, "plugin": plugin, "stack": stack}


@pytest.fixture
def dockerd(lab):
    with contextlib.ExitStack() as stack:
        d = Dockerd(lab["plugin_sock"], lab["ovs"], stack)
        d.activate()
        yield d
    assert host_state(lab["ovs"], lab["directory"], HOST) == EMPTY


def test_spec_file(lab):
    with open(lab["spec"]) as spec:
        assert spec.read().strip() == f"unix://{lab['plugin_sock']}"


def test_network_run_traffic_rm(lab, dockerd):
    net = dockerd.network_create()
    assert "error" not in net, net
    web = dockerd.run(net, {"policygroup": "web,db"})
    db = dockerd.run(net)
    assert "error" not in web and "error" not in db, (web, db)
    # The IPAM address is the directory's, bound to the endpoint; OVS port carries the contract.
    vports = {v["ip"]: v for v in lab["directory"].host_vports(HOST)}
    vport = vports[web["address"].split("/")[0]]
    assert vport["mac"] == web["mac"] and vport["external_ids"]["nuage-container-id"] == web["id"]
    assert sorted(vport["policygroups"]) == sorted(p["id"] for p in lab["net"]["policygroups"].values())
    assert web["info"]["nuage.vport"] == vport["id"]
    port = web["info"]["nuage.port"]
    assert lab["ovs"].vsctl("get", "Interface", port, "external_ids:nuage-owner").strip() == "docker"
    # Real traffic between the two containers.
    ping = ns_exec(web["sandbox"], "ping", "-c", "2", "-i", "0.2", "-W", "2", db["address"].split("/")[0])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    dockerd.rm(web)
    dockerd.rm(db)
    dockerd.network_rm(net)


def test_network_by_ipam_options_and_bad_networks(lab, dockerd):
    net = dockerd.network_create(pool="", ipam_options=NET_OPTS)
    assert "error" not in net, net
    dockerd.network_rm(net)
    cases = [
        (dict(pool=""), "needs the directory subnet"),
        (dict(pool="10.99.0.0/24"), "no directory subnet has CIDR"),
        (dict(ipam_options={"bogus": "1"}), "unknown IPAM option"),
        (dict(options={"bogus": "1"}), "unknown network option"),
        (dict(options=dict(NET_OPTS, subnet="nope")), "not found"),
        (dict(pool="10.10.1.0/24", ipam_options=dict(NET_OPTS, zone="nope")), "not found"),
    ]
    for kwargs, message in cases:
        reply = dockerd.network_create(**kwargs)
        assert message in reply.get("error", ""), (kwargs, reply)
    for body in ({"AddressSpace": "x", "Pool": "", "SubPool": "", "Options": {}, "V6": True},
                 {"Pool": "10.10.1.0/24", "SubPool": "10.10.1.0/25"}):
        assert dockerd.call("/IpamDriver.RequestPool", body)["Error"]
    assert dockerd.call("/IpamDriver.RequestAddress", {"PoolID": "default:x", "Address": ""})["Error"]
    assert dockerd.call("/NetworkDriver.CreateEndpoint", {"NetworkID": "unknown", "EndpointID": "e1",
                                                          "Interface": {"Address": "10.10.1.9/24"}})["Err"]
    join = {"NetworkID": "n", "EndpointID": "nope", "SandboxKey": "/x"}
    assert dockerd.call("/NetworkDriver.Join", join)["Err"]
    # A request that cannot be decoded gets an HTTP error status, as the protocol asks.
    assert _raw_status(lab["plugin_sock"], b"{not json") == 400
    assert _raw_status(lab["plugin_sock"], b"[1, 2]") == 400


def _raw_status(sock: str, body: bytes) -> int:
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(b"POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    s.close()
    return int(reply.split(b"\r\n")[0].split()[1])


def test_failures_in_the_middle(lab, dockerd):
    net = dockerd.network_create()
    # 1. The agent dies between RequestAddress and CreateEndpoint: CreateEndpoint fails; dockerd's
    #    ReleaseAddress is sent again once the agent is back.
    def kill_agent():
        lab["agent"].terminate()
        lab["agent"].wait(10)
    addr = dockerd.ok("/IpamDriver.RequestAddress", {"PoolID": net["pool_id"], "Address": "", "Options": {}})
    kill_agent()
    reply = dockerd.call("/NetworkDriver.CreateEndpoint", {
        "NetworkID": net["id"], "EndpointID": _hex(), "Interface": {"Address": addr["Address"]},
        "Options": {}})
    assert "cannot reach the nuage agent" in reply["Err"]
    lab["agent"] = lab["stack"].enter_context(agent_process(
        lab["agent_sock"], lab["ovs"].db_remote, lab["directory"], HOST, lab["ovs"].netns))
    dockerd.release(net, addr["Address"])
    assert host_state(lab["ovs"], lab["directory"], HOST) == EMPTY
    # 2. Unknown policy group: CreateEndpoint fails and leaves nothing; dockerd releases the address.
    result = dockerd.run(net, {"policygroup": "nope"})
    assert "not found" in result["error"]
    assert host_state(lab["ovs"], lab["directory"], HOST) == EMPTY
    # 3. A MAC the directory did not assign.
    addr = dockerd.ok("/IpamDriver.RequestAddress", {"PoolID": net["pool_id"], "Address": "", "Options": {}})
    reply = dockerd.call("/NetworkDriver.CreateEndpoint", {
        "NetworkID": net["id"], "EndpointID": _hex(),
        "Interface": {"Address": addr["Address"], "MacAddress": "02:00:00:00:00:01"}, "Options": {}})
    assert "differs from the directory" in reply["Err"]
    dockerd.release(net, addr["Address"])
    # 4. The plugin restarts between network create and docker run: state is not in its memory.
    lab["plugin"].terminate()
    lab["plugin"].wait(5)
    lab["plugin"] = lab["stack"].enter_context(
        plugin_process(lab["plugin_sock"], lab["agent_sock"], lab["spec"]))
    ctr = dockerd.run(net)
    assert "error" not in ctr, ctr
    # 5. ReleaseAddress of an address still attached is refused; DeleteEndpoint twice is fine.
    reply = dockerd.call("/IpamDriver.ReleaseAddress", {"PoolID": net["pool_id"],
                                                        "Address": ctr["address"].split("/")[0]})
    assert "still attached" in reply["Error"]
    dockerd.rm(ctr)
    dockerd.ok("/NetworkDriver.DeleteEndpoint", {"NetworkID": net["id"], "EndpointID": ctr["id"]})
    dockerd.release(net, ctr["address"])
    dockerd.network_rm(net)
    dockerd.ok("/NetworkDriver.DeleteNetwork", {"NetworkID": net["id"]})
    # 6. The agent is unreachable for IPAM: an Error, not a crash.
    kill_agent()
    try:
        reply = dockerd.call("/IpamDriver.RequestPool", {"Pool": "10.10.1.0/24", "Options": {}})
        assert "cannot reach the nuage agent" in reply["Error"]
    finally:
        lab["agent"] = lab["stack"].enter_context(agent_process(
            lab["agent_sock"], lab["ovs"].db_remote, lab["directory"], HOST, lab["ovs"].netns))
    with pytest.raises(AgentUnavailable):
        AgentClient("/tmp/nuage-nothing-here.sock").status()
