"""Agents behind ovsdb-server relays on a 3-host lab (issue 10, item 3).

The lab's directory is the embedded one; two relays run in the controller node's namespace
and the three agents are assigned to them round-robin (h1, h3 -> relay 1; h2 -> relay 2), so
no agent talks to the primary. The agents' writes (host registration, vport status, counters)
go through their relay, which forwards them to the primary.

The same traffic and policy tests as on the primary run here unchanged: they are imported from
test_overlay.py and test_policy_lab.py and collected in this module, where ``lab3`` and ``net``
are the relay lab's. Then the relays themselves: killed (the supervisor restarts it) or stopped
and started, and an agent that lists both relays moves to the other when its relay goes away;
policy changes keep reaching the agents each time.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from nuage_ryu.db.relay import database_status
from tests.integration.test_overlay import (  # noqa: F401 - collected here, on the relay lab
    test_deleting_a_vport_removes_its_flows_on_every_host,
    test_reachability_same_and_across_subnets_and_hosts,
    test_tenants_with_the_same_cidr_never_meet,
)
from tests.integration.test_policy_lab import (  # noqa: F401 - collected here, on the relay lab
    Policy,
    Prober,
    counted,
    serve,
    test_rule_and_membership_changes_flip_outcome_without_disturbing_others,
    test_rule_counters_in_the_api,
    test_three_tier_same_and_cross_host,
    wait_connects,
)
from tests.lab_helpers import Containers, lab_with_plane, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab3():
    with lab_with_plane(3, tag="hrl", relays=2) as (lab, plane):
        yield lab, plane


@pytest.fixture
def net(lab3):
    """Containers on the relay lab (their ``procs`` are killed by cleanup)."""
    with Containers(*lab3) as containers:
        yield containers


def relay_clients(relay) -> int:
    """Sessions the relay serves (its own connection to the primary is not one)."""
    out = subprocess.run(["ovs-appctl", "-t", relay.ctl_path, "memory/show"], capture_output=True, text=True,
                         timeout=10).stdout
    for item in out.replace(",", " ").split():
        key, _, value = item.partition(":")
        if key == "sessions":
            return int(value)
    return 0


def test_agents_follow_their_relay_not_the_primary(lab3):
    lab, plane = lab3
    assert len(plane.relays) == 2
    for host in lab.hosts:
        with open(os.path.join(plane.root, f"agent-{host.name}.ini")) as f:
            assert f"directory_connection = {plane.agent_directory(host)}\n" in f.read()
    first, second = (plane.relay_remote(r) for r in plane.relays)
    assert [plane.agent_directory(h) for h in lab.hosts] == [first, second, first]
    assert all(plane.directory_db not in plane.agent_directory(h) for h in lab.hosts)
    for relay in plane.relays:
        status = database_status(relay.remote)
        assert status["model"] == "relay" and status["connected"] is True, status
    # Agents' writes reached the primary through the relays: every host registered and connected.
    hosts = {h["name"]: h for h in plane.client().request("GET", "/hosts")}
    assert all(hosts[h.host_name]["connected"] for h in lab.hosts), hosts
    # Relay 1 serves two agents, relay 2 one (plus short-lived tool sessions, hence >=).
    wait_until(lambda: relay_clients(plane.relays[0]) >= 2 and relay_clients(plane.relays[1]) >= 1,
               timeout=10, message="agent sessions on the relays")


def policy_pair(net, name: str, cidr: str):
    """web (h1, behind relay 1) -> app (h2, behind relay 2), rule 10 allowing tcp/8080."""
    pol = Policy(net.client, name, ("web", "app"), cidrs=(cidr,))
    (s,) = pol.subnets
    web = net.add(f"{name[:4]}w", "h1", s, policygroups=[pol.groups["web"]])
    app = net.add(f"{name[:4]}a", "h2", s, policygroups=[pol.groups["app"]])
    serve(net, app, 8080, 8081)
    rule = pol.acl(10, "web", "app", "tcp", "8080")
    wait_connects(web, app, 8080)
    return pol, web, app, rule


def flip_port(net, prober, rule, app, port: int) -> None:
    """Move the rule to ``port``: allowed there, refused on the other one (each side's agent must hear it)."""
    net.client.request("PUT", f"/acls/{rule['id']}", {"dst_ports": str(port)})
    prober.until(app, port, True, deadline=30)
    prober.until(app, 8081 if port == 8080 else 8080, False, deadline=30)


@pytest.mark.parametrize("how", ["killed", "restarted"])
def test_policy_changes_reach_the_agents_after_their_relay_comes_back(net, lab3, how):
    _lab, plane = lab3
    pol, web, app, rule = policy_pair(net, f"back{how[:3]}", "10.61.1.0/24" if how == "killed" else "10.61.2.0/24")
    try:
        prober = Prober(net, web)
        relay = plane.relays[1]  # app's host h2 follows the directory through it
        old_pid, restarts = relay.pid, relay.restarts
        if how == "killed":
            os.kill(old_pid, signal.SIGKILL)
            wait_until(lambda: relay.restarts == restarts + 1 and relay.pid not in (None, old_pid), timeout=20,
                       message="the supervisor to restart the relay")
        else:
            relay.stop()
            assert relay.pid is None
            relay.start()
        plane.wait_relay(relay)
        assert relay.pid != old_pid
        # The change is compiled on both sides (web's host sends, app's host receives): h2's agent
        # hears it only through the restarted relay.
        flip_port(net, prober, rule, app, 8081)
        flip_port(net, prober, rule, app, 8080)
        # And its writes pass again: a new vport on h2 gets reported up.
        net.add(f"n{how[:4]}", "h2", pol.subnets[0], policygroups=[pol.groups["app"]])
    finally:
        pol.delete()


def test_an_agent_listing_both_relays_survives_losing_either(net, lab3):
    lab, plane = lab3
    h3 = lab.hosts[2]
    both = ",".join(plane.relay_remote(r) for r in plane.relays)
    conf_path = os.path.join(plane.root, f"agent-{h3.name}.ini")
    plane.stop_process(f"agent-{h3.name}")
    original = plane.agent_directory
    plane.agent_directory = lambda host: both if host is h3 else original(host)
    try:
        plane.start_agent(h3)
    finally:
        plane.agent_directory = original
    with open(conf_path) as f:
        assert f"directory_connection = {both}\n" in f.read()
    pol = Policy(net.client, "failover", ("web", "app"), cidrs=("10.62.1.0/24",))
    try:
        (s,) = pol.subnets
        # Both on h3: only h3's agent compiles this policy, so only its failover is tested.
        web = net.add("fow", "h3", s, policygroups=[pol.groups["web"]])
        app = net.add("foa", "h3", s, policygroups=[pol.groups["app"]])
        serve(net, app, 8080, 8081)
        rule = pol.acl(10, "web", "app", "tcp", "8080")
        wait_connects(web, app, 8080)
        prober = Prober(net, web)
        port = 8080
        for relay in plane.relays:  # whichever h3's agent picked, one of the two runs is a failover
            relay.stop()
            port = 8081 if port == 8080 else 8080
            flip_port(net, prober, rule, app, port)
            relay.start()
            plane.wait_relay(relay)
    finally:
        pol.delete()
        plane.stop_process(f"agent-{h3.name}")
        plane.start_agent(h3)  # back on its round-robin relay for the module's other tests
