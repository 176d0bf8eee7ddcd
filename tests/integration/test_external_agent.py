"""External connectivity end to end: directory -> VRS agents -> br-int and br-phy -> real traffic.

A 2-host lab with the outside world, the directory and one agent per host. The domain's
``egress_nat`` and a vport's ``floating_ip`` are set through the REST API; the agents compile the
external flows, sync br-phy's steering over its management socket and announce floating IPs.
"""

from __future__ import annotations

import pytest

from nuage_ryu.lab.outside import FLOATING_IP_POOL
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
