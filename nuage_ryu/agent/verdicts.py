"""Verdict records: a metered packet-in from a logged decision -> one structured record (pure).

A logged rule, an audit rule or a domain's logged default action copies the packet's headers to
the agent (``base.VERDICT_LOG``: ``controller(max_len=128,meter_id=1)``, docs/policy.md). The
packet-in names the flow's cookie and table; from them and the host's directory snapshot this
module makes the record the agent writes to its log (one JSON line) and sends to the directory:

    {"time": "2026-12-03T10:50:00.123Z", "host": "h1", "domain": "prod", "domain_id": "...",
     "rule": "no-ssh", "rule_id": "...", "priority": 10, "default_action": false,
     "verdict": "deny", "enforced": true, "side": "sender", "protocol": "tcp",
     "src_ip": "10.0.1.10", "src_port": 40000, "dst_ip": "10.0.3.10", "dst_port": 22,
     "src_vport": "web1", "dst_vport": "db1"}

``enforced`` false is an audit rule's "would deny"; ``side`` is where it was decided: ``sender``
(the sending host, the packet's first decision) or ``receiver`` (the destination host re-deciding
traffic from the overlay or from outside). The verdict is the rule's (or default action's) in the
snapshot the agent holds when the copy arrives.

Also here: the verdict-log meter's OpenFlow messages (``meter_mods``) and the bounded queue of
records on their way to the directory (``ExportQueue``). No sockets, no threads.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import json
import struct
import time
from dataclasses import dataclass

from nuage_ryu.vrs import ofmsg
from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile import default_action_cookie, rule_cookie

PROTOCOL_NAMES = {P.IP_PROTO_TCP: "tcp", P.IP_PROTO_UDP: "udp", P.IP_PROTO_ICMP: "icmp"}
ETH_TYPE_8021Q = 0x8100
# Outcomes of a packet-in (the ``result`` label of nuage_verdict_records_total).
LOGGED = "logged"
UNKNOWN_RULE = "unknown_rule"  # a cookie the snapshot does not know (a rule deleted meanwhile)
MALFORMED = "malformed"  # not an IPv4 frame
RESULTS = (LOGGED, UNKNOWN_RULE, MALFORMED)


def is_verdict_packet_in(table_id: int) -> bool:
    """True for a packet-in sent by a verdict copy (the policy and audit tables send no other)."""
    return table_id in P.VERDICT_LOG_TABLES


@dataclass(frozen=True)
class Headers:
    """The 5-tuple (and ICMP type/code) of a copied packet."""

    protocol: int
    src_ip: str
    dst_ip: str
    src_port: int | None = None
    dst_port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None


def parse_headers(frame: bytes) -> Headers | None:
    """The IPv4 5-tuple of an Ethernet frame (one 802.1Q tag allowed); None if it is no IPv4 packet."""
    if len(frame) < 14:
        return None
    offset, eth_type = 14, struct.unpack_from("!H", frame, 12)[0]
    if eth_type == ETH_TYPE_8021Q and len(frame) >= 18:
        offset, eth_type = 18, struct.unpack_from("!H", frame, 16)[0]
    if eth_type != P.ETH_TYPE_IPV4 or len(frame) < offset + 20:
        return None
    ihl = (frame[offset] & 0x0F) * 4
    proto = frame[offset + 9]
    src = str(ipaddress.IPv4Address(frame[offset + 12:offset + 16]))
    dst = str(ipaddress.IPv4Address(frame[offset + 16:offset + 20]))
    l4 = offset + ihl
    fragment = struct.unpack_from("!H", frame, offset + 6)[0] & 0x1FFF
    if fragment or len(frame) < l4 + 4:
        return Headers(proto, src, dst)
    if proto in (P.IP_PROTO_TCP, P.IP_PROTO_UDP):
        sport, dport = struct.unpack_from("!HH", frame, l4)
        return Headers(proto, src, dst, sport, dport)
    if proto == P.IP_PROTO_ICMP:
        return Headers(proto, src, dst, icmp_type=frame[l4], icmp_code=frame[l4 + 1])
    return Headers(proto, src, dst)


@dataclass(frozen=True)
class _Decider:
    domain: object  # model.Domain
    rule: object | None  # model.ACL; None for the default action


class VerdictNames:
    """What a record names, for one directory snapshot: the decider of each cookie, vports by address."""

    def __init__(self, state) -> None:
        self.state = state
        self.by_cookie: dict[int, _Decider] = {}
        for domain in state.domains.values():
            self.by_cookie[default_action_cookie(domain.id)] = _Decider(domain, None)
        for acl in state.acls.values():
            domain = state.domains.get(acl.domain)
            if domain is not None:
                self.by_cookie[rule_cookie(acl.id)] = _Decider(domain, acl)
        self.vports: dict[tuple[str, str], str] = {(v.domain, v.ip): v.name for v in state.vports.values() if v.ip}


class NamesCache:
    """``VerdictNames`` of the latest snapshot, rebuilt only when the snapshot object changes."""

    def __init__(self) -> None:
        self._names: VerdictNames | None = None

    def of(self, state) -> VerdictNames:
        if self._names is None or self._names.state is not state:
            self._names = VerdictNames(state)
        return self._names


def iso_time(epoch: float) -> str:
    """UTC time with milliseconds, as the records carry it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


def verdict_record(names: VerdictNames, host: str, table_id: int, cookie: int, frame: bytes,
                   now: float) -> tuple[str, dict | None]:
    """(result, record) of one verdict packet-in; the record is None unless the result is LOGGED."""
    side, enforced = P.VERDICT_LOG_TABLES[table_id]
    decider = names.by_cookie.get(cookie)
    if decider is None:
        return UNKNOWN_RULE, None
    headers = parse_headers(bytes(frame or b""))
    if headers is None:
        return MALFORMED, None
    domain, rule = decider.domain, decider.rule
    record = {
        "time": iso_time(now), "host": host, "domain": domain.name, "domain_id": domain.id,
        "rule": rule.name if rule is not None else None, "rule_id": rule.id if rule is not None else None,
        "priority": rule.priority if rule is not None else None, "default_action": rule is None,
        "verdict": rule.action if rule is not None else domain.default_action,
        "enforced": enforced, "side": side,
        "protocol": PROTOCOL_NAMES.get(headers.protocol, headers.protocol),
        "src_ip": headers.src_ip, "src_port": headers.src_port,
        "dst_ip": headers.dst_ip, "dst_port": headers.dst_port,
        "src_vport": names.vports.get((domain.id, headers.src_ip)),
        "dst_vport": names.vports.get((domain.id, headers.dst_ip)),
    }
    if headers.protocol == P.IP_PROTO_ICMP:
        record["icmp_type"], record["icmp_code"] = headers.icmp_type, headers.icmp_code
    return LOGGED, record


def log_line(record: dict) -> str:
    """The record as the agent's log line: compact JSON, keys in record order."""
    return json.dumps(record, separators=(",", ":"))


# ---- the meter --------------------------------------------------------------------------


_METER_XIDS = itertools.count(0xF0000000)  # apart from the sync engine's (random start below 2^30)


def meter_mods(rate: int, burst: int) -> list[tuple[int, bytes]]:
    """The verdict-log meter as two METER_MODs, (xid, wire bytes): ADD (fails with METER_EXISTS
    after an agent restart, which the caller ignores), then MODIFY (applies the configured rate
    either way). Both go out before the first flow, because OVS binds a flow's
    controller(meter_id) when the flow is added."""
    parser, ofp = ofmsg.parser, ofmsg.ofp
    bands = [parser.OFPMeterBandDrop(rate=rate, burst_size=burst or rate)]
    flags = ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS
    out = []
    for command in (ofp.OFPMC_ADD, ofp.OFPMC_MODIFY):
        xid = next(_METER_XIDS) & 0xFFFFFFFF
        msg = parser.OFPMeterMod(ofmsg.DATAPATH, command=command, flags=flags, meter_id=P.METER_VERDICT_LOG,
                                 bands=bands)
        out.append((xid, ofmsg.serialize(msg, xid)))
    return out


def meter_dropped(meter_stats) -> int | None:
    """Packets the verdict-log meter dropped, from an OFPMeterStats list (None: not in the reply)."""
    for stats in meter_stats:
        if stats.meter_id == P.METER_VERDICT_LOG:
            return sum(band.packet_band_count for band in stats.band_stats)
    return None


# ---- on the way to the directory ---------------------------------------------------------


class ExportQueue:
    """Records waiting for the directory: bounded; when full the oldest go (counted in ``dropped``)."""

    def __init__(self, capacity: int) -> None:
        self._items: collections.deque = collections.deque(maxlen=max(1, capacity))
        self.dropped = 0

    def put(self, record: dict) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(record)

    def take(self, limit: int) -> list[dict]:
        """Up to ``limit`` records, oldest first (removed from the queue)."""
        out = []
        while self._items and len(out) < limit:
            out.append(self._items.popleft())
        return out

    def __len__(self) -> int:
        return len(self._items)
