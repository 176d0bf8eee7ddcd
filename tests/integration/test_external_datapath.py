"""External connectivity on a real userspace datapath: the compiled flows, pushed by hand (no agent).

A one-host lab with the outside world; containers are namespaces on br-int; the flows are what
``compile_host`` / ``external.compile_uplink`` produce for a HostView built from the host's real
ofports, installed with ``ovs-ofctl --bundle``. Traffic is real: TCP and ping from the containers to
the lab's internet server (203.0.113.80) through the router, and from the server back in.
"""

from __future__ import annotations

import contextlib
import subprocess

import pytest

from nuage_ryu.lab.outside import FLOATING_IP_POOL
from nuage_ryu.vrs.view import AclRule, Endpoint, PublishedPort
from tests.external_helpers import Spec, concurrent_connections, domain, hand_world, start_echo_server, subnet
from tests.ovs_fixtures import wait_until

pytestmark = pytest.mark.integration

ECHO_PORT = 8081
FIP = FLOATING_IP_POOL.split("/")[0].rsplit(".", 1)[0] + ".200"  # 192.0.2.200
SPECS = [
    Spec("a1", "A", "sA", "10.0.1.10", "02:00:00:00:01:10"),
    Spec("b1", "B", "sB", "10.0.1.10", "02:00:00:00:02:10"),  # the same address in another tenant
    Spec("c1", "C", "sC", "10.0.3.10", "02:00:00:00:03:10"),
]
SUBNETS = [subnet("sA", "A", "10.0.1.0/24"), subnet("sB", "B", "10.0.1.0/24"), subnet("sC", "C", "10.0.3.0/24")]


@pytest.fixture(scope="module")
def world():
    with hand_world(SPECS, tag="hxe") as w:
        w.host = w.hosts["h1"].host
        yield w


def install(w, egress=("A", "B"), rules=(), fip=None, published=()) -> None:
    domains = [domain(d, n, egress=d in egress) for n, d in enumerate(("A", "B", "C"), start=1)]
    w.install(domains, SUBNETS, w.vports(a1={"floating_ip": fip, "published": published}), rules)


@pytest.fixture(scope="module")
def server(world):
    proc = start_echo_server(world.lab.node_netns("inet"), ECHO_PORT)
    yield proc
    proc.kill()
    proc.wait()


def connect(w, name, count=1, target=None, port=ECHO_PORT, timeout=5.0):
    return concurrent_connections(w.netns[name], target or w.lab.internet_ip, port, count, timeout)


def ping(ns, ip, count=2):
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1",
                           ip], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0


def test_two_tenants_with_the_same_address_reach_the_outside_at_once(world, server):
    install(world)
    results = {}
    procs = {name: subprocess.Popen(
        ["ip", "netns", "exec", world.netns[name], "python3", "-c",
         "import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
         "s.bind(('10.0.1.10', 40000)); s.settimeout(5); s.connect((sys.argv[1], int(sys.argv[2])))\n"
         "s.sendall(sys.argv[3].encode()+b'\\n'); print(s.makefile().readline().strip())",
         world.lab.internet_ip, str(ECHO_PORT), name], stdout=subprocess.PIPE, text=True)
        for name in ("a1", "b1")}  # same source address and port, same server, same moment
    for name, proc in procs.items():
        results[name] = proc.communicate(timeout=30)[0].strip()
    host_ip = world.host.underlay_ip
    assert results == {"a1": f"a1 {host_ip}", "b1": f"b1 {host_ip}"}  # each got its own reply
    assert ping(world.netns["a1"], world.lab.internet_ip) and ping(world.netns["b1"], world.lab.internet_ip)


def test_egress_off_means_no_path_out(world, server):
    install(world)
    assert connect(world, "c1")["ok"] == 0  # domain C: egress_nat off
    assert not ping(world.netns["c1"], world.lab.internet_ip, count=1)


def test_the_host_itself_still_reaches_the_outside(world, server):
    install(world)
    assert world.lab.exec("h1", ["ping", "-c", "1", "-W", "2", world.lab.internet_ip]).returncode == 0


def test_policy_deny_on_an_outside_cidr_blocks_egress(world, server):
    deny = AclRule("deny-out", "A", 10, destination=Endpoint("cidr", cidr="203.0.113.0/24"), action="deny")
    install(world, rules=[deny])
    assert connect(world, "a1")["ok"] == 0
    assert connect(world, "b1")["ok"] == 1  # the other tenant's policy is its own


def test_thousand_concurrent_connections_through_nat_lose_no_reply(world, server):
    install(world)
    result = connect(world, "a1", count=1000, timeout=20.0)
    assert result["failed"] == 0 and result["ok"] == 1000, result
    assert result["peers"] == [world.host.underlay_ip]


def test_published_port_reaches_the_container_from_outside(world):
    install(world, egress=(), published=(PublishedPort("tcp", 8080, 80),))
    with contextlib.ExitStack() as stack:
        srv = start_echo_server(world.netns["a1"], 80)
        stack.callback(srv.kill)
        result = concurrent_connections(world.lab.node_netns("inet"), world.host.underlay_ip, 8080, 20)
        assert result["ok"] == 20, result
        assert result["peers"] == [world.lab.internet_ip]  # the container sees the real client
        assert concurrent_connections(world.lab.node_netns("inet"), world.host.underlay_ip, 8082, 1,
                                      timeout=2)["ok"] == 0  # not published


def test_floating_ip_is_reachable_from_outside_and_is_the_containers_source(world, server):
    install(world, egress=(), fip=FIP)
    with contextlib.ExitStack() as stack:
        srv = start_echo_server(world.netns["a1"], 22)
        stack.callback(srv.kill)
        inbound = wait_until(lambda: concurrent_connections(world.lab.node_netns("inet"), FIP, 22, 1,
                                                            timeout=2)["ok"] == 1, timeout=15,
                             message="floating IP reachable (router ARP)")
        assert inbound
        out = connect(world, "a1")
        assert out["ok"] == 1 and out["peers"] == [FIP]
        assert connect(world, "b1")["ok"] == 0  # egress NAT is off for everyone else
