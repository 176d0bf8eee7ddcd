"""The DHCP app's packet-in handler: vport lookup (port + VLAN), leases, re-tagging, counters, fuzz.

The app runs against a fake VrsAgent (bridges with a directory snapshot and a
port map, as the real agent's worker leaves them) and a fake datapath that
keeps the packet-outs; messages are the real OpenFlow 1.4 parser classes and
every packet-out is serialised to wire bytes.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from nuage_ryu.apps import companion, vrs_dhcp
from nuage_ryu.directory import model
from nuage_ryu.framework import dhcp as dhcp_pkt
from nuage_ryu.framework import ethernet, ipv4, ofp_event, ofproto_v1_4, ofproto_v1_4_parser, packet, udp, vlan
from nuage_ryu.vrs import dhcp

DPID = 0x1234
ROUTER_MAC = "fe:00:00:00:01:00"
VM_MAC, BM10_MAC, BM20_MAC, CT_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:10", "02:00:00:00:00:20", "02:00:00:00:00:c0"
VM_PORT, GW_PORT, CT_PORT = 5, 7, 9


def directory():
    bm = {"gateway_port": "gw0"}
    return model.DirectoryState.from_objects([
        model.Enterprise("e1", "acme"),
        model.Domain("d1", "e1", "prod", vni=100, ct_zone=1, router_mac=ROUTER_MAC),
        model.Zone("z1", "d1", "z"),
        model.Subnet("s1", "z1", "d1", "web", "10.0.1.0/24", "10.0.1.1"),
        model.Subnet("s2", "z1", "d1", "db", "10.0.2.0/23", "10.0.2.1"),
        model.VPort("vm", "s1", "d1", "vm", "10.0.1.10", VM_MAC, "10.0.1.1", type="vm", host="h1"),
        model.VPort("bm10", "s2", "d1", "bm10", "10.0.2.10", BM10_MAC, "10.0.2.1", type="host", host="h1",
                    external_ids={**bm, "vlan": "10"}),
        model.VPort("bm20", "s2", "d1", "bm20", "10.0.2.20", BM20_MAC, "10.0.2.1", type="host", host="h1",
                    external_ids={**bm, "vlan": "20"}),
        model.VPort("ct", "s1", "d1", "ct", "10.0.1.30", CT_MAC, "10.0.1.1", host="h1"),
        model.VPort("far", "s1", "d1", "far", "10.0.1.40", "02:00:00:00:00:40", "10.0.1.1", type="vm", host="h2"),
        model.Host("hh1", "h1", tunnel_ip="192.0.2.11"),
    ])


def fake_agent(registry=None):
    core = SimpleNamespace(state=directory(),
                           ofports={"vm": VM_PORT, "bm10": GW_PORT, "bm20": GW_PORT, "ct": CT_PORT, "far": 11})
    bridge = SimpleNamespace(host_name="h1", core=core)
    return SimpleNamespace(bridges={DPID: bridge}, CONF=SimpleNamespace(vrs=SimpleNamespace(underlay_mtu=1500)),
                           metrics=SimpleNamespace(registry=registry or CollectorRegistry()))


class FakeDatapath:
    ofproto = ofproto_v1_4
    ofproto_parser = ofproto_v1_4_parser

    def __init__(self, dpid=DPID):
        self.id = dpid
        self.sent = []

    def send_msg(self, msg):
        msg.serialize()  # must encode to the wire
        self.sent.append(msg)

    def set_xid(self, msg):
        msg.set_xid(1)


def client_frame(mac, kind=dhcp.DISCOVER, requested=None, server_id=None, vid=None, chaddr=None):
    opts = [dhcp_pkt.option(dhcp.OPT_MESSAGE_TYPE, bytes([kind]))]
    if requested:
        opts.append(dhcp_pkt.option(dhcp.OPT_REQUESTED_IP, bytes(int(x) for x in requested.split("."))))
    if server_id:
        opts.append(dhcp_pkt.option(dhcp.OPT_SERVER_ID, bytes(int(x) for x in server_id.split("."))))
    pkt = packet.Packet()
    if vid is None:
        pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=mac, ethertype=0x0800))
    else:
        pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=mac, ethertype=0x8100))
        pkt.add_protocol(vlan.vlan(vid=vid, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src="0.0.0.0", dst="255.255.255.255", proto=17))
    pkt.add_protocol(udp.udp(src_port=68, dst_port=67))
    pkt.add_protocol(dhcp_pkt.dhcp(op=1, chaddr=chaddr or mac, xid=0x1234, flags=0x8000,
                                   options=dhcp_pkt.options(option_list=opts)))
    pkt.serialize()
    return bytes(pkt.data)


def packet_in(dp, in_port, data, match=None):
    match = match if match is not None else ofproto_v1_4_parser.OFPMatch(in_port=in_port)
    msg = ofproto_v1_4_parser.OFPPacketIn(dp, buffer_id=ofproto_v1_4.OFP_NO_BUFFER, total_len=len(data or b""),
                                          reason=ofproto_v1_4.OFPR_APPLY_ACTION, table_id=0, cookie=0, match=match,
                                          data=data)
    return ofp_event.EventOFPPacketIn(msg)


@pytest.fixture
def app():
    return vrs_dhcp.VrsDhcp(vrs_agent=fake_agent())


def reply_of(out):
    pkt = packet.Packet(out.data)
    return pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(dhcp_pkt.dhcp)


def options(msg):
    return {o.tag: o.value for o in msg.options.option_list}


def test_vm_discover_gets_an_offer_of_its_directory_address_out_of_its_port(app):
    dp = FakeDatapath()
    app.packet_in(packet_in(dp, VM_PORT, client_frame(VM_MAC)))
    [out] = dp.sent
    assert [type(a).__name__ for a in out.actions] == ["OFPActionOutput"] and out.actions[0].port == VM_PORT
    assert out.in_port == ofproto_v1_4.OFPP_CONTROLLER
    eth, msg = reply_of(out)
    assert eth.src == ROUTER_MAC and msg.yiaddr == "10.0.1.10" and msg.chaddr == VM_MAC
    opts = options(msg)
    assert opts[dhcp.OPT_MESSAGE_TYPE] == bytes([dhcp.OFFER])
    assert opts[dhcp.OPT_ROUTER] == bytes([10, 0, 1, 1]) and opts[dhcp.OPT_SUBNET_MASK] == bytes([255, 255, 255, 0])
    assert int.from_bytes(opts[dhcp.OPT_MTU], "big") == 1450  # underlay 1500 - VXLAN 50
    assert app.stats.counts[dhcp.OFFERS] == 1


def test_vm_request_is_acked(app):
    dp = FakeDatapath()
    app.packet_in(packet_in(dp, VM_PORT, client_frame(VM_MAC, dhcp.REQUEST, "10.0.1.10", "10.0.1.1")))
    [out] = dp.sent
    assert options(reply_of(out)[1])[dhcp.OPT_MESSAGE_TYPE] == bytes([dhcp.ACK])
    app.packet_in(packet_in(dp, VM_PORT, client_frame(VM_MAC, dhcp.REQUEST, "10.0.1.99", "10.0.1.1")))
    assert options(reply_of(dp.sent[1])[1])[dhcp.OPT_MESSAGE_TYPE] == bytes([dhcp.NAK])


@pytest.mark.parametrize("vid,mac,ip", [(10, BM10_MAC, "10.0.2.10"), (20, BM20_MAC, "10.0.2.20")])
def test_bare_metal_vport_is_picked_by_vlan_and_the_reply_goes_back_tagged(app, vid, mac, ip):
    dp = FakeDatapath()
    app.packet_in(packet_in(dp, GW_PORT, client_frame(mac, vid=vid)))
    [out] = dp.sent
    push, set_vid, output = out.actions
    assert isinstance(push, ofproto_v1_4_parser.OFPActionPushVlan) and push.ethertype == 0x8100
    assert set_vid.key == "vlan_vid" and set_vid.value == 0x1000 | vid
    assert output.port == GW_PORT
    eth, msg = reply_of(out)
    assert eth.ethertype == 0x0800  # untagged inside: OVS pushes the tag
    assert msg.yiaddr == ip and options(msg)[dhcp.OPT_SUBNET_MASK] == bytes([255, 255, 254, 0])


def test_bare_metal_vlans_stay_separate(app):
    dp = FakeDatapath()
    # VLAN 10 asking with the MAC of the VLAN 20 server: not its vport's MAC, no answer.
    app.packet_in(packet_in(dp, GW_PORT, client_frame(BM20_MAC, vid=10)))
    # A VLAN no vport uses, and an untagged frame on the gateway port: nobody's.
    app.packet_in(packet_in(dp, GW_PORT, client_frame(BM10_MAC, vid=30)))
    app.packet_in(packet_in(dp, GW_PORT, client_frame(BM10_MAC)))
    assert dp.sent == []
    assert app.stats.counts[dhcp.FOREIGN_MAC] == 1 and app.stats.counts[vrs_dhcp.UNKNOWN_VPORT] == 2


def test_foreign_packets_are_counted_and_dropped(app):
    dp = FakeDatapath()
    app.packet_in(packet_in(FakeDatapath(dpid=0x99), VM_PORT, client_frame(VM_MAC)))  # not a managed bridge
    app.packet_in(packet_in(dp, 77, client_frame(VM_MAC)))  # no vport on that port
    app.packet_in(packet_in(dp, CT_PORT, client_frame(CT_MAC)))  # containers are configured, not DHCP'd
    app.packet_in(packet_in(dp, 11, client_frame("02:00:00:00:00:40")))  # a vport of another host
    app.packet_in(packet_in(dp, VM_PORT, client_frame(VM_MAC), match=ofproto_v1_4_parser.OFPMatch()))
    app.packet_in(packet_in(dp, VM_PORT, b"\x00" * 20))
    assert dp.sent == []
    counts = app.stats.counts
    assert counts[vrs_dhcp.UNKNOWN_DATAPATH] == 1 and counts[vrs_dhcp.UNKNOWN_VPORT] == 4
    assert counts[dhcp.MALFORMED] == 1 and counts[vrs_dhcp.ERROR] == 0


def test_without_the_agent_every_packet_is_counted(monkeypatch):
    monkeypatch.setattr(companion.app_manager, "lookup_service_brick", lambda name: None)
    app = vrs_dhcp.VrsDhcp()
    dp = FakeDatapath()
    app.packet_in(packet_in(dp, VM_PORT, client_frame(VM_MAC)))
    assert dp.sent == [] and app.stats.counts[vrs_dhcp.NO_AGENT] == 1


def test_agent_is_found_as_a_service_brick_and_metrics_go_to_its_registry(monkeypatch):
    registry = CollectorRegistry()
    agent = fake_agent(registry)
    monkeypatch.setattr(companion.app_manager, "lookup_service_brick", lambda name: agent if name == "VrsAgent"
                        else None)
    app = vrs_dhcp.VrsDhcp()
    dp = FakeDatapath()
    app.packet_in(packet_in(dp, VM_PORT, client_frame(VM_MAC)))
    app.packet_in(packet_in(dp, VM_PORT, b"junk"))
    assert len(dp.sent) == 1
    value = registry.get_sample_value
    assert value("nuage_dhcp_packets_total", {"result": "offers"}) == 1
    assert value("nuage_dhcp_packets_total", {"result": "malformed"}) == 1
    assert value("nuage_dhcp_packets_total", {"result": "unknown_datapath"}) == 0


def test_lease_follows_the_snapshot_the_agent_swaps_in(app):
    dp = FakeDatapath()
    bridge = app._agent.bridges[DPID]
    bridge.core.ofports = {"vm": 42}  # the worker replaces the map when ports change
    app.packet_in(packet_in(dp, VM_PORT, client_frame(VM_MAC)))
    app.packet_in(packet_in(dp, 42, client_frame(VM_MAC)))
    assert [o.actions[-1].port for o in dp.sent] == [42]
    bridge.core.state = None  # not synced yet: nothing to answer from
    app.packet_in(packet_in(dp, 42, client_frame(VM_MAC)))
    assert len(dp.sent) == 1


def test_split_vlan():
    frame = client_frame(VM_MAC, vid=4094)
    untagged, vid = vrs_dhcp.split_vlan(frame)
    assert vid == 4094 and untagged == client_frame(VM_MAC)
    assert vrs_dhcp.split_vlan(b"\x00" * 12 + b"\x81\x00") == (b"\x00" * 12 + b"\x81\x00", None)
    assert vrs_dhcp.split_vlan(None) == (b"", None)


def test_fuzz_packet_in_never_raises_and_only_answers_valid_requests():
    rng = random.Random(20261127)
    app = vrs_dhcp.VrsDhcp(vrs_agent=fake_agent())
    seeds = [(VM_PORT, client_frame(VM_MAC)), (GW_PORT, client_frame(BM10_MAC, vid=10)),
             (GW_PORT, client_frame(BM20_MAC, dhcp.REQUEST, "10.0.2.20", vid=20)),
             (VM_PORT, client_frame(VM_MAC, dhcp.REQUEST, "10.0.1.10", "10.0.1.1"))]
    dps = [FakeDatapath(), FakeDatapath(dpid=0x99), FakeDatapath(dpid=None)]
    cases = 0
    for port, frame in seeds:
        for cut in range(len(frame) + 1):  # every truncation
            app.packet_in(packet_in(dps[0], port, frame[:cut]))
            cases += 1
    for _ in range(4000):
        port, frame = rng.choice(seeds)
        kind = rng.randrange(5)
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 600))
        elif kind == 1:  # flip a few bytes anywhere (headers, lengths, option TLVs)
            data = bytearray(frame)
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        elif kind == 2:  # garbage DHCP options after the magic cookie
            data = frame[:frame.index(b"\x63\x82\x53\x63") + 4] + rng.randbytes(rng.randrange(0, 80))
        elif kind == 3:  # random tag / stacked tags
            data = frame[:12] + b"\x81\x00" + rng.randbytes(2) + frame[12:]
        else:
            data = frame + rng.randbytes(rng.randrange(0, 40))
        in_port = rng.choice([port, port, VM_PORT, GW_PORT, CT_PORT, 0, 0xFFFFFFFD, rng.randrange(1 << 32)])
        app.packet_in(packet_in(rng.choice(dps + [dps[0]] * 3), in_port, data))
        cases += 1
    assert app.stats.counts[vrs_dhcp.ERROR] == 0
    counted = sum(app.stats.counts[r] for r in vrs_dhcp.RESULTS)
    assert counted == cases  # one result per packet-in, nothing lost
    assert dps[0].sent  # the intact seeds were answered
    for out in dps[0].sent:  # whatever was answered is a well-formed reply to one of the vports
        eth, msg = reply_of(out)
        assert eth.src == ROUTER_MAC and msg.op == 2 and msg.chaddr in (VM_MAC, BM10_MAC, BM20_MAC)
    assert dps[1].sent == [] and dps[2].sent == []
