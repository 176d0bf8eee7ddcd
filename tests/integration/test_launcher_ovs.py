"""The launcher against a real Open vSwitch: os-ken under nuage-ryu-manager and classic Ryu.

A private ovsdb-server + ovs-vswitchd (userspace datapath) gets a netdev bridge
whose controller is the app under test on a loopback port; the app records the
connected datapath in <state_dir>/datapaths.json, which the test polls.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.ovs_fixtures import ovs, wait_until  # noqa: F401

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RYU_PYTHON = os.path.join(REPO, ".venv-ryu", "bin", "python")
RYU_WRAPPER = os.path.join(REPO, "scripts", "ryu-manager-compat")
APP_FILE = os.path.join(REPO, "apps", "datapath_monitor.py")
DPID = 0x00000000000000A1


# The private OVS runs in a network namespace of its own; the app under test
# runs there too and listens on that namespace's loopback.
OFP_PORT = 16653


def in_netns(ovs, argv):  # noqa: F811
    ovs.run(["ip", "link", "set", "lo", "up"])
    return ovs.wrap(argv)


@contextlib.contextmanager
def running(argv, env=None):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def add_bridge(ovs, port: int) -> None:  # noqa: F811
    ovs.vsctl(
        "add-br", "br-test", "--", "set", "bridge", "br-test", "datapath_type=netdev",
        "fail_mode=secure", "protocols=OpenFlow13,OpenFlow14",
        f"other-config:datapath-id={DPID:016x}",
    )
    ovs.vsctl("set-controller", "br-test", f"tcp:127.0.0.1:{port}")


def controller_connected(ovs) -> str:  # noqa: F811
    return ovs.vsctl("get", "controller", "br-test", "is_connected").strip()


def connected_dpids(state_dir) -> set[int]:
    try:
        with open(os.path.join(state_dir, "datapaths.json")) as f:
            return {int(d["dpid"], 16) for d in json.load(f)}
    except (FileNotFoundError, json.JSONDecodeError):
        return set()


def stop_and_check(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert "Traceback" not in out, out
    return out


def test_os_ken_app_under_nuage_ryu_manager(ovs, tmp_path):  # noqa: F811
    port = OFP_PORT
    argv = [sys.executable, "-m", "nuage_ryu.cmd.manager", "--state-dir", str(tmp_path),
            "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(port), APP_FILE]
    with running(in_netns(ovs, argv)) as proc:
        add_bridge(ovs, port)
        wait_until(lambda: DPID in connected_dpids(tmp_path), timeout=20, message="bridge to connect")
        wait_until(lambda: controller_connected(ovs) == "true", timeout=10,
                   message="OVS to report the controller connected")
        out = stop_and_check(proc)
        assert proc.returncode == 0, out
    # fail_mode=secure: the bridge keeps working without its controller and
    # OVS notices the controller is gone.
    wait_until(lambda: controller_connected(ovs) == "false", timeout=20,
               message="OVS to notice the controller stopped")


@pytest.mark.skipif(not os.path.exists(RYU_PYTHON), reason="classic Ryu venv absent (make test creates it)")
def test_same_app_under_classic_ryu(ovs, tmp_path):  # noqa: F811
    port = OFP_PORT
    env = dict(os.environ, NUAGE_RYU_STATE_DIR=str(tmp_path))
    argv = [RYU_PYTHON, RYU_WRAPPER, "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(port),
            APP_FILE]
    with running(in_netns(ovs, argv), env=env) as proc:
        add_bridge(ovs, port)
        wait_until(lambda: DPID in connected_dpids(tmp_path), timeout=30, message="bridge to connect to Ryu")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert "ryu.controller.ofp_handler" in out  # it really ran under classic Ryu
