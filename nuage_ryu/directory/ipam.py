"""IP and MAC address management: pure functions, no I/O.

Rules (documented in docs/directory.md):

* IPv4 only. The network and broadcast addresses and the gateway are never handed out.
* /31 (RFC 3021 point-to-point): both addresses are usable; the gateway takes one,
  so exactly one vport fits.
* /32: the only address is the gateway, so no vport fits; creating such a subnet
  is refused (422) because it could never host anything.
* Allocation picks the lowest free address after the highest one in use (so that a
  just-released address is not immediately handed to a new vport), wrapping around
  to the lowest free address; released addresses are therefore reused once the end
  of the range has been reached. Exhaustion is a 409 with a clear message.
* MACs are unicast. Generated MACs are locally administered (02:xx:...).
"""

from __future__ import annotations

import functools
import random
import re
import socket
from collections.abc import Callable, Collection

import netaddr

from nuage_ryu.directory.errors import Conflict, ValidationError


def parse_ipv4(value: str, what: str = "address") -> netaddr.IPAddress:
    """Parse a dotted-quad IPv4 address or raise ValidationError."""
    try:
        if not isinstance(value, str) or value.count(".") != 3:
            raise ValueError
        addr = netaddr.IPAddress(value, version=4, flags=netaddr.INET_PTON)
    except (ValueError, netaddr.AddrFormatError):
        raise ValidationError(f"{what} {value!r} is not a valid IPv4 address") from None
    return addr


def parse_cidr(value: str, what: str = "cidr") -> netaddr.IPNetwork:
    """Parse an IPv4 network 'a.b.c.d/len' with no host bits set, or raise ValidationError."""
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(f"{what} {value!r} is not an IPv4 network like 10.0.1.0/24")
    addr, _, plen = value.partition("/")
    parse_ipv4(addr, what)
    if not plen.isdigit() or not 0 <= int(plen) <= 32:
        raise ValidationError(f"{what} {value!r} has an invalid prefix length (0..32)")
    net = netaddr.IPNetwork(value, version=4)
    if net.ip != net.network:
        raise ValidationError(f"{what} {value!r} has host bits set; did you mean {net.cidr}?")
    return net


@functools.lru_cache(maxsize=4096)  # every vport allocation asks; parsing the CIDR each time dominated a bulk
def usable_range(cidr: str) -> tuple[int, int]:
    """First and last address (as ints) that may be gateway or vport addresses."""
    net = parse_cidr(cidr)
    if net.prefixlen >= 31:
        return int(net.first), int(net.last)
    return int(net.first) + 1, int(net.last) - 1


def default_gateway(cidr: str) -> str:
    """The first usable address of the subnet."""
    return str(netaddr.IPAddress(usable_range(cidr)[0], 4))


def check_subnet(cidr: str, gateway: str | None) -> tuple[str, str]:
    """Validate a subnet's CIDR and gateway; returns (cidr, gateway) normalised."""
    net = parse_cidr(cidr)
    if net.prefixlen == 32:
        raise ValidationError(f"cidr {cidr!r}: a /32 has room for the gateway only, so no vport could "
                              "ever be attached; use /31 or shorter")
    if net.prefixlen == 0:
        raise ValidationError(f"cidr {cidr!r}: a /0 subnet would cover every address")
    first, last = usable_range(cidr)
    if gateway is None or gateway == "":
        return str(net.cidr), str(netaddr.IPAddress(first, 4))
    gw = parse_ipv4(gateway, "gateway")
    if gw not in net:
        raise ValidationError(f"gateway {gateway} is outside {net.cidr}")
    if not first <= int(gw) <= last:
        raise ValidationError(f"gateway {gateway} is the network or broadcast address of {net.cidr}")
    return str(net.cidr), str(gw)


def capacity(cidr: str) -> int:
    """How many vport addresses the subnet offers (usable addresses minus the gateway)."""
    first, last = usable_range(cidr)
    return last - first  # (last - first + 1) usable, one of them is the gateway


def check_vport_ip(cidr: str, gateway: str, ip: str) -> str:
    """Validate a requested vport address (format, inside the subnet, not reserved)."""
    addr = parse_ipv4(ip, "ip")
    net = parse_cidr(cidr)
    if addr not in net:
        raise ValidationError(f"ip {ip} is outside the subnet {net.cidr}")
    first, last = usable_range(cidr)
    if not first <= int(addr) <= last:
        raise ValidationError(f"ip {ip} is the network or broadcast address of {net.cidr}")
    if str(addr) == gateway:
        raise ValidationError(f"ip {ip} is the gateway of {net.cidr}")
    return str(addr)


def _ip_str(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def _ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big")


def allocate_ip(cidr: str, gateway: str, used: Collection[str], requested: str | None = None,
                hint: int | None = None) -> str:
    """An address for a new vport: ``requested`` if valid and free, else the next free one.

    ``used``: addresses held by the subnet's vports (a set makes this fast).
    ``hint``: highest address handed out so far (as int); computed from ``used`` when absent.
    Raises ValidationError for an invalid request and Conflict when taken or exhausted.
    """
    if requested:
        ip = check_vport_ip(cidr, gateway, requested)
        if ip in used:
            raise Conflict(f"ip {ip} is already in use in {cidr}")
        return ip
    first, last = usable_range(cidr)
    if isinstance(used, (list, tuple)):
        used = set(used)  # membership tests below must be O(1)
    if len(used) + 1 >= last - first + 1:
        raise Conflict(f"subnet {cidr} is exhausted: all {capacity(cidr)} addresses are in use")
    if hint is None:
        hint = max((_ip_int(u) for u in used), default=0)
    # Continue after the highest address handed out; wrap to the start when the end is reached.
    start = hint + 1 if first <= hint < last else first
    for candidates in (range(start, last + 1), range(first, start)):
        for candidate in candidates:
            ip = _ip_str(candidate)
            if ip not in used and ip != gateway:
                return ip
    raise Conflict(f"subnet {cidr} is exhausted: all {capacity(cidr)} addresses are in use")


_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")


def normalize_mac(value: str, what: str = "mac") -> str:
    """Parse 'aa:bb:cc:dd:ee:ff' (or '-' separated); require unicast and not zero; lower-case."""
    if not isinstance(value, str) or not _MAC_RE.match(value):
        raise ValidationError(f"{what} {value!r} is not a MAC address like 02:00:00:00:00:01")
    octets = [int(x, 16) for x in re.split("[:-]", value)]
    if not any(octets):
        raise ValidationError(f"{what} {value} is the all-zero address")
    if octets[0] & 0x01:
        raise ValidationError(f"{what} {value} is a multicast/broadcast address; a unicast MAC is required")
    return ":".join(f"{o:02x}" for o in octets)


def generate_mac(in_use: Callable[[str], bool], rand: Callable[[int], int] | None = None) -> str:
    """A random locally administered unicast MAC (02:xx:xx:xx:xx:xx) for which ``in_use`` is False."""
    rand = rand or random.SystemRandom().getrandbits
    for _ in range(1000):
        tail = rand(40)
        mac = "02:" + ":".join(f"{(tail >> s) & 0xFF:02x}" for s in (32, 24, 16, 8, 0))
        if not in_use(mac):
            return mac
    raise Conflict("could not generate an unused MAC address")
