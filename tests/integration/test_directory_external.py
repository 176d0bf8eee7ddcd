"""egress_nat, floating IPs and port mappings through the real directory (OVSDB store, REST, nuage-ctl)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from nuage_ryu.directory.errors import DirectoryError

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")
CTL = os.path.join(os.path.dirname(sys.executable), "nuage-ctl")
POOL = "198.51.100.0/28"


MANAGER_EXTRA = f"floating_ip_pool = {POOL}\n"  # read by the conftest's manager fixture


def ctl(manager, *args, expect=0):
    base = [CTL, "--url", manager.url, "--token-file", os.path.join(manager.state_dir, "api-token"), "--json"]
    proc = subprocess.run(base + list(args), capture_output=True, text=True, timeout=30)
    assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout) if expect == 0 and proc.stdout.strip() else proc


def test_fields_survive_the_database_and_a_restart(manager):
    ctl(manager, "enterprise", "create", "ext")
    dom = ctl(manager, "domain", "create", "--enterprise", "ext", "out", "--egress-nat")
    assert dom["egress_nat"] is True
    ctl(manager, "zone", "create", "--domain", "out", "z")
    ctl(manager, "subnet", "create", "--zone", "z", "s", "10.9.1.0/24")
    vp = ctl(manager, "vport", "create", "--subnet", "s", "web", "--host", "h1", "--floating-ip", "198.51.100.3",
             "--port-mapping", "tcp/8080:80", "--port-mapping", "udp/5353:53")
    assert vp["floating_ip"] == "198.51.100.3"
    assert vp["port_mappings"] == [{"protocol": "tcp", "host_port": 8080, "container_port": 80},
                                   {"protocol": "udp", "host_port": 5353, "container_port": 53}]
    manager.stop()
    manager.start()
    again = ctl(manager, "vport", "show", "--subnet", "s", "web")
    assert (again["floating_ip"], again["port_mappings"]) == (vp["floating_ip"], vp["port_mappings"])
    assert ctl(manager, "domain", "show", "ext/out")["egress_nat"] is True
    off = ctl(manager, "domain", "update", "ext/out", "--no-egress-nat")
    assert off["egress_nat"] is False
    cleared = ctl(manager, "vport", "update", "--subnet", "s", "web", "--port-mapping", "",
                  "--floating-ip", "")
    assert (cleared["floating_ip"], cleared["port_mappings"]) == ("", [])


def test_rest_errors(manager):
    client = manager.client()
    ent = client.post("/enterprises", {"name": "ext2"})
    dom = client.post(f"/enterprises/{ent['id']}/domains", {"name": "d"})
    assert dom["egress_nat"] is False  # the documented default
    zone = client.post(f"/domains/{dom['id']}/zones", {"name": "z"})
    sub = client.post(f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.8.1.0/24"})
    vports = f"/subnets/{sub['id']}/vports"
    client.post(vports, {"name": "a", "host": "h9", "floating_ip": "198.51.100.9",
                                    "port_mappings": [{"host_port": 9000, "container_port": 80}]})
    for body, status in (
        ({"name": "b", "floating_ip": "198.51.100.9"}, 409),  # taken
        ({"name": "b", "floating_ip": "198.51.100.99"}, 422),  # outside the pool
        ({"name": "b", "host": "h9", "port_mappings": [{"host_port": 9000, "container_port": 81}]}, 409),
        ({"name": "b", "port_mappings": [{"host_port": 9000}]}, 400),
    ):
        with pytest.raises(DirectoryError) as err:
            client.post(vports, body)
        assert err.value.status == status, (body, err.value)
    spec = client.get("/openapi.json")
    vport_props = spec["components"]["schemas"]["VPort"]["properties"]
    assert vport_props["port_mappings"]["type"] == "array"
    assert spec["components"]["schemas"]["Domain"]["properties"]["egress_nat"]["type"] == "boolean"
