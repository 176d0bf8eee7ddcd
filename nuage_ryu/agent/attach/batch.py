"""Group commit: concurrent callers of one step share one transaction, each keeps its own result.

A burst of attaches on a host arrives as many concurrent requests, each of which
would pay a full round trip (an OVSDB transaction, a directory transaction) of
its own. ``Coalescer.submit(item)`` blocks like a plain call, but the items of
every caller that arrives while a batch is being collected (``window``) or is
running are handed to ``run`` together. ``run`` returns one outcome per item (a
value, or the exception *that* item failed with), so one bad item never fails
the others. No thread of its own: the first waiting caller leads a batch and the
others wait for their outcome (the group commit of databases).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_PENDING = object()


class _Slot:
    __slots__ = ("item", "outcome", "taken")

    def __init__(self, item) -> None:
        self.item = item
        self.outcome = _PENDING
        self.taken = False  # in a batch that runs now


class Coalescer(Generic[T, R]):
    """Runs the items of concurrent ``submit`` calls in batches through ``run``.

    run(items) -> outcomes, same length and order; an outcome that is a BaseException is raised
    in that item's caller. If ``run`` itself raises, every item of that batch gets its exception.
    window: seconds a leader waits for more items after the first (0: only those already queued).
    max_items: batch size limit (the rest go into the next batch).
    crowded() -> bool: whether other callers may come (default: always); the window is waited
    only then, so that a lone request never pays for it.
    concurrency: batches that may run at once (pipelining: the next batch is sent while the
    previous one waits for its answer; 1: one after the other).
    """

    def __init__(self, run: Callable[[list[T]], Sequence[R | BaseException]], *, window: float = 0.002,
                 max_items: int = 256, crowded: Callable[[], bool] | None = None, concurrency: int = 1) -> None:
        self._run = run
        self.window = window
        self._crowded = crowded or (lambda: True)
        self.max_items = max_items
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self.concurrency = max(1, concurrency)
        self._leaders = 0  # batches running now
        self.batches = 0  # batches run so far, and the items in them (the agent's /v1/status shows both)
        self.items = 0
        self.largest = 0

    def submit(self, item: T) -> R:
        """Run ``item`` in the next batch; its outcome (or its exception)."""
        slot = _Slot(item)
        with self._cond:
            self._pending.append(slot)
            self._cond.notify_all()  # a leader collecting a batch may take this one too
        while True:
            with self._cond:
                while slot.outcome is _PENDING and (self._leaders >= self.concurrency or slot.taken):
                    self._cond.wait()
                if slot.outcome is not _PENDING:
                    break
                self._leaders += 1  # this caller runs the next batch (it may not contain its slot)
                batch = self._collect()
            outcomes = self._outcomes(batch) if batch else []
            with self._cond:
                for done, outcome in zip(batch, outcomes, strict=True):
                    done.outcome = outcome
                self._leaders -= 1
                if batch:
                    self.batches += 1
                    self.items += len(batch)
                    self.largest = max(self.largest, len(batch))
                self._cond.notify_all()
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome

    def stats(self) -> dict[str, int]:
        """{"batches", "items", "largest"} so far: how much the group commit saved."""
        with self._cond:
            return {"batches": self.batches, "items": self.items, "largest": self.largest}

    def _collect(self) -> list[_Slot]:
        """(Lock held) wait up to ``window`` for more items; take the next batch off the queue."""
        deadline = time.monotonic() + (self.window if self._crowded() else 0.0)
        while len(self._pending) < self.max_items:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch = self._pending[:self.max_items]
        del self._pending[:self.max_items]
        for slot in batch:
            slot.taken = True
        return batch

    def _outcomes(self, batch: list[_Slot]) -> list:
        try:
            outcomes = list(self._run([s.item for s in batch]))
        except BaseException as exc:  # the whole batch failed: each caller gets the error
            return [exc] * len(batch)
        if len(outcomes) != len(batch):
            err = RuntimeError(f"batch step returned {len(outcomes)} outcomes for {len(batch)} items")
            return [err] * len(batch)
        return outcomes


def each_alone(items: Sequence[T], one: Callable[[T], R]) -> list[R | BaseException]:
    """Outcomes of ``one(item)`` for every item, an exception as that item's outcome.

    What a batch step falls back to when its one transaction failed: it finds out which
    items were bad, and still does the good ones.
    """
    outcomes: list[R | BaseException] = []
    for item in items:
        try:
            outcomes.append(one(item))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes
