"""DHCP with a real client: busybox udhcpc in a namespace gets its directory address from the responder.

The client's veth is a port of a private OVS bridge (userspace datapath, own
netns) whose controller is tests/integration/test_dhcp_app.py under
nuage-ryu-manager: UDP 67 goes to the controller, which answers with
``nuage_ryu.vrs.dhcp``. Then a malformed DHCP packet and a spoofed MAC are sent
from the client namespace: counted, never answered, the app keeps working.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox (udhcpc) not installed")]
HERE = os.path.dirname(os.path.abspath(__file__))
OFP_PORT = 16733
MAC = "02:5e:00:00:00:07"
LEASE = {"ip": "10.77.0.7", "prefixlen": 24, "gateway": "10.77.0.1", "mac": MAC,
         "server_mac": "fe:5e:00:00:00:01", "mtu": 1450, "lease_time": 600, "dns": ["10.77.0.53"]}

SCRIPT = """#!/bin/sh
echo "$1 ip=$ip mask=$mask router=$router mtu=$mtu dns=$dns serverid=$serverid lease=$lease" >> {out}
if [ "$1" = bound ]; then
  ip addr add $ip/$mask dev $interface
  ip link set $interface mtu $mtu
fi
"""


@contextlib.contextmanager
def controller(ovs, tmp_path):
    ovs.run(["ip", "link", "set", "lo", "up"])
    env = dict(os.environ, NUAGE_TEST_DHCP_LEASES=str(tmp_path / "leases.json"),
               NUAGE_TEST_DHCP_STATS=str(tmp_path / "stats.json"))
    argv = ovs.wrap([sys.executable, "-m", "nuage_ryu.cmd.manager", "--state-dir", str(tmp_path),
                     "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(OFP_PORT),
                     os.path.join(HERE, "test_dhcp_app.py")])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def stats(tmp_path) -> dict:
    try:
        with open(tmp_path / "stats.json") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def test_udhcpc_gets_directory_lease(tmp_path):
    with contextlib.ExitStack() as stack:
        ovs = stack.enter_context(private_ovs())
        client = stack.enter_context(namespace(unique_netns_name("nrdh")))
        proc = stack.enter_context(controller(ovs, tmp_path))
        ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure",
                  "protocols=OpenFlow13")
        ovs.vsctl("set-controller", "br0", f"tcp:127.0.0.1:{OFP_PORT}")
        ovs.run(["ip", "link", "add", "nrdhcp0", "type", "veth", "peer", "name", "eth0", "netns", client])
        ovs.run(["ip", "link", "set", "nrdhcp0", "up"])
        ovs.vsctl("add-port", "br0", "nrdhcp0")
        ofport = int(wait_until(lambda: ovs.vsctl("get", "Interface", "nrdhcp0", "ofport").strip()
                                not in ("[]", "-1") and ovs.vsctl("get", "Interface", "nrdhcp0", "ofport"),
                                message="ofport"))
        with open(tmp_path / "leases.json", "w") as f:
            json.dump({str(ofport): dict(LEASE, dns=tuple(LEASE["dns"]))}, f)
        subprocess.run(["ip", "netns", "exec", client, "ip", "link", "set", "eth0", "address", MAC, "up"],
                       check=True)
        wait_until(lambda: ovs.vsctl("get", "controller", "br0", "is_connected").strip() == "true",
                   timeout=20, message="controller connection")
        out = tmp_path / "udhcpc.out"
        script = tmp_path / "udhcpc.sh"
        script.write_text(SCRIPT.format(out=out))
        script.chmod(0o755)
        # -n: exit if no lease, -q: exit after getting one; -t/-T: 10 tries 1 s apart.
        result = subprocess.run(["ip", "netns", "exec", client, "busybox", "udhcpc", "-i", "eth0", "-n", "-q",
                                 "-t", "10", "-T", "1", "-s", str(script), "-O", "mtu"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = out.read_text().splitlines()
        bound = [line for line in lines if line.startswith("bound")]
        assert bound, lines
        fields = dict(kv.split("=", 1) for kv in bound[0].split()[1:])
        assert fields["ip"] == "10.77.0.7" and fields["mask"] == "24" and fields["router"] == "10.77.0.1"
        assert fields["mtu"] == "1450" and fields["dns"] == "10.77.0.53" and fields["serverid"] == "10.77.0.1"
        assert fields["lease"] == "600"
        addr = subprocess.run(["ip", "netns", "exec", client, "ip", "-4", "-o", "addr", "show", "eth0"],
                              capture_output=True, text=True).stdout
        assert "10.77.0.7/24" in addr
        assert stats(tmp_path).get("offers", 0) >= 1 and stats(tmp_path).get("acks", 0) >= 1
        # Garbage to UDP 67 and a DISCOVER from a spoofed MAC: counted, not answered, app alive.
        sender = ("from scapy.all import *; import sys;"
                  "sendp(Ether(src='%s',dst='ff:ff:ff:ff:ff:ff')/IP(src='0.0.0.0',dst='255.255.255.255')"
                  "/UDP(sport=68,dport=67)/Raw(b'\\x01garbage'), iface='eth0', verbose=0);"
                  "sendp(Ether(src='02:66:66:66:66:66',dst='ff:ff:ff:ff:ff:ff')/IP(src='0.0.0.0',"
                  "dst='255.255.255.255')/UDP(sport=68,dport=67)"
                  "/BOOTP(op=1,chaddr=bytes.fromhex('026666666666'))"
                  "/DHCP(options=[('message-type','discover'),'end']), iface='eth0', verbose=0)") % MAC
        subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", sender], check=True, timeout=60)
        wait_until(lambda: stats(tmp_path).get("malformed", 0) >= 1
                   and stats(tmp_path).get("foreign_mac", 0) >= 1,
                   timeout=10, message="malformed and spoofed requests counted")
        assert proc.poll() is None
        # The client renews (REQUEST with ciaddr, unicast-able): still ACKed by the same app.
        before = stats(tmp_path).get("acks", 0)
        result = subprocess.run(["ip", "netns", "exec", client, "busybox", "udhcpc", "-i", "eth0", "-n", "-q",
                                 "-t", "5", "-T", "1", "-s", str(script), "-r", "10.77.0.7"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0
        assert stats(tmp_path)["acks"] > before
