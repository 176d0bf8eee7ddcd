"""TLS for every connection of a nuage-ryu process, from one identity (the [tls] options).

Each transport has its own switch, all set from the same three files:

* python-ovs streams (``ssl:`` remotes of the directory database: the agents' and the
  API's store): process-wide, like ovsdb-server's own ``--private-key`` options;
* ovsdb-server listeners (``pssl:``) of the embedded directory database;
* the REST API: cheroot's builtin TLS adapter (HTTPS); clients verify the server
  against the CA, the server asks for no client certificate (bearer tokens authenticate);
* OpenFlow: os-ken's listener options (``ctl_privkey``, ``ctl_cert``, ``ca_certs``:
  mutual TLS — the switch must present a certificate of the same CA), and the host's
  OVS SSL settings (see ``HostOVS.set_ssl``).
"""

from __future__ import annotations

import ssl

from nuage_ryu.pki import Credentials


def use_for_ovsdb_clients(creds: Credentials) -> None:
    """Make every python-ovs ``ssl:`` stream of this process use ``creds``."""
    import ovs.stream

    ovs.stream.Stream.ssl_set_private_key_file(creds.key_file)
    ovs.stream.Stream.ssl_set_certificate_file(creds.cert_file)
    ovs.stream.Stream.ssl_set_ca_cert_file(creds.ca_file)


def ovsdb_server_args(creds: Credentials) -> list[str]:
    """ovsdb-server options so that its ``pssl:`` listeners (and ``ssl:`` relay sources) use ``creds``."""
    return [f"--private-key={creds.key_file}", f"--certificate={creds.cert_file}", f"--ca-cert={creds.ca_file}"]


def https_adapter(creds: Credentials):
    """A cheroot TLS adapter serving ``creds`` (TLS 1.2 or newer)."""
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    adapter = BuiltinSSLAdapter(creds.cert_file, creds.key_file)
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


def openflow_overrides(creds: Credentials, tcp_port: int | None) -> dict[str, object]:
    """os-ken options that turn its OpenFlow listener into mutual TLS on the same port."""
    overrides: dict[str, object] = {"ctl_privkey": creds.key_file, "ctl_cert": creds.cert_file,
                                    "ca_certs": creds.ca_file}
    if tcp_port:
        overrides["ofp_ssl_listen_port"] = tcp_port
    return overrides


def is_plain_tcp(remote: str) -> bool:
    """True for an OVSDB/OpenFlow remote or listener over plain TCP (``tcp:``/``ptcp:``)."""
    return remote.split(":", 1)[0] in ("tcp", "ptcp")


def controller_targets(targets: list[str], creds: Credentials | None) -> list[str]:
    """br-int's controller targets: with TLS, ``tcp:`` becomes ``ssl:`` (the agent listens for TLS only)."""
    if creds is None:
        return list(targets)
    return ["ssl:" + t[4:] if t.startswith("tcp:") else t for t in targets]
