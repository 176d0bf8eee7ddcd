"""A multi-host lab on one machine: simulated hosts in network namespaces, each with its own OVS.

Layout for prefix ``P`` and ``N`` hosts (see docs/lab.md)::

    P-ul    underlay segment: Linux bridge ``ul-br``; one veth per node plugs in here
    P-ctl   controller node: eth0 = 192.0.2.2/24 (directory, central controller)
    P-rtr, P-inet  only with ``outside=True``: a router on the underlay (192.0.2.1, the default
            gateway) and an "internet" server 203.0.113.80 behind it (``nuage_ryu.lab.outside``)
    P-hI    host I: ovsdb-server + ovs-vswitchd (userspace datapath, rundir <state>/hI/),
            br-phy (standalone) = eth0 uplink + internal port with 192.0.2.(10+I)/24,
            br-int (secure, OpenFlow13-15, controller targets) + vxlan0 (remote_ip=flow,
            key=flow, local_ip=underlay IP); patch-ext (br-int) <-> patch-int (br-phy) for
            external connectivity

The OVSDB layer (and with it python-ovs, which pulls in eventlet when that is
installed: ~0.3 s) is imported only by the commands that talk to OVSDB, so that
``exec`` and ``down`` start fast.

Everything created is recorded in ``<state>/lab.json`` before it is created, so
``down`` can undo a lab whose ``up`` crashed half-way. Processes are stopped by
their recorded pids (checked to still be the expected binary); namespaces are
deleted by their recorded names.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import fcntl
import ipaddress
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence

from nuage_ryu.hostovs.process import (
    DAEMONS,
    MAX_RUNDIR_LENGTH,
    REQUIRED_BINARIES,
    OvsError,
    OvsInstance,
    kill_pid,
    missing_binaries,
    pid_alive,
)
from nuage_ryu.lab import netns
from nuage_ryu.lab.netns import LabError
from nuage_ryu.lab.outside import build_outside, outside_netns, plan_outside, route_via_router

__all__ = ["Lab", "LabError", "LabHost", "DEFAULT_STATE_DIR", "DEFAULT_PREFIX"]

DEFAULT_STATE_DIR = "/tmp/nuage-lab"
DEFAULT_PREFIX = "nlab"
DEFAULT_CONTROLLER = "tcp:127.0.0.1:6653"
MAX_HOSTS = 100
BUILD_PARALLELISM = 4  # hosts built at once; more only adds contention on small machines

UNDERLAY_NET = ipaddress.ip_network("192.0.2.0/24")  # RFC 5737 documentation range
CONTROLLER_NODE_IP = "192.0.2.2"
HOST_IP_BASE = 10  # host i gets .10+i

UNDERLAY_BRIDGE = "ul-br"   # the Linux bridge inside P-ul
UPLINK = "eth0"             # each node's underlay interface, inside its own namespace
PHYSICAL_BRIDGE = "br-phy"
INTEGRATION_BRIDGE = "br-int"
TUNNEL_PORT = "vxlan0"
DATAPATH_TYPE = "netdev"

STATE_FILE = "lab.json"
LOCK_FILE = "lab.lock"
PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,11}$")
CONTROLLER_RE = re.compile(
    r"^(?:(?:tcp|ssl):(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}|unix:/\S+)$")

# Quiet namespaces: no IPv6 autoconfiguration chatter on the underlay.
NETNS_SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}

# What a host needs for external connectivity (docs/external.md): br-int hands NATed packets,
# whose source is the host's own underlay address, to the kernel on br-phy, which routes them out.
HOST_EXTERNAL_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                         "net.ipv4.conf.all.send_redirects": "0"}
HOST_BR_PHY_SYSCTLS = {f"net.ipv4.conf.{PHYSICAL_BRIDGE}.accept_local": "1",
                       f"net.ipv4.conf.{PHYSICAL_BRIDGE}.rp_filter": "0",
                       f"net.ipv4.conf.{PHYSICAL_BRIDGE}.send_redirects": "0"}


class _LabBusy(LabError):
    """Another nuage-lab command holds the state dir's lock."""


@dataclasses.dataclass(frozen=True)
class LabHost:
    """One simulated host of the lab."""

    name: str            # short name used on the command line: h1, h2, ...
    netns: str           # network namespace, also the host's name in the directory: <prefix>-h1
    underlay_ip: str     # tunnel endpoint address, on br-phy's internal port
    rundir: str          # this host's OVS rundir (db, sockets, pidfiles, logs)
    datapath_id: int     # br-int's OpenFlow datapath id (datapath_id_for(netns))
    controllers: tuple[str, ...]

    @property
    def host_name(self) -> str:
        """The host's name for the directory and the VRS agent ([vrs] host_name)."""
        return self.netns

    @property
    def db_remote(self) -> str:
        """OVSDB remote of this host's Open_vSwitch database (a unix socket, reachable from anywhere)."""
        return "unix:" + os.path.join(self.rundir, "db.sock")

    @property
    def ovs(self) -> OvsInstance:
        """The host's OVS instance (for vsctl/ofctl/appctl helpers)."""
        return OvsInstance(self.rundir, netns=self.netns)


@dataclasses.dataclass(frozen=True)
class LabNode:
    """The controller node: a namespace on the underlay, nothing else."""

    name: str
    netns: str
    underlay_ip: str


class Lab:
    """A lab under ``state_dir``; ``prefix`` names its namespaces (``<prefix>-h1`` ...).

    When a lab is recorded in ``state_dir``, its recorded prefix wins over the argument.
    """

    def __init__(self, state_dir: str = DEFAULT_STATE_DIR, prefix: str = DEFAULT_PREFIX) -> None:
        if not PREFIX_RE.match(prefix):
            raise LabError(f"invalid prefix {prefix!r}: 1-12 letters, digits or '_', starting with a letter")
        self.state_dir = os.path.abspath(state_dir)
        self.prefix = prefix
        state = self._read_state()
        if state is not None:
            self.prefix = state["prefix"]

    # Paths and recorded state -------------------------------------------------

    @property
    def state_path(self) -> str:
        """Path of the lab's record, ``<state_dir>/lab.json``."""
        return os.path.join(self.state_dir, STATE_FILE)

    def _read_state(self) -> dict | None:
        try:
            with open(self.state_path, encoding="utf-8") as state:
                return json.load(state)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"unreadable lab state {self.state_path}: {exc}") from None

    def _write_state(self, state: dict) -> None:
        # Write-then-rename: a crash never leaves a truncated record behind.
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(state, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down on one state dir (a second concurrent command fails at once)."""
        os.makedirs(self.state_dir, exist_ok=True)
        lock_path = os.path.join(self.state_dir, LOCK_FILE)
        with open(lock_path, "w", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _LabBusy(f"another nuage-lab command is working on {self.state_dir}") from None
            yield

    @property
    def is_recorded(self) -> bool:
        """True when a lab (complete or not) is recorded in the state dir."""
        return os.path.exists(self.state_path)

    def _state(self) -> dict:
        state = self._read_state()
        if state is None:
            raise LabError(f"no lab in {self.state_dir} (run 'nuage-lab up' first)")
        return state

    @property
    def hosts(self) -> list[LabHost]:
        """The lab's hosts, in order (h1, h2, ...)."""
        return [self._host_from(h, self._state()) for h in self._state()["hosts"]]

    @property
    def controller_node(self) -> LabNode:
        """The controller node (its namespace and underlay address)."""
        node = self._state()["controller_node"]
        return LabNode(name=node["name"], netns=node["netns"], underlay_ip=node["ip"])

    @property
    def outside(self) -> dict | None:
        """The outside world (router and internet nodes, see ``nuage_ryu.lab.outside``), None if not built."""
        return self._state().get("outside")

    @property
    def internet_ip(self) -> str:
        """Address of the lab's outside server (LabError when the lab has no outside world)."""
        if not self.outside:
            raise LabError("this lab has no outside world (nuage-lab up --outside)")
        return self.outside["internet"]["ip"]

    @property
    def underlay_netns(self) -> str:
        """Name of the namespace holding the underlay bridge."""
        return self._state()["underlay"]["netns"]

    @staticmethod
    def _host_from(record: dict, state: dict) -> LabHost:
        return LabHost(name=record["name"], netns=record["netns"], underlay_ip=record["underlay_ip"],
                       rundir=record["rundir"], datapath_id=record["datapath_id"],
                       controllers=tuple(state["controllers"]))

    def host(self, name: str) -> LabHost:
        """A host by short name (``h1``) or namespace name (``nlab-h1``)."""
        for lab_host in self.hosts:
            if name in (lab_host.name, lab_host.netns):
                return lab_host
        known = ", ".join(h.name for h in self.hosts)
        raise LabError(f"unknown host {name!r} (this lab has: {known}, ctl)")

    def node_netns(self, name: str) -> str:
        """The namespace of a host, of the controller node (``ctl``) or of an outside node (``rtr``, ``inet``)."""
        ctl = self.controller_node
        if name in (ctl.name, ctl.netns):
            return ctl.netns
        for node in (self.outside or {}).get("router"), (self.outside or {}).get("internet"):
            if node and name in (node["name"], node["netns"]):
                return node["netns"]
        return self.host(name).netns

    # up ----------------------------------------------------------------------------

    def plan(self, n_hosts: int, controllers: Sequence[str] | None = None, outside: bool = False) -> dict:
        """The lab.json record for a lab of ``n_hosts`` (validates the arguments)."""
        if isinstance(n_hosts, bool) or not isinstance(n_hosts, int) or not 1 <= n_hosts <= MAX_HOSTS:
            raise LabError(f"number of hosts must be between 1 and {MAX_HOSTS}, not {n_hosts!r}")
        controllers = list(controllers or [DEFAULT_CONTROLLER])
        for target in controllers:
            if not CONTROLLER_RE.match(target):
                raise LabError(f"invalid controller target {target!r} (expected tcp:IP:PORT, ssl:IP:PORT "
                               "or unix:PATH)")
        from nuage_ryu.hostovs.host import datapath_id_for

        longest = os.path.join(self.state_dir, f"h{n_hosts}")
        if len(longest) > MAX_RUNDIR_LENGTH:
            raise LabError(f"state dir path too long: {self.state_dir} (host directories must stay within "
                           f"{MAX_RUNDIR_LENGTH} characters for OVS's unix sockets)")
        hosts = []
        for index in range(1, n_hosts + 1):
            name = f"h{index}"
            ns = f"{self.prefix}-{name}"
            hosts.append({
                "name": name,
                "netns": ns,
                "underlay_ip": str(UNDERLAY_NET.network_address + HOST_IP_BASE + index),
                "rundir": os.path.join(self.state_dir, name),
                "datapath_id": datapath_id_for(ns),
                "pids": {},
            })
        return {
            "version": 1,
            "prefix": self.prefix,
            "state_dir": self.state_dir,
            "status": "creating",
            "owner_pid": os.getpid(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "controllers": controllers,
            "underlay": {"netns": f"{self.prefix}-ul", "bridge": UNDERLAY_BRIDGE,
                         "subnet": str(UNDERLAY_NET)},
            "controller_node": {"name": "ctl", "netns": f"{self.prefix}-ctl", "ip": CONTROLLER_NODE_IP},
            "hosts": hosts,
            "outside": plan_outside(self.prefix) if outside else None,
        }

    def up(self, n_hosts: int, controllers: Sequence[str] | None = None, outside: bool = False) -> Lab:
        """Build the lab (``outside``: also a router and an internet server). On any failure
        everything created so far is removed again."""
        try:
            return self._up(n_hosts, controllers, outside)
        except _LabBusy:
            raise  # the lock and the state dir belong to the other command
        except BaseException:
            if not self.is_recorded:
                self._forget_state_dir()
            raise

    def _up(self, n_hosts: int, controllers: Sequence[str] | None, outside: bool) -> Lab:
        state = self.plan(n_hosts, controllers, outside)
        missing = missing_binaries((*REQUIRED_BINARIES, "ip"))
        if missing:
            raise LabError(f"required binaries not found on PATH: {', '.join(missing)} "
                           "(install openvswitch-switch and iproute2)")
        if os.geteuid() != 0:
            raise LabError("nuage-lab needs root (network namespaces and veth pairs)")
        with self._locked():
            existing = self._read_state()
            if existing is not None:
                raise LabError(f"a lab is already recorded in {self.state_dir} (prefix {existing['prefix']}, "
                               f"status {existing['status']}); run 'nuage-lab down --state-dir "
                               f"{self.state_dir}' first")
            names = [state["underlay"]["netns"], state["controller_node"]["netns"],
                     *(h["netns"] for h in state["hosts"]), *outside_netns(state.get("outside"))]
            taken = [name for name in names if netns.exists(name)]
            if taken:
                raise LabError(f"network namespace {taken[0]} already exists and is not part of a lab in "
                               f"{self.state_dir}; choose another --prefix")
            self._write_state(state)
            try:
                self._build(state)
            except BaseException:
                # Undo what exists; the record is the list of what to remove.
                self._teardown(state)
                raise
            state["status"] = "up"
            self._write_state(state)
        return self

    def _build(self, state: dict) -> None:
        underlay = state["underlay"]["netns"]
        netns.add(underlay)
        netns.set_sysctl(underlay, NETNS_SYSCTLS)
        netns.ip("link", "add", UNDERLAY_BRIDGE, "type", "bridge", "stp_state", "0", netns=underlay)
        netns.ip("link", "set", UNDERLAY_BRIDGE, "up", netns=underlay)

        ctl = state["controller_node"]
        self._plug_node(underlay, ctl["netns"], ctl["name"])
        netns.ip("addr", "add", f"{ctl['ip']}/{UNDERLAY_NET.prefixlen}", "dev", UPLINK, netns=ctl["netns"])
        world = state.get("outside")
        if world:
            build_outside(world, UNDERLAY_NET.prefixlen,
                          lambda ns, port: self._plug_node(underlay, ns, port), NETNS_SYSCTLS)
            route_via_router(ctl["netns"], world, UPLINK)

        # Hosts are independent and their build is mostly waiting on subprocesses
        # and daemons: build them side by side. Every host records its pids in
        # lab.json as soon as its daemons run.
        state_lock = threading.Lock()

        def build(record: dict) -> None:
            try:
                self._build_host(state, record)
            finally:
                with state_lock:
                    self._write_state(state)

        with concurrent.futures.ThreadPoolExecutor(max_workers=BUILD_PARALLELISM) as pool:
            futures = [pool.submit(build, record) for record in state["hosts"]]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

        self._prime_underlay(state)

    def _plug_node(self, underlay: str, node_netns: str, port: str) -> None:
        """Create ``node_netns`` with an ``eth0`` whose peer ``port`` sits on the underlay bridge."""
        netns.add(node_netns)
        netns.set_sysctl(node_netns, NETNS_SYSCTLS)
        netns.ip("link", "add", port, "type", "veth", "peer", "name", UPLINK, "netns", node_netns,
                 netns=underlay)
        netns.ip("link", "set", port, "master", UNDERLAY_BRIDGE, "up", netns=underlay)
        netns.ip("link", "set", UPLINK, "up", netns=node_netns)
        # Without this, TCP from this node dies in the receiving host's userspace datapath.
        netns.disable_tx_checksum(node_netns, [UPLINK])

    def _build_host(self, state: dict, record: dict) -> None:
        from nuage_ryu.hostovs.host import HostOVS

        lab_host = self._host_from(record, state)
        self._plug_node(state["underlay"]["netns"], lab_host.netns, lab_host.name)
        instance = lab_host.ovs
        try:
            instance.start(vswitchd=True)
        finally:
            record["pids"] = instance.pids()
        with HostOVS(lab_host.db_remote, timeout=10) as ovsdb:
            ovsdb.ensure_physical_bridge(PHYSICAL_BRIDGE, DATAPATH_TYPE, uplink=UPLINK)
            ovsdb.ensure_integration_bridge(INTEGRATION_BRIDGE, DATAPATH_TYPE, list(lab_host.controllers),
                                            lab_host.datapath_id,
                                            external_ids={"nuage-host": lab_host.host_name})
            ovsdb.ensure_tunnel_port(INTEGRATION_BRIDGE, lab_host.underlay_ip, name=TUNNEL_PORT)
            ovsdb.ensure_external_patch(INTEGRATION_BRIDGE, PHYSICAL_BRIDGE)  # docs/external.md
            # br-phy's internal port must exist as a device before it can carry the address.
            ovsdb.wait_for_ofport(PHYSICAL_BRIDGE, timeout=10)
            netns.ip("addr", "replace", f"{lab_host.underlay_ip}/{UNDERLAY_NET.prefixlen}",
                     "dev", PHYSICAL_BRIDGE, netns=lab_host.netns)
            netns.ip("link", "set", PHYSICAL_BRIDGE, "up", netns=lab_host.netns)
            ovsdb.wait_for_ofport(TUNNEL_PORT, timeout=10)
            ovsdb.wait_for_ofport(UPLINK, timeout=10)
        netns.set_sysctl(lab_host.netns, {**HOST_EXTERNAL_SYSCTLS, **HOST_BR_PHY_SYSCTLS})
        world = state.get("outside")
        if world:
            route_via_router(lab_host.netns, world, PHYSICAL_BRIDGE)

    def _prime_underlay(self, state: dict) -> None:
        """Check the underlay end to end and fill the tunnel neighbour caches.

        Every host pings the controller node and (in small labs) every other
        host. Besides proving the wiring, this lets OVS snoop the ARP replies,
        so the first VXLAN packet to a peer is not dropped for a missing
        neighbour entry.
        """
        ctl_ip = state["controller_node"]["ip"]
        hosts = state["hosts"]
        world = state.get("outside")
        for record in hosts:
            targets = [ctl_ip]
            if world:
                targets.append(world["internet"]["ip"])  # through the router: routes both ways
            if len(hosts) <= 8:
                targets += [peer["underlay_ip"] for peer in hosts if peer is not record]
            for target in targets:
                self._ping(record["netns"], target)

    @staticmethod
    def _ping(ns: str, target: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = netns.run_in(ns, ["ping", "-c", "1", "-W", "1", "-q", target])
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LabError(f"underlay check failed: {ns} cannot reach {target}")
            time.sleep(0.1)  # an immediate failure (no route yet) must not spin

    # down --------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Remove everything the recorded lab created; safe to run twice. Returns what was removed."""
        with self._locked():
            state = self._read_state()
            removed = self._teardown(state) if state is not None else []
        self._forget_state_dir()
        return removed

    def _forget_state_dir(self) -> None:
        """Remove the lock file, and the state dir if nothing else lives there."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.state_dir, LOCK_FILE))
        with contextlib.suppress(OSError):
            os.rmdir(self.state_dir)

    def _teardown(self, state: dict) -> list[str]:
        removed = []
        hosts = state.get("hosts", [])
        for record in hosts:
            instance = OvsInstance(record["rundir"], netns=record["netns"])
            alive = instance.pids()
            instance.stop()
            # Pids recorded in lab.json cover a pidfile lost in a crash; the rundir in
            # the command line proves the pid is still ours before we signal it.
            for daemon, pid in record.get("pids", {}).items():
                if daemon in DAEMONS and _runs_with(pid, daemon, record["rundir"]):
                    kill_pid(pid, daemon)
                    alive[daemon] = pid
            removed += [f"process {daemon} {pid} ({record['name']})" for daemon, pid in sorted(alive.items())]
        names = [*(h["netns"] for h in hosts), state["controller_node"]["netns"],
                 *outside_netns(state.get("outside")), state["underlay"]["netns"]]
        # Anything still running in the lab's namespaces was started there for the lab
        # (agents, test programs via 'nuage-lab exec'); it would keep the namespace alive.
        for pid, command in sorted(netns.processes_in(names).items()):
            with contextlib.suppress(OvsError):
                kill_pid(pid)
            removed.append(f"process {command} {pid} (in lab namespace)")
        for name in names:
            if netns.delete(name):
                removed.append(f"netns {name}")
        for record in hosts:
            rundir = record["rundir"]
            # Only directories inside the state dir, named as recorded, are ever removed.
            if os.path.dirname(os.path.abspath(rundir)) == self.state_dir and os.path.isdir(rundir):
                shutil.rmtree(rundir, ignore_errors=True)
                removed.append(f"dir {rundir}")
        for leftover in (self.state_path, self.state_path + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        return removed

    # status / exec -------------------------------------------------------------------

    def status(self) -> dict:
        """What the lab looks like now: namespaces, processes, bridges and ports (plain data)."""
        from nuage_ryu.hostovs.host import format_datapath_id

        state = self._state()
        report = {
            "state_dir": self.state_dir,
            "prefix": state["prefix"],
            "status": state["status"],
            "created": state.get("created"),
            "controllers": state["controllers"],
            "underlay": {**state["underlay"], "exists": netns.exists(state["underlay"]["netns"])},
            "controller_node": {**state["controller_node"],
                                "exists": netns.exists(state["controller_node"]["netns"])},
            "hosts": [],
        }
        world = state.get("outside")
        if world:
            report["outside"] = {**world, "exists": all(netns.exists(n) for n in outside_netns(world))}
        for record in state["hosts"]:
            lab_host = self._host_from(record, state)
            pids = lab_host.ovs.pids()
            entry = {
                "name": lab_host.name,
                "netns": lab_host.netns,
                "netns_exists": netns.exists(lab_host.netns),
                "underlay_ip": lab_host.underlay_ip,
                "datapath_id": format_datapath_id(lab_host.datapath_id),
                "rundir": lab_host.rundir,
                "db_remote": lab_host.db_remote,
                "processes": {daemon: {"pid": pids.get(daemon, record.get("pids", {}).get(daemon)),
                                       "alive": daemon in pids} for daemon in DAEMONS},
                "bridges": {},
            }
            if "ovsdb-server" in pids:
                entry["bridges"] = _bridges_of(lab_host)
            report["hosts"].append(entry)
        return report

    def env_for(self, name: str) -> dict[str, str]:
        """Environment for commands run on a node: OVS tools point at the host's own OVS."""
        if self.node_netns(name) not in {h.netns for h in self.hosts}:
            env = dict(os.environ)
        else:
            env = self.host(name).ovs.env
        env["NUAGE_LAB_NODE"] = name
        return env

    def exec(self, host: str, argv: Sequence[str], check: bool = False, capture: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``argv`` in a node's namespace (``h1``..., or ``ctl``) with OVS_RUNDIR etc. set."""
        if not argv:
            raise LabError("no command given")
        return netns.run_in(self.node_netns(host), list(argv), env=self.env_for(host), check=check,
                            capture=capture, timeout=timeout)


def _runs_with(pid: int, binary: str, rundir: str) -> bool:
    """True if ``pid`` is ``binary`` started with an argument under ``rundir``."""
    if not pid_alive(pid, binary):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return rundir.encode() in cmdline.read()
    except OSError:
        return False


def _bridges_of(lab_host: LabHost) -> dict:
    from nuage_ryu.hostovs.host import HostOVS, HostOVSError

    try:
        with HostOVS(lab_host.db_remote, timeout=10) as ovsdb:  # a loaded machine answers slowly
            bridges = {}
            for name in (PHYSICAL_BRIDGE, INTEGRATION_BRIDGE):
                try:
                    config = ovsdb.bridge_config(name)
                except HostOVSError:
                    continue
                config["ports"] = {port: (ovsdb.interface_config(port) or {}).get("ofport")
                                   for port in config["ports"]}
                bridges[name] = config
            if INTEGRATION_BRIDGE in bridges:
                tunnel = ovsdb.interface_config(TUNNEL_PORT)
                if tunnel is not None:
                    bridges[INTEGRATION_BRIDGE]["tunnel"] = tunnel["options"]
                bridges[INTEGRATION_BRIDGE]["vports"] = [
                    {"ifname": p.ifname, "ofport": p.ofport, "vport_id": p.vport_id,
                     "container_id": p.container_id}
                    for p in ovsdb.list_vport_ports(INTEGRATION_BRIDGE)]
            return bridges
    except HostOVSError as exc:
        return {"error": str(exc)}
