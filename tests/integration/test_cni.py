"""CNI conformance of the real ``nuage-cni`` executable against a real agent, directory and OVS.

Every verb, every error path (with "nothing changed" checked after each), DEL
twice / for unknown containers, ADD after an agent restart, GC of leftovers, and
real traffic between two attached containers. The switch runs in standalone
(learning) mode here, since these tests exercise the attach path, not the VRS flows.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from nuage_ryu.agent.attach.links import link_names
from tests.attach_helpers import (
    agent_process,
    directory_service,
    host_state,
    make_network,
    ns_exec,
    prepare_bridge,
    run_cni,
    tcp_exchange,
)
from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name, wait_until

pytestmark = pytest.mark.integration
HOST = "cni-host-1"


class Lab:
    """One host: directory, OVS (own netns), agent process; helpers to attach containers."""

    def __init__(self, directory, ovs, net, sock):
        self.directory = directory
        self.ovs = ovs
        self.net = net
        self.sock = sock
        self._agent = None
        self.conf = {"cniVersion": "1.0.0", "name": "nuage", "type": "nuage-cni", "agent_socket": sock,
                     "enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}

    def state(self) -> dict:
        return host_state(self.ovs, self.directory, HOST)

    def start_agent(self) -> None:
        self._agent = agent_process(self.sock, self.ovs.db_remote, self.directory, HOST, self.ovs.netns)
        self.proc = self._agent.__enter__()

    def stop_agent(self) -> None:
        if self._agent is not None:
            self._agent.__exit__(None, None, None)
            self._agent = None


@pytest.fixture(scope="module")
def lab():
    with directory_service() as directory, private_ovs() as ovs:
        net = make_network(directory, policygroups=("web", "db"))
        prepare_bridge(ovs)
        sock = os.path.join(directory.state_dir, "agent.sock")
        lab = Lab(directory, ovs, net, sock)
        lab.start_agent()
        try:
            yield lab
        finally:
            lab.stop_agent()


@pytest.fixture
def clean(lab):
    """Each test starts and must end with no attachment on the host."""
    assert lab.state() == {"ports": [], "links": [], "vports": []}
    yield lab
    leftover = lab.state()
    # GC everything so that one failing test does not cascade, then report.
    run_cni("GC", dict(lab.conf, cniVersion="1.1.0", **{"cni.dev/valid-attachments": []}))
    assert leftover == {"ports": [], "links": [], "vports": []}


@pytest.fixture
def containers():
    """Factory of container namespaces, all deleted at the end."""
    import contextlib
    with contextlib.ExitStack() as stack:
        def make() -> str:
            name = stack.enter_context(namespace(unique_netns_name("nrc")))
            return f"/var/run/netns/{name}"
        yield make


def test_version():
    rc, out = run_cni("VERSION", {"cniVersion": "1.0.0"})
    assert rc == 0
    assert out == {"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}
    rc, out = run_cni("VERSION", "")
    assert rc == 0 and out["cniVersion"] == "1.1.0"


def test_add_check_del_with_traffic(clean, containers):
    lab = clean
    ns1, ns2 = containers(), containers()
    rc, r1 = run_cni("ADD", lab.conf, "ctr-a", ns1, cni_args="K8S_POD_NAME=a;NUAGE_POLICYGROUPS=web,db")
    assert rc == 0, r1
    rc, r2 = run_cni("ADD", lab.conf, "ctr-b", ns2)
    assert rc == 0, r2
    # Result format (CNI 1.0): host + container interfaces, one IP with gateway, default route.
    host_if, cont_if = r1["interfaces"]
    assert host_if["name"] == link_names("ctr-a", "eth0")[0] and "sandbox" not in host_if
    assert cont_if == {"name": "eth0", "mac": cont_if["mac"], "sandbox": ns1}
    (ip,) = r1["ips"]
    assert ip["address"].startswith("10.10.1.") and ip["address"].endswith("/24")
    assert ip["gateway"] == "10.10.1.1" and ip["interface"] == 1
    assert r1["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.10.1.1"}]
    # The container namespace is configured as the result says, with MTU = 1500 - 50.
    link = json.loads(ns_exec(os.path.basename(ns1), "ip", "-j", "link", "show", "eth0").stdout)[0]
    assert link["mtu"] == 1450 and link["address"] == cont_if["mac"] and "UP" in link["flags"]
    link = json.loads(ns_exec(os.path.basename(ns1), "ip", "-j", "-4", "addr", "show", "eth0").stdout)[0]
    assert [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]] == [ip["address"]]
    route = ns_exec(os.path.basename(ns1), "ip", "route", "show", "default").stdout
    assert "via 10.10.1.1 dev eth0" in route
    # OVS port with the external_ids contract; the directory vport with host and policy groups.
    def ext(key):
        return lab.ovs.vsctl("get", "Interface", host_if["name"], f"external_ids:{key}").strip().strip('"')
    assert ext("nuage-container-id") == "ctr-a" and ext("nuage-container-ifname") == "eth0"
    assert ext("nuage-vport-id") == ext("iface-id") and ext("nuage-ifname") == host_if["name"]
    (vport,) = [v for v in lab.directory.host_vports(HOST) if v["ip"] == ip["address"].split("/")[0]]
    assert vport["mac"] == cont_if["mac"] and vport["host"] == HOST
    assert sorted(vport["policygroups"]) == sorted(p["id"] for p in lab.net["policygroups"].values())
    # Real traffic between the two containers.
    peer = r2["ips"][0]["address"].split("/")[0]
    ping = ns_exec(os.path.basename(ns1), "ping", "-c", "2", "-i", "0.2", "-W", "2", peer)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # TCP too (needs TX checksum offload off on the container ends: the bridge is a netdev bridge).
    assert tcp_exchange(os.path.basename(ns2), os.path.basename(ns1), peer)
    # ADD again: the same result, nothing new.
    before = lab.state()
    rc, again = run_cni("ADD", lab.conf, "ctr-a", ns1, cni_args="NUAGE_POLICYGROUPS=web,db")
    assert rc == 0 and again == r1 and lab.state() == before
    # CHECK passes; CHECK with a tampered namespace fails with a readable message.
    check_conf = dict(lab.conf, prevResult=r1)
    assert run_cni("CHECK", check_conf, "ctr-a", ns1) == (0, None)
    ns_exec(os.path.basename(ns1), "ip", "link", "set", "eth0", "mtu", "1400")
    rc, err = run_cni("CHECK", check_conf, "ctr-a", ns1)
    assert rc == 1 and err["code"] == 101 and "MTU 1400, expected 1450" in err["msg"]
    rc, err = run_cni("CHECK", dict(lab.conf, prevResult=r2), "ctr-a", ns1)
    assert rc == 1 and err["code"] in (101,)
    # DEL, DEL again, DEL of a container never seen.
    for cid, ns in (("ctr-a", ns1), ("ctr-a", ns1), ("ctr-b", ns2), ("never-seen", ns2), ("ctr-b", "")):
        assert run_cni("DEL", lab.conf, cid, ns) == (0, None)
    assert ns_exec(os.path.basename(ns1), "ip", "link", "show", "eth0").returncode != 0


def test_same_container_in_a_new_namespace_is_rebuilt(clean, containers):
    """A runtime that lost a container without DEL and reuses its id: the stale attachment is replaced."""
    lab = clean
    old, new = containers(), containers()
    rc, first = run_cni("ADD", lab.conf, "ctr-moved", old)
    assert rc == 0
    rc, second = run_cni("ADD", lab.conf, "ctr-moved", new)
    assert rc == 0 and second["interfaces"][1]["sandbox"] == new
    assert ns_exec(os.path.basename(old), "ip", "link", "show", "eth0").returncode != 0
    assert len(lab.state()["vports"]) == 1
    assert run_cni("DEL", lab.conf, "ctr-moved", new) == (0, None)


def test_result_formats(clean, containers):
    lab = clean
    ns = containers()
    rc, old = run_cni("ADD", dict(lab.conf, cniVersion="0.4.0"), "ctr-v04", ns)
    assert rc == 0 and old["cniVersion"] == "0.4.0" and old["ips"][0]["version"] == "4"
    assert run_cni("DEL", dict(lab.conf, cniVersion="0.4.0"), "ctr-v04", ns) == (0, None)
    rc, new = run_cni("ADD", dict(lab.conf, cniVersion="1.1.0"), "ctr-v11", ns)
    assert rc == 0 and new["interfaces"][1]["mtu"] == 1450 and "version" not in new["ips"][0]
    assert run_cni("DEL", dict(lab.conf, cniVersion="1.1.0"), "ctr-v11", ns) == (0, None)


def test_runtime_config_policygroups(clean, containers):
    lab = clean
    ns = containers()
    conf = dict(lab.conf, policygroups=["web"], runtimeConfig={"policygroups": ["db"]})
    rc, res = run_cni("ADD", conf, "ctr-rt", ns)
    assert rc == 0, res
    (vport,) = lab.directory.host_vports(HOST)
    assert vport["policygroups"] == [lab.net["policygroups"]["db"]["id"]]
    assert run_cni("DEL", conf, "ctr-rt", ns) == (0, None)


def _error_cases(lab, ns):
    good = lab.conf
    yield "not JSON", "ADD", "{", {}, 6
    yield "no cniVersion", "ADD", {k: v for k, v in good.items() if k != "cniVersion"}, {}, 7
    yield "unsupported version", "ADD", dict(good, cniVersion="9.9.9"), {}, 1
    yield "GC before 1.1", "GC", good, {}, 1
    yield "no subnet", "ADD", {k: v for k, v in good.items() if k != "subnet"}, {}, 7
    yield "no network name", "ADD", {k: v for k, v in good.items() if k != "name"}, {}, 7
    yield "no zone", "ADD", {k: v for k, v in good.items() if k != "zone"}, {}, 7
    yield "subnet not a string", "ADD", dict(good, subnet=5), {}, 7
    yield "relative agent socket", "ADD", dict(good, agent_socket="agent.sock"), {}, 7
    yield "unknown enterprise", "ADD", dict(good, enterprise="nope"), {}, 7
    yield "unknown subnet", "ADD", dict(good, subnet="nope"), {}, 7
    yield "unknown policy group", "ADD", dict(good, policygroups=["nope"]), {}, 7
    yield "bad policygroups type", "ADD", dict(good, policygroups=[1]), {}, 7
    yield "bad CNI_ARGS", "ADD", good, {"CNI_ARGS": "garbage"}, 4
    yield "no CNI_COMMAND", "", good, {}, 4
    yield "unknown command", "FROB", good, {}, 4
    yield "no CNI_CONTAINERID", "ADD", good, {"CNI_CONTAINERID": ""}, 4
    yield "bad CNI_IFNAME", "ADD", good, {"CNI_IFNAME": "a/b"}, 4
    yield "long CNI_IFNAME", "ADD", good, {"CNI_IFNAME": "x" * 16}, 4
    yield "no CNI_NETNS", "ADD", good, {"CNI_NETNS": ""}, 4
    yield "netns missing", "ADD", good, {"CNI_NETNS": "/var/run/netns/does-not-exist"}, 3
    yield "agent unreachable", "ADD", dict(good, agent_socket="/tmp/nuage-no-agent.sock"), {}, 11
    yield "STATUS agent unreachable", "STATUS", dict(good, cniVersion="1.1.0",
                                                     agent_socket="/tmp/nuage-no-agent.sock"), {}, 50
    yield "CHECK without prevResult", "CHECK", good, {}, 7
    yield "CHECK unknown container", "CHECK", dict(good, prevResult={"ips": []}), {}, 101
    yield "bad valid-attachments", "GC", dict(good, cniVersion="1.1.0",
                                              **{"cni.dev/valid-attachments": "x"}), {}, 7


def test_error_paths_change_nothing(clean, containers):
    lab = clean
    ns = containers()
    for label, command, conf, env, code in _error_cases(lab, ns):
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "ctr-err", "CNI_NETNS": ns, "CNI_IFNAME": "eth0",
               **env}
        rc, out = run_cni(command, conf, env_extra=env)
        assert rc == 1, label
        assert out["code"] == code and out["msg"], (label, out)
        assert lab.state() == {"ports": [], "links": [], "vports": []}, label
        assert ns_exec(os.path.basename(ns), "ip", "link", "show", "eth0").returncode != 0, label


def test_interface_name_taken_is_a_conflict(clean, containers):
    lab = clean
    ns = containers()
    made = ns_exec(os.path.basename(ns), "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0")
    assert made.returncode == 0, made.stderr
    rc, out = run_cni("ADD", lab.conf, "ctr-taken", ns)
    assert rc == 1 and out["code"] == 102 and "already exists" in out["msg"]
    assert lab.state() == {"ports": [], "links": [], "vports": []}


def test_status():
    with directory_service() as directory, private_ovs() as ovs:
        prepare_bridge(ovs)
        sock = os.path.join(directory.state_dir, "agent.sock")
        conf = {"cniVersion": "1.1.0", "name": "n", "type": "nuage-cni", "agent_socket": sock,
                "enterprise": "e", "domain": "d", "zone": "z", "subnet": "s"}
        with agent_process(sock, ovs.db_remote, directory, HOST, ovs.netns):
            assert run_cni("STATUS", conf) == (0, None)
            ovs.vsctl("del-br", "br-int")
            rc, out = run_cni("STATUS", conf)
            assert rc == 1 and out["code"] == 50 and "br-int" in out["msg"]
        rc, out = run_cni("STATUS", conf)
        assert rc == 1 and out["code"] == 50


def test_add_after_agent_restart_and_gc(clean, containers):
    lab = clean
    ns1, ns2, ns3 = containers(), containers(), containers()
    rc, r1 = run_cni("ADD", lab.conf, "ctr-r1", ns1)
    assert rc == 0
    rc, r2 = run_cni("ADD", lab.conf, "ctr-r2", ns2)
    assert rc == 0
    # Restart the agent: no state in its memory, the same ADD returns the same result.
    lab.stop_agent()
    rc, out = run_cni("ADD", lab.conf, "ctr-r3", ns3)
    assert rc == 1 and out["code"] == 11  # agent down: try again later
    lab.start_agent()
    rc, again = run_cni("ADD", lab.conf, "ctr-r1", ns1)
    assert rc == 0 and again == r1
    # Leftovers of a crash: a veth without OVS port, a vport without OVS port.
    stray_host, stray_peer = link_names("crashed", "eth0")
    subprocess.run(["ip", "netns", "exec", lab.ovs.netns, "ip", "link", "add", stray_host, "type", "veth",
                    "peer", "name", stray_peer], check=True)
    stray = lab.directory.create_vport(lab.net["subnet"]["id"], {
        "name": "crashed-eth0", "host": HOST,
        "external_ids": {"nuage-container-id": "crashed", "nuage-ifname": "eth0", "nuage-owner": "cni",
                         "nuage-network": "nuage"}})
    conf = dict(lab.conf, cniVersion="1.1.0",
                **{"cni.dev/valid-attachments": [{"containerID": "ctr-r1", "ifname": "eth0"}]})
    assert run_cni("GC", conf) == (0, None)
    state = lab.state()
    assert state["ports"] == [r1["interfaces"][0]["name"]]
    assert state["links"] == [r1["interfaces"][0]["name"]]
    assert stray["id"] not in state["vports"] and len(state["vports"]) == 1
    assert ns_exec(os.path.basename(ns2), "ip", "link", "show", "eth0").returncode != 0
    # The kept container still works.
    assert run_cni("CHECK", dict(lab.conf, prevResult=r1), "ctr-r1", ns1) == (0, None)
    assert run_cni("DEL", lab.conf, "ctr-r1", ns1) == (0, None)


def test_gc_is_scoped_to_its_network(clean, containers):
    lab = clean
    ns1, ns2 = containers(), containers()
    other = dict(lab.conf, name="nuage-other")
    assert run_cni("ADD", lab.conf, "ctr-n1", ns1)[0] == 0
    rc, kept = run_cni("ADD", other, "ctr-n2", ns2)
    assert rc == 0
    gc = dict(lab.conf, cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
    assert run_cni("GC", gc) == (0, None)
    assert lab.state()["ports"] == [kept["interfaces"][0]["name"]]
    assert run_cni("CHECK", dict(other, prevResult=kept), "ctr-n2", ns2) == (0, None)
    assert run_cni("DEL", other, "ctr-n2", ns2) == (0, None)


def test_pid_namespace_path_and_namespace_gone_before_del(clean):
    lab = clean
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        netns = f"/proc/{holder.pid}/ns/net"
        wait_until(lambda: os.readlink(netns) != os.readlink("/proc/self/ns/net"), message="new netns")
        rc, result = run_cni("ADD", lab.conf, "ctr-pid", netns)
        assert rc == 0, result
        assert result["interfaces"][1]["sandbox"] == netns
        assert run_cni("CHECK", dict(lab.conf, prevResult=result), "ctr-pid", netns) == (0, None)
    finally:
        holder.kill()
        holder.wait()
    # The namespace is gone (its veth end with it): DEL still cleans the port and the vport.
    assert run_cni("DEL", lab.conf, "ctr-pid", netns) == (0, None)
    assert run_cni("DEL", lab.conf, "ctr-pid", "") == (0, None)
