"""Churn: 100 CNI ADDs then 100 DELs on one host through the real nuage-cni and agent; nothing leaks."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time

import pytest

from tests.attach_helpers import (
    agent_process,
    directory_service,
    host_state,
    make_network,
    prepare_bridge,
    run_cni,
)
from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name

pytestmark = pytest.mark.integration
HOST = "churn-host"
COUNT = 100


def test_100_add_100_del_no_leaks():
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(directory_service())
        ovs = stack.enter_context(private_ovs())
        make_network(directory, cidr="10.20.0.0/22")
        prepare_bridge(ovs)
        sock = os.path.join(directory.state_dir, "agent.sock")
        stack.enter_context(agent_process(sock, ovs.db_remote, directory, HOST, ovs.netns))
        conf = {"cniVersion": "1.0.0", "name": "nuage", "type": "nuage-cni", "agent_socket": sock,
                "enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}
        spaces = [f"/var/run/netns/{stack.enter_context(namespace(unique_netns_name('nrch')))}"
                  for _ in range(COUNT)]
        start = time.monotonic()
        addresses = set()
        for i, ns in enumerate(spaces):
            rc, out = run_cni("ADD", conf, f"churn-{i}", ns)
            assert rc == 0, out
            addresses.add(out["ips"][0]["address"])
        added = time.monotonic()
        assert len(addresses) == COUNT
        state = host_state(ovs, directory, HOST)
        assert len(state["ports"]) == len(state["vports"]) == COUNT and len(state["links"]) == COUNT
        for i, ns in enumerate(spaces):
            assert run_cni("DEL", conf, f"churn-{i}", ns) == (0, None)
        done = time.monotonic()
        assert host_state(ovs, directory, HOST) == {"ports": [], "links": [], "vports": []}
        assert ovs.vsctl("list-ports", "br-int").split() == []
        print(f"\n{COUNT} ADD in {added - start:.2f}s, {COUNT} DEL in {done - added:.2f}s "
              f"({COUNT / (done - start):.1f} ADD+DEL pairs/s, process start included)")


def test_parallel_adds_dels_and_gc():
    """16 workers ADD/DEL concurrently while GC runs with everything valid: unique IPs, no leak."""
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(directory_service())
        ovs = stack.enter_context(private_ovs())
        make_network(directory, cidr="10.21.0.0/24")
        prepare_bridge(ovs)
        sock = os.path.join(directory.state_dir, "agent.sock")
        stack.enter_context(agent_process(sock, ovs.db_remote, directory, HOST, ovs.netns))
        conf = {"cniVersion": "1.1.0", "name": "nuage", "type": "nuage-cni", "agent_socket": sock,
                "enterprise": "acme", "domain": "prod", "zone": "web", "subnet": "web-net"}
        spaces = [f"/var/run/netns/{stack.enter_context(namespace(unique_netns_name('nrpa')))}"
                  for _ in range(32)]
        valid = {"cni.dev/valid-attachments": [{"containerID": f"par-{i}", "ifname": "eth0"}
                                               for i in range(len(spaces))]}

        def add(i: int) -> str:
            rc, out = run_cni("ADD", conf, f"par-{i}", spaces[i])
            assert rc == 0, out
            if i % 8 == 0:
                assert run_cni("GC", dict(conf, **valid)) == (0, None)
            return out["ips"][0]["address"]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            addresses = list(pool.map(add, range(len(spaces))))
        assert len(set(addresses)) == len(spaces)
        state = host_state(ovs, directory, HOST)
        assert len(state["ports"]) == len(state["links"]) == len(state["vports"]) == len(spaces)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda i: run_cni("DEL", conf, f"par-{i}", spaces[i]), range(len(spaces))))
        assert codes == [(0, None)] * len(spaces)
        assert host_state(ovs, directory, HOST) == {"ports": [], "links": [], "vports": []}
