"""nuage-ctl (the real console script) against a running nuage-ryu-manager."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from nuage_ryu.directory.testing import ManagerProcess, free_port

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")
CTL = os.path.join(os.path.dirname(sys.executable), "nuage-ctl")


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    mgr = ManagerProcess(str(tmp_path_factory.mktemp("ctl")))
    mgr.start()
    try:
        yield mgr
    finally:
        mgr.stop()


@pytest.fixture
def ctl(manager):
    def run(*args, expect=0, env=None):
        base = [CTL, "--url", manager.url, "--token-file", os.path.join(manager.state_dir, "api-token")]
        proc = subprocess.run(base + list(args), capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, **(env or {})))
        assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    return run


def as_json(proc):
    return json.loads(proc.stdout)


def test_workflow_by_names(ctl):
    ent = as_json(ctl("--json", "enterprise", "create", "acme", "--description", "tenant"))
    assert ent["name"] == "acme"
    dom = as_json(ctl("--json", "domain", "create", "--enterprise", "acme", "prod", "--vni", "700"))
    assert dom["vni"] == 700
    ctl("zone", "create", "--domain", "prod", "web")
    sub = as_json(ctl("--json", "subnet", "create", "--zone", "web", "front", "10.0.1.0/24"))
    assert sub["gateway"] == "10.0.1.1"
    ctl("policygroup", "create", "--domain", "prod", "www")
    vp = as_json(ctl("--json", "vport", "create", "--subnet", "front", "c1", "--host", "node-1",
                     "--policygroup", "www", "--external-id", "ifname=eth0"))
    assert vp["ip"] == "10.0.1.2" and vp["external_ids"] == {"ifname": "eth0"}
    assert len(vp["policygroups"]) == 1
    rule = as_json(ctl("--json", "acl", "create", "--domain", "prod", "--priority", "10",
                       "--source", "pg:www", "--destination", "cidr:0.0.0.0/0", "--protocol", "tcp",
                       "--ports", "443"))
    assert rule["source"]["type"] == "policygroup" and rule["dst_ports"] == "443"

    table = ctl("vport", "list", "--subnet", "front").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "IP", "MAC", "STATUS", "HOST", "TYPE"]
    assert table[1].split()[1:3] == ["c1", "10.0.1.2"] and len(table) == 2
    # aligned columns: every row starts each column at the same offset
    # (compare at the header's offsets: a random UUID in the ID column may itself contain "c1")
    assert table[1][table[0].index("NAME"):].startswith("c1 ")
    assert table[1][table[0].index("IP"):].startswith("10.0.1.2 ")
    shown = ctl("vport", "show", "c1").stdout
    assert "10.0.1.2" in shown and "down" in shown
    assert as_json(ctl("--json", "vport", "update", "c1", "--host", "node-2"))["host"] == "node-2"
    assert as_json(ctl("--json", "domain", "update", "prod", "--default-action", "allow"))["default_action"] \
        == "allow"
    assert [v["name"] for v in as_json(ctl("--json", "policygroup", "members", "www"))] == ["c1"]
    ctl("policygroup", "remove-member", "www", "c1")
    assert as_json(ctl("--json", "policygroup", "members", "www")) == []
    ctl("policygroup", "add-member", "www", "c1")
    ctl("acl", "list", "--domain", "prod")
    ctl("host", "create", "node-1", "--tunnel-ip", "192.0.2.1")
    assert "node-1" in ctl("host", "list").stdout
    token = as_json(ctl("--json", "token", "create", "--enterprise", "acme", "--name", "ci"))
    assert token["token"].startswith("nrt_")
    # the tenant token works through the environment
    env = {"NUAGE_TOKEN": token["token"]}
    listing = ctl("--json", "enterprise", "list", env=env)
    assert [e["name"] for e in as_json(listing)] == ["acme"]

    # delete with children: API error (1), then cascade
    err = ctl("domain", "delete", "prod", expect=1)
    assert "cascade" in err.stderr and "409" in err.stderr
    ctl("domain", "delete", "prod", "--cascade")
    ctl("enterprise", "delete", "acme", "--cascade")
    ctl("host", "delete", "node-1")


def test_exit_codes(ctl, manager):
    assert ctl("enterprise", "show", "missing", expect=1).stderr.startswith("nuage-ctl: error: no enterprise")
    ctl("enterprise", "frobnicate", expect=2)
    ctl("subnet", "create", "front", "10.0.0.0/24", expect=2)  # no --zone
    ctl("enterprise", "create", "exit-codes")
    assert "nothing to update" in ctl("enterprise", "update", "exit-codes", expect=2).stderr
    ctl("enterprise", "delete", "exit-codes")
    nowhere = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run([CTL, "--url", nowhere, "--token", "t", "enterprise", "list"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3 and "cannot connect" in proc.stderr
    proc = subprocess.run([CTL, "--url", manager.url, "--token-file", "/nonexistent", "enterprise", "list"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "token file" in proc.stderr
    bad = subprocess.run([CTL, "--url", manager.url, "--token", "wrong", "enterprise", "list"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "401" in bad.stderr


def test_ambiguous_names_are_usage_errors(ctl):
    ctl("enterprise", "create", "e1")
    ctl("enterprise", "create", "e2")
    for ent in ("e1", "e2"):
        ctl("domain", "create", "--enterprise", ent, "same")
    proc = ctl("domain", "show", "same", expect=2)
    assert "--enterprise" in proc.stderr
    assert as_json(ctl("--json", "domain", "show", "same", "--enterprise", "e2"))["name"] == "same"
    for ent in ("e1", "e2"):
        ctl("enterprise", "delete", ent, "--cascade")


def test_unix_socket(manager):
    proc = subprocess.run([CTL, "--socket", manager.api_socket, "--token-file",
                           os.path.join(manager.state_dir, "api-token"), "--json", "host", "list"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and isinstance(json.loads(proc.stdout), list)
