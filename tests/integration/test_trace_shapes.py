"""Explain a packet in the other deployment shapes: agents behind an ovsdb-server relay (the trace request
and its answer pass through the relay), and one central agent programming every host (it traces on
each host's bridge). Each: the 3-tier rules on two hosts, an allowed and a denied trace, ``agree``."""

from __future__ import annotations

import os

import pytest

from nuage_ryu.lab.demo import build_tenants
from tests.lab_helpers import Containers, lab_with_plane

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, OVS)")]


def three_tier_traces_agree(lab, plane) -> None:
    with Containers(lab, plane) as containers:
        client = containers.client
        acme = build_tenants(client)
        for name, host, tier in (("web1", "h1", "web"), ("app1", "h2", "app"), ("db1", "h2", "db")):
            containers.add(name, host, acme["subnets"][tier], policygroups=[acme["groups"][tier]["id"]])
        for src, dst, port, verdict, priority, host in (("web1", "app1", 8080, "allow", 100, "h1"),
                                                         ("app1", "db1", 5432, "allow", 200, "h2"),
                                                         ("web1", "db1", 5432, "deny", None, "h1")):
            answer = client.request("POST", "/trace", {"from": src, "to": dst, "port": port})
            assert answer["verdict"] == verdict and answer["datapath"] == "agree", answer
            assert (answer["rule"] or {}).get("priority") == priority, answer
            assert answer["datapath_detail"]["host"] == lab.host(host).host_name


def test_traces_through_a_relay():
    with lab_with_plane(2, tag="trcr", relays=1) as (lab, plane):
        three_tier_traces_agree(lab, plane)


def test_traces_by_a_central_agent():
    with lab_with_plane(2, tag="trcc", central=True) as (lab, plane):
        three_tier_traces_agree(lab, plane)
