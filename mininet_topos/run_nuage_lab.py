#!/usr/bin/python3
"""Run the nuage lab topology through the Mininet API, then stop it cleanly.

    sudo /usr/bin/python3 mininet_topos/run_nuage_lab.py --hosts 3            # Mininet CLI
    sudo /usr/bin/python3 mininet_topos/run_nuage_lab.py --hosts 3 --check    # checks, JSON, exit

Unlike ``mn``, a failure here never runs Mininet's global cleanup (``mn -c``
kills every controller and OVS-looking process on the machine); everything is
stopped through ``net.stop()``, and each host stops its own OVS by pid.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mininet.cli import CLI  # noqa: E402
from mininet.log import setLogLevel  # noqa: E402
from mininet.net import Mininet  # noqa: E402
from nuage_lab import NuageHost, NuageTopo, default_state_dir  # noqa: E402


class NuageNet(Mininet):
    """Mininet that records its node shells' pids before configuring anything.

    The record (``<state_dir>/mininet-pids.json``) lets whoever started us clean
    up by pid even if this process is killed.
    """

    def __init__(self, *args, pids_file=None, **kwargs):
        self.pids_file = pids_file
        Mininet.__init__(self, *args, **kwargs)

    def configHosts(self):
        if self.pids_file:
            pids = {node.name: node.pid for node in self.hosts + self.switches}
            with open(self.pids_file, "w") as out:
                json.dump(pids, out)
        Mininet.configHosts(self)


def host_report(host):
    """What a host's OVS looks like, read through its own ovs-vsctl."""
    def get(*args):
        return host.vsctl("get", *args).strip().strip('"')

    return {
        "ovs_pids": host.ovs_pids(),
        "br_int": {
            "fail_mode": get("bridge br-int fail_mode"),
            "datapath_type": get("bridge br-int datapath_type"),
            "protocols": get("bridge br-int protocols"),
            "datapath_id": get("bridge br-int datapath_id"),
            "controllers": host.vsctl("get-controller br-int").split(),
        },
        "vxlan_options": get("interface vxlan0 options"),
        "br_phy": {
            "fail_mode": get("bridge br-phy fail_mode"),
            "ports": host.vsctl("list-ports br-phy").split(),
        },
        "br_phy_addr": host.cmd("ip -o -4 addr show dev br-phy").split()[3:4],
    }


def check(net, timeout):
    """All nodes ping each other over the underlay (polled until a deadline) and OVS is configured."""
    deadline = time.monotonic() + timeout
    loss = net.pingAll(timeout="1")
    while loss > 0 and time.monotonic() < deadline:
        loss = net.pingAll(timeout="1")
    return {
        "ping_loss": loss,
        "hosts": {h.name: host_report(h) for h in net.hosts if isinstance(h, NuageHost)},
        "node_pids": {node.name: node.pid for node in net.hosts + net.switches},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2, help="number of OVS hosts (default 2)")
    parser.add_argument("--controller", action="append", default=[],
                        help="br-int controller target (repeatable; default tcp:127.0.0.1:6653)")
    parser.add_argument("--state-dir", default=None, help="parent of the hosts' OVS rundirs")
    parser.add_argument("--check", action="store_true", help="run the checks, print JSON and exit")
    parser.add_argument("--timeout", type=float, default=30, help="deadline for the ping check")
    args = parser.parse_args()
    if not 1 <= args.hosts <= 100:
        parser.error("--hosts must be between 1 and 100")
    if os.geteuid() != 0:
        parser.error("Mininet needs root")
    setLogLevel("warning")
    # Mininet.init() would retune root-namespace sysctls (fixLimits); four nodes do not need that.
    Mininet.inited = True
    state_dir = os.path.abspath(args.state_dir or default_state_dir())
    os.makedirs(state_dir, exist_ok=True)
    net = NuageNet(topo=NuageTopo(args.hosts, *args.controller, state_dir=state_dir), controller=None,
                   build=False, pids_file=os.path.join(state_dir, "mininet-pids.json"))
    code = 0
    try:
        net.build()
        net.start()
        if args.check:
            report = check(net, args.timeout)
            print(json.dumps(report, sort_keys=True))
            code = 0 if report["ping_loss"] == 0 else 1
        else:
            CLI(net)
    finally:
        net.stop()
        try:
            os.unlink(os.path.join(state_dir, "mininet-pids.json"))
            os.rmdir(state_dir)
        except OSError:
            pass
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, ValueError, OSError) as exc:
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        print("run_nuage_lab: error: %s" % message, file=sys.stderr)
        sys.exit(1)
