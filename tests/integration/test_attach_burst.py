"""Bursts on one host, through the real nuage-cni and a real VRS agent (lab): batching keeps each
request its own.

* a burst with one poisoned request (a subnet that does not exist): it fails alone, the others
  are attached and up, nothing of the poisoned one is left;
* a burst of 100 ADDs, then 100 simultaneous DELs (a node drain): nothing left (veths, OVS
  ports, vports, i.e. the IPAM leases);
* policy holds the moment a vport is reported up: a container connects right after its ADD
  returned and is allowed or denied as the rules say;
* a burst across an agent restart: the runtime's retries (CNI error 11) and its GC end with
  every container attached exactly once;
* the OVSDB group commit: a batch with one bad port row still adds the good ones.
"""

from __future__ import annotations

import contextlib
import sys
import threading

import pytest

from nuage_ryu.agent.attach.links import link_names
from nuage_ryu.agent.attach.service import AttachService
from nuage_ryu.hostovs.host import HostOVS, HostOVSError, VPortSpec
from nuage_ryu.plugins.cni import ERR_INVALID_CONFIG, ERR_TRY_AGAIN
from tests.attach_helpers import host_state, make_network, run_cni
from tests.lab_helpers import CLIENT_SCRIPT, SERVER_SCRIPT, lab_with_plane, ns_run
from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name, wait_until

pytestmark = pytest.mark.integration
EMPTY = {"ports": [], "links": [], "vports": []}


@pytest.fixture(scope="module")
def lab1():
    with lab_with_plane(1, tag="hnu") as (lab, plane):
        yield lab, plane


@pytest.fixture
def spaces():
    """Factory of n container namespaces (paths), all deleted at the end."""
    with contextlib.ExitStack() as stack:
        def make(n: int) -> list[str]:
            return [f"/var/run/netns/{stack.enter_context(namespace(unique_netns_name('hnu')))}"
                    for _ in range(n)]
        yield make


def _conf(plane, host, enterprise: str, **extra) -> dict:
    return {"cniVersion": "1.0.0", "name": f"net-{enterprise}", "type": "nuage-cni",
            "agent_socket": plane.agent_socket(host), "enterprise": enterprise, "domain": "prod",
            "zone": "web", "subnet": "web-net", **extra}


def _all_at_once(calls: list) -> list:
    """Run the zero-argument callables together (released by one barrier); their results in order."""
    gate = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(k: int) -> None:
        gate.wait()
        results[k] = calls[k]()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def _state(lab, plane) -> dict:
    host = lab.hosts[0]
    return host_state(host.ovs, plane.client(), host.host_name)


def test_burst_with_one_poisoned_request_fails_it_alone(lab1, spaces):
    lab, plane = lab1
    host = lab.hosts[0]
    make_network(plane.client(), enterprise="poison", cidr="10.70.0.0/24")
    conf = _conf(plane, host, "poison")
    bad = dict(conf, subnet="no-such-subnet")
    ns = spaces(21)
    poisoned = 10
    results = _all_at_once([
        (lambda i=i: run_cni("ADD", bad if i == poisoned else conf, f"poison-{i}", ns[i])) for i in range(21)])
    rc, err = results[poisoned]
    assert rc == 1 and err["code"] == ERR_INVALID_CONFIG and "no-such-subnet" in err["msg"], err
    good = [r for i, r in enumerate(results) if i != poisoned]
    assert all(rc == 0 for rc, _ in good), [r for r in good if r[0] != 0]
    assert len({out["ips"][0]["address"] for _, out in good}) == 20
    vports = plane.client().host_vports(host.host_name)
    assert len(vports) == 20 and all(v["status"] == "up" for v in vports)
    state = _state(lab, plane)
    assert len(state["ports"]) == len(state["links"]) == 20
    assert link_names(f"poison-{poisoned}", "eth0")[0] not in state["ports"] + state["links"]
    assert ns_run(ns[poisoned].rsplit("/", 1)[1], ["ip", "link", "show", "eth0"]).returncode != 0
    dels = _all_at_once([(lambda i=i: run_cni("DEL", conf, f"poison-{i}", ns[i])) for i in range(21)])
    assert dels == [(0, None)] * 21
    assert _state(lab, plane) == EMPTY
    # Every phase of every attach and detach is in the agent's histogram; the poisoned one by its outcome.
    text = _metrics(host)
    for phase in ("directory", "veth", "netns", "ovsdb", "flows", "status"):
        assert _sample(text, "nuage_attach_phase_seconds_count", operation="attach", phase=phase) >= 20, phase
    for phase in ("directory", "ovsdb", "veth"):
        assert _sample(text, "nuage_attach_phase_seconds_count", operation="detach", phase=phase) >= 20, phase
    assert _sample(text, "nuage_attach_seconds_count", operation="attach", outcome="not_found") >= 1
    assert _sample(text, "nuage_attach_seconds_count", operation="attach", outcome="ok") >= 20


def _metrics(host) -> str:
    fetch = ("import urllib.request,sys; "
             "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
    proc = ns_run(host.netns, [sys.executable, "-c", fetch, "http://127.0.0.1:9100/metrics"])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _sample(text: str, name: str, **labels) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()))


def test_burst_of_100_then_mass_delete_leaves_nothing(lab1, spaces):
    lab, plane = lab1
    host = lab.hosts[0]
    net = make_network(plane.client(), enterprise="drain", cidr="10.71.0.0/24")
    conf = _conf(plane, host, "drain")
    ns = spaces(100)
    adds = _all_at_once([(lambda i=i: run_cni("ADD", conf, f"drain-{i}", ns[i])) for i in range(100)])
    assert all(rc == 0 for rc, _ in adds), [out for rc, out in adds if rc != 0][:3]
    assert len({out["ips"][0]["address"] for _, out in adds}) == 100
    assert all(v["status"] == "up" for v in plane.client().host_vports(host.host_name))
    state = _state(lab, plane)
    assert len(state["ports"]) == len(state["links"]) == len(state["vports"]) == 100
    dels = _all_at_once([(lambda i=i: run_cni("DEL", conf, f"drain-{i}", ns[i])) for i in range(100)])
    assert dels == [(0, None)] * 100
    assert _state(lab, plane) == EMPTY
    assert plane.client().list_vports(net["subnet"]["id"]) == []   # every address back in the pool
    for path in ns:  # the container ends went with their veths
        assert ns_run(path.rsplit("/", 1)[1], ["ip", "link", "show", "eth0"]).returncode != 0


def test_policy_is_enforced_when_a_vport_is_reported_up(lab1, spaces):
    """Default allow, one deny rule for group "blocked": right after ADD, blocked is denied, others pass."""
    lab, plane = lab1
    host = lab.hosts[0]
    client = plane.client()
    net = make_network(client, enterprise="gate", cidr="10.72.0.0/24", policygroups=("blocked", "free"))
    client.request("POST", f"/domains/{net['domain']['id']}/acls", {
        "priority": 10, "source": {"type": "policygroup", "id": net["policygroups"]["blocked"]["id"]},
        "destination": {"type": "any"}, "protocol": "tcp", "action": "deny"})
    conf = _conf(plane, host, "gate")
    ns = spaces(11)
    rc, server = run_cni("ADD", dict(conf, policygroups=["free"]), "gate-server", ns[0])
    assert rc == 0, server
    server_ip = server["ips"][0]["address"].split("/")[0]
    proc = ns_run_background(ns[0], [sys.executable, "-c", SERVER_SCRIPT, "7000", "120"])
    try:
        wait_until(lambda: "7000" in ns_run(ns[0].rsplit("/", 1)[1], ["ss", "-ltn"]).stdout,
                   message="server listening")

        def add_then_connect(i: int):
            group = "blocked" if i % 2 else "free"
            rc, out = run_cni("ADD", dict(conf, policygroups=[group]), f"gate-{i}", ns[i])
            if rc != 0:
                return group, f"ADD failed: {out}"
            # At once: no retry, no wait. The deny must already be there, the allow too.
            connect = ns_run(ns[i].rsplit("/", 1)[1], [sys.executable, "-c", CLIENT_SCRIPT, server_ip, "7000",
                                                       "1.5"])
            return group, connect.returncode == 0

        outcomes = _all_at_once([(lambda i=i: add_then_connect(i)) for i in range(1, 11)])
        assert outcomes == [("blocked" if i % 2 else "free", i % 2 == 0) for i in range(1, 11)], outcomes
    finally:
        proc.kill()
        proc.wait()
    dels = _all_at_once([(lambda i=i: run_cni("DEL", conf, f"gate-{i}", ns[i])) for i in range(1, 11)])
    assert dels == [(0, None)] * 10
    assert run_cni("DEL", conf, "gate-server", ns[0]) == (0, None)
    assert _state(lab, plane) == EMPTY


def ns_run_background(path: str, argv: list[str]):
    import subprocess

    return subprocess.Popen(["ip", "netns", "exec", path.rsplit("/", 1)[1], *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_burst_across_an_agent_restart(lab1, spaces):
    """The agent restarts in the middle of a burst; runtimes retry (error 11) and GC: each container once."""
    lab, plane = lab1
    host = lab.hosts[0]
    make_network(plane.client(), enterprise="restart", cidr="10.73.0.0/24")
    conf = _conf(plane, host, "restart", cniVersion="1.1.0")
    ns = spaces(30)
    started = threading.Event()

    def add_until_done(i: int):
        tries = 0
        while True:
            tries += 1
            if i == 15:
                started.set()
            rc, out = run_cni("ADD", conf, f"restart-{i}", ns[i])
            if rc == 0:
                return out["ips"][0]["address"], tries
            if out.get("code") != ERR_TRY_AGAIN or tries > 50:
                return f"failed: {out}", tries
            # The runtime retries a temporary failure; wait for the agent socket to come back.
            wait_until(lambda: plane.agent_socket(host) and _socket_answers(plane.agent_socket(host)),
                       timeout=60, message="agent socket back")

    def restart():
        started.wait(60)
        plane.stop_process(f"agent-{host.name}")
        plane.start_agent(host)
        return "restarted"

    results = _all_at_once([(lambda i=i: add_until_done(i)) for i in range(30)] + [restart])
    assert results[-1] == "restarted"
    addresses = [addr for addr, _tries in results[:-1]]
    assert not [a for a in addresses if a.startswith("failed")], addresses
    assert len(set(addresses)) == 30
    # What a crash in the middle of an attach left (a vport without its port) goes with the runtime's GC.
    valid = [{"containerID": f"restart-{i}", "ifname": "eth0"} for i in range(30)]
    assert run_cni("GC", dict(conf, **{"cni.dev/valid-attachments": valid})) == (0, None)
    state = _state(lab, plane)
    assert len(state["ports"]) == len(state["links"]) == len(state["vports"]) == 30, state
    wait_until(lambda: all(v["status"] == "up" for v in plane.client().host_vports(host.host_name)),
               timeout=30, message="every vport up after the restart")
    for i in range(30):  # CHECK agrees with every one
        prev = {"cniVersion": "1.1.0", "ips": [{"address": addresses[i]}]}
        assert run_cni("CHECK", dict(conf, prevResult=prev), f"restart-{i}", ns[i]) == (0, None)
    dels = _all_at_once([(lambda i=i: run_cni("DEL", conf, f"restart-{i}", ns[i])) for i in range(30)])
    assert dels == [(0, None)] * 30
    assert _state(lab, plane) == EMPTY


def _socket_answers(path: str) -> bool:
    from nuage_ryu.plugins.agent_client import AgentClient, AgentError

    try:
        AgentClient(path, timeout=5).status()
        return True
    except AgentError:
        return False


def test_one_bad_port_row_in_a_batch_does_not_fail_the_others():
    """The OVSDB group commit: the transaction of a batch is refused, each row is then tried alone."""
    with private_ovs() as ovs:
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
        with HostOVS(ovs.db_remote) as hostovs:
            service = AttachService(directory=None, ovs=hostovs, host_name="batch-host")
            good = [VPortSpec(f"nrbatch{i}", f"vport-{i}", f"ctr-{i}") for i in range(3)]
            bad = VPortSpec("nrbatchbad", "", "ctr-bad")  # no vport id: refused
            outcomes = service._add_ports([good[0], bad, good[1], good[2]])
            assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
            assert isinstance(outcomes[1], HostOVSError)
            assert sorted(p.ifname for p in hostovs.list_vport_ports("br-int")) == [s.ifname for s in good]
            assert service._delete_ports([s.ifname for s in good] + ["nrabsent"]) == [None] * 4
            assert hostovs.list_vport_ports("br-int") == []


def test_directory_pool_reuses_a_few_kept_alive_connections_for_many_threads():
    from nuage_ryu.agent.attach.directory_pool import PooledDirectory
    from nuage_ryu.directory.client import DirectoryClient
    from tests.attach_helpers import directory_service

    with directory_service() as directory:
        net = make_network(directory, enterprise="pool", cidr="10.74.0.0/24")
        token = directory.token
        pool = PooledDirectory(lambda: DirectoryClient(directory.url, token, keep_alive=True), size=4)
        names = _all_at_once([(lambda: [s["name"] for s in pool.subnets()]) for _ in range(24)])
        assert names == [["web-net"]] * 24
        assert pool.created <= 4 and pool.url == directory.url
        made = _all_at_once([(lambda i=i: pool.create_vport(net["subnet"]["id"], {"name": f"p{i}"}))
                             for i in range(12)])
        assert len({v["ip"] for v in made}) == 12 and pool.created <= 4
        assert all(_all_at_once([(lambda v=v: pool.delete_vport(v["id"])) for v in made]))
        pool.close()
        assert pool.list_vports(net["subnet"]["id"]) == []  # usable after close
