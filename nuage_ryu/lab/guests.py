"""Lab stand-ins for what plugs into a host besides containers: a hypervisor's VM and a ToR switch.

* ``plug_vm``: what a hypervisor does for a VM whose vport the operator created
  (type ``vm``): a veth, one end in the VM's namespace with the vport's MAC and no
  address (the VM asks by DHCP), the other end on br-int with the vport id in
  external_ids.
* ``add_tor`` / ``plug_server``: a top-of-rack switch trunked to a plain br-int
  port (the *gateway port*) and bare-metal servers on its VLAN access ports. The
  ToR is an OVS bridge of the host's own OVS (this kernel has no 802.1Q module for
  VLAN sub-interfaces); br-int sees exactly the tagged frames a real trunk carries.
* ``udhcpc``: an unmodified DHCP client (busybox) in a namespace; returns its lease.

Names are chosen by the caller so that the caller can record and remove them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass

from nuage_ryu.hostovs.host import HostOVS
from nuage_ryu.lab import netns as labnetns
from nuage_ryu.lab.lab import LabHost

# udhcpc calls its script with "deconfig", then "bound" and the lease in the environment.
DHCP_SCRIPT = """#!/bin/sh
echo "$1 ip=$ip mask=$mask router=$router mtu=$mtu serverid=$serverid" >> {out}
if [ "$1" = bound ]; then
  ip addr add $ip/$mask dev $interface
  ip link set $interface mtu $mtu
  ip route replace default via $router dev $interface
fi
"""


def _ns(netns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=True)


def veth_into_host(netns: str, host: LabHost, host_if: str) -> None:
    """A veth: ``eth0`` in ``netns`` (created by the caller), ``host_if`` up in the host's namespace.

    TX checksum offload goes off on both ends: the userspace datapath never completes checksums.
    """
    subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns],
                   check=True, capture_output=True)
    subprocess.run(["ip", "link", "set", host_if, "netns", host.netns], check=True, capture_output=True)
    _ns(host.netns, "ip", "link", "set", host_if, "up")
    labnetns.disable_tx_checksum(host.netns, [host_if])
    _ns(netns, "ip", "link", "set", "lo", "up")
    labnetns.disable_tx_checksum(netns, ["eth0"])


def plug_vm(host: LabHost, netns: str, host_if: str, vport: dict, bridge: str = "br-int") -> None:
    """Plug a VM (namespace ``netns``) into ``bridge`` as its hypervisor would."""
    veth_into_host(netns, host, host_if)
    _ns(netns, "ip", "link", "set", "eth0", "address", vport["mac"], "up")
    with HostOVS(host.db_remote) as ovs:
        ovs.add_vport_port(bridge, host_if, vport["id"], vport.get("name", ""))
        ovs.wait_for_ofport(host_if)


@dataclass(frozen=True)
class TopOfRack:
    host: LabHost
    bridge: str  # the ToR's OVS bridge
    gateway_port: str  # its trunk's end on br-int: what bare-metal vports name in external_ids
    trunk: str  # the trunk's end on the ToR


def add_tor(host: LabHost, bridge: str, gateway_port: str, trunk: str) -> TopOfRack:
    """A ToR switch on ``host`` trunked to br-int's gateway port ``gateway_port``."""
    _ns(host.netns, "ip", "link", "add", gateway_port, "type", "veth", "peer", "name", trunk)
    for ifname in (gateway_port, trunk):
        _ns(host.netns, "ip", "link", "set", ifname, "up")
    host.ovs.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
                   "--", "add-port", bridge, trunk, "--", "add-port", "br-int", gateway_port)
    return TopOfRack(host, bridge, gateway_port, trunk)


def remove_tor(tor: TopOfRack) -> None:
    tor.host.ovs.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-port", "br-int", tor.gateway_port,
                      "--", "--if-exists", "del-br", tor.bridge], check=False)
    subprocess.run(["ip", "netns", "exec", tor.host.netns, "ip", "link", "del", tor.gateway_port],
                   capture_output=True)


def plug_server(tor: TopOfRack, netns: str, access_if: str, vlan: int | None, mac: str | None) -> None:
    """A bare-metal server (namespace ``netns``) on an access port of ``tor`` in ``vlan``."""
    veth_into_host(netns, tor.host, access_if)
    tor.host.ovs.vsctl("add-port", tor.bridge, access_if, *([f"tag={vlan}"] if vlan is not None else []))
    if mac:
        _ns(netns, "ip", "link", "set", "eth0", "address", mac)
    _ns(netns, "ip", "link", "set", "eth0", "up")


def udhcpc(netns: str, ifname: str = "eth0", tries: int = 10) -> dict:
    """Run busybox udhcpc on ``ifname`` in ``netns`` until bound; the lease it was given.

    Raises RuntimeError when no lease came (udhcpc -n). The lease dict has ip, mask, router,
    mtu, serverid and ``seconds`` (time to the lease).
    """
    with tempfile.TemporaryDirectory(prefix="nr-dhcp-") as tmp:
        out = os.path.join(tmp, "lease")
        script = os.path.join(tmp, "script.sh")
        with open(script, "w") as f:
            f.write(DHCP_SCRIPT.format(out=out))
        os.chmod(script, 0o755)
        start = time.monotonic()
        # -n: fail without a lease, -q: exit once bound, -t/-T: tries 1 s apart, -O mtu: ask for option 26
        proc = subprocess.run(["ip", "netns", "exec", netns, "busybox", "udhcpc", "-i", ifname, "-n", "-q",
                               "-t", str(tries), "-T", "1", "-s", script, "-O", "mtu"],
                              capture_output=True, text=True, timeout=tries + 30)
        seconds = time.monotonic() - start
        bound = []
        if os.path.exists(out):
            with open(out) as f:
                bound = [line for line in f.read().splitlines() if line.startswith("bound")]
        if proc.returncode != 0 or not bound:
            raise RuntimeError(f"udhcpc in {netns} got no lease: {(proc.stdout + proc.stderr).strip()[-300:]}")
        lease = dict(kv.split("=", 1) for kv in bound[-1].split()[1:])
        lease["seconds"] = f"{seconds:.3f}"
        return lease
