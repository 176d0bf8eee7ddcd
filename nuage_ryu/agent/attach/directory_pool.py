"""The attach service's way to the directory: a bounded pool of kept-alive connections.

The agent socket serves every request in its own thread, and a ``DirectoryClient``
connection is not to be shared between threads, so the service used to open one
connection per directory call. Over HTTPS (the default deployment, and the lab)
that is a TLS handshake per call -- measured in a burst of 100 ADDs as most of the
``directory`` phase. ``PooledDirectory`` offers the client's methods; each call
checks out an idle kept-alive client (or makes one, up to ``size`` at a time; further
callers wait for one), so handshakes happen once per connection, not per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from nuage_ryu.directory.client import DirectoryClient


class PooledDirectory:
    """``DirectoryClient``'s methods, each call on one of at most ``size`` kept-alive clients."""

    def __init__(self, make: Callable[[], DirectoryClient], size: int = 16) -> None:
        self._make = make
        self._template = make()  # for plain attributes (url, timeout, ...); never connects
        self._idle: list[DirectoryClient] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self.size = size
        self.created = 0  # clients made so far, i.e. connections opened at most (tests, status)

    def _checkout(self) -> DirectoryClient:
        self._slots.acquire()
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.created += 1
        try:
            return self._make()
        except BaseException:
            self._slots.release()
            raise

    def _checkin(self, client: DirectoryClient) -> None:
        with self._lock:
            self._idle.append(client)
        self._slots.release()

    def __getattr__(self, name: str):
        if not callable(getattr(DirectoryClient, name, None)):
            return getattr(self._template, name)

        def call(*args, **kwargs):
            client = self._checkout()
            try:
                return getattr(client, name)(*args, **kwargs)
            finally:
                self._checkin(client)

        call.__name__ = name
        return call

    def close(self) -> None:
        """Close the idle connections (the pool stays usable)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()
