"""The vport status writer: the worker offers, a thread of its own writes, nothing is written twice."""

from __future__ import annotations

import logging
import threading

from nuage_ryu.agent.status_writer import StatusWriter
from tests.ovs_fixtures import wait_until

LOG = logging.getLogger(__name__)


class Store:
    """set_vport_statuses / set_vport_status that record their transactions; writes may be held."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.transactions: list[list] = []
        self.refuse = set(refuse)
        self.gate = threading.Event()
        self.gate.set()

    def many(self, updates):
        self.gate.wait(10)
        if any(vid in self.refuse for vid, _ in updates):
            raise RuntimeError("refused")
        self.transactions.append(list(updates))

    def one(self, vport_id, status):
        self.gate.wait(10)
        if vport_id in self.refuse:
            raise RuntimeError("gone")
        self.transactions.append([(vport_id, status)])


def writer_for(store: Store) -> StatusWriter:
    return StatusWriter(store.many, store.one, LOG)


def test_offering_does_not_wait_for_the_write_and_what_came_meanwhile_is_the_next_transaction():
    store = Store()
    writer = writer_for(store)
    try:
        store.gate.clear()  # the directory is slow
        assert writer.offer([("v1", "up")]) == [("v1", "up")]
        wait_until(lambda: not writer.idle() and not writer._pending, timeout=10)  # v1 is being written
        assert writer.offer([("v1", "up"), ("v2", "up")]) == [("v2", "up")]
        assert writer.offer([("v1", "up"), ("v2", "up"), ("v3", "up")]) == [("v3", "up")]
        store.gate.set()
        wait_until(writer.idle, timeout=10)
        assert store.transactions == [[("v1", "up")], [("v2", "up"), ("v3", "up")]]
    finally:
        writer.close()


def test_a_status_already_sent_is_not_sent_again_until_the_snapshot_shows_it():
    store = Store()
    writer = writer_for(store)
    try:
        writer.offer([("v1", "up")])
        wait_until(writer.idle, timeout=10)
        assert writer.offer([("v1", "up")]) == []  # the snapshot does not show it yet: not again
        assert writer.offer([], lambda vid: "up") == []  # now it does
        assert writer.offer([("v1", "down")]) == [("v1", "down")]
        wait_until(writer.idle, timeout=10)
        assert store.transactions == [[("v1", "up")], [("v1", "down")]]
    finally:
        writer.close()


def test_a_refused_batch_is_written_one_by_one_and_the_failed_one_is_offered_again():
    store = Store(refuse={"v2"})
    writer = writer_for(store)
    try:
        store.gate.clear()
        writer.offer([("v0", "up")])
        wait_until(lambda: not writer._pending, timeout=10)
        writer.offer([("v0", "up"), ("v1", "up"), ("v2", "up")])
        store.gate.set()
        wait_until(writer.idle, timeout=10)
        assert store.transactions == [[("v0", "up")], [("v1", "up")]]
        store.refuse.clear()
        assert writer.offer([("v2", "up")]) == [("v2", "up")]  # not written: offered again
        wait_until(writer.idle, timeout=10)
        assert store.transactions[-1] == [("v2", "up")]
    finally:
        writer.close()


def test_a_status_wanted_again_while_the_opposite_write_is_on_its_way_is_sent_after_it():
    """After an agent restart: 'down' is sent for a vport the snapshot shows up (its flows are not
    confirmed yet); then they are, and 'up' is wanted again while the snapshot still shows 'up':
    the 'down' on its way would win if 'up' were not sent after it."""
    store = Store()
    writer = writer_for(store)
    try:
        store.gate.clear()
        writer.offer([("v1", "down")], lambda vid: "up")
        wait_until(lambda: not writer._pending, timeout=10)  # 'down' on its way
        assert writer.offer([], lambda vid: "up") == [("v1", "up")]
        store.gate.set()
        wait_until(writer.idle, timeout=10)
        assert store.transactions == [[("v1", "down")], [("v1", "up")]]
        assert writer.offer([], lambda vid: "up") == []  # seen back: forgotten
        assert writer._sent == {}
    finally:
        writer.close()
