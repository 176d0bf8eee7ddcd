"""Test and benchmark support for the attach path: a real directory, a real OVS, container namespaces.

Used by tests/integration/test_attach*.py, test_cni*.py, test_docker*.py and
bench/cni_*.py. Everything started here is stopped by the context managers,
also when the body fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.lab.supervise import stop_process


@contextlib.contextmanager
def directory_service(prefix: str = "nr-dir-") -> Iterator[DirectoryClient]:
    """The real directory (embedded ovsdb-server + REST API on a unix socket), in this process."""
    from nuage_ryu.directory.service import DirectoryService

    state = tempfile.mkdtemp(prefix=prefix)
    sock = os.path.join(state, "api.sock")
    service = DirectoryService(state_dir=state, api_port=0, api_socket=sock)
    try:
        service.start()
        with open(service.token_file) as fh:
            token = fh.read().strip()
        client = DirectoryClient("unix:" + sock, token, timeout=10.0, keep_alive=False)
        client.token_file = service.token_file
        client.state_dir = state
        yield client
    finally:
        service.stop()
        shutil.rmtree(state, ignore_errors=True)


def make_network(client: DirectoryClient, enterprise: str = "acme", domain: str = "prod",
                 zone: str = "web", subnet: str = "web-net", cidr: str = "10.10.1.0/24",
                 policygroups: tuple[str, ...] = ("web",)) -> dict:
    """Create (or find) enterprise/domain/zone/subnet/policy groups; return their objects."""
    def ensure(path: str, name: str, body: dict) -> dict:
        found = [o for o in client.list(path, name=name) if o["name"] == name]
        return found[0] if found else client.request("POST", path, dict(body, name=name))

    ent = ensure("/enterprises", enterprise, {})
    dom = ensure(f"/enterprises/{ent['id']}/domains", domain, {"default_action": "allow"})
    zon = ensure(f"/domains/{dom['id']}/zones", zone, {})
    sub = ensure(f"/zones/{zon['id']}/subnets", subnet, {"cidr": cidr})
    pgs = {name: ensure(f"/domains/{dom['id']}/policygroups", name, {}) for name in policygroups}
    return {"enterprise": ent, "domain": dom, "zone": zon, "subnet": sub, "policygroups": pgs}


def prepare_bridge(ovs_instance, bridge: str = "br-int") -> None:
    """A netdev bridge in standalone mode (NORMAL switching), for tests that run without the VRS agent."""
    ovs_instance.vsctl("--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
                       "datapath_type=netdev", "fail_mode=standalone")


@contextlib.contextmanager
def agent_process(socket_path: str, ovsdb: str, directory: DirectoryClient, host_name: str,
                  host_netns: str | None, up_mode: str = "ofport", bridge: str = "br-int",
                  underlay_mtu: int = 1500, tx_checksum_offload: bool = False) -> Iterator[subprocess.Popen]:
    """``python -m nuage_ryu.agent.attach.agentd`` as a child process; waits for its socket; stopped by pid.

    TX checksum offload is off on container interfaces by default: the tests' bridges are netdev.
    """
    argv = [sys.executable, "-m", "nuage_ryu.agent.attach.agentd", "--socket", socket_path, "--ovsdb", ovsdb,
            "--bridge", bridge, "--host-name", host_name, "--directory", directory.url,
            "--token-file", directory.token_file, "--up-mode", up_mode,
            "--underlay-mtu", str(underlay_mtu)]
    if host_netns:
        argv += ["--host-netns", host_netns]
    if not tx_checksum_offload:  # the tests' bridges are netdev (userspace) bridges
        argv.append("--no-tx-checksum-offload")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(socket_path):
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited: {proc.stdout.read()}")
            if time.monotonic() > deadline:
                raise RuntimeError("agent socket did not appear within 20s")
            time.sleep(0.02)
        yield proc
    finally:
        stop_process(proc, timeout=5)
        if proc.stdout:
            proc.stdout.close()


def run_cni(command: str, conf: dict | str, container_id: str = "", netns: str = "", ifname: str = "eth0",
            cni_args: str = "", env_extra: dict | None = None, binary: str | None = None,
            ) -> tuple[int, dict | None]:
    """Run the real ``nuage-cni`` executable like a runtime does; (exit code, decoded stdout or None)."""
    import json

    # NUAGE_TEST_CNI: run the tests against another build of the plugin (e.g. the compiled one).
    binary = binary or os.environ.get("NUAGE_TEST_CNI") or os.path.join(os.path.dirname(sys.executable), "nuage-cni")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_PATH": "/opt/cni/bin"}
    for key, value in (("CNI_CONTAINERID", container_id), ("CNI_NETNS", netns), ("CNI_IFNAME", ifname),
                       ("CNI_ARGS", cni_args)):
        if value:
            env[key] = value
    env.update(env_extra or {})
    data = conf if isinstance(conf, str) else json.dumps(conf)
    proc = subprocess.run([binary], input=data.encode(), env=env, capture_output=True, timeout=60)
    out = proc.stdout.decode().strip()
    return proc.returncode, (json.loads(out) if out else None)


def host_state(ovs_instance, directory: DirectoryClient, host_name: str, bridge: str = "br-int") -> dict:
    """What an attach leaves behind on a host: OVS ports, nr/nc links, this host's vports."""
    ports = ovs_instance.vsctl("list-ports", bridge).split()
    argv = ["ip", "-o", "link"]
    if ovs_instance.netns:
        argv = ["ip", "netns", "exec", ovs_instance.netns, *argv]
    links = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    names = sorted({line.split(":")[1].strip().split("@")[0] for line in links.splitlines()})
    return {"ports": sorted(p for p in ports if p.startswith("nr")),
            "links": [n for n in names if n.startswith(("nr", "nc")) and len(n) == 13],
            "vports": sorted(v["id"] for v in directory.host_vports(host_name))}


def ns_exec(netns: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True,
                          timeout=timeout)


_TCP_ECHO = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); c.sendall(b"pong" if c.recv(4) == b"ping" else b"????"); c.close()
"""
_TCP_CLIENT = """
import socket
c = socket.create_connection(("%s", %d), timeout=5); c.sendall(b"ping"); print(c.recv(4).decode())
"""


def tcp_exchange(server_netns: str, client_netns: str, server_ip: str, port: int = 5001) -> bool:
    """One TCP request/reply from ``client_netns`` to a one-shot server in ``server_netns``."""
    server = subprocess.Popen(["ip", "netns", "exec", server_netns, sys.executable, "-c", _TCP_ECHO % port],
                              stdout=subprocess.PIPE, text=True)
    try:
        if server.stdout.readline().strip() != "listening":
            return False
        client = ns_exec(client_netns, sys.executable, "-c", _TCP_CLIENT % (server_ip, port))
        return client.stdout.strip() == "pong"
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
