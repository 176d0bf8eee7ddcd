"""The agent's Prometheus endpoint: per-rule counters, default-action drops, policy apply latency."""

from __future__ import annotations

import re
import sys

import pytest

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
            text = metrics_when(h1, lambda t: sample(t, "nuage_acl_packets_total", rule=rule["id"]) >= 1,
                                "rule counter on h1")
            assert sample(text, "nuage_acl_bytes_total", rule=rule["id"]) > 0
            h2_text = metrics_when(
                lab.hosts[1], lambda t: sample(t, "nuage_acl_packets_total", rule=DEFAULT_RULE_ID, domain=d["id"]) >= 2,
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
