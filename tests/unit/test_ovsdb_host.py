"""HostOVS against a private ovsdb-server (and ovs-vswitchd where ofports matter)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from ovsdbapp.backend.ovs_idl import event

from nuage_ryu.hostovs.contract import EXT_CONTAINER_ID, EXT_IFACE_ID, EXT_IFNAME, EXT_VPORT_ID, VPortPort
from nuage_ryu.hostovs.host import (
    HostOVS,
    HostOVSError,
    VPortSpec,
    datapath_id_for,
    format_datapath_id,
)
from tests.ovs_fixtures import ovs, ovsdb  # noqa: F401

CONTROLLER = "tcp:127.0.0.1:6653"


def vsctl_json(instance, table, record, *columns):
    """One row as {column: python value} through ovs-vsctl (an independent reader)."""
    out = json.loads(instance.vsctl("--format=json", f"--columns={','.join(columns)}",
                                    "list", table, record))
    return dict(zip(out["headings"], (decode(v) for v in out["data"][0]), strict=True))


def decode(value):
    if isinstance(value, list) and value and value[0] == "map":
        return {k: decode(v) for k, v in value[1]}
    if isinstance(value, list) and value and value[0] == "set":
        return [decode(v) for v in value[1]]
    if isinstance(value, list) and value and value[0] == "uuid":
        return value[1]
    return value


@pytest.fixture
def host(ovsdb):  # noqa: F811
    with HostOVS(ovsdb.db_remote, timeout=5) as connection:
        yield connection


@pytest.fixture
def switch_host(ovs):  # noqa: F811
    with HostOVS(ovs.db_remote, timeout=5) as connection:
        yield connection


def test_datapath_id_is_stable_nonzero_and_distinct():
    assert datapath_id_for("h1") == datapath_id_for("h1")
    assert datapath_id_for("h1") != datapath_id_for("h2")
    for name in ("h1", "h2", "compute-17.example.net"):
        assert 0 < datapath_id_for(name) < 2 ** 63
    assert len(format_datapath_id(datapath_id_for("h1"))) == 16
    with pytest.raises(HostOVSError):
        datapath_id_for("")
    with pytest.raises(HostOVSError):
        format_datapath_id(0)


def test_integration_bridge_settings(host, ovsdb):  # noqa: F811
    dpid = datapath_id_for("h1")
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], dpid)
    bridge = vsctl_json(ovsdb, "Bridge", "br-int", "fail_mode", "protocols", "datapath_type",
                        "other_config", "controller")
    assert bridge["fail_mode"] == "secure"
    assert sorted(bridge["protocols"]) == ["OpenFlow13", "OpenFlow14", "OpenFlow15"]
    assert bridge["datapath_type"] == "netdev"
    assert bridge["other_config"] == {"datapath-id": format_datapath_id(dpid), "disable-in-band": "true"}
    controller = vsctl_json(ovsdb, "Controller", bridge["controller"], "target", "connection_mode",
                            "inactivity_probe", "max_backoff")
    assert controller == {"target": CONTROLLER, "connection_mode": "out-of-band",
                          "inactivity_probe": 10000, "max_backoff": 1000}


def test_integration_bridge_rerun_changes_nothing(host, ovsdb):  # noqa: F811
    dpid = datapath_id_for("h1")
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], dpid)
    before = ovsdb.vsctl("--format=json", "list", "Bridge", "br-int")
    controllers = ovsdb.vsctl("--format=json", "list", "Controller")
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], dpid)
    # Same rows, same controller uuid: a re-run must not bounce the OpenFlow connection.
    assert ovsdb.vsctl("--format=json", "list", "Bridge", "br-int") == before
    assert ovsdb.vsctl("--format=json", "list", "Controller") == controllers
    assert ovsdb.vsctl("list-br").split() == ["br-int"]


def test_integration_bridge_controllers_follow_the_argument(host, ovsdb):  # noqa: F811
    dpid = datapath_id_for("h1")
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], dpid)
    first = ovsdb.vsctl("get", "Bridge", "br-int", "controller").strip()
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER, "tcp:192.0.2.2:6653"], dpid)
    assert ovsdb.vsctl("get-controller", "br-int").split() == [CONTROLLER, "tcp:192.0.2.2:6653"]
    # The existing controller row is kept, only the new target is added.
    assert first.strip("[]") in ovsdb.vsctl("get", "Bridge", "br-int", "controller")
    host.ensure_integration_bridge("br-int", "netdev", ["tcp:192.0.2.2:6653"], dpid)
    assert ovsdb.vsctl("get-controller", "br-int").split() == ["tcp:192.0.2.2:6653"]


def test_integration_bridge_bad_arguments(host):
    with pytest.raises(HostOVSError, match="datapath_type"):
        host.ensure_integration_bridge("br-int", "dpdk-ish", [CONTROLLER], 1)
    with pytest.raises(HostOVSError, match="controller"):
        host.ensure_integration_bridge("br-int", "netdev", [], 1)


def test_tunnel_port_is_flow_based_and_idempotent(host, ovsdb):  # noqa: F811
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    host.ensure_tunnel_port("br-int", "192.0.2.11")
    host.ensure_tunnel_port("br-int", "192.0.2.11")
    iface = vsctl_json(ovsdb, "Interface", "vxlan0", "type", "options")
    assert iface == {"type": "vxlan",
                     "options": {"remote_ip": "flow", "key": "flow", "local_ip": "192.0.2.11"}}
    assert ovsdb.vsctl("list-ports", "br-int").split() == ["vxlan0"]
    # A changed tunnel IP corrects the existing port instead of adding one.
    host.ensure_tunnel_port("br-int", "192.0.2.12")
    assert vsctl_json(ovsdb, "Interface", "vxlan0", "options")["options"]["local_ip"] == "192.0.2.12"
    assert ovsdb.vsctl("list-ports", "br-int").split() == ["vxlan0"]


def test_vport_ports_external_ids_list_and_delete(host, ovsdb):  # noqa: F811
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    host.ensure_tunnel_port("br-int", "192.0.2.11")
    host.add_vport_port("br-int", "nv-aaaa", "vport-a", "container-a", extra_ids={"attached-mac": "x"})
    host.add_vport_port("br-int", "nv-bbbb", "vport-b", "container-b", ofport_request=7)
    host.add_vport_port("br-int", "nv-aaaa", "vport-a", "container-a", extra_ids={"attached-mac": "x"})
    ids = vsctl_json(ovsdb, "Interface", "nv-aaaa", "external_ids")["external_ids"]
    assert ids == {EXT_VPORT_ID: "vport-a", EXT_CONTAINER_ID: "container-a", EXT_IFNAME: "nv-aaaa",
                   EXT_IFACE_ID: "vport-a", "attached-mac": "x"}
    assert vsctl_json(ovsdb, "Interface", "nv-bbbb", "ofport_request")["ofport_request"] == 7
    ports = host.list_vport_ports("br-int")
    assert [p.ifname for p in ports] == ["nv-aaaa", "nv-bbbb"]  # the tunnel port is not a vport
    assert ports[1] == VPortPort(ifname="nv-bbbb", ofport=None, vport_id="vport-b",
                                 container_id="container-b", external_ids=ports[1].external_ids)
    host.delete_vport_port("br-int", "nv-aaaa")
    host.delete_vport_port("br-int", "nv-aaaa")  # already gone: no error
    assert [p.ifname for p in host.list_vport_ports("br-int")] == ["nv-bbbb"]
    assert sorted(ovsdb.vsctl("list-ports", "br-int").split()) == ["nv-bbbb", "vxlan0"]


def test_vport_port_errors(host, ovsdb):  # noqa: F811
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    with pytest.raises(HostOVSError, match="bridge br-nope does not exist"):
        host.add_vport_port("br-nope", "nv-aaaa", "vport-a", "container-a")
    with pytest.raises(HostOVSError, match="bridge br-nope does not exist"):
        host.list_vport_ports("br-nope")
    with pytest.raises(HostOVSError, match="interface name"):
        host.add_vport_port("br-int", "a-name-that-is-too-long", "vport-a", "container-a")
    ovsdb.vsctl("--no-wait", "add-br", "br-other")
    host.add_vport_port("br-other", "nv-aaaa", "vport-a", "container-a")
    with pytest.raises(HostOVSError, match="already exists on bridge br-other"):
        host.add_vport_port("br-int", "nv-aaaa", "vport-a", "container-a")


def test_unreachable_remote_fails_fast_with_one_line():
    for remote in ("unix:/nonexistent/db.sock", "tcp:127.0.0.1:1"):
        started = time.monotonic()
        with pytest.raises(HostOVSError) as caught:
            HostOVS(remote, timeout=5)
        assert time.monotonic() - started < 2
        assert remote in str(caught.value) and "\n" not in str(caught.value)


def test_wait_for_ofport_with_vswitchd(switch_host, ovs):  # noqa: F811
    switch_host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], datapath_id_for("h1"))
    ovs.run(["ip", "link", "add", "nv-host", "type", "veth", "peer", "name", "nv-peer"])
    switch_host.add_vport_port("br-int", "nv-host", "vport-a", "container-a")
    ofport = switch_host.wait_for_ofport("nv-host", timeout=10)
    assert ofport > 0
    assert switch_host.get_ofport("nv-host") == ofport
    assert switch_host.list_vport_ports("br-int")[0].ofport == ofport
    # ovs-vswitchd applied the datapath id we asked for.
    switch_host.wait_for_vswitchd()
    assert ovs.vsctl("get", "Bridge", "br-int", "datapath_id").strip().strip('"') == \
        format_datapath_id(datapath_id_for("h1"))


def test_wait_for_ofport_reports_failure_and_timeout(switch_host):
    switch_host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    # No such network device: ovs-vswitchd sets ofport -1 and an error message.
    switch_host.add_vport_port("br-int", "nv-missing", "vport-a", "container-a")
    with pytest.raises(HostOVSError, match="could not add interface nv-missing"):
        switch_host.wait_for_ofport("nv-missing", timeout=10)
    started = time.monotonic()
    with pytest.raises(HostOVSError, match="no ofport within"):
        switch_host.wait_for_ofport("nv-never", timeout=0.5)
    assert time.monotonic() - started < 2


def test_watch_event_sees_vport_changes(host):
    seen = threading.Event()

    class VPortCreated(event.RowEvent):
        def __init__(self):
            super().__init__((self.ROW_CREATE,), "Interface", (("name", "=", "nv-watch"),))

        def run(self, ev, row, old):
            seen.set()

    watcher = VPortCreated()
    host.watch_event(watcher)
    try:
        host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
        host.add_vport_port("br-int", "nv-watch", "vport-w", "container-w")
        assert seen.wait(5)
    finally:
        host.unwatch_event(watcher)


def test_silent_remote_times_out_within_the_deadline():
    """A server that accepts but never answers (a hung ovsdb-server) fails after `timeout`, not later."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        remote = f"tcp:127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(HostOVSError, match="cannot reach OVSDB at " + remote):
            HostOVS(remote, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 2


def test_physical_bridge_is_standalone_with_its_uplink(host, ovsdb):  # noqa: F811
    host.ensure_physical_bridge("br-phy", "netdev", uplink="eth0")
    host.ensure_physical_bridge("br-phy", "netdev", uplink="eth0")
    bridge = vsctl_json(ovsdb, "Bridge", "br-phy", "fail_mode", "datapath_type")
    assert bridge == {"fail_mode": "standalone", "datapath_type": "netdev"}
    assert ovsdb.vsctl("list-ports", "br-phy").split() == ["eth0"]
    assert host.list_vport_ports("br-phy") == []  # an uplink is not a vport


def test_batches_are_one_transaction(host, ovsdb):  # noqa: F811
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    specs = [VPortSpec(f"nv-{i}", f"vport-{i}", f"container-{i}") for i in range(20)]
    host.add_vport_ports("br-int", specs)
    assert [p.vport_id for p in host.list_vport_ports("br-int")] == sorted(f"vport-{i}" for i in range(20))
    # All or nothing: one bad spec and none of the batch is applied.
    with pytest.raises(HostOVSError, match="interface name"):
        host.add_vport_ports("br-int", [VPortSpec("nv-new", "vport-new", "c"), VPortSpec("", "v", "c")])
    ovsdb.vsctl("--no-wait", "add-br", "br-other")
    host.add_vport_port("br-other", "nv-taken", "vport-t", "container-t")
    with pytest.raises(HostOVSError, match="already exists on bridge br-other"):
        host.add_vport_ports("br-int", [VPortSpec("nv-new", "vport-new", "c"),
                                        VPortSpec("nv-taken", "vport-t", "c")])
    assert "nv-new" not in [p.ifname for p in host.list_vport_ports("br-int")]
    host.delete_vport_ports("br-int", [s.ifname for s in specs] + ["nv-absent"])
    assert host.list_vport_ports("br-int") == []


def test_an_ovsdb_that_does_not_answer_in_time_is_a_one_line_error(ovsdb, monkeypatch):  # noqa: F811
    """ovsdbapp's bare TimeoutException has no message and its str() raises: seen as a traceback
    from 'nuage-lab status' on a loaded machine. The first sync is made to time out here."""
    from ovsdbapp import exceptions as ovsdbapp_exceptions
    from ovsdbapp.backend.ovs_idl import connection

    def no_answer(self):
        raise ovsdbapp_exceptions.TimeoutException()

    monkeypatch.setattr(connection.Connection, "start", no_answer)
    with pytest.raises(HostOVSError, match=r"cannot reach OVSDB at .*: no answer within 2s"):
        HostOVS(ovsdb.db_remote, timeout=2)


def test_adds_and_deletes_of_ports_are_one_transaction(host, ovsdb):  # noqa: F811
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    old = [VPortSpec(f"nv-old{i}", f"vport-old{i}", f"c-old{i}") for i in range(3)]
    host.add_vport_ports("br-int", old)
    new = [VPortSpec(f"nv-new{i}", f"vport-new{i}", f"c-new{i}") for i in range(3)]
    host.change_vport_ports("br-int", new, [s.ifname for s in old] + ["nv-absent"])
    assert [p.ifname for p in host.list_vport_ports("br-int")] == [s.ifname for s in new]
    # All or nothing: a bad add keeps the deletes from happening too.
    with pytest.raises(HostOVSError, match="interface name"):
        host.change_vport_ports("br-int", [VPortSpec("", "v", "c")], [new[0].ifname])
    assert [p.ifname for p in host.list_vport_ports("br-int")] == [s.ifname for s in new]


def test_reads_do_not_wait_for_a_transaction_on_the_wire(host, ovsdb):  # noqa: F811
    """ovsdbapp held the IDL lock from sending a transaction until its reply: every port listing
    and ofport lookup of the agent queued behind each port transaction's round trip. Here
    ovsdb-server is stopped while a transaction is on the wire, and reads still answer."""
    import os
    import signal

    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    host.add_vport_ports("br-int", [VPortSpec("nv-a", "vport-a", "c-a")])
    with open(ovsdb.pidfile("ovsdb-server")) as f:
        server = int(f.read())
    os.kill(server, signal.SIGSTOP)
    try:
        committing = threading.Thread(target=host.add_vport_ports,
                                      args=("br-int", [VPortSpec("nv-b", "vport-b", "c-b")]))
        committing.start()
        read = []
        reader = threading.Thread(target=lambda: read.append(
            ([p.ifname for p in host.list_vport_ports("br-int")], host.get_ofport("nv-a"))))
        reader.start()
        reader.join(timeout=5)
        assert read == [(["nv-a"], None)]  # answered from the cache, the transaction still in flight
        assert committing.is_alive()
    finally:
        os.kill(server, signal.SIGCONT)
    committing.join(timeout=10)
    assert [p.ifname for p in host.list_vport_ports("br-int")] == ["nv-a", "nv-b"]


def test_a_transaction_on_a_stale_cache_is_retried(host, ovsdb):  # noqa: F811
    """TRY_AGAIN (a verify failed: the cache was behind) re-runs the commands once the cache changed."""
    host.ensure_integration_bridge("br-int", "netdev", [CONTROLLER], 1)
    ovsdb.vsctl("--no-wait", "add-br", "br-x")
    from ovsdbapp.backend.ovs_idl import command

    class StaleThenFresh(command.BaseCommand):
        runs = 0

        def run_idl(self, txn):
            type(self).runs += 1
            br = self.api._tables["Bridge"].rows.values()
            row = next(b for b in br if b.name == "br-x")
            row.verify("external_ids")
            if type(self).runs == 1:  # someone else changes the row before this commit lands
                ovsdb.vsctl("--no-wait", "set", "bridge", "br-x", "external_ids:k=other")
            row.external_ids = dict(row.external_ids, mine="yes")

    host._commit([StaleThenFresh(host.api)])
    assert StaleThenFresh.runs == 2
    assert vsctl_json(ovsdb, "Bridge", "br-x", "external_ids")["external_ids"] == {"k": "other", "mine": "yes"}
