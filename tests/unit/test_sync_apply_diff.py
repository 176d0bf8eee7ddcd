"""BridgeSync.apply_diff: the incremental path gives the switch exactly what set_desired would."""

from __future__ import annotations

import pytest

from nuage_ryu.vrs import ofwire, sync
from nuage_ryu.vrs.flow import Flow, FlowDiff, Output, diff_flows, index, match
from tests.unit.test_sync import CANARY, VP, VP2, Switch, commit_reply, connect, flows, run_bundle


def test_apply_diff_equals_set_desired_of_the_new_set():
    old = flows(20)
    changed = Flow(old[3].table, old[3].priority, old[3].match, (Output(9),), VP)
    new = [Flow(0, 100, match(in_port=99), (Output(1),), VP2)]
    target = old[:3] + [changed] + old[4:15] + new  # five removed, one changed, one new
    results = []
    for incremental in (False, True):
        sw = Switch(old + [CANARY])
        bs = sync.BridgeSync()
        connect(bs, sw)
        assert bs.set_desired(old) == []
        msgs = bs.apply_diff(diff_flows(index(old), index(target))) if incremental else bs.set_desired(target)
        parsed, after = run_bundle(bs, sw, msgs)
        assert after == [] and bs.in_sync
        results.append((sorted((p[0], str(p[4])) for p in parsed if p[0] != "ctrl"), sw.installed))
    assert results[0] == results[1]
    assert results[1][1] == {f.key: ofwire.canonical_flow(f) for f in target + [CANARY]}


def test_apply_diff_keeps_the_canary_and_needs_a_desired_set():
    bs = sync.BridgeSync()
    with pytest.raises(ValueError):
        bs.apply_diff(FlowDiff())
    sw = Switch()
    connect(bs, sw)
    run_bundle(bs, sw, bs.set_desired(flows(3)))
    # a diff that (wrongly) lists the canary for deletion must not remove the restart detector
    parsed, _ = run_bundle(bs, sw, bs.apply_diff(FlowDiff(delete=[CANARY, flows(3)[0]])))
    assert CANARY.key in sw.installed and flows(3)[0].key not in sw.installed
    assert bs.in_sync


def test_apply_diff_while_a_bundle_is_in_flight_is_coalesced():
    sw = Switch()
    bs = sync.BridgeSync()
    connect(bs, sw)
    first = Switch.parse(bs.set_desired(flows(5)))  # bundle 1 in flight
    assert bs.apply_diff(FlowDiff(add=flows(2, cookie=VP, port_base=50))) == []  # waits for bundle 1
    commit = sw.apply(first)
    second = bs.on_bundle_reply(commit_reply(commit))
    run_bundle(bs, sw, second)
    assert {f.key for f in flows(5) + flows(2, port_base=50)} <= set(sw.installed)
    assert bs.in_sync and VP in {f.cookie for f in sw.installed.values()}
