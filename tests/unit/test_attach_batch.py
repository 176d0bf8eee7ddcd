"""Group commit of the attach service: concurrent callers share batches, each keeps its own outcome."""

from __future__ import annotations

import threading

import pytest

from nuage_ryu.agent.attach.batch import Coalescer, each_alone


def _run_concurrently(coalescer: Coalescer, items: list) -> dict:
    outcomes: dict = {}
    start = threading.Barrier(len(items))

    def call(item):
        start.wait()
        try:
            outcomes[item] = ("ok", coalescer.submit(item))
        except Exception as exc:
            outcomes[item] = ("error", str(exc))

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_concurrent_callers_share_batches_and_get_their_own_results():
    seen: list[list[int]] = []
    coalescer = Coalescer(lambda items: seen.append(list(items)) or [i * 10 for i in items], window=0.05)
    outcomes = _run_concurrently(coalescer, list(range(40)))
    assert outcomes == {i: ("ok", i * 10) for i in range(40)}
    assert sorted(i for batch in seen for i in batch) == list(range(40))  # each item ran exactly once
    assert len(seen) < 40 and coalescer.batches == len(seen)
    assert coalescer.stats() == {"batches": len(seen), "items": 40, "largest": max(len(b) for b in seen)}


def test_one_bad_item_fails_alone():
    def run(items):
        return [ValueError(f"bad {i}") if i == 7 else i for i in items]

    outcomes = _run_concurrently(Coalescer(run, window=0.02), list(range(16)))
    assert outcomes.pop(7) == ("error", "bad 7")
    assert outcomes == {i: ("ok", i) for i in range(16) if i != 7}


def test_a_failing_batch_gives_every_caller_the_error_and_the_next_batch_runs():
    calls = []

    def run(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("transaction refused")
        return items

    coalescer = Coalescer(run, window=0)
    with pytest.raises(RuntimeError, match="transaction refused"):
        coalescer.submit(1)
    assert coalescer.submit(2) == 2


def test_batches_are_limited_in_size():
    seen = []
    coalescer = Coalescer(lambda items: seen.append(len(items)) or items, window=0.05, max_items=5)
    outcomes = _run_concurrently(coalescer, list(range(23)))
    assert outcomes == {i: ("ok", i) for i in range(23)}
    assert max(seen) <= 5 and sum(seen) == 23


def test_a_wrong_number_of_outcomes_is_an_error_for_all():
    coalescer = Coalescer(lambda items: [], window=0)
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        coalescer.submit("x")


def test_each_alone_isolates_failures():
    def one(i):
        if i == 2:
            raise KeyError(i)
        return -i

    outcomes = each_alone([1, 2, 3], one)
    assert outcomes[0] == -1 and isinstance(outcomes[1], KeyError) and outcomes[2] == -3


def test_with_concurrency_two_batches_are_in_flight_at_once_and_each_item_runs_once():
    """Pipelining: the next batch is sent while the previous one waits for its answer."""
    from tests.ovs_fixtures import wait_until

    seen = []
    both = threading.Barrier(2, timeout=10)

    def run(items):
        seen.append(list(items))
        both.wait()  # a batch can only finish once another one runs beside it
        return [i * 10 for i in items]

    coalescer = Coalescer(run, window=0.0, concurrency=2)
    outcomes = {}
    first = threading.Thread(target=lambda: outcomes.update({0: coalescer.submit(0)}))
    first.start()
    wait_until(lambda: len(seen) == 1, timeout=10)  # batch [0] waits for its answer
    second = threading.Thread(target=lambda: outcomes.update({1: coalescer.submit(1)}))
    second.start()
    first.join(15)
    second.join(15)
    assert outcomes == {0: 0, 1: 10} and seen == [[0], [1]]
    assert coalescer.stats() == {"batches": 2, "items": 2, "largest": 1}
