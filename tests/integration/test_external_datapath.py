"""External connectivity on a real userspace datapath: the compiled flows, pushed by hand (no agent).

A one-host lab with the outside world; containers are namespaces on br-int; the flows are what
``compile_host`` / ``external.compile_uplink`` produce for a HostView built from the host's real
ofports, installed with ``ovs-ofctl --bundle``. Traffic is real: TCP and ping from the containers to
the lab's internet server (203.0.113.80) through the router, and from the server back in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import tempfile

import pytest

from nuage_ryu.hostovs.host import EXTERNAL_PATCH_INT, EXTERNAL_PATCH_PHYS, HostOVS
from nuage_ryu.lab import netns as labnetns
from nuage_ryu.lab.lab import Lab
from nuage_ryu.lab.outside import FLOATING_IP_POOL
from nuage_ryu.vrs import external, ofmsg
from nuage_ryu.vrs.compiler import compile_host
from nuage_ryu.vrs.view import AclRule, Domain, Endpoint, ExternalUplink, HostView, LocalPort, PublishedPort, Subnet
from nuage_ryu.vrs.view import VPort as ViewVPort
from tests.external_helpers import concurrent_connections, start_echo_server
from tests.ovs_fixtures import wait_until

pytestmark = pytest.mark.integration
external.register()

ECHO_PORT = 8081
FIP = FLOATING_IP_POOL.split("/")[0].rsplit(".", 1)[0] + ".200"  # 192.0.2.200
ROUTERS = {"A": "02:aa:00:00:00:01", "B": "02:bb:00:00:00:01", "C": "02:cc:00:00:00:01"}
CONTAINERS = {  # name: (domain, ip, mac)
    "a1": ("A", "10.0.1.10", "02:00:00:00:01:10"),
    "b1": ("B", "10.0.1.10", "02:00:00:00:02:10"),  # the same address in another tenant
    "c1": ("C", "10.0.3.10", "02:00:00:00:03:10"),
}


@dataclasses.dataclass
class World:
    lab: Lab
    host: object
    ofports: dict
    patch_int: int
    patch_phys: int
    uplink: int
    mac: str
    netns: dict
    prefix: str


@pytest.fixture(scope="module")
def world():
    state = tempfile.mkdtemp(prefix="hx-ext-")
    prefix = f"hxe{os.getpid() % 100000}"
    lab = Lab(state, prefix)
    spaces: dict[str, str] = {}
    try:
        lab.up(1, outside=True)
        host = lab.hosts[0]
        for i, (name, (_d, ip, mac)) in enumerate(CONTAINERS.items()):
            ns, host_if = f"{prefix}-{name}", f"hxv{i}"
            spaces[name] = ns
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns],
                           check=True)
            subprocess.run(["ip", "link", "set", host_if, "netns", host.netns], check=True)
            labnetns.ip("link", "set", host_if, "up", netns=host.netns)
            for argv in (("link", "set", "lo", "up"), ("link", "set", "eth0", "address", mac),
                         ("addr", "add", f"{ip}/24", "dev", "eth0"), ("link", "set", "eth0", "up"),
                         ("route", "add", "default", "via", ip.rsplit(".", 1)[0] + ".1")):
                labnetns.ip(*argv, netns=ns)
            labnetns.disable_tx_checksum(ns, ["eth0"])
            labnetns.disable_tx_checksum(host.netns, [host_if])
            with HostOVS(host.db_remote) as ovs:
                ovs.add_vport_port("br-int", host_if, name, name)
        with HostOVS(host.db_remote) as ovs:
            ofports = {name: ovs.wait_for_ofport(f"hxv{i}") for i, name in enumerate(CONTAINERS)}
            patch_int = ovs.wait_for_ofport(EXTERNAL_PATCH_INT)
            patch_phys = ovs.wait_for_ofport(EXTERNAL_PATCH_PHYS)
            uplink = ovs.wait_for_ofport("eth0")
            mac = ovs.interface_config("br-phy")["mac_in_use"]
            tunnel = ovs.wait_for_ofport("vxlan0")
        w = World(lab, host, ofports, patch_int, patch_phys, uplink, mac, spaces, prefix)
        w.tunnel = tunnel
        yield w
    finally:
        for ns in spaces.values():
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)
        lab.down()


def view(w: World, egress=("A", "B"), rules=(), fip=None, published=()) -> HostView:
    domains = [Domain(d, 1000 + n, ROUTERS[d], "allow", n, egress_nat=d in egress)
               for n, d in enumerate(("A", "B", "C"), start=1)]
    subnets = [Subnet("sA", "A", "10.0.1.0/24", "10.0.1.1"), Subnet("sB", "B", "10.0.1.0/24", "10.0.1.1"),
               Subnet("sC", "C", "10.0.3.0/24", "10.0.3.1")]
    name = w.host.host_name
    vports = [ViewVPort(n, d, f"s{d}", mac, ip, name, floating_ip=fip if n == "a1" else None,
                        published=published if n == "a1" else ())
              for n, (d, ip, mac) in CONTAINERS.items()]
    local = [LocalPort(n, port) for n, port in w.ofports.items()]
    return HostView.of(name, w.tunnel, domains, subnets, vports, (), local, (), rules,
                       ExternalUplink(w.host.underlay_ip, w.mac, w.patch_int))


def install(w: World, v: HostView) -> None:
    """Replace br-int's flows and br-phy's steering flows with the compiled ones."""
    for bridge, flows, replace in (
        ("br-int", compile_host(v), True),
        ("br-phy", external.compile_uplink(external.uplink_view(v, w.uplink, w.patch_phys)), False),
    ):
        path = os.path.join(w.lab.state_dir, f"{bridge}.flows")
        with open(path, "w") as out:
            out.writelines(ofmsg.to_ofctl(f) + "\n" for f in flows)
        if not replace:  # keep br-phy's NORMAL flow, drop only our previous steering
            w.host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "del-flows", bridge,
                            f"cookie={external.cookie_for(external.CookieKind.UPLINK, 'steering'):#x}/-1"])
        verb = "replace-flows" if replace else "add-flows"
        w.host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "--bundle", verb, bridge, path])
    w.host.ovs.run(["ovs-appctl", "dpctl/flush-conntrack"])


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
    install(world, view(world))
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
    install(world, view(world))
    assert connect(world, "c1")["ok"] == 0  # domain C: egress_nat off
    assert not ping(world.netns["c1"], world.lab.internet_ip, count=1)


def test_the_host_itself_still_reaches_the_outside(world, server):
    install(world, view(world))
    assert world.lab.exec("h1", ["ping", "-c", "1", "-W", "2", world.lab.internet_ip]).returncode == 0


def test_policy_deny_on_an_outside_cidr_blocks_egress(world, server):
    deny = AclRule("deny-out", "A", 10, destination=Endpoint("cidr", cidr="203.0.113.0/24"), action="deny")
    install(world, view(world, rules=[deny]))
    assert connect(world, "a1")["ok"] == 0
    assert connect(world, "b1")["ok"] == 1  # the other tenant's policy is its own


def test_thousand_concurrent_connections_through_nat_lose_no_reply(world, server):
    install(world, view(world))
    result = connect(world, "a1", count=1000, timeout=20.0)
    assert result["failed"] == 0 and result["ok"] == 1000, result
    assert result["peers"] == [world.host.underlay_ip]


def test_published_port_reaches_the_container_from_outside(world):
    install(world, view(world, egress=(), published=(PublishedPort("tcp", 8080, 80),)))
    with contextlib.ExitStack() as stack:
        srv = start_echo_server(world.netns["a1"], 80)
        stack.callback(srv.kill)
        result = concurrent_connections(world.lab.node_netns("inet"), world.host.underlay_ip, 8080, 20)
        assert result["ok"] == 20, result
        assert result["peers"] == [world.lab.internet_ip]  # the container sees the real client
        assert concurrent_connections(world.lab.node_netns("inet"), world.host.underlay_ip, 8082, 1,
                                      timeout=2)["ok"] == 0  # not published


def test_floating_ip_is_reachable_from_outside_and_is_the_containers_source(world, server):
    install(world, view(world, egress=(), fip=FIP))
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
