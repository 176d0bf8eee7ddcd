"""br-phy's steering flows kept in sync over its management socket; gratuitous ARP out of the uplink."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from nuage_ryu.agent.uplink import UplinkBridge, UplinkError, gratuitous_arp
from nuage_ryu.vrs.compile import uplink as steering
from tests.ovs_fixtures import ovs, wait_until  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def br_phy(ovs):  # noqa: F811
    ovs.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
              "fail_mode=standalone", "protocols=OpenFlow10,OpenFlow13,OpenFlow14")
    ovs.run(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"])
    ovs.run(["ip", "link", "set", "up0", "up"])
    ovs.run(["ip", "link", "set", "up0p", "up"])
    ovs.vsctl("add-port", "br-phy", "up0")
    uplink = int(ovs.vsctl("get", "interface", "up0", "ofport").strip())
    bridge = UplinkBridge(os.path.join(ovs.rundir, "br-phy.mgmt"))
    yield ovs, bridge, uplink
    bridge.close()


def flows_of(switch):  # noqa: F811
    out = switch.ofctl("-O", "OpenFlow14", "--no-stats", "dump-flows", "br-phy")
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def test_steering_flows_are_synced_and_the_normal_flow_stays(br_phy):
    switch, bridge, uplink = br_phy
    before = flows_of(switch)
    assert before == ["priority=0 actions=NORMAL"]
    view = steering.UplinkView("192.0.2.11", uplink, 7, ("192.0.2.200",), (("tcp", 8080),))
    bridge.sync(steering.compile_uplink(view))
    after = flows_of(switch)
    assert "priority=0 actions=NORMAL" in after
    assert any("tp_dst=8080" in f and "output:7" in f for f in after), after
    assert any("nw_dst=192.0.2.200" in f for f in after) and any("arp_tpa=192.0.2.200" in f for f in after)
    assert len(after) == 1 + len(steering.compile_uplink(view))
    # The floating IP leaves, the published port stays: one bundle, only the difference.
    smaller = steering.UplinkView("192.0.2.11", uplink, 7, (), (("tcp", 8080),))
    bridge.sync(steering.compile_uplink(smaller))
    now = flows_of(switch)
    assert not any("192.0.2.200" in f for f in now) and any("tp_dst=8080" in f for f in now)
    bridge.sync([])
    assert flows_of(switch) == before


def test_a_restarted_connection_reconciles(br_phy):
    switch, bridge, uplink = br_phy
    flows = steering.compile_uplink(steering.UplinkView("192.0.2.11", uplink, 7))
    bridge.sync(flows)
    bridge.close()
    again = UplinkBridge(bridge.mgmt_socket)
    try:
        again.sync(flows)  # reads the bridge, finds nothing to do
        assert len(flows_of(switch)) == 1 + len(flows)
    finally:
        again.close()


def test_gratuitous_arp_leaves_through_the_uplink(br_phy):
    switch, bridge, uplink = br_phy
    sniff = subprocess.Popen(
        ["ip", "netns", "exec", switch.netns, "python3", "-c",
         "import socket\ns=socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))\n"
         "s.bind(('up0p', 0)); s.settimeout(10); print(s.recv(100).hex(), flush=True)"],
        stdout=subprocess.PIPE, text=True)
    try:
        frame = gratuitous_arp("192.0.2.200", "02:5e:c0:00:02:0b")

        def sent() -> bool:
            bridge.announce("192.0.2.200", "02:5e:c0:00:02:0b", uplink)
            return sniff.poll() is not None

        wait_until(sent, timeout=10, interval=0.2, message="the gratuitous ARP on the wire")
        seen = bytes.fromhex(sniff.stdout.read().strip())
        assert seen[:42] == frame
        assert socket.inet_ntoa(seen[28:32]) == socket.inet_ntoa(seen[38:42]) == "192.0.2.200"
    finally:
        sniff.kill()


def test_an_absent_bridge_is_an_uplink_error(tmp_path):
    with pytest.raises(UplinkError):
        UplinkBridge(str(tmp_path / "nope.mgmt"), timeout=1).sync([])
