"""The store's connection: one python-ovs IDL, the lock that serialises all access to it, and its thread.

One IDL thread runs ``idl.run()``; writer threads run the IDL too while they wait for their
transaction. All IDL access happens under ``lock`` (re-entrant), so in-process writers are
serialised. A pipe wakes the IDL thread when a writer read an update off the connection
(otherwise the thread would notice it only at its next timer tick, up to a second later).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller

from nuage_ryu.directory.errors import Unavailable
from nuage_ryu.directory.store import echo, fast_json


def session_of(idl: ovs.db.idl.Idl) -> ovs.jsonrpc.Session:
    """The IDL's JSON-RPC session.

    python-ovs 4.0's ``Idl`` has no public "connected" (its ``state`` stays MONITORING while a
    dropped session waits to reconnect) and no count of reconnections, so both ask the session.
    """
    return idl._session


def session_connected(idl: ovs.db.idl.Idl) -> bool:
    """True while the IDL's JSON-RPC session is up."""
    return session_of(idl).is_connected()


class _Idl(ovs.db.idl.Idl):
    """IDL that forwards each row change to a callback (the store's mirror), and takes the rows
    this process inserted out of an update before python-ovs parses it (``store/echo.py``).

    With a ``ShareFetch`` (a scoped store, ``store/share_fetch.py``) it also lets the fetch see
    the monitor requests, the replica being replaced, updates to rows it does not hold and the
    replies to the fetch's own selects. python-ovs 4.0 has no public hook for the last three:
    they override its private ``_Idl__clear``, ``_Idl__process_update2`` and
    ``_Idl__txn_process_reply`` (``HOOKS``; checked at import, see ``fetch_supported``).
    """

    def __init__(self, remote: str, helper: ovs.db.idl.SchemaHelper, on_row: Callable, leader_only: bool,
                 fetch=None):
        self._fetch = fetch
        super().__init__(remote, helper, leader_only=leader_only)
        self._on_row = on_row
        self.own_inserts = echo.OwnInserts()

    def notify(self, event, row, updates=None):
        self._on_row(event, row)

    # python-ovs (4.0) has no hook between receiving an update and parsing its rows, so this
    # overrides its private (name-mangled) ``Idl.__parse_update``. A python-ovs without that
    # method never calls it: every row is then parsed the ordinary way, only slower.
    def _Idl__parse_update(self, update, version, tables=None):
        if tables is None and self.own_inserts and version in (ovs.db.idl.OVSDB_UPDATE2,
                                                                ovs.db.idl.OVSDB_UPDATE3):
            update = echo.take_own_rows(self, self.own_inserts, update, self._on_row)
        super()._Idl__parse_update(update, version, tables)

    def send_request(self, request):
        if self._fetch is not None and request.method in ("monitor_cond", "monitor_cond_since"):
            self._fetch.monitor_requested(request.params[2])
        return super().send_request(request)

    def _Idl__clear(self):
        super()._Idl__clear()
        if self._fetch is not None:
            self._fetch.replica_cleared(self)

    def _Idl__process_update2(self, table, uuid, row_update):
        if (self._fetch is not None and "modify" in row_update and uuid not in table.rows
                and self._fetch.skipped(self, table.name, uuid)):
            return False
        return super()._Idl__process_update2(table, uuid, row_update)

    def _Idl__txn_process_reply(self, msg):
        if self._fetch is not None and self._fetch.owns(msg):
            self._fetch.on_reply(self, msg)
            return True
        return super()._Idl__txn_process_reply(msg)

    def inject(self, updates: dict) -> None:
        """Apply fetched rows as if the server had sent them (``<table-updates2>``)."""
        self._Idl__parse_update(updates, ovs.db.idl.OVSDB_UPDATE2)

    def send_raw(self, msg) -> None:
        """Send a request of the fetch (its reply comes back through ``_Idl__txn_process_reply``)."""
        self._session.send(msg)


HOOKS = ("_Idl__clear", "_Idl__process_update2", "_Idl__txn_process_reply", "_Idl__parse_update")


def fetch_supported() -> bool:
    """Whether this python-ovs has the private methods the share fetch hooks into."""
    return all(callable(getattr(ovs.db.idl.Idl, name, None)) for name in HOOKS)


class Connection:
    """The IDL of one remote or several (a Raft cluster's members, or relays), its lock and thread.

    ``leader_only``: connect only to a Raft cluster's leader (the REST API: its reads must be
    the newest, for the checks its writes are planned on). False: any member or relay will do
    (the agents, like ovn-controller: they spread over the members, and a relay is never a
    leader); their writes are forwarded to the leader by the server they talk to.
    """

    def __init__(self, remote: str, leader_only: bool = True):
        self.remote = remote
        self.leader_only = leader_only
        self.lock = threading.RLock()
        self.idl: ovs.db.idl.Idl | None = None
        self._fetch = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)

    def open(self, helper: ovs.db.idl.SchemaHelper, on_row: Callable, conditions: dict[str, list],
             timeout: float, fetch=None) -> None:
        """Create the IDL and wait (at most ``timeout``) for the initial contents. Raises Unavailable.

        ``fetch``: a ``share_fetch.ShareFetch`` (a scoped store): the big tables' rows come by
        uuid after each monitor reply; the replica is synced only once they are in."""
        fast_json.install()  # python-ovs's pure-Python lexer is a third of a bulk commit's CPU
        self._fetch = fetch
        self.idl = _Idl(self.remote, helper, on_row, self.leader_only, fetch)
        for table, cond in conditions.items():
            self.idl.cond_change(table, cond)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                self.idl.run()
                if self.synced():  # do not block once there: the share fetch may end in this run
                    return
                if time.monotonic() > deadline:
                    self.idl.close()
                    raise Unavailable(f"cannot reach the directory database at {self.remote}")
                poller = ovs.poller.Poller()
                self.idl.wait(poller)
                poller.timer_wait(int(min(0.2, max(0.0, deadline - time.monotonic())) * 1000))
                poller.block()

    @contextlib.contextmanager
    def locked(self, deadline: float) -> Iterator[None]:
        """Hold the lock, waiting for it at most until ``deadline`` (monotonic); Unavailable past it.

        A write whose outcome is in doubt (a Raft leader change) keeps the lock while it waits for
        the cluster; the writes queued behind it must still be answered (a 503: retry) before their
        clients give up, not hang on the lock past every timeout.
        """
        if not self.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise Unavailable("the directory store is busy with another write (is the database's "
                              "leader changing?); try again")
        try:
            yield
        finally:
            self.lock.release()

    def conditions_acknowledged(self) -> bool:
        """Monitoring, and the server acknowledged every monitor condition change asked for.

        Decided from the IDL's per-table condition state, not from the seqno ``cond_change``
        returns: conditions set before connecting go out in the first monitor request and are
        never counted in ``cond_seqno`` (python-ovs 4.0), so that seqno is no ack at start.
        """
        idl = self.idl
        if idl is None or idl.state != idl.IDL_S_MONITORING or not session_connected(idl):
            return False
        return all(t.condition_state.new is None and t.condition_state.requested is None
                   for t in idl.tables.values())

    def synced(self) -> bool:
        """Connected, monitoring, and the initial contents received (fetched rows included)."""
        idl = self.idl
        return (idl.has_ever_connected() and idl.state == idl.IDL_S_MONITORING and session_connected(idl)
                and self.fetched())

    def fetched(self) -> bool:
        """No share fetch in progress (always True without one)."""
        return self._fetch is None or self._fetch.done

    @property
    def connected(self) -> bool:
        """True while connected to the database (the leader, for a cluster)."""
        idl = self.idl
        return bool(idl and session_connected(idl))

    def session_seqno(self) -> int:
        """A number that changes each time the connection goes down or up (caller holds the lock)."""
        return session_of(self.idl).get_seqno()

    def reset_backoff(self) -> None:
        """Let the next reconnection skip the backoff that drops built up (caller holds the lock)."""
        session_of(self.idl).reset_backoff()

    def run_once(self, timeout: float) -> None:
        """Run the IDL, then block (caller holds the lock, still held) at most ``timeout``."""
        self.idl.run()
        poller = ovs.poller.Poller()
        self.idl.wait(poller)
        poller.timer_wait(int(timeout * 1000))
        poller.block()
        self.idl.run()

    def block(self, timeout: float) -> None:
        """Wait (caller holds the lock, still held) until the IDL has something to do, at most ``timeout``."""
        poller = ovs.poller.Poller()
        self.idl.wait(poller)
        poller.timer_wait(int(timeout * 1000))
        poller.block()

    def wait_synced(self, deadline: float) -> None:
        """Run the IDL until synced (caller holds the lock). Raises Unavailable at ``deadline``."""
        while not self.synced():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable("the directory database is not reachable (no leader?)")
            self.run_once(min(0.1, remaining))
        self.idl.run()

    def catch_up(self) -> None:
        """Let the replica receive what another writer committed (at most 0.2 s; caller holds the lock)."""
        seqno = self.idl.change_seqno
        end = time.monotonic() + 0.2
        while self.idl.change_seqno == seqno and time.monotonic() < end:
            self.run_once(0.02)

    # -- the IDL thread --
    def start_thread(self, after_run: Callable[[], None], between: Callable[[], None]) -> None:
        """Run the IDL on its own thread: ``after_run`` under the lock after each ``idl.run()``,
        ``between`` outside it before blocking (for listeners, which may write)."""
        self._thread = threading.Thread(target=self._loop, args=(after_run, between),
                                        name="directory-idl", daemon=True)
        self._thread.start()

    def _loop(self, after_run: Callable[[], None], between: Callable[[], None]) -> None:
        while not self._stopping.is_set():
            with self.lock:
                if self.idl is None:
                    return
                self.idl.run()
                after_run()
                poller = ovs.poller.Poller()
                self.idl.wait(poller)
                poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
                poller.timer_wait(1000)
            between()
            poller.block()
            try:
                while os.read(self._wake_r, 512):
                    pass
            except OSError:
                pass

    def wake(self) -> None:
        """Wake the IDL thread."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def wake_from_writer(self) -> None:
        """Wake the IDL thread unless this is it: a writer thread read an update off the connection."""
        if threading.current_thread() is not self._thread:
            self.wake()

    def close(self) -> None:
        """Stop the IDL thread and close the connection."""
        self._stopping.set()
        self.wake()
        if self._thread:
            self._thread.join(5)
        with self.lock:
            if self.idl:
                self.idl.close()
                self.idl = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
