"""The directory on a 3-member ovsdb-server Raft cluster on 127.0.0.1: kill the leader while writing.

Writes go through the REST API (nuage-ryu-manager with [directory] connection = all
three members). Every write the API acknowledged (201) must still be there after
the leader was killed (SIGKILL, by pid) and a new one elected.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

from nuage_ryu.db import cluster
from nuage_ryu.directory.client import CannotConnect
from nuage_ryu.directory.errors import DirectoryError
from nuage_ryu.directory.store import DirectoryStore
from nuage_ryu.directory.testing import ManagerProcess, free_port, wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@pytest.fixture
def members(tmp_path):
    ports = [(free_port(), free_port()) for _ in range(3)]
    made = cluster.create_cluster(str(tmp_path / "cluster"), 3, ports=ports)
    try:
        for m in made:
            cluster.start_member(m)
        cluster.wait_for_leader(made)
        yield made
    finally:
        for m in made:
            cluster.stop_member(m, signal.SIGKILL)


def write(client, path, body):
    """POST until acknowledged; 503 (no leader yet) and lost connections are retried."""
    def attempt():
        try:
            return client.post(path, body)
        except DirectoryError as exc:
            if exc.status == 503:
                return None
            raise
        except CannotConnect:
            return None

    return wait_until(attempt, 60, 0.1, f"POST {path} to be acknowledged")


def test_leader_failover_loses_nothing_acknowledged(tmp_path, members):
    conn = cluster.connection_string(members)
    mgr = ManagerProcess(str(tmp_path / "state"), connection=conn)
    mgr.start()
    try:
        api = mgr.client()
        ent = write(api, "/enterprises", {"name": "raft"})
        dom = write(api, f"/enterprises/{ent['id']}/domains", {"name": "d"})
        zone = write(api, f"/domains/{dom['id']}/zones", {"name": "z"})
        sub = write(api, f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.8.0.0/16"})
        acked = [write(api, f"/subnets/{sub['id']}/vports", {"name": f"before-{i}"}) for i in range(20)]

        # Writers keep going on their own connections while the leader is killed.
        stop = threading.Event()
        during: list[dict] = []
        failures: list[Exception] = []

        def writer(n):
            client = mgr.client()
            i = 0
            try:
                while not stop.is_set():
                    during.append(write(client, f"/subnets/{sub['id']}/vports", {"name": f"during-{n}-{i}"}))
                    i += 1
            except Exception as exc:  # asserted below
                failures.append(exc)
            finally:
                client.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(during) >= 20, 30, what="writes before the kill")
        leader = cluster.find_leader(members)
        assert leader is not None
        os.kill(leader.pid, signal.SIGKILL)
        survivors = [m for m in members if m is not leader]
        new_leader = cluster.wait_for_leader(survivors)
        assert new_leader is not leader
        count_at_election = len(during)
        wait_until(lambda: len(during) >= count_at_election + 20, 60, what="writes after the election")
        stop.set()
        for t in threads:
            t.join(60)
        assert failures == []
        acked += during

        acked += [write(api, f"/subnets/{sub['id']}/vports", {"name": f"after-{i}"}) for i in range(20)]
        listed = api.get(f"/subnets/{sub['id']}/vports")
        assert {v["id"] for v in listed} == {v["id"] for v in acked}
        assert len({v["ip"] for v in listed}) == len(acked) == len(listed)
        api.close()
    finally:
        mgr.stop()

    # An independent reader on the surviving members sees the same 40 vports.
    reader = DirectoryStore(cluster.connection_string(survivors))
    reader.start(timeout=30)
    try:
        assert {v.id for v in reader.snapshot().vports.values()} == {v["id"] for v in acked}
        assert len(acked) >= 80
    finally:
        reader.stop()


def _consecutive_free_ports(n: int) -> int:
    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports found")


def test_nuage_ctl_db_cluster_commands(tmp_path):
    ctl = [os.path.join(os.path.dirname(sys.executable), "nuage-ctl"), "db-cluster"]
    directory = str(tmp_path / "c")
    base = _consecutive_free_ports(6)
    proc = subprocess.run(ctl + ["create", "--members", "3", "--dir", directory, "--base-port", str(base)],
                          capture_output=True, text=True, timeout=120)
    try:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == ",".join(f"tcp:127.0.0.1:{base + 2 * i}" for i in range(3))
        status = subprocess.run(ctl + ["status", "--dir", directory], capture_output=True, text=True,
                                timeout=60)
        roles = [line.split("role=")[1].split()[0] for line in status.stdout.splitlines()]
        assert sorted(roles) == ["follower", "follower", "leader"], status.stdout
        again = subprocess.run(ctl + ["create", "--dir", directory], capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 1 and "already" in again.stderr
    finally:
        subprocess.run(ctl + ["stop", "--dir", directory], capture_output=True, timeout=60)
    for m in cluster.load_cluster(directory):
        assert m.pid is None


def test_two_api_processes_on_one_cluster_keep_the_invariants(tmp_path, members):
    conn = cluster.connection_string(members)
    managers = [ManagerProcess(str(tmp_path / f"api{i}"), connection=conn) for i in range(2)]
    try:
        for mgr in managers:
            mgr.start()
        admin = managers[0].client()
        ent = write(admin, "/enterprises", {"name": "two-apis"})
        dom = write(admin, f"/enterprises/{ent['id']}/domains", {"name": "d"})
        zone = write(admin, f"/domains/{dom['id']}/zones", {"name": "z"})
        sub = write(admin, f"/zones/{zone['id']}/subnets", {"name": "s", "cidr": "10.9.0.0/24"})
        created, errors = [], []

        def create(mgr, i):
            client = mgr.client()
            try:
                created.append(write(client, f"/subnets/{sub['id']}/vports", {"name": f"v{i}"}))
            except Exception as exc:  # asserted below
                errors.append(exc)
            finally:
                client.close()

        threads = [threading.Thread(target=create, args=(managers[i % 2], i)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert len({v["ip"] for v in created}) == 50 and len({v["mac"] for v in created}) == 50
        # both API processes see all of them, and agree
        other = managers[1].client()
        listed = [sorted(v["ip"] for v in c.get(f"/subnets/{sub['id']}/vports")) for c in (admin, other)]
        assert listed[0] == listed[1] and len(listed[0]) == 50
        # a duplicate name through the other process is refused
        with pytest.raises(DirectoryError) as info:
            other.post(f"/subnets/{sub['id']}/vports", {"name": "v0"})
        assert info.value.status == 409
        admin.close()
        other.close()
    finally:
        for mgr in managers:
            mgr.stop()
