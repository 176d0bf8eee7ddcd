"""Traffic tools for the external-connectivity tests and bench (docs/external.md): run inside namespaces.

``ECHO_SERVER``: an asyncio TCP server that answers every line with "<line> <peer address>", for
thousands of connections at once. ``CONCURRENT_CLIENT``: opens N connections at once to a server,
sends one line on each, and prints JSON {"ok": replies that came back right, "failed": ..., "seconds"}.

``hand_world``: a lab with the outside world and containers on br-int whose flows are compiled here
(``compile_host`` + ``compile.uplink.compile_uplink``) and pushed with ovs-ofctl: the datapath without an
agent, for the datapath tests and the bench.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from nuage_ryu.hostovs.host import EXTERNAL_PATCH_INT, EXTERNAL_PATCH_PHYS, HostOVS
from nuage_ryu.lab import netns as labnetns
from nuage_ryu.lab.lab import Lab, LabHost
from nuage_ryu.vrs import ofmsg
from nuage_ryu.vrs.compile import compile_host, uplink
from nuage_ryu.vrs.view import Domain, ExternalUplink, Host, HostView, LocalPort, Subnet, VPort

# Thousands of sockets at once: raise the soft descriptor limit to the hard one first.
_FDS = ("import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)\n")

ECHO_SERVER = _FDS + r"""
import asyncio, sys
async def handle(reader, writer):
    peer = writer.get_extra_info("peername")[0]
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line.rstrip(b"\n") + b" " + peer.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]), backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

CONCURRENT_CLIENT = _FDS + r"""
import asyncio, json, sys, time
host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
bind = sys.argv[5] if len(sys.argv) > 5 else None
async def one(i):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(bind, 0) if bind else None), timeout)
        writer.write(b"hello-%d\n" % i)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        writer.close()
        return line.split()[0] == b"hello-%d" % i, line.split()[-1].decode() if line else ""
    except (OSError, asyncio.TimeoutError):
        return False, ""
async def main():
    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(count)))
    seen = sorted({peer for ok, peer in results if ok})
    print(json.dumps({"ok": sum(ok for ok, _ in results), "failed": sum(not ok for ok, _ in results),
                      "seconds": time.monotonic() - started, "peers": seen}))
asyncio.run(main())
"""


def start_echo_server(netns: str, port: int) -> subprocess.Popen:
    """The echo server in ``netns``, started and ready (stop it with ``.kill()``)."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", ECHO_SERVER, str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"echo server in {netns} did not start")
    return proc


def concurrent_connections(netns: str, host: str, port: int, count: int, timeout: float = 10.0) -> dict:
    """Open ``count`` connections at once from ``netns``; the client's JSON summary."""
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", CONCURRENT_CLIENT, host,
                           str(port), str(count), str(timeout)], capture_output=True, text=True,
                          timeout=timeout * 3 + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"client failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


# ---- a lab whose flows are compiled here and pushed by hand (no agent) ------------------------------




@dataclasses.dataclass(frozen=True)
class Spec:
    """A container of a hand-built world: its vport (host = the lab host's short name, h1...)."""

    name: str
    domain: str
    subnet: str
    ip: str
    mac: str
    host: str = "h1"


@dataclasses.dataclass
class HostPorts:
    host: LabHost
    tunnel: int
    patch_int: int
    patch_phys: int
    uplink: int
    mac: str
    ofports: dict


@dataclasses.dataclass
class HandWorld:
    """A lab with the outside world and containers; ``install(domains, subnets, vports, rules)`` compiles
    every host's view and pushes it (br-int replaced, br-phy's steering replaced)."""

    lab: Lab
    specs: dict
    hosts: dict  # short name -> HostPorts
    netns: dict  # container name -> namespace

    def view(self, host: str, domains, subnets, vports, rules=()) -> HostView:
        hp = self.hosts[host]
        name = hp.host.host_name
        by_short = {h: p.host.host_name for h, p in self.hosts.items()}
        vps = [dataclasses.replace(v, host=by_short.get(v.host, v.host)) for v in vports]
        local = [LocalPort(n, port) for n, port in hp.ofports.items()]
        peers = [Host(p.host.host_name, p.host.underlay_ip) for p in self.hosts.values()]
        return HostView.of(name, hp.tunnel, domains, subnets, vps, peers, local, (), rules,
                           ExternalUplink(hp.host.underlay_ip, hp.mac, hp.patch_int))

    def install(self, domains, subnets, vports, rules=()) -> None:
        for short, hp in self.hosts.items():
            v = self.view(short, domains, subnets, vports, rules)
            steering = uplink.compile_uplink(uplink.uplink_view(v, hp.uplink, hp.patch_phys))
            for bridge, flows, verb in (("br-int", compile_host(v), "replace-flows"),
                                        ("br-phy", steering, "add-flows")):
                path = os.path.join(self.lab.state_dir, f"{short}-{bridge}.flows")
                with open(path, "w") as out:
                    out.writelines(ofmsg.to_ofctl(f) + "\n" for f in flows)
                if bridge == "br-phy":  # keep br-phy's NORMAL flow, drop only the previous steering
                    hp.host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "del-flows", bridge,
                                     f"cookie={uplink.UPLINK_COOKIE:#x}/-1"])
                hp.host.ovs.run(["ovs-ofctl", "-O", "OpenFlow14", "--bundle", verb, bridge, path])
            hp.host.ovs.run(["ovs-appctl", "dpctl/flush-conntrack"])

    def vports(self, **overrides) -> list[VPort]:
        """The specs as view VPorts; ``overrides``: name -> dict of VPort fields to change."""
        return [VPort(s.name, s.domain, s.subnet, s.mac, s.ip, s.host, **overrides.get(s.name, {}))
                for s in self.specs.values()]


def domain(did: str, n: int, egress: bool = True, default_action: str = "allow") -> Domain:
    """Domain ``did`` with VNI 1000+n, policy zone n and router MAC 02:<n>:00:00:00:01."""
    return Domain(did, 1000 + n, f"02:{n:02x}:00:00:00:01", default_action, n, egress_nat=egress)


def subnet(sid: str, did: str, cidr: str) -> Subnet:
    return Subnet(sid, did, cidr, cidr.split("/")[0].rsplit(".", 1)[0] + ".1")


@contextlib.contextmanager
def hand_world(specs: list[Spec], n_hosts: int = 1, tag: str = "hxw") -> Iterator[HandWorld]:
    """The lab (with outside world) and the containers of ``specs``, removed afterwards."""
    state = tempfile.mkdtemp(prefix="hx-ext-")
    prefix = f"{tag}{os.getpid() % 100000}"[:12]
    lab = Lab(state, prefix)
    spaces: dict[str, str] = {}
    try:
        lab.up(n_hosts, outside=True)
        hosts = {h.name: h for h in lab.hosts}
        ifnames: dict[str, str] = {}
        for i, s in enumerate(specs):
            lab_host = hosts[s.host]
            ns, host_if = f"{prefix}-{s.name}"[:30], f"hxv{i}"
            spaces[s.name], ifnames[s.name] = ns, host_if
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns],
                           check=True)
            subprocess.run(["ip", "link", "set", host_if, "netns", lab_host.netns], check=True)
            labnetns.ip("link", "set", host_if, "up", netns=lab_host.netns)
            gateway = s.ip.rsplit(".", 1)[0] + ".1"
            for argv in (("link", "set", "lo", "up"), ("link", "set", "eth0", "address", s.mac),
                         ("addr", "add", f"{s.ip}/24", "dev", "eth0"), ("link", "set", "eth0", "mtu", "1450", "up"),
                         ("route", "add", "default", "via", gateway)):
                labnetns.ip(*argv, netns=ns)
            labnetns.disable_tx_checksum(ns, ["eth0"])
            labnetns.disable_tx_checksum(lab_host.netns, [host_if])
            with HostOVS(lab_host.db_remote) as ovs:
                ovs.add_vport_port("br-int", host_if, s.name, s.name)
        ports = {}
        for short, lab_host in hosts.items():
            with HostOVS(lab_host.db_remote) as ovs:
                ofports = {s.name: ovs.wait_for_ofport(ifnames[s.name]) for s in specs if s.host == short}
                ports[short] = HostPorts(lab_host, ovs.wait_for_ofport("vxlan0"),
                                         ovs.wait_for_ofport(EXTERNAL_PATCH_INT),
                                         ovs.wait_for_ofport(EXTERNAL_PATCH_PHYS), ovs.wait_for_ofport("eth0"),
                                         ovs.interface_config("br-phy")["mac_in_use"], ofports)
        yield HandWorld(lab, {s.name: s for s in specs}, ports, spaces)
    finally:
        for ns in spaces.values():
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)
        lab.down()
