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
  following the directory database over its unix socket.

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
from nuage_ryu.directory.client import CannotConnect, DirectoryClient
from nuage_ryu.directory.errors import DirectoryError
from nuage_ryu.lab.lab import Lab, LabHost
from nuage_ryu.lab.outside import FLOATING_IP_POOL
from nuage_ryu.lab.supervise import stop_process, wait_for

PLANE_DIR = "plane"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
OFP_PORT = 6653
DB_PORT = 6641     # the directory database's pssl: listener on the controller node (TLS mode)
API_TLS_PORT = 8443
AGENT_APPS = tuple(ROLE_APPS["vrs"])  # what an operator runs on a host: the agent and its DHCP responder


class ControlPlane:
    """Directory + agents for a lab that is up."""

    def __init__(self, lab: Lab, python: str = sys.executable, tls: bool = True) -> None:
        self.lab = lab
        self.python = python
        self.tls = tls  # TLS everywhere (the default, as on real hosts); False: plain unix sockets and TCP
        self.root = os.path.join(lab.state_dir, PLANE_DIR)
        self.pki_dir = os.path.join(self.root, "pki")
        self.directory_state = os.path.join(self.root, "directory")
        self.api_socket = os.path.join(self.root, "api.sock")
        self.procs: dict[str, subprocess.Popen] = {}

    # -- paths -------------------------------------------------------------------
    @property
    def directory_db(self) -> str:
        """The directory database as agents reach it: TLS over the underlay, or the unix socket."""
        if self.tls:
            return f"ssl:{self.lab.controller_node.underlay_ip}:{DB_PORT}"
        return self.local_directory_db

    @property
    def local_directory_db(self) -> str:
        """The database's unix socket, for tools on the controller machine itself (tests, benches)."""
        return "unix:" + os.path.join(self.directory_state, "directory", "db.sock")

    @property
    def directory_api(self) -> str:
        """The REST API as agents reach it: HTTPS over the underlay, or the unix socket."""
        if self.tls:
            return f"https://{self.lab.controller_node.underlay_ip}:{API_TLS_PORT}"
        return "unix:" + self.api_socket

    def credentials(self, name: str, *alt_names: str) -> str:
        """The [tls] section for identity ``name`` (issued on first use from the plane's CA)."""
        from nuage_ryu import pki

        pki.init_ca(self.pki_dir)
        creds = pki.issue(self.pki_dir, name, alt_names=list(alt_names),
                          out_dir=os.path.join(self.pki_dir, name))
        return f"[tls]\nkey_file = {creds.key_file}\ncert_file = {creds.cert_file}\nca_file = {creds.ca_file}\n"

    @property
    def token_file(self) -> str:
        return os.path.join(self.directory_state, "api-token")

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
            json.dump({name: p.pid for name, p in self.procs.items()}, f)

    def start_directory(self) -> None:
        os.makedirs(self.directory_state, exist_ok=True)
        node = self.lab.controller_node
        pool = f"floating_ip_pool = {FLOATING_IP_POOL}\n"  # the lab's floating IPs (docs/external.md)
        conf = (f"[DEFAULT]\nstate_dir = {self.directory_state}\n"
                f"[directory]\napi_host = 127.0.0.1\napi_port = 8080\napi_socket = {self.api_socket}\n{pool}")
        if self.tls:
            ip = node.underlay_ip
            conf = (f"[DEFAULT]\nstate_dir = {self.directory_state}\n"
                    f"[directory]\napi_host = {ip}\napi_port = {API_TLS_PORT}\napi_socket = {self.api_socket}\n"
                    f"listen = pssl:{DB_PORT}:{ip}\n{pool}") + self.credentials("directory", ip)
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
                f"directory_connection = {self.directory_db}\n"
                f"directory_api = {self.directory_api}\n"
                f"directory_token_file = {self.token_file}\n"
                f"agent_socket = {self.agent_socket(host)}\n"
                + (self.credentials(host.host_name, host.underlay_ip) if self.tls else ""))

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
        lines = [f"[DEFAULT]\nstate_dir = {os.path.join(self.root, 'central')}\n"
                 f"ofp_listen_host = {node.underlay_ip}\nofp_tcp_listen_port = {OFP_PORT}\n",
                 f"[vrs]\ndatapath_type = netdev\ncontroller = tcp:{node.underlay_ip}:{OFP_PORT}\n"
                 f"directory_connection = {self.directory_db}\nagent_socket =\n"]
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
        """Stop agents first, then the directory; remove the plane's files."""
        for name in sorted(self.procs, key=lambda n: n == "directory"):
            self.stop_process(name)
        shutil.rmtree(self.root, ignore_errors=True)
