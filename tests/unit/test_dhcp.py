"""The pure DHCP responder: the RFC 2131 exchange, anti-spoofing, and fuzzing (it must never raise).

Requests are built with scapy and replies decoded with scapy, so the test does
not trust the packet library the responder itself uses.
"""

from __future__ import annotations

import random

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from nuage_ryu.vrs import dhcp as responder

MAC = "02:aa:bb:cc:dd:01"
LEASE = responder.Lease(ip="10.1.0.5", prefixlen=24, gateway="10.1.0.1", mac=MAC,
                        server_mac="fe:00:00:00:00:01", mtu=1450, lease_time=3600,
                        dns=("10.1.0.53", "10.1.0.54"), domain_name="acme.example")


def request(kind: str, mac: str = MAC, src_mac: str | None = None, flags: int = 0, ciaddr: str = "0.0.0.0",
            **options) -> bytes:
    opts = [("message-type", kind)] + list(options.items()) + ["end"]
    frame = (Ether(src=src_mac or mac, dst="ff:ff:ff:ff:ff:ff")
             / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
             / BOOTP(op=1, chaddr=bytes.fromhex(mac.replace(":", "")), xid=0xCAFE, flags=flags, ciaddr=ciaddr)
             / DHCP(options=opts))
    return bytes(frame)


def decode(reply: bytes) -> tuple[Ether, dict]:
    frame = Ether(reply)
    opts = {o[0]: o[1] if len(o) == 2 else o[1:] for o in frame[DHCP].options if isinstance(o, tuple)}
    return frame, opts


def test_discover_gets_offer_with_directory_data():
    stats = responder.DhcpStats()
    frame, opts = decode(responder.handle_dhcp(request("discover"), LEASE, stats))
    assert frame[Ether].src == LEASE.server_mac and frame[Ether].dst == MAC
    assert frame[IP].src == "10.1.0.1" and frame[IP].dst == "10.1.0.5"
    assert (frame[UDP].sport, frame[UDP].dport) == (67, 68)
    assert frame[BOOTP].op == 2 and frame[BOOTP].xid == 0xCAFE and frame[BOOTP].yiaddr == "10.1.0.5"
    assert opts["message-type"] == 2 and opts["server_id"] == "10.1.0.1"
    assert opts["subnet_mask"] == "255.255.255.0" and opts["router"] == "10.1.0.1"
    assert opts["lease_time"] == 3600 and opts["renewal_time"] == 1800 and opts["rebinding_time"] == 3150
    assert opts["interface-mtu"] == 1450
    assert opts["name_server"] == ("10.1.0.53", "10.1.0.54")
    assert opts["domain"] == b"acme.example"
    assert stats.counts == {"received": 1, "offers": 1}


def test_request_ack_nak_and_other_server():
    stats = responder.DhcpStats()
    _, opts = decode(responder.handle_dhcp(
        request("request", requested_addr="10.1.0.5", server_id="10.1.0.1"), LEASE, stats))
    assert opts["message-type"] == 5
    # Renewing: no option 50, ciaddr set.
    frame, opts = decode(responder.handle_dhcp(request("request", ciaddr="10.1.0.5"), LEASE, stats))
    assert opts["message-type"] == 5 and frame[BOOTP].ciaddr == "10.1.0.5"
    # Asking us for another address: NAK, broadcast, no lease data.
    frame, opts = decode(responder.handle_dhcp(request("request", requested_addr="10.1.0.9"), LEASE, stats))
    assert opts["message-type"] == 6 and frame[IP].dst == "255.255.255.255"
    assert frame[BOOTP].yiaddr == "0.0.0.0"
    assert "lease_time" not in opts
    # The client selected another server: silence.
    assert responder.handle_dhcp(request("request", requested_addr="10.1.0.5", server_id="10.9.9.9"),
                                 LEASE, stats) is None
    assert stats.counts == {"received": 4, "acks": 2, "naks": 1, "ignored": 1}


def test_broadcast_flag_gets_broadcast_reply():
    frame, _ = decode(responder.handle_dhcp(request("discover", flags=0x8000), LEASE))
    assert frame[Ether].dst == "ff:ff:ff:ff:ff:ff" and frame[IP].dst == "255.255.255.255"


@pytest.mark.parametrize("kind", ["release", "decline", "inform", "offer", "ack"])
def test_other_message_types_are_ignored(kind):
    stats = responder.DhcpStats()
    assert responder.handle_dhcp(request(kind, requested_addr="10.1.0.5"), LEASE, stats) is None
    assert stats.counts["ignored"] == 1


def test_spoofed_mac_is_not_answered():
    stats = responder.DhcpStats()
    assert responder.handle_dhcp(request("discover", mac="02:00:00:00:00:99"), LEASE, stats) is None
    assert responder.handle_dhcp(request("discover", src_mac="02:00:00:00:00:99"), LEASE, stats) is None
    assert stats.counts["foreign_mac"] == 2


def test_not_dhcp_and_no_lease():
    stats = responder.DhcpStats()
    arp = bytes(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.1.0.5", pdst="10.1.0.1"))
    dns = bytes(Ether(src=MAC) / IP(src="10.1.0.5", dst="10.1.0.53") / UDP(sport=5353, dport=53)
                / (b"x" * 300))
    reply_to_us = bytes(Ether(src=MAC) / IP() / UDP(sport=67, dport=68) / BOOTP(op=2) / DHCP(options=["end"]))
    for frame in (arp, dns, reply_to_us, b"", b"\x00", None, "text"):
        assert responder.handle_dhcp(frame, LEASE, stats) is None
    assert responder.handle_dhcp(request("discover"), None, stats) is None
    assert stats.counts["malformed"] == 7 and stats.counts["ignored"] == 1


def test_bad_directory_data_stays_silent():
    bad = responder.Lease(ip="10.1.0.5", prefixlen=24, gateway="not-an-ip", mac=MAC, server_mac="x")
    stats = responder.DhcpStats()
    assert responder.handle_dhcp(request("discover"), bad, stats) is None


def _check_reply(reply):
    if reply is None:
        return
    frame = Ether(reply)
    assert frame[BOOTP].op == 2 and frame[UDP].dport == 68


def test_fuzz_random_bytes_never_raise():
    rng = random.Random(20260601)
    stats = responder.DhcpStats()
    for _ in range(5000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 13, 14, 42, 100, 300, 342, 600))))
        assert responder.handle_dhcp(data, LEASE, stats) is None
    assert stats.counts["received"] == 5000


def test_fuzz_truncated_and_mutated_real_packets_never_raise():
    rng = random.Random(6)
    stats = responder.DhcpStats()
    seeds = [request("discover"), request("request", requested_addr="10.1.0.5", server_id="10.1.0.1"),
             request("request", ciaddr="10.1.0.5"), request("discover", flags=0x8000),
             bytes(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=7)
                   / Ether(request("discover")).payload)]
    for seed in seeds:
        for cut in range(len(seed) + 1):
            _check_reply(responder.handle_dhcp(seed[:cut], LEASE, stats))
    answered = 0
    for _ in range(20000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            action = rng.random()
            pos = rng.randrange(len(data))
            if action < 0.6:
                data[pos] = rng.getrandbits(8)
            elif action < 0.8:
                del data[pos:pos + rng.randint(1, 20)]
            else:
                data[pos:pos] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20)))
            if not data:
                break
        reply = responder.handle_dhcp(bytes(data), LEASE, stats)
        _check_reply(reply)
        answered += reply is not None
    # Mutations mostly outside what matters still get answers; the rest is counted.
    assert answered > 0
    assert sum(v for k, v in stats.counts.items() if k != "received") == stats.counts["received"]


def test_lease_for_directory_objects():
    from nuage_ryu.directory.model import Subnet, VPort

    subnet = Subnet(id="s", zone="z", domain="d", name="n", cidr="10.1.0.0/24", gateway="10.1.0.1")
    vport = VPort(id="v", subnet="s", domain="d", name="vm1", ip="10.1.0.5", mac="02:AA:BB:CC:DD:01",
                  gateway="10.1.0.1", type="vm")
    lease = responder.lease_for(vport, subnet, "fe:00:00:00:00:01", mtu=1450)
    assert lease == responder.Lease(ip="10.1.0.5", prefixlen=24, gateway="10.1.0.1", mac=MAC,
                                    server_mac="fe:00:00:00:00:01", mtu=1450)
    as_dicts = responder.lease_for({"ip": "10.1.0.5", "mac": MAC, "gateway": ""},
                                   {"cidr": "10.1.0.0/24", "gateway": "10.1.0.1"}, "fe:00:00:00:00:01",
                                   mtu=1450)
    assert as_dicts == lease
    assert responder.handle_dhcp(request("discover"), lease) is not None


def test_tagged_request_gets_tagged_reply():
    tagged = Ether(request("discover"))
    payload = tagged.payload
    frame = bytes(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10) / payload)
    reply = Ether(responder.handle_dhcp(frame, LEASE))
    assert reply[Dot1Q].vlan == 10 and reply[BOOTP].yiaddr == "10.1.0.5"
    double = bytes(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10) / Dot1Q(vlan=20) / payload)
    assert responder.handle_dhcp(double, LEASE) is None
