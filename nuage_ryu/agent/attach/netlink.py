"""A minimal rtnetlink client (standard library only) for the attach hot path.

An attach needs five kernel operations (look a link up, create a veth pair with its
peer in the container's namespace, give the peer its address, bring it up, add the
default route) and a detach one (delete the host end). pyroute2 does each of them
through an asyncio event loop it builds per socket, and its message classes encode
and decode every attribute generically: in a burst of 100 attaches that was the
largest CPU cost of the agent (~9 ms of CPU per attach and detach, several times
the kernel's own work). This module builds the few messages it needs with
``struct`` and sends them on a plain ``AF_NETLINK`` socket: one ``sendto`` and one
``recv`` per request (several requests of one step share the round trip).

Only what the attach service uses is here; everything else (dumps for GC and
CHECK) stays on pyroute2 (links.py).
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Iterable

# Message types and flags (linux/netlink.h, linux/rtnetlink.h)
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400

# Attributes (linux/if_link.h, linux/if_addr.h, linux/rtnetlink.h, linux/veth.h)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
IFF_UP = 0x1

_HEADER = struct.Struct("=LHHLL")      # nlmsghdr: length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")     # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")      # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")   # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_ATTR = struct.Struct("=HH")           # rtattr: length, type
_seq = itertools.count(1)


class NetlinkError(OSError):
    """The kernel refused a request (``errno`` and ``strerror`` set)."""


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_mac(kind: int, mac: str) -> bytes:
    return attr(kind, bytes(int(part, 16) for part in mac.split(":")))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """{type: payload} of the rtattrs in ``data`` from ``offset`` (nested flag bits dropped)."""
    found = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _ATTR.size:offset + length]
        offset += (length + 3) & ~3
    return found


class Link:
    """What a link lookup tells: index, flags, MTU, MAC."""

    __slots__ = ("index", "flags", "mtu", "mac")

    def __init__(self, index: int, flags: int, mtu: int, mac: str) -> None:
        self.index, self.flags, self.mtu, self.mac = index, flags, mtu, mac


class RtNetlink:
    """One NETLINK_ROUTE socket, bound to the namespace it was created in. Not thread-safe."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RtNetlink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests ----------------------------------------------------------------------

    def _message(self, kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
        seq = next(_seq) & 0xFFFFFFFF
        return seq, _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body

    def _exchange(self, requests: Iterable[tuple[int, int, bytes]]) -> list[bytes | NetlinkError | None]:
        """Send the requests in one datagram; per request its answer (a message body), None for a
        plain acknowledgement, or the NetlinkError the kernel answered."""
        seqs, chunks = [], []
        for kind, flags, body in requests:
            seq, message = self._message(kind, flags, body)
            seqs.append(seq)
            chunks.append(message)
        self.sock.sendto(b"".join(chunks), (0, 0))
        answers: dict[int, bytes | NetlinkError | None] = {}
        while len(answers) < len(seqs):
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    break
                body = data[offset + _HEADER.size:offset + length]
                offset += (length + 3) & ~3
                if seq not in seqs:
                    continue
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body)
                    answers[seq] = None if code == 0 else NetlinkError(-code, os.strerror(-code))
                else:
                    answers[seq] = body
        return [answers[seq] for seq in seqs]

    def _acked(self, requests: list[tuple[int, int, bytes]]) -> None:
        """Send requests that expect an acknowledgement; raise the first error."""
        for answer in self._exchange([(k, f | NLM_F_ACK, b) for k, f, b in requests]):
            if isinstance(answer, NetlinkError):
                raise answer

    # -- links -------------------------------------------------------------------------

    def link(self, name: str) -> Link | None:
        """The link ``name`` in this namespace; None if there is none."""
        (answer,) = self._exchange([(RTM_GETLINK, 0, ifinfo() + attr_str(IFLA_IFNAME, name))])
        if isinstance(answer, NetlinkError):
            if answer.errno == errno.ENODEV:
                return None
            raise answer
        if answer is None:  # pragma: no cover - a GET is answered with the link or an error
            return None
        _family, _type, index, flags, _change = _IFINFO.unpack_from(answer)
        attrs = parse_attrs(answer, _IFINFO.size)
        mtu = struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
        mac = ":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b""))
        return Link(index, flags, mtu, mac)

    def create_veth(self, name: str, peer: str, mtu: int, peer_netns_fd: int | None = None,
                    peer_mac: str | None = None) -> None:
        """The pair ``name`` (here, up) / ``peer`` (in ``peer_netns_fd``'s namespace, down)."""
        peer_attrs = attr_str(IFLA_IFNAME, peer) + attr_u32(IFLA_MTU, mtu)
        if peer_mac:
            peer_attrs += attr_mac(IFLA_ADDRESS, peer_mac)
        if peer_netns_fd is not None:
            peer_attrs += attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
        info = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth")
                    + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo() + peer_attrs)))
        body = ifinfo(flags=IFF_UP, change=IFF_UP) + attr_str(IFLA_IFNAME, name) + attr_u32(IFLA_MTU, mtu) + info
        self._acked([(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)])

    def delete_link(self, name: str) -> bool:
        """Delete link ``name``; False if there is none."""
        try:
            self._acked([(RTM_DELLINK, 0, ifinfo() + attr_str(IFLA_IFNAME, name))])
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    def configure_ipv4(self, index: int, address: str, prefixlen: int, gateway: str | None) -> None:
        """Address ``address/prefixlen`` on link ``index``, the link up, a default route via ``gateway``.

        One round trip: the kernel handles the requests in order and acknowledges each.
        """
        packed = socket.inet_aton(address)
        requests = [
            (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
             _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
             + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)),
            (RTM_NEWLINK, 0, ifinfo(index=index, flags=IFF_UP, change=IFF_UP)),
        ]
        if gateway:
            requests.append((RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                             _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                                         RTN_UNICAST, 0)
                             + attr(RTA_GATEWAY, socket.inet_aton(gateway)) + attr_u32(RTA_OIF, index)))
        self._acked(requests)
