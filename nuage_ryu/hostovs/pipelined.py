"""ovsdbapp's connection thread, without holding the IDL lock while a transaction waits for its reply.

ovsdbapp runs every transaction with ``commit_block()`` under the connection lock:
from the moment a transaction is sent until ovsdb-server answers it, no other
thread can read the IDL cache. On a host in churn that lock was the agent's
bottleneck: the worker's port listing, the attach service's interface lookups and
every ofport wait queued behind each port transaction's round trip (py-spy: a
third of the worker's busy time and most of a DEL's lookup time were spent
waiting for it).

``PipelinedConnection`` is the same thread with the same transaction semantics
(the commands run against the cache under the lock, TRY_AGAIN re-runs them once
the cache changed, check_error, post_commit results, the transaction timeout) but
the lock is held only while the commands run and while each reply is processed
(``idl.run``), never across the wait. One transaction is in flight at a time, as
before: the next one is built on a cache that already holds the previous one's
outcome.
"""

from __future__ import annotations

import time
import traceback

from ovs import poller
from ovs.db import idl
from ovsdbapp.backend.ovs_idl import connection, idlutils


class _InFlight:
    """One ovsdbapp transaction and the python-ovs transaction that carries it now."""

    __slots__ = ("txn", "ovs_txn", "start_seqno", "retry_seqno")

    def __init__(self, txn) -> None:
        self.txn = txn
        self.ovs_txn: idl.Transaction | None = None
        self.start_seqno = 0  # the cache's change_seqno before the commit: TRY_AGAIN's baseline
        self.retry_seqno: int | None = None  # TRY_AGAIN: re-run once the cache changed from this seqno


class PipelinedConnection(connection.Connection):
    """An ovsdbapp ``Connection`` whose thread releases the lock while a transaction is on the wire."""

    def run(self) -> None:  # the connection thread (ovsdbapp's Connection.start)
        inflight: _InFlight | None = None
        while self.is_running:
            try:
                self.idl.wait(self.poller)
                if inflight is None:
                    self.poller.fd_wait(self.txns.alert_fileno, poller.POLLIN)
                else:
                    self._wait_for(inflight)
                self.poller.block()
                with self.lock:
                    self.idl.run()
                    self._check_lock_change()
                    if inflight is not None:
                        inflight = self._advance(inflight)
            except Exception:  # as ovsdbapp: a python-ovs bug must not end the thread
                connection.LOG.exception("OVSDB connection loop")
                if inflight is not None:
                    inflight = self._finish(inflight, error=RuntimeError("OVSDB connection loop failed"))
                continue
            if inflight is None:
                txn = self.txns.get_nowait()
                if txn is not None:
                    with self.lock:
                        inflight = self._start(_InFlight(txn))
        self.idl.close()

    # -- one transaction ------------------------------------------------------
    def _wait_for(self, inflight: _InFlight) -> None:
        remaining = inflight.txn.time_remaining()
        self.poller.timer_wait(max(0, int(remaining * 1000)))
        if inflight.ovs_txn is not None and inflight.retry_seqno is None:
            # Immediate wake once its status is final (not while a TRY_AGAIN waits for the cache
            # to change: that status is final too, and the loop would spin).
            inflight.ovs_txn.wait(self.poller)

    def _start(self, inflight: _InFlight) -> _InFlight | None:
        """(Lock held) run the commands against the cache and send the transaction."""
        txn = inflight.txn
        if not hasattr(txn, "start_time"):
            txn.start_time = time.time()  # ovsdbapp's timeout_exceeded()/time_remaining() read it
        if not txn.commands:
            return self._finish(inflight, result=[])
        inflight.retry_seqno = None
        inflight.start_seqno = self.idl.change_seqno
        ovs_txn = idl.Transaction(self.idl)
        try:
            txn.pre_commit(ovs_txn)
            for command in txn.commands:
                command.run_idl(ovs_txn)
        except Exception as exc:
            ovs_txn.abort()
            if txn.check_error:
                return self._finish(inflight, error=exc)
            if txn.log_errors:
                connection.LOG.error("txn %s aborted: %s", txn, exc)
            return self._finish(inflight, result=None)
        inflight.ovs_txn = ovs_txn
        return self._settle(inflight, ovs_txn.commit())

    def _advance(self, inflight: _InFlight) -> _InFlight | None:
        """(Lock held, after ``idl.run``) what became of the transaction in flight."""
        if inflight.retry_seqno is not None:
            if self.idl.change_seqno != inflight.retry_seqno:
                return self._start(inflight)
            return self._timed_out(inflight)
        return self._settle(inflight, inflight.ovs_txn.commit())

    def _settle(self, inflight: _InFlight, status: str) -> _InFlight | None:
        txn, ovs_txn = inflight.txn, inflight.ovs_txn
        if status == idl.Transaction.INCOMPLETE:
            return self._timed_out(inflight)
        if status == idl.Transaction.TRY_AGAIN:  # the cache was behind: re-run on the next change
            if txn.timeout_exceeded():
                return self._finish(inflight, error=RuntimeError("OVS transaction timed out"))
            inflight.retry_seqno = inflight.start_seqno
            if self.idl.change_seqno != inflight.start_seqno:
                return self._start(inflight)
            return inflight
        if status in (idl.Transaction.ERROR, idl.Transaction.NOT_LOCKED):
            msg = "OVSDB Error: " + (ovs_txn.get_error() if status == idl.Transaction.ERROR else
                                     "The transaction failed because the IDL has been configured to require "
                                     "a database lock but didn't get it yet or has already lost it")
            if txn.log_errors:
                connection.LOG.error("txn %s", msg)
            if txn.check_error:
                return self._finish(inflight, error=RuntimeError(msg))
            return self._finish(inflight, result=None)
        if status == idl.Transaction.ABORTED:
            return self._finish(inflight, result=None)
        if status == idl.Transaction.SUCCESS:
            try:
                txn.post_commit(ovs_txn)
            except Exception as exc:
                return self._finish(inflight, error=exc)
        return self._finish(inflight, result=[cmd.result for cmd in txn.commands])

    def _timed_out(self, inflight: _InFlight) -> _InFlight | None:
        if not inflight.txn.timeout_exceeded():
            return inflight
        if inflight.ovs_txn is not None:
            inflight.ovs_txn.abort()
        return self._finish(inflight, error=RuntimeError("OVS transaction timed out"))

    def _finish(self, inflight: _InFlight, *, result=None, error: BaseException | None = None) -> None:
        """Hand the caller its outcome (as ovsdbapp's thread does); no transaction is in flight after."""
        if error is not None:
            tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            result = idlutils.ExceptionResult(ex=error, tb=tb)
        inflight.txn.results.put(result)
        self.txns.task_done()
        return None
