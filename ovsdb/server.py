"""Supervise a private ovsdb-server for the directory database (the embedded store).

The database file is created from the schema the first time (``ovsdb-tool create``)
and converted in place when the installed schema is newer (``ovsdb-tool convert``),
so data survives restarts and upgrades. The server runs as our child process (not
daemonised) so that we know its pid: ``stop()`` ends exactly that process, and a
supervisor thread restarts it if it dies.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time

from nuage_ryu.db import rbac
from nuage_ryu.pki import Credentials
from nuage_ryu.tls import ovsdb_server_args

LOG = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class OvsdbServerError(Exception):
    """ovsdb-server or ovsdb-tool failed; the message says why."""


def _tool(*args: str) -> str:
    proc = subprocess.run(["ovsdb-tool", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise OvsdbServerError(f"ovsdb-tool {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def prepare_db(db_path: str, schema_path: str) -> str:
    """Create the standalone database file, or convert it if the schema changed.

    Returns 'created', 'converted' or 'unchanged'.
    """
    os.makedirs(os.path.dirname(db_path) or ".", exist_ok=True)
    if not os.path.exists(db_path):
        _tool("create", db_path, schema_path)
        return "created"
    if _tool("needs-conversion", db_path, schema_path) == "yes":
        _tool("convert", db_path, schema_path)
        return "converted"
    return "unchanged"


def wait_for_socket(path: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll until a unix socket accepts connections (or raise OvsdbServerError)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise OvsdbServerError(f"ovsdb-server exited with status {proc.returncode}")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise OvsdbServerError(f"ovsdb-server did not open {path} within {timeout:.0f} s") from None
            time.sleep(0.02)
        finally:
            s.close()


class OvsdbServer:
    """One supervised ovsdb-server serving one standalone database file.

    ``socket_path``: unix socket (``punix:``) clients use; ``extra_remotes``: more
    listeners in ovsdb-server syntax (``ptcp:6641:0.0.0.0``, ``pssl:6641``...).
    """

    writes_rbac = True  # the database owner writes the RBAC configuration (a relay does not)

    def __init__(self, db_path: str, schema_path: str, socket_path: str,
                 extra_remotes: tuple[str, ...] | list[str] = (), run_dir: str | None = None,
                 ssl: Credentials | None = None, host_remotes: tuple[str, ...] | list[str] = ()):
        self.db_path = db_path
        self.schema_path = schema_path
        self.socket_path = socket_path
        self.extra_remotes = [r for r in extra_remotes if r]
        self.ssl = ssl  # identity of pssl: listeners
        self.host_remotes = [r for r in host_remotes if r]  # listeners for hosts: RBAC role nuage-host
        if any(not r.startswith("pssl:") for r in self.host_remotes):
            raise OvsdbServerError("host listeners must be pssl: (the client certificate is the host's identity)")
        if any(r.startswith("pssl:") for r in [*self.extra_remotes, *host_remotes]) and ssl is None:
            raise OvsdbServerError("a pssl: listener needs a key, certificate and CA ([tls] options)")
        self.run_dir = run_dir or os.path.dirname(db_path)
        self.ctl_path = os.path.join(self.run_dir, "ovsdb-server.ctl")
        self.log_path = os.path.join(self.run_dir, "ovsdb-server.log")
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """Pid of the running ovsdb-server (None when not running)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def remote(self) -> str:
        """The OVSDB remote clients connect to."""
        return "unix:" + self.socket_path

    def start(self, timeout: float = 10.0) -> None:
        """Prepare the DB, start the server, wait for its socket, and supervise it."""
        self._prepare()
        self._stopping.clear()
        self._spawn(timeout)
        self._supervisor = threading.Thread(target=self._supervise, name="ovsdb-server-supervisor",
                                            daemon=True)
        self._supervisor.start()

    def _prepare(self) -> None:
        outcome = prepare_db(self.db_path, self.schema_path)
        LOG.info("directory database %s: %s", self.db_path, outcome)

    def _command(self) -> list[str]:
        """The ovsdb-server command line (a relay overrides it)."""
        cmd = ["ovsdb-server", self.db_path, f"--remote=punix:{self.socket_path}",
               f"--unixctl={self.ctl_path}", f"--log-file={self.log_path}", "-vconsole:off"]
        cmd += [f"--remote={r}" for r in self.extra_remotes]
        # Host listeners are Connection rows with the host role (rbac.py): a host's certificate is
        # its identity there, and its writes are checked.
        cmd.append(rbac.REMOTE_ARG)
        if self.ssl is not None:
            cmd += ovsdb_server_args(self.ssl)
        return cmd

    def _spawn(self, timeout: float) -> None:
        for path in (self.socket_path, self.ctl_path):
            try:
                os.unlink(path)  # stale socket of a server that did not exit cleanly
            except FileNotFoundError:
                pass
        os.makedirs(os.path.dirname(self.socket_path), exist_ok=True)
        cmd = self._command()
        with self._lock:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, close_fds=True)
            proc = self._proc
        try:
            wait_for_socket(self.socket_path, timeout, proc)
        except OvsdbServerError as exc:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.poll() is not None else ""
            self._kill(proc)
            raise OvsdbServerError(f"{exc}{': ' + err if err else ''} (log: {self.log_path})") from None
        if self.writes_rbac:
            try:
                rbac.apply(self.remote, self.host_remotes)
            except rbac.RbacError as exc:
                self._kill(proc)
                raise OvsdbServerError(str(exc)) from None
        LOG.info("ovsdb-server pid %d serving %s", proc.pid, self.remote)

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
                LOG.error("ovsdb-server pid %d died (status %s); restarting in %.1f s",
                          proc.pid, proc.returncode, delay)
                if self._stopping.wait(delay):
                    return
                try:
                    self._spawn(10.0)
                    self.restarts += 1
                    failures = 0
                except OvsdbServerError as exc:
                    failures += 1
                    LOG.error("restarting ovsdb-server failed: %s", exc)
            self._stopping.wait(0.2)

    @staticmethod
    def _kill(proc: subprocess.Popen, timeout: float = 5.0) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stderr:
            proc.stderr.close()

    def stop(self) -> None:
        """Stop supervising and terminate our ovsdb-server (by pid)."""
        self._stopping.set()
        if self._supervisor:
            self._supervisor.join(5)
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            self._kill(proc)
