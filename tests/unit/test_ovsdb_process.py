"""OvsInstance: start, drive and stop a private Open vSwitch."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from nuage_ryu.hostovs.process import OVS_VSWITCHD, OVSDB_SERVER, OvsError, OvsInstance, pid_alive
from tests.ovs_fixtures import namespace, ovs, ovsdb  # noqa: F401


def test_start_and_drive(ovs):  # noqa: F811
    pids = ovs.pids()
    assert set(pids) == {OVSDB_SERVER, OVS_VSWITCHD}
    assert ovs.db_remote == "unix:" + os.path.join(ovs.rundir, "db.sock")
    ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
    assert "br0" in ovs.vsctl("list-br").split()
    assert "OFPT_FEATURES_REPLY" in ovs.ofctl("show", "br0")
    assert "netdev@ovs-netdev" in ovs.appctl("dpif/show")
    assert ovs.appctl("version", target=OVSDB_SERVER).startswith("ovsdb-server")


def test_start_twice_is_harmless(ovsdb):  # noqa: F811
    before = ovsdb.pids()
    ovsdb.start(vswitchd=False)
    assert ovsdb.pids() == before


def test_stop_is_idempotent_and_works_from_a_fresh_object():
    rundir = tempfile.mkdtemp(prefix="nr-ovs-")
    try:
        started = OvsInstance(rundir).start()
        pids = started.pids()
        # A new object over the same rundir (as after a crash) finds the pids in the pidfiles.
        OvsInstance(rundir).stop()
        assert not any(pid_alive(pid) for pid in pids.values())
        started.stop()
        assert started.pids() == {}
    finally:
        OvsInstance(rundir).stop()
        shutil.rmtree(rundir, ignore_errors=True)


def test_inside_a_netns():
    rundir = tempfile.mkdtemp(prefix="nr-ovs-")
    name = f"nrt-proc-{os.getpid() % 100000}"
    with namespace(name):
        instance = OvsInstance(rundir, netns=name)
        try:
            instance.start()
            instance.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
            # The userspace datapath's tap for br0 exists in the namespace only.
            assert "br0" in instance.run(["ip", "-o", "link", "show"]).stdout
        finally:
            instance.stop()
            shutil.rmtree(rundir, ignore_errors=True)


def test_missing_binaries_give_one_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(OvsError, match="not found on PATH: .*ovsdb-server"):
        OvsInstance("/tmp/nr-never-created").start()
    assert not os.path.exists("/tmp/nr-never-created")


def test_failed_start_reports_log_tail():
    rundir = tempfile.mkdtemp(prefix="nr-ovs-")
    try:
        # A corrupt database makes ovsdb-server refuse to start.
        with open(os.path.join(rundir, "conf.db"), "w") as db:
            db.write("not a database\n")
        with pytest.raises(OvsError, match="ovsdb-server .* exit"):
            OvsInstance(rundir).start()
        assert OvsInstance(rundir).pids() == {}
    finally:
        OvsInstance(rundir).stop()
        shutil.rmtree(rundir, ignore_errors=True)
