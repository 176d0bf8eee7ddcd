"""Differential test, real datapath: a sample of the random policies of test_policy_differential.py is
installed on a real ovs-vswitchd bridge, and ``ofproto/trace`` of its packets must give the verdict of
the reference evaluator (and the simulator's output ports).

Per policy, one host's flows go on the bridge; the cases are packets that host handles: sent by a
local vport (INGRESS_POLICY), or arriving from the tunnel for a local vport (EGRESS_POLICY; the frame
is what the sending host's simulator puts on the wire). Each request is traced as ``+trk+new``; when
the reference lets it through, its reply is traced as conntrack would see it: ``+est+rpl`` after a
stateful allow, otherwise as a packet of no connection (``+inv`` for a TCP SYN-ACK or an ICMP reply,
``+new`` for UDP and other protocols).

Needs the OVS binaries and root (a private ovsdb-server + ovs-vswitchd); skipped otherwise.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from nuage_ryu.hostovs.process import missing_binaries
from nuage_ryu.vrs import reference as R
from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.pipeline import METER_VERDICT_LOG
from nuage_ryu.vrs.simulator import Overlay, TableSimulator
from tests.policy_scenarios import (
    ACK,
    GATEWAY_OFPORT,
    HOSTS,
    SYN,
    TUN,
    Scenario,
    cases,
    describe,
    has_reply,
    reference_packet,
    scenarios,
    wire_packet,
)
from tests.unit.test_policy_differential import SCALE, compiled
from tests.unit.test_vrs_ovs_trace import DATAPATH_RE, OUTPUT_RE, install, ofctl_packet

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_binaries()) or os.geteuid() != 0, reason="needs OVS binaries and root"),
]

POLICIES, CASES_PER_POLICY = 40 * SCALE, 8
MAX_PORTS = 13  # vports of a scenario (2 domains x up to 6) each get a port; 13 is the shared gateway port
TUNNEL_IP = {h.name: h.tunnel_ip for h in HOSTS}
UNDERLAY_IP = "192.168.0.254"
COPY_RE = re.compile(r"controller\([^)]*rule_cookie=(0x[0-9a-f]+)[^)]*\)")  # a verdict copy's flow cookie
VXLAN_RE = re.compile(r"ipv4\(src=[0-9.]+,dst=([0-9.]+),.*vxlan\(flags=0x[0-9a-f]+,vni=(0x[0-9a-f]+)\)")


@pytest.fixture(scope="module")
def bridge():
    from tests.ovs_fixtures import private_ovs

    with private_ovs() as ovs:
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
                  "fail_mode=secure", "protocols=OpenFlow13,OpenFlow14")
        # The verdict-log meter, before any flow names it (as the agent does on connect).
        ovs.ofctl("-O", "OpenFlow14", "add-meter", "br-int", f"meter={METER_VERDICT_LOG},pktps,burst,"
                  "bands=type=drop,rate=100,burst_size=100")
        for port in range(1, MAX_PORTS + 1):
            ovs.vsctl("add-port", "br-int", f"hp{port}", "--", "set", "interface", f"hp{port}", "type=internal",
                      f"ofport_request={port}")
        ovs.vsctl("add-port", "br-int", "vxlan0", "--", "set", "interface", "vxlan0", "type=vxlan",
                  "options:remote_ip=flow", "options:key=flow", f"ofport_request={TUN}")
        # An underlay the tunnel can really leave by (else OVS drops at "native tunnel routing failed"):
        # a br-phy holding an address of the hosts' segment that is none of theirs, a port to flood to,
        # and the hosts' MACs, so that the datapath actions show the VXLAN header that would be sent.
        ovs.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev")
        ovs.vsctl("add-port", "br-phy", "hpphy", "--", "set", "interface", "hpphy", "type=internal")
        for argv in (["ip", "link", "set", "hpphy", "up"], ["ip", "link", "set", "br-phy", "up"],
                     ["ip", "addr", "add", f"{UNDERLAY_IP}/24", "dev", "br-phy"]):
            ovs.run(argv)
        deadline = time.monotonic() + 10  # OVS learns the kernel's route asynchronously (netlink)
        while "192.168.0.0/24 dev br-phy" not in ovs.appctl("ovs/route/show"):
            assert time.monotonic() < deadline, ovs.appctl("ovs/route/show")
            time.sleep(0.05)
        for i, h in enumerate(HOSTS):
            ovs.appctl("tnl/neigh/set", "br-phy", h.tunnel_ip, f"02:fe:00:00:00:{i + 1:02x}")
        yield ovs


def verdict_copies(ovs, frame: dict, in_port: int, ct: str) -> list[int]:
    """Cookies of the flows whose metered controller copies the datapath makes of the packet, in order
    (the verdict records: docs/policy.md)."""
    text = ovs.appctl("ofproto/trace", "--ct-next", ct, "br-int", ofctl_packet(frame, in_port))
    actions = DATAPATH_RE.findall(text)
    assert "meter(" in actions[-1] or "controller(" not in actions[-1], text  # copies go through the meter
    return [int(c, 16) for c in COPY_RE.findall(actions[-1])]


def trace(ovs, frame: dict, in_port: int, ct: str) -> tuple[set[int], tuple[int, str] | None]:
    """(OpenFlow output ports, (VNI, remote IP) of the VXLAN header the datapath pushes, if any)."""
    text = ovs.appctl("ofproto/trace", "--ct-next", ct, "br-int", ofctl_packet(frame, in_port))
    actions = DATAPATH_RE.findall(text)
    if not actions or actions[-1].strip() == "drop":
        return set(), None
    ports = {in_port if inport else int(port) for port, inport in OUTPUT_RE.findall(text)}
    pushed = VXLAN_RE.search(actions[-1])
    return ports, (int(pushed.group(2), 16), pushed.group(1)) if pushed else None


def arriving(net: Overlay, sc: Scenario, host: str, sender, receiver, pkt: R.Packet,
             flags: int) -> tuple[dict, int] | None:
    """(frame, in_port) of ``pkt`` as it reaches ``host``'s bridge: from the sender's port when the
    sender is on ``host``, else what the sender's host (simulated, with its conntrack) tunnels over;
    None if that host drops it."""
    frame = wire_packet(sc, sender, receiver, pkt, flags)
    if sender.host == host:
        return frame, sc.ofports[sender.id]
    out = net.hosts[sender.host].process(frame, sc.ofports[sender.id]).outputs
    if not out:
        return None
    inner = {k: v for k, v in out[0].packet.items() if not k.startswith(("reg", "tun", "in_port", "ct_"))}
    inner.update(tunnel_id=out[0].tunnel[0], tun_ipv4_src=TUNNEL_IP[sender.host], tun_ipv4_dst=out[0].tunnel[1])
    return inner, TUN


def reply_ct_state(first: R.Decision, pkt: R.Packet) -> str:
    if first.stateful:
        return "trk,est,rpl"
    return "trk,inv" if pkt.protocol in (R.TCP, R.ICMP) else "trk,new"


def expected_ports(sc: Scenario, host: str, receiver, allowed: bool) -> set[int]:
    if not allowed:
        return set()
    return {sc.ofports[receiver.id]} if receiver.host == host else {TUN}


def test_ofproto_trace_gives_the_reference_verdict_for_random_policies(bridge):
    counted = {"policies": 0, "traces": 0, "copies": 0}

    # No shrinking: each step of it re-installs a bridge; the message already shows the whole case.
    @settings(max_examples=POLICIES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.reuse, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(st.data())
    def check(data):
        sc = data.draw(scenarios())
        host = data.draw(st.sampled_from(sorted({v.host for v in sc.vports})))
        flows = compile_host(sc.view(host))
        install(bridge, flows)
        sim = TableSimulator(flows)
        net = compiled(sc)  # every host simulated: the other end of a tunnelled case
        counted["policies"] += 1
        for _ in range(CASES_PER_POLICY):
            case = data.draw(cases(sc))
            src, dst = sc.vport(case.src), sc.vport(case.dst)
            if host not in (src.host, dst.host):
                continue
            for other in net.hosts.values():
                other.conntrack.flush()
            policy = sc.policy(src.domain_id)
            pkt = reference_packet(sc, case)
            first = R.decide(policy, pkt)
            steps = [(src, dst, pkt, SYN, "trk,new", first.allowed)]
            if first.allowed and has_reply(pkt):
                steps.append((dst, src, pkt.reply(), SYN | ACK, reply_ct_state(first, pkt),
                              R.decide_reply(policy, pkt, first).allowed))
            for sender, receiver, p, flags, ct, allowed in steps:
                got = arriving(net, sc, host, sender, receiver, p, flags)
                if got is None:  # the sending host dropped it (the simulated side agrees with the reference)
                    assert not allowed, f"{p}: dropped on {sender.host}\n{describe(sc)}"
                    continue
                frame, in_port = got
                ports, pushed = trace(bridge, frame, in_port, ct)
                want = expected_ports(sc, host, receiver, allowed)
                assert ports == want, f"{host} {ct} {p}: ofproto/trace {ports}, reference {want}\n{describe(sc)}"
                if want == {TUN}:  # tunnelled to the receiver's host, in the domain's VNI
                    vni = next(d.vni for d in sc.domains if d.id == receiver.domain_id)
                    assert pushed == (vni, TUNNEL_IP[receiver.host]), (pushed, p, describe(sc))
                if ct == "trk,new":  # a new packet: the simulator (empty conntrack) must agree as well
                    sim.conntrack.flush()
                    simulated = sim.process(frame, in_port)
                    assert set(simulated.ports) == ports, f"{host} {p}\n{describe(sc)}"
                    # the verdict copies too: the same flows (cookies), in the same order
                    copies = verdict_copies(bridge, frame, in_port, ct)
                    assert copies == [c.cookie for c in simulated.samples], f"{host} {p}\n{describe(sc)}"
                    counted["copies"] += len(copies)
                    # and the whole simulated system sees the request, so the reply meets its connection
                    net.send(sender.host, wire_packet(sc, sender, receiver, p, flags), sc.ofports[sender.id])
                counted["traces"] += 1

    check()
    print(f"ofproto/trace differential: {counted['policies']} policies, {counted['traces']} traces, "
          f"{counted['copies']} verdict copies")
    assert counted["traces"] >= 60
    assert counted["copies"] >= 10


def test_ofproto_trace_sends_a_server_back_out_of_its_gateway_port_to_another_vlan(bridge):
    # The hairpin the differential test found (tests/unit/test_policy_regressions.py), on a real bridge.
    from nuage_ryu.vrs.view import AclRule, Domain, Endpoint, Subnet, VPort

    servers = (VPort("s1", "D1", "D1s1", "02:00:00:00:00:0a", "10.0.1.10", "h1", "host", vlan=10),
               VPort("s2", "D1", "D1s1", "02:00:00:00:00:0b", "10.0.1.11", "h1", "host", vlan=20))
    sc = Scenario((Domain("D1", 2001, "02:d1:00:00:00:01", "deny", 1),),
                  (Subnet("D1s1", "D1", "10.0.1.0/24", "10.0.1.1", "D1z1"),), servers, (),
                  (AclRule("icmp", "D1", 10, Endpoint(), Endpoint(), "icmp"),),
                  {"s1": GATEWAY_OFPORT, "s2": GATEWAY_OFPORT})
    install(bridge, compile_host(sc.view("h1")))
    ping = R.Packet("10.0.1.10", "10.0.1.11", R.ICMP, icmp_type=8)
    frame = wire_packet(sc, servers[0], servers[1], ping)
    text = bridge.appctl("ofproto/trace", "--ct-next", "trk,new", "br-int", ofctl_packet(frame, GATEWAY_OFPORT))
    assert trace(bridge, frame, GATEWAY_OFPORT, "trk,new")[0] == {GATEWAY_OFPORT}, text
    assert "push_vlan(vid=20" in DATAPATH_RE.findall(text)[-1], text
    denied = wire_packet(sc, servers[0], servers[1], R.Packet("10.0.1.10", "10.0.1.11", R.TCP, 1, 80))
    assert trace(bridge, denied, GATEWAY_OFPORT, "trk,new")[0] == set()  # and policy still applies
