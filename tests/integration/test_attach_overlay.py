"""The plugins on a 2-host lab with the real VRS agents: attach through the agent socket, traffic over VXLAN.

Each lab host runs its own OVS and VRS agent (which hosts the attach service on
its agent socket and reports a vport ``up`` once its flows are confirmed). A
container on h1 is attached with ``nuage-cni``, one on h2 through the Docker
plugin's dockerd sequence; they ping each other across the overlay; then both
are removed and no port, veth or vport is left on either host.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid

import pytest

from nuage_ryu.plugins.agent_client import AgentClient
from tests.attach_helpers import make_network, run_cni, tcp_exchange
from tests.lab_helpers import lab_with_plane, ns_run
from tests.ovs_fixtures import namespace, unique_netns_name, wait_until

pytestmark = pytest.mark.integration


def leftovers(lab, plane, host) -> dict:
    ports = [p for p in host.ovs.vsctl("list-ports", "br-int").split() if p.startswith("nr")]
    links = ns_run(host.netns, ["ip", "-o", "link"]).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    vports = [v["id"] for v in plane.client().host_vports(host.host_name)]
    return {"ports": ports, "links": [n for n in names if n.startswith(("nr", "nc")) and len(n) == 13],
            "vports": vports}


@pytest.fixture(scope="module")
def lab2():
    with lab_with_plane(2, tag="at") as (lab, plane):
        yield lab, plane


def test_cni_and_docker_containers_talk_across_hosts(lab2):
    lab, plane = lab2
    h1, h2 = lab.hosts[:2]
    net = make_network(plane.client(), enterprise="att", cidr="10.50.0.0/24", policygroups=("web",))
    conf = {"cniVersion": "1.1.0", "name": "nuage", "type": "nuage-cni",
            "agent_socket": plane.agent_socket(h1), "enterprise": "att", "domain": "prod", "zone": "web",
            "subnet": "web-net", "policygroups": ["web"]}
    with contextlib.ExitStack() as stack:
        plugin_sock = os.path.join(plane.root, "docker", "nuage.sock")
        plugin = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "nuage-docker-plugin"),
                                   "--socket", plugin_sock, "--agent-socket", plane.agent_socket(h2)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(lambda: (plugin.terminate(), plugin.wait(10)))
        wait_until(lambda: os.path.exists(plugin_sock), message="docker plugin socket")
        # h1: CNI ADD returns once the agent confirmed the vport's flows.
        ns1 = stack.enter_context(namespace(unique_netns_name("nra")))
        rc, result = run_cni("ADD", conf, "overlay-c1", f"/var/run/netns/{ns1}")
        assert rc == 0, result
        ip1 = result["ips"][0]["address"].split("/")[0]
        vport1 = [v for v in plane.client().host_vports(h1.host_name) if v["ip"] == ip1][0]
        assert vport1["status"] == "up"
        # h2: the dockerd sequence of `docker network create` + `docker run`.
        docker = AgentClient(plugin_sock)
        pool = docker.call("POST", "/IpamDriver.RequestPool", {
            "AddressSpace": "nuage-local", "Pool": "10.50.0.0/24", "Options": {}, "V6": False})
        network_id, endpoint_id = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
        reply = docker.call("POST", "/NetworkDriver.CreateNetwork", {
            "NetworkID": network_id, "Options": {"com.docker.network.generic": {
                "enterprise": "att", "domain": "prod", "zone": "web", "subnet": "web-net"}},
            "IPv4Data": [{"AddressSpace": "nuage-local", "Pool": pool["Pool"],
                          "Gateway": pool["Data"]["com.docker.network.gateway"]}], "IPv6Data": []})
        assert not reply.get("Err"), reply
        addr = docker.call("POST", "/IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "",
                                                                   "Options": {}})["Address"]
        reply = docker.call("POST", "/NetworkDriver.CreateEndpoint", {
            "NetworkID": network_id, "EndpointID": endpoint_id, "Interface": {"Address": addr},
            "Options": {"policygroup": "web"}})
        assert not reply.get("Err"), reply
        mac = reply["Interface"]["MacAddress"]
        join = docker.call("POST", "/NetworkDriver.Join", {
            "NetworkID": network_id, "EndpointID": endpoint_id, "SandboxKey": "/var/run/docker/netns/x",
            "Options": {}})
        assert not join.get("Err"), join
        ns2 = stack.enter_context(namespace(unique_netns_name("nrb")))
        src = join["InterfaceName"]["SrcName"]
        subprocess.run(["ip", "netns", "exec", h2.netns, "ip", "link", "set", src, "netns", ns2], check=True)
        for argv in (["ip", "link", "set", src, "name", "eth0"],
                     ["ip", "link", "set", "eth0", "address", mac],
                     ["ip", "addr", "add", addr, "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                     ["ip", "route", "add", "default", "via", join["Gateway"]]):
            assert ns_run(ns2, argv).returncode == 0, argv
        ip2 = addr.split("/")[0]
        # Real traffic across the VXLAN overlay, both ways.
        for src_ns, dst in ((ns1, ip2), (ns2, ip1)):
            ping = ns_run(src_ns, ["ping", "-c", "3", "-i", "0.2", "-W", "2", dst])
            assert ping.returncode == 0, ping.stdout + ping.stderr
        # TCP too (works because the agent turns TX checksum offload off on netdev bridges).
        assert tcp_exchange(ns2, ns1, ip2) and tcp_exchange(ns1, ns2, ip1)
        # Teardown: docker rm + network rm, CNI DEL; nothing left on either host.
        ids = {"NetworkID": network_id, "EndpointID": endpoint_id}
        for path, body in (("/NetworkDriver.RevokeExternalConnectivity", ids), ("/NetworkDriver.Leave", ids)):
            assert not docker.call("POST", path, body).get("Err")
        ns_run(ns2, ["ip", "link", "del", "eth0"])
        for path, body in (("/NetworkDriver.DeleteEndpoint", ids),
                           ("/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": ip2}),
                           ("/NetworkDriver.DeleteNetwork", {"NetworkID": network_id}),
                           ("/IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})):
            reply = docker.call("POST", path, body)
            assert not reply.get("Err") and not reply.get("Error"), (path, reply)
        assert run_cni("DEL", conf, "overlay-c1", f"/var/run/netns/{ns1}") == (0, None)
        for host in (h1, h2):
            assert leftovers(lab, plane, host) == {"ports": [], "links": [], "vports": []}, host.name
    plane.client().request("DELETE", f"/enterprises/{net['enterprise']['id']}?cascade=true")


def test_cni_add_survives_a_vrs_agent_restart(lab2):
    """The attach service lives in the VRS agent: restart the agent, the same ADD gives the same result."""
    lab, plane = lab2
    h1 = lab.hosts[0]
    net = make_network(plane.client(), enterprise="rst", cidr="10.51.0.0/24")
    conf = {"cniVersion": "1.0.0", "name": "nuage", "type": "nuage-cni",
            "agent_socket": plane.agent_socket(h1), "enterprise": "rst", "domain": "prod", "zone": "web",
            "subnet": "web-net"}
    with namespace(unique_netns_name("nrr")) as name:
        ns = name
        rc, first = run_cni("ADD", conf, "restart-c1", f"/var/run/netns/{ns}")
        assert rc == 0, first
        plane.stop_process(f"agent-{h1.name}")
        rc, out = run_cni("ADD", conf, "restart-c2", f"/var/run/netns/{ns}", ifname="eth1")
        assert rc == 1 and out["code"] == 11, out
        plane.start_agent(h1)
        wait_until(lambda: os.path.exists(plane.agent_socket(h1)), timeout=30, message="agent socket back")
        rc, again = run_cni("ADD", conf, "restart-c1", f"/var/run/netns/{ns}")
        assert rc == 0 and again == first
        check = dict(conf, prevResult=first)
        assert run_cni("CHECK", check, "restart-c1", f"/var/run/netns/{ns}") == (0, None)
        assert run_cni("DEL", conf, "restart-c1", f"/var/run/netns/{ns}") == (0, None)
        assert leftovers(lab, plane, h1) == {"ports": [], "links": [], "vports": []}
    plane.client().request("DELETE", f"/enterprises/{net['enterprise']['id']}?cascade=true")
