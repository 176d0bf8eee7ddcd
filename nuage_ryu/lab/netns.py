"""Network namespaces and links for the lab, through iproute2's ``ip``.

``ip -n NS`` keeps every link operation inside the lab's own namespaces, so
the root namespace never gets an interface. Namespaces are named files under
/run/netns; a process is "inside" one when its /proc/PID/ns/net is the same
inode, which is how ``processes_in`` finds what still runs there.
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

NETNS_DIR = "/run/netns"


class LabError(Exception):
    """The lab could not be built, inspected or torn down; the message is one line."""


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ip [-n NETNS] ARGS``; LabError with ip's own message on failure."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise LabError("the 'ip' command (iproute2) is not installed") from None
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv)}: {message[-1] if message else 'failed'}")
    return result


def exists(name: str) -> bool:
    """True if a named network namespace ``name`` exists."""
    return os.path.exists(os.path.join(NETNS_DIR, name))


def add(name: str) -> None:
    """Create namespace ``name`` with its loopback up."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete(name: str) -> bool:
    """Delete namespace ``name`` if it exists; True if it did."""
    if not exists(name):
        return False
    ip("netns", "delete", name)
    return True


def run_in(name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, check: bool = False,
           timeout: float = 60, capture: bool = True) -> subprocess.CompletedProcess:
    """Run ``argv`` inside namespace ``name``."""
    full = ["ip", "netns", "exec", name, *argv]
    try:
        result = subprocess.run(full, env=dict(env) if env is not None else None, capture_output=capture,
                                text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout:g}s: {' '.join(argv)} (in {name})") from None
    if check and result.returncode != 0:
        message = ((result.stderr or result.stdout or "").strip().splitlines() or ["failed"])[-1]
        raise LabError(f"{' '.join(argv)} (in {name}): {message}")
    return result


def set_sysctl(name: str, settings: Mapping[str, str]) -> None:
    """Write /proc/sys values inside namespace ``name`` (net.* values are per namespace)."""
    def write() -> None:
        for key, value in settings.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w", encoding="ascii") as entry:
                entry.write(str(value))

    try:
        in_netns(name, write)
    except OSError as exc:
        raise LabError(f"cannot set sysctls in {name}: {exc.strerror or exc}") from None


_CLONE_NEWNET = 0x40000000
_libc = None


def in_netns(name: str, work: Callable[[], T]) -> T:
    """Run ``work()`` on a fresh thread that has entered namespace ``name``; return its result.

    setns(2) moves only the calling thread, and that thread ends right after,
    so the rest of the process never leaves its own namespace. Sockets opened
    and /proc/sys/net files written by ``work`` belong to ``name``. Much
    cheaper than a subprocess under ``ip netns exec``.
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    outcome: dict[str, object] = {}

    def enter_and_work() -> None:
        try:
            with open(os.path.join(NETNS_DIR, name), "rb") as handle:
                if _libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, os.strerror(error))
            outcome["result"] = work()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=enter_and_work, name=f"netns-{name}", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, FileNotFoundError) and not exists(name):
            raise LabError(f"network namespace {name} does not exist") from None
        raise error
    return outcome["result"]  # type: ignore[return-value]


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def processes_in(names: Sequence[str]) -> dict[int, str]:
    """Pids (with their command name) of processes running inside any of the namespaces ``names``."""
    inodes = {ino for ino in (_inode(os.path.join(NETNS_DIR, n)) for n in names) if ino is not None}
    found: dict[int, str] = {}
    if not inodes:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if _inode(f"/proc/{entry}/ns/net") in inodes:
            try:
                with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as comm:
                    found[int(entry)] = comm.read().strip()
            except OSError:
                continue
    return found


# SIOCETHTOOL with ETHTOOL_STXCSUM: the ioctl behind 'ethtool -K IF tx off' (ethtool is often absent).
_SIOCETHTOOL, _ETHTOOL_STXCSUM = 0x8946, 0x17


def disable_tx_checksum(name: str, ifnames: Sequence[str]) -> None:
    """Turn off TX checksum offload on veths in namespace ``name``.

    A kernel sending into a veth leaves TCP/UDP checksums for the "hardware"
    to finish. When the peer end is read by OVS's userspace datapath (AF_PACKET,
    no vnet header) the checksum is never finished and the receiver drops the
    segment: ping works, TCP does not. Every veth whose traffic reaches a
    netdev bridge needs this on its sending side (underlay NICs and container
    interfaces alike).
    """
    def switch_off() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for ifname in ifnames:
                value = array.array("I", [_ETHTOOL_STXCSUM, 0])  # struct ethtool_value {cmd, data}
                ifreq = struct.pack("16sP16x", ifname.encode(), value.buffer_info()[0])
                fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)

    if not ifnames:
        return
    try:
        in_netns(name, switch_off)
    except OSError as exc:
        raise LabError(f"cannot turn off TX checksum offload on {', '.join(ifnames)} in {name}: "
                       f"{exc.strerror or exc}") from None
