"""The private PKI: a CA, identities it issues, and TLS handshakes that trust only that CA."""

import os
import socket
import ssl
import threading

import pytest
from oslo_config import cfg

from nuage_ryu import config, pki, tls


def _read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture
def ca(tmp_path):
    d = str(tmp_path / "pki")
    pki.init_ca(d)
    return d


def _handshake(server: pki.Credentials, client_ca: str, client: pki.Credentials | None = None,
               require_client_cert: bool = False) -> str:
    """Run one TLS handshake over a socketpair; the server's view of the client's CN ('' if none)."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(server.cert_file, server.key_file)
    if require_client_cert:
        sctx.verify_mode = ssl.CERT_REQUIRED
        sctx.load_verify_locations(server.ca_file)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.load_verify_locations(client_ca)
    if client:
        cctx.load_cert_chain(client.cert_file, client.key_file)
    a, b = socket.socketpair()
    seen: dict = {}

    def serve():
        try:
            with sctx.wrap_socket(a, server_side=True) as s:
                peer = s.getpeercert()
                seen["cn"] = dict(x[0] for x in peer["subject"]).get("commonName", "") if peer else ""
                s.recv(1)
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    t = threading.Thread(target=serve)
    t.start()
    try:
        with cctx.wrap_socket(b) as c:
            c.sendall(b"x")
    finally:
        t.join(5)
    if "error" in seen:
        raise seen["error"]
    return seen.get("cn", "")


def test_an_enrolled_host_proves_its_name_to_a_server_of_the_same_ca(ca, tmp_path):
    server = pki.issue(ca, "directory", alt_names=["192.0.2.2"])
    host = pki.issue(ca, "host-1", out_dir=str(tmp_path / "h1"))
    assert _handshake(server, host.ca_file, client=host, require_client_cert=True) == "host-1"
    assert pki.common_name(host.cert_file) == "host-1"


def test_a_certificate_of_another_ca_is_refused(ca, tmp_path):
    other = str(tmp_path / "other")
    pki.init_ca(other)
    server = pki.issue(ca, "directory")
    intruder = pki.issue(other, "host-1")
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(server, server.ca_file, client=intruder, require_client_cert=True)


def test_keys_are_private_and_reissuing_rotates_them(ca, tmp_path):
    out = str(tmp_path / "h1")
    first = pki.issue(ca, "host-1", out_dir=out)
    assert os.stat(first.key_file).st_mode & 0o077 == 0
    assert os.stat(os.path.join(ca, pki.CA_KEY)).st_mode & 0o077 == 0
    key_before = _read(first.key_file)
    second = pki.issue(ca, "host-1", out_dir=out)
    assert _read(second.key_file) != key_before
    assert pki.init_ca(ca) == os.path.join(ca, pki.CA_CERT)  # init is a no-op on an existing CA


@pytest.mark.parametrize("name", ["", "a/b", "../x", "h 1", "x" * 64, "é"])
def test_identities_are_plain_names(ca, name):
    with pytest.raises(pki.PKIError):
        pki.issue(ca, name)


def test_issuing_without_a_ca_says_how_to_create_one(tmp_path):
    with pytest.raises(pki.PKIError, match="pki init"):
        pki.issue(str(tmp_path / "none"), "h1")


def _conf(**tls_opts):
    conf = config.register_opts(cfg.ConfigOpts())
    conf([], default_config_files=[])
    for k, v in tls_opts.items():
        conf.set_override(k, v, group="tls")
    return conf


def test_tls_options_are_all_three_or_none(ca):
    creds = pki.issue(ca, "h1")
    assert config.tls_credentials(_conf()) is None
    assert config.tls_credentials(_conf(key_file=creds.key_file, cert_file=creds.cert_file,
                                        ca_file=creds.ca_file)) == creds
    with pytest.raises(config.ConfigError, match="missing: ca_file"):
        config.tls_credentials(_conf(key_file=creds.key_file, cert_file=creds.cert_file))
    with pytest.raises(config.ConfigError, match="not readable"):
        config.tls_credentials(_conf(key_file="/nonexistent", cert_file=creds.cert_file, ca_file=creds.ca_file))


def test_with_tls_controller_targets_become_ssl(ca):
    creds = pki.issue(ca, "h1")
    assert tls.controller_targets(["tcp:127.0.0.1:6653", "unix:/x"], creds) == ["ssl:127.0.0.1:6653", "unix:/x"]
    assert tls.controller_targets(["tcp:127.0.0.1:6653"], None) == ["tcp:127.0.0.1:6653"]
    assert tls.openflow_overrides(creds, 6653)["ofp_ssl_listen_port"] == 6653
