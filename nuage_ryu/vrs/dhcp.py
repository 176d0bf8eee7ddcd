"""DHCP responder for vm/host vports: pure logic, bytes in, bytes out.

The agent's packet-in handler hands a frame that arrived on a vport's OpenFlow
port, together with that vport's directory data (a ``Lease``), to
``handle_dhcp``; what comes back (or None) is sent out of the same port. No
sockets, no threads, no OpenFlow: the whole exchange is testable with plain bytes.

Rules (RFC 2131, the part a vport needs):

* Only BOOTREQUESTs from the vport's own MAC are answered (anti-spoofing: a VM
  cannot obtain an address for another MAC).
* DISCOVER -> OFFER of the directory address. REQUEST -> ACK when it asks for
  that address (option 50 or ciaddr) and names us (option 54) or nobody; NAK
  when it asks us for another address; ignored when it selected another server.
* Anything else (RELEASE, DECLINE, INFORM, replies, non-DHCP, garbage) is
  counted and ignored. Nothing here raises on input, whatever the bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from dataclasses import dataclass, field

from nuage_ryu.framework import dhcp, ethernet, ipv4, packet, udp, vlan

SERVER_PORT = 67
CLIENT_PORT = 68
BROADCAST_FLAG = 0x8000
DEFAULT_LEASE_TIME = 86400

# Message types (option 53); os-ken does not name them all.
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)

BOOTREQUEST, BOOTREPLY = 1, 2
# Option tags (RFC 2132).
OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_DOMAIN_NAME, OPT_MTU = 1, 3, 6, 15, 26
OPT_REQUESTED_IP, OPT_LEASE_TIME, OPT_MESSAGE_TYPE, OPT_SERVER_ID = 50, 51, 53, 54
OPT_RENEWAL_TIME, OPT_REBINDING_TIME = 58, 59

# Counter names (``DhcpStats.counts`` keys).
RECEIVED = "received"
MALFORMED = "malformed"
IGNORED = "ignored"
FOREIGN_MAC = "foreign_mac"
OFFERS = "offers"
ACKS = "acks"
NAKS = "naks"


@dataclass(frozen=True)
class Lease:
    """What the directory says about the vport the request came from.

    ``server_mac`` is the source MAC of replies (the domain's virtual router
    MAC); the server identifier is the gateway address.
    """

    ip: str
    prefixlen: int
    gateway: str
    mac: str
    server_mac: str
    mtu: int | None = None
    lease_time: int = DEFAULT_LEASE_TIME
    dns: tuple[str, ...] = ()
    domain_name: str = ""

    @property
    def server_id(self) -> str:
        return self.gateway

    @property
    def netmask(self) -> str:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefixlen}").netmask)


def _field(obj, name: str):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def lease_for(vport, subnet, router_mac: str, mtu: int | None = None, dns: tuple[str, ...] = (),
              lease_time: int = DEFAULT_LEASE_TIME, domain_name: str = "") -> Lease:
    """The Lease of a directory vport (model object or REST dict) in ``subnet``.

    ``router_mac`` is the domain's virtual router MAC (source of the replies),
    ``mtu`` what the vport's interface should use (underlay MTU - 50).
    """
    gateway = _field(vport, "gateway") or _field(subnet, "gateway")
    prefixlen = ipaddress.ip_network(_field(subnet, "cidr"), strict=False).prefixlen
    return Lease(ip=_field(vport, "ip"), prefixlen=prefixlen, gateway=gateway,
                 mac=_field(vport, "mac").lower(), server_mac=router_mac, mtu=mtu,
                 lease_time=lease_time, dns=tuple(dns), domain_name=domain_name)


@dataclass
class DhcpStats:
    """Counters of what the responder saw and did (for the agent's metrics)."""

    counts: Counter = field(default_factory=Counter)

    def bump(self, name: str) -> None:
        self.counts[name] += 1


@dataclass(frozen=True)
class DhcpRequest:
    """The parts of a client's message the responder looks at."""

    msg_type: int
    xid: int
    flags: int
    chaddr: str
    ciaddr: str
    giaddr: str
    requested_ip: str | None
    server_id: str | None
    src_mac: str
    vlan_id: int | None = None  # the 802.1Q tag the request came with (bare-metal on a VLAN)


def _option_map(msg: dhcp.dhcp) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    if msg.options is None:
        return found
    for opt in msg.options.option_list or []:
        if isinstance(opt.value, bytes):
            found.setdefault(opt.tag, opt.value)
    return found


def _ip_option(value: bytes | None) -> str | None:
    if value is None or len(value) != 4:
        return None
    return str(ipaddress.IPv4Address(value))


def parse_request(data: bytes) -> DhcpRequest | None:
    """Decode an Ethernet/IPv4/UDP(67)/BOOTREQUEST frame; None if it is not exactly that."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 14 + 20 + 8 + 236:
        return None
    pkt = packet.Packet(bytes(data))
    eth = pkt.get_protocol(ethernet.ethernet)
    tags = pkt.get_protocols(vlan.vlan)
    if len(tags) > 1:
        return None  # QinQ: not for us
    ip4 = pkt.get_protocol(ipv4.ipv4)
    udp4 = pkt.get_protocol(udp.udp)
    msg = pkt.get_protocol(dhcp.dhcp)
    if eth is None or ip4 is None or udp4 is None or msg is None:
        return None
    if udp4.dst_port != SERVER_PORT or msg.op != BOOTREQUEST:
        return None
    if msg.htype != 1 or msg.hlen != 6 or not isinstance(msg.chaddr, str):
        return None
    options = _option_map(msg)
    kind = options.get(OPT_MESSAGE_TYPE)
    if kind is None or len(kind) != 1:
        return None
    return DhcpRequest(msg_type=kind[0], xid=msg.xid, flags=msg.flags, chaddr=msg.chaddr.lower(),
                       ciaddr=msg.ciaddr, giaddr=msg.giaddr,
                       requested_ip=_ip_option(options.get(OPT_REQUESTED_IP)),
                       server_id=_ip_option(options.get(OPT_SERVER_ID)),
                       src_mac=eth.src.lower(), vlan_id=tags[0].vid if tags else None)


def _reply_options(kind: int, lease: Lease) -> list[dhcp.option]:
    opts = [dhcp.option(OPT_MESSAGE_TYPE, bytes([kind])),
            dhcp.option(OPT_SERVER_ID, ipaddress.IPv4Address(lease.server_id).packed)]
    if kind == NAK:
        return opts
    lease_time = max(60, int(lease.lease_time))
    opts += [
        dhcp.option(OPT_LEASE_TIME, struct.pack("!I", lease_time)),
        dhcp.option(OPT_RENEWAL_TIME, struct.pack("!I", lease_time // 2)),
        dhcp.option(OPT_REBINDING_TIME, struct.pack("!I", lease_time * 7 // 8)),
        dhcp.option(OPT_SUBNET_MASK, ipaddress.IPv4Address(lease.netmask).packed),
        dhcp.option(OPT_ROUTER, ipaddress.IPv4Address(lease.gateway).packed),
    ]
    if lease.mtu:
        opts.append(dhcp.option(OPT_MTU, struct.pack("!H", lease.mtu)))
    if lease.dns:
        opts.append(dhcp.option(OPT_DNS,
                                b"".join(ipaddress.IPv4Address(a).packed for a in lease.dns[:8])))
    if lease.domain_name:
        opts.append(dhcp.option(OPT_DOMAIN_NAME, lease.domain_name.encode()[:255]))
    return opts


def build_reply(req: DhcpRequest, kind: int, lease: Lease) -> bytes:
    """The OFFER/ACK/NAK frame for ``req`` (RFC 2131 4.1: broadcast when asked or NAK)."""
    yiaddr = "0.0.0.0" if kind == NAK else lease.ip
    broadcast = kind == NAK or bool(req.flags & BROADCAST_FLAG)
    msg = dhcp.dhcp(op=BOOTREPLY, chaddr=req.chaddr, hlen=6, xid=req.xid, flags=req.flags,
                    ciaddr=req.ciaddr if kind == ACK else "0.0.0.0", yiaddr=yiaddr,
                    siaddr="0.0.0.0", giaddr=req.giaddr,
                    options=dhcp.options(option_list=_reply_options(kind, lease)))
    pkt = packet.Packet()
    dst = "ff:ff:ff:ff:ff:ff" if broadcast else req.chaddr
    if req.vlan_id is not None:  # answer on the VLAN the request came from
        pkt.add_protocol(ethernet.ethernet(dst=dst, src=lease.server_mac, ethertype=0x8100))
        pkt.add_protocol(vlan.vlan(vid=req.vlan_id, ethertype=0x0800))
    else:
        pkt.add_protocol(ethernet.ethernet(dst=dst, src=lease.server_mac, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=lease.server_id, dst="255.255.255.255" if broadcast else yiaddr,
                               proto=17, ttl=64))
    pkt.add_protocol(udp.udp(src_port=SERVER_PORT, dst_port=CLIENT_PORT))
    pkt.add_protocol(msg)
    pkt.serialize()
    return bytes(pkt.data)


def decide(req: DhcpRequest, lease: Lease) -> int | None:
    """Which reply (OFFER / ACK / NAK) ``req`` gets, or None to stay silent."""
    if req.msg_type == DISCOVER:
        return OFFER
    if req.msg_type == REQUEST:
        if req.server_id is not None and req.server_id != lease.server_id:
            return None  # the client chose another server
        wanted = req.requested_ip or (req.ciaddr if req.ciaddr != "0.0.0.0" else None)
        if wanted == lease.ip:
            return ACK
        return NAK
    return None


def handle_dhcp(data: bytes, lease: Lease | None, stats: DhcpStats | None = None) -> bytes | None:
    """The reply frame for a client's frame from a vport with ``lease``, or None. Never raises."""
    stats = stats if stats is not None else DhcpStats()
    stats.bump(RECEIVED)
    try:
        req = parse_request(data)
    except Exception:  # the packet library raises many kinds of errors on garbage
        req = None
    if req is None:
        stats.bump(MALFORMED)
        return None
    if lease is None:
        stats.bump(IGNORED)
        return None
    if req.chaddr != lease.mac.lower() or req.src_mac != lease.mac.lower():
        stats.bump(FOREIGN_MAC)
        return None
    kind = decide(req, lease)
    if kind is None:
        stats.bump(IGNORED)
        return None
    try:
        reply = build_reply(req, kind, lease)
    except Exception:  # a lease the library cannot encode (bad directory data): stay silent
        stats.bump(MALFORMED)
        return None
    stats.bump({OFFER: OFFERS, ACK: ACKS, NAK: NAKS}[kind])
    return reply
