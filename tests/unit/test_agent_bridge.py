"""ManagedBridge between its AgentCore and a real BridgeSync, against the switch stand-in of test_sync.

What the bridge I/O must get right without OVS: hand the sync engine what the core's push plan says,
route the replies, and map the engine's confirmations back to the core's flow generations.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry

from nuage_ryu.agent.bridge import ManagedBridge
from nuage_ryu.agent.metrics import AgentMetrics
from nuage_ryu.vrs import ofwire
from tests.ovs_fixtures import wait_until
from tests.unit.test_agent_core import V3, directory, with_vports
from tests.unit.test_sync import Msg, Switch, commit_reply


class Datapath:
    """What the bridge uses of an os-ken Datapath: its id and ``send`` (the sync engine's wire bytes)."""

    def __init__(self) -> None:
        self.id = 1
        self.sent: list[bytes] = []

    def send(self, buf: bytes) -> None:
        self.sent.append(bytes(buf))

    def take(self):
        sent, self.sent = self.sent, []
        return Switch.parse(sent)


def managed_bridge() -> tuple[ManagedBridge, list[str]]:
    kicks = []
    bridge = ManagedBridge("h1", "192.0.2.11", "unix:/nonexistent", bridge="br-int", datapath_type="netdev",
                           metrics=AgentMetrics(CollectorRegistry()), lock=threading.RLock(),
                           on_change=lambda: kicks.append("kick"), logger=logging.getLogger(__name__))
    return bridge, kicks


def read_back(bridge: ManagedBridge, dp: Datapath, switch: Switch) -> None:
    """Answer the sync engine's flow read with what ``switch`` holds."""
    (read,) = [m for m in dp.take() if m[0] == "read"]
    for raw in switch.stats_replies(read[1]):
        bridge.on_flow_stats_reply(Msg(xid=read[1], buf=raw, datapath=dp))


def commit(bridge: ManagedBridge, dp: Datapath, switch: Switch, parsed=None) -> None:
    """Apply the bundle the bridge sent (or ``parsed``) to ``switch``; hand the bridge its commit reply."""
    done = switch.apply(dp.take() if parsed is None else parsed)
    assert done is not None, "no bundle was sent"
    reply = commit_reply(done)
    reply.datapath = dp
    bridge.on_bundle_reply(reply)


def test_a_vport_goes_up_when_the_bundle_with_its_flows_is_committed():
    bridge, kicks = managed_bridge()
    bridge.recompute(directory(), {"v1": 5}, 1, seen_at=0.0)  # directory known before the bridge connects
    dp, switch = Datapath(), Switch()
    bridge.state_changed(dp, up=True)
    read_back(bridge, dp, switch)  # an empty bridge: every flow goes out in one bundle
    assert bridge.core.status_updates() == []
    commit(bridge, dp, switch)
    assert bridge.core.status_updates() == [("v1", "up")]
    assert kicks  # the worker is woken to write the status
    assert set(switch.installed) == {ofwire.canonical_flow(f).key for f in bridge.core.desired()}


def test_a_change_goes_out_as_a_diff_and_its_vport_waits_for_that_bundle():
    bridge, _ = managed_bridge()
    bridge.recompute(directory(), {"v1": 5}, 1, seen_at=0.0)
    dp, switch = Datapath(), Switch()
    bridge.state_changed(dp, up=True)
    read_back(bridge, dp, switch)
    commit(bridge, dp, switch)
    bridge.recompute(directory(vport_status="up"), {"v1": 5}, 1, seen_at=1.0)
    assert dp.sent == []  # a status change alone changes no flow
    bridge.recompute(with_vports(directory(vport_status="up"), V3), {"v1": 5, "v3": 6}, 1, seen_at=2.0)
    parsed = dp.take()
    adds = [p for p in parsed if p[0] == "add"]
    assert adds and len(adds) < len(switch.installed)  # only v3's flows, not the whole table
    assert bridge.core.status_updates() == []  # v3's bundle is not committed yet
    commit(bridge, dp, switch, parsed)
    assert bridge.core.status_updates() == [("v3", "up")]


def test_replies_of_another_datapath_are_ignored():
    bridge, _ = managed_bridge()
    bridge.recompute(directory(), {"v1": 5}, 1, seen_at=0.0)
    dp, switch = Datapath(), Switch()
    bridge.state_changed(dp, up=True)
    stale = Datapath()  # the previous connection of the same bridge
    (read,) = [m for m in dp.take() if m[0] == "read"]
    for raw in switch.stats_replies(read[1]):
        bridge.on_flow_stats_reply(Msg(xid=read[1], buf=raw, datapath=stale))
    assert dp.sent == [] and stale.sent == []
    bridge.state_changed(stale, up=False)  # the old connection's end does not disconnect the new one
    assert bridge.datapath is dp and bridge.sync is not None



def test_after_a_restart_the_vports_are_up_when_the_bridge_already_holds_their_flows():
    # The restarted agent's bridge connects before its first directory snapshot; the read-back
    # shows every desired flow in place, so the first whole-set push confirms at once (no bundle).
    before, _ = managed_bridge()
    before.recompute(directory(), {"v1": 5}, 1, seen_at=0.0)
    switch = Switch(before.core.desired())  # what the previous agent left on the bridge
    bridge, _ = managed_bridge()
    dp = Datapath()
    bridge.state_changed(dp, up=True)
    read_back(bridge, dp, switch)
    assert dp.sent == []
    bridge.recompute(directory(vport_status="up"), {"v1": 5}, 1, seen_at=1.0)
    assert dp.sent == []  # nothing to change on the bridge: no packet is dropped
    assert bridge.core.status_updates() == []  # v1 stays up: its flows are confirmed in place


class RecordingStore:
    """What write_statuses uses of DirectoryStore: ``set_vport_statuses`` and ``set_vport_status``."""

    def __init__(self, state, refuse_batches: bool = False) -> None:
        self.state, self.refuse_batches = state, refuse_batches
        self.transactions: list[list] = []

    def set_vport_statuses(self, updates):
        if self.refuse_batches:
            raise RuntimeError("refused")
        self.transactions.append(list(updates))

    def set_vport_status(self, vport_id: str, status: str) -> None:
        self.transactions.append([(vport_id, status)])


def _bridge_with_pending_statuses(n_up: int):
    from tests.unit.test_agent_core import connected_core

    bridge, _kicks = managed_bridge()
    vports = [V3.__class__(f"vb{i}", "s1", "d1", f"cb{i}", f"10.0.1.{50 + i}", f"02:00:0a:00:01:{50 + i:02x}",
                           "10.0.1.1", host="h1") for i in range(n_up)]
    state = with_vports(directory(), *vports)
    bridge.core = connected_core(state, {v.id: 10 + i for i, v in enumerate(vports)})
    bridge.core.confirmed(1, now=0.0)  # the bridge committed generation 1: these vports go up
    return bridge, state, [v.id for v in vports]


def test_a_round_of_vport_statuses_is_one_directory_transaction():
    bridge, state, ids = _bridge_with_pending_statuses(5)
    pending = bridge.core.status_updates()
    assert {vid for vid, status in pending if status == "up"} >= set(ids)
    store = RecordingStore(with_vports(state))
    bridge.write_statuses(store)
    wait_until(lambda: store.transactions and bridge._status_writer.idle(), timeout=10)
    assert len(store.transactions) == 1 and len(store.transactions[0]) == len(pending)
    assert all(bridge.flows_confirmed_at(vid) is not None for vid in ids)


def test_a_refused_batch_of_statuses_is_written_one_by_one():
    bridge, state, _ids = _bridge_with_pending_statuses(3)
    pending = bridge.core.status_updates()
    refusing = RecordingStore(state, refuse_batches=True)
    bridge.write_statuses(refusing)
    wait_until(lambda: len(refusing.transactions) == len(pending), timeout=10)
    assert refusing.transactions == [[update] for update in pending]
