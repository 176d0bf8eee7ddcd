"""The lab's control plane: the directory on the controller node, a VRS agent per host.

``ControlPlane(lab)`` starts real processes with the real launcher, exactly as
an operator would on real machines:

* the directory (``nuage-ryu-manager ... nuage_ryu.apps.directory_api``) in the
  controller node's namespace, with its embedded ovsdb-server; the REST API on
  a unix socket (``<plane>/api.sock``), reachable from every namespace, so no
  test traffic ever uses an address of the machine itself;
* one VRS agent per host (``nuage-ryu-manager ...`` with the "vrs" role's apps:
  ``nuage_ryu.apps.vrs_agent`` and its DHCP responder ``nuage_ryu.apps.vrs_dhcp``)
  inside the host's namespace, listening for its br-int on that namespace's
  loopback (the lab's default controller target ``tcp:127.0.0.1:6653``), and
  following the directory database over its unix socket; its attach service holds its
  own host token (``host_token_file``, as ``nuage-ctl host enroll`` issues it), never the
  admin token;
* optionally (``relays=N``) N ovsdb-server relays of the directory database in the
  controller node's namespace, each on a unix socket (``<plane>/relay-K/db.sock``) and, in
  TLS mode, on a host listener (``pssl:`` port 6651+K-1 of the controller node, RBAC role
  nuage-host: a host behind a relay may write only its own rows, as on the primary); the
  agents are then assigned to them round-robin and never talk to the primary;
* optionally (``directory_connection``) the directory on an existing database, e.g.
  a Raft cluster's members (``[directory] connection``), instead of its embedded one.

Processes are started in their own session and stopped by pid. Everything
lives under ``<lab state dir>/plane/`` (config files, logs, the directory's
state), removed by ``stop()``. ``nuage-lab down`` also kills any process left
in the lab's namespaces, so a crashed test leaves nothing behind either.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

from nuage_ryu.config import ROLE_APPS
from nuage_ryu.db.relay import OvsdbRelay, RelayError, wait_relay_connected
from nuage_ryu.directory.client import CannotConnect, DirectoryClient
from nuage_ryu.directory.ctl.host_credentials import token_path
from nuage_ryu.directory.errors import DirectoryError
from nuage_ryu.lab.lab import Lab, LabHost
from nuage_ryu.lab.netns import LabError
from nuage_ryu.lab.outside import FLOATING_IP_POOL
from nuage_ryu.lab.supervise import stop_process, wait_for

PLANE_DIR = "plane"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
OFP_PORT = 6653
DB_PORT = 6641     # the directory database's pssl: listener on the controller node (TLS mode)
RELAY_BASE_PORT = 6651  # relay K's pssl: listener on the controller node is RELAY_BASE_PORT + K - 1 (TLS mode)
API_TLS_PORT = 8443
AGENT_APPS = tuple(ROLE_APPS["vrs"])  # what an operator runs on a host: the agent and its DHCP responder


class ControlPlane:
    """Directory + agents for a lab that is up."""

    def __init__(self, lab: Lab, python: str = sys.executable, tls: bool = True, *, relays: int = 0,
                 directory_connection: str = "") -> None:
        """``relays``: put the agents behind that many ovsdb-server relays (0: on the primary).
        ``directory_connection``: the directory database to use (e.g. a Raft cluster's
        members, reachable from the controller node's namespace); empty: the embedded one."""
        self.lab = lab
        self.python = python
        self.tls = tls  # TLS everywhere (the default, as on real hosts); False: plain unix sockets and TCP
        self.root = os.path.join(lab.state_dir, PLANE_DIR)
        self.pki_dir = os.path.join(self.root, "pki")
        self.directory_state = os.path.join(self.root, "directory")
        self.api_socket = os.path.join(self.root, "api.sock")
        self.procs: dict[str, subprocess.Popen] = {}
        self.n_relays = relays
        self.directory_connection = directory_connection
        self.relays: list[OvsdbRelay] = []

    # -- paths -------------------------------------------------------------------
    @property
    def directory_db(self) -> str:
        """The primary as agents reach it without relays: ``directory_connection`` when given,
        else TLS over the underlay, or the unix socket."""
        if self.directory_connection:
            return self.directory_connection
        if self.tls:
            return f"ssl:{self.lab.controller_node.underlay_ip}:{DB_PORT}"
        return self.local_directory_db

    @property
    def local_directory_db(self) -> str:
        """The primary for tools on the controller machine itself (tests, benches, the relays)."""
        if self.directory_connection:
            return self.directory_connection
        return "unix:" + os.path.join(self.directory_state, "directory", "db.sock")

    def agent_directory(self, host: LabHost) -> str:
        """The directory remote of ``host``'s agent: its relay (round-robin by host), else the primary."""
        if not self.relays:
            return self.directory_db
        return self.relay_remote(self.relays[self.lab.hosts.index(host) % len(self.relays)])

    def relay_remote(self, relay: OvsdbRelay) -> str:
        """How agents reach ``relay``: its host listener over the underlay (TLS), or its unix socket."""
        if self.tls:
            return f"ssl:{self.lab.controller_node.underlay_ip}:{relay.host_remotes[0].split(':')[1]}"
        return relay.remote

    @property
    def directory_api(self) -> str:
        """The REST API as agents reach it: HTTPS over the underlay, or the unix socket."""
        if self.tls:
            return f"https://{self.lab.controller_node.underlay_ip}:{API_TLS_PORT}"
        return "unix:" + self.api_socket

    def credentials(self, name: str, *alt_names: str) -> str:
        """The [tls] section for identity ``name`` (issued on first use from the plane's CA)."""
        creds = self.issue(name, *alt_names)
        return f"[tls]\nkey_file = {creds.key_file}\ncert_file = {creds.cert_file}\nca_file = {creds.ca_file}\n"

    def issue(self, name: str, *alt_names: str):
        """Key and certificate of identity ``name`` from the plane's CA (a ``pki.Credentials``)."""
        from nuage_ryu import pki

        pki.init_ca(self.pki_dir)
        return pki.issue(self.pki_dir, name, alt_names=list(alt_names), out_dir=os.path.join(self.pki_dir, name))

    @property
    def token_file(self) -> str:
        """The admin token: tools on the controller (tests, the demo) use it; agents never do."""
        return os.path.join(self.directory_state, "api-token")

    def host_token_file(self, host: LabHost) -> str:
        """``host``'s own REST token (issued on first use, beside its key and certificate):
        reads the directory, writes only the vports on that host (docs/security.md)."""
        path = token_path(os.path.join(self.pki_dir, host.host_name), host.host_name)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            answer = self.client().post("/tokens", {"host": host.host_name, "name": f"host {host.host_name}"})
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(answer["token"] + "\n")
        return path

    def log_path(self, name: str) -> str:
        return os.path.join(self.root, f"{name}.log")

    def client(self) -> DirectoryClient:
        with open(self.token_file) as f:
            return DirectoryClient("unix:" + self.api_socket, f.read().strip(), timeout=10.0, keep_alive=False)

    # -- processes ---------------------------------------------------------------
    def _spawn(self, name: str, netns: str, conf_text: str, app: str | tuple[str, ...],
               env=None) -> subprocess.Popen:
        conf = os.path.join(self.root, f"{name}.ini")
        with open(conf, "w") as f:
            f.write(conf_text)
        argv = ["ip", "netns", "exec", netns, self.python, "-m", "nuage_ryu.cmd.manager",
                "--config-file", conf, *([app] if isinstance(app, str) else app)]
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env)
        finally:
            log.close()
        self.procs[name] = proc
        self._record()
        return proc

    def _record(self) -> None:
        with open(os.path.join(self.root, "pids.json"), "w") as f:
            json.dump({**{name: p.pid for name, p in self.procs.items()},
                       **{f"relay-{k + 1}": r.pid for k, r in enumerate(self.relays)}}, f)

    def start_directory(self) -> None:
        os.makedirs(self.directory_state, exist_ok=True)
        node = self.lab.controller_node
        pool = f"floating_ip_pool = {FLOATING_IP_POOL}\n"  # the lab's floating IPs (docs/external.md)
        conf = (f"[DEFAULT]\nstate_dir = {self.directory_state}\n"
                f"[directory]\napi_host = 127.0.0.1\napi_port = 8080\napi_socket = {self.api_socket}\n{pool}"
                f"connection = {self.directory_connection}\n")
        if self.tls:
            ip = node.underlay_ip
            # Agents come in on the host listener: RBAC, their certificate is their identity.
            listen = "" if self.directory_connection else f"host_listen = pssl:{DB_PORT}:{ip}\n"
            conf = (f"[DEFAULT]\nstate_dir = {self.directory_state}\n"
                    f"[directory]\napi_host = {ip}\napi_port = {API_TLS_PORT}\napi_socket = {self.api_socket}\n"
                    f"connection = {self.directory_connection}\n{listen}{pool}") + self.credentials("directory", ip)
        proc = self._spawn("directory", node.netns, conf, "nuage_ryu.apps.directory_api")
        log = self.log_path("directory")
        wait_for(lambda: os.path.exists(self.api_socket) and os.path.exists(self.token_file),
              START_TIMEOUT, "the directory API", proc, log)
        wait_for(self._api_answers, START_TIMEOUT, "the directory API to answer", proc, log)

    def _api_answers(self) -> bool:
        try:
            self.client().request("GET", "/hosts")
            return True
        except (DirectoryError, CannotConnect, OSError):
            return False

    def agent_conf(self, host: LabHost) -> str:
        return (f"[DEFAULT]\nstate_dir = {os.path.join(self.root, host.name)}\n"
                f"ofp_listen_host = 127.0.0.1\nofp_tcp_listen_port = {OFP_PORT}\n"
                f"[vrs]\nhost_name = {host.host_name}\ntunnel_ip = {host.underlay_ip}\n"
                f"stats_interval = 1\n"
                f"ovsdb_connection = {host.db_remote}\ndatapath_type = netdev\n"
                f"controller = tcp:127.0.0.1:{OFP_PORT}\n"
                f"directory_connection = {self.agent_directory(host)}\n"
                f"directory_api = {self.directory_api}\n"
                f"directory_token_file = {self.host_token_file(host)}\n"
                f"agent_socket = {self.agent_socket(host)}\n"
                + (self.credentials(host.host_name, host.underlay_ip) if self.tls else ""))

    # -- relays ------------------------------------------------------------------
    def start_relays(self) -> None:
        """Start ``relays`` supervised relays of the primary in the controller node's namespace."""
        node = self.lab.controller_node
        for k in range(len(self.relays), self.n_relays):
            run_dir = os.path.join(self.root, f"relay-{k + 1}")
            # TLS mode: agents come over the underlay on the relay's host listener (pssl:, RBAC
            # role nuage-host, the relay's own certificate); the relay itself follows the primary
            # over its local unix socket(s).
            listen, creds = [], None
            if self.tls:
                listen = [f"pssl:{RELAY_BASE_PORT + k}:{node.underlay_ip}"]
                creds = self.issue(f"relay-{k + 1}", node.underlay_ip)
            relay = OvsdbRelay(self.local_directory_db, os.path.join(run_dir, "db.sock"), run_dir,
                               host_remotes=listen, netns=node.netns, ssl=creds)
            self.relays.append(relay)
            relay.start()
        for relay in self.relays:
            self.wait_relay(relay)
        self._record()

    @staticmethod
    def wait_relay(relay: OvsdbRelay) -> None:
        """Wait until ``relay`` follows the primary (raises LabError)."""
        try:
            wait_relay_connected(relay.remote, START_TIMEOUT)
        except RelayError as exc:
            raise LabError(f"{exc} (log: {relay.log_path})") from None

    def agent_socket(self, host: LabHost) -> str:
        return os.path.join(self.root, host.name, "agent.sock")

    def start_agent(self, host: LabHost, wait: bool = True) -> subprocess.Popen:
        os.makedirs(os.path.join(self.root, host.name), exist_ok=True)
        proc = self._spawn(f"agent-{host.name}", host.netns, self.agent_conf(host), AGENT_APPS)
        if wait:
            self.wait_agent_connected(host, proc)
        return proc

    def wait_agent_connected(self, host: LabHost, proc=None, log: str | None = None) -> None:
        def connected() -> bool:
            out = host.ovs.run(["ovs-vsctl", "--timeout=5", "get", "controller", "br-int", "is_connected"],
                               check=False)
            return out.returncode == 0 and out.stdout.strip() == "true"

        wait_for(connected, START_TIMEOUT, f"agent of {host.name} to connect", proc,
              log or self.log_path(f"agent-{host.name}"))

    def central_agent_conf(self) -> str:
        """One agent on the controller node programming every host's bridge over the underlay."""
        node = self.lab.controller_node
        central_db = self.relays[0].remote if self.relays else self.local_directory_db
        lines = [f"[DEFAULT]\nstate_dir = {os.path.join(self.root, 'central')}\n"
                 f"ofp_listen_host = {node.underlay_ip}\nofp_tcp_listen_port = {OFP_PORT}\n",
                 f"[vrs]\ndatapath_type = netdev\ncontroller = tcp:{node.underlay_ip}:{OFP_PORT}\n"
                 # A central controller runs beside the directory and programs many hosts: it is no
                 # host (the RBAC host role would refuse its writes for them), so it uses the local socket.
                 f"directory_connection = {central_db}\n"
                 f"agent_socket =\n"]
        for host in self.lab.hosts:
            lines.append(f"managed_hosts = {host.host_name} {host.underlay_ip} {host.db_remote}\n")
        if self.tls:
            lines.append(self.credentials("central", node.underlay_ip))
        return "".join(lines)

    def start_central_agent(self) -> subprocess.Popen:
        os.makedirs(os.path.join(self.root, "central"), exist_ok=True)
        proc = self._spawn("agent-central", self.lab.controller_node.netns, self.central_agent_conf(),
                           AGENT_APPS)
        for host in self.lab.hosts:
            self.wait_agent_connected(host, proc, log=self.log_path("agent-central"))
        return proc

    def start(self, central: bool = False) -> ControlPlane:
        """Directory + a VRS agent per host, or (``central``) one agent for all hosts."""
        os.makedirs(self.root, exist_ok=True)
        try:
            self.start_directory()
            self.start_relays()
            if central:
                self.start_central_agent()
                return self
            for host in self.lab.hosts:
                self.start_agent(host, wait=False)
            for host in self.lab.hosts:
                self.wait_agent_connected(host, self.procs[f"agent-{host.name}"])
        except BaseException:
            self.stop()
            raise
        return self

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop one process by pid (SIGTERM, or the given signal); SIGKILL after ``timeout``."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        code = stop_process(proc, sig, timeout)
        self._record()
        return code

    def stop(self) -> None:
        """Stop agents first, then the relays, then the directory; remove the plane's files."""
        for name in [n for n in self.procs if n != "directory"]:
            self.stop_process(name)
        for relay in self.relays:
            relay.stop()
        self.relays.clear()
        self.stop_process("directory")
        shutil.rmtree(self.root, ignore_errors=True)
