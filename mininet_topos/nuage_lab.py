"""The nuage-ryu lab topology for Mininet 2.3 (Debian's ``mininet`` package, system Python).

Same shape as ``nuage-lab`` (docs/lab.md): N container hosts and a controller
node on one underlay segment (192.0.2.0/24). Each host runs its **own**
ovsdb-server + ovs-vswitchd inside its namespace with the userspace datapath
(no OVS kernel module needed): ``br-phy`` (standalone) carries the host's
underlay address on its internal port and the host's Mininet link as uplink;
``br-int`` (fail_mode=secure, OpenFlow13-15, controller tcp:127.0.0.1:6653 by
default) has one flow-based VXLAN port. The underlay switch is a Linux bridge
made with ``ip link`` inside a namespace of its own, so neither bridge-utils
nor OVS is needed for it and the root namespace gets no interface.

Usage::

    mn --custom mininet_topos/nuage_lab.py --topo nuage,3 --controller none --test pingall
    mn --custom mininet_topos/nuage_lab.py --topo nuage,2,tcp:192.0.2.2:6653 --controller none

or from Python (what the tests do)::

    net = Mininet(topo=NuageTopo(3), controller=None)
    net.start(); net.pingAll(); net.stop()

This file is loaded by ``mn --custom`` with exec(), under the system Python:
it must only import the standard library and Mininet.
"""

import hashlib
import os
import shutil
import signal
import sys
import time

from mininet.node import Host, Switch
from mininet.topo import Topo

UNDERLAY_PREFIX = "192.0.2."      # RFC 5737 documentation range, as in nuage-lab
UNDERLAY_PREFIXLEN = 24
CONTROLLER_NODE_IP = UNDERLAY_PREFIX + "2"
HOST_IP_BASE = 10                 # host i gets .10+i
DEFAULT_CONTROLLER = "tcp:127.0.0.1:6653"
VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
STOP_TIMEOUT = 5.0
DAEMONS = ("ovs-vswitchd", "ovsdb-server")

# SIOCETHTOOL/ETHTOOL_STXCSUM ('ethtool -K IF tx off'): a kernel sending into a veth
# leaves checksums unfinished, and OVS's userspace datapath reading the peer never
# finishes them, so TCP from that node would be dropped. See docs/lab.md.
_TX_CHECKSUM_OFF = ("import array, fcntl, socket, struct, sys; "
                    "value = array.array('I', [0x17, 0]); "
                    "ifreq = struct.pack('16sP16x', sys.argv[1].encode(), value.buffer_info()[0]); "
                    "sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                    "fcntl.ioctl(sock.fileno(), 0x8946, ifreq)")


def default_state_dir():
    """Where hosts keep their OVS files unless told otherwise: one directory per Mininet run."""
    return os.environ.get("NUAGE_MN_STATE_DIR") or "/tmp/nuage-mn-%d" % os.getpid()


def datapath_id_for(host_name):
    """Stable non-zero 63-bit datapath id; same rule as nuage_ryu.hostovs.host.datapath_id_for."""
    value = int.from_bytes(hashlib.sha256(host_name.encode()).digest()[:8], "big") & ((1 << 63) - 1)
    return value or 1


def disable_tx_checksum(node, ifname):
    """Turn off TX checksum offload of ``ifname`` inside ``node``'s namespace."""
    out = node.cmd(sys.executable, "-S", "-c", '"%s"' % _TX_CHECKSUM_OFF, ifname)
    if out.strip():
        raise RuntimeError("%s: cannot turn off TX checksum offload on %s: %s" % (node, ifname, out.strip()))


def _pid_runs(pid, needle):
    """True if ``pid`` is alive (not a zombie) and its command line contains ``needle``."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            return needle.encode() in cmdline.read()
    except (OSError, IndexError):
        return False


class NuageUnderlay(Switch):
    """The underlay segment: a Linux bridge inside the switch's own namespace."""

    BRIDGE = "ulbr"

    def __init__(self, name, **params):
        params.setdefault("inNamespace", True)
        Switch.__init__(self, name, **params)

    def connected(self):
        "No controller involved: forwarding as soon as the bridge exists."
        return True

    def start(self, _controllers):
        "Create the bridge and enslave every link of this switch."
        out = self.cmd("ip link add name", self.BRIDGE, "type bridge stp_state 0")
        if out.strip():
            raise RuntimeError("%s: cannot create bridge: %s" % (self, out.strip()))
        for intf in self.intfList():
            if self.name in intf.name:
                self.cmd("ip link set", intf, "master", self.BRIDGE, "up")
        self.cmd("ip link set", self.BRIDGE, "up")

    def stop(self, deleteIntfs=True):
        "Remove the bridge (it lives in our namespace, which goes away with the shell)."
        self.cmd("ip link del", self.BRIDGE)
        Switch.stop(self, deleteIntfs)


class NuageControllerNode(Host):
    """The controller node (directory, central controller): a plain host on the underlay."""

    def config(self, **params):
        result = Host.config(self, **params)
        disable_tx_checksum(self, self.defaultIntf().name)
        return result


class NuageHost(Host):
    """A container host running its own Open vSwitch (userspace datapath) in its namespace.

    Parameters (from the topology): ``controllers`` (OpenFlow targets of br-int),
    ``state_dir`` (parent of this host's OVS rundir, ``<state_dir>/<name>``).
    The node's shell exports OVS_RUNDIR, so ``h1 ovs-vsctl show`` works in the CLI.
    """

    def __init__(self, name, controllers=(DEFAULT_CONTROLLER,), state_dir=None, **params):
        self.controllers = list(controllers)
        self.rundir = os.path.join(state_dir or default_state_dir(), name)
        self.underlay_ip = None
        Host.__init__(self, name, **params)

    def config(self, **params):
        "Configure the underlay interface, start OVS, build br-phy and br-int."
        result = Host.config(self, **params)
        uplink = self.defaultIntf().name
        self.underlay_ip = self.IP()
        self.start_ovs()
        dpid = "%016x" % datapath_id_for(self.name)
        vxlan = "options:remote_ip=flow options:key=flow options:local_ip=%s" % self.underlay_ip
        self.vsctl(
            "-- --may-exist add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=standalone",
            "-- --may-exist add-port br-phy", uplink,
            "-- --may-exist add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure",
            "protocols=OpenFlow13,OpenFlow14,OpenFlow15",
            "other-config:datapath-id=%s other-config:disable-in-band=true" % dpid,
            "external-ids:nuage-host=%s" % self.name,
            "-- set-controller br-int", *self.controllers,
            "-- --may-exist add-port br-int vxlan0 -- set interface vxlan0 type=vxlan", vxlan)
        # max_backoff/inactivity_probe/mode on every controller row, as HostOVS does.
        for uuid in self.vsctl("--bare --columns=_uuid list controller").split():
            self.vsctl("set controller", uuid, "connection_mode=out-of-band max_backoff=1000",
                       "inactivity_probe=10000")
        # The tunnel endpoint address moves from the Mininet link to br-phy's internal port.
        prefixlen = self.defaultIntf().prefixLen or UNDERLAY_PREFIXLEN
        self.cmd("ip addr flush dev", uplink)
        self.cmd("ip addr add %s/%s dev br-phy" % (self.underlay_ip, prefixlen))
        self.cmd("ip link set br-phy up")
        return result

    def vsctl(self, *args):
        "Run ovs-vsctl against this host's own database; raise on failure."
        out = self.cmd("ovs-vsctl --timeout=10", *args, "; echo __rc=$?")
        text, _, code = out.rpartition("__rc=")
        if code.strip() != "0":
            raise RuntimeError("%s: ovs-vsctl %s failed: %s" % (self, " ".join(args)[:80], text.strip()))
        return text

    def start_ovs(self):
        "Create a fresh database and start ovsdb-server and ovs-vswitchd (both --detach)."
        for daemon in DAEMONS:
            pid = self._pid_of(daemon)
            if pid is not None and _pid_runs(pid, self.rundir):
                raise RuntimeError("%s: OVS already running in %s (pid %d)" % (self, self.rundir, pid))
        shutil.rmtree(self.rundir, ignore_errors=True)
        os.makedirs(self.rundir)
        self.cmd("export OVS_RUNDIR=%s OVS_LOGDIR=%s OVS_DBDIR=%s" % ((self.rundir,) * 3))
        common = "--detach --no-chdir -vconsole:off -vsyslog:off -vfile:info"
        steps = [
            "ovsdb-tool create %s/conf.db %s" % (self.rundir, VSWITCH_SCHEMA),
            "ovsdb-server %s/conf.db --remote=punix:%s/db.sock --pidfile=%s/ovsdb-server.pid "
            "--log-file=%s/ovsdb-server.log %s" % ((self.rundir,) * 4 + (common,)),
            "ovs-vsctl --no-wait init",
            "ovs-vswitchd unix:%s/db.sock --disable-system --pidfile=%s/ovs-vswitchd.pid "
            "--log-file=%s/ovs-vswitchd.log %s" % ((self.rundir,) * 3 + (common,)),
        ]
        for step in steps:
            out = self.cmd(step, "; echo __rc=$?")
            text, _, code = out.rpartition("__rc=")
            if code.strip() != "0":
                self.stop_ovs()
                raise RuntimeError("%s: '%s' failed: %s" % (self, step.split()[0], text.strip()))

    def _pid_of(self, daemon):
        try:
            with open(os.path.join(self.rundir, daemon + ".pid")) as pidfile:
                return int(pidfile.read().strip())
        except (OSError, ValueError):
            return None

    def ovs_pids(self):
        "Pids of this host's running OVS daemons, by daemon name."
        pids = {}
        for daemon in DAEMONS:
            pid = self._pid_of(daemon)
            if pid is not None and _pid_runs(pid, self.rundir):
                pids[daemon] = pid
        return pids

    def stop_ovs(self):
        "Stop this host's daemons by their pids (TERM, then KILL after a deadline) and drop the rundir."
        for daemon, pid in self.ovs_pids().items():
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + STOP_TIMEOUT
                while time.monotonic() < deadline and _pid_runs(pid, self.rundir):
                    time.sleep(0.02)
                if not _pid_runs(pid, self.rundir):
                    break
            if _pid_runs(pid, self.rundir):
                raise RuntimeError("%s: %s (pid %d) survived SIGKILL" % (self, daemon, pid))
        shutil.rmtree(self.rundir, ignore_errors=True)
        parent = os.path.dirname(self.rundir)
        try:
            os.rmdir(parent)  # the per-run state dir, once the last host is gone
        except OSError:
            pass

    def terminate(self):
        "Stop OVS before the namespace's shell goes away."
        try:
            self.stop_ovs()
        finally:
            Host.terminate(self)


class NuageTopo(Topo):
    """``--topo nuage,N[,CONTROLLER...]``: N OVS hosts and a controller node on one underlay switch."""

    def build(self, n=2, *controllers, state_dir=None):
        n = int(n)
        if not 1 <= n <= 100:
            raise ValueError("nuage topology: number of hosts must be between 1 and 100, not %d" % n)
        underlay = self.addSwitch("ul1", cls=NuageUnderlay)
        ctl = self.addHost("ctl", cls=NuageControllerNode,
                           ip="%s/%d" % (CONTROLLER_NODE_IP, UNDERLAY_PREFIXLEN))
        self.addLink(ctl, underlay)
        state_dir = state_dir or default_state_dir()
        for index in range(1, n + 1):
            host = self.addHost("h%d" % index, cls=NuageHost,
                                ip="%s%d/%d" % (UNDERLAY_PREFIX, HOST_IP_BASE + index, UNDERLAY_PREFIXLEN),
                                controllers=list(controllers) or [DEFAULT_CONTROLLER],
                                state_dir=state_dir)
            self.addLink(host, underlay)


topos = {"nuage": NuageTopo}
hosts = {"nuage": NuageHost, "nuagectl": NuageControllerNode}
switches = {"nuul": NuageUnderlay}
