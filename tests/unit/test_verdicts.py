"""Verdict records (docs/policy.md, "Verdict logs"): the agent's record of a copy, the directory's feed
and its query (cursor, filters, long poll, tenants), the CLI's line."""

from __future__ import annotations

import ipaddress
import struct
import threading
import time

import pytest

from nuage_ryu.agent import verdicts
from nuage_ryu.directory import model, verdicts_api
from nuage_ryu.directory.ctl import flows
from nuage_ryu.directory.errors import BadRequest
from nuage_ryu.directory.store.verdicts import VerdictFeed, matches
from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import default_action_cookie, rule_cookie


def frame(proto: int, src: str, dst: str, l4: bytes, vlan: int | None = None) -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6
    eth += struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                     ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return eth + struct.pack("!H", 0x0800) + ip + l4


TCP_SYN = frame(6, "10.0.1.10", "10.0.3.10", struct.pack("!HHIIHHHH", 40000, 22, 1, 0, 0x5002, 100, 0, 0))


def test_headers_of_tcp_udp_icmp_tagged_and_garbage():
    assert verdicts.parse_headers(TCP_SYN) == verdicts.Headers(6, "10.0.1.10", "10.0.3.10", 40000, 22)
    udp = frame(17, "10.0.1.10", "10.0.3.10", struct.pack("!HHHH", 5353, 53, 8, 0), vlan=10)
    assert verdicts.parse_headers(udp) == verdicts.Headers(17, "10.0.1.10", "10.0.3.10", 5353, 53)
    ping = frame(1, "10.0.1.10", "10.0.3.10", bytes([8, 0, 0, 0, 0, 1, 0, 1]))
    assert verdicts.parse_headers(ping) == verdicts.Headers(1, "10.0.1.10", "10.0.3.10", icmp_type=8, icmp_code=0)
    gre = frame(47, "10.0.1.10", "10.0.3.10", b"\x00" * 8)
    assert verdicts.parse_headers(gre) == verdicts.Headers(47, "10.0.1.10", "10.0.3.10")
    assert verdicts.parse_headers(b"\x00" * 10) is None
    assert verdicts.parse_headers(b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28) is None  # ARP


def state() -> model.DirectoryState:
    dom = model.Domain("d1", "e1", "prod", 5001, 1, "02:00:00:00:00:01", "deny")
    acl = model.ACL("r1", "d1", 10, action="deny", name="no-ssh", log=True)
    audit = model.ACL("r2", "d1", 5, action="deny", name="try", enforce=False)
    web = model.VPort("v1", "s1", "d1", "web1", "10.0.1.10", "02:00:00:00:01:01", "10.0.1.1")
    db = model.VPort("v2", "s1", "d1", "db1", "10.0.3.10", "02:00:00:00:01:02", "10.0.3.1")
    return model.DirectoryState(domains={"d1": dom}, acls={"r1": acl, "r2": audit}, vports={"v1": web, "v2": db})


def test_a_copy_becomes_a_record_naming_rule_tuple_and_vports():
    names = verdicts.VerdictNames(state())
    result, record = verdicts.verdict_record(names, "h1", P.INGRESS_POLICY.number, rule_cookie("r1"), TCP_SYN,
                                             1764759000.123)
    assert result == verdicts.LOGGED
    assert record == {
        "time": "2025-12-03T10:50:00.123Z", "host": "h1", "domain": "prod", "domain_id": "d1",
        "rule": "no-ssh", "rule_id": "r1", "priority": 10, "default_action": False, "verdict": "deny",
        "enforced": True, "side": "sender", "protocol": "tcp", "src_ip": "10.0.1.10", "src_port": 40000,
        "dst_ip": "10.0.3.10", "dst_port": 22, "src_vport": "web1", "dst_vport": "db1"}


def test_audit_copies_default_copies_and_unknown_cookies():
    names = verdicts.VerdictNames(state())
    _r, audit = verdicts.verdict_record(names, "h2", P.EGRESS_AUDIT.number, rule_cookie("r2"), TCP_SYN, 0.0)
    assert (audit["rule"], audit["verdict"], audit["enforced"], audit["side"]) == ("try", "deny", False, "receiver")
    _r, default = verdicts.verdict_record(names, "h1", P.INGRESS_POLICY.number, default_action_cookie("d1"),
                                          TCP_SYN, 0.0)
    assert (default["rule"], default["rule_id"], default["default_action"], default["verdict"]) == \
        (None, None, True, "deny")
    assert verdicts.verdict_record(names, "h1", P.INGRESS_POLICY.number, rule_cookie("gone"), TCP_SYN, 0.0) == \
        (verdicts.UNKNOWN_RULE, None)
    assert verdicts.verdict_record(names, "h1", P.INGRESS_POLICY.number, rule_cookie("r1"), b"", 0.0) == \
        (verdicts.MALFORMED, None)
    assert verdicts.is_verdict_packet_in(P.INGRESS_AUDIT.number)
    assert not verdicts.is_verdict_packet_in(P.CLASSIFY.number)  # DHCP's copies come from CLASSIFY


def test_the_names_cache_follows_the_snapshot_object():
    cache, s1 = verdicts.NamesCache(), state()
    assert cache.of(s1) is cache.of(s1)
    assert cache.of(state()) is not cache.of(s1)


def test_the_meter_mods_add_then_modify_the_verdict_meter():
    mods = verdicts.meter_mods(100, 0)
    assert [struct.unpack_from("!BBHIHHI", raw)[1:] for _xid, raw in mods] == [
        (29, len(mods[0][1]), mods[0][0], 0, 0b1110, P.METER_VERDICT_LOG),  # OFPMC_ADD, pktps|burst|stats
        (29, len(mods[1][1]), mods[1][0], 1, 0b1110, P.METER_VERDICT_LOG)]  # OFPMC_MODIFY
    rate, burst = struct.unpack_from("!II", mods[0][1], 16 + 4)
    assert (rate, burst) == (100, 100)  # burst 0 = the rate


def test_the_export_queue_is_bounded_and_counts_what_it_drops():
    q = verdicts.ExportQueue(3)
    for i in range(5):
        q.put({"i": i})
    assert q.dropped == 2 and [r["i"] for r in q.take(10)] == [2, 3, 4] and len(q) == 0


# ---- the directory's feed and query --------------------------------------------------------


def rec(i: int, domain: str = "d1", verdict: str = "deny", enforced: bool = True) -> dict:
    return {"i": i, "domain_id": domain, "domain": f"name-{domain}", "verdict": verdict, "enforced": enforced}


def test_the_feed_reads_after_a_cursor_with_filters_and_limits():
    feed = VerdictFeed(capacity=100)
    for i in range(5):
        feed.add(rec(i, "d1" if i % 2 else "d2"))
    page = feed.read(None, 2, lambda r: True)
    assert [r["i"] for r in page["records"]] == [0, 1] and not page["reset"]
    page = feed.read(page["cursor"], 10, lambda r: r["domain_id"] == "d1")
    assert [r["i"] for r in page["records"]] == [3]
    assert feed.read(page["cursor"], 10, lambda r: True)["records"] == []  # nothing new
    assert [r["i"] for r in feed.read(None, 10, lambda r: True, last=2)["records"]] == [3, 4]
    other = feed.read("deadbeef-3", 10, lambda r: True)  # another process's cursor: from the oldest kept
    assert other["reset"] and len(other["records"]) == 5


def test_a_long_poll_wakes_on_a_new_record_and_busy_polls_answer_at_once():
    feed = VerdictFeed(capacity=10, waiters=1)
    cursor = feed.cursor()
    threading.Timer(0.2, feed.add, (rec(7),)).start()
    start = time.monotonic()
    page = feed.read(cursor, 10, lambda r: True, wait=10)
    assert [r["i"] for r in page["records"]] == [7] and time.monotonic() - start < 5
    none = VerdictFeed(capacity=10, waiters=0).read(None, 10, lambda r: True, wait=10)
    assert none["busy"] and none["records"] == []


def test_the_rows_of_one_batch_join_the_feed_in_time_order_at_its_end():
    import ovs.db.idl

    class Row:  # what Idl.notify hands over
        def __init__(self, when, i):
            self.time, self.host, self.record = when, "h1", '{"i": %d}' % i
            self._table = type("T", (), {"name": "Verdict"})

    feed = VerdictFeed()
    for when, i in ((3.0, 3), (1.0, 1), (2.0, 2)):  # one transaction's rows, in the IDL's (uuid) order
        feed.on_row(ovs.db.idl.ROW_CREATE, Row(when, i))
    assert feed.read(None, 10, lambda r: True)["records"] == []  # not before the batch ends
    feed.flush()
    assert [r["i"] for r in feed.read(None, 10, lambda r: True)["records"]] == [1, 2, 3]


def test_matches_filters_tenants_domains_and_verdicts():
    assert matches(rec(1), None, None, None)
    assert not matches(rec(1, "d2"), frozenset({"d1"}), None, None)  # another enterprise's domain
    assert matches(rec(1), None, "name-d1", "deny") and not matches(rec(1), None, "d2", None)
    assert matches(rec(1, enforced=False), None, None, "audit")
    assert not matches(rec(1, enforced=False), None, None, "deny")  # "would deny" is no deny
    assert not matches(rec(1, verdict="allow"), None, None, "deny")


def test_the_query_validates_and_scopes_a_tenant_to_its_domains():
    feed = VerdictFeed()
    feed.add(rec(1, "d1"))
    feed.add(rec(2, "d9"))
    st = state()  # d1 belongs to enterprise e1
    body, headers = verdicts_api.answer(feed, st, "e1", {})
    assert [r["i"] for r in body["records"]] == [1] and headers == {}
    body, _h = verdicts_api.answer(feed, st, None, {})
    assert [r["i"] for r in body["records"]] == [1, 2]
    for bad in ({"wait": "99"}, {"limit": "0"}, {"verdict": "maybe"}, {"wait": "x"}):
        with pytest.raises(BadRequest):
            verdicts_api.answer(feed, st, None, bad)


def test_the_cli_line_says_what_decided():
    record = {"time": "T", "host": "h1", "domain": "prod", "src_vport": "web1", "src_ip": "10.0.1.10",
              "src_port": 40000, "dst_vport": None, "dst_ip": "10.0.3.10", "dst_port": 22, "protocol": "tcp",
              "verdict": "deny", "enforced": False, "default_action": False, "rule": "try", "priority": 5,
              "side": "receiver"}
    assert flows.line(record) == ("T h1 prod web1 10.0.1.10:40000 -> 10.0.3.10:22 tcp WOULD-DENY rule try (5) "
                                  "(at receiver)")
