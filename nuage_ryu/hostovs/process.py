"""A private Open vSwitch instance: its own ovsdb-server and ovs-vswitchd.

Used by the lab (one instance per simulated host, each inside its own network
namespace), by the tests (an instance in a temporary directory) and by anyone
who needs OVS without touching the machine's system OVS. Everything an
instance owns lives under one ``rundir``: database, sockets, pidfiles, logs.

Processes are started with ``--detach``: the parent only exits once the daemon
is ready (ovsdb-server listening, ovs-vswitchd through its first configuration
pass), so a failed start shows up as a non-zero exit whose reason is in the log.
They are stopped strictly by the pids recorded in their pidfiles, after checking
that each pid still runs the expected binary, so a stale pidfile can never make
us signal an unrelated process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence

VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"

OVSDB_SERVER = "ovsdb-server"
OVS_VSWITCHD = "ovs-vswitchd"
DAEMONS = (OVSDB_SERVER, OVS_VSWITCHD)
REQUIRED_BINARIES = ("ovsdb-tool", OVSDB_SERVER, OVS_VSWITCHD, "ovs-vsctl", "ovs-ofctl", "ovs-appctl")

START_TIMEOUT = 20.0
MAX_RUNDIR_LENGTH = 80  # leaves room for "/<bridge>.mgmt" within the 107-byte unix socket path limit
STOP_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
LOG_TAIL_LINES = 15


class OvsError(Exception):
    """An Open vSwitch instance could not be started, reached or driven."""


def missing_binaries(names: Sequence[str] = REQUIRED_BINARIES) -> list[str]:
    """The names among ``names`` that are not found on PATH."""
    return [name for name in names if shutil.which(name) is None]


def check_binaries(names: Sequence[str] = REQUIRED_BINARIES) -> None:
    """Raise OvsError naming every missing Open vSwitch binary."""
    missing = missing_binaries(names)
    if missing:
        raise OvsError(
            f"Open vSwitch binaries not found on PATH: {', '.join(missing)} "
            "(install the openvswitch-switch package)")


def pid_alive(pid: int, binary: str | None = None) -> bool:
    """True if ``pid`` is a live (non-zombie) process, running ``binary`` when given."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The state letter follows the parenthesised command name, which may contain spaces.
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    if binary is None:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv0 = cmdline.read().split(b"\0", 1)[0].decode(errors="replace")
    except FileNotFoundError:
        return False
    return os.path.basename(argv0) == binary


def kill_pid(pid: int, binary: str | None = None, timeout: float = STOP_TIMEOUT) -> None:
    """Stop ``pid`` with SIGTERM, then SIGKILL once ``timeout`` has passed.

    Does nothing if the pid is gone or (with ``binary``) no longer runs that binary.
    """
    if not pid_alive(pid, binary):
        return
    for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.02)
    raise OvsError(f"process {pid} ({binary or 'unknown'}) survived SIGKILL")


def read_pidfile(path: str) -> int | None:
    """The pid stored in ``path``, or None when the file is absent or unreadable."""
    try:
        with open(path, encoding="ascii") as pidfile:
            return int(pidfile.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            return "".join(log.readlines()[-lines:])
    except FileNotFoundError:
        return ""


class OvsInstance:
    """One private ovsdb-server (+ optional ovs-vswitchd) rooted at ``rundir``.

    With ``netns`` set, the daemons and every CLI helper run inside that network
    namespace (which must exist), so the userspace datapath's ports live there.
    Creating the object starts nothing; ``stop`` works on a fresh object built
    with the same ``rundir`` (e.g. after a crash), since pids come from pidfiles.
    """

    def __init__(self, rundir: str, netns: str | None = None,
                 schema: str = VSWITCH_SCHEMA) -> None:
        self.rundir = os.path.abspath(rundir)
        self.netns = netns
        self.schema = schema
        self.db_path = os.path.join(self.rundir, "conf.db")
        self.db_sock = os.path.join(self.rundir, "db.sock")
        # Unix socket paths are limited to 107 bytes; bridge management sockets
        # (<rundir>/<bridge>.mgmt) are the longest we create.
        if len(self.rundir) > MAX_RUNDIR_LENGTH:
            raise OvsError(f"rundir path too long for unix sockets (max {MAX_RUNDIR_LENGTH} characters): "
                           f"{self.rundir}")

    # Paths -----------------------------------------------------------------

    @property
    def db_remote(self) -> str:
        """OVSDB remote of this instance's Open_vSwitch database."""
        return "unix:" + self.db_sock

    def pidfile(self, daemon: str) -> str:
        """Path of ``daemon``'s pidfile."""
        return os.path.join(self.rundir, daemon + ".pid")

    def logfile(self, daemon: str) -> str:
        """Path of ``daemon``'s log file."""
        return os.path.join(self.rundir, daemon + ".log")

    def unixctl_path(self, daemon: str) -> str | None:
        """Control socket of a running daemon, or None when it is not running.

        The daemons use OVS's default name ``<rundir>/<daemon>.<pid>.ctl`` (no
        --unixctl), so that a plain ``ovs-appctl -t ovs-vswitchd`` with
        OVS_RUNDIR set finds them, as in ``nuage-lab exec h1 -- ovs-appctl ...``.
        """
        pid = self.pids().get(daemon)
        return os.path.join(self.rundir, f"{daemon}.{pid}.ctl") if pid else None

    @property
    def unixctl(self) -> dict[str, str | None]:
        """Control socket path of each daemon, keyed by daemon name."""
        return {daemon: self.unixctl_path(daemon) for daemon in DAEMONS}

    @property
    def env(self) -> dict[str, str]:
        """Environment that points the OVS CLI tools at this instance."""
        env = dict(os.environ)
        env.update(OVS_RUNDIR=self.rundir, OVS_LOGDIR=self.rundir, OVS_DBDIR=self.rundir,
                   OVS_SYSCONFDIR=self.rundir)
        return env

    def pids(self) -> dict[str, int]:
        """Pids of the daemons that are running now, keyed by daemon name."""
        found = {}
        for daemon in DAEMONS:
            pid = read_pidfile(self.pidfile(daemon))
            if pid is not None and self._owns(pid, daemon):
                found[daemon] = pid
        return found

    def _owns(self, pid: int, daemon: str) -> bool:
        """True if ``pid`` is ``daemon`` started for this rundir (a reused pid is somebody else's)."""
        if not pid_alive(pid, daemon):
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                return self.pidfile(daemon).encode() in cmdline.read()
        except OSError:
            return False

    def is_running(self, vswitchd: bool = True) -> bool:
        """True when ovsdb-server (and, with ``vswitchd``, ovs-vswitchd) are alive."""
        running = self.pids()
        return OVSDB_SERVER in running and (not vswitchd or OVS_VSWITCHD in running)

    # Running commands --------------------------------------------------------

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside this instance's netns (if any)."""
        if self.netns:
            return ["ip", "netns", "exec", self.netns, *argv]
        return list(argv)

    def run(self, argv: Sequence[str], check: bool = True,
            timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run ``argv`` in this instance's netns and environment; OvsError on failure."""
        full = self.wrap(argv)
        try:
            result = subprocess.run(full, env=self.env, capture_output=True, text=True,
                                    timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise OvsError(f"command not found: {exc.filename}") from None
        except subprocess.TimeoutExpired:
            raise OvsError(f"command timed out after {timeout:g}s: {' '.join(full)}") from None
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise OvsError(f"{' '.join(argv)} failed (exit {result.returncode}): "
                           f"{detail[-1] if detail else 'no output'}")
        return result

    def vsctl(self, *args: str, timeout: float = 10) -> str:
        """Run ovs-vsctl against this instance's database; return its stdout."""
        return self.run(["ovs-vsctl", f"--db={self.db_remote}", f"--timeout={int(timeout)}", *args],
                        timeout=timeout + 5).stdout

    def ofctl(self, *args: str) -> str:
        """Run ovs-ofctl (bridge names resolve to <rundir>/<bridge>.mgmt); return stdout."""
        return self.run(["ovs-ofctl", *args]).stdout

    def appctl(self, *args: str, target: str = OVS_VSWITCHD) -> str:
        """Run ovs-appctl against one of this instance's daemons; return stdout."""
        # A bare daemon name resolves through OVS_RUNDIR's pidfile to the socket.
        return self.run(["ovs-appctl", "-t", target, *args]).stdout

    # Lifecycle ---------------------------------------------------------------

    def start(self, vswitchd: bool = True, timeout: float = START_TIMEOUT) -> OvsInstance:
        """Create the database if needed, start the daemons and wait until ready.

        Already running daemons are left alone, so calling it twice is harmless.
        """
        check_binaries(REQUIRED_BINARIES if vswitchd else ("ovsdb-tool", OVSDB_SERVER, "ovs-vsctl"))
        if not os.path.exists(self.schema):
            raise OvsError(f"OVSDB schema not found: {self.schema}")
        os.makedirs(self.rundir, exist_ok=True)
        try:
            if not os.path.exists(self.db_path):
                self.run(["ovsdb-tool", "create", self.db_path, self.schema])
            running = self.pids()
            if OVSDB_SERVER not in running:
                self._start_daemon(OVSDB_SERVER, [
                    self.db_path,
                    f"--remote=punix:{self.db_sock}",
                    "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                ], timeout)
                self._wait_for(lambda: os.path.exists(self.db_sock), OVSDB_SERVER, timeout)
                # Fills the root Open_vSwitch row so that ovs-vswitchd and clients find it.
                self.vsctl("--no-wait", "init")
            if vswitchd and OVS_VSWITCHD not in running:
                self._start_daemon(OVS_VSWITCHD, [self.db_remote, "--disable-system"], timeout)
                self._wait_for(lambda: self._appctl_ok(OVS_VSWITCHD), OVS_VSWITCHD, timeout)
        except OvsError:
            self.stop()
            raise
        return self

    def _start_daemon(self, daemon: str, args: list[str], timeout: float) -> None:
        argv = [daemon, *args,
                f"--pidfile={self.pidfile(daemon)}",
                f"--log-file={self.logfile(daemon)}",
                "--detach", "--no-chdir", "-vconsole:off", "-vsyslog:off", "-vfile:info"]
        result = self.run(argv, check=False, timeout=timeout)
        if result.returncode != 0:
            raise OvsError(self._failure(daemon, f"exit {result.returncode}: "
                                                 f"{(result.stderr or '').strip()}"))

    def _appctl_ok(self, daemon: str) -> bool:
        return self.run(["ovs-appctl", "-t", daemon, "version"], check=False, timeout=5).returncode == 0

    def _wait_for(self, ready, daemon: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if daemon not in self.pids():
                raise OvsError(self._failure(daemon, "exited during start"))
            time.sleep(0.02)
        raise OvsError(self._failure(daemon, f"not ready after {timeout:g}s"))

    def _failure(self, daemon: str, what: str) -> str:
        where = f" in netns {self.netns}" if self.netns else ""
        tail = log_tail(self.logfile(daemon))
        message = f"{daemon}{where} (rundir {self.rundir}) {what}"
        return message + ("\n--- log tail ---\n" + tail if tail else "")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the daemons by their recorded pids (vswitchd first); safe to call twice."""
        for daemon in reversed(DAEMONS):
            pid = read_pidfile(self.pidfile(daemon))
            if pid is not None and self._owns(pid, daemon):
                kill_pid(pid, daemon, timeout)
            # A daemon killed hard leaves its pidfile and control socket behind.
            stale = [self.pidfile(daemon)]
            if pid is not None:
                stale.append(os.path.join(self.rundir, f"{daemon}.{pid}.ctl"))
            for path in stale:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def __enter__(self) -> OvsInstance:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"OvsInstance(rundir={self.rundir!r}, netns={self.netns!r})"
