"""Lock primitives of the attach service.

Attaches and detaches of different interfaces run in parallel (the shared side
of ``SharedExclusiveLock``), operations on one interface one after the other
(``KeyedLocks``); GC, which looks at everything, runs alone (the exclusive side).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Hashable, Iterator


class SharedExclusiveLock:
    """A readers-writer lock: many holders of ``shared()`` or one of ``exclusive()``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held together with other shared holders; waits while an exclusive holder runs."""
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held alone: waits for the shared holders to leave, and keeps new ones out meanwhile."""
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # new shared holders wait from now on
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class KeyedLocks:
    """One lock per key, made on first use and dropped when its last user leaves."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        """Serialise the blocks of one key; blocks of other keys proceed in parallel."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def busy(self) -> set:
        """The keys held or waited for right now."""
        with self._guard:
            return set(self._locks)
