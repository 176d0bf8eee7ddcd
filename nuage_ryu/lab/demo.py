"""The demo: a 3-host lab, two tenants, a 3-tier app under policy, real traffic, a matrix.

``python scripts/demo.py`` (``make demo``) runs it. Every step is real: the
directory and one VRS agent per host run as ``nuage-ryu-manager`` processes in
their namespaces; containers are attached by the real ``nuage-cni`` binary
through each host's agent socket; verdicts come from real TCP connections.

Tenants:
  acme   domain "prod", default deny; zones/subnets web 10.10.1.0/24,
         app 10.10.2.0/24, db 10.10.3.0/24; policy groups web, app, db;
         rules: web -> app tcp/8080 allow (stateful), app -> db tcp/5432 allow (stateful)
  globex domain "prod", default allow, subnet 10.10.1.0/24: the same CIDR as acme's web tier

Endpoints: containers attached by nuage-cni, one by the Docker plugin (driven with
dockerd's exact libnetwork calls, as no Docker engine runs here), a VM and a
bare-metal server (VLAN on a ToR gateway port) that get their addresses by DHCP.

Beyond the overlay (docs/external.md): the lab has an outside world (a router and an
"internet" web server 203.0.113.80); globex turns egress NAT on and a container fetches
a page from the outside server; a client outside reaches a container's floating IP and
a published port on its host's address.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from nuage_ryu.directory.ctl import trace as trace_view
from nuage_ryu.lab import containers as lab_containers
from nuage_ryu.lab import guests, standing
from nuage_ryu.lab.dockerd import Dockerd
from nuage_ryu.lab.lab import Lab
from nuage_ryu.lab.outside import FLOATING_IP_POOL
from nuage_ryu.lab.plane import ControlPlane
from nuage_ryu.lab.supervise import wait_for

SERVER = """
import socket, sys, threading, time
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"ok"); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
time.sleep(600)
"""

CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0)
    c.settimeout(1.0)
    sys.exit(0 if c.recv(2) == b"ok" else 1)
except OSError:
    sys.exit(1)
"""


# The connectivity matrix: (from, to, port, expected allow, why). tests/integration/test_trace_lab.py
# traces the same cases with POST /api/v1/trace.
MATRIX = (
    ("web1@h1", "app1@h2", 8080, True, "rule 100 web->app tcp/8080"),
    ("web2@h2", "app1@h2", 8080, True, "rule 100, same host"),
    ("app1@h2", "db1@h3", 5432, True, "rule 200 app->db tcp/5432"),
    ("vm1@h3", "app1@h2", 8080, True, "VM in group web: rule 100"),
    ("web3@h3", "app1@h2", 8080, True, "Docker container in group web: rule 100"),
    ("web3@h3", "db1@h3", 5432, False, "Docker container: no rule web->db"),
    ("app1@h2", "db2@h1", 5432, True, "bare metal in group db: rule 200"),
    ("web1@h1", "db1@h3", 5432, False, "no rule web->db: default deny"),
    ("vm1@h3", "db2@h1", 5432, False, "no rule web->db: default deny"),
    ("web1@h1", "app1@h2", 5432, False, "wrong port"),
    ("app1@h2", "web1@h1", 8080, False, "reverse direction not allowed"),
    ("db1@h3", "app1@h2", 8080, False, "reverse direction not allowed"),
    ("g1@h1", "g2@h3", 8080, True, "globex default allow"),
    ("g1@h1", "app1@h2", 8080, False, "other tenant: not even routable"),
    ("web1@h1", "g2@h3", 8080, False, "other tenant, overlapping CIDR"),
)


@dataclass
class DemoContainer:
    name: str
    tenant: str
    host: str
    netns: str
    groups: list[str]
    ip: str = ""
    server: subprocess.Popen | None = None


@dataclass
class Check:
    src: str  # "name@host"
    dst: str
    port: int
    expected: bool
    why: str
    observed: bool | None = None


@dataclass
class Demo:
    out: object = sys.stdout
    started: float = field(default_factory=time.monotonic)
    step_no: int = 0
    steps: int = 10

    def step(self, text: str) -> None:
        self.step_no += 1
        self.say(f"[{self.step_no}/{self.steps}] {text}")

    def say(self, text: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f}s  {text}", file=self.out, flush=True)


def _ns(netns: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, **kw)


WEB_PAGE = """
import http.server, sys
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from the internet, " + self.client_address[0] + "\\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), Page).serve_forever()
"""

FETCH = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())
"""


def fetch(netns: str, url: str) -> str:
    """GET ``url`` from inside ``netns``; the page, or "" when it cannot be fetched."""
    proc = _ns(netns, [sys.executable, "-c", FETCH, url], timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def eventually(condition, timeout: float = 15.0):
    """Poll ``condition`` until truthy (its value) or the deadline (its last value): the flows of a
    change take a moment to reach the hosts, and an observed verdict must not be a crash."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.2)


def beyond_the_overlay(demo: Demo, lab: Lab, client, by_label: dict) -> list[Check]:
    """globex: egress NAT on, a floating IP and a published port; checked with real traffic."""
    inet = lab.node_netns("inet")
    page = subprocess.Popen(["ip", "netns", "exec", inet, sys.executable, "-c", WEB_PAGE],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://{lab.internet_ip}/"
        (gprod,) = [d for e in client.request("GET", "/enterprises") if e["name"] == "globex"
                    for d in client.request("GET", f"/enterprises/{e['id']}/domains")]
        g1, g2 = by_label["g1@h1"], by_label["g2@h3"]
        before = fetch(g1.netns, url)
        client.request("PUT", f"/domains/{gprod['id']}", {"egress_nat": True})
        got = eventually(lambda: fetch(g1.netns, url))
        demo.say(f"      g1 (10.10.1.x, also acme's range) GET {url}: {got!r}")
        vports = {v["ip"]: v for z in client.request("GET", f"/domains/{gprod['id']}/zones")
                  for s in client.request("GET", f"/zones/{z['id']}/subnets")
                  for v in client.request("GET", f"/subnets/{s['id']}/vports")}
        fip = FLOATING_IP_POOL.split("/")[0].rsplit(".", 1)[0] + ".210"
        client.request("PUT", f"/vports/{vports[g2.ip]['id']}", {"floating_ip": fip})
        client.request("PUT", f"/vports/{vports[g1.ip]['id']}",
                       {"port_mappings": [{"protocol": "tcp", "host_port": 8088, "container_port": 8080}]})
        h1 = lab.host("h1")
        outside = DemoContainer("client", "-", "inet", inet, [])
        reached_fip = eventually(lambda: connect(outside, fip, 8080))
        reached_port = eventually(lambda: connect(outside, h1.underlay_ip, 8088))
        demo.say(f"      floating IP {fip} -> g2@h3; published {h1.underlay_ip}:8088 -> g1@h1:8080")
        return [
            Check("g1@h1", "internet", 80, False, "egress_nat off (the default): no way out", observed=bool(before)),
            Check("g1@h1", "internet", 80, True, "egress_nat on: NAT to h1's address", observed=bool(got)),
            Check("internet", f"{fip} (g2@h3)", 8080, True, "floating IP, default allow", observed=reached_fip),
            Check("internet", "h1:8088 (g1@h1)", 8080, True, "published port", observed=reached_port),
        ]
    finally:
        page.kill()
        page.wait()


def build_tenants(client) -> dict:
    """Create the two tenants; returns acme's subnets and policy groups by tier name."""
    acme = client.request("POST", "/enterprises", {"name": "acme", "description": "3-tier app under policy"})
    prod = client.request("POST", f"/enterprises/{acme['id']}/domains", {"name": "prod", "default_action": "deny"})
    groups, subnets = {}, {}
    for tier, cidr in (("web", "10.10.1.0/24"), ("app", "10.10.2.0/24"), ("db", "10.10.3.0/24")):
        zone = client.request("POST", f"/domains/{prod['id']}/zones", {"name": tier})
        subnets[tier] = client.request("POST", f"/zones/{zone['id']}/subnets",
                                       {"name": tier, "cidr": cidr, "gateway": cidr.replace("0/24", "1")})
        groups[tier] = client.request("POST", f"/domains/{prod['id']}/policygroups", {"name": tier})
    for priority, src, dst, port in ((100, "web", "app", "8080"), (200, "app", "db", "5432")):
        client.request("POST", f"/domains/{prod['id']}/acls", {
            "priority": priority, "source": {"type": "policygroup", "id": groups[src]["id"]},
            "destination": {"type": "policygroup", "id": groups[dst]["id"]},
            "protocol": "tcp", "dst_ports": port, "action": "allow", "stateful": True})
    globex = client.request("POST", "/enterprises", {"name": "globex", "description": "same CIDR as acme"})
    gprod = client.request("POST", f"/enterprises/{globex['id']}/domains",
                           {"name": "prod", "default_action": "allow"})
    gzone = client.request("POST", f"/domains/{gprod['id']}/zones", {"name": "web"})
    client.request("POST", f"/zones/{gzone['id']}/subnets",
                   {"name": "web", "cidr": "10.10.1.0/24", "gateway": "10.10.1.1"})
    return {"subnets": subnets, "groups": groups}


def cni(plane: ControlPlane, lab: Lab, command: str, c: DemoContainer, subnet: str) -> dict:
    host = lab.host(c.host)
    conf = {"cniVersion": "1.0.0", "name": f"nuage-{c.tenant}", "type": "nuage-cni",
            "agent_socket": plane.agent_socket(host), "enterprise": c.tenant, "domain": "prod",
            "zone": subnet, "subnet": subnet}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": f"{lab.prefix}-{c.name}", "CNI_NETNS": f"/var/run/netns/{c.netns}",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
    if c.groups:
        env["CNI_ARGS"] = "NUAGE_POLICYGROUPS=" + ",".join(c.groups)
    binary = os.path.join(os.path.dirname(sys.executable), "nuage-cni")
    proc = subprocess.run([binary], input=json.dumps(conf), capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"nuage-cni {command} {c.name} failed: {proc.stdout.strip() or proc.stderr.strip()}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def wait_listening(c: DemoContainer, ports: tuple[int, ...], timeout: float = 10.0) -> None:
    """Wait until the container's test server accepts on every port (it takes a moment to start)."""
    wait_for(lambda: all(f":{p} " in _ns(c.netns, ["ss", "-Htln"]).stdout for p in ports), timeout,
             f"the test server in {c.name}")


def start_server(c: DemoContainer) -> None:
    """A TCP server on 8080 and 5432 in the endpoint's namespace (killed at teardown)."""
    c.server = subprocess.Popen(["ip", "netns", "exec", c.netns, sys.executable, "-c", SERVER, "8080", "5432"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def connect(src: DemoContainer, dst_ip: str, port: int) -> bool:
    return _ns(src.netns, [sys.executable, "-c", CLIENT, dst_ip, str(port)], timeout=30).returncode == 0


def print_matrix(demo: Demo, checks: list[Check]) -> int:
    width = max(len(c.src) for c in checks)
    dwidth = max(len(c.dst) for c in checks)
    demo.say(f"{'from':<{width}}  {'to':<{dwidth}}  port  expected  observed")
    failures = 0
    for c in checks:
        ok = c.expected == c.observed
        failures += not ok
        mark = "ok" if ok else "MISMATCH"
        demo.say(f"{c.src:<{width}}  {c.dst:<{dwidth}}  {c.port:<4}  "
                 f"{'allow' if c.expected else 'deny':<8}  {'allow' if c.observed else 'deny':<8}  {mark:<8} {c.why}")
    return failures


def explain_denied(demo: Demo, client, src_ip: str, dst_ip: str) -> int:
    """Trace one denied flow of the matrix, web1 -> db1:5432 (POST /api/v1/trace: the deciding rule, the
    path, the datapath check); 1 if the datapath disagrees, else 0. By address: the addresses name the
    vports (the CNI plugin names them after the container)."""
    answer = client.request("POST", "/trace", {"from": src_ip, "to": dst_ip, "domain": "acme/prod",
                                               "protocol": "tcp", "port": 5432})
    rows = trace_view.lines(answer)
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        demo.say(f"      {label:<{width}}  {text}")
    return 0 if answer["verdict"] == "deny" and answer["datapath"] == "agree" else 1


def unique_prefix() -> str:
    """``demo`` + 6 hex digits: two demos that overlap never share a namespace name. Ten characters,
    so that the demo's own interface names (``<prefix>acc1``) stay within Linux's 15."""
    return f"demo{secrets.token_hex(3)}"


def keep_running(demo: Demo, lab: Lab, plane: ControlPlane | None, containers: list[DemoContainer],
                 plugin: subprocess.Popen | None) -> bool:
    """``make demo KEEP=1``: record what runs, so that ``nuage-lab`` can use and remove it; print how."""
    for c in containers:
        lab_containers.adopt(lab, c.name, c.host, c.netns, c.ip, policygroups=c.groups)
    if plane is None:
        demo.say(f"kept the lab (no control plane): nuage-lab down --state-dir {lab.state_dir}")
        return True
    if plugin is not None:
        standing.adopt_process(lab, "docker-plugin-h3", plugin.pid)
    demo.say(f"kept running (KEEP=1); the lab is in {lab.state_dir}, prefix {lab.prefix}. Next steps:")
    for line in standing.next_steps(lab, plane)[:2]:
        demo.say("      " + line)
    sd = f"--state-dir {lab.state_dir}"
    by_name = {c.name: c for c in containers}  # globex's g1 -> g2: default allow, so ping answers
    for line in ("nuage-ctl enterprise list", "nuage-ctl acl list --domain acme/prod",
                 "nuage-ctl vport list -o wide", f"nuage-lab status {sd}",
                 f"nuage-lab exec {sd} g1 -- ping -c1 {by_name['g2'].ip if 'g2' in by_name else '<ip>'}",
                 f"nuage-lab exec {sd} h1 -- ovs-ofctl -O OpenFlow13 dump-flows br-int",
                 f"nuage-lab down {sd}"):
        demo.say("        " + line)
    return True


def run(state_dir: str | None = None, prefix: str | None = None, keep: bool = False) -> int:
    """Run the demo; ``keep``: leave the lab, the plane and the endpoints up (``nuage-lab down`` removes them)."""
    demo = Demo()
    prefix = prefix or unique_prefix()
    state_dir = state_dir or tempfile.mkdtemp(prefix="nuage-demo-")
    lab = Lab(state_dir, prefix)
    kept = False
    plane: ControlPlane | None = None
    containers: list[DemoContainer] = []
    tor = None
    plugin = dockerd = docker_ctr = docker_net = None
    try:
        demo.step("lab: 3 hosts, each a namespace with its own ovsdb-server + ovs-vswitchd (userspace)")
        lab.up(3, outside=True)
        for h in lab.hosts:
            demo.say(f"      {h.name}: netns {h.netns}, underlay {h.underlay_ip}, br-int + vxlan0")
        demo.step("control plane: directory (embedded OVSDB) on the controller node, a VRS agent per host")
        plane = standing.start_plane(lab) if keep else ControlPlane(lab).start()
        client = plane.client()
        hosts = client.request("GET", "/hosts")
        demo.say("      hosts registered: " + ", ".join(f"{h['name']} ({h['tunnel_ip']})" for h in hosts))
        demo.step("tenants: acme (3-tier app, default deny + 2 rules) and globex (same CIDR, default allow)")
        acme = build_tenants(client)
        demo.step("containers attached by nuage-cni through each host's agent socket")
        plan = [("web1", "acme", "h1", ["web"], "web"), ("web2", "acme", "h2", ["web"], "web"),
                ("app1", "acme", "h2", ["app"], "app"), ("db1", "acme", "h3", ["db"], "db"),
                ("g1", "globex", "h1", [], "web"), ("g2", "globex", "h3", [], "web")]
        for name, tenant, host, groups, subnet in plan:
            c = DemoContainer(name, tenant, host, f"{prefix}-{name}", groups)
            subprocess.run(["ip", "netns", "add", c.netns], check=True)
            containers.append(c)
            t = time.monotonic()
            result = cni(plane, lab, "ADD", c, subnet)
            c.ip = result["ips"][0]["address"].split("/")[0]
            start_server(c)
            demo.say(f"      {name:<5} {tenant:<6} on {host}: {c.ip:<11} groups={','.join(groups) or '-'}"
                     f"  (ADD -> up in {1000 * (time.monotonic() - t):.0f} ms)")
        demo.step("a Docker container: dockerd's libnetwork calls to nuage-docker-plugin on h3")
        h3 = lab.host("h3")
        docker_sock = os.path.join(plane.root, "docker-h3.sock")
        plugin = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "nuage-docker-plugin"),
                                   "--socket", docker_sock, "--agent-socket", plane.agent_socket(h3),
                                   "--spec-file", os.path.join(plane.root, "nuage.spec")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(docker_sock), 10.0, "the Docker plugin socket", plugin)
        dockerd = Dockerd(docker_sock, host_netns=h3.netns)
        dockerd.activate()
        names = {"enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web"}
        docker_net = dockerd.network_create(options=names, ipam_options=names)
        if "error" in docker_net:
            raise RuntimeError(f"docker network create: {docker_net['error']}")
        web3 = DemoContainer("web3", "acme", "h3", f"{prefix}-web3", ["web"])
        subprocess.run(["ip", "netns", "add", web3.netns], check=True)
        containers.append(web3)
        t = time.monotonic()
        docker_ctr = dockerd.run(docker_net, web3.netns, {"policygroup": "web"})
        if "error" in docker_ctr:
            raise RuntimeError(f"docker run: {docker_ctr['error']}")
        web3.ip = docker_ctr["address"].split("/")[0]
        start_server(web3)
        demo.say(f"      web3  acme   on h3: {web3.ip:<11} groups=web  (network create + run in "
                 f"{1000 * (time.monotonic() - t):.0f} ms; endpoint option policygroup=web)")
        demo.step("a VM and a bare-metal server: the directory's addresses by DHCP from the agents")
        tor = None
        vm = DemoContainer("vm1", "acme", "h3", f"{prefix}-vm1", ["web"])
        vport = client.request("POST", f"/subnets/{acme['subnets']['web']['id']}/vports", {
            "name": "vm1", "type": "vm", "host": lab.host("h3").host_name,
            "policygroups": [acme["groups"]["web"]["id"]]})
        subprocess.run(["ip", "netns", "add", vm.netns], check=True)
        containers.append(vm)
        guests.plug_vm(lab.host("h3"), vm.netns, f"{prefix}tap1", vport)
        lease = guests.udhcpc(vm.netns)
        vm.ip = lease["ip"]
        start_server(vm)
        demo.say(f"      vm1   acme   on h3: {vm.ip:<11} groups=web  (udhcpc: lease in "
                 f"{1000 * float(lease['seconds']):.0f} ms, router {lease['router']}, mtu {lease['mtu']})")
        tor = guests.add_tor(lab.host("h1"), f"{prefix}-tor", f"{prefix}gw1", f"{prefix}tk1")
        bm = DemoContainer("db2", "acme", "h1", f"{prefix}-db2", ["db"])
        vport = client.request("POST", f"/subnets/{acme['subnets']['db']['id']}/vports", {
            "name": "db2", "type": "host", "host": lab.host("h1").host_name,
            "policygroups": [acme["groups"]["db"]["id"]],
            "external_ids": {"gateway_port": tor.gateway_port, "vlan": "100"}})
        subprocess.run(["ip", "netns", "add", bm.netns], check=True)
        containers.append(bm)
        guests.plug_server(tor, bm.netns, f"{prefix}acc1", 100, vport["mac"])
        lease = guests.udhcpc(bm.netns)
        bm.ip = lease["ip"]
        start_server(bm)
        demo.say(f"      db2   acme   on h1: {bm.ip:<11} groups=db   (bare metal behind gateway port "
                 f"{tor.gateway_port}, VLAN 100; lease in {1000 * float(lease['seconds']):.0f} ms)")
        demo.step("connectivity matrix from real TCP connections (expected by policy vs observed)")
        for c in containers:
            wait_listening(c, (8080, 5432))
        checks = [Check(*case) for case in MATRIX]
        by_label = {f"{c.name}@{c.host}": c for c in containers}
        for check in checks:
            check.observed = connect(by_label[check.src], by_label[check.dst].ip, check.port)
        failures = print_matrix(demo, checks)
        web1, db1 = by_label["web1@h1"], by_label["db1@h3"]
        demo.step(f"explain a denied flow: nuage-ctl trace {web1.ip} {db1.ip} --domain acme/prod --port 5432")
        failures += explain_denied(demo, client, web1.ip, db1.ip)
        demo.step("beyond the overlay: egress NAT, a floating IP, a published port (docs/external.md)")
        outside_checks = beyond_the_overlay(demo, lab, client, by_label)
        failures += print_matrix(demo, outside_checks)
        checks += outside_checks
        demo.step("keeping it all up (KEEP=1)" if keep else "teardown: CNI DEL, agents, directory, lab")
        for c in containers:
            if c.name not in ("vm1", "db2", "web3") and not keep:
                with contextlib.suppress(Exception):
                    cni(plane, lab, "DEL", c, "web")
        if dockerd is not None and docker_ctr and not keep:
            dockerd.rm(docker_ctr)
            dockerd.network_rm(docker_net)
        demo.say(f"done in {time.monotonic() - demo.started:.1f}s: "
                 f"{len(checks) - failures}/{len(checks)} verdicts as expected")
        return 1 if failures else 0
    finally:
        kept = keep and lab.is_recorded and keep_running(demo, lab, plane, containers, plugin)
        if kept:  # nothing below is stopped: 'nuage-lab down' does it
            containers, plugin, tor, plane = [], None, None, None
        for c in containers:
            if c.server is not None:
                c.server.kill()
                c.server.wait()
            subprocess.run(["ip", "netns", "delete", c.netns], capture_output=True)
        if plugin is not None:
            plugin.terminate()
            plugin.wait(10)
        if tor is not None:
            guests.remove_tor(tor)
        if plane is not None:
            plane.stop()
        if not kept:
            lab.down()
        with contextlib.suppress(OSError):
            os.rmdir(state_dir)
