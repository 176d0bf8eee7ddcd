"""Vport status writes on their own thread, so that the agent's worker never waits for the directory.

The worker decides which vports of its host change status (``AgentCore.status_updates``)
every round. Writing them is a directory transaction (a round trip to the directory's
ovsdb-server); done in the worker, every attach behind it waited for that write before
its flows were even compiled. Here the worker only ``offer``s the round's updates and
goes on: the writer sends everything offered meanwhile in one transaction (a refused
batch is written one by one), the next batch while the worker compiles the next flows.

An update equal to one already sent is not sent again: until the directory's answer
reaches the agent's snapshot, every round offers it anew.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

Update = tuple[str, str]  # (vport id, status)


class StatusWriter:
    """One thread writing offered vport statuses through ``write_many`` / ``write_one``."""

    def __init__(self, write_many: Callable[[list[Update]], None], write_one: Callable[[str, str], None],
                 logger: logging.Logger, name: str = "vport-status") -> None:
        self._write_many = write_many
        self._write_one = write_one
        self._log = logger
        self._cond = threading.Condition()
        self._pending: dict[str, str] = {}  # vport id -> status to write next
        self._sent: dict[str, str] = {}     # vport id -> status sent (or being sent), not yet seen back
        self._stopped = False
        self._writing = False
        self.batches = 0  # transactions sent (for tests)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, updates: Iterable[Update],
              status_now: Callable[[str], str | None] = lambda _vport_id: None) -> list[Update]:
        """The updates a worker round decided; returns those that are new (not sent already).

        ``updates`` must be the round's complete list (the vports whose wanted status differs
        from the snapshot's); ``status_now(vport id)`` is the snapshot's status (None: the vport
        is gone). A sent status that is not in the list any more has reached the snapshot, or
        the snapshot still shows the older status, which is wanted again: then the write sent
        (or on its way) would overwrite it, and the wanted status is sent once more after it.
        """
        current = dict(updates)
        with self._cond:
            for vid, sent in list(self._sent.items()):
                if vid in current:
                    continue
                now = status_now(vid)
                if now is None or now == sent:
                    del self._sent[vid]  # seen back (or gone): nothing more to do
                else:
                    current[vid] = now  # wanted is the status the snapshot still shows
            new = [(vid, st) for vid, st in current.items()
                   if self._sent.get(vid) != st and self._pending.get(vid) != st]
            for vid, st in new:
                self._pending[vid] = st
            if new:
                self._cond.notify()
        return new

    def idle(self) -> bool:
        """True when nothing is waiting to be written or being written (for tests)."""
        with self._cond:
            return not self._pending and not self._writing

    def close(self) -> None:
        """Stop the thread (what is pending is dropped: the next agent writes it again)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopped)
                if self._stopped:
                    return
                batch = sorted(self._pending.items())
                self._pending.clear()
                self._sent.update(batch)
                self._writing = True
            failed = self._write(batch)
            with self._cond:
                self._writing = False
                for vid, st in failed:  # the next round offers them again
                    if self._sent.get(vid) == st:
                        del self._sent[vid]

    def _write(self, batch: list[Update]) -> list[Update]:
        """Write ``batch``; returns the updates that were not written."""
        self.batches += 1
        if len(batch) > 1:
            try:
                self._write_many(batch)
                return []
            except Exception as exc:
                self._log.info("%d vport statuses not written in one transaction (%s); one by one",
                               len(batch), exc)
        failed = []
        for vport_id, status in batch:
            try:
                self._write_one(vport_id, status)
            except Exception as exc:  # e.g. deleted meanwhile; the next snapshot settles it
                self._log.info("vport %s status %s not written: %s", vport_id, status, exc)
                failed.append((vport_id, status))
        return failed
