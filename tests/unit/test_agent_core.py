"""AgentCore: which flows change and which vports go up/down, from directory + bridge inputs;
which sync generation holds which flows; when to list ports; how counters are collected."""

import dataclasses

from nuage_ryu.agent.core import DIFF, FULL, AgentCore, Confirmation
from nuage_ryu.agent.counters import COUNTED_TABLE, DEFAULT_RULE_ID, CounterKey, RuleCounter
from nuage_ryu.directory import model
from nuage_ryu.vrs.cookies import CookieKind, cookie_for, kind_of
from nuage_ryu.vrs.view import GATEWAY_PORT_KEY, GATEWAY_VLAN_KEY, ExternalUplink


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


def scoped(state, complete):
    """``state`` as a scoped store publishes it: only the domains in ``complete`` are complete."""
    maps = {plural: state.table(kind) for kind, (_t, plural, _p) in model.KINDS.items()}
    return model.DirectoryState(**maps, complete_domains=frozenset(complete))


def test_a_vport_is_up_only_once_its_domain_is_complete():
    """The vport's own row arrives before its domain's condition is acknowledged: flows compiled
    then are not "its flows", even once confirmed (OVN: ovn-installed set too early)."""
    core = AgentCore("h1")
    full = directory()
    only_own_vport = model.DirectoryState.from_objects([full.vports["v1"], full.hosts["hh1"]])
    core.set_directory(scoped(only_own_vport, complete=()))
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    core.confirm(core.recompute()[0])
    assert core.status_updates() == []
    # the domain's rows arrived, but the condition's reply did not yet
    core.set_directory(scoped(full, complete=()))
    core.confirm(core.recompute()[0])
    assert core.status_updates() == []
    # the condition is acknowledged: the generation compiled now holds the vport's flows
    core.set_directory(scoped(full, complete={"d1"}))
    gen, _diff = core.recompute()
    core.confirm(gen)
    assert core.status_updates() == [("v1", "up")]


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


def test_a_snapshot_that_shares_every_map_the_view_reads_is_not_compiled_again():
    """A resync, an acknowledgment or a token change publishes a snapshot whose vports, rules...
    are the same maps: no view is built, nothing is compiled."""
    core = AgentCore("h1")
    state = directory()
    core.set_directory(state)
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    core.recompute()
    view = core.view
    maps = {plural: state.table(kind) for kind, (_t, plural, _p) in model.KINDS.items()}
    core.set_directory(model.DirectoryState(**dict(maps, tokens={"t": None})))
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    _gen, diff = core.recompute()
    assert not diff and core.view is view
    core.set_ports({"v1": 6}, tunnel_ofport=1)  # a port change does rebuild
    _gen, diff = core.recompute()
    assert diff and core.view is not view


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


# -- generation tracking: which sync generation carries which flow generation ----------------


def with_vports(state, *vports):
    """``state`` with ``vports`` added (or replaced)."""
    all_vports = dict(state.vports, **{v.id: v for v in vports})
    return model.DirectoryState(state.enterprises, state.domains, state.zones, state.subnets,
                                all_vports, state.policygroups, state.acls, state.hosts)


V3 = model.VPort("v3", "s1", "d1", "c3", "10.0.1.12", "02:00:0a:00:01:0c", "10.0.1.1", host="h1")


def connected_core(state=None, ports=None):
    """A core whose bridge is connected and whose whole desired set went out as sync generation 1."""
    core = AgentCore("h1")
    core.connected()
    core.set_directory(state or directory())
    core.set_ports(ports if ports is not None else {"v1": 5}, tunnel_ofport=1)
    _, diff = core.recompute()
    assert core.push_plan(diff) == FULL
    core.pushed(1, now=0.0)
    return core


def test_push_plan_is_the_whole_set_once_per_connection_then_only_diffs():
    core = AgentCore("h1")
    core.set_directory(directory())
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    _, diff = core.recompute()
    assert core.push_plan(diff) is None  # not connected: nothing to hand over
    core.connected()
    assert core.push_plan() == FULL  # on connect, with the directory known already
    core.pushed(1, now=0.0)
    _, diff = core.recompute()
    assert not diff and core.push_plan(diff) is None  # nothing changed
    core.set_ports({"v1": 5, "v3": 6}, tunnel_ofport=1)
    core.set_directory(with_vports(directory(), V3))
    _, diff = core.recompute()
    assert diff and core.push_plan(diff) == DIFF
    core.disconnected()
    assert core.push_plan(diff) is None
    core.connected()  # a new sync engine needs the whole set again
    assert core.push_plan(diff) == FULL


def test_no_push_before_the_directory_is_known():
    core = AgentCore("h1")
    core.connected()
    assert core.push_plan() is None


def test_status_only_after_the_sync_generation_holding_the_vports_flows_is_confirmed():
    core = connected_core()
    core.set_directory(with_vports(directory(), V3))
    core.set_ports({"v1": 5, "v3": 6}, tunnel_ofport=1)
    gen2, diff = core.recompute()
    assert core.push_plan(diff) == DIFF
    core.pushed(2, now=0.0)  # v3's flows first appear in sync generation 2
    assert core.confirmed(1, now=0.0) == Confirmation(gen2 - 1)
    assert core.status_updates() == [("v1", "up")]  # v3 waits: its flows are not confirmed yet
    assert core.confirmed(2, now=0.0) == Confirmation(gen2)
    assert core.status_updates() == [("v1", "up"), ("v3", "up")]


def test_confirming_a_newer_sync_generation_supersedes_older_ones():
    core = connected_core()
    core.set_directory(with_vports(directory(), V3))
    core.set_ports({"v1": 5, "v3": 6}, tunnel_ofport=1)
    gen2, _ = core.recompute()
    core.pushed(2, now=0.0)
    assert core.confirmed(2, now=0.0).generation == gen2  # the engine coalesced 1 into 2
    assert core.confirmed(1, now=0.0) is None  # forgotten: its flows are part of 2
    assert core.confirmed_generation == gen2


def test_a_reconnect_starts_the_generation_map_again():
    core = connected_core()
    core.confirmed(1, now=0.0)  # the old engine confirmed its generation 1
    core.set_directory(with_vports(directory(), V3))
    core.set_ports({"v1": 5, "v3": 6}, tunnel_ofport=1)
    gen2, _ = core.recompute()
    core.pushed(2, now=0.0)  # never confirmed: the connection dropped
    core.disconnected()
    core.connected()  # a new engine: its generations start at 1 again
    assert core.push_plan() == FULL
    assert core.pushed(1, now=0.0) is None  # the old engine's confirmation of its 1 is not this one's
    assert core.status_updates() == [("v1", "up")]  # v3 waits for the new engine
    assert core.confirmed(1, now=0.0).generation == gen2
    assert core.status_updates() == [("v1", "up"), ("v3", "up")]


def test_a_generation_the_engine_confirms_while_taking_it_counts():
    # The engine confirms inside set_desired/apply_diff when the bridge already holds the flows
    # (an agent restart): before the bridge could tell the core which sync generation it was.
    core = AgentCore("h1")
    core.connected()
    core.set_directory(directory(), seen_at=1.0)
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    gen, _ = core.recompute()
    assert core.confirmed(1, now=1.5) is None  # not known yet
    assert core.pushed(1, now=1.5) == Confirmation(gen, [0.5])
    assert core.status_updates() == [("v1", "up")]


def test_a_vport_whose_port_left_and_came_back_waits_for_its_new_flows():
    core = connected_core()
    core.confirmed(1, now=0.0)
    core.set_directory(directory(vport_status="up"))
    assert core.status_updates() == []
    core.set_ports({}, tunnel_ofport=1)
    core.recompute()
    core.pushed(2, now=0.0)
    assert core.status_updates() == [("v1", "down")]
    core.confirmed(2, now=0.0)
    core.set_directory(directory(vport_status="down"))
    core.set_ports({"v1": 7}, tunnel_ofport=1)  # re-plugged on another port
    gen3, diff = core.recompute()
    assert diff
    core.pushed(3, now=0.0)
    assert core.status_updates() == []  # back to waiting: generation 3 is not confirmed yet
    core.confirmed(3, now=0.0)
    assert core.confirmed_generation == gen3 and core.status_updates() == [("v1", "up")]


def test_a_confirmed_vport_stays_up_while_its_flows_change():
    # "up" is the port-ready signal: once its first flows are in, a later change of them (here a
    # new ofport) does not flap the vport back to down.
    core = connected_core()
    core.confirmed(1, now=0.0)
    core.set_directory(directory(vport_status="up"))
    core.set_ports({"v1": 9}, tunnel_ofport=1)
    _, diff = core.recompute()
    assert diff
    core.pushed(2, now=0.0)
    assert core.status_updates() == []


def test_apply_latencies_cover_every_directory_update_a_confirmation_completes():
    core = AgentCore("h1")
    core.connected()
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    core.set_directory(directory(), seen_at=10.0)
    core.recompute()
    core.pushed(1, now=0.0)
    core.set_directory(directory(), seen_at=10.5)
    _, diff = core.recompute()
    assert not diff  # no new flows: no latency to measure for this update
    core.set_directory(with_vports(directory(), V3), seen_at=11.0)
    core.set_ports({"v1": 5, "v3": 6}, tunnel_ofport=1)
    gen2, _ = core.recompute()
    core.pushed(2, now=0.0)
    confirmation = core.confirmed(2, now=12.0)
    assert confirmation.generation == gen2 and confirmation.latencies == [2.0, 1.0]
    core.set_directory(with_vports(directory(), dataclasses.replace(V3, ip="10.0.1.13")), seen_at=13.0)
    core.recompute()
    core.pushed(3, now=0.0)
    assert core.confirmed(3, now=13.25).latencies == [0.25]  # each update is measured once


# -- port cache ---------------------------------------------------------------------------------


def test_ports_are_listed_first_then_only_after_a_change():
    core = AgentCore("h1")
    assert core.take_port_listing()  # nothing cached yet
    core.ports_listed([("v1", 5), ("v2", None), ("v9", -1), ("v8", 0)], tunnel_ofport=1)
    assert not core.take_port_listing()
    assert core.local_ports({}) == ({"v1": 5}, 1)  # ports without a usable ofport are left out
    core.ports_changed()
    assert core.take_port_listing()
    core.ports_changed()  # a change while the listing runs: it must be listed once more
    core.ports_listed([("v1", 5), ("v3", 6)], tunnel_ofport=1)
    assert core.take_port_listing()
    core.ports_listed([("v1", 5), ("v3", 6)], tunnel_ofport=1)
    assert not core.take_port_listing()


def test_a_failed_listing_is_tried_again_until_one_succeeds():
    core = AgentCore("h1")
    assert core.take_port_listing()  # the listing raised: ports_listed never called
    assert core.take_port_listing()
    assert core.local_ports({}) == ({}, None)


def test_bare_metal_vports_of_this_host_are_reached_through_their_gateway_port():
    bm = model.VPort("bm", "s1", "d1", "srv", "10.0.1.20", "02:00:0a:00:01:14", "10.0.1.1", type="host",
                     host="h1", external_ids={GATEWAY_PORT_KEY: "eth5", GATEWAY_VLAN_KEY: "10"})
    bm_far = dataclasses.replace(bm, id="bm2", host="h2")
    vm = model.VPort("vm", "s1", "d1", "vm", "10.0.1.21", "02:00:0a:00:01:15", "10.0.1.1", type="vm",
                     host="h1", external_ids={GATEWAY_PORT_KEY: "eth6"})  # only bare-metal vports have one
    core = AgentCore("h1")
    state = with_vports(directory(), bm, bm_far, vm)
    assert core.gateway_ports(state) == [("bm", "eth5")]
    core.ports_listed([("v1", 5), ("bm", 3)], tunnel_ofport=1)
    assert core.local_ports({"bm": 8}) == ({"v1": 5, "bm": 8}, 1)  # the gateway port's ofport wins


# -- policy counters ----------------------------------------------------------------------------


def counted_core():
    acl = model.ACL("r1", "d1", 10, action="allow")
    core = connected_core(directory(extra=(acl,)))
    return core, cookie_for(CookieKind.ACL_RULE, "r1"), cookie_for(CookieKind.ACL_DEFAULT, "d1")


def test_counters_are_requested_only_while_connected_and_one_at_a_time():
    core, _, _ = counted_core()
    assert core.counters_due()
    core.counters_requested(77)
    assert not core.counters_due()
    assert core.awaits_counters(77) and not core.awaits_counters(78)  # 78: the sync engine's read-back
    core.disconnected()  # the reply is lost with the connection
    assert not core.counters_due() and not core.awaits_counters(77)
    core.connected()
    assert core.counters_due()


def test_a_new_connection_asks_for_counters_though_the_old_one_never_answered():
    core, _, _ = counted_core()
    core.counters_requested(77)
    core.connected()  # reconnected before the old connection's end was reported
    assert core.counters_due() and not core.awaits_counters(77)


def test_counters_sum_every_part_of_a_multipart_reply():
    core, rule, default = counted_core()
    core.counters_requested(5)
    assert not core.counters_received([(COUNTED_TABLE, rule, 3, 300)], more=True)
    assert core.awaits_counters(5) and not core.unreported
    assert core.counters_received([(COUNTED_TABLE, rule, 2, 200), (COUNTED_TABLE, default, 4, 240)], more=False)
    assert not core.awaits_counters(5) and core.counters_due()
    assert core.rule_counters[CounterKey("d1", "r1", "allow")] == RuleCounter(5, 500)
    assert core.rule_counters[CounterKey("d1", DEFAULT_RULE_ID, "allow")] == RuleCounter(4, 240)
    assert core.unreported
    assert core.counters_report() == ({"r1": (5, 500)}, {"d1": (4, 240)})
    assert not core.unreported
    core.counters_requested(6)  # the next round starts from zero: totals are absolute, not added up
    core.counters_received([(COUNTED_TABLE, rule, 6, 600)], more=False)
    assert core.counters_report() == ({"r1": (6, 600)}, {"d1": (0, 0)})


def test_each_bridge_counts_only_its_own_replies():
    h1, rule, _ = counted_core()
    h2 = AgentCore("h2")
    h2.connected()
    h2.set_directory(directory(extra=(model.ACL("r1", "d1", 10, action="allow"),)))
    h2.set_ports({"v2": 4}, tunnel_ofport=1)
    h2.recompute()
    h1.counters_requested(9)
    h2.counters_requested(10)
    assert not h2.awaits_counters(9)  # h1's reply (same datapath-local xid space) is not h2's
    h1.counters_received([(COUNTED_TABLE, rule, 1, 100)], more=False)
    h2.counters_received([(COUNTED_TABLE, rule, 2, 200)], more=False)
    assert h1.counters_report()[0] == {"r1": (1, 100)} and h2.counters_report()[0] == {"r1": (2, 200)}


def test_external_uplink_reaches_the_view_and_the_steering_follows_published_ports():
    core = AgentCore("h1")
    state = directory()
    published = dataclasses.replace(state.vports["v1"], floating_ip="192.0.2.200",
                                    port_mappings=(model.PortMapping("tcp", 8080, 80),))
    kept = [o for kind in ("enterprises", "domains", "zones", "subnets", "hosts")
            for o in getattr(state, kind).values()]
    core.set_directory(model.DirectoryState.from_objects([*kept, published, state.vports["v2"]]))
    core.set_ports({"v1": 5}, tunnel_ofport=1)
    core.recompute()
    assert core.view.external is None and core.uplink_view() is None  # no uplink known: nothing external
    uplink = ExternalUplink("192.0.2.11", "0a:00:00:00:00:0b", 90)
    core.set_external(uplink, (1, 2))
    _, diff = core.recompute()
    assert core.view.external == uplink
    kinds = {kind_of(f.cookie) for f in diff.add}
    assert {CookieKind.EXTERNAL, CookieKind.FLOATING_IP, CookieKind.PORT_MAPPING} <= kinds
    steering = core.uplink_view()
    assert steering.floating_ips == ("192.0.2.200",) and steering.published == (("tcp", 8080),)
    core.set_external(None, (1, 2))
    _, diff = core.recompute()
    assert core.uplink_view() is None and {kind_of(f.cookie) for f in diff.delete} >= {CookieKind.EXTERNAL}


def test_a_counters_round_over_two_tables_ends_with_the_last_reply():
    from nuage_ryu.vrs.pipeline import INGRESS_AUDIT

    core, rule, _default = counted_core()
    core.counters_requested(5)  # INGRESS_POLICY
    core.counters_requested(6)  # INGRESS_AUDIT (audit rules, docs/policy.md)
    assert not core.counters_received([(COUNTED_TABLE, rule, 3, 300)], more=False, xid=5)
    assert core.awaits_counters(6) and not core.awaits_counters(5) and not core.counters_due()
    assert core.counters_received([(INGRESS_AUDIT.number, rule, 1, 100)], more=False, xid=6)
    assert core.rule_counters[CounterKey("d1", "r1", "allow")] == RuleCounter(4, 400) and core.counters_due()
