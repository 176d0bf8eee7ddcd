"""The agent's Prometheus endpoint: per-rule counters, default-action drops, policy apply latency, per-vport
drops and agent health, labelled with names (docs/metrics.md)."""

from __future__ import annotations

import re
import sys

import pytest

import nuage_ryu
from nuage_ryu.agent.counters import DEFAULT_RULE_ID
from tests.integration.test_overlay import make_domain
from tests.lab_helpers import Containers, lab_with_plane, ns_run, wait_until

pytestmark = pytest.mark.integration

FETCH = "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


def metrics(host) -> str:
    """/metrics of the agent running in the host's namespace (its loopback)."""
    proc = ns_run(host.netns, [sys.executable, "-c", FETCH, "http://127.0.0.1:9100/metrics"])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def sample(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics_when(host, predicate, message: str) -> str:
    """Poll the host agent's /metrics until ``predicate(text)`` holds; returns that text."""
    seen = {}

    def ready():
        seen["text"] = metrics(host)
        return predicate(seen["text"])

    wait_until(ready, timeout=20, message=message)
    return seen["text"]


def test_rule_and_default_counters_and_latency():
    with lab_with_plane(2, tag="met") as (lab, plane):
        net = Containers(lab, plane)
        try:
            e, d, (s1,) = make_domain(net.client, "metrics", cidrs=("10.6.0.0/24",), default_action="deny")
            g = net.client.request("POST", f"/domains/{d['id']}/policygroups", {"name": "pingers"})
            rule = net.client.request("POST", f"/domains/{d['id']}/acls", {
                "priority": 10, "source": {"type": "policygroup", "id": g["id"]},
                "destination": {"type": "any"}, "protocol": "icmp", "action": "allow", "stateful": True})
            a = net.add("ma", "h1", s1, policygroups=[g["id"]])
            b = net.add("mb", "h2", s1)
            h1 = lab.hosts[0]
            assert a.ping(b.ip, count=3, interval=0.1)  # allowed by the rule (first packet decides)
            assert not b.ping(a.ip, count=2, interval=0.1)  # b is not a pinger: default deny
            text = metrics_when(h1, lambda t: sample(t, "nuage_acl_packets_total", rule_id=rule["id"]) >= 1,
                                "rule counter on h1")
            assert sample(text, "nuage_acl_bytes_total", rule_id=rule["id"]) > 0
            h2_text = metrics_when(
                lab.hosts[1],
                lambda t: sample(t, "nuage_acl_packets_total", rule_id=DEFAULT_RULE_ID, domain_id=d["id"]) >= 2,
                "default deny drops counted on h2 (b's pings)")
            assert 'action="deny"' in h2_text
            assert re.search(r'nuage_policy_apply_seconds_count\{host="[^"]+"\} [1-9]', text), text
            assert re.search(r'nuage_bridge_connected\{host="[^"]+"\} 1\.0', text)
            # the agents report the same counters to the directory: GET /acls/{id} and the domain
            wait_until(lambda: (net.client.request("GET", f"/acls/{rule['id']}")["counters"] or {})
                       .get("packets", 0) >= 1, timeout=20, message="rule counters in the REST API")
            acl = net.client.request("GET", f"/acls/{rule['id']}")
            assert acl["counters"]["by_host"][lab.hosts[0].host_name]["packets"] >= 1
            wait_until(lambda: (net.client.request("GET", f"/domains/{d['id']}")["default_action_counters"] or {})
                       .get("packets", 0) >= 2, timeout=20, message="default-action drops in the REST API")
            net.client.request("DELETE", f"/enterprises/{e['id']}?cascade=true")
        finally:
            net.cleanup()


def test_a_denied_ping_raises_the_named_drop_counter_of_its_vport():
    """Real agents, real pings: the deny is counted on the sender's vport, labelled with names and ids."""
    with lab_with_plane(2, tag="met") as (lab, plane), Containers(lab, plane) as net:
        e, d, (s1,) = make_domain(net.client, "met-acme", cidrs=("10.7.0.0/24",), default_action="allow")
        db = net.client.request("POST", f"/domains/{d['id']}/policygroups", {"name": "db"})
        rule = net.client.request("POST", f"/domains/{d['id']}/acls", {
            "priority": 10, "name": "no-ping-to-db", "source": {"type": "any"},
            "destination": {"type": "policygroup", "id": db["id"]}, "protocol": "icmp", "action": "deny"})
        target = net.add("met-db", "h1", s1, policygroups=[db["id"]])
        pinger = net.add("met-client", "h2", s1)
        other = net.add("met-other", "h1", s1)
        h1, h2 = lab.hosts
        drops = dict(vport="met-client", vport_id=pinger.vport["id"], domain="prod", domain_id=d["id"],
                     enterprise="met-acme", direction="from_vport")
        before = sample(metrics_when(h2, lambda t: 'vport="met-client"' in t, "pinger's drop series on h2"),
                        "nuage_vport_policy_drops_total", **drops)
        assert other.ping(pinger.ip, count=1)  # the network works: only pings to db are denied
        assert not pinger.ping(target.ip, count=3, interval=0.1)
        text = metrics_when(h2, lambda t: sample(t, "nuage_vport_policy_drops_total", **drops) >= before + 3,
                            "three denied pings counted on the pinger's vport (h2)")
        assert sample(text, "nuage_vport_policy_drop_bytes_total", **drops) > 0
        # the rule's own series, by name and id, on the host that decided
        assert sample(text, "nuage_acl_packets_total", rule="no-ping-to-db", rule_id=rule["id"], priority="10",
                      action="deny", domain="prod", enterprise="met-acme") >= 3
        # nothing was dropped for the target: its packets never left h2
        h1_text = metrics(h1)
        assert f'vport="met-db",vport_id="{target.vport["id"]}"' in h1_text
        assert sample(h1_text, "nuage_vport_policy_drops_total", vport="met-db") == 0
        assert 'nuage_vports{host="%s",status="up"} 2.0' % h1.host_name in h1_text, h1_text
        assert re.search(r'nuage_directory_connected\{host="[^"]+"\} 1\.0', h1_text)
        assert f'version="{nuage_ryu.__version__}"' in h1_text
        # the directory shows each agent's version and how many vports its host carries
        hosts = {h["name"]: h for h in net.client.request("GET", "/hosts")}
        assert hosts[h1.host_name]["agent_version"] == nuage_ryu.__version__
        assert (hosts[h1.host_name]["vport_count"], hosts[h2.host_name]["vport_count"]) == (2, 1)
        net.client.request("DELETE", f"/enterprises/{e['id']}?cascade=true")
