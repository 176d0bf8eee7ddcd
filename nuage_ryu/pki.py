"""A small private PKI for nuage-ryu: one CA, a certificate per directory server and per host.

Like ``ovs-pki``, but in Python (the ``cryptography`` library) so that the
directory's admin can enroll a host with one command and no OpenSSL CLI. The
certificate's common name is the identity: the host name for a host (the
directory database's RBAC and the REST API's host tokens are keyed by it), the
service name for a server. Keys are EC P-256 (accepted by OVS, ovsdb-server,
Python's ssl module and cheroot alike) and written with mode 0600.

Layout of a PKI directory (``<state_dir>/pki`` by default)::

    ca-key.pem  ca-cert.pem                 the CA (the key never leaves the controller)
    <name>-key.pem  <name>-cert.pem         what ``issue`` writes for one identity

``issue`` can write into another folder (``out_dir``), together with a copy of
``ca-cert.pem``: that folder is what an operator copies to the host.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_KEY, CA_CERT = "ca-key.pem", "ca-cert.pem"
CA_DAYS = 3650
CERT_DAYS = 825  # the longest validity common TLS clients accept for a leaf certificate
ORGANIZATION = "nuage-ryu"
# A host name is a DNS label-ish name: it also ends up in file names and RBAC rows.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class PKIError(Exception):
    """The PKI directory or a request to it is invalid."""


@dataclass(frozen=True)
class Credentials:
    """Paths of one identity's key, certificate and the CA certificate to trust."""

    key_file: str
    cert_file: str
    ca_file: str


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # an existing file keeps its old mode through O_CREAT


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def check_name(name: str) -> str:
    """``name`` if it can be an identity (letters, digits, '.', '_', '-'; at most 63), else PKIError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise PKIError(f"invalid identity {name!r}: use letters, digits, '.', '_' and '-' (at most 63)")
    return name


def init_ca(pki_dir: str, name: str = "nuage-ryu CA") -> str:
    """Create the CA in ``pki_dir`` unless it exists; the CA certificate's path."""
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    key_path, cert_path = os.path.join(pki_dir, CA_KEY), os.path.join(pki_dir, CA_CERT)
    if os.path.exists(key_path) and os.path.exists(cert_path):
        return cert_path
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path


def _load_ca(pki_dir: str):
    try:
        with open(os.path.join(pki_dir, CA_KEY), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        with open(os.path.join(pki_dir, CA_CERT), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except FileNotFoundError:
        raise PKIError(f"no CA in {pki_dir} (run 'nuage-ctl pki init' first)") from None
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot read the CA in {pki_dir}: {exc}") from None
    return key, cert


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def issue(pki_dir: str, name: str, *, alt_names: list[str] | None = None, out_dir: str | None = None,
          days: int = CERT_DAYS) -> Credentials:
    """Issue (or re-issue: rotation) a key and certificate for identity ``name``.

    The certificate serves both as a TLS server certificate (the directory, a host's
    OpenFlow listener) and a client one (a host towards the directory), with CN=``name``
    and ``alt_names`` (host names and IP addresses; ``name`` itself is always included).
    Written to ``out_dir`` (default ``pki_dir``) with a copy of the CA certificate.
    """
    check_name(name)
    ca_key, ca_cert = _load_ca(pki_dir)
    out_dir = out_dir or pki_dir
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    sans = _alt_names(list(dict.fromkeys([name, *(alt_names or [])])))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                                     x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    creds = Credentials(os.path.join(out_dir, f"{name}-key.pem"), os.path.join(out_dir, f"{name}-cert.pem"),
                        os.path.join(out_dir, CA_CERT))
    _write(creds.key_file, _key_pem(key), 0o600)
    _write(creds.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    if os.path.abspath(out_dir) != os.path.abspath(pki_dir):
        _write(creds.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return creds


def common_name(cert_file: str) -> str:
    """The CN of the certificate in ``cert_file`` (a host's identity)."""
    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise PKIError(f"{cert_file}: certificate has no common name")
    return str(attrs[0].value)
