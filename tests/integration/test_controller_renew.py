"""A controller target ovs-vswitchd has retried for a long time is renewed without losing flows.

docs/scale.md "Agent start-up": ovs-vswitchd 3.1 retries a controller it never reached every 8 s
(its fixed maximum back-off for new connections). The agent, whose OpenFlow listener is up when it
ensures br-int, replaces a controller row that is not connected by one with the other spelling of
the same target (``nuage_ryu/hostovs/controller_target.py``): ovs-vswitchd makes a new connection
(tried at once) and drops the old one, and, the bridge having a controller throughout, keeps its
flows (fail_mode=secure).
"""

from __future__ import annotations

import shutil
import socket
import threading

import pytest

from nuage_ryu.hostovs.host import HostOVS
from tests.of_listener import start_listener
from tests.ovs_fixtures import ovs, wait_until  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("ovs-vswitchd") is None, reason="needs Open vSwitch")
BRIDGE = "br-int"


def free_port() -> int:
    with socket.socket() as s:  # any port: the namespace is the test's own
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_log(instance) -> str:
    with open(instance.logfile("ovs-vswitchd")) as f:
        return f.read()


def test_a_long_retried_target_is_renewed_at_once_and_the_flows_stay(ovs):  # noqa: F811
    ovs.run(["ip", "link", "set", "lo", "up"])
    port = free_port()
    target = f"tcp:127.0.0.1:{port}"
    with HostOVS(ovs.db_remote, timeout=10) as host:
        host.ensure_integration_bridge(BRIDGE, "netdev", [target], 0xC2)
        host.wait_for_vswitchd()
        wait_until(lambda: ovs.run(["ovs-ofctl", "-O", "OpenFlow13", "show", BRIDGE], check=False).returncode == 0, 20,
                   message="ovs-vswitchd to create the bridge")
        ovs.ofctl("-O", "OpenFlow13", "add-flow", BRIDGE, "table=0,priority=7,actions=drop")
        # ovs-vswitchd has retried long enough to be at its 8 s step
        wait_until(lambda: "continuing to retry connections in the background" in read_log(ovs), 30, 0.2,
                   "ovs-vswitchd to reach its maximum back-off")
        (old,) = host.bridge_config(BRIDGE)["controllers"]
        assert old["target"] == target and not old["is_connected"]
        listener = start_listener(ovs, port)
        accepted = threading.Event()
        threading.Thread(target=lambda: listener.stdout.readline() and accepted.set(), daemon=True).start()
        try:
            host.ensure_integration_bridge(BRIDGE, "netdev", [target], 0xC2, renew_controllers=True)
            assert accepted.wait(20), "ovs-vswitchd never connected"
            raw = ovs.vsctl("get", "controller", BRIDGE, "target").strip()
            assert raw == f'"tcp:127.0.0.1:0{port}"'  # the other spelling of the same endpoint
            wait_until(lambda: host.bridge_config(BRIDGE)["controllers"][0]["is_connected"], 20,
                       message="the controller row to say connected")
            (now,) = host.bridge_config(BRIDGE)["controllers"]
            assert now["target"] == target  # reported in the plain spelling
            log = read_log(ovs)
            assert f'added primary controller "tcp:127.0.0.1:0{port}"' in log
            assert f'removed primary controller "{target}"' in log
            assert "priority=7 actions=drop" in ovs.ofctl("-O", "OpenFlow13", "dump-flows", BRIDGE)
            # connected now: ensuring again keeps the row (and the connection)
            host.ensure_integration_bridge(BRIDGE, "netdev", [target], 0xC2, renew_controllers=True)
            assert ovs.vsctl("get", "controller", BRIDGE, "target").strip() == raw
            assert "priority=7 actions=drop" in ovs.ofctl("-O", "OpenFlow13", "dump-flows", BRIDGE)
        finally:
            listener.kill()
            listener.wait()
