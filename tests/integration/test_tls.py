"""TLS on the wire: the REST API over HTTPS and the directory database over pssl:, from one [tls] identity.

Everything listens on loopback; the identities come from a private CA made by the test.
"""

import http.client
import shutil
import socket
import ssl

import pytest

from nuage_ryu import pki
from nuage_ryu.directory.client import CannotConnect, DirectoryClient
from nuage_ryu.directory.service import DirectoryService
from nuage_ryu.directory.store import DirectoryStore
from tests.ovs_fixtures import wait_until

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None, reason="needs ovsdb-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_directory(tmp_path):
    ca_dir = str(tmp_path / "pki")
    pki.init_ca(ca_dir)
    creds = pki.issue(ca_dir, "directory", alt_names=["127.0.0.1"])
    db_port = _free_port()
    service = DirectoryService(state_dir=str(tmp_path / "state"), api_host="127.0.0.1", api_port=_free_port(),
                               listen=f"pssl:{db_port}:127.0.0.1", discovery_pointer=None, tls=creds)
    service.start()
    try:
        yield service, creds, db_port, ca_dir
    finally:
        service.stop()


def test_the_rest_api_speaks_https_only_and_is_verified_against_the_ca(tls_directory, tmp_path):
    service, creds, _db_port, _ca = tls_directory
    with open(service.token_file) as f:
        token = f.read().strip()
    url = f"https://127.0.0.1:{service.bound_port}"
    client = DirectoryClient(url, token, ca_file=creds.ca_file, timeout=10)
    assert client.get("/enterprises") == []
    # A client that trusts only the system CAs refuses the server.
    with pytest.raises((CannotConnect, ssl.SSLError)):
        DirectoryClient(url, token, timeout=10).get("/enterprises")
    # Plain HTTP on the TLS port gets no API answer.
    conn = http.client.HTTPConnection("127.0.0.1", service.bound_port, timeout=5)
    try:
        conn.request("GET", "/api/v1/enterprises", headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse()
        assert answer.status == 400  # cheroot's answer to plain HTTP on a TLS socket, never the API
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()


def test_an_agent_reaches_the_database_over_ssl_with_its_enrolled_identity(tls_directory, tmp_path):
    service, _creds, db_port, ca_dir = tls_directory
    host = pki.issue(ca_dir, "host-1", out_dir=str(tmp_path / "host-1"))
    from nuage_ryu import tls

    tls.use_for_ovsdb_clients(host)  # what nuage-ryu-manager does for a process with [tls]
    store = DirectoryStore(f"ssl:127.0.0.1:{db_port}")
    store.start(timeout=20)
    try:
        store.register_host("host-1", "192.0.2.11", None)
        wait_until(lambda: any(h.name == "host-1" for h in service.store.snapshot().hosts.values()),
                   timeout=10, message="the host row written over ssl: to reach the API's store")
    finally:
        store.stop()


def test_a_client_without_a_certificate_of_the_ca_gets_no_database(tls_directory, tmp_path):
    _service, _creds, db_port, _ca = tls_directory
    other = str(tmp_path / "other")
    pki.init_ca(other)
    intruder = pki.issue(other, "host-1")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(intruder.cert_file, intruder.key_file)
    with socket.create_connection(("127.0.0.1", db_port), timeout=5) as raw, \
            pytest.raises((ssl.SSLError, OSError)), ctx.wrap_socket(raw) as s:
        s.sendall(b'{"id":0,"method":"list_dbs","params":[]}')
        if not s.recv(4096):  # the server closes the connection: nothing was served
            raise ConnectionResetError("closed")
