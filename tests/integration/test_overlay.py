"""The overlay end to end on a 3-host lab: directory + one VRS agent per host + real traffic.

Covers issue 4's integration list: same subnet / across subnets, same host /
across hosts (ping and TCP), overlapping tenants isolated, spoofed sources
dropped, deleted vports' flows gone everywhere, ofproto/trace agreeing with the
simulator, and agent restarts (SIGTERM, SIGKILL) under a 50 ms ping losing
nothing and leaving the flow table as it was.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading

import pytest

from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from tests.lab_helpers import Containers, dump_flows, lab_with_plane, ns_run, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab3():
    with lab_with_plane(3, tag="ov") as (lab, plane):
        yield lab, plane


@pytest.fixture
def net(lab3):
    with Containers(*lab3) as containers:
        yield containers


def make_domain(client, enterprise: str, cidrs=("10.1.1.0/24", "10.1.2.0/24"), default_action="allow"):
    e = client.request("POST", "/enterprises", {"name": enterprise})
    d = client.request("POST", f"/enterprises/{e['id']}/domains",
                       {"name": "prod", "default_action": default_action})
    z = client.request("POST", f"/domains/{d['id']}/zones", {"name": "z"})
    subnets = []
    for i, cidr in enumerate(cidrs):
        gw = cidr.rsplit(".", 1)[0] + ".1"
        subnets.append(client.request("POST", f"/zones/{z['id']}/subnets",
                                      {"name": f"s{i}", "cidr": cidr, "gateway": gw}))
    return e, d, subnets


def delete_enterprise(client, e):
    client.request("DELETE", f"/enterprises/{e['id']}?cascade=true")


def test_reachability_same_and_across_subnets_and_hosts(net):
    e, _d, (s1, s2) = make_domain(net.client, "reach")
    try:
        a = net.add("a", "h1", s1)
        b = net.add("b", "h1", s1)   # same host, same subnet
        c = net.add("c", "h2", s1)   # other host, same subnet
        d = net.add("d", "h1", s2)   # same host, other subnet
        f = net.add("f", "h3", s2)   # other host, other subnet
        for target in (b, c, d, f):
            assert a.ping(target.ip), f"a -> {target.name} ({target.ip})"
        servers = [t.serve_tcp(8080) for t in (b, c, d, f)]
        try:
            for target in (b, c, d, f):
                wait_until(lambda t=target: a.tcp_connect(t.ip, 8080), timeout=10,
                           message=f"TCP a -> {target.name}")
            assert f.tcp_connect(a.ip, 9) is False  # nothing listens there: refused, not hung
        finally:
            for s in servers:
                s.kill()
                s.wait()
        # routed hop decrements TTL once (first-hop distributed routing), bridged does not
        ttl_same = ns_run(a.netns, ["ping", "-c1", "-W1", c.ip]).stdout
        ttl_routed = ns_run(a.netns, ["ping", "-c1", "-W1", f.ip]).stdout
        assert "ttl=64" in ttl_same and "ttl=63" in ttl_routed, (ttl_same, ttl_routed)
    finally:
        delete_enterprise(net.client, e)


def test_tenants_with_the_same_cidr_never_meet(net):
    e1, _, (t1s,) = make_domain(net.client, "tenant1", cidrs=("10.9.0.0/24",))
    e2, _, (t2s,) = make_domain(net.client, "tenant2", cidrs=("10.9.0.0/24",))
    try:
        a1 = net.add("x1", "h1", t1s)
        b1 = net.add("y1", "h2", t1s)
        a2 = net.add("x2", "h1", t2s)
        b2 = net.add("y2", "h2", t2s)
        assert a1.ip == a2.ip and b1.ip == b2.ip  # same IPs on purpose
        assert a1.ping(b1.ip) and a2.ping(b2.ip)  # each tenant works ...
        # ... and a tenant's packets are only ever delivered inside it: the
        # receiving ports of the other tenant see no packets.
        before = port_rx(b2)
        assert a1.ping(b1.ip, count=5, interval=0.05)
        assert port_rx(b2) == before
    finally:
        delete_enterprise(net.client, e1)
        delete_enterprise(net.client, e2)


def port_rx(container) -> int:
    """Packets OVS delivered to the container's port, live from OpenFlow port stats.

    (The Interface statistics column in OVSDB is only refreshed every few seconds.)
    """
    ofport = container.host.ovs.vsctl("get", "interface", container.host_ifname, "ofport").strip()
    out = container.host.ovs.ofctl("-O", "OpenFlow14", "dump-ports", "br-int", ofport)
    match = re.search(r"tx pkts=(\d+)", out)
    assert match, out
    return int(match.group(1))


def test_spoofed_sources_are_dropped(net):
    e, _d, (s1,) = make_domain(net.client, "spoof", cidrs=("10.3.0.0/24",))
    try:
        a = net.add("sa", "h1", s1)
        b = net.add("sb", "h2", s1)
        assert a.ping(b.ip)
        # spoofed source IP: another address on the container's interface
        ns_run(a.netns, ["ip", "addr", "add", "10.3.0.200/24", "dev", "eth0"], check=True)
        before = port_rx(b)
        spoofed = ns_run(a.netns, ["ping", "-c", "3", "-i", "0.1", "-W", "1", "-I", "10.3.0.200", b.ip])
        assert spoofed.returncode != 0
        assert port_rx(b) == before
        ns_run(a.netns, ["ip", "addr", "del", "10.3.0.200/24", "dev", "eth0"], check=True)
        # spoofed source MAC
        ns_run(a.netns, ["ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01"], check=True)
        ns_run(a.netns, ["ip", "neigh", "flush", "all"])
        assert not a.ping(b.ip, count=2)
        assert port_rx(b) == before
        ns_run(a.netns, ["ip", "link", "set", "eth0", "address", a.vport["mac"]], check=True)
        wait_until(lambda: a.ping(b.ip, count=1), timeout=10, message="traffic back after un-spoofing")
    finally:
        delete_enterprise(net.client, e)


def test_deleting_a_vport_removes_its_flows_on_every_host(net, lab3):
    lab, _ = lab3
    e, _d, (s1,) = make_domain(net.client, "deleting", cidrs=("10.4.0.0/24",))
    try:
        a = net.add("da", "h1", s1)
        b = net.add("db", "h2", s1)
        net.add("dc", "h3", s1)
        assert a.ping(b.ip)
        local = f"cookie={cookie_for(CookieKind.VPORT, b.vport['id']):#x}"
        remote = f"cookie={cookie_for(CookieKind.REMOTE_VPORT, b.vport['id']):#x}"
        hosts = lab.hosts
        wait_until(lambda: all(any(local in f or remote in f for f in dump_flows(h)) for h in hosts),
                   timeout=10, message="b's flows on every host")
        net.client.request("DELETE", f"/vports/{b.vport['id']}")
        wait_until(lambda: not any(local in f or remote in f for h in hosts for f in dump_flows(h)),
                   timeout=10, message="b's flows gone from every host")
        assert not a.ping(b.ip, count=1)
    finally:
        delete_enterprise(net.client, e)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_agent_restart_loses_no_packet(net, lab3, sig):
    lab, plane = lab3
    e, _d, (s1, s2) = make_domain(net.client, f"restart{int(sig)}")
    try:
        a = net.add("ra", "h1", s1)
        b = net.add("rb", "h2", s2)
        assert a.ping(b.ip)
        h1 = lab.hosts[0]
        before = dump_flows(h1)
        result = {}
        pinger = threading.Thread(
            target=lambda: result.update(loss=a.ping_loss(b.ip, count=160, interval=0.05)))
        pinger.start()
        try:
            wait_until(lambda: port_rx(b) > 5, timeout=5, message="ping running")
            plane.stop_process(f"agent-{h1.name}", sig=sig)
            plane.start_agent(h1)
            # the new agent reconciled (nothing to change) and is fully up again
            wait_until(lambda: dump_flows(h1) == before, timeout=10, message="flow table as before")
        finally:
            pinger.join(timeout=60)
        transmitted, received = result["loss"]
        assert transmitted == 160 and received == transmitted, result
        assert dump_flows(h1) == before
    finally:
        delete_enterprise(net.client, e)


def test_ofproto_trace_agrees_with_the_simulator(net, lab3):
    from tests.trace_check import compare_with_ofproto_trace

    lab, plane = lab3
    e, _d, (s1, s2) = make_domain(net.client, "tracing")
    try:
        a = net.add("ta", "h1", s1)
        b = net.add("tb", "h1", s2)
        c = net.add("tc", "h2", s1)
        mismatches = compare_with_ofproto_trace(lab.hosts[0], a, [b, c], plane.local_directory_db)
        assert mismatches == [], mismatches
    finally:
        delete_enterprise(net.client, e)


def test_lab_leaves_nothing_behind():
    """A separate lab with its plane: after teardown no namespace, process or file remains."""
    with lab_with_plane(1, tag="gone") as (lab, plane):
        names = [h.netns for h in lab.hosts] + [lab.controller_node.netns]
        pids = [p.pid for p in plane.procs.values()]
        state_dir = lab.state_dir
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            import os

            os.kill(pid, 0)
    import os

    assert not os.path.exists(state_dir)
