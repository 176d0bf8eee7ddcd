"""BridgeSync as a pure state machine: fed fake switch replies, checked by the messages it returns."""

from __future__ import annotations

import struct

import pytest

from nuage_ryu.vrs import ofwire, sync
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import Flow, Goto, Output, SetField, match

ofp = ofwire.ofp
VP = cookie_for(CookieKind.VPORT, "vp-1")
VP2 = cookie_for(CookieKind.VPORT, "vp-2")
CANARY = sync.CANARY_FLOW


def flows(n=10, cookie=VP, port_base=1):
    return [Flow(0, 100, match(in_port=port_base + i), (SetField("reg6", 5), Goto(10)), cookie)
            for i in range(n)]


class Msg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Switch:
    """Parses what BridgeSync sends; answers like OVS would."""

    def __init__(self, installed=()):
        self.installed = {f.key: ofwire.canonical_flow(f) for f in installed}

    @staticmethod
    def parse(msgs):
        out = []
        for buf in msgs:
            for mtype, xid, raw in ofwire.split_messages(buf):
                if mtype == ofwire.OFPT_BUNDLE_ADD_MESSAGE:
                    bundle_id, flags = struct.unpack_from("!I2xH", raw, 8)
                    flow, command, inner_xid = ofwire.decode_flow_mod(raw)
                    assert inner_xid == xid
                    if command == ofp.OFPFC_ADD:
                        out.append(("add", xid, bundle_id, flags, flow))
                    elif command == ofp.OFPFC_DELETE:  # every flow with this cookie, any table
                        cookie_mask = struct.unpack_from("!Q", raw, 16 + 16)[0]
                        assert flow.table == ofp.OFPTT_ALL and not flow.match and cookie_mask == (1 << 64) - 1
                        out.append(("delete_cookie", xid, bundle_id, flags, flow.cookie))
                    else:  # a strict delete names only the key
                        assert command == ofp.OFPFC_DELETE_STRICT and not flow.actions and not flow.cookie
                        out.append(("delete", xid, bundle_id, flags, flow.key))
                elif mtype == ofwire.OFPT_BUNDLE_CONTROL:
                    bundle_id, ctype, flags = struct.unpack_from("!IHH", raw, 8)
                    out.append(("ctrl", xid, bundle_id, flags, ctype))
                elif mtype == ofp.OFPT_MULTIPART_REQUEST:
                    stype = struct.unpack_from("!H", raw, 8)[0]
                    assert stype == ofp.OFPMP_FLOW
                    table, out_port, out_group, _cookie, cookie_mask = struct.unpack_from(
                        "!B3xII4xQQ", raw, 16)
                    assert (table, out_port, out_group, cookie_mask) == (ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                                                        ofp.OFPG_ANY, 0)
                    out.append(("read", xid, None, None, None))
                elif mtype == ofp.OFPT_METER_MOD:  # the verdict-log meter (nuage_ryu/agent/verdicts.py)
                    command, _flags, meter_id = struct.unpack_from("!HHI", raw, 8)
                    out.append(("meter", xid, None, command, meter_id))
                else:
                    raise AssertionError(f"unexpected message type {mtype}")
        return out

    def stats_replies(self, xid, per_msg=1000):
        items = list(self.installed.values())
        chunks = [items[i:i + per_msg] for i in range(0, len(items), per_msg)] or [[]]
        last = len(chunks) - 1
        return [ofwire.encode_flow_stats_reply(c, xid, more=i < last) for i, c in enumerate(chunks)]

    def apply(self, parsed):
        """Apply a bundle's flow mods; returns (commit xid, bundle id)."""
        commit = None
        for kind, xid, bundle_id, _flags, obj in parsed:
            if kind == "add":
                self.installed[obj.key] = obj
            elif kind == "delete":
                self.installed.pop(obj, None)
            elif kind == "delete_cookie":
                self.installed = {k: f for k, f in self.installed.items() if f.cookie != obj}
            elif kind == "ctrl" and obj == ofp.OFPBCT_COMMIT_REQUEST:
                commit = (xid, bundle_id)
        return commit


def commit_reply(commit):
    xid, bundle_id = commit
    return Msg(xid=xid, bundle_id=bundle_id, type=ofp.OFPBCT_COMMIT_REPLY, flags=0)


def connect(bs, sw, per_msg=1000):
    """on_connect + the read-back; returns what BridgeSync sent after the read."""
    (read,) = Switch.parse(bs.on_connect())
    assert read[0] == "read"
    out = []
    for raw in sw.stats_replies(read[1], per_msg):
        assert not out, "sent something before the last part of the reply"
        out = bs.on_flow_stats_reply(raw)
    return out


def run_bundle(bs, sw, msgs):
    parsed = Switch.parse(msgs)
    commit = sw.apply(parsed)
    assert commit is not None
    return parsed, bs.on_bundle_reply(commit_reply(commit))


def test_first_push_is_one_atomic_ordered_bundle_and_confirms():
    confirmed = []
    bs = sync.BridgeSync(on_confirmed=lambda cookies, gen: confirmed.append((cookies, gen)))
    sw = Switch()
    assert connect(bs, sw) == []  # nothing desired yet: nothing sent
    desired = flows(10)
    parsed = Switch.parse(bs.set_desired(desired))
    kinds = [p[0] for p in parsed]
    assert kinds == ["ctrl"] + ["add"] * 11 + ["ctrl"]
    assert parsed[0][4] == ofp.OFPBCT_OPEN_REQUEST and parsed[-1][4] == ofp.OFPBCT_COMMIT_REQUEST
    assert {p[2] for p in parsed} == {parsed[0][2]}  # one bundle id
    assert {p[3] for p in parsed} == {ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED}
    assert len({p[1] for p in parsed}) == len(parsed)  # unique xids: errors name their flow
    assert {p[4] for p in parsed if p[0] == "add"} == set(desired) | {CANARY}
    assert not bs.in_sync and not confirmed
    commit = Switch().apply(parsed)
    assert bs.on_bundle_reply(commit_reply(commit)) == []
    assert bs.in_sync
    assert confirmed == [(frozenset({VP, CANARY.cookie}), 1)]


def test_reconnect_with_unchanged_flows_sends_nothing():
    desired = flows(50)
    sw = Switch(desired + [CANARY])
    confirmed = []
    bs = sync.BridgeSync(on_confirmed=lambda c, g: confirmed.append(g))
    assert connect(bs, sw, per_msg=7) == []
    assert bs.set_desired(desired) == []
    assert bs.in_sync and confirmed == [1]
    # Desired known before the connection: the read-back itself finds nothing to do.
    bs2 = sync.BridgeSync()
    bs2.set_desired(desired)
    assert connect(bs2, sw) == [] and bs2.in_sync


def test_no_delete_before_the_first_desired_set():
    sw = Switch(flows(5) + [CANARY])
    bs = sync.BridgeSync()
    assert connect(bs, sw) == []
    assert bs.state == sync.READY and not bs.in_sync


def test_only_the_difference_is_sent_deletes_first():
    old = flows(10)
    sw = Switch(old + [CANARY])
    bs = sync.BridgeSync()
    connect(bs, sw)
    assert bs.set_desired(old) == []
    changed = Flow(old[3].table, old[3].priority, old[3].match, (Output(9),), VP)
    new = Flow(0, 100, match(in_port=99), (Output(1),), VP2)
    desired = old[:3] + [changed] + old[4:8] + [new]  # old[8], old[9] removed
    parsed, after = run_bundle(bs, sw, bs.set_desired(desired))
    body = [(p[0], p[4]) for p in parsed if p[0] != "ctrl"]
    assert len(body) == 4
    assert set(body[:2]) == {("delete", old[8].key), ("delete", old[9].key)}  # deletes first
    assert set(body[2:]) == {("add", changed), ("add", new)}
    assert after == [] and bs.in_sync
    assert sw.installed == {f.key: ofwire.canonical_flow(f) for f in desired + [CANARY]}


def test_flows_with_foreign_cookies_are_left_alone():
    foreign = Flow(0, 5, match(in_port=1), (Output(2),), cookie=0)
    other_controller = Flow(0, 6, match(in_port=1), (Output(3),), cookie=0xAB00000000000001)
    ours_stale = Flow(0, 7, match(in_port=1), (Output(4),), cookie=VP2)
    sw = Switch([foreign, other_controller, ours_stale, CANARY])
    bs = sync.BridgeSync()
    connect(bs, sw)
    parsed = Switch.parse(bs.set_desired(flows(2)))
    deleted = [p[4] for p in parsed if p[0].startswith("delete")]
    assert deleted == [VP2]  # its owner has no desired flow left: one delete by cookie
    sw.apply(parsed)
    assert foreign.key in sw.installed and other_controller.key in sw.installed
    assert ours_stale.key not in sw.installed


def test_missing_canary_means_full_push():
    desired = flows(20)
    sw = Switch(desired[:10] + [Flow(0, 1, (), (), VP2)])  # some of our flows, but no canary
    bs = sync.BridgeSync()
    bs.set_desired(desired)
    parsed = Switch.parse(connect(bs, sw))
    adds = {p[4] for p in parsed if p[0] == "add"}
    deletes = [p[4] for p in parsed if p[0].startswith("delete")]
    assert adds == set(desired) | {CANARY}  # everything, not just the 10 missing
    assert deletes == [VP2]
    assert bs.stats.full_pushes == 1


def test_changes_during_a_bundle_are_coalesced_into_the_next():
    sw = Switch()
    bs = sync.BridgeSync()
    connect(bs, sw)
    first = bs.set_desired(flows(5))
    assert bs.state == sync.PUSHING
    assert bs.set_desired(flows(6)) == []  # in flight: wait
    assert bs.set_desired(flows(7)) == []
    parsed, second = run_bundle(bs, sw, first)
    assert not bs.in_sync
    parsed2 = Switch.parse(second)
    assert [p[4] for p in parsed2 if p[0] == "add"] == flows(7)[5:]
    commit = sw.apply(parsed2)
    assert bs.on_bundle_reply(commit_reply(commit)) == [] and bs.in_sync and bs.generation == 3


def test_refused_flow_is_quarantined_then_rest_retried_after_reread():
    failed = []
    sw = Switch()
    bs = sync.BridgeSync(on_failed=lambda f, t, c: failed.append((f, t, c)))
    connect(bs, sw)
    good = flows(4)
    bad = Flow(30, 1, match(in_port=1), (Goto(5),), VP2)
    parsed = Switch.parse(bs.set_desired(good + [bad]))
    bad_xid = next(p[1] for p in parsed if p[0] == "add" and p[4] == bad)
    # OVS refuses the message at add time and commits the rest.
    assert bs.on_error(Msg(xid=bad_xid, type=ofp.OFPET_BAD_INSTRUCTION, code=ofp.OFPBIC_BAD_TABLE_ID)) == []
    sw.apply([p for p in parsed if p[4] != bad])
    commit = next((p[1], p[2]) for p in parsed if p[0] == "ctrl" and p[4] == ofp.OFPBCT_COMMIT_REQUEST)
    reread = Switch.parse(bs.on_bundle_reply(commit_reply(commit)))
    assert [p[0] for p in reread] == ["read"]  # outcome uncertain: read back
    assert failed == [(bad, ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_BAD_TABLE_ID)]
    out = []
    for raw in sw.stats_replies(reread[0][1]):
        out = bs.on_flow_stats_reply(raw)
    assert out == [] and bs.in_sync and bad.key in bs.quarantine
    assert bs.installed_cookies() == {VP, CANARY.cookie}
    # A new version of the refused flow is tried again.
    fixed = Flow(30, 1, match(in_port=1), (Output(1),), VP2)
    parsed = Switch.parse(bs.set_desired(good + [fixed]))
    assert [p[4] for p in parsed if p[0] == "add"] == [fixed] and not bs.quarantine


def test_commit_failures_are_retried_then_stall_until_a_change():
    sw = Switch()
    bs = sync.BridgeSync(max_retries=2)
    connect(bs, sw)
    msgs = bs.set_desired(flows(3))
    for _attempt in range(3):
        parsed = Switch.parse(msgs)
        commit_xid = next(p[1] for p in parsed if p[0] == "ctrl" and p[4] == ofp.OFPBCT_COMMIT_REQUEST)
        out = Switch.parse(bs.on_error(Msg(xid=commit_xid, type=ofp.OFPET_BUNDLE_FAILED,
                                           code=ofp.OFPBFC_TIMEOUT)))
        if bs.state == sync.STALLED:
            assert out == []
            break
        assert [p[0] for p in out] == ["read"]
        msgs = []
        for raw in sw.stats_replies(out[0][1]):
            msgs = bs.on_flow_stats_reply(raw)
        assert msgs  # the same difference is retried
    assert bs.state == sync.STALLED
    assert bs.stats.errors == 3
    # The next change retries, from a fresh read-back.
    (read,) = Switch.parse(bs.set_desired(flows(3)))
    out = []
    for raw in sw.stats_replies(read[1]):
        out = bs.on_flow_stats_reply(raw)
    assert [p[0] for p in Switch.parse(out)].count("add") == 4


def test_stale_and_foreign_replies_are_ignored():
    bs = sync.BridgeSync()
    sw = Switch(flows(3))
    (read,) = Switch.parse(bs.on_connect())
    assert bs.on_flow_stats_reply(sw.stats_replies(read[1] + 1)[0]) == []
    assert bs.state == sync.READING
    assert bs.on_bundle_reply(Msg(xid=1, bundle_id=1, type=ofp.OFPBCT_COMMIT_REPLY)) == []
    assert bs.on_error(Msg(xid=12345, type=1, code=1)) == []


def test_disconnect_drops_the_bundle_and_reconnect_reads_again():
    sw = Switch()
    bs = sync.BridgeSync()
    connect(bs, sw)
    bs.set_desired(flows(3))
    bs.on_disconnect()
    assert bs.state == sync.DISCONNECTED and bs.bundle is None
    assert bs.set_desired(flows(4)) == []  # nothing can be sent while disconnected
    parsed = Switch.parse(connect(bs, sw))  # the bundle never committed: all flows go again
    assert {p[4] for p in parsed if p[0] == "add"} == set(flows(4)) | {CANARY}


def test_resync_reads_back_and_repairs_drift():
    desired = flows(5)
    sw = Switch()
    bs = sync.BridgeSync()
    connect(bs, sw)
    run_bundle(bs, sw, bs.set_desired(desired))
    assert bs.in_sync
    del sw.installed[desired[2].key]  # someone deleted a flow behind our back
    (read,) = Switch.parse(bs.resync())
    out = []
    for raw in sw.stats_replies(read[1]):
        out = bs.on_flow_stats_reply(raw)
    assert [p[4] for p in Switch.parse(out) if p[0] == "add"] == [desired[2]]


@pytest.mark.parametrize("n", [1, 3000])
def test_large_multipart_read(n):
    desired = flows(n)
    sw = Switch(desired + [CANARY])
    bs = sync.BridgeSync()
    bs.set_desired(desired)
    assert connect(bs, sw, per_msg=500) == [] and bs.in_sync


def test_bundle_level_errors_quarantine_nothing():
    sw = Switch()
    bs = sync.BridgeSync()
    connect(bs, sw)
    parsed = Switch.parse(bs.set_desired(flows(3)))
    # OPEN refused: OVS then refuses every add and the commit with BAD_ID.
    for kind, xid, _bid, _flags, _obj in parsed[:-1]:
        code = ofp.OFPBFC_OUT_OF_BUNDLES if kind == "ctrl" else ofp.OFPBFC_BAD_ID
        assert bs.on_error(Msg(xid=xid, type=ofp.OFPET_BUNDLE_FAILED, code=code)) == []
    commit_error = Msg(xid=parsed[-1][1], type=ofp.OFPET_BUNDLE_FAILED, code=ofp.OFPBFC_BAD_ID)
    out = Switch.parse(bs.on_error(commit_error))
    assert [p[0] for p in out] == ["read"] and not bs.quarantine


def test_experimenter_error_without_code_is_handled():
    sw = Switch()
    bs = sync.BridgeSync()
    connect(bs, sw)
    parsed = Switch.parse(bs.set_desired(flows(1)))
    add_xid = next(p[1] for p in parsed if p[0] == "add")
    assert bs.on_error(Msg(xid=add_xid, type=0xFFFF, exp_type=7, experimenter=0x2320)) == []
    assert len(bs.quarantine) == 1


def test_unencodable_flow_is_kept_out_and_the_rest_installed():
    failed = []
    sw = Switch()
    bs = sync.BridgeSync(on_failed=lambda f, t, c: failed.append(f))
    connect(bs, sw)
    bad = Flow(0, 1, match(eth_src="zz:zz:zz:zz:zz:zz"), (Output(1),), VP2)  # passes the cheap checks
    parsed, after = run_bundle(bs, sw, bs.set_desired(flows(3) + [bad]))
    assert failed == [bad] and after == [] and bs.in_sync
    assert bad.key in bs.quarantine and bad.key not in bs.installed
    assert {p[4] for p in parsed if p[0] == "add"} == set(flows(3)) | {CANARY}


def test_owner_gone_is_one_delete_by_cookie_owner_shrunk_is_strict():
    a = flows(5, cookie=VP)
    b = flows(4, cookie=VP2, port_base=100)
    sw = Switch(a + b + [CANARY])
    bs = sync.BridgeSync()
    connect(bs, sw)
    parsed, _ = run_bundle(bs, sw, bs.set_desired(a[:3]))  # VP loses 2 flows, VP2 all 4
    body = [(p[0], p[4]) for p in parsed if p[0] != "ctrl"]
    assert body[0] == ("delete_cookie", VP2)
    assert sorted(body[1:], key=str) == sorted([("delete", a[3].key), ("delete", a[4].key)], key=str)
    assert bs.stats.last_deletes == 6 and bs.in_sync
    assert sw.installed == {f.key: f for f in a[:3] + [CANARY]}


def test_resync_during_a_bundle_reads_after_the_commit():
    sw = Switch()
    bs = sync.BridgeSync()
    connect(bs, sw)
    msgs = bs.set_desired(flows(3))
    assert bs.resync() == []  # a bundle is in flight: the read waits for its end
    parsed, after = run_bundle(bs, sw, msgs)
    (read,) = Switch.parse(after)
    assert read[0] == "read" and not bs.in_sync
    out = []
    for raw in sw.stats_replies(read[1]):
        out = bs.on_flow_stats_reply(raw)
    assert out == [] and bs.in_sync


def test_undecodable_read_is_retried_then_stalls():
    bs = sync.BridgeSync(max_retries=1)
    bs.set_desired(flows(2))
    (read,) = Switch.parse(bs.on_connect())
    bad = bytearray(Switch(flows(1)).stats_replies(read[1])[0])
    bad[16 + 48:16 + 50] = b"\x00\x00"  # match type 0: not OXM
    again = Switch.parse(bs.on_flow_stats_reply(bytes(bad)))
    assert [p[0] for p in again] == ["read"] and bs.stats.errors == 1
    bad[4:8] = again[0][1].to_bytes(4, "big")
    assert bs.on_flow_stats_reply(bytes(bad)) == [] and bs.state == sync.STALLED
    # The next change starts from a fresh read-back.
    (read,) = Switch.parse(bs.set_desired(flows(2)))
    assert read[0] == "read" and bs.state == sync.READING


def _fresh(installed=()):
    sw = Switch(installed)
    bs = sync.BridgeSync()
    connect(bs, sw)
    return bs, sw


def test_install_on_an_empty_bridge_streams_before_the_set_is_indexed():
    n = 5000  # ~10 chunks of CHUNK_BYTES
    desired = flows(n)
    bs, sw = _fresh([CANARY])
    msgs = bs.set_desired(desired)
    assert bs.state == sync.PUSHING and bs.generation == 1
    sent = [next(msgs), next(msgs)]  # OPEN, then the first chunk of adds
    assert len(bs.desired) < n / 2  # the rest is not even canonicalised yet
    sent += list(msgs)
    assert len(bs.desired) == n + 1
    parsed, after = run_bundle(bs, sw, sent)
    assert after == [] and bs.in_sync
    assert [p[0] for p in parsed] == ["ctrl"] + ["add"] * n + ["ctrl"]  # the installed canary not re-sent
    assert len({p[1] for p in parsed}) == len(parsed)  # every message its own xid
    assert sw.installed == {f.key: f for f in desired + [CANARY]}
    assert bs.installed == sw.installed and bs.stats.last_adds == n


def test_streamed_and_indexed_installs_send_the_same_flows():
    mixed = [Flow(0, 100, match(eth_src="02:AA:00:00:00:01"), (Output(1),), VP),  # not canonical
             Flow(0, 100, match(eth_src="02:aa:00:00:00:01"), (Output(2),), VP),  # same key: this one wins
             Flow(0, 90, match(in_port=7), (SetField("eth_dst", "02:BB:00:00:00:02"), Output(3)), VP)]
    desired = flows(20) + mixed
    streamed, sw1 = _fresh()
    run_bundle(streamed, sw1, streamed.set_desired(desired))
    # A bridge already holding one of the flows takes the indexed path (diff, then encode).
    indexed, sw2 = _fresh([desired[0], CANARY])
    run_bundle(indexed, sw2, indexed.set_desired(desired))
    assert streamed.in_sync and indexed.in_sync
    assert sw1.installed == sw2.installed == streamed.installed == indexed.installed
    assert streamed.desired == indexed.desired
    assert sw1.installed[mixed[1].key].actions == (Output(2),)


def test_both_install_paths_count_every_byte_they_send():
    # 5000 flows: several CHUNK_BYTES writes, then a rest and the commit.
    desired = flows(5000)
    for held in ([], [desired[0], CANARY]):  # empty bridge: streamed; one flow held: indexed
        bs, _sw = _fresh(held)
        before = bs.stats.bytes_sent
        writes = list(bs.set_desired(desired))
        assert len(writes) > 3
        assert all(len(w) <= sync.CHUNK_BYTES + 4096 for w in writes)
        assert bs.stats.bytes_sent - before == sum(len(w) for w in writes)
        assert bs.stats.last_first_byte_s > 0 and bs.stats.last_encode_s > 0


def test_abandoned_stream_keeps_the_whole_desired_set():
    desired = flows(5000)
    bs, sw = _fresh([CANARY])
    msgs = bs.set_desired(desired)
    next(msgs), next(msgs)
    msgs.close()  # the caller gave up (e.g. the connection broke while sending)
    assert bs.state == sync.READY and bs.bundle is None
    assert len(bs.desired) == len(desired) + 1  # never a partial set: the next push would delete the rest
    (read,) = Switch.parse(bs.resync())
    out = []
    for raw in sw.stats_replies(read[1]):
        out = bs.on_flow_stats_reply(raw)
    parsed, after = run_bundle(bs, sw, out)
    assert bs.in_sync and sw.installed == {f.key: f for f in desired + [CANARY]}


def test_refused_flow_in_a_streamed_bundle_is_quarantined():
    failed = []
    bs = sync.BridgeSync(on_failed=lambda f, t, c: failed.append(f))
    sw = Switch()
    connect(bs, sw)
    desired = flows(4)
    parsed = Switch.parse(bs.set_desired(desired))
    bad_xid = next(p[1] for p in parsed if p[0] == "add" and p[4] == desired[2])
    assert bs.on_error(Msg(xid=bad_xid, type=ofp.OFPET_BAD_INSTRUCTION, code=ofp.OFPBIC_BAD_TABLE_ID)) == []
    assert failed == [desired[2]] and desired[2].key in bs.quarantine
