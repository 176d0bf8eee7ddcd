"""VMs and bare-metal servers on a 2-host lab: DHCP from the agent, then real traffic.

* A VM (vport type ``vm``): the operator creates the vport through the REST API;
  the "hypervisor" plugs a veth into br-int with the vport id in external_ids;
  busybox ``udhcpc`` in the VM's namespace (no address configured) gets the
  directory address, gateway and MTU from the agent's DHCP app, then the VM
  pings and TCP-connects a container on the other host.
* A bare-metal server (vport type ``host``): a namespace behind a plain br-int
  port (the gateway port, no vport id) using a VLAN sub-interface; the vport's
  external_ids name the gateway port and the VLAN. ``udhcpc`` on the VLAN
  interface gets its lease, then the server reaches the VM and a container,
  both on the other host.
* Two servers of two tenants behind one gateway port (VLAN 10 and 20, same
  subnet CIDR): each gets its own tenant's lease, and neither reaches the
  other tenant.

Everything runs in namespaces this test created; all of it is removed also on failure.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from nuage_ryu.lab import guests
from nuage_ryu.lab.guests import TopOfRack
from tests.lab_helpers import Container, Containers, lab_with_plane, ns_run, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox (udhcpc) not installed")]

_serial = itertools.count(1)

@pytest.fixture(scope="module")
def lab2():
    with lab_with_plane(2, tag="vb") as (lab, plane):
        yield lab, plane


class Guests(Containers):
    """Containers (from the helper), plus VMs and bare-metal servers that get their address by DHCP."""

    def __init__(self, lab, plane, tmp_path) -> None:
        super().__init__(lab, plane)
        self.tmp_path = tmp_path
        self.dhcp_seconds: list[float] = []
        self.tors: list[TopOfRack] = []

    def _ifname(self, kind: str) -> str:
        return f"{kind}{os.getpid() % 100000}x{next(_serial)}"[:15]

    def _netns(self, name: str) -> str:
        netns = f"{self.lab.prefix}-{name}"[:40]
        subprocess.run(["ip", "netns", "add", netns], check=True)
        ns_run(netns, ["ip", "link", "set", "lo", "up"], check=True)
        return netns

    def add_vm(self, name: str, host: str, subnet: dict) -> Container:
        """The operator creates the vport; the hypervisor plugs the VM's interface (MAC from the vport)."""
        lab_host = self._hosts[host]
        vport = self.client.request("POST", f"/subnets/{subnet['id']}/vports",
                                    {"name": name, "host": lab_host.host_name, "type": "vm"})
        host_if = self._ifname("tap")
        vm = Container(name, f"{self.lab.prefix}-{name}"[:40], lab_host, host_if, vport)
        self.created.append(vm)
        self._netns(name)
        guests.plug_vm(lab_host, vm.netns, host_if, vport)
        self.wait_up(vport)
        return vm

    def add_tor(self, host: str) -> TopOfRack:
        """A top-of-rack switch trunked to a plain br-int port (no vport id): the bare-metal gateway port.

        The ToR is an OVS bridge of the host's own OVS (standalone, NORMAL switching): access ports
        tag the servers' frames with their VLAN, the trunk veth carries them tagged to br-int.
        """
        tor = guests.add_tor(self._hosts[host], self._ifname("tor"), self._ifname("gw"), self._ifname("tk"))
        self.tors.append(tor)
        return tor

    def add_server(self, name: str, tor: TopOfRack, vlan: int | None, subnet: dict | None) -> Container:
        """A bare-metal server on an access port of ``tor`` (VLAN ``vlan``); its vport names port + VLAN.

        ``subnet`` None: a server the directory does not know (no vport).
        """
        vport = {}
        if subnet is not None:
            vport = self.client.request("POST", f"/subnets/{subnet['id']}/vports", {
                "name": name, "host": tor.host.host_name, "type": "host",
                "external_ids": {"gateway_port": tor.gateway_port, "vlan": str(vlan)}})
        access = self._ifname("acc")
        server = Container(name, f"{self.lab.prefix}-{name}"[:40], tor.host, access, vport)
        self.created.append(server)
        self._netns(name)
        guests.plug_server(tor, server.netns, access, vlan, vport.get("mac"))
        if vport:
            self.wait_up(vport)
        return server

    def wait_up(self, vport: dict) -> None:
        wait_until(lambda: self.client.request("GET", f"/vports/{vport['id']}")["status"] == "up",
                   timeout=15, message=f"vport {vport['name']} up")

    def dhcp(self, guest: Container, ifname: str) -> dict:
        """Run busybox udhcpc on ``ifname`` in ``guest``; the fields of its 'bound' call."""
        lease = guests.udhcpc(guest.netns, ifname)
        self.dhcp_seconds.append(float(lease["seconds"]))
        print(f"udhcpc in {guest.name}: {self.dhcp_seconds[-1]:.2f} s to a lease")  # shown with -s
        return lease

    def cleanup(self) -> None:
        try:
            super().cleanup()  # VMs, containers, servers: port, then namespace (its veth goes with it)
        finally:
            for tor in self.tors:
                guests.remove_tor(tor)
            self.tors.clear()


@pytest.fixture
def net(lab2, tmp_path):
    lab, plane = lab2
    guests = Guests(lab, plane, tmp_path)
    enterprises = []
    try:
        yield guests, enterprises
    finally:
        guests.cleanup()
        for e in enterprises:
            with contextlib.suppress(Exception):
                guests.client.request("DELETE", f"/enterprises/{e['id']}?cascade=true")


def make_domain(client, enterprises: list, name: str, cidrs: tuple[str, ...]) -> tuple[dict, list[dict]]:
    e = client.request("POST", "/enterprises", {"name": name})
    enterprises.append(e)
    d = client.request("POST", f"/enterprises/{e['id']}/domains", {"name": "prod", "default_action": "allow"})
    z = client.request("POST", f"/domains/{d['id']}/zones", {"name": "z"})
    subnets = [client.request("POST", f"/zones/{z['id']}/subnets",
                              {"name": f"s{i}", "cidr": cidr, "gateway": cidr.rsplit(".", 1)[0] + ".1"})
               for i, cidr in enumerate(cidrs)]
    return d, subnets


def assert_lease(guest: Container, ifname: str, lease: dict, subnet: dict) -> None:
    vport = guest.vport
    prefix = subnet["cidr"].split("/")[1]
    assert lease["ip"] == vport["ip"] and lease["mask"] == prefix, lease
    assert lease["router"] == subnet["gateway"] and lease["serverid"] == subnet["gateway"], lease
    assert lease["mtu"] == "1450", lease  # lab underlay 1500 - VXLAN 50
    addr = ns_run(guest.netns, ["ip", "-o", "-4", "addr", "show", ifname]).stdout
    assert f"{vport['ip']}/{prefix}" in addr, addr
    assert f"default via {subnet['gateway']}" in ns_run(guest.netns, ["ip", "route"]).stdout
    assert "mtu 1450" in ns_run(guest.netns, ["ip", "link", "show", ifname]).stdout


def tcp_ok(client: Container, server: Container, port: int = 8080) -> None:
    srv = server.serve_tcp(port, seconds=20)
    try:
        wait_until(lambda: client.tcp_connect(server.ip, port), timeout=10,
                   message=f"TCP {client.name} -> {server.name}")
    finally:
        srv.kill()
        srv.wait()


def dhcp_metric(lab_host, result: str) -> float:
    """nuage_dhcp_packets_total{result} from the host agent's /metrics (on the host namespace's loopback)."""
    code = ("import urllib.request,sys;"
            "print(urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=5).read().decode())")
    text = ns_run(lab_host.netns, [sys.executable, "-c", code]).stdout
    for line in text.splitlines():
        if line.startswith(f'nuage_dhcp_packets_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_vm_gets_its_address_by_dhcp_and_reaches_a_container_on_another_host(net):
    guests, enterprises = net
    _d, (s1,) = make_domain(guests.client, enterprises, "vmten", ("10.41.1.0/24",))
    c2 = guests.add("c2", "h2", s1)
    vm = guests.add_vm("vm1", "h1", s1)
    assert not vm.ping(c2.ip, count=1, wait=0.5)  # no address yet: nothing configured by hand
    lease = guests.dhcp(vm, "eth0")
    assert_lease(vm, "eth0", lease, s1)
    assert vm.ping(c2.ip) and c2.ping(vm.ip)
    tcp_ok(vm, c2)
    tcp_ok(c2, vm)
    h1 = guests._hosts["h1"]
    assert dhcp_metric(h1, "offers") >= 1 and dhcp_metric(h1, "acks") >= 1


def test_bare_metal_server_on_a_vlan_gets_its_lease_and_reaches_vm_and_container(net):
    guests, enterprises = net
    _d, (s1, s2) = make_domain(guests.client, enterprises, "bmten", ("10.42.1.0/24", "10.42.2.0/24"))
    c1 = guests.add("c1", "h1", s1)
    vm = guests.add_vm("vm2", "h1", s1)
    assert_lease(vm, "eth0", guests.dhcp(vm, "eth0"), s1)
    tor = guests.add_tor("h2")
    server = guests.add_server("bm1", tor, 10, s2)
    lease = guests.dhcp(server, "eth0")
    assert_lease(server, "eth0", lease, s2)
    # Routed (s2 -> s1) and across hosts (h2 -> h1), both ways.
    for target in (vm, c1):
        assert server.ping(target.ip), f"bm1 -> {target.name}"
        assert target.ping(server.ip), f"{target.name} -> bm1"
    tcp_ok(server, vm)
    tcp_ok(c1, server)
    # Untagged frames on the gateway port belong to nobody: a server on an untagged ToR port gets no lease.
    stray = guests.add_server("stray", tor, None, None)
    result = ns_run(stray.netns, ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "2", "-T", "1",
                                  "-s", "/bin/true"], timeout=30)
    assert result.returncode != 0
    assert not stray.ping(server.ip, count=1, wait=0.5)


@pytest.fixture
def two_tenants_on_one_port(net):
    """Tenant A (VM on h1, server on VLAN 10) and tenant B (container on h1, server on VLAN 20), one ToR
    on h2; the servers' subnets have the same CIDR. Both servers have run udhcpc."""
    guests, enterprises = net
    _da, (a_vm_net, a_bm_net) = make_domain(guests.client, enterprises, "tena", ("10.43.1.0/24", "10.43.2.0/24"))
    _db, (b_bm_net, b_ct_net) = make_domain(guests.client, enterprises, "tenb", ("10.43.2.0/24", "10.44.1.0/24"))
    vm = guests.add_vm("vma", "h1", a_vm_net)
    assert_lease(vm, "eth0", guests.dhcp(vm, "eth0"), a_vm_net)
    cb = guests.add("cb", "h1", b_ct_net)
    tor = guests.add_tor("h2")
    server_a = guests.add_server("bma", tor, 10, a_bm_net)
    server_b = guests.add_server("bmb", tor, 20, b_bm_net)
    leases = (guests.dhcp(server_a, "eth0"), guests.dhcp(server_b, "eth0"))
    return SimpleNamespace(vm=vm, cb=cb, server_a=server_a, server_b=server_b, leases=leases,
                           a_bm_net=a_bm_net, b_bm_net=b_bm_net)


def test_two_vlans_on_one_gateway_port_get_their_own_tenants_lease(two_tenants_on_one_port):
    t = two_tenants_on_one_port
    assert_lease(t.server_a, "eth0", t.leases[0], t.a_bm_net)
    assert_lease(t.server_b, "eth0", t.leases[1], t.b_bm_net)
    assert t.server_a.vport["mac"] != t.server_b.vport["mac"]


def test_two_tenants_on_one_gateway_port_reach_only_their_own_tenant(two_tenants_on_one_port):
    t = two_tenants_on_one_port
    assert t.server_a.ping(t.vm.ip) and t.vm.ping(t.server_a.ip)
    assert t.server_b.ping(t.cb.ip) and t.cb.ping(t.server_b.ip)
    # Neither reaches the other tenant (tenant B has no 10.43.1.0/24; tenant A no 10.44.1.0/24).
    assert not t.server_b.ping(t.vm.ip, count=2, wait=0.5)
    assert not t.server_a.ping(t.cb.ip, count=2, wait=0.5)
