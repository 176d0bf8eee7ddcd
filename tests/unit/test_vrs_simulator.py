"""The table simulator itself: the OpenFlow semantics the pipeline tests rely on."""

from __future__ import annotations

import pytest

from nuage_ryu.vrs.compile import merge_same_key
from nuage_ryu.vrs.flow import (
    OFPP_IN_PORT,
    Conjunction,
    Controller,
    Ct,
    DecTtl,
    Flow,
    Goto,
    Move,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    match,
)
from nuage_ryu.vrs.simulator import SimulationError, TableSimulator

TCP = {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.2",
       "tcp_src": 1000, "tcp_dst": 80, "eth_src": "02:00:00:00:00:01", "eth_dst": "02:00:00:00:00:02"}


def test_highest_priority_match_wins_and_miss_drops():
    sim = TableSimulator([
        Flow(0, 10, match(eth_type=0x0800), (Output(1),)),
        Flow(0, 20, match(ipv4_dst="10.0.0.2"), (Output(2),)),
    ])
    assert sim.process(TCP, 9).ports == [2]
    assert sim.process(dict(TCP, ipv4_dst="10.0.0.3"), 9).ports == [1]
    assert sim.process({"eth_type": 0x0806}, 9).dropped


def test_masked_match_and_absent_fields():
    sim = TableSimulator([Flow(0, 10, match(ipv4_dst=("10.0.0.0", "255.255.255.0")), (Output(1),))])
    assert sim.process(TCP, 9).ports == [1]
    assert sim.process(dict(TCP, ipv4_dst="10.0.1.2"), 9).dropped
    assert sim.process({"eth_type": 0x0806}, 9).dropped  # no ipv4_dst at all


def test_goto_resubmit_and_output_in_port_rule():
    sim = TableSimulator([
        Flow(0, 1, (), (Resubmit(5), Output(3), Goto(1))),
        Flow(5, 1, (), (Output(4),)),
        Flow(1, 1, (), (Output(9), Output(OFPP_IN_PORT))),
    ])
    assert sim.process(TCP, 9).ports == [4, 3, 9]  # plain output:9 to the in_port is skipped
    with pytest.raises(SimulationError):  # OpenFlow forbids goto backwards (a loop)
        TableSimulator([Flow(0, 1, (), (Goto(0),))]).process(TCP, 1)


def test_set_field_move_partial_bits_dec_ttl_and_vlan():
    sim = TableSimulator([Flow(0, 1, (), (
        SetField("reg6", 0xABCDEF12),
        Move("reg6", "tunnel_id", 8, src_ofs=8, dst_ofs=4),  # bits 8..15 (0xEF) -> tunnel_id bits 4..11
        SetField("reg4", "192.168.0.7"),
        Move("reg4", "tun_ipv4_dst", 32),
        Move("eth_src", "eth_dst", 48),
        DecTtl(),
        PushVlan(), SetField("vlan_vid", 0x1000 | 7),
        Output(1), PopVlan(), Output(2),
    ))])
    first, second = sim.process(dict(TCP, nw_ttl=5), 9).outputs
    assert first.packet["tunnel_id"] == 0xEF << 4
    assert first.packet["tun_ipv4_dst"] == "192.168.0.7"
    assert first.packet["eth_dst"] == TCP["eth_src"]
    assert first.packet["nw_ttl"] == 4 and first.packet["vlan_vid"] == 0x1007
    assert "vlan_vid" not in second.packet


def test_dec_ttl_expiry_stops_the_packet():
    sim = TableSimulator([Flow(0, 1, (), (DecTtl(), Output(1)))])
    assert sim.process(dict(TCP, nw_ttl=1), 9).dropped


def test_controller_is_not_a_drop():
    res = TableSimulator([Flow(0, 1, (), (Controller(),))]).process(TCP, 9)
    assert not res.dropped and len(res.to_controller) == 1


# ---- conjunction ---------------------------------------------------------------------


def _conj_flows(conj_id=7, prio=50):
    return [
        Flow(0, prio, match(ipv4_src="10.0.0.1"), (Conjunction(conj_id, 1, 2),)),
        Flow(0, prio, match(ipv4_src="10.0.0.5"), (Conjunction(conj_id, 1, 2),)),
        Flow(0, prio, match(tcp_dst=80, eth_type=0x0800, ip_proto=6), (Conjunction(conj_id, 2, 2),)),
        Flow(0, prio, match(conj_id=conj_id), (Output(1),), cookie=0x77),
        Flow(0, 1, (), (Output(2),)),
    ]


def test_conjunction_needs_every_clause():
    sim = TableSimulator(_conj_flows())
    assert sim.process(TCP, 9).ports == [1]
    assert sim.process(dict(TCP, ipv4_src="10.0.0.5"), 9).ports == [1]
    assert sim.process(dict(TCP, ipv4_src="10.0.0.9"), 9).ports == [2]  # clause 1 missing
    assert sim.process(dict(TCP, tcp_dst=81), 9).ports == [2]  # clause 2 missing
    assert 0x77 in sim.process(TCP, 9).cookies


def test_higher_priority_ordinary_flow_beats_a_conjunction():
    sim = TableSimulator([*_conj_flows(prio=50), Flow(0, 60, match(tcp_dst=80), (Output(3),))])
    assert sim.process(TCP, 9).ports == [3]


def test_identical_matches_with_different_conj_ids_overwrite_unless_merged():
    # Two rules share the same source clause flow: OVS keeps only the last one added ...
    rule1 = _conj_flows(conj_id=1)
    rule2 = [Flow(0, 50, match(ipv4_src="10.0.0.1"), (Conjunction(2, 1, 2),)),
             Flow(0, 50, match(tcp_dst=22, eth_type=0x0800, ip_proto=6), (Conjunction(2, 2, 2),)),
             Flow(0, 50, match(conj_id=2), (Output(4),))]
    naive = TableSimulator(rule1 + rule2)
    assert naive.process(TCP, 9).ports == [2]  # rule 1 silently lost its clause for 10.0.0.1
    # ... the compiler merges the two into one flow carrying both conjunction actions.
    merged = merge_same_key([rule1[0], rule2[0]])
    assert set(merged.actions) == {Conjunction(1, 1, 2), Conjunction(2, 1, 2)}
    fixed = TableSimulator(rule1 + rule2 + [merged])
    assert fixed.process(TCP, 9).ports == [1]
    assert fixed.process(dict(TCP, tcp_dst=22), 9).ports == [4]


# ---- conntrack -------------------------------------------------------------------------


def _ct_pipeline(commit_new: bool):
    new = (Ct(zone=5, commit=True), Output(1)) if commit_new else (Output(1),)
    return TableSimulator([
        Flow(0, 1, match(eth_type=0x0800), (Ct(zone=5, table=1),)),
        Flow(1, 10, match(ct_state=(0x22, 0x32)), (Output(2),)),  # +trk+est-inv: "established"
        Flow(1, 5, match(ct_state=(0x21, 0x21)), new),  # +trk+new
    ])


def _reply(pkt, flags=0x12):
    return dict(pkt, ipv4_src=pkt["ipv4_dst"], ipv4_dst=pkt["ipv4_src"], tcp_src=pkt["tcp_dst"],
                tcp_dst=pkt["tcp_src"], tcp_flags=flags)


def test_conntrack_commit_makes_replies_established_and_states_follow_linux():
    sim = _ct_pipeline(commit_new=True)
    assert sim.process(TCP, 9).ports == [1]  # new
    assert sim.process(TCP, 9).ports == [1]  # original direction stays +new until a reply
    assert sim.process(_reply(TCP), 9).ports == [2]  # reply: +est+rpl
    assert sim.process(TCP, 9).ports == [2]  # now established both ways


def test_without_commit_nothing_is_established_and_tcp_replies_are_invalid():
    sim = _ct_pipeline(commit_new=False)
    sim.load([Flow(1, 7, match(ct_state=(0x30, 0x30)), (Output(3),))])  # +trk+inv
    assert sim.process(TCP, 9).ports == [1]
    assert sim.process(_reply(TCP), 9).ports == [3]  # a SYN-ACK OVS never saw the SYN of
    assert sim.process(_reply(TCP, flags=0x10), 9).ports == [3]
    assert sim.process(dict(TCP, ip_proto=17, udp_src=5, udp_dst=6), 9).ports == [1]  # udp: any is new


def test_commit_of_an_invalid_packet_tracks_nothing():
    sim = _ct_pipeline(commit_new=True)
    sim.load([Flow(1, 7, match(ct_state=(0x30, 0x30)), (Ct(zone=5, commit=True), Output(3)))])
    assert sim.process(dict(TCP, tcp_flags=0x10), 9).ports == [3]  # mid-stream ACK: +inv
    assert sim.process(_reply(TCP), 9).ports == [3]  # still nothing to be a reply of


def test_conntrack_zones_are_separate():
    sim = _ct_pipeline(commit_new=True)
    sim.process(TCP, 9)
    other = TableSimulator(sim.flows())
    other.conntrack = sim.conntrack
    other.load([Flow(0, 1, match(eth_type=0x0800), (Ct(zone=6, table=1),))])
    # A packet on the reply tuple: zone 6 never saw the connection (new), zone 5 did (reply).
    assert other.process(_reply(TCP, flags=0x02), 9).ports == [1]
    assert sim.process(_reply(TCP, flags=0x02), 9).ports == [2]


def test_ct_zone_from_register():
    sim = TableSimulator([
        Flow(0, 1, (), (SetField("reg6", 5), Ct(zone_src="reg6", table=1))),
        Flow(1, 1, match(ct_zone=5), (Output(1),)),
    ])
    assert sim.process(TCP, 9).ports == [1]


def test_overlapping_flows_at_one_priority_are_reported():
    sim = TableSimulator([Flow(0, 5, match(eth_type=0x0800), (Output(1),)),
                          Flow(0, 5, match(ipv4_dst="10.0.0.2"), (Output(2),))])
    assert sim.process(TCP, 9).ambiguous
    assert not sim.process(dict(TCP, ipv4_dst="10.0.0.3"), 9).ambiguous
