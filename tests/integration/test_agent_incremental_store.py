"""The incremental agent on a real scoped store: the snapshots of an agent's ``DirectoryStore`` say
which objects changed (its mirror's change log) and where its vports are (placement), and an
``AgentCore`` fed those snapshots updates its view per object, with the same flows as a rebuild.
"""

from __future__ import annotations

import shutil

import pytest

from nuage_ryu.agent.core import AgentCore
from nuage_ryu.directory import validate
from nuage_ryu.directory.store import DirectoryStore
from nuage_ryu.directory.testing import wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


def create(store, kind, parent, body):
    change, state = store.apply(lambda s: validate.plan_create(s, kind, parent, body))
    return state.get(*change.result)


def update(store, kind, obj_id, body):
    store.apply(lambda s: validate.plan_update(s, kind, obj_id, body))


def rebuilt(state, ofports):
    core = AgentCore("h1")
    core.set_directory(state)
    core.set_ports(ofports, 1)
    core.recompute()
    return core


def test_an_agent_store_feeds_the_incremental_view_with_what_changed(server):
    api = DirectoryStore(server.remote, all_counters=True)
    api.start()
    agent = DirectoryStore(server.remote, scope_hosts=["h1"])
    agent.start()
    try:
        ent = create(api, "enterprise", None, {"name": "acme"})
        for name, ip in (("h1", "192.0.2.1"), ("h2", "192.0.2.2")):
            api.register_host(name, ip, None)
        dom = create(api, "domain", ent.id, {"name": "blue"})
        zone = create(api, "zone", dom.id, {"name": "z"})
        sub = create(api, "subnet", zone.id, {"name": "s", "cidr": "10.1.0.0/24"})
        web = create(api, "policygroup", dom.id, {"name": "web"})
        db = create(api, "policygroup", dom.id, {"name": "db"})
        rule = create(api, "acl", dom.id, {"priority": 10, "source": {"type": "policygroup", "id": web.id},
                                           "destination": {"type": "policygroup", "id": db.id},
                                           "protocol": "tcp", "dst_ports": "5432"})
        local = create(api, "vport", sub.id, {"name": "a", "host": "h1", "policygroups": [web.id]})
        remote = create(api, "vport", sub.id, {"name": "b", "host": "h2", "policygroups": [db.id]})
        wait_until(lambda: agent.scope_settled() and remote.id in agent.snapshot().vports
                   and rule.id in agent.snapshot().acls, 10, 0.02, "the share")
        ofports = {local.id: 5}
        core = AgentCore("h1")
        first = agent.snapshot()
        assert sorted(v.id for v in first.vports_on_host("h1")) == [local.id]  # the placement index
        core.set_directory(first)
        core.set_ports(ofports, 1)
        core.recompute()

        update(api, "acl", rule.id, {"dst_ports": "5433"})
        wait_until(lambda: agent.snapshot().acls[rule.id].dst_ports == "5433", 10, 0.02, "the rule change")
        second = agent.snapshot()
        assert rule.id in second.changes_since(first)["acls"]
        core.set_directory(second)
        core.recompute()
        assert core.incremental_updates == 1
        assert {o[0] for o in core.compiler.recompiled} <= {"acl", "acl-member"}
        assert core.compiler.flows == rebuilt(second, ofports).compiler.flows

        update(api, "vport", remote.id, {"policygroups": [web.id, db.id]})
        wait_until(lambda: web.id in agent.snapshot().vports[remote.id].policygroups, 10, 0.02, "the membership")
        third = agent.snapshot()
        core.set_directory(third)
        core.recompute()
        assert core.incremental_updates == 2
        assert core.compiler.flows == rebuilt(third, ofports).compiler.flows
    finally:
        agent.stop()
        api.stop()
