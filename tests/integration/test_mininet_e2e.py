"""End to end on the Mininet topology: directory, a VRS agent per Mininet host, nuage-cni, real traffic.

The run itself is mininet_topos/nuage_e2e.py (Debian's Mininet lives in the
system Python, not in the venv). It re-executes itself as PID 1 of fresh PID,
network and mount namespaces with a private /run, builds
``NuageTopo(2)`` (each host its own ovsdb-server + ovs-vswitchd, userspace
datapath), starts the directory on ``ctl`` and one ``nuage-ryu-manager``
agent inside each host's namespace, creates enterprise/domain/zone/subnet over
the REST API (unix socket), attaches a container on h1 and one on h2 with the
real ``nuage-cni``, pings both ways and exchanges data over TCP, runs CNI DEL,
stops everything by pid, checks nothing is left inside, and prints a JSON report.

Here we check the report, and from outside that the sandbox is gone: no
process of its PID or network namespace, no new link or ``ip netns`` name of
ours in the root namespace (other tests may add their own meanwhile), nothing
in the real /run. If the run hangs, killing ``unshare``
(``--kill-child``) ends the sandbox's PID 1, and the kernel everything in it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(REPO, "mininet_topos", "nuage_e2e.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's Mininet lives in the system Python, not in the venv
BIN_DIR = os.path.dirname(sys.executable)  # the venv's console scripts: nuage-ryu-manager, nuage-cni
RUN_TIMEOUT = 240.0
SUBNET = ipaddress.ip_network("10.77.1.0/24")
# Names this run could leak into the root namespace or /run/netns (other engineers' tests make their own there).
OUR_NAMES = re.compile(r"^(h\d+-eth\d+|ctl-eth\d+|ul1-eth\d+|nr[0-9a-f]{11}|c[12]|br-phy|br-int|vxlan_sys_\d+)$")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for path in (SYSTEM_PYTHON, shutil.which("unshare"), shutil.which("mnexec"), shutil.which("ovs-vswitchd"),
                 os.path.join(BIN_DIR, "nuage-ryu-manager"), os.path.join(BIN_DIR, "nuage-cni")):
        if not path or not os.access(path, os.X_OK):
            return f"missing {path}"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import mininet.net"], capture_output=True, check=False)
    return "Mininet is not importable by the system Python" if probe.returncode else None


pytestmark = [pytest.mark.integration, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def netns_names() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def pids_in_namespace(kind: str, inode: str) -> list[int]:
    """Pids of the processes whose ``kind`` namespace (pid, net) is ``inode`` (a readlink of /proc/X/ns/KIND)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/{kind}") == inode:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def sandbox_namespaces(unshare_pid: int, timeout: float = 20.0) -> dict[str, str]:
    """The pid and net namespaces of the sandbox's PID 1 (the child of ``unshare``), read while it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
                children = f.read().split()
            if children:
                child = children[0]
                return {kind: os.readlink(f"/proc/{child}/ns/{kind}") for kind in ("pid", "net")}
        except OSError:
            pass
        time.sleep(0.02)
    return {}


def wait_gone(namespaces: dict[str, str], timeout: float = 15.0) -> list[int]:
    """Poll until no process is left in the sandbox's namespaces; return what is still there at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = sorted({pid for kind, inode in namespaces.items() for pid in pids_in_namespace(kind, inode)})
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def run_e2e(*extra: str) -> tuple[int, dict, str]:
    """Run the end-to-end script; check from outside that its sandbox left nothing behind."""
    state_dir = f"/run/nuage-e2e-{uuid.uuid4().hex[:8]}"  # inside the sandbox's private /run
    links_before, netns_before = root_links(), netns_names()
    proc = subprocess.Popen([SYSTEM_PYTHON, RUNNER, "--hosts", "2", "--bin-dir", BIN_DIR, "--state-dir", state_dir,
                             "--timeout", "60", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    namespaces: dict[str, str] = {}
    try:
        namespaces = sandbox_namespaces(proc.pid)
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # --kill-child: the sandbox's PID 1 dies, and with it the sandbox
            proc.communicate()
        left = wait_gone(namespaces) if namespaces else []
    assert namespaces, "could not see the sandbox's namespaces while it ran"
    assert left == [], f"processes left in the sandbox's namespaces: {left}"
    assert {name for name in root_links() - links_before if OUR_NAMES.match(name)} == set()
    assert {name for name in netns_names() - netns_before if OUR_NAMES.match(name)} == set()
    assert not os.path.exists(state_dir)
    lines = stdout.strip().splitlines()
    assert lines, f"no report (exit {proc.returncode}): {stderr[-3000:]}"
    return proc.returncode, json.loads(lines[-1]), stderr


def test_two_containers_on_two_mininet_hosts_talk_through_the_overlay():
    code, report, stderr = run_e2e()
    details = json.dumps({k: report.get(k) for k in ("error", "traceback", "logs", "teardown_errors", "leftovers")},
                         indent=1)
    assert code == 0 and report["ok"], details + stderr[-2000:]
    # The agents registered their hosts with the Mininet underlay addresses.
    assert report["directory_hosts"] == {"h1": "192.0.2.11", "h2": "192.0.2.12"}
    # nuage-cni ADD made one vport per container, on the right host, addressed from the subnet, up.
    containers = report["containers"]
    assert {c["host"] for c in containers.values()} == {"h1", "h2"}
    ips = [c["ip"] for c in containers.values()]
    assert len(set(ips)) == 2 and all(ipaddress.ip_address(ip) in SUBNET for ip in ips)
    assert sorted(report["vports"]) == sorted([c["host"], c["ip"], "up"] for c in containers.values())
    # Real traffic across the hosts (VXLAN between the two OVS instances).
    traffic = report["traffic"]
    assert " 0% packet loss" in traffic["ping_c1_c2"]
    assert " 0% packet loss" in traffic["ping_c2_c1"]
    assert traffic["tcp_c1_c2"] is True
    for host, counts in traffic["vxlan_packets"].items():  # the only path between the hosts is the tunnel
        assert counts["rx"] > 0 and counts["tx"] > 0, (host, counts)
    # CNI DEL removed vports, OVS ports, veths; teardown stopped everything by pid and left nothing.
    assert report["after_del"] == {}
    assert report["teardown_errors"] == []
    assert report["leftovers"] == {}
    # The directory and the agents stopped on SIGTERM by themselves (no SIGKILL needed).
    assert {name: report["exit_status"][name] for name in ("directory", "agent-h1", "agent-h2")} == {
        "directory": 0, "agent-h1": 0, "agent-h2": 0}
    assert set(report["steps"]) == {"mininet_up", "directory_up", "agents_up", "objects_created",
                                    "containers_attached", "traffic_ok", "containers_detached", "torn_down"}


def test_failure_with_containers_attached_still_cleans_up():
    """A run that fails while containers are attached detaches them and stops everything, then says why."""
    code, report, _ = run_e2e("--fail-after", "containers_attached")
    assert code == 1 and not report["ok"]
    assert report["error"] == "E2EError: stopped after step containers_attached (--fail-after)"
    assert set(report["logs"]) == {"directory", "agent-h1", "agent-h2"}
    assert report["teardown_errors"] == []
    assert report["leftovers"] == {}


def test_bad_input_is_one_line():
    result = subprocess.run([SYSTEM_PYTHON, RUNNER, "--hosts", "1", "--bin-dir", BIN_DIR], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("--hosts must be between 2 and 8")


def test_killing_the_run_ends_the_whole_sandbox():
    """SIGKILL of the run while containers are attached (a hung or crashed test): the kernel ends everything."""
    state_dir = f"/run/nuage-e2e-{uuid.uuid4().hex[:8]}"
    links_before, netns_before = root_links(), netns_names()
    proc = subprocess.Popen([SYSTEM_PYTHON, RUNNER, "--hosts", "2", "--bin-dir", BIN_DIR, "--state-dir", state_dir,
                             "--timeout", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0)
    namespaces: dict[str, str] = {}
    seen = b""
    try:
        namespaces = sandbox_namespaces(proc.pid)
        deadline = time.monotonic() + RUN_TIMEOUT
        while b"containers_attached" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(proc.stderr.fileno(), 4096) if ready else b""
            if not chunk:  # the run ended (or the deadline passed) before getting there
                break
            seen += chunk
        inside = sorted({pid for kind, inode in namespaces.items() for pid in pids_in_namespace(kind, inode)})
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = wait_gone(namespaces) if namespaces else []
    assert b"containers_attached" in seen, seen.decode(errors="replace")
    assert len(inside) > 8  # Mininet shells, 2 x (ovsdb-server + ovs-vswitchd), directory + its DB, 2 agents
    assert left == [], f"processes left in the sandbox's namespaces: {left}"
    assert {name for name in root_links() - links_before if OUR_NAMES.match(name)} == set()
    assert {name for name in netns_names() - netns_before if OUR_NAMES.match(name)} == set()
    assert not os.path.exists(state_dir)
