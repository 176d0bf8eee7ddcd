"""AgentCore: which flows change and which vports go up/down, from directory + bridge inputs."""

import dataclasses

from nuage_ryu.agent.core import AgentCore
from nuage_ryu.directory import model
from nuage_ryu.vrs.cookies import CookieKind, kind_of


def directory(vport_status="down", extra=()):
    objs = [
        model.Enterprise("e1", "acme"),
        model.Domain("d1", "e1", "prod", vni=100, ct_zone=1, router_mac="02:00:00:00:01:00",
                     default_action="allow"),
        model.Zone("z1", "d1", "web"),
        model.Subnet("s1", "z1", "d1", "web", "10.0.1.0/24", "10.0.1.1"),
        model.VPort("v1", "s1", "d1", "c1", "10.0.1.10", "02:00:0a:00:01:0a", "10.0.1.1", host="h1",
                    status=vport_status),
        model.VPort("v2", "s1", "d1", "c2", "10.0.1.11", "02:00:0a:00:01:0b", "10.0.1.1", host="h2"),
        model.Host("hh1", "h1", tunnel_ip="192.0.2.11"),
        model.Host("hh2", "h2", tunnel_ip="192.0.2.12"),
        *extra,
    ]
    return model.DirectoryState.from_objects(objs)


def test_vport_goes_up_only_after_its_generation_is_confirmed():
    core = AgentCore("h1")
    core.set_directory(directory())
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    gen, diff = core.recompute()
    assert diff.add and gen == 1
    assert core.status_updates() == []  # already down: flows not confirmed yet
    core.confirm(gen)
    assert core.status_updates() == [("v1", "up")]
    # once the directory says up, nothing more to write
    core.set_directory(directory(vport_status="up"))
    _, diff = core.recompute()
    assert not diff  # a status change alone never changes flows
    assert core.status_updates() == []


def test_vport_goes_down_when_its_port_leaves_the_bridge():
    core = AgentCore("h1")
    core.set_directory(directory(vport_status="up"))
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    core.confirm(core.recompute()[0])
    assert core.status_updates() == []
    core.set_ports({}, tunnel_ofport=1)
    _, diff = core.recompute()
    assert diff.delete  # its classify flows are removed
    assert core.status_updates() == [("v1", "down")]


def test_unchanged_inputs_produce_no_diff_and_keep_generation():
    core = AgentCore("h1")
    core.set_directory(directory())
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    gen1, _ = core.recompute()
    gen2, diff = core.recompute()
    assert not diff and gen1 == gen2


def test_remote_vport_change_touches_only_its_flows():
    core = AgentCore("h1")
    state = directory()
    core.set_directory(state)
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    core.recompute()
    moved = dataclasses.replace(state.vports["v2"], ip="10.0.1.12")
    vports = dict(state.vports, v2=moved)
    core.set_directory(model.DirectoryState(state.enterprises, state.domains, state.zones, state.subnets,
                                            vports, state.policygroups, state.acls, state.hosts))
    _, diff = core.recompute()
    assert diff
    touched = {f.cookie for f in diff.add + diff.delete}
    local_cookies = {f.cookie for f in core.compiler.flows.values() if f.cookie}
    assert {kind_of(c) for c in touched} == {CookieKind.REMOTE_VPORT}  # only the remote vport's flows
    assert local_cookies


def test_other_hosts_vports_never_get_status_from_this_agent():
    core = AgentCore("h1")
    core.set_directory(directory())
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    core.confirm(core.recompute()[0])
    assert [v for v, _ in core.status_updates()] == ["v1"]
