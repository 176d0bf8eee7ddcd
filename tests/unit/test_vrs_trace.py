"""Explain a packet, the datapath's side (nuage_ryu/vrs/trace.py): the frame a vport sends, run through a
real ovs-vswitchd's ofproto/trace, read back into the deciding policy flow and the exit.

Needs the OVS binaries and root (a private ovsdb-server + ovs-vswitchd, as test_vrs_ovs_trace.py);
skipped otherwise.
"""

from __future__ import annotations

import os

import pytest

from nuage_ryu.hostovs.process import missing_binaries
from nuage_ryu.vrs import trace
from nuage_ryu.vrs.compile import compile_host
from nuage_ryu.vrs.reference import ICMP, TCP, UDP, Packet
from tests.unit.test_policy_rules import THREE_TIER, V, views
from tests.unit.test_vrs_ovs_trace import bridge, install  # noqa: F401 - the module's bridge fixture
from tests.unit.vrs_fixtures import TUN, port_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_binaries()) or os.geteuid() != 0, reason="needs OVS binaries and root"),
]


def run(ovs, view, src: str, pkt: Packet) -> dict:
    frame, in_port = trace.frame_for(view, src, pkt)
    text = ovs.appctl("ofproto/trace", "--ct-next", trace.CT_NEXT, "br-int", trace.ofctl_flow(frame, in_port))
    return trace.explain(view, trace.parse(text), in_port)


def test_an_allowed_packet_names_its_rule_and_its_exit(bridge):  # noqa: F811
    view = views(THREE_TIER)["h1"]
    install(bridge, compile_host(view))
    local = run(bridge, view, "a1", Packet(V["a1"].ip, V["a2"].ip, TCP, 40000, 8080))
    assert local["verdict"] == "allow" and local["policy"]["rule"] == "web-app"
    assert local["output"] == {"port": port_of("a2"), "vport": "a2"}
    assert [t["name"] for t in local["tables"]] == ["CLASSIFY", "INGRESS_CT", "INGRESS_CT_STATE", "INGRESS_POLICY",
                                                    "L3_LOOKUP", "OUTPUT"]
    remote = run(bridge, view, "a1", Packet(V["a1"].ip, V["a5"].ip, TCP, 40000, 8080))
    assert remote["output"]["port"] == TUN and remote["output"]["host"] == "h2" and remote["output"]["vni"] == 1001
    # This bridge has no underlay: the flows send it into the tunnel, the datapath drops it, and says why.
    assert remote["verdict"] == "deny" and any("tunnel" in n for n in remote["notes"]), remote


def test_a_denied_packet_names_the_default_action_or_its_rule(bridge):  # noqa: F811
    view = views(THREE_TIER)["h1"]
    install(bridge, compile_host(view))
    denied = run(bridge, view, "a1", Packet(V["a1"].ip, V["a3"].ip, TCP, 40000, 5432))
    assert denied["verdict"] == "deny" and denied["output"] is None
    assert denied["policy"]["default_action"] is True and denied["policy"]["action"] == "deny"
    assert [t["name"] for t in denied["tables"]][-2:] == ["INGRESS_POLICY", "POLICY_DROP"]
    for pkt in (Packet(V["a1"].ip, V["a2"].ip, UDP, 40000, 8080), Packet(V["a1"].ip, V["a2"].ip, ICMP, icmp_type=8)):
        assert run(bridge, view, "a1", pkt)["verdict"] == "deny", pkt


def test_a_vport_not_plugged_here_cannot_be_traced():
    view = views(THREE_TIER)["h1"]
    with pytest.raises(trace.TraceError, match="no port"):
        trace.frame_for(view, "a5", Packet(V["a5"].ip, V["a1"].ip, TCP, 1, 2))  # lives on h2
    with pytest.raises(trace.TraceError, match="not in this host's view"):
        trace.frame_for(view, "nope", Packet("10.0.0.1", "10.0.0.2", TCP, 1, 2))


def test_parse_reads_flows_outputs_and_tunnel_metadata_of_one_bridge_only():
    text = """Flow: tcp,in_port=1

bridge("br-int")
----------------
 0. ip,in_port=1, priority 100, cookie 0x5
    goto_table:20
50. reg7=0x64, priority 100, cookie 0x1c
    move:NXM_NX_REG6[0..23]->NXM_NX_TUN_ID[0..23]
     -> NXM_NX_TUN_ID[0..23] is now 0x3e9
    move:NXM_NX_REG4[]->NXM_NX_TUN_IPV4_DST[]
     -> NXM_NX_TUN_IPV4_DST[] is now 192.168.0.2
    output:100

bridge("br-phy")
----------------
 0. priority 0
    NORMAL

Final flow: unchanged
Datapath actions: tnl_push(...)
"""
    got = trace.parse(text)
    assert [(h.table, h.cookie) for h in got.hits] == [(0, 5), (50, 0x1C)]
    assert got.outputs == (100,) and got.tun_dst == "192.168.0.2" and got.tun_id == 0x3E9
    assert got.hits[1].actions[0].startswith("move:")


def test_datapath_sends_only_with_a_port_among_the_top_level_actions():
    assert trace.datapath_sends("ct(commit,zone=1),3")
    assert trace.datapath_sends("ct(commit,zone=1),set(ipv4(ttl=63)),tnl_push(tnl_port(4),header(size=50),"
                                "out_port(2)),1")
    assert not trace.datapath_sends("drop")
    assert not trace.datapath_sends("ct(commit,zone=1),set(eth(src=02:aa:00:00:00:01)),set(ipv4(ttl=63))")
    assert not trace.datapath_sends("ct(zone=1),recirc(0x1)")
