"""Central mode: one VRS agent on the controller node programs every host's bridge.

The hosts' br-int connect over the underlay to the agent on the controller
node (``[vrs] managed_hosts``); containers on different hosts reach each other
and the agent restart keeps the flows.
"""

from __future__ import annotations

import pytest

from tests.integration.test_overlay import make_domain
from tests.lab_helpers import Containers, dump_flows, lab_with_plane

pytestmark = pytest.mark.integration


def test_one_agent_for_many_hosts():
    with lab_with_plane(2, tag="cen", central=True) as (lab, plane):
        net = Containers(lab, plane)
        try:
            hosts = {h["name"]: h for h in net.client.request("GET", "/hosts")}
            assert set(hosts) == {h.host_name for h in lab.hosts}
            assert all(h["connected"] for h in hosts.values())
            e, _d, (s1, s2) = make_domain(net.client, "central")
            a = net.add("ca", "h1", s1)
            b = net.add("cb", "h2", s2)
            assert a.ping(b.ip) and b.ping(a.ip)
            before = [dump_flows(h) for h in lab.hosts]
            plane.stop_process("agent-central")
            assert a.ping(b.ip)  # fail_mode=secure: the flows keep working without the controller
            plane.start_central_agent()
            assert a.ping(b.ip)
            assert [dump_flows(h) for h in lab.hosts] == before
            net.client.request("DELETE", f"/enterprises/{e['id']}?cascade=true")
        finally:
            net.cleanup()
