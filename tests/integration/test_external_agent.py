"""External connectivity end to end: directory -> VRS agents -> br-int and br-phy -> real traffic.

A 2-host lab with the outside world, the directory and one agent per host. The domain's
``egress_nat`` and a vport's ``floating_ip`` are set through the REST API, ports are published by the
Docker plugin (driven with dockerd's calls) and by nuage-cni (``portMappings``); the agents compile the
external flows, sync br-phy's steering over its management socket and announce floating IPs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nuage_ryu.lab.dockerd import Dockerd
from nuage_ryu.lab.netns import disable_tx_checksum
from nuage_ryu.lab.outside import FLOATING_IP_POOL
from nuage_ryu.lab.supervise import stop_process
from tests.attach_helpers import run_cni
from tests.external_helpers import concurrent_connections, start_echo_server
from tests.integration.test_overlay import delete_enterprise, make_domain
from tests.lab_helpers import Containers, lab_with_plane, wait_until

pytestmark = pytest.mark.integration

ECHO_PORT = 8081
FIP = FLOATING_IP_POOL.split("/")[0].rsplit(".", 1)[0] + ".201"  # 192.0.2.201


@pytest.fixture(scope="module")
def net():
    with lab_with_plane(2, tag="hxa", outside=True) as (lab, plane):
        containers = Containers(lab, plane)
        server = start_echo_server(lab.node_netns("inet"), ECHO_PORT)
        try:
            containers.lab_ = lab
            containers.plane = plane
            yield containers
        finally:
            server.kill()
            server.wait()
            containers.cleanup()


def reaches_outside(net, container) -> bool:
    return concurrent_connections(container.netns, net.lab_.internet_ip, ECHO_PORT, 1, timeout=2)["ok"] == 1


def test_egress_nat_switched_on_and_off_through_the_api(net):
    e, d, (s1,) = make_domain(net.client, "egress", cidrs=("10.61.1.0/24",))
    try:
        a = net.add("ea", "h1", s1)
        b = net.add("eb", "h2", s1)
        assert not reaches_outside(net, a)  # egress_nat defaults to off
        net.client.request("PUT", f"/domains/{d['id']}", {"egress_nat": True})
        wait_until(lambda: reaches_outside(net, a) and reaches_outside(net, b), timeout=20,
                   message="egress through both hosts")
        out = concurrent_connections(a.netns, net.lab_.internet_ip, ECHO_PORT, 1)
        assert out["peers"] == [a.host.underlay_ip]  # left with its own host's address (distributed)
        out = concurrent_connections(b.netns, net.lab_.internet_ip, ECHO_PORT, 1)
        assert out["peers"] == [b.host.underlay_ip]
        assert a.ping(b.ip)  # the overlay is untouched
        net.client.request("PUT", f"/domains/{d['id']}", {"egress_nat": False})
        wait_until(lambda: not reaches_outside(net, a), timeout=20, message="egress off again")
    finally:
        net.cleanup()
        delete_enterprise(net.client, e)


def test_floating_ip_follows_its_vport_to_another_host(net):
    e, d, (s1,) = make_domain(net.client, "fip", cidrs=("10.62.1.0/24",))
    inet = net.lab_.node_netns("inet")
    try:
        a = net.add("fa", "h1", s1, floating_ip=FIP)
        server = start_echo_server(a.netns, 22)
        try:
            wait_until(lambda: concurrent_connections(inet, FIP, 22, 1, timeout=2)["ok"] == 1, timeout=20,
                       message="floating IP reachable on h1")
            assert concurrent_connections(inet, FIP, 22, 1)["peers"] == [net.lab_.internet_ip]
        finally:
            server.kill()
            server.wait()
        net.remove(a)
        net.client.request("DELETE", f"/vports/{a.vport['id']}")
        b = net.add("fb", "h2", s1, floating_ip=FIP)  # the same address, the vport re-created on h2
        server = start_echo_server(b.netns, 22)
        try:
            # The new host announces the address (gratuitous ARP): no wait for the router's ARP cache.
            wait_until(lambda: concurrent_connections(inet, FIP, 22, 1, timeout=2)["ok"] == 1, timeout=20,
                       message="floating IP reachable on h2 after the move")
            out = concurrent_connections(b.netns, net.lab_.internet_ip, ECHO_PORT, 1)
            assert out["ok"] == 1 and out["peers"] == [FIP]
        finally:
            server.kill()
            server.wait()
    finally:
        net.cleanup()
        delete_enterprise(net.client, e)


def published_reachable(net, host, port: int) -> bool:
    inet = net.lab_.node_netns("inet")
    return concurrent_connections(inet, host.underlay_ip, port, 1, timeout=2)["ok"] == 1


def steering_ports(host) -> str:
    return host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "--no-stats", "dump-flows", "br-phy"]).stdout


@pytest.fixture
def docker(net):
    """nuage-docker-plugin on h1 (the real executable) and dockerd's stand-in talking to it."""
    plane, h1 = net.plane, net.lab_.hosts[0]
    sock = os.path.join(plane.root, "docker-hx.sock")
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "nuage-docker-plugin"), "--socket",
                             sock, "--agent-socket", plane.agent_socket(h1), "--spec-file",
                             os.path.join(plane.root, "docker-hx.spec")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(sock), timeout=10, message="the Docker plugin socket")
        dockerd = Dockerd(sock, host_netns=h1.netns)
        dockerd.activate()
        yield dockerd, h1
    finally:
        stop_process(proc, timeout=5)


def test_docker_run_publish_and_stop_through_dockerds_calls(net, docker):
    dockerd, h1 = docker
    e, d, (s1,) = make_domain(net.client, "dock", cidrs=("10.63.1.0/24",))
    sandbox = f"{net.lab_.prefix}-dk"
    subprocess.run(["ip", "netns", "add", sandbox], check=True)
    try:
        names = {"enterprise": "dock", "domain": "prod", "zone": "z", "subnet": s1["name"]}
        network = dockerd.network_create(options=names, ipam_options=names)
        assert "error" not in network, network
        ctr = dockerd.run(network, sandbox, publish=[("tcp", 8080, 80)])  # docker run -p 8080:80
        assert "error" not in ctr, ctr
        disable_tx_checksum(sandbox, [ctr["ifname"]])
        vport = net.client.request("GET", f"/vports/{ctr['info']['nuage.vport']}")
        assert vport["port_mappings"] == [{"protocol": "tcp", "host_port": 8080, "container_port": 80}]
        server = start_echo_server(sandbox, 80)
        try:
            wait_until(lambda: published_reachable(net, h1, 8080), timeout=20, message="h1:8080 -> container:80")
            out = concurrent_connections(net.lab_.node_netns("inet"), h1.underlay_ip, 8080, 10)
            assert out["ok"] == 10 and out["peers"] == [net.lab_.internet_ip]
            assert "tp_dst=8080" in steering_ports(h1)
            # docker stop / rm: RevokeExternalConnectivity first, then Leave, DeleteEndpoint, ReleaseAddress.
            dockerd.rm(ctr)
            wait_until(lambda: "tp_dst=8080" not in steering_ports(h1), timeout=20, message="steering withdrawn")
            assert not published_reachable(net, h1, 8080)
        finally:
            server.kill()
            server.wait()
        dockerd.network_rm(network)
        assert net.client.request("GET", f"/subnets/{s1['id']}/vports") == []
    finally:
        subprocess.run(["ip", "netns", "delete", sandbox], check=False, capture_output=True)
        delete_enterprise(net.client, e)


def test_cni_port_mappings_add_and_del_leave_nothing(net):
    e, d, (s1,) = make_domain(net.client, "cnipm", cidrs=("10.64.1.0/24",))
    h2 = net.lab_.hosts[1]
    ns = f"{net.lab_.prefix}-cn"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    conf = {"cniVersion": "1.1.0", "name": "nuage", "type": "nuage-cni", "agent_socket": net.plane.agent_socket(h2),
            "enterprise": "cnipm", "domain": "prod", "zone": "z", "subnet": s1["name"],
            "capabilities": {"portMappings": True},
            "runtimeConfig": {"portMappings": [{"hostPort": 9090, "containerPort": 80, "protocol": "tcp"},
                                               {"hostPort": 9090, "containerPort": 80, "protocol": "tcp",
                                                "hostIP": "::"}]}}
    try:
        code, result = run_cni("ADD", conf, "ctr-pm1", f"/var/run/netns/{ns}")
        assert code == 0, result
        disable_tx_checksum(ns, ["eth0"])
        (vport,) = net.client.request("GET", f"/subnets/{s1['id']}/vports")
        assert vport["port_mappings"] == [{"protocol": "tcp", "host_port": 9090, "container_port": 80}]
        server = start_echo_server(ns, 80)
        try:
            wait_until(lambda: published_reachable(net, h2, 9090), timeout=20, message="h2:9090 -> pod:80")
        finally:
            server.kill()
            server.wait()
        assert run_cni("DEL", conf, "ctr-pm1", f"/var/run/netns/{ns}")[0] == 0
        assert net.client.request("GET", f"/subnets/{s1['id']}/vports") == []
        wait_until(lambda: "tp_dst=9090" not in steering_ports(h2), timeout=20, message="steering gone")
        flows = h2.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "--no-stats", "dump-flows", "br-int"]).stdout
        assert "9090" not in flows
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)
        delete_enterprise(net.client, e)
