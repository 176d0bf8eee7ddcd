"""The sync engine in an os-ken app under nuage-ryu-manager, against a real Open vSwitch.

The app is ``tests/flow_sync_harness.py`` (BridgeSync wired like the VRS agent),
driven over its control socket. A private ovsdb-server + ovs-vswitchd runs a
netdev bridge whose controller is the app on a loopback port. Checked:
a few thousand flows installed and read back (ovs-ofctl and OpenFlow); a change
sends only the difference; an app restart sends nothing and leaves every flow
untouched (durations keep counting); an ovs-vswitchd restart (same database,
no flows) is detected by the canary and everything is pushed again.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from nuage_ryu.hostovs.process import OVS_VSWITCHD, kill_pid
from nuage_ryu.vrs import ofwire, sync
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import Flow, Goto, Output, SetField, match
from tests.flow_sync_harness import SOCKET_ENV, HarnessClient
from tests.integration.test_sync_ofwire_ovs import OfClient, dump
from tests.ovs_fixtures import ovs, wait_until  # noqa: F401

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP_FILE = os.path.join(REPO, "tests", "flow_sync_harness.py")
BRIDGE = "br-sync"
DPID = "00000000000000c1"
N_FLOWS = 3000


def free_port() -> int:
    # Any port: the namespace is the test's own, nothing else listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_flows(n: int, version: int = 0) -> list[Flow]:
    out = []
    for i in range(n):
        cookie = cookie_for(CookieKind.VPORT, f"vp-{i // 10}")
        if i % 2:
            out.append(Flow(0, 100, match(in_port=1 + i, eth_src=f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}"),
                            (SetField("reg6", 100 + version), Goto(10)), cookie))
        else:
            out.append(Flow(10, 100, match(eth_type=0x800, reg6=100, ipv4_dst=f"10.0.{i >> 8}.{i & 255}"),
                            (SetField("eth_dst", f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}"), Output(1 + i)),
                            cookie))
    return out


class Harness:
    """nuage-ryu-manager running the harness app; started and stopped by pid."""

    def __init__(self, instance, port: int, workdir) -> None:
        self.instance = instance
        self.port = port
        self.workdir = workdir
        self.sock_path = os.path.join(str(workdir), "harness.sock")
        self.proc = None
        self.client = None
        self.log = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock_path)
        env = dict(os.environ, **{SOCKET_ENV: self.sock_path})
        argv = [sys.executable, "-m", "nuage_ryu.cmd.manager", "--state-dir", str(self.workdir),
                "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(self.port), APP_FILE]
        # The fixture's OVS lives in a network namespace of its own: so does the app, on its loopback.
        self.instance.run(["ip", "link", "set", "lo", "up"])
        argv = self.instance.wrap(argv)
        self.log = open(os.path.join(str(self.workdir), "manager.log"), "a")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_until(lambda: os.path.exists(self.sock_path) or self.proc.poll() is not None, timeout=20,
                   message="harness control socket")
        assert self.proc.poll() is None, "nuage-ryu-manager exited"
        self.client = HarnessClient(self.sock_path)
        wait_until(lambda: DPID in self.call("status")["bridges"], timeout=20, message="bridge to connect")

    def call(self, cmd: str, **kw) -> dict:
        reply = self.client.call(cmd=cmd, **kw)
        assert "error" not in reply, reply
        return reply

    def set_desired(self, flows) -> dict:
        path = os.path.join(str(self.workdir), "desired.pickle")
        with open(path, "wb") as f:
            pickle.dump(flows, f)
        reply = self.call("set_desired", pickle=path)
        assert reply["ok"], reply
        return reply

    def stop(self, sig=signal.SIGTERM) -> None:
        """Stop our manager process by its pid (SIGTERM or SIGKILL), then reap it."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


@pytest.fixture
def harness(ovs, tmp_path):  # noqa: F811
    port = free_port()
    ovs.vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev", "fail_mode=secure",
              "protocols=OpenFlow13,OpenFlow14", f"other-config:datapath-id={DPID}")
    ovs.vsctl("set-controller", BRIDGE, f"tcp:127.0.0.1:{port}")
    h = Harness(ovs, port, tmp_path)
    try:
        h.start()
        yield h
    finally:
        h.stop()  # also when start() failed half-way: never leave the manager running


def read_back(instance) -> dict:
    client = OfClient(os.path.join(instance.rundir, BRIDGE + ".mgmt"))
    try:
        return {f.key: f for f in dump(client)}
    finally:
        client.close()


def ofctl_durations(instance) -> dict[tuple[str, str], float]:
    """{(cookie, rest of the line): duration} from ovs-ofctl dump-flows."""
    out = {}
    for line in instance.ofctl("-O", "OpenFlow14", "dump-flows", BRIDGE).splitlines():
        m = re.match(r"\s*cookie=(0x[0-9a-f]+), duration=([0-9.]+)s, (.*)", line)
        if m:
            rest = re.sub(r"n_packets=\d+, n_bytes=\d+, ", "", m.group(3))
            out[(m.group(1), rest)] = float(m.group(2))
    return out


def expected(flows) -> dict:
    return {f.key: ofwire.canonical_flow(f) for f in list(flows) + [sync.CANARY_FLOW]}


def test_install_change_restart_app_restart_ovs(harness):
    instance = harness.instance
    flows = make_flows(N_FLOWS)

    # 1. Install a few thousand flows: one bundle, all of them, confirmed.
    reply = harness.set_desired(flows)
    assert reply["sent"][DPID] == [1, N_FLOWS + 1, 0]  # +1: the canary
    assert reply["bridges"][DPID]["streamed"] == 1  # an empty bridge: sent while indexed
    assert read_back(instance) == expected(flows)
    lines = ofctl_durations(instance)
    assert len(lines) == N_FLOWS + 1
    assert sum(1 for cookie, _ in lines if int(cookie, 16) == sync.CANARY_FLOW.cookie) == 1

    # 2. Change: drop 100, modify 50, add 200 -> exactly that goes out.
    changed = flows[100:]
    changed[:50] = [Flow(f.table, f.priority, f.match, (Output(4000),), f.cookie) for f in changed[:50]]
    changed += make_flows(N_FLOWS + 200)[N_FLOWS:]
    reply = harness.set_desired(changed)
    assert reply["sent"][DPID] == [1, 250, 100]
    assert read_back(instance) == expected(changed)

    # 3. Restart the app (SIGTERM, then SIGKILL): it reconciles and sends nothing.
    installed_at = time.monotonic()
    before = ofctl_durations(instance)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        harness.stop(sig)
        harness.start()
        reply = harness.set_desired(changed)
        assert reply["sent"][DPID] == [0, 0, 0]
        status = reply["bridges"][DPID]
        assert status["in_sync"] and status["bundles"] == 0 and status["reads"] == 1
    after = ofctl_durations(instance)
    assert after.keys() == before.keys()
    # Not one flow was re-added: every flow is older than the restarts.
    age = time.monotonic() - installed_at
    assert min(after.values()) >= age - 0.5, (min(after.values()), age)

    # 4. Restart ovs-vswitchd (same database, empty flow table): canary missing -> full push.
    kill_pid(instance.pids()[OVS_VSWITCHD], OVS_VSWITCHD)
    instance.start()
    wait_until(lambda: harness.call("status")["bridges"].get(DPID, {}).get("full_pushes", 0) >= 1
               and harness.call("status")["bridges"][DPID]["in_sync"], timeout=30,
               message="canary-triggered full push after the OVS restart")
    status = harness.call("status")["bridges"][DPID]
    assert status["last_adds"] == len(changed) + 1 and status["last_deletes"] == 0
    assert read_back(instance) == expected(changed)


def test_foreign_flows_survive_and_stale_flows_go(harness):
    instance = harness.instance
    instance.ofctl("-O", "OpenFlow14", "add-flow", BRIDGE,
                   "table=0,priority=7,cookie=0,in_port=77,actions=drop")
    stale = cookie_for(CookieKind.VPORT, "deleted-vport")
    instance.ofctl("-O", "OpenFlow14", "add-flow", BRIDGE,
                   f"table=0,priority=8,cookie={stale:#x},in_port=78,actions=drop")
    harness.stop()
    harness.start()  # reads the bridge, which now holds both
    flows = make_flows(20)
    reply = harness.set_desired(flows)
    assert reply["sent"][DPID] == [1, 21, 1]
    keys = read_back(instance)
    assert (0, 7, match(in_port=77)) in keys  # cookie 0: not ours, left alone
    assert (0, 8, match(in_port=78)) not in keys  # our cookie, not desired: deleted
    assert {k: f for k, f in keys.items() if k != (0, 7, match(in_port=77))} == expected(flows)


def test_streamed_install_sends_a_repeated_key_twice_and_the_later_flow_wins(harness):
    """A desired set with two flows for one key: the streamed bundle carries both ADDs (the first is
    on the wire before the second is seen); OVS applies them in order, as the indexed path's map would."""
    flows = make_flows(40)
    again = Flow(flows[3].table, flows[3].priority, flows[3].match, (Output(4000),), flows[3].cookie)
    reply = harness.set_desired(flows + [again])
    status = reply["bridges"][DPID]
    assert status["streamed"] == 1 and status["in_sync"] and status["errors"] == 0
    assert reply["sent"][DPID] == [1, 42, 0]  # 40 + the repeated key + the canary
    want = expected(flows[:3] + [again] + flows[4:])
    assert read_back(harness.instance) == want
    reply = harness.set_desired(flows[:3] + [again] + flows[4:])  # the same set, indexed now: nothing to send
    assert reply["sent"][DPID] == [0, 0, 0]
