"""The Mininet topology (mininet_topos/nuage_lab.py) built through the Mininet API and stopped cleanly.

Never through ``mn``: on an exception ``mn`` runs its global cleanup, which
kills every controller- and OVS-looking process on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from nuage_ryu.hostovs.host import datapath_id_for, format_datapath_id
from nuage_ryu.hostovs.process import kill_pid, pid_alive

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(REPO, "mininet_topos", "run_nuage_lab.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's Mininet lives in the system Python, not in the venv


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if text.encode() in cmdline.read() and pid_alive(int(entry)):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def reap(state_dir: str, node_pids: dict[str, int]) -> None:
    """Cleanup after a runner that did not finish: our node shells and our OVS daemons, by pid."""
    for pid in node_pids.values():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                ours = b"mininet:" in cmdline.read()
        except OSError:
            continue
        if ours:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # a node shell leads its own process group
    for pid in processes_mentioning(state_dir):
        kill_pid(pid)
    shutil.rmtree(state_dir, ignore_errors=True)


def test_mininet_topology_pingall_and_host_ovs():
    state_dir = tempfile.mkdtemp(prefix="nr-mn-")
    links_before = root_links()
    runner = subprocess.Popen([SYSTEM_PYTHON, RUNNER, "--hosts", "3", "--check", "--state-dir", state_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    node_pids: dict[str, int] = {}
    try:
        stdout, stderr = runner.communicate(timeout=120)
        assert runner.returncode == 0, stderr
        report = json.loads(stdout.strip().splitlines()[-1])
        node_pids = report["node_pids"]
        assert report["ping_loss"] == 0
        assert sorted(report["hosts"]) == ["h1", "h2", "h3"]
        for index, (name, host) in enumerate(sorted(report["hosts"].items()), start=1):
            underlay_ip = f"192.0.2.{10 + index}"
            assert host["br_int"]["fail_mode"] == "secure"
            assert host["br_int"]["datapath_type"] == "netdev"
            assert host["br_int"]["protocols"] == "[OpenFlow13, OpenFlow14, OpenFlow15]"
            assert host["br_int"]["datapath_id"] == format_datapath_id(datapath_id_for(name))
            assert host["br_int"]["controllers"] == ["tcp:127.0.0.1:6653"]
            assert host["vxlan_options"] == f'{{key=flow, local_ip="{underlay_ip}", remote_ip=flow}}'
            assert host["br_phy"] == {"fail_mode": "standalone", "ports": [f"{name}-eth0"]}
            assert host["br_phy_addr"] == [f"{underlay_ip}/24"]
            assert set(host["ovs_pids"]) == {"ovsdb-server", "ovs-vswitchd"}
        # Stopped by itself: node shells, OVS daemons, files and links are gone.
        for pid in node_pids.values():
            assert not pid_alive(pid)
        for host in report["hosts"].values():
            for pid in host["ovs_pids"].values():
                assert not pid_alive(pid)
        assert processes_mentioning(state_dir) == []
        assert not os.path.exists(state_dir)
        assert root_links() == links_before
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if not node_pids:
            with contextlib.suppress(OSError, ValueError), \
                    open(os.path.join(state_dir, "mininet-pids.json")) as recorded:
                node_pids = json.load(recorded)
        reap(state_dir, node_pids)


def test_mininet_runner_bad_input_is_one_line():
    result = subprocess.run([SYSTEM_PYTHON, RUNNER, "--hosts", "0", "--check"], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("--hosts must be between 1 and 100")


def test_mn_custom_topology_in_a_sandbox():
    """The documented 'mn --custom ... --topo nuage,3 --controller none --test pingall' works.

    Run inside fresh PID, network and mount namespaces with a private /tmp and
    /run/openvswitch: should 'mn' hit an exception, its global cleanup (killall,
    pkill -f, rm /tmp/*.log, del-br) can then only see the sandbox. When mn
    (PID 1 there) exits, the kernel ends everything left in the sandbox.
    """
    links_before = root_links()
    script = ("mount -t tmpfs nuage-mn-tmp /tmp && mkdir -p /run/openvswitch && "
              "mount -t tmpfs nuage-mn-ovs /run/openvswitch && ip link set lo up && "
              "HOME=/tmp exec mn --custom mininet_topos/nuage_lab.py --topo nuage,3 "
              "--controller none --test pingall")
    result = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc",
                             "--propagation", "private", "sh", "-c", script],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Results: 0% dropped (12/12 received)" in output
    assert "Caught exception" not in output
    assert processes_mentioning("nuage_lab.py") == []
    assert root_links() == links_before
