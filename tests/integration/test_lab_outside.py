"""The lab's outside world for real: a router on the underlay and a server beyond it.

Traffic goes from a host's underlay address (on br-phy, through the host's OVS) and from
the controller node, via the router, to 203.0.113.80, and back; ``down`` removes the two
extra namespaces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from nuage_ryu.lab import netns
from nuage_ryu.lab.lab import Lab
from nuage_ryu.lab.outside import INTERNET_IP, OUTSIDE_NET, ROUTER_UNDERLAY_IP
from tests.ovs_fixtures import wait_until

pytestmark = pytest.mark.integration

SERVER_PORT = 8081
# A one-connection-at-a-time echo server that names the peer address it saw.
ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16); print("ready", flush=True)
while True:
    c, peer = s.accept()
    with c:
        c.sendall(c.recv(64) + (" seen-from %s" % peer[0]).encode())
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    s.sendall(b"hello"); print(s.recv(128).decode())
"""


@pytest.fixture(scope="module")
def lab():
    state_dir = tempfile.mkdtemp(prefix="hx-lab-")
    lab = Lab(state_dir, f"hxo{os.getpid() % 100000}")
    try:
        lab.up(2, outside=True)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def server(lab):
    proc = subprocess.Popen(["ip", "netns", "exec", lab.node_netns("inet"), sys.executable, "-c", ECHO_SERVER,
                             str(SERVER_PORT)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_outside_server_is_outside_the_underlay(lab):
    assert lab.internet_ip == INTERNET_IP
    assert lab.outside["router"]["underlay_ip"] == ROUTER_UNDERLAY_IP
    assert lab.outside["subnet"] == str(OUTSIDE_NET)
    route = lab.exec("h1", ["ip", "-4", "route", "show", "default"], check=True).stdout
    assert f"via {ROUTER_UNDERLAY_IP}" in route and "br-phy" in route


@pytest.mark.parametrize("node", ["h1", "h2", "ctl"])
def test_ping_from_underlay_to_outside_server_crosses_the_router(lab, node):
    out = lab.exec(node, ["ping", "-c", "2", "-W", "2", lab.internet_ip]).stdout
    assert " 0% packet loss" in out, out
    assert "ttl=63" in out, out  # one routed hop: the router


def test_tcp_from_host_underlay_address_reaches_outside_server(lab, server):
    for host in lab.hosts:
        out = lab.exec(host.name, [sys.executable, "-c", CLIENT, lab.internet_ip, str(SERVER_PORT)],
                       check=True).stdout.strip()
        assert out == f"hello seen-from {host.underlay_ip}"


def test_status_and_exec_know_the_outside_nodes(lab):
    status = lab.status()
    assert status["outside"]["exists"] is True
    assert lab.exec("rtr", ["ip", "-4", "addr"], check=True).stdout.count("inet ") == 3  # lo, eth0, eth1


def test_down_removes_the_outside_world():
    state_dir = tempfile.mkdtemp(prefix="hx-lab-")
    lab = Lab(state_dir, f"hxd{os.getpid() % 100000}").up(1, outside=True)
    names = [lab.outside["router"]["netns"], lab.outside["internet"]["netns"]]
    assert all(netns.exists(n) for n in names)
    removed = lab.down()
    assert all(f"netns {n}" in removed for n in names)
    wait_until(lambda: not any(netns.exists(n) for n in names), timeout=5, message="outside netns gone")
    assert not os.path.exists(state_dir)
