"""nuage-cni's pure parts: config and CNI_ARGS parsing, result formats, errors that need no agent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nuage_ryu.plugins import cni

GOOD = {"cniVersion": "1.0.0", "name": "n", "type": "nuage-cni", "enterprise": "e", "domain": "d",
        "zone": "z", "subnet": "s"}
ATTACHMENT = {"host_ifname": "nr0123456789a", "host_mac": "aa:bb:cc:dd:ee:ff", "ifname": "eth0",
              "mac": "02:00:00:00:00:05", "netns": "/var/run/netns/x", "address": "10.0.0.5/24",
              "gateway": "10.0.0.1", "mtu": 1450, "dns": {"nameservers": ["10.0.0.53"], "bogus": 1}}


def code_of(fn, *args) -> int:
    with pytest.raises(cni.CniError) as err:
        fn(*args)
    assert err.value.msg
    return err.value.code


def test_cni_args():
    assert cni.parse_cni_args("") == {}
    assert cni.parse_cni_args("A=1;NUAGE_POLICYGROUPS=a,b;;K8S_POD_NAME=p") == {
        "A": "1", "NUAGE_POLICYGROUPS": "a,b", "K8S_POD_NAME": "p"}
    assert code_of(cni.parse_cni_args, "novalue") == 4
    assert code_of(cni.parse_cni_args, "=x") == 4


def test_load_config_errors():
    assert cni.load_config(json.dumps(GOOD))["subnet"] == "s"
    assert code_of(cni.load_config, b"") == 6
    assert code_of(cni.load_config, b"[1]") == 6
    assert code_of(cni.load_config, json.dumps({"name": "x"})) == 7
    assert code_of(cni.load_config, json.dumps(dict(GOOD, cniVersion="2.0.0"))) == 1


def test_network_keys():
    assert cni.network_of(GOOD) == {"enterprise": "e", "domain": "d", "zone": "z", "subnet": "s"}
    subnet_id = "12345678-1234-1234-1234-123456789012"
    assert cni.network_of({"subnet": subnet_id})["subnet"] == subnet_id
    for bad in ({**GOOD, "subnet": ""}, {**GOOD, "zone": ""}, {**GOOD, "domain": 3},
                {**GOOD, "agent_socket": "rel.sock"}, {**GOOD, "agent_socket": 5}):
        assert code_of(cni.network_of, bad) == 7


def test_policygroups_precedence():
    conf = dict(GOOD, policygroups=["net"], runtimeConfig={"policygroups": ["rt"]})
    assert cni.policygroups_of(conf, {"NUAGE_POLICYGROUPS": "a, b,"}) == ["a", "b"]
    assert cni.policygroups_of(conf, {}) == ["rt"]
    assert cni.policygroups_of(dict(GOOD, policygroups=["net"]), {}) == ["net"]
    assert cni.policygroups_of(GOOD, {}) == []
    assert code_of(cni.policygroups_of, dict(GOOD, policygroups=[1]), {}) == 7
    assert code_of(cni.policygroups_of, dict(GOOD, runtimeConfig=[]), {}) == 7


@pytest.mark.parametrize("version", cni.SUPPORTED_VERSIONS)
def test_result_format(version):
    result = cni.build_result(version, ATTACHMENT)
    assert result["cniVersion"] == version
    host, cont = result["interfaces"]
    assert "sandbox" not in host and cont["sandbox"] == "/var/run/netns/x"
    (ip,) = result["ips"]
    assert ip["address"] == "10.0.0.5/24" and ip["gateway"] == "10.0.0.1" and ip["interface"] == 1
    assert ("version" in ip) == version.startswith("0.")
    assert ("mtu" in cont) == (version == "1.1.0")
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
    assert result["dns"] == {"nameservers": ["10.0.0.53"]}


def test_run_without_agent():
    env = {"CNI_COMMAND": "VERSION"}
    assert cni.run(env, b"")["supportedVersions"] == cni.SUPPORTED_VERSIONS
    assert cni.run(env, b"not json")["cniVersion"] == cni.LATEST
    assert code_of(cni.run, {}, b"") == 4
    assert code_of(cni.run, {"CNI_COMMAND": "GC"}, json.dumps(GOOD).encode()) == 1
    old = json.dumps(dict(GOOD, cniVersion="0.3.1")).encode()
    assert code_of(cni.run, {"CNI_COMMAND": "CHECK"}, old) == 1
    missing_ns = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0",
                  "CNI_NETNS": "/var/run/netns/does-not-exist-here"}
    assert code_of(cni.run, missing_ns, json.dumps(GOOD).encode()) == 3
    unreachable = dict(GOOD, agent_socket="/tmp/nuage-unit-no-agent.sock")
    assert code_of(cni.run, {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0"},
                   json.dumps(unreachable).encode()) == 11


def test_executable_prints_error_json_and_fails():
    proc = subprocess.run([sys.executable, "-m", "nuage_ryu.plugins.cni"], input=b"{",
                          env={"CNI_COMMAND": "ADD", "PATH": "/usr/bin:/bin"}, capture_output=True)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["code"] == 6 and out["cniVersion"] == cni.LATEST


def test_cni_module_stays_light():
    """A CNI call must not pay for the heavy imports of the agent side."""
    code = ("import sys, nuage_ryu.plugins.cni; "
            "heavy = [m for m in ('os_ken', 'ovsdbapp', 'pyroute2', 'oslo_config', 'http.client', 'ssl') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
