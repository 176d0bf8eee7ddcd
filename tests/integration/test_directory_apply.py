"""nuage-ctl apply / export / bulk (the real console script) against running directories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nuage_ryu.directory.testing import ManagerProcess

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")
CTL = os.path.join(os.path.dirname(sys.executable), "nuage-ctl")
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "3tier.yaml"


def _manager(tmp_path_factory, name):
    mgr = ManagerProcess(str(tmp_path_factory.mktemp(name)))
    mgr.start()
    return mgr


@pytest.fixture(scope="module")
def managers(tmp_path_factory):
    first = _manager(tmp_path_factory, "apply-a")
    try:
        second = _manager(tmp_path_factory, "apply-b")
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


def ctl_for(manager):
    def run(*args, expect=0, stdin=None):
        base = [CTL, "--url", manager.url, "--token-file", os.path.join(manager.state_dir, "api-token")]
        proc = subprocess.run(base + list(args), capture_output=True, text=True, timeout=60, input=stdin)
        assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    return run


def test_apply_is_idempotent_dry_run_changes_nothing_and_export_round_trips(managers, tmp_path):
    a, b = managers
    ctl_a, ctl_b = ctl_for(a), ctl_for(b)
    dry = ctl_a("apply", "-f", str(EXAMPLE), "--dry-run").stdout
    assert "+ enterprise acme" in dry and "+ acl acme/prod/web-to-app (priority 200)" in dry
    assert "16 changes would be made (dry run: nothing changed)" in dry
    assert ctl_a("enterprise", "list", "-o", "json").stdout.strip() == "[]"

    applied = ctl_a("apply", "-f", str(EXAMPLE)).stdout
    assert "16 changes made" in applied
    rules = json.loads(ctl_a("acl", "list", "--domain", "acme/prod", "-o", "json").stdout)
    assert [(r["priority"], r["name"], r["dst_ports"]) for r in rules][:3] == [
        (100, "any-to-web", "443"), (200, "web-to-app", "8080"), (300, "app-to-db", "5432")]
    assert json.loads(ctl_a("subnet", "show", "acme/prod/db/back", "-o", "json").stdout)["gateway"] == "10.0.3.254"

    again = ctl_a("apply", "-f", str(EXAMPLE)).stdout
    assert again.strip() == f"enterprise acme: no changes (the directory already matches {EXAMPLE})"

    exported = ctl_a("export", "acme").stdout
    doc = yaml.safe_load(exported)
    assert doc["enterprise"] == "acme" and doc["domains"][0]["acls"][3]["destination"] == "subnet:db/back"
    # the export applies as is: on the same directory it changes nothing...
    path = tmp_path / "acme.yaml"
    path.write_text(exported)
    assert "no changes" in ctl_a("apply", "-f", str(path)).stdout
    # ...and on an empty one it rebuilds the same enterprise (JSON works as well as YAML)
    ctl_a("export", "acme", "-o", "json", "-f", str(tmp_path / "acme.json"))
    assert "changes made" in ctl_b("apply", "-f", str(tmp_path / "acme.json")).stdout
    assert ctl_b("export", "acme").stdout == exported


def test_changes_prune_and_all_or_nothing(managers, tmp_path):
    a, _b = managers
    ctl = ctl_for(a)
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["enterprise"] = "initech"
    path = tmp_path / "initech.yaml"
    path.write_text(yaml.safe_dump(doc))
    ctl("apply", "-f", str(path))
    dom = doc["domains"][0]
    dom["default_action"] = "allow"
    dom["acls"][1]["dst_ports"] = "8000-8080"
    dom["acls"][4]["stateful"] = True
    dom["acls"] = [r for r in dom["acls"] if r["name"] != "ping-db"]
    dom["policygroups"].append({"name": "monitoring"})
    path.write_text(yaml.safe_dump(doc))
    out = ctl("apply", "-f", str(path), "--dry-run").stdout
    assert "~ domain initech/prod: default_action deny -> allow" in out
    assert "~ acl initech/prod/web-to-app: dst_ports 8080 -> 8000-8080" in out
    assert "~ acl initech/prod/no-web-to-db: stateful False -> True" in out
    assert "+ policygroup initech/prod/monitoring" in out and "- acl" not in out
    out = ctl("apply", "-f", str(path), "--prune", "--dry-run").stdout
    assert "- acl initech/prod/ping-db" in out
    ctl("apply", "-f", str(path), "--prune")
    assert "no changes" in ctl("apply", "-f", str(path), "--prune").stdout
    names = [r["name"] for r in json.loads(ctl("acl", "list", "--domain", "initech/prod", "-o", "json").stdout)]
    assert "ping-db" not in names and len(names) == 4

    # a vport in a subnet the file drops: --prune refuses as a whole, nothing changes
    ctl("vport", "create", "--subnet", "initech/prod/web/front", "web-1")
    dropped = {**doc, "domains": [{**dom, "zones": [z for z in dom["zones"] if z["name"] != "web"],
                                   "acls": dom["acls"], "policygroups": dom["policygroups"] + [{"name": "new"}]}]}
    path.write_text(yaml.safe_dump(dropped))
    err = ctl("apply", "-f", str(path), "--prune", expect=1).stderr
    assert "still has 1 vport" in err and "operation" in err
    assert "new" not in [g["name"] for g in json.loads(ctl("policygroup", "list", "--domain", "initech/prod",
                                                            "-o", "json").stdout)]
    # a file error names its place
    path.write_text(yaml.safe_dump({"enterprise": "initech", "domains": [{"name": "prod", "zones": [{"nam": "x"}]}]}))
    assert "domains[0].zones[0]: unknown key 'nam'" in ctl("apply", "-f", str(path), expect=2).stderr
    path.write_text(yaml.safe_dump({**doc, "domains": [{**dom, "vni": 1}]}))
    vni = json.loads(ctl("domain", "show", "initech/prod", "-o", "json").stdout)["vni"]
    if vni != 1:
        assert "vni cannot be changed" in ctl("apply", "-f", str(path), expect=2).stderr


def test_bulk_file(managers, tmp_path):
    a, _b = managers
    ctl = ctl_for(a)
    ctl("enterprise", "create", "bulkco")
    ent = json.loads(ctl("enterprise", "show", "bulkco", "-o", "json").stdout)
    ops = [{"action": "create", "kind": "domain", "parent": ent["id"], "ref": "d", "body": {"name": "prod"}},
           {"action": "create", "kind": "zone", "parent": "$d", "ref": "z", "body": {"name": "web"}},
           {"action": "create", "kind": "subnet", "parent": "$z", "ref": "s",
            "body": {"name": "front", "cidr": "10.5.0.0/24"}}]
    ops += [{"action": "create", "kind": "vport", "parent": "$s", "body": {"name": f"c{i}"}} for i in range(20)]
    path = tmp_path / "ops.yaml"
    path.write_text(yaml.safe_dump({"operations": ops}))
    out = ctl("bulk", "-f", str(path), "--dry-run").stdout
    assert "23 operations would be applied (dry run: nothing changed)" in out
    assert ctl("domain", "list", "--enterprise", "bulkco", "-o", "json").stdout.strip() == "[]"
    out = ctl("bulk", "-f", "-", stdin=json.dumps(ops)).stdout
    assert "23 operations applied in one transaction" in out
    vports = json.loads(ctl("vport", "list", "--subnet", "bulkco/prod/web/front", "-o", "json").stdout)
    assert len(vports) == 20 and len({v["ip"] for v in vports}) == 20
    err = ctl("bulk", "-f", "-", stdin=json.dumps(ops[3:5]), expect=1).stderr
    assert "operation 0" in err and "unknown reference '$s'" in err
