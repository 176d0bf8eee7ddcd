"""Agents behind a relay of a 3-member Raft directory: the members go away, policy keeps flowing.

The cluster's members run on this machine's loopback (Raft between them) and also serve a unix
socket each, which the directory API and the relays (in the lab's controller namespace) use.
Two relays, agents round-robin behind them. Two kills, each followed by policy changes that
must reach both sides' agents, and a new vport the agent must report up (a write forwarded by
the relay to the new leader):

1. the member relay 1 follows is killed (SIGKILL): relay 1 must move to another member; when
   that member was the leader, this is also the leader change;
2. otherwise, once it is back, the leader is killed: a leader change behind the relays.
"""

from __future__ import annotations

import re
import signal

import pytest

from nuage_ryu.db import cluster
from nuage_ryu.directory.client import CannotConnect
from nuage_ryu.directory.errors import DirectoryError
from nuage_ryu.directory.testing import free_port
from tests.integration.test_policy_lab import Policy, Prober, serve, wait_connects
from tests.lab_helpers import Containers, lab_with_plane, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    ports = [(free_port(), free_port()) for _ in range(3)]
    made = cluster.create_cluster(str(tmp_path_factory.mktemp("hrraft") / "cluster"), 3, ports=ports)
    try:
        for m in made:
            cluster.start_member(m)
        cluster.wait_for_leader(made)
        yield made
    finally:
        for m in made:
            cluster.stop_member(m, signal.SIGKILL)


@pytest.fixture(scope="module")
def lab3(members):
    with lab_with_plane(3, tag="hrr", relays=2,
                       directory_connection=cluster.connection_string(members, unix=True)) as (lab, plane):
        yield lab, plane


@pytest.fixture
def net(lab3):
    with Containers(*lab3) as containers:
        yield containers


def followed_member(relay, members):
    """The member a relay is connected to now (the last one its log says it connected to)."""
    with open(relay.log_path) as f:
        remotes = re.findall(r"reconnect\|INFO\|unix:(\S+): connected", f.read())
    return next(m for m in members if remotes and m.socket_path == remotes[-1])


def retried(call):
    """A REST call, retried while the cluster has no leader (503) or the API reconnects."""
    def attempt():
        try:
            return call() or True
        except CannotConnect:
            # The API's store reconnecting to the new leader can hold a request past the client's
            # timeout (seen once in CI); the call is idempotent, so it is sent again.
            return None
        except DirectoryError as exc:
            if exc.status == 503:
                return None
            raise

    return wait_until(attempt, timeout=60, interval=0.2, message="the directory API to answer")


def flip_port(net, prober, rule, app, port: int) -> None:
    retried(lambda: net.client.request("PUT", f"/acls/{rule['id']}", {"dst_ports": str(port)}))
    prober.until(app, port, True, deadline=30)
    prober.until(app, 8081 if port == 8080 else 8080, False, deadline=30)


def kill(member) -> None:
    cluster.stop_member(member, signal.SIGKILL)
    assert member.pid is None


def test_policy_keeps_reaching_agents_behind_relays_across_member_loss_and_leader_change(net, lab3, members):
    lab, plane = lab3
    relay = plane.relays[0]  # h1's (web's) agent follows the directory through it
    assert plane.agent_directory(lab.hosts[0]) == plane.relay_remote(relay)
    pol = Policy(net.client, "raftrelay", ("web", "app"), cidrs=("10.63.1.0/24",))
    try:
        (s,) = pol.subnets
        web = net.add("rrw", "h1", s, policygroups=[pol.groups["web"]])
        app = net.add("rra", "h2", s, policygroups=[pol.groups["app"]])
        serve(net, app, 8080, 8081)
        rule = pol.acl(10, "web", "app", "tcp", "8080")
        wait_connects(web, app, 8080)
        prober = Prober(net, web)
        port, leader_changed = 8080, False

        def policy_still_flows(tag: str) -> None:
            nonlocal port
            port = 8081 if port == 8080 else 8080
            flip_port(net, prober, rule, app, port)  # both sides' agents heard the change
            # h1's agent hears of a new vport through relay 1 and reports it up through it.
            net.add(f"late{tag}", "h1", s, policygroups=[pol.groups["web"]])

        # 1. the relay's own member goes away
        followed, leader = followed_member(relay, members), cluster.find_leader(members)
        kill(followed)
        alive = [m for m in members if m is not followed]
        leader_changed = followed is leader
        new_leader = cluster.wait_for_leader(alive, timeout=60)
        wait_until(lambda: followed_member(relay, members) in alive, timeout=30,
                   message="relay 1 to follow another member")
        plane.wait_relay(relay)
        policy_still_flows("a")

        # 2. a leader change (unless 1 was one already)
        if not leader_changed:
            cluster.start_member(followed)
            wait_until(lambda: cluster.member_status(followed).get("status") == "cluster member", timeout=60,
                       message="the killed member back in the cluster")
            kill(new_leader)
            survivors = [m for m in members if m is not new_leader]
            assert cluster.wait_for_leader(survivors, timeout=60) is not new_leader
            for r in plane.relays:
                plane.wait_relay(r)
            policy_still_flows("b")
        # Every vport is up in the directory (the agents' status writes went through the relays).
        vports = retried(lambda: net.client.request("GET", f"/subnets/{s['id']}/vports"))
        plugged = {c.vport["id"] for c in net.created}
        assert all(v["status"] == "up" for v in vports if v["id"] in plugged), vports
        print(f"relay 1 followed the leader: {leader_changed}; members: "
              + ", ".join(f"m{m.index}={cluster.member_status(m).get('role', 'down')}" for m in members))
    finally:
        retried(pol.delete)
