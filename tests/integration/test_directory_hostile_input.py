"""The directory under hostile input (issue 11, "Why" 2, 4, 5): each test failed on the code before.

A real directory (nuage-ryu-manager + embedded ovsdb-server) for the REST tests; a real
ovsdb-server and a ``DirectoryStore`` for the store tests that bypass validation.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import uuid

import pytest

from nuage_ryu import pki
from nuage_ryu.db.server import OvsdbServer
from nuage_ryu.directory import audit, validate
from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.ctl.main import main as ctl_main
from nuage_ryu.directory.errors import DirectoryError, Unavailable, ValidationError
from nuage_ryu.directory.service import DirectoryService
from nuage_ryu.directory.store import DirectoryStore, schema_path
from nuage_ryu.directory.store.transactions import RowChange
from nuage_ryu.directory.testing import free_port
from nuage_ryu.directory.validate import Change, Op

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


@contextlib.contextmanager
def client_of(manager, token: str):
    client = manager.client(token)
    try:
        yield client
    finally:
        client.close()


def status_of(client: DirectoryClient, method: str, path: str, body: bytes | None = None,
              headers: dict | None = None) -> tuple[int, dict]:
    status, _headers, data = client.raw(method, "/api/v1" + path, body, headers)
    return status, (json.loads(data) if data else {})


def raw_exchange(port: int, request: bytes, timeout: float = 30.0) -> bytes:
    """Send bytes on a fresh TCP connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


# ---------------------------------------------------------------------------
# 2. a NUL character stopped every write, for every tenant, until restart


def test_nul_in_a_description_is_refused_and_later_writes_go_through(admin):
    status, body = status_of(admin, "POST", "/enterprises",
                             json.dumps({"name": "d", "description": "a\u0000b"}).encode())
    assert status == 422 and body["error"]["code"] == "validation_error", body
    assert "U+0000" in body["error"]["message"]
    ent = admin.post("/enterprises", {"name": "after-nul"})  # the store still takes writes
    admin.delete(f"/enterprises/{ent['id']}")


@pytest.mark.parametrize("field,value", [
    ("name", "we\u0000b"), ("name", "bell\u0007"), ("name", "pay\u202epal"), ("name", "zero\u200bwidth"),
    ("name", "bom\ufeff"), ("description", "esc\u001b[31m"), ("description", "rtl\u2066x"),
])
def test_control_and_format_characters_are_refused(admin, field, value):
    body = {"name": "ok-name", field: value}
    status, answer = status_of(admin, "POST", "/enterprises", json.dumps(body).encode())
    assert status == 422, answer


def test_names_are_stored_in_nfc_so_look_alikes_collide(admin):
    composed = admin.post("/enterprises", {"name": "caf\u00e9"})
    try:
        assert composed["name"] == "caf\u00e9"
        status, answer = status_of(admin, "POST", "/enterprises", json.dumps({"name": "cafe\u0301"}).encode())
        assert status == 409, answer  # "cafe" + combining acute is the same name once normalized
    finally:
        admin.delete(f"/enterprises/{composed['id']}")


def test_multi_line_descriptions_stay_allowed(admin):
    ent = admin.post("/enterprises", {"name": "multiline", "description": "line 1\nline 2\ttab"})
    assert ent["description"] == "line 1\nline 2\ttab"
    admin.delete(f"/enterprises/{ent['id']}")


@pytest.fixture
def store(tmp_path):
    srv = OvsdbServer(str(tmp_path / "directory.db"), schema_path(), str(tmp_path / "db.sock"))
    srv.start()
    st = DirectoryStore(srv.remote)
    st.start()
    try:
        yield st
    finally:
        st.stop()
        srv.stop()


def _create_enterprise(store, name: str) -> str:
    change, _state = store.apply(lambda s: validate.plan_create(s, "enterprise", None, {"name": name}))
    return change.result[1]


def test_store_refuses_a_nul_change_that_bypassed_validation_and_keeps_working(store):
    ent = _create_enterprise(store, "d")

    def bad(_state):  # what a planner with a bug (or a new endpoint without checks) could produce
        change = Change(result=("enterprise", ent))
        change.ops.append(Op("update", "enterprise", ent, {"description": "a\u0000b"}))
        return change

    with pytest.raises(ValidationError):
        store.apply(bad)
    assert store.connected
    assert _create_enterprise(store, "next")  # the following write commits


def test_store_gives_up_a_write_that_keeps_dropping_the_connection(store):
    """The second line of defence: a transaction the server cannot even parse (sent by a row
    callback, past every check) fails alone, with a 503, instead of being resent forever."""
    ent = _create_enterprise(store, "d")

    def build(idl, _txn):
        idl.tables["Enterprise"].rows[uuid.UUID(ent)].description = "a\u0000b"

    with pytest.raises(Unavailable) as info:
        store.apply(lambda _state: RowChange("a hostile row", build))
    assert "closed the connection" in info.value.message
    assert _create_enterprise(store, "next")
    assert store.snapshot().enterprises[ent].description == ""


# ---------------------------------------------------------------------------
# 4. sixteen idle connections stalled the REST API for everyone


def test_idle_connections_do_not_starve_a_real_request(manager):
    idle = [socket.create_connection(("127.0.0.1", manager.port), timeout=5) for _ in range(40)]
    half_sent = [socket.create_connection(("127.0.0.1", manager.port), timeout=5) for _ in range(40)]
    try:
        for s in half_sent:  # slowloris: headers begun, never finished
            s.sendall(b"GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\n")
        answered = threading.Event()
        result: list = []

        def real_request():
            client = manager.client()
            try:
                result.append(client.get("/hosts"))
            finally:
                client.close()
                answered.set()

        threading.Thread(target=real_request, daemon=True).start()
        # Generous on a loaded 2-core machine; before the fix the answer took 19.5 s, and it took
        # longer with every wave of 16 idle connections.
        assert answered.wait(8.0), "a request behind 80 idle/half-open connections was not answered"
        assert result and isinstance(result[0], list)
    finally:
        for s in idle + half_sent:
            s.close()


# ---------------------------------------------------------------------------
# 5. smaller ones


def _post(manager, path: str, extra_headers: bytes, body: bytes) -> bytes:
    return raw_exchange(manager.port, b"POST /api/v1" + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                        + b"Authorization: Bearer " + manager.token.encode() + b"\r\n" + extra_headers
                        + b"Connection: close\r\n\r\n" + body)


def test_malformed_chunk_size_is_a_json_400(manager):
    answer = _post(manager, "/enterprises", b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_deeply_nested_json_is_a_400(admin):
    for depth in (40, 5000, 100000):
        status, body = status_of(admin, "POST", "/enterprises", b'{"name":' + b"[" * depth + b"]" * depth + b"}")
        assert status == 400 and body["error"]["code"] == "bad_request", (depth, body)


def test_duplicate_json_keys_are_refused(admin):
    status, body = status_of(admin, "POST", "/enterprises", b'{"name":"a","name":"b"}')
    assert status == 400 and "duplicate key" in body["error"]["message"], body


def test_duplicate_vni_conflict_does_not_name_another_tenants_domain(manager, admin):
    other = admin.post("/enterprises", {"name": "vni-other"})
    mine = admin.post("/enterprises", {"name": "vni-mine"})
    try:
        secret = admin.post(f"/enterprises/{other['id']}/domains", {"name": "secret-project", "vni": 4242})
        tenant_token = admin.post("/tokens", {"enterprise": mine["id"], "name": "vni-tenant"})
        with client_of(manager, tenant_token["token"]) as tenant:
            status, body = status_of(tenant, "POST", f"/enterprises/{mine['id']}/domains",
                                     json.dumps({"name": "d", "vni": secret["vni"]}).encode())
        assert status == 409, body
        assert "secret-project" not in body["error"]["message"]
        assert "another enterprise" in body["error"]["message"]
        own = admin.post(f"/enterprises/{mine['id']}/domains", {"name": "own", "vni": 4343})
        status, body = status_of(admin, "POST", f"/enterprises/{mine['id']}/domains",
                                 json.dumps({"name": "d2", "vni": own["vni"]}).encode())
        assert status == 409 and "'own'" in body["error"]["message"]  # its own domain it may see
    finally:
        for ent in (other, mine):
            admin.delete(f"/enterprises/{ent['id']}", cascade="true")


# ---------------------------------------------------------------------------
# 6/Build 3. the audit log


def test_every_mutating_call_is_audited_and_nuage_ctl_audit_filters(manager, admin, capsys):
    ent = admin.post("/enterprises", {"name": "audited"})
    token = admin.post("/tokens", {"enterprise": ent["id"], "name": "auditor-bot"})
    with client_of(manager, token["token"]) as tenant:
        dom = tenant.post(f"/enterprises/{ent['id']}/domains", {"name": "prod"})
        status_of(tenant, "POST", "/enterprises", b'{"name":"x"}')  # refused: 403, audited too
        tenant.request("PUT", f"/domains/{dom['id']}", {"description": "changed"})
    with client_of(manager, "wrong") as intruder:
        status_of(intruder, "DELETE", f"/enterprises/{ent['id']}")
    admin.get(f"/enterprises/{ent['id']}")  # a read: not audited
    admin.delete(f"/enterprises/{ent['id']}", cascade="true")

    log = f"{manager.state_dir}/{audit.AUDIT_FILE}"
    with open(log) as f:
        text = f.read()
    assert token["token"] not in text and manager.token not in text  # never a token
    mine = list(audit.read_entries(log, enterprise=ent["id"]))
    assert [(e["method"], e["status"], e["principal"]) for e in mine] == [
        ("POST", 201, "admin"),                    # the enterprise
        ("POST", 201, "token:auditor-bot"),        # the domain
        ("POST", 403, "token:auditor-bot"),        # an enterprise it may not create
        ("PUT", 200, "token:auditor-bot"),
        ("DELETE", 401, "anonymous"),              # a wrong token
        ("DELETE", 204, "admin"),
    ]
    assert mine[1]["ids"] == [ent["id"], dom["id"]] and mine[1]["enterprise_name"] == "audited"
    refused = list(audit.read_entries(log, principal="auditor-bot"))
    assert any(e["status"] == 403 and e["error"] == "forbidden" for e in refused)
    assert any(e["principal"] == "anonymous" and e["status"] == 401 for e in audit.read_entries(log))
    assert all(e["method"] != "GET" for e in audit.read_entries(log))

    capsys.readouterr()
    assert ctl_main(["audit", "--state-dir", manager.state_dir, "--enterprise", "audited",
                     "--principal", "token:auditor-bot", "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["status"] for e in shown] == [201, 403, 200]
    assert ctl_main(["audit", "--state-dir", manager.state_dir, "--since", mine[-1]["time"],
                     "--until", mine[-1]["time"]]) == 0
    table = capsys.readouterr().out
    assert "DELETE" in table and "token:auditor-bot" not in table
    assert ctl_main(["audit", "--state-dir", manager.state_dir, "--since", "yesterday"]) == 2


def test_audit_log_rotates_at_its_size_bound(tmp_path):
    log = audit.AuditLog(str(tmp_path / "audit.log"), max_bytes=2000, backups=2)
    for i in range(200):
        log.record({"principal": "admin", "method": "POST", "path": f"/api/v1/x/{i}", "status": 201})
    files = audit.files_oldest_first(log.path, backups=2)
    assert [f.rsplit("/", 1)[1] for f in files] == ["audit.log.2", "audit.log.1", "audit.log"]
    assert all(os.path.getsize(f) < 2200 for f in files)
    paths = [e["path"] for e in audit.read_entries(log.path)]
    assert paths[-1] == "/api/v1/x/199" and paths == sorted(paths, key=lambda p: int(p.rsplit("/", 1)[1]))


def test_errors_of_hostile_requests_carry_no_traceback(admin):
    for body in (b"\xff\xfe", b'{"name": NaN}', b"[" * 10, b'{"name":"\\ud800"}'):
        status, answer = status_of(admin, "POST", "/enterprises", body)
        assert status == 400, (body, answer)
        assert "Traceback" not in json.dumps(answer)


def test_bad_input_raises_directory_errors_only(admin):
    with pytest.raises(DirectoryError):
        admin.post("/enterprises", {"name": "x" * 300})


def test_idle_connections_on_https_do_not_stall_the_accept_loop(tmp_path):
    """cheroot did the TLS handshake in its one accept thread: a client that connected and sent
    nothing stopped every other client until its socket timed out."""
    ca_dir = str(tmp_path / "pki")
    pki.init_ca(ca_dir)
    creds = pki.issue(ca_dir, "directory", alt_names=["127.0.0.1"])
    service = DirectoryService(state_dir=str(tmp_path / "state"), api_host="127.0.0.1", api_port=free_port(),
                               discovery_pointer=None, tls=creds)
    service.start()
    idle = []
    try:
        with open(service.token_file) as f:
            token = f.read().strip()
        idle = [socket.create_connection(("127.0.0.1", service.bound_port), timeout=5) for _ in range(40)]
        answered = threading.Event()
        result: list = []

        def real_request():
            client = DirectoryClient(f"https://127.0.0.1:{service.bound_port}", token, ca_file=creds.ca_file,
                                     timeout=60)
            try:
                result.append(client.get("/enterprises"))
            finally:
                client.close()
                answered.set()

        threading.Thread(target=real_request, daemon=True).start()
        assert answered.wait(8.0), "an HTTPS request behind 40 idle connections was not answered"
        assert result == [[]]
    finally:
        for s in idle:
            s.close()
        service.stop()
