"""``nuage-ctl db-relay`` and the store through a relay, on a private primary (no lab).

A standalone primary (the embedded server's class) in a tmp dir; a relay started, checked and
stopped with the real ``nuage-ctl``; an agent-style store (``leader_only=False``) reads and
writes through it, and what it wrote is on the primary; an API-style store
(``leader_only=True``) refuses the relay, which never is a leader.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from nuage_ryu.db.relay import database_status, load_relay
from nuage_ryu.db.server import OvsdbServer
from nuage_ryu.directory.errors import Unavailable
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.testing import wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")

CTL = [os.path.join(os.path.dirname(sys.executable), "nuage-ctl"), "db-relay"]


@pytest.fixture
def primary(tmp_path):
    server = OvsdbServer(str(tmp_path / "p" / "directory.db"), schema_path(), str(tmp_path / "p" / "db.sock"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CTL, *args], capture_output=True, text=True, timeout=60)


def test_nuage_ctl_db_relay_start_status_stop_and_the_store_through_it(tmp_path, primary):
    relay_dir = str(tmp_path / "relay")
    assert ctl("start", "--dir", relay_dir).returncode == 1  # no settings stored yet: --source needed
    started = ctl("start", "--dir", relay_dir, "--source", primary.remote)
    try:
        assert started.returncode == 0, started.stderr
        spec = load_relay(relay_dir)
        assert started.stdout.strip() == spec.remote and spec.source == primary.remote
        status = ctl("status", "--dir", relay_dir)
        assert status.returncode == 0 and "state=connected" in status.stdout, status.stdout
        assert database_status(spec.remote)["model"] == "relay"

        agent = DirectoryStore(spec.remote, leader_only=False)
        agent.start(timeout=20)
        direct = DirectoryStore(primary.remote, leader_only=False)
        direct.start(timeout=20)
        try:
            host_id = agent.register_host("relayed-host", "192.0.2.50", 7)  # a write through the relay
            assert agent.snapshot().hosts[host_id].connected  # ... in the agent's own copy at once
            wait_until(lambda: host_id in direct.snapshot().hosts, 10, what="the write on the primary")
            direct.heartbeat("relayed-host")  # and a write on the primary reaches the relay's clients
            seen = direct.snapshot().hosts[host_id].last_seen
            wait_until(lambda: agent.snapshot().hosts[host_id].last_seen == seen, 10,
                       what="the primary's write through the relay")
        finally:
            agent.stop()
            direct.stop()

        with pytest.raises(Unavailable):  # the API's store wants a leader; a relay is none
            DirectoryStore(spec.remote).start(timeout=3)

        pid = spec.pid
        assert ctl("stop", "--dir", relay_dir).returncode == 0
        assert spec.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        down = ctl("status", "--dir", relay_dir)
        assert down.returncode == 1 and "state=down" in down.stdout
        again = ctl("start", "--dir", relay_dir)  # the stored settings
        assert again.returncode == 0, again.stderr
    finally:
        ctl("stop", "--dir", relay_dir)


def test_nuage_ctl_db_relay_serves_tls_with_the_given_identity(tmp_path, primary):
    from nuage_ryu import pki
    from nuage_ryu.directory.testing import free_port

    pki_dir = str(tmp_path / "pki")
    pki.init_ca(pki_dir)
    relay_id = pki.issue(pki_dir, "relay-1", alt_names=["127.0.0.1"], out_dir=str(tmp_path / "relay-id"))
    client = pki.issue(pki_dir, "some-host", out_dir=str(tmp_path / "client-id"))
    relay_dir, port = str(tmp_path / "relay"), free_port()
    listen = f"pssl:{port}:127.0.0.1"
    refused = ctl("start", "--dir", relay_dir, "--source", primary.remote, "--remote", listen)
    assert refused.returncode == 1 and "--private-key" in refused.stderr  # pssl: without an identity
    started = ctl("start", "--dir", relay_dir, "--source", primary.remote, "--remote", listen,
                  "--private-key", relay_id.key_file, "--certificate", relay_id.cert_file,
                  "--ca-cert", relay_id.ca_file)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().endswith(listen)

        def client_lists_dbs():
            proc = subprocess.run(["ovsdb-client", "--timeout=5", f"--private-key={client.key_file}",
                                   f"--certificate={client.cert_file}", f"--ca-cert={client.ca_file}",
                                   "list-dbs", f"ssl:127.0.0.1:{port}"], capture_output=True, text=True,
                                  timeout=10)
            return proc.returncode == 0 and "Nuage_Directory" in proc.stdout

        wait_until(client_lists_dbs, 15, what="a TLS client served by the relay")
        assert load_relay(relay_dir).key_file == os.path.abspath(relay_id.key_file)  # kept for the next start
    finally:
        ctl("stop", "--dir", relay_dir)


def test_nuage_ctl_db_relay_host_listener_holds_a_host_to_its_own_rows(tmp_path, primary):
    """--host-remote: the relay checks the host role itself (the primary's RBAC tables, the client's CN)."""
    import json

    from nuage_ryu import pki
    from nuage_ryu.directory.testing import free_port

    pki_dir = str(tmp_path / "pki")
    pki.init_ca(pki_dir)
    relay_id = pki.issue(pki_dir, "relay-1", alt_names=["127.0.0.1"], out_dir=str(tmp_path / "relay-id"))
    host = pki.issue(pki_dir, "node-7", out_dir=str(tmp_path / "node-7"))
    relay_dir, port = str(tmp_path / "relay"), free_port()
    started = ctl("start", "--dir", relay_dir, "--source", primary.remote, "--host-remote", f"pssl:{port}:127.0.0.1",
                  "--private-key", relay_id.key_file, "--certificate", relay_id.cert_file,
                  "--ca-cert", relay_id.ca_file)
    try:
        assert started.returncode == 0, started.stderr
        assert load_relay(relay_dir).host_remotes == [f"pssl:{port}:127.0.0.1"]

        def transact(*ops) -> str:
            proc = subprocess.run(["ovsdb-client", "--timeout=5", f"--private-key={host.key_file}",
                                   f"--certificate={host.cert_file}", f"--ca-cert={host.ca_file}", "transact",
                                   f"ssl:127.0.0.1:{port}", json.dumps(["Nuage_Directory", *ops])],
                                  capture_output=True, text=True, timeout=10)
            return proc.stdout + proc.stderr

        select = {"op": "select", "table": "Host", "where": [], "columns": ["name"]}
        wait_until(lambda: '"rows"' in transact(select), 15, what="the relay's host listener")
        assert "permission error" in transact({"op": "insert", "table": "Enterprise", "row": {"name": "evil"}})
        assert "permission error" in transact({"op": "insert", "table": "Host", "row": {"name": "node-8"}})
        own = transact({"op": "insert", "table": "Host", "row": {"name": "node-7"}})
        assert "error" not in own, own
        on_primary = subprocess.run(["ovsdb-client", "transact", primary.remote, json.dumps(
            ["Nuage_Directory", {"op": "select", "table": "Host", "where": [], "columns": ["name"]}])],
            capture_output=True, text=True, timeout=10).stdout
        assert '"node-7"' in on_primary and '"node-8"' not in on_primary and "evil" not in on_primary
    finally:
        ctl("stop", "--dir", relay_dir)
