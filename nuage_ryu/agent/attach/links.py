"""Kernel side of an attachment: the veth pair and the container's network namespace (pyroute2).

Names are derived from (container id, interface name) so that any process can
find the links of an attachment again after a restart, without stored state:
``nr<11 hex>`` is the host end (the OVS port), ``nc<11 hex>`` the container end
while it still sits in the host namespace (Docker mode, or during an attach).
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import hashlib
import ipaddress
import os
import re
import socket
import stat
import struct
from dataclasses import dataclass

from pyroute2 import IPRoute

from nuage_ryu.agent.attach import netlink

HOST_PREFIX = "nr"
PEER_PREFIX = "nc"
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


class LinkError(Exception):
    """A veth or namespace operation failed; the message says which and why (``errno`` if known)."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.errno = errno_


def link_names(container_id: str, ifname: str) -> tuple[str, str]:
    """(host end, container end before the move) for an attachment."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:11]
    return HOST_PREFIX + digest, PEER_PREFIX + digest


def valid_ifname(name: str) -> bool:
    """A Linux interface name: 1-15 characters, no '/', whitespace, '.' or '..' alone."""
    return bool(IFNAME_RE.match(name or "")) and name not in (".", "..")


@dataclass(frozen=True)
class ContainerInterface:
    """What the container side looks like now (for CHECK and results)."""

    ifname: str
    index: int
    mac: str
    mtu: int
    up: bool
    addresses: tuple[str, ...]          # "ip/prefix"
    default_gateway: str | None


_CLONE_NEWNET = 0x40000000
_NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs file: the namespace's CLONE_NEW* type
_libc = ctypes.CDLL(None, use_errno=True)


def open_netns(netns: str) -> int:
    """An fd of the network namespace file ``netns``; LinkError if it is anything else.

    Never blocks: a plugin may name any path (``CNI_NETNS``), and opening a FIFO for reading
    waits for a writer, which hung the attach thread and every later call for that container.
    So: a regular file only (nsfs files are; FIFOs, devices, directories are not), opened with
    O_NONBLOCK, and then asked by ioctl whether it is a network namespace.
    """
    try:
        st = os.stat(netns)
    except OSError as exc:
        raise LinkError(f"cannot open network namespace {netns}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LinkError(f"{netns} is not a network namespace (not a namespace file)")
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise LinkError(f"cannot open network namespace {netns}: {exc.strerror}") from None
    try:
        nstype = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        nstype = None
    if nstype != _CLONE_NEWNET:
        os.close(fd)
        raise LinkError(f"{netns} is not a network namespace")
    return fd


def open_netlink(netns: str | None = None) -> IPRoute:
    """An IPRoute socket bound to ``netns`` (a path; None: this thread's namespace).

    pyroute2's own ``IPRoute(netns=...)`` costs ~8 ms (helper process); a
    netlink socket belongs to the namespace it was created in, so switching
    only this thread into ``netns`` for the creation and back takes ~1 ms.
    """
    return _created_in(netns, IPRoute)


def _created_in(netns: str | None, factory):
    """``factory()`` called with this thread inside ``netns`` (sockets stay bound to it)."""
    if not netns:
        return factory()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = open_netns(netns)
        try:
            if _libc.setns(target, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise LinkError(f"cannot enter network namespace {netns}: {os.strerror(err)}")
            try:
                return factory()
            finally:
                if _libc.setns(own, _CLONE_NEWNET) != 0:  # pragma: no cover - would be a kernel bug
                    raise SystemExit("nuage: cannot return to the agent's own network namespace")
        finally:
            os.close(target)
    finally:
        os.close(own)


_SIOCETHTOOL, _ETHTOOL_STXCSUM = 0x8946, 0x17


def disable_tx_checksum(netns: str | None, ifname: str) -> None:
    """Turn TX checksum offload off on ``ifname`` (in ``netns``).

    A kernel sending into a veth leaves TCP/UDP checksums for the "hardware";
    OVS's userspace datapath (netdev bridges) reads the other end without
    finishing them, so the receiver drops the segments (ping works, TCP does
    not). Needed on the container end whenever br-int is a netdev bridge.
    """
    value = array.array("I", [_ETHTOOL_STXCSUM, 0])  # struct ethtool_value {cmd, data}
    ifreq = struct.pack("16sP16x", ifname.encode(), value.buffer_info()[0])
    sock = _created_in(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)
    except OSError as exc:
        raise LinkError(f"cannot turn off TX checksum offload on {ifname}: {exc.strerror}") from None
    finally:
        sock.close()


def _netns_target(netns: str) -> str:
    if not netns or not os.path.exists(netns):
        raise LinkError(f"network namespace {netns!r} does not exist")
    return netns


class LinkOps:
    """veth pairs and namespace configuration.

    ``host_netns`` is the namespace where the switch's ports live (None: this
    process's own). With a userspace datapath in a lab host's namespace, the host
    end of every veth must be in that namespace, not in the agent's.
    """

    def __init__(self, host_netns: str | None = None, tx_checksum_offload: bool | None = None) -> None:
        if host_netns and not host_netns.startswith("/"):
            host_netns = f"/var/run/netns/{host_netns}"
        self.host_netns = host_netns
        # False with a userspace (netdev) datapath (see disable_tx_checksum); None: AttachService
        # decides from the bridge's datapath_type.
        self.tx_checksum_offload = tx_checksum_offload

    def _host(self) -> IPRoute:
        return open_netlink(self.host_netns)

    def _rtnl(self, netns: str | None = None) -> netlink.RtNetlink:
        """The attach path's own netlink socket in ``netns`` (None: the switch's namespace)."""
        return _created_in(netns or self.host_netns, netlink.RtNetlink)

    def exists(self, name: str) -> bool:
        with self._rtnl() as nl:
            return nl.link(name) is not None

    def list_names(self, prefix: str = HOST_PREFIX) -> list[str]:
        """Names of host-namespace links starting with ``prefix`` (leftover detection)."""
        with self._host() as ip:
            names = [link.get_attr("IFLA_IFNAME") for link in ip.get_links()]
        return sorted(n for n in names if n and n.startswith(prefix) and len(n) == 13)

    def create_veth(self, host_name: str, peer_name: str, mtu: int, netns: str | None = None,
                    peer_mac: str | None = None) -> str:
        """Create the pair; the host end is brought up; returns the host end's MAC.

        With ``netns`` the peer is created directly inside that namespace under
        ``peer_name`` (the kernel does it in one step, ~2 ms, where moving an
        existing interface between namespaces costs ~20 ms).
        """
        fd = open_netns(_netns_target(netns)) if netns else None
        try:
            with self._rtnl() as nl:
                try:
                    nl.create_veth(host_name, peer_name, mtu, peer_netns_fd=fd, peer_mac=peer_mac)
                except netlink.NetlinkError as exc:
                    where = f" (peer {peer_name} in {netns})" if netns else f"/{peer_name}"
                    raise LinkError(f"cannot create veth {host_name}{where}: {exc.strerror}",
                                    exc.errno) from None
                found = nl.link(host_name)  # created up; its MAC is the kernel's choice
                if found is None:
                    raise LinkError(f"veth {host_name} vanished right after its creation")
            if self.tx_checksum_offload is False:
                disable_tx_checksum(netns or self.host_netns, peer_name)
            return found.mac
        finally:
            if fd is not None:
                os.close(fd)

    def configure(self, netns: str, ifname: str, address: str, gateway: str | None) -> int:
        """Set address and default route of ``ifname`` in ``netns`` and bring it up; returns its index."""
        iface = ipaddress.ip_interface(address)
        with self._rtnl(_netns_target(netns)) as nl:
            try:
                found = nl.link(ifname)
                if found is None:
                    raise LinkError(f"cannot configure {ifname} in {netns}: interface not found")
                nl.configure_ipv4(found.index, str(iface.ip), iface.network.prefixlen, gateway)
            except netlink.NetlinkError as exc:
                raise LinkError(f"cannot configure {ifname} in {netns}: {exc.strerror}") from None
        return found.index

    def delete(self, name: str) -> bool:
        """Delete link ``name`` in the host namespace (its veth peer goes too); False if absent."""
        with self._rtnl() as nl:
            try:
                return nl.delete_link(name)
            except netlink.NetlinkError as exc:
                raise LinkError(f"cannot delete {name}: {exc.strerror}") from None

    def mac_of(self, name: str) -> str | None:
        with self._rtnl() as nl:
            found = nl.link(name)
            return found.mac if found else None

    def has_interface(self, netns: str, ifname: str) -> bool:
        with self._rtnl(_netns_target(netns)) as nl:
            return nl.link(ifname) is not None

    def inspect(self, netns: str, ifname: str) -> ContainerInterface | None:
        """The container interface ``ifname`` in ``netns`` as it is now; None if absent."""
        with open_netlink(_netns_target(netns)) as ns:
            found = ns.link_lookup(ifname=ifname)
            if not found:
                return None
            link = ns.get_links(found[0])[0]
            addrs = tuple(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                          for a in ns.get_addr(index=found[0], family=2))
            gateway = None
            for route in ns.get_routes(family=2, oif=found[0]):
                if route["dst_len"] == 0 and route.get_attr("RTA_GATEWAY"):
                    gateway = route.get_attr("RTA_GATEWAY")
            return ContainerInterface(ifname=ifname, index=found[0], mac=link.get_attr("IFLA_ADDRESS"),
                                      mtu=link.get_attr("IFLA_MTU"),
                                      up=bool(link["flags"] & 1), addresses=addrs, default_gateway=gateway)

    def delete_in_netns(self, netns: str, ifname: str) -> bool:
        """Delete ``ifname`` inside ``netns`` if both exist; False otherwise."""
        if not netns or not os.path.exists(netns):
            return False
        try:
            with self._rtnl(netns) as nl:
                return nl.delete_link(ifname)
        except (LinkError, OSError):
            return False
