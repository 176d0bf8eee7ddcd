"""ovsdb-server relays of the directory database (``relay:Nuage_Directory:<source>``).

A relay is an ovsdb-server that holds an in-memory copy of the directory database,
follows its *source* (the embedded server, or any members of a Raft cluster) and serves
clients itself: the primary then serves a handful of relays instead of every VRS agent.
Reads (monitors) are answered by the relay; transactions are forwarded to the source and
their result comes back through the relay's own copy, so a client sees one database.

Two ways to run one, both by pid:

* ``OvsdbRelay``: a child process of the caller, restarted by a supervisor thread if it
  dies (the embedded server's model, ``server.py``); the lab's control plane uses it;
* ``start_relay``/``stop_relay``/``relay_status`` behind ``nuage-ctl db-relay``: a
  daemon (``--detach --monitor``: ovsdb-server's own monitor restarts it after a crash)
  whose settings and files live under one directory, like ``db-cluster``'s members.

Layout under DIR: ``relay.json`` (source, remotes), ``db.sock`` (the unix socket every
relay serves), ``ovsdb-server.{pid,ctl,log}``, and with host listeners ``relay-config.db``.

**Host listeners** (``host_remotes``, ``db-relay start --host-remote pssl:PORT``): pssl:
listeners whose clients get the RBAC role ``nuage-host`` (rbac.py), the same least privilege
as on the primary's ``[directory] host_listen``: the relay checks each transaction against its
copy's RBAC tables, with the client certificate's CN as identity, before forwarding it. They
are rows of the relay's own small database ``Nuage_Relay`` (``relay-config.db``, rewritten at
every start), served beside the relayed one. Plain ``remotes`` (and the unix socket) stay
unrestricted: for trusted tools and a central controller only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from nuage_ryu.db import cli, rbac
from nuage_ryu.db.pidfile import ServerFiles, stop_pid
from nuage_ryu.db.server import OvsdbServer, OvsdbServerError, prepare_db
from nuage_ryu.pki import Credentials
from nuage_ryu.tls import ovsdb_server_args

DB_NAME = "Nuage_Directory"
CONFIG_DB = "relay-config.db"  # the relay's own listeners with the host role (rbac.RELAY_CONFIG_DATABASE)


class RelayError(Exception):
    """A relay operation failed; the message says why."""


def relay_command(source: str, socket_path: str, run_dir: str, remotes: Sequence[str] = (),
                  host_remotes: Sequence[str] = ()) -> list[str]:
    """The ovsdb-server command line of a relay of ``source`` serving ``socket_path`` (+ ``remotes``).

    ``source``: one OVSDB remote or a comma separated list (a Raft cluster's members); the
    relay connects to any of them (not only the leader) and moves on when it goes away.
    ``host_remotes``: listeners with the host role, read from the relay's own database
    (``write_relay_config`` writes it first).
    """
    if not source:
        raise RelayError("a relay needs a source (the directory database's remote(s))")
    cmd = ["ovsdb-server", f"--remote=punix:{socket_path}", f"--unixctl={os.path.join(run_dir, 'ovsdb-server.ctl')}",
           f"--log-file={os.path.join(run_dir, 'ovsdb-server.log')}", "-vconsole:off"]
    cmd += [f"--remote={r}" for r in remotes if r]
    if host_remotes:
        cmd += [rbac.RELAY_REMOTE_ARG, os.path.join(run_dir, CONFIG_DB)]
    return cmd + [f"relay:{DB_NAME}:{source}"]


def write_relay_config(run_dir: str, host_remotes: Sequence[str]) -> None:
    """Create or rewrite the relay's own database under ``run_dir``: its host listeners (offline:
    the relay is not running yet, so its listeners are right from its first moment)."""
    if any(not r.startswith("pssl:") for r in host_remotes):
        raise RelayError("host listeners must be pssl: (the client certificate is the host's identity)")
    path = os.path.join(run_dir, CONFIG_DB)
    schema = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nuage_relay.ovsschema")
    try:
        prepare_db(path, schema)
    except OvsdbServerError as exc:
        raise RelayError(str(exc)) from None
    txn = json.dumps([rbac.RELAY_CONFIG_DATABASE, *rbac.relay_config_operations(list(host_remotes))])
    out = subprocess.run(["ovsdb-tool", "transact", path, txn], capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or '"error"' in out.stdout:
        raise RelayError(f"cannot write the relay's listeners: {(out.stdout + out.stderr).strip()[:300]}")


class OvsdbRelay(OvsdbServer):
    """One supervised relay, a child process of ours (restarted if it dies; ``stop()`` ends it by pid).

    ``netns``: run it inside that network namespace (the lab); its unix socket is reachable
    from every namespace. ``ssl``: the identity of its ``pssl:`` listeners and of its ``ssl:``
    connection to the source. ``host_remotes``: pssl: listeners for hosts (RBAC role nuage-host).
    """

    def __init__(self, source: str, socket_path: str, run_dir: str,
                 extra_remotes: tuple[str, ...] | list[str] = (), netns: str | None = None,
                 ssl: Credentials | None = None, host_remotes: tuple[str, ...] | list[str] = ()):
        super().__init__(db_path="", schema_path="", socket_path=socket_path, extra_remotes=extra_remotes,
                         run_dir=run_dir, ssl=ssl, host_remotes=host_remotes)
        self.source = source
        self.netns = netns

    writes_rbac = False  # its copy (RBAC tables included) comes from the source

    def _prepare(self) -> None:
        os.makedirs(self.run_dir, exist_ok=True)  # the relayed copy is in memory: no database file
        if self.host_remotes:
            write_relay_config(self.run_dir, self.host_remotes)

    def _command(self) -> list[str]:
        cmd = relay_command(self.source, self.socket_path, self.run_dir, self.extra_remotes, self.host_remotes)
        if self.ssl is not None:
            cmd[1:1] = ovsdb_server_args(self.ssl)
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd


def database_status(remote: str, timeout: float = 5.0) -> dict:
    """The ``_Server`` row of the directory database at ``remote``: model, connected, leader...

    For a relay, ``connected`` says whether it currently follows its source. Empty when the
    server does not answer.
    """
    query = json.dumps(["_Server", {"op": "select", "table": "Database", "where": [["name", "==", DB_NAME]],
                                    "columns": ["model", "connected", "leader"]}])
    try:
        proc = subprocess.run(["ovsdb-client", f"--timeout={max(1, int(timeout))}", "transact", remote, query],
                              capture_output=True, text=True, timeout=timeout + 1)
    except subprocess.TimeoutExpired:
        return {}
    if proc.returncode != 0:
        return {}
    try:
        rows = json.loads(proc.stdout)[0].get("rows", [])
    except (ValueError, IndexError, AttributeError):
        return {}
    return rows[0] if rows else {}


# ---------------------------------------------------------------------------
# A relay as a daemon under one directory (nuage-ctl db-relay)


@dataclass
class RelaySpec(ServerFiles):
    """What a relay directory holds: where the relay runs and what it follows."""

    dir: str
    source: str
    remotes: list[str] = field(default_factory=list)
    host_remotes: list[str] = field(default_factory=list)  # pssl: listeners with the host role
    # TLS identity of its pssl: listeners and of an ssl: source ("" = none): key, certificate, CA
    key_file: str = ""
    cert_file: str = ""
    ca_file: str = ""

    @property
    def remote(self) -> str:
        """The unix remote every relay serves (agents on this machine, or in its namespaces)."""
        return "unix:" + self.socket_path



def _spec_path(directory: str) -> str:
    return os.path.join(directory, "relay.json")


def load_relay(directory: str) -> RelaySpec:
    """The relay configured under ``directory``."""
    try:
        with open(_spec_path(directory)) as f:
            return RelaySpec(**json.load(f))
    except OSError as exc:
        raise RelayError(f"no relay in {directory}: {exc.strerror}") from None


def configure_relay(directory: str, source: str | None, remotes: Sequence[str] | None,
                    tls: tuple[str, str, str] | None = None,
                    host_remotes: Sequence[str] | None = None) -> RelaySpec:
    """Create or update ``directory``'s relay.json; an omitted setting keeps its stored value.

    ``tls``: (key, certificate, CA) files for ``pssl:`` listeners and an ``ssl:`` source;
    ``host_remotes``: pssl: listeners with the host role."""
    directory = os.path.abspath(directory)
    try:
        spec = load_relay(directory)
    except RelayError:
        if not source:
            raise RelayError(f"no relay in {directory} yet: --source is required") from None
        spec = RelaySpec(directory, source)
    if source:
        spec.source = source
    if remotes is not None:
        spec.remotes = [r for r in remotes if r]
    if host_remotes is not None:
        spec.host_remotes = [r for r in host_remotes if r]
        if any(not r.startswith("pssl:") for r in spec.host_remotes):
            raise RelayError("--host-remote must be pssl: (the client certificate is the host's identity)")
    if tls is not None:
        spec.key_file, spec.cert_file, spec.ca_file = (os.path.abspath(f) for f in tls)
    needs_tls = any(r.startswith("pssl:") for r in [*spec.remotes, *spec.host_remotes]) or "ssl:" in spec.source
    if needs_tls and not spec.key_file:
        raise RelayError("a pssl: listener or an ssl: source needs --private-key, --certificate and --ca-cert")
    os.makedirs(directory, exist_ok=True)
    with open(_spec_path(directory), "w") as f:
        json.dump(asdict(spec), f, indent=2)
    return spec


def start_relay(spec: RelaySpec, timeout: float = 10.0) -> int:
    """Start the relay as a daemon (own pidfile, restarted by its monitor after a crash); its pid."""
    if spec.pid:
        return spec.pid
    if spec.host_remotes:
        write_relay_config(spec.dir, spec.host_remotes)
    cmd = relay_command(spec.source, spec.socket_path, spec.dir, spec.remotes, spec.host_remotes)
    cmd[1:1] = ["--detach", "--monitor", "--no-chdir", f"--pidfile={spec.pidfile}"]
    if spec.key_file:
        cmd[1:1] = ovsdb_server_args(Credentials(spec.key_file, spec.cert_file, spec.ca_file))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    pid = spec.pid
    if proc.returncode != 0 or pid is None:
        raise RelayError(f"relay did not start: {proc.stderr.strip() or 'see ' + spec.log}")
    return pid


def stop_relay(spec: RelaySpec, timeout: float = 10.0) -> None:
    """Stop the relay by the pid in its pidfile (SIGTERM; its monitor exits with it)."""
    stop_pid(spec.pid, signal.SIGTERM, timeout)


def wait_relay_connected(remote: str, timeout: float = 30.0) -> dict:
    """Poll until the relay at ``remote`` follows its source; returns its status. Raises RelayError."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = database_status(remote)
        if status.get("model") == "relay" and status.get("connected") is True:
            return status
        time.sleep(0.1)
    raise RelayError(f"relay at {remote} did not reach its source within {timeout:.0f} s ({status or 'no answer'})")


# ---------------------------------------------------------------------------
# nuage-ctl db-relay ...


def add_cli(subparsers) -> None:
    """Register ``db-relay`` on nuage-ctl's object subparsers."""
    examples = cli.example_lines("db-relay")
    sub = cli.add_command(
        subparsers, "db-relay", help="start/stop an ovsdb-server relay of the directory DB",
        description="An ovsdb-server relay of the directory database on this machine: it follows the "
                    "directory (embedded or Raft) and serves VRS agents, so the primary serves only relays.",
        examples=("start --dir /var/lib/nuage-relay --source tcp:10.0.0.1:6641,tcp:10.0.0.2:6641 "
                  "--remote ptcp:6642:0.0.0.0", "status --dir /var/lib/nuage-relay"))
    dir_help = "where the relay's settings, socket, pidfile and log live (e.g. --dir /var/lib/nuage-relay)"
    start = sub.add_parser("start", help="start a relay (creating its directory the first time)",
                           description="Start a relay; prints the remotes agents can use "
                                       "(the unix socket, then any --remote listeners).",
                           formatter_class=cli.RAW,
                           epilog=examples("start --dir /tmp/relay1 --source unix:/var/lib/nuage-ryu/directory/db.sock",
                                           "start --dir /tmp/relay1   # again, with the stored settings"))
    start.add_argument("--dir", required=True, metavar="DIR", help=dir_help)
    start.add_argument("--source", metavar="REMOTES",
                       help="the directory DB: one remote or a Raft cluster's members, comma separated "
                            "(e.g. --source tcp:10.0.0.1:6641,tcp:10.0.0.2:6641); stored for the next start")
    start.add_argument("--remote", action="append", metavar="LISTEN",
                       help="an extra listener in ovsdb-server syntax, repeatable, unrestricted: for trusted "
                            "tools only (e.g. --remote ptcp:6642:0.0.0.0 or pssl:6642)")
    start.add_argument("--host-remote", action="append", metavar="LISTEN",
                       help="a pssl: listener for VRS agents, repeatable: each host may write only its own "
                            "rows (RBAC role nuage-host, certificate CN = host name) (e.g. --host-remote "
                            "pssl:6642); stored for the next start")
    for flag, what in (("--private-key", "key.pem"), ("--certificate", "cert.pem"), ("--ca-cert", "ca.pem")):
        start.add_argument(flag, metavar="FILE",
                           help=f"TLS for pssl: listeners and an ssl: source, with the other two "
                                f"(e.g. {flag} /etc/nuage-ryu/pki/relay-1/{what}); stored for the next start")
    cli.add_dir_actions(sub, "db-relay", {"stop": "stop the relay (by pid)",
                                          "status": "pid, source, listeners and whether it follows its source"},
                        "/tmp/relay1", dir_help)


def run_cli(args) -> int:
    """Run a ``db-relay`` command; exit code 0 or 1 (status: 1 when not running or not connected)."""
    try:
        if args.action == "start":
            files = (args.private_key, args.certificate, args.ca_cert)
            if any(files) and not all(files):
                raise RelayError("--private-key, --certificate and --ca-cert go together")
            spec = configure_relay(args.dir, args.source, args.remote, files if all(files) else None,
                                   args.host_remote)
            start_relay(spec)
            wait_relay_connected(spec.remote)
            print(",".join([spec.remote, *spec.remotes, *spec.host_remotes]))
            return 0
        spec = load_relay(os.path.abspath(args.dir))
        if args.action == "stop":
            stop_relay(spec)
            return 0
        pid = spec.pid
        status = database_status(spec.remote) if pid else {}
        state = "down" if pid is None else "connected" if status.get("connected") is True else "disconnected"
        print(f"relay  pid={pid or '-'}  {spec.remote}  listeners={','.join(spec.remotes) or '-'}  "
              f"host_listeners={','.join(spec.host_remotes) or '-'}  source={spec.source}  state={state}")
        return 0 if state == "connected" else 1
    except RelayError as exc:
        print(f"nuage-ctl: db-relay: {exc}", file=sys.stderr)
        return 1
