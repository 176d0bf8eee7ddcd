"""The multi-host lab for real: namespaces, per-host OVS, VXLAN across hosts, status, teardown.

Each lab gets a unique prefix and state dir; module teardown removes it even
when a test fails, and the last test asserts that nothing is left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from nuage_ryu.hostovs.host import HostOVS, datapath_id_for, format_datapath_id
from nuage_ryu.hostovs.process import pid_alive
from nuage_ryu.lab import netns
from nuage_ryu.lab.lab import Lab
from tests.ovs_fixtures import wait_until

pytestmark = pytest.mark.integration

CENTRAL = "tcp:192.0.2.2:6653"
LOCAL = "tcp:127.0.0.1:6653"
TUNNEL_KEY = 4242


def nuage_lab(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the nuage-lab console script (the installed one next to this interpreter)."""
    script = os.path.join(os.path.dirname(sys.executable), "nuage-lab")
    argv = [script, *args] if os.path.exists(script) else [sys.executable, "-m", "nuage_ryu.lab.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def leftovers(prefix: str, state_dir: str) -> dict[str, list]:
    """Namespaces, processes and files a lab could have left behind."""
    names = sorted(n for n in os.listdir(netns.NETNS_DIR) if n.startswith(prefix + "-")) \
        if os.path.isdir(netns.NETNS_DIR) else []
    processes = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if state_dir.encode() in cmdline.read() and pid_alive(int(entry)):
                        processes.append(int(entry))
            except OSError:
                continue
    return {"netns": names, "processes": processes,
            "files": sorted(os.listdir(state_dir)) if os.path.exists(state_dir) else []}


def unique_prefix(tag: str) -> str:
    return f"nt{tag}{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def lab2():
    """A 2-host lab with both the per-host and a central controller target."""
    state_dir = tempfile.mkdtemp(prefix="nr-lab-")
    prefix = unique_prefix("a")
    links_before = root_links()
    lab = Lab(state_dir, prefix)
    try:
        started = time.monotonic()
        lab.up(2, controllers=[LOCAL, CENTRAL])
        lab.up_seconds = time.monotonic() - started
        lab.links_before = links_before
        yield lab
    finally:
        lab.down()


def test_up_is_quick_and_leaves_the_root_namespace_alone(lab2):
    assert lab2.up_seconds < 15
    assert root_links() == lab2.links_before
    assert [h.name for h in lab2.hosts] == ["h1", "h2"]
    assert [h.underlay_ip for h in lab2.hosts] == ["192.0.2.11", "192.0.2.12"]
    for name in (lab2.underlay_netns, lab2.controller_node.netns, *(h.netns for h in lab2.hosts)):
        assert netns.exists(name)


def test_host_bridges_configured_in_ovsdb(lab2):
    for host in lab2.hosts:
        with HostOVS(host.db_remote, timeout=5) as ovsdb:
            ovsdb.wait_for_vswitchd()
            br_int = ovsdb.bridge_config("br-int")
            assert br_int["fail_mode"] == "secure"
            assert br_int["datapath_type"] == "netdev"
            assert sorted(br_int["protocols"]) == ["OpenFlow13", "OpenFlow14", "OpenFlow15"]
            expected_dpid = format_datapath_id(datapath_id_for(host.netns))
            assert br_int["other_config"]["datapath-id"] == expected_dpid
            assert br_int["datapath_id"] == expected_dpid  # ovs-vswitchd applied it
            assert sorted(c["target"] for c in br_int["controllers"]) == sorted([LOCAL, CENTRAL])
            assert {c["connection_mode"] for c in br_int["controllers"]} == {"out-of-band"}
            vxlan = ovsdb.interface_config("vxlan0")
            assert vxlan["type"] == "vxlan"
            assert vxlan["options"] == {"remote_ip": "flow", "key": "flow", "local_ip": host.underlay_ip}
            assert vxlan["ofport"] > 0
            br_phy = ovsdb.bridge_config("br-phy")
            assert br_phy["fail_mode"] == "standalone" and br_phy["datapath_type"] == "netdev"
            assert "eth0" in br_phy["ports"]
        addr = lab2.exec(host.name, ["ip", "-o", "-4", "addr", "show", "dev", "br-phy"], check=True).stdout
        assert f"{host.underlay_ip}/24" in addr
        # The userspace datapath routes the tunnel over br-phy.
        routes = lab2.exec(host.name, ["ovs-appctl", "ovs/route/show"], check=True).stdout
        assert "192.0.2.0/24 dev br-phy" in routes


def test_central_controller_reached_over_the_underlay(lab2):
    """Both hosts' ovs-vswitchd connect to a listener on the controller node (192.0.2.2)."""
    listener = ("import socket\n"
                "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind(('192.0.2.2', 6653)); s.listen(8); s.settimeout(15)\n"
                "peers = set()\n"
                "while len(peers) < 2:\n"
                "    c, a = s.accept(); peers.add(a[0]); c.close()\n"
                "print(' '.join(sorted(peers)))\n")
    result = lab2.exec("ctl", [sys.executable, "-c", listener], timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["192.0.2.11", "192.0.2.12"]


@contextlib.contextmanager
def attached_container(lab: Lab, host_name: str, index: int, ip: str):
    """A 'container': a namespace made by this test, veth-attached to the host's br-int."""
    host = lab.host(host_name)
    name = f"{lab.prefix}-c{index}"
    ifname = f"ct{index}"
    with contextlib.ExitStack() as cleanup:
        netns.add(name)
        cleanup.callback(netns.delete, name)
        netns.ip("link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns", name,
                 netns=host.netns)
        cleanup.callback(netns.ip, "link", "del", ifname, netns=host.netns, check=False)
        netns.ip("link", "set", ifname, "up", netns=host.netns)
        netns.ip("addr", "add", f"{ip}/24", "dev", "eth0", netns=name)
        netns.ip("link", "set", "eth0", "mtu", "1450", "up", netns=name)
        netns.disable_tx_checksum(name, ["eth0"])  # its peer is read by the userspace datapath
        ovsdb = cleanup.enter_context(HostOVS(host.db_remote, timeout=5))
        ovsdb.add_vport_port("br-int", ifname, f"vport-c{index}", f"container-c{index}")
        cleanup.callback(ovsdb.delete_vport_port, "br-int", ifname)
        yield name, ifname, ovsdb.wait_for_ofport(ifname, timeout=10)


ECHO_SERVER = ("import socket\n"
               "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
               "s.bind(('0.0.0.0', 7007)); s.listen(1); s.settimeout(20)\n"
               "print('listening', flush=True)\n"
               "c, _ = s.accept(); c.settimeout(20)\n"
               "data = b''\n"
               "while len(data) < 200000:\n"
               "    chunk = c.recv(65536)\n"
               "    if not chunk: break\n"
               "    data += chunk\n"
               "c.sendall(str(len(data)).encode()); c.close()\n")
ECHO_CLIENT = ("import socket, sys\n"
               "c = socket.create_connection((sys.argv[1], 7007), timeout=20)\n"
               "c.sendall(b'x' * 200000); c.shutdown(socket.SHUT_WR)\n"
               "print(c.recv(64).decode())\n")


def assert_tcp_echo(client_netns: str, server_netns: str, server_ip: str) -> None:
    """200 kB over TCP across the overlay (bulk segments: checks checksums and the 1450 MTU)."""
    server = subprocess.Popen(["ip", "netns", "exec", server_netns, sys.executable, "-c", ECHO_SERVER],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening", server.stderr.read()
        client = netns.run_in(client_netns, [sys.executable, "-c", ECHO_CLIENT, server_ip], timeout=30)
        assert client.returncode == 0, client.stderr
        assert client.stdout.strip() == "200000"
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)


def test_vxlan_between_hosts(lab2):
    """Two containers on different hosts ping each other through the flow-based VXLAN ports."""
    h1, h2 = lab2.hosts
    with attached_container(lab2, "h1", 1, "10.250.0.1") as (c1, port1, _), \
            attached_container(lab2, "h2", 2, "10.250.0.2") as (_c2, port2, _):
        for host, port, peer in ((h1, port1, h2), (h2, port2, h1)):
            flows = [
                f"table=0,priority=10,in_port={port},"
                f"actions=set_field:{peer.underlay_ip}->tun_dst,set_field:{TUNNEL_KEY}->tun_id,output:vxlan0",
                f"table=0,priority=10,in_port=vxlan0,tun_id={TUNNEL_KEY},actions=output:{port}",
            ]
            for flow in flows:
                lab2.exec(host.name, ["ovs-ofctl", "-O", "OpenFlow13", "add-flow", "br-int", flow],
                          check=True)
        try:
            wait_until(lambda: netns.run_in(c1, ["ping", "-c", "1", "-W", "1", "10.250.0.2"]).returncode == 0,
                       timeout=15, message="container ping across the VXLAN overlay")
            result = netns.run_in(c1, ["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.250.0.2"])
            assert result.returncode == 0, result.stdout
            # The packets really went through the tunnel flows with our VNI.
            dump = lab2.exec("h2", ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int",
                                    f"in_port=vxlan0,tun_id={TUNNEL_KEY}"], check=True).stdout
            assert "n_packets=0," not in dump and "n_packets=" in dump
            neighbours = lab2.exec("h1", ["ovs-appctl", "tnl/arp/show"], check=True).stdout
            assert h2.underlay_ip in neighbours
            assert_tcp_echo(c1, _c2, "10.250.0.2")
            # status shows the container ports as vports.
            report = json.loads(nuage_lab("status", "--json", "--state-dir", lab2.state_dir).stdout)
            vports = report["hosts"][0]["bridges"]["br-int"]["vports"]
            assert vports == [{"ifname": port1, "ofport": vports[0]["ofport"], "vport_id": "vport-c1",
                               "container_id": "container-c1"}]
            assert "vport vport-c1 on ct1" in nuage_lab("status", "--state-dir", lab2.state_dir).stdout
        finally:
            for host in (h1, h2):
                lab2.exec(host.name, ["ovs-ofctl", "-O", "OpenFlow13", "del-flows", "br-int"])


def test_status_output(lab2):
    text = nuage_lab("status", "--state-dir", lab2.state_dir)
    assert text.returncode == 0, text.stderr
    assert f"lab {lab2.prefix} (up)" in text.stdout
    assert "192.0.2.11" in text.stdout and "192.0.2.12" in text.stdout
    assert "br-int: netdev fail_mode=secure" in text.stdout
    assert "DEAD" not in text.stdout and "MISSING" not in text.stdout
    report = json.loads(nuage_lab("status", "--json", "--state-dir", lab2.state_dir).stdout)
    assert report["status"] == "up" and report["controllers"] == [LOCAL, CENTRAL]
    assert [h["name"] for h in report["hosts"]] == ["h1", "h2"]
    for host in report["hosts"]:
        assert all(p["alive"] for p in host["processes"].values())
        assert host["bridges"]["br-int"]["tunnel"]["local_ip"] == host["underlay_ip"]
        assert host["bridges"]["br-phy"]["ports"]["eth0"] > 0


def test_status_into_a_closed_pipe_ends_quietly(lab2):
    """'nuage-lab status --json | head': the reader is gone before the report is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nuage-lab"), "status", "--json",
                               "--state-dir", lab2.state_dir], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_exec_runs_in_the_host_with_its_ovs(lab2):
    result = nuage_lab("exec", "h2", "--state-dir", lab2.state_dir, "--", "ovs-vsctl", "br-exists", "br-int")
    assert result.returncode == 0, result.stderr
    result = nuage_lab("exec", "--state-dir", lab2.state_dir, "h1", "--", "ip", "-o", "-4", "addr")
    assert "192.0.2.11/24" in result.stdout
    assert nuage_lab("exec", "--state-dir", lab2.state_dir, "ctl", "--", "sh", "-c", "exit 3").returncode == 3


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str, code: int = 1) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert fragment in lines[-1], result.stderr
    if code == 1:
        assert len(lines) == 1, result.stderr


def test_bad_input(lab2):
    state = ("--state-dir", lab2.state_dir)
    assert_one_line_error(nuage_lab("up", "--hosts", "2", *state), "already recorded")
    assert_one_line_error(nuage_lab("exec", "h7", *state, "--", "true"), "unknown host 'h7'")
    assert_one_line_error(nuage_lab("exec", *state, "h1"), "no command given")
    fresh = tempfile.mkdtemp(prefix="nr-lab-bad-")
    os.rmdir(fresh)
    for count in ("0", "101", "-1"):
        assert_one_line_error(nuage_lab("up", "--hosts", count, "--state-dir", fresh), "number of hosts")
    assert_one_line_error(nuage_lab("up", "--hosts", "two", "--state-dir", fresh), "not a number", code=2)
    assert_one_line_error(nuage_lab("up", "--hosts", "1", "--prefix", "bad prefix!", "--state-dir", fresh),
                          "invalid prefix")
    assert_one_line_error(nuage_lab("up", "--hosts", "1", "--controller", "6653", "--state-dir", fresh),
                          "invalid controller target")
    too_long = os.path.join(fresh, "x" * 80)
    assert_one_line_error(nuage_lab("up", "--hosts", "1", "--state-dir", too_long), "state dir path too long")
    no_ovs = dict(os.environ, PATH="/nonexistent")
    assert_one_line_error(nuage_lab("up", "--hosts", "1", "--state-dir", fresh, env=no_ovs),
                          "not found on PATH: ovsdb-tool")
    assert_one_line_error(nuage_lab("status", "--state-dir", fresh), "no lab in")
    assert nuage_lab("down", "--state-dir", fresh).returncode == 0
    assert not os.path.exists(fresh)


def test_concurrent_command_is_refused():
    """While another nuage-lab command holds the state dir's lock, 'up' and 'down' refuse at once."""
    state_dir = tempfile.mkdtemp(prefix="nr-lab-lock-")
    try:
        with open(os.path.join(state_dir, "lab.lock"), "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for command in (("up", "--hosts", "1", "--prefix", unique_prefix("l")), ("down",)):
                assert_one_line_error(nuage_lab(*command, "--state-dir", state_dir),
                                      "another nuage-lab command is working on")
        assert sorted(os.listdir(state_dir)) == ["lab.lock"]  # nothing was created, the lock is left alone
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def test_down_after_a_crashed_up():
    """kill -9 of 'nuage-lab up' half-way; 'down' still removes everything, and twice is fine."""
    state_dir = tempfile.mkdtemp(prefix="nr-lab-crash-")
    prefix = unique_prefix("k")
    script = os.path.join(os.path.dirname(sys.executable), "nuage-lab")
    up = subprocess.Popen([script, "up", "--hosts", "3", "--state-dir", state_dir, "--prefix", prefix],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def first_host_running():
            try:
                with open(os.path.join(state_dir, "lab.json"), encoding="utf-8") as record:
                    return len(json.load(record)["hosts"][0]["pids"]) == 2
            except (OSError, ValueError, KeyError, IndexError):
                return False
        wait_until(first_host_running, timeout=20, interval=0.01, message="h1's OVS recorded")
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=10)
        left = leftovers(prefix, state_dir)
        assert left["processes"] and left["netns"]  # the crash really left things behind
        down = nuage_lab("down", "--state-dir", state_dir)
        assert down.returncode == 0, down.stderr
        assert leftovers(prefix, state_dir) == {"netns": [], "processes": [], "files": []}
        assert nuage_lab("down", "--state-dir", state_dir).returncode == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        Lab(state_dir, prefix).down()


def test_failed_up_removes_what_it_made():
    """h2's ovsdb-server cannot start (corrupt database): 'up' fails with one line and rolls back."""
    state_dir = tempfile.mkdtemp(prefix="nr-lab-fail-")
    prefix = unique_prefix("f")
    os.makedirs(os.path.join(state_dir, "h2"))
    with open(os.path.join(state_dir, "h2", "conf.db"), "w", encoding="utf-8") as corrupt:
        corrupt.write("not an OVSDB database\n")
    try:
        result = nuage_lab("up", "--hosts", "2", "--state-dir", state_dir, "--prefix", prefix)
        assert_one_line_error(result, "ovsdb-server in netns " + f"{prefix}-h2")
        assert leftovers(prefix, state_dir) == {"netns": [], "processes": [], "files": []}
    finally:
        Lab(state_dir, prefix).down()
        shutil.rmtree(state_dir, ignore_errors=True)


def test_down_removes_everything(lab2):
    """Last test of the module: tear the shared lab down through the CLI and look for remains."""
    assert leftovers(lab2.prefix, lab2.state_dir)["processes"]
    result = nuage_lab("down", "--state-dir", lab2.state_dir)
    assert result.returncode == 0, result.stderr
    assert f"netns {lab2.prefix}-ul" in result.stdout
    assert leftovers(lab2.prefix, lab2.state_dir) == {"netns": [], "processes": [], "files": []}
    assert root_links() == lab2.links_before
    again = nuage_lab("down", "--state-dir", lab2.state_dir)
    assert again.returncode == 0 and "nothing to do" in again.stdout
