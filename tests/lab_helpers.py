"""Helpers for end-to-end tests on a lab: a lab with its control plane, containers, real traffic.

``lab_with_plane`` brings up N hosts plus the directory and one VRS agent per
host, under a unique prefix and state dir, and tears everything down by the
names and pids it recorded, also when the test fails.

``Container`` is a network namespace plugged into a lab host's br-int the way
a plugin does it: a veth pair, the container end configured with the vport's
directory-assigned MAC/IP/gateway, the host end added to br-int with the vport
id in external_ids.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from nuage_ryu.hostovs.host import HostOVS
from nuage_ryu.lab import netns as labnetns
from nuage_ryu.lab import plane as plane_module
from nuage_ryu.lab.lab import Lab, LabHost
from nuage_ryu.lab.plane import ControlPlane
from tests.ovs_fixtures import wait_until  # noqa: F401 - re-exported for the lab tests

_serial = itertools.count(1)

SERVER_SCRIPT = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
s.settimeout(0.5)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.sendall(b"ok")
    c.close()
"""

CLIENT_SCRIPT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.settimeout(float(sys.argv[3]))
    sys.exit(0 if c.recv(2) == b"ok" else 2)
except OSError:
    sys.exit(1)
"""


@contextlib.contextmanager
def lab_with_plane(n_hosts: int, tag: str = "t", central: bool = False,
                   outside: bool = False, **plane_options) -> Iterator[tuple[Lab, ControlPlane]]:
    """A lab of ``n_hosts`` with directory + agents (or one central agent); everything removed afterwards.

    ``outside``: with the lab's outside world (router + internet server, docs/lab.md);
    ``plane_options`` go to ``ControlPlane`` (``relays=N``, ``directory_connection=...``)."""
    prefix = f"{tag}{os.getpid() % 100000}{next(_serial)}"[:12]
    state = tempfile.mkdtemp(prefix="nr-lab-")
    lab = Lab(state, prefix)
    plane = None
    try:
        if central:
            lab.up(n_hosts, controllers=[f"tcp:192.0.2.2:{plane_module.OFP_PORT}"], outside=outside)
        else:
            lab.up(n_hosts, outside=outside)
        plane = ControlPlane(lab, **plane_options).start(central=central)
        yield lab, plane
    finally:
        if plane is not None:
            plane.stop()
        lab.down()
        with contextlib.suppress(OSError):
            os.rmdir(state)


def ns_run(netns: str, argv: list[str], timeout: float = 30,
           check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=check)


@dataclass
class Container:
    name: str
    netns: str
    host: LabHost
    host_ifname: str
    vport: dict

    @property
    def ip(self) -> str:
        return self.vport["ip"]

    def ping(self, ip: str, count: int = 3, interval: float = 0.2, wait: float = 1.0) -> bool:
        proc = ns_run(self.netns, ["ping", "-n", "-q", "-c", str(count), "-i", str(interval),
                                   "-W", str(wait), ip])
        return proc.returncode == 0

    def ping_loss(self, ip: str, count: int, interval: float) -> tuple[int, int]:
        """(transmitted, received) of a ping run."""
        proc = ns_run(self.netns, ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "1", ip],
                      timeout=count * interval + 30)
        for line in proc.stdout.splitlines():
            if "transmitted" in line:
                parts = line.split(",")
                return int(parts[0].split()[0]), int(parts[1].split()[0])
        raise AssertionError(f"no ping summary: {proc.stdout} {proc.stderr}")

    def serve_tcp(self, port: int, seconds: float = 20.0) -> subprocess.Popen:
        """A TCP server answering 'ok' to every connection for ``seconds`` (then it exits)."""
        import sys

        return subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, "-c", SERVER_SCRIPT,
                                 str(port), str(seconds)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def tcp_connect(self, ip: str, port: int, timeout: float = 1.5) -> bool:
        import sys

        proc = ns_run(self.netns, [sys.executable, "-c", CLIENT_SCRIPT, ip, str(port), str(timeout)],
                      timeout=timeout + 30)
        return proc.returncode == 0


class Containers:
    """Creates containers on lab hosts and removes every one it created."""

    def __init__(self, lab: Lab, plane: ControlPlane) -> None:
        self.lab = lab
        self.plane = plane
        self.client = plane.client()
        self.created: list[Container] = []
        self.procs: list[subprocess.Popen] = []  # processes a test starts in its containers, killed by cleanup()
        self._hosts = {h.name: h for h in lab.hosts}

    def add(self, name: str, host: str, subnet: dict, wait_up: bool = True, **vport_fields) -> Container:
        lab_host = self._hosts[host]
        vport = self.client.request("POST", f"/subnets/{subnet['id']}/vports",
                                    {"name": name, "host": lab_host.host_name, **vport_fields})
        netns = f"{self.lab.prefix}-{name}"[:40]
        host_if = f"nv{os.getpid() % 100000}x{next(_serial)}"[:15]
        container = Container(name, netns, lab_host, host_if, vport)
        self.created.append(container)
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns],
                       check=True)
        subprocess.run(["ip", "link", "set", host_if, "netns", lab_host.netns], check=True)
        ns_run(lab_host.netns, ["ip", "link", "set", host_if, "up"], check=True)
        prefix = subnet["cidr"].split("/")[1]
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "set", "eth0", "address", vport["mac"]],
                    ["ip", "addr", "add", f"{vport['ip']}/{prefix}", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "mtu", "1450", "up"],
                    ["ip", "route", "add", "default", "via", vport["gateway"]]):
            ns_run(netns, cmd, check=True)
        # The userspace datapath never completes offloaded TCP/UDP checksums (see netns.py).
        labnetns.disable_tx_checksum(netns, ["eth0"])
        labnetns.disable_tx_checksum(lab_host.netns, [host_if])
        with HostOVS(lab_host.db_remote) as ovs:
            ovs.add_vport_port("br-int", host_if, vport["id"], name)
            ovs.wait_for_ofport(host_if)
        if wait_up:
            wait_until(lambda: self.client.request("GET", f"/vports/{vport['id']}")["status"] == "up",
                       timeout=15, message=f"vport {name} up")
        return container

    def remove(self, container: Container) -> None:
        try:
            with HostOVS(container.host.db_remote) as ovs:
                ovs.delete_vport_port("br-int", container.host_ifname)
        finally:
            subprocess.run(["ip", "netns", "delete", container.netns], check=False, capture_output=True)
            if container in self.created:
                self.created.remove(container)

    def __enter__(self) -> Containers:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout):
                if stream is not None:
                    stream.close()
        self.procs.clear()
        for container in list(self.created):
            with contextlib.suppress(Exception):
                self.remove(container)
            subprocess.run(["ip", "netns", "delete", container.netns], check=False, capture_output=True)
        self.created.clear()


def dump_flows(host: LabHost) -> list[str]:
    """br-int flows without counters/durations (comparable over time)."""
    out = host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "--no-stats", "dump-flows", "br-int"]).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip() and "reply" not in line)
