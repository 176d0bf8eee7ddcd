#!/usr/bin/python3
"""End to end on the Mininet topology: directory, VRS agents, nuage-cni, real traffic, all in a sandbox.

    sudo /usr/bin/python3 mininet_topos/nuage_e2e.py [--hosts 2] [--bin-dir .venv/bin]

Prints one JSON report on stdout (exit status 0 when every check passed, 1 otherwise).

The run re-executes itself inside fresh PID, network and mount namespaces with
a private ``/run`` (``unshare --kill-child``): the Mininet nodes,
their OVS daemons, the directory, the agents and the containers all live in
the sandbox. Everything is stopped by pid and checked gone before the report
is written; should this process die instead, the kernel ends whatever is left
in the sandbox with it (it is PID 1 there), and killing the ``unshare`` process
from outside kills it. Mininet's global cleanup (``mn -c``) is never run.

Inside, on ``NuageTopo(N)`` (mininet_topos/nuage_lab.py):

* the directory (``nuage-ryu-manager nuage_ryu.apps.directory_api``, embedded
  store) in the ``ctl`` node's namespace, REST API on a unix socket only;
* a VRS agent (``nuage-ryu-manager nuage_ryu.apps.vrs_agent``) in each host's
  namespace, configured as nuage_ryu/lab/plane.py does, listening for br-int on
  that namespace's 127.0.0.1:6653;
* enterprise/domain (default allow)/zone/subnet created through the REST API;
* two containers (``ip netns`` namespaces) on h1 and h2 attached by the real
  ``nuage-cni`` through each host's agent socket; ping and a TCP exchange across
  the hosts; CNI DEL of both; teardown; leftover checks.

This file runs under the system Python (Debian's Mininet): standard library and
Mininet only. The nuage-ryu programs come from ``--bin-dir`` (the venv).
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, REPO)  # the stdlib-only modules of nuage_ryu: the directory client, process supervision

from mininet.log import setLogLevel  # noqa: E402
from mininet.net import Mininet  # noqa: E402
from nuage_lab import NuageHost, NuageTopo  # noqa: E402

from nuage_ryu.directory.client import CannotConnect, DirectoryClient  # noqa: E402
from nuage_ryu.directory.errors import DirectoryError  # noqa: E402
from nuage_ryu.lab import supervise  # noqa: E402

SANDBOX_FLAG = "--in-sandbox"
OFP_PORT = 6653
SUBNET_CIDR = "10.77.1.0/24"
SUBNET_GATEWAY = "10.77.1.1"
TCP_PORT = 5001
STOP_TIMEOUT = 10.0
POLL = 0.05
STEPS = ("mininet_up", "directory_up", "agents_up", "objects_created", "containers_attached", "traffic_ok",
         "containers_detached")

# Echo server: prints "ready" once listening, echoes one message per connection.
ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        c.sendall(c.recv(1024))
    except OSError:
        pass
    c.close()
"""

# Client: connect, send a message, expect it back; exit 0 on success.
ECHO_CLIENT = """
import socket, sys
msg = b"nuage-e2e " + sys.argv[3].encode()
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    c.settimeout(2); c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        part = c.recv(1024)
        if not part:
            break
        got += part
    sys.exit(0 if got == msg else 1)
except OSError as exc:
    print(exc, file=sys.stderr); sys.exit(1)
"""


class E2EError(Exception):
    """A step of the run failed; the message says which and why."""


def wait_for(condition, timeout, what, proc=None, log=None):
    """Poll ``condition`` until it returns a true value; E2EError at the deadline or if ``proc`` exits."""
    return supervise.wait_for(condition, timeout, what, proc, log, error=E2EError)


def run(argv, timeout=30, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def on_node(node, argv, timeout=30, stdin_text=None, env=None):
    """Run ``argv`` on a Mininet node (its network and mount namespaces): (status, stdout, stderr)."""
    proc = node.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(stdin_text.encode() if stdin_text else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return -1, "", "timed out after %gs" % timeout
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def in_container(node, netns, argv, timeout=30):
    """Run ``argv`` in container ``netns`` of ``node`` (``ip netns`` names are per host: mount namespace)."""
    return on_node(node, ["ip", "netns", "exec", netns, *argv], timeout=timeout)


class Run:
    """One end-to-end run; ``report`` collects what was observed."""

    def __init__(self, args):
        self.args = args
        self.state_dir = args.state_dir
        self.plane = os.path.join(self.state_dir, "plane")
        self.directory_state = os.path.join(self.plane, "directory")
        self.api_socket = os.path.join(self.plane, "api.sock")
        self.token_file = os.path.join(self.directory_state, "api-token")
        self.directory_db = "unix:" + os.path.join(self.directory_state, "directory", "db.sock")
        self.manager = os.path.join(args.bin_dir, "nuage-ryu-manager")
        self.cni_binary = os.path.join(args.bin_dir, "nuage-cni")
        self.api = None          # the directory's REST client, once its token file exists
        self.net = None
        self.procs = {}          # name -> Popen (directory, agents, echo server), stopped by pid
        self.netns = []          # container namespaces we made
        self.attached = []       # containers ADDed and not yet DELeted
        self.report = {"ok": False, "hosts": args.hosts, "steps": {}, "error": None}
        self.started = time.monotonic()

    # -- bookkeeping ---------------------------------------------------------------
    def step(self, name):
        self.report["steps"][name] = round(time.monotonic() - self.started, 2)
        print("nuage_e2e: %s at %.2fs" % (name, self.report["steps"][name]), file=sys.stderr, flush=True)
        if name == self.args.fail_after:
            raise E2EError("stopped after step %s (--fail-after)" % name)

    def log_path(self, name):
        return os.path.join(self.plane, name + ".log")

    def hosts(self):
        return [h for h in self.net.hosts if isinstance(h, NuageHost)]

    # -- processes ---------------------------------------------------------------------
    def spawn(self, node, name, conf_text, app):
        """Start ``nuage-ryu-manager`` with its own config file inside ``node``'s namespace."""
        conf = os.path.join(self.plane, name + ".ini")
        with open(conf, "w") as f:
            f.write(conf_text)
        with open(self.log_path(name), "ab") as log:
            # mnexec -d: own session; -a PID: the node's network and mount namespaces.
            proc = node.popen([self.manager, "--config-file", conf, app], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def stop_process(self, name):
        """SIGTERM by pid, SIGKILL after a deadline; the exit status goes into the report."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        self.report.setdefault("exit_status", {})[name] = supervise.stop_process(proc, timeout=STOP_TIMEOUT)

    def directory_answers(self):
        """True once the directory answers a REST call (the client is made once the token exists)."""
        try:
            if self.api is None:
                with open(self.token_file) as f:
                    token = f.read().strip()
                self.api = DirectoryClient("unix:" + self.api_socket, token, timeout=10.0, keep_alive=False)
            self.api.request("GET", "/hosts")
            return True
        except (OSError, DirectoryError, CannotConnect):
            return False

    # -- steps -----------------------------------------------------------------------------
    def start_network(self):
        Mininet.inited = True  # skip fixLimits(): it retunes sysctls, a few nodes do not need it
        self.net = Mininet(topo=NuageTopo(self.args.hosts, state_dir=self.state_dir), controller=None,
                           build=False)
        self.net.build()
        self.net.start()
        deadline = time.monotonic() + self.args.timeout
        loss = self.net.pingAll(timeout="1")
        while loss > 0 and time.monotonic() < deadline:
            loss = self.net.pingAll(timeout="1")
        if loss > 0:
            raise E2EError("underlay pingall still loses %s%% after %ss" % (loss, self.args.timeout))
        self.report["underlay"] = {h.name: h.underlay_ip for h in self.hosts()}
        self.step("mininet_up")

    def start_directory(self):
        os.makedirs(self.directory_state, exist_ok=True)
        conf = ("[DEFAULT]\nstate_dir = %s\n[directory]\napi_port = 0\napi_socket = %s\n"
                % (self.directory_state, self.api_socket))
        proc = self.spawn(self.net.get("ctl"), "directory", conf, "nuage_ryu.apps.directory_api")
        log = self.log_path("directory")
        wait_for(lambda: os.path.exists(self.api_socket) and os.path.exists(self.token_file),
                 self.args.timeout, "the directory API socket", proc, log)
        wait_for(self.directory_answers, self.args.timeout, "the directory API to answer", proc, log)
        self.step("directory_up")

    def agent_socket(self, host):
        return os.path.join(self.plane, host.name, "agent.sock")

    def host_token_file(self, host):
        """``host``'s own REST token (reads the directory, writes only vports on that host), as
        nuage_ryu/lab/plane.py issues one per lab host: no agent holds the admin token."""
        path = os.path.join(self.plane, host.name, "host-token")
        if not os.path.exists(path):
            answer = self.api.post("/tokens", {"host": host.name, "name": "host %s" % host.name})
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(answer["token"] + "\n")
        return path

    def agent_conf(self, host):
        """The agent's config, as nuage_ryu/lab/plane.py writes it for a lab host."""
        return ("[DEFAULT]\nstate_dir = %s\nofp_listen_host = 127.0.0.1\nofp_tcp_listen_port = %d\n"
                "[vrs]\nhost_name = %s\ntunnel_ip = %s\novsdb_connection = unix:%s/db.sock\n"
                "datapath_type = netdev\ncontroller = tcp:127.0.0.1:%d\ndirectory_connection = %s\n"
                "directory_api = unix:%s\ndirectory_token_file = %s\nagent_socket = %s\n"
                % (os.path.join(self.plane, host.name), OFP_PORT, host.name, host.underlay_ip, host.rundir,
                   OFP_PORT, self.directory_db, self.api_socket, self.host_token_file(host),
                   self.agent_socket(host)))

    def start_agents(self):
        for host in self.hosts():
            os.makedirs(os.path.join(self.plane, host.name), exist_ok=True)
            self.spawn(host, "agent-" + host.name, self.agent_conf(host), "nuage_ryu.apps.vrs_agent")
        for host in self.hosts():
            name = "agent-" + host.name
            db = "--db=unix:%s/db.sock" % host.rundir

            def connected(db=db):
                out = run(["ovs-vsctl", db, "--timeout=5", "get", "controller", "br-int", "is_connected"])
                return out.returncode == 0 and out.stdout.strip() == "true"

            wait_for(connected, self.args.timeout, "br-int of %s to connect to its agent" % host.name,
                     self.procs[name], self.log_path(name))
            wait_for(lambda host=host: os.path.exists(self.agent_socket(host)), self.args.timeout,
                     "the agent socket of %s" % host.name, self.procs[name], self.log_path(name))
        names = sorted(h.name for h in self.hosts())

        def registered():
            hosts = self.api.request("GET", "/hosts")
            if sorted(h["name"] for h in hosts if h.get("connected")) == names:
                return hosts
            return None

        hosts = wait_for(registered, self.args.timeout, "every host to register as connected")
        self.report["directory_hosts"] = {h["name"]: h["tunnel_ip"] for h in hosts}
        self.step("agents_up")

    def create_objects(self):
        api = self.api
        enterprise = api.request("POST", "/enterprises", {"name": "e2e", "description": "Mininet end to end"})
        domain = api.request("POST", "/enterprises/%s/domains" % enterprise["id"],
                             {"name": "d1", "default_action": "allow"})
        zone = api.request("POST", "/domains/%s/zones" % domain["id"], {"name": "z1"})
        subnet = api.request("POST", "/zones/%s/subnets" % zone["id"],
                             {"name": "s1", "cidr": SUBNET_CIDR, "gateway": SUBNET_GATEWAY})
        self.subnet_id = subnet["id"]
        self.step("objects_created")

    def cni(self, command, container):
        """Call the real nuage-cni on the container's host, as that host's container runtime would."""
        host = self.containers[container]
        conf = {"cniVersion": "1.0.0", "name": "nuage-e2e", "type": "nuage-cni",
                "agent_socket": self.agent_socket(host), "enterprise": "e2e", "domain": "d1",
                "zone": "z1", "subnet": "s1"}
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": "e2e-" + container, "CNI_NETNS": "/var/run/netns/" + container,
               "CNI_IFNAME": "eth0", "CNI_PATH": self.args.bin_dir}
        code, out, err = on_node(host, [self.cni_binary], timeout=60, stdin_text=json.dumps(conf), env=env)
        if code != 0:
            raise E2EError("nuage-cni %s %s on %s failed (%d): %s %s"
                           % (command, container, host.name, code, out.strip(), err.strip()))
        return json.loads(out) if out.strip() else {}

    def attach_containers(self):
        h1, h2 = self.hosts()[:2]
        self.containers = {"c1": h1, "c2": h2}
        self.ips = {}
        timings = {}
        for name, host in self.containers.items():
            # Made in the host's own mount namespace (Mininet gives each node one), where its runtime would.
            code, _, err = on_node(host, ["ip", "netns", "add", name])
            if code != 0:
                raise E2EError("ip netns add %s on %s: %s" % (name, host.name, err.strip()))
            self.netns.append(name)
            started = time.monotonic()
            self.attached.append(name)
            result = self.cni("ADD", name)
            timings[name] = round(time.monotonic() - started, 3)
            self.ips[name] = result["ips"][0]["address"].split("/")[0]
            if result["ips"][0].get("gateway") != SUBNET_GATEWAY:
                raise E2EError("CNI result of %s has gateway %s" % (name, result["ips"][0].get("gateway")))
            code, out, _ = in_container(host, name, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
            if code != 0 or result["ips"][0]["address"] not in out:
                raise E2EError("eth0 of %s does not carry %s: %s" % (name, result["ips"][0]["address"], out))
        vports = self.api.request("GET", "/subnets/%s/vports" % self.subnet_id)
        self.report["vports"] = sorted([v["host"], v["ip"], v["status"]] for v in vports)
        self.report["containers"] = {name: {"host": host.name, "ip": self.ips[name], "add_seconds": timings[name]}
                                     for name, host in self.containers.items()}
        self.step("containers_attached")

    def tunnel_packets(self):
        """Packets sent and received by each host's vxlan0, from OpenFlow port stats."""
        counts = {}
        for host in self.hosts():
            out = run(["ovs-ofctl", "-O", "OpenFlow14", "dump-ports", "unix:%s/br-int.mgmt" % host.rundir, "vxlan0"])
            rx = re.search(r"rx pkts=(\d+)", out.stdout)
            tx = re.search(r"tx pkts=(\d+)", out.stdout)
            if out.returncode != 0 or not rx or not tx:
                raise E2EError("port stats of vxlan0 on %s: %s %s" % (host.name, out.stdout, out.stderr))
            counts[host.name] = {"rx": int(rx.group(1)), "tx": int(tx.group(1))}
        return counts

    def check_traffic(self):
        traffic = self.report["traffic"] = {}
        before = self.tunnel_packets()
        for src, dst in (("c1", "c2"), ("c2", "c1")):
            node = self.containers[src]

            def ping(node=node, src=src, dst=dst):
                return in_container(node, src, ["ping", "-n", "-c1", "-W1", self.ips[dst]])[0] == 0

            wait_for(ping, self.args.timeout, "ping %s -> %s (%s)" % (src, dst, self.ips[dst]))
            code, out, _ = in_container(node, src, ["ping", "-n", "-q", "-c3", "-i0.2", "-W2", self.ips[dst]])
            summary = [line for line in out.splitlines() if "packets transmitted" in line]
            traffic["ping_%s_%s" % (src, dst)] = summary[0] if summary else out.strip()
            if code != 0:
                raise E2EError("ping %s -> %s lost packets: %s" % (src, dst, out.strip()))
        h2 = self.containers["c2"]
        server = h2.popen(["ip", "netns", "exec", "c2", sys.executable, "-c", ECHO_SERVER, str(TCP_PORT)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs["echo-server"] = server
        ready, _, _ = select.select([server.stdout], [], [], self.args.timeout)
        if not ready or server.stdout.readline().strip() != b"ready":
            raise E2EError("TCP echo server in c2 did not start")

        def tcp():
            argv = [sys.executable, "-c", ECHO_CLIENT, self.ips["c2"], str(TCP_PORT), "c1->c2"]
            return in_container(self.containers["c1"], "c1", argv)[0] == 0

        wait_for(tcp, self.args.timeout, "a TCP exchange c1 -> c2:%d" % TCP_PORT)
        traffic["tcp_c1_c2"] = True
        self.stop_process("echo-server")
        after = self.tunnel_packets()
        traffic["vxlan_packets"] = {name: {k: after[name][k] - before[name][k] for k in ("rx", "tx")}
                                    for name in after}
        self.step("traffic_ok")

    def detach_containers(self):
        for name in list(self.attached):
            self.cni("DEL", name)
            self.attached.remove(name)
        left = {}
        vports = self.api.request("GET", "/subnets/%s/vports" % self.subnet_id)
        if vports:
            left["vports"] = [v["id"] for v in vports]
        for host in self.hosts():
            ports = run(["ovs-vsctl", "--db=unix:%s/db.sock" % host.rundir, "list-ports", "br-int"]).stdout.split()
            # vxlan0 and the agent's external patch port (docs/external.md) are the bridge's own.
            if sorted(set(ports) - {"patch-ext"}) != ["vxlan0"]:
                left["br-int ports of " + host.name] = ports
            links = on_node(host, ["ip", "-o", "link", "show"])[1].splitlines()
            veths = [line.split(":")[1].strip() for line in links if ": nr" in line]
            if veths:
                left["veths on " + host.name] = veths
        for name, host in self.containers.items():
            links = in_container(host, name, ["ip", "-o", "link", "show"])[1].splitlines()
            extra = [line.split(":")[1].strip() for line in links if line.strip() and ": lo:" not in line]
            if extra:
                left["links in " + name] = extra
        self.report["after_del"] = left
        if left:
            raise E2EError("CNI DEL left state behind: %s" % left)
        self.step("containers_detached")

    def delete_containers(self):
        """Delete the container namespaces on their hosts; check each host has none left."""
        for name in list(self.netns):
            host = self.containers[name]
            code, _, err = on_node(host, ["ip", "netns", "delete", name])
            if code != 0:
                raise E2EError("ip netns delete %s on %s: %s" % (name, host.name, err.strip()))
            self.netns.remove(name)
        for host in self.hosts_or_none():
            names = on_node(host, ["ip", "netns", "list"])[1].split()
            if names:
                raise E2EError("namespaces left on %s: %s" % (host.name, names))

    # -- teardown --------------------------------------------------------------------------
    def teardown(self):
        """Undo everything, each part on its own, errors collected rather than raised."""
        errors = []

        def attempt(what, action):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - teardown goes on
                errors.append("%s: %s" % (what, exc))

        for name in list(self.attached):
            attempt("CNI DEL " + name, lambda name=name: self.cni("DEL", name))
        self.stop_process("echo-server")
        attempt("delete containers", self.delete_containers)
        for name in sorted(self.procs, key=lambda n: n == "directory"):  # agents first
            attempt("stop " + name, lambda name=name: self.stop_process(name))
        if self.net is not None:
            attempt("mininet stop", self.net.stop)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return errors

    def leftovers(self):
        """What is still there after teardown: processes, namespaces, files, links (all inside the sandbox)."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            reap_zombies()
            procs = [p for p in sandbox_processes() if p != os.getpid()]
            if not procs or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        left = {}
        if procs:
            left["processes"] = {p: cmdline_of(p) for p in procs}
        netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
        if netns:
            left["netns"] = netns
        if os.path.exists(self.state_dir):
            left["files"] = sorted(os.listdir(self.state_dir))
        links = run(["ip", "-o", "link", "show"]).stdout.splitlines()
        extra = [line.split(":")[1].strip() for line in links if ": lo:" not in line]
        if extra:
            left["links"] = extra
        return left

    def execute(self):
        try:
            self.start_network()
            self.start_directory()
            self.start_agents()
            self.create_objects()
            self.attach_containers()
            self.check_traffic()
            self.detach_containers()
        except Exception as exc:  # noqa: BLE001 - reported, then torn down
            self.report["error"] = "%s: %s" % (type(exc).__name__, exc)
            if not isinstance(exc, E2EError):
                self.report["traceback"] = traceback.format_exc().splitlines()[-8:]
            self.report["logs"] = {name: supervise.log_tail(self.log_path(name), 30).splitlines()
                                   for name in ["directory"] + ["agent-" + h.name for h in self.hosts_or_none()]}
        self.report["teardown_errors"] = self.teardown()
        self.step("torn_down")
        self.report["leftovers"] = self.leftovers()
        self.report["ok"] = (self.report["error"] is None and not self.report["teardown_errors"]
                             and not self.report["leftovers"])
        self.report["seconds"] = round(time.monotonic() - self.started, 2)
        return self.report

    def hosts_or_none(self):
        return self.hosts() if self.net is not None else []


def sandbox_processes():
    """Pids of live processes (not zombies) in our PID namespace (/proc is the sandbox's own)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
        except (OSError, IndexError):
            continue
        pids.append(int(entry))
    return pids


def cmdline_of(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def reap_zombies():
    """As PID 1 of the sandbox we inherit every orphan (the OVS daemons' parents): collect the dead ones."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def enter_sandbox(argv):
    """Re-execute this script as PID 1 of fresh PID/net/mount namespaces (never returns)."""
    os.execvp("unshare", ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation",
                          "private", "--kill-child", sys.executable, os.path.abspath(__file__), SANDBOX_FLAG,
                          *argv])


def prepare_sandbox():
    """Private /run (state dir, OVS rundirs, sockets, ``ip netns`` names stay in here), loopback up.

    /tmp stays the machine's: the venv or the checkout may live there (a CI clone), and nothing
    here writes to it; Mininet's global cleanup, which would ``rm /tmp/*.log``, is never run.
    """
    if os.getpid() != 1:
        raise E2EError("%s is only for the re-executed copy inside the sandbox" % SANDBOX_FLAG)
    out = run(["mount", "-t", "tmpfs", "-o", "mode=0755", "nuage-e2e", "/run"])
    if out.returncode != 0:
        raise E2EError("mount tmpfs on /run: %s" % out.stderr.strip())
    run(["ip", "link", "set", "lo", "up"])
    # The sandbox's PID 1 does not get default signal actions: make TERM/INT end the run (and the sandbox).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2, help="number of OVS hosts, 2 to 8 (default 2)")
    parser.add_argument("--bin-dir", default=os.path.join(REPO, ".venv", "bin"),
                        help="directory with nuage-ryu-manager and nuage-cni (default: the repo's .venv/bin)")
    parser.add_argument("--state-dir", default="/run/nuage-e2e",
                        help="where the run keeps its files, under the sandbox's private /run (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60, help="deadline of each waiting step, seconds")
    parser.add_argument("--fail-after", metavar="STEP", choices=STEPS,
                        help="fail on purpose after this step, to test the teardown (%s)" % ", ".join(STEPS))
    parser.add_argument(SANDBOX_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 2 <= args.hosts <= 8:
        parser.error("--hosts must be between 2 and 8")
    if not os.path.abspath(args.state_dir).startswith("/run/"):
        parser.error("--state-dir must be under /run (the sandbox's private /run)")
    if os.geteuid() != 0:
        parser.error("needs root (Mininet, namespaces)")
    for program in ("nuage-ryu-manager", "nuage-cni"):
        if not os.access(os.path.join(args.bin_dir, program), os.X_OK):
            parser.error("no %s in --bin-dir %s" % (program, args.bin_dir))
    args.bin_dir = os.path.abspath(args.bin_dir)
    if not args.in_sandbox:
        enter_sandbox([a for a in sys.argv[1:] if a != SANDBOX_FLAG] + ["--bin-dir", args.bin_dir])
    prepare_sandbox()
    setLogLevel("warning")
    os.makedirs(args.state_dir, exist_ok=True)
    report = Run(args).execute()
    print(json.dumps(report, sort_keys=True), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except E2EError as exc:
        print("nuage_e2e: error: %s" % exc, file=sys.stderr)
        sys.exit(1)
