"""Raft cluster tooling for the directory database (ovsdb-server clustered mode).

Creates an N-member cluster of ``Nuage_Directory`` (``ovsdb-tool create-cluster`` for
the first member, ``join-cluster`` for the others), starts/stops members by pid and
reads their Raft status through ``ovs-appctl cluster/status``. On one machine (tests,
demos) all members listen on 127.0.0.1 with distinct ports; for a 3-machine
deployment see docs/directory.md.

Layout under DIR: ``cluster.json`` (members and ports), ``mK/directory.db``,
``mK/ovsdb-server.{pid,ctl,log}``. Each member serves clients on ``tcp:HOST:client_port``
(and ``unix:mK/db.sock``) and talks Raft on ``tcp:HOST:raft_port``. Clients use ``connection_string()``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from nuage_ryu.db import cli
from nuage_ryu.db.pidfile import ServerFiles, stop_pid

DB_NAME = "Nuage_Directory"


class ClusterError(Exception):
    """A cluster operation failed; the message says why."""


@dataclass
class Member(ServerFiles):
    """One cluster member."""

    index: int
    dir: str
    host: str
    client_port: int
    raft_port: int

    @property
    def db(self) -> str:
        return os.path.join(self.dir, "directory.db")

    @property
    def ctl(self) -> str:
        return os.path.join(self.dir, "ovsdb-server.ctl")

    @property
    def raft_remote(self) -> str:
        return f"tcp:{self.host}:{self.raft_port}"

    @property
    def client_remote(self) -> str:
        return f"tcp:{self.host}:{self.client_port}"



def _run(cmd: list[str], timeout: float = 30) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _schema() -> str:
    from nuage_ryu.directory.store import schema_path

    return schema_path()


def connection_string(members: list[Member], unix: bool = False) -> str:
    """The ``[directory] connection`` value for clients of the cluster (``unix``: its unix sockets)."""
    return ",".join("unix:" + m.socket_path if unix else m.client_remote for m in members)


def create_cluster(directory: str, members: int = 3, host: str = "127.0.0.1", base_port: int = 6641,
                   ports: list[tuple[int, int]] | None = None, schema: str | None = None) -> list[Member]:
    """Create the database files of an N-member cluster under ``directory`` (does not start them).

    Ports: member K gets client port base_port+2K and Raft port base_port+2K+1,
    unless ``ports`` gives (client, raft) pairs explicitly.
    """
    if members < 1:
        raise ClusterError("a cluster needs at least one member")
    if os.path.exists(os.path.join(directory, "cluster.json")):
        raise ClusterError(f"{directory} already holds a cluster")
    ports = ports or [(base_port + 2 * i, base_port + 2 * i + 1) for i in range(members)]
    if len(ports) != members:
        raise ClusterError("one (client, raft) port pair per member is needed")
    made = []
    for i, (client_port, raft_port) in enumerate(ports):
        mdir = os.path.join(directory, f"m{i + 1}")
        os.makedirs(mdir, exist_ok=True)
        made.append(Member(i + 1, mdir, host, client_port, raft_port))
    first = made[0]
    _run(["ovsdb-tool", "create-cluster", first.db, schema or _schema(), first.raft_remote])
    for m in made[1:]:
        _run(["ovsdb-tool", "join-cluster", m.db, DB_NAME, m.raft_remote, first.raft_remote])
    with open(os.path.join(directory, "cluster.json"), "w") as f:
        json.dump([asdict(m) for m in made], f, indent=2)
    return made


def load_cluster(directory: str) -> list[Member]:
    """Members of the cluster created under ``directory``."""
    try:
        with open(os.path.join(directory, "cluster.json")) as f:
            return [Member(**m) for m in json.load(f)]
    except OSError as exc:
        raise ClusterError(f"no cluster in {directory}: {exc.strerror}") from None


def start_member(m: Member) -> int:
    """Start one member as a daemon (own pidfile); returns its pid."""
    if m.pid:
        return m.pid
    _run(["ovsdb-server", m.db, "--detach", "--no-chdir", f"--pidfile={m.pidfile}", f"--unixctl={m.ctl}",
          f"--log-file={m.log}", f"--remote=ptcp:{m.client_port}:{m.host}", f"--remote=punix:{m.socket_path}",
          "-vconsole:off"])
    pid = m.pid
    if pid is None:
        raise ClusterError(f"member {m.index} did not start (see {m.log})")
    return pid


def stop_member(m: Member, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Stop one member by the pid in its pidfile."""
    stop_pid(m.pid, sig, timeout)


def member_status(m: Member) -> dict:
    """Parsed ``cluster/status``: role, term, leader, status ... (empty when not running)."""
    if not m.pid:
        return {}
    try:
        text = _run(["ovs-appctl", "-t", m.ctl, "cluster/status", DB_NAME], timeout=5)
    except (ClusterError, subprocess.TimeoutExpired):
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            out[key.strip().lower()] = value.strip()
    return out


def find_leader(members: list[Member]) -> Member | None:
    """The member that currently reports itself leader, if any."""
    for m in members:
        if member_status(m).get("role") == "leader":
            return m
    return None


def wait_for_leader(members: list[Member], timeout: float = 30) -> Member:
    """Poll until one member is leader and all running members are cluster members."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = find_leader(members)
        if leader is not None:
            return leader
        time.sleep(0.1)
    raise ClusterError(f"no leader elected within {timeout:.0f} s")


# ---------------------------------------------------------------------------
# nuage-ctl db-cluster ...


def add_cli(subparsers) -> None:
    """Register ``db-cluster`` on nuage-ctl's object subparsers."""
    import argparse

    sub = cli.add_command(subparsers, "db-cluster", help="create/start/stop a Raft cluster of the directory DB",
                          description="Raft cluster of the directory database on this machine.",
                          examples=("create --members 3 --dir /tmp/dircluster", "status --dir /tmp/dircluster"))
    create = sub.add_parser("create", help="create (and start) an N-member cluster on this machine",
                            description="Create (and start) an N-member cluster; prints the connection string.",
                            formatter_class=cli.RAW,
                            epilog=cli.example_lines("db-cluster")("create --members 3 --dir /tmp/dircluster"))
    create.add_argument("--members", type=int, default=3, metavar="N", help="3 or 5 (e.g. --members 5; default 3)")
    dir_help = "where the members' databases, sockets and logs live (e.g. --dir /tmp/dircluster)"
    create.add_argument("--dir", required=True, metavar="DIR", help=dir_help)
    create.add_argument("--host", default="127.0.0.1", metavar="IP",
                        help="address the members listen on (e.g. --host 127.0.0.1; default 127.0.0.1)")
    create.add_argument("--base-port", type=int, default=6641, metavar="PORT",
                        help="first client port; Raft ports follow (e.g. --base-port 6641; default 6641)")
    create.add_argument("--start", action=argparse.BooleanOptionalAction, default=True,
                        help="start the members after creating them (default --start)")
    cli.add_dir_actions(sub, "db-cluster", {"start": "start the members of an existing cluster",
                                            "stop": "stop the members (by pid)",
                                            "status": "role, term and pid of each member"},
                        "/tmp/dircluster", dir_help)


def run_cli(args) -> int:
    """Run a ``db-cluster`` command; exit code 0 or 1."""
    try:
        if args.action == "create":
            members = create_cluster(args.dir, args.members, args.host, args.base_port)
            if args.start:
                for m in members:
                    start_member(m)
                wait_for_leader(members)
            print(connection_string(members))
            return 0
        members = load_cluster(args.dir)
        if args.action == "start":
            for m in members:
                start_member(m)
            wait_for_leader(members)
            print(connection_string(members))
        elif args.action == "stop":
            for m in members:
                stop_member(m)
        else:
            for m in members:
                st = member_status(m)
                print(f"m{m.index}  pid={m.pid or '-'}  {m.client_remote}  raft={m.raft_remote}  "
                      f"role={st.get('role', 'down')}  term={st.get('term', '-')}")
        return 0
    except ClusterError as exc:
        print(f"nuage-ctl: db-cluster: {exc}", file=sys.stderr)
        return 1
