"""``nuage-ctl host enroll|revoke``: a host's whole identity, issued and withdrawn by the admin.

``enroll`` writes into one folder what the host needs and nothing more: its key and
certificate (CN = host name: the directory database's RBAC identity, ``nuage_ryu/pki.py``),
the CA certificate, and its **host token** (``<name>-token``, mode 0600: the attach service's
REST credential, limited to the host's own vports; ``host_access.py``). Enrolling again
rotates all of them: the old token is refused from that moment (the directory replaces it in
one transaction); the old certificate stays valid until it expires or the CA is rotated.

``revoke`` deletes the host's token(s) and its host row. It runs on the controller with the
admin's connection (the PKI folder holds the CA key).
"""

from __future__ import annotations

import json
import os
from typing import TextIO

from nuage_ryu import pki
from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.ctl.pki_cli import DEFAULT_DIR
from nuage_ryu.directory.ctl.resolve import UsageError

TOKEN_SUFFIX = "-token"


def token_path(out_dir: str, name: str) -> str:
    """Where ``enroll`` writes host ``name``'s token, beside its key and certificate."""
    return os.path.join(out_dir, f"{name}{TOKEN_SUFFIX}")


def add_actions(enroll, revoke) -> None:
    """The arguments of ``host enroll`` and ``host revoke`` (parsers made by parser.add_object)."""
    enroll.add_argument("name", metavar="HOST", help="the host's name: its certificate's CN and its agent's "
                                                     "[vrs] host_name (e.g. node-1)")
    enroll.add_argument("--dir", metavar="DIR", help=f"the PKI folder with the CA (e.g. --dir /tmp/lab/pki; "
                                                     f"default $NUAGE_PKI_DIR or {DEFAULT_DIR})")
    enroll.add_argument("--out", metavar="DIR", help="write key, certificate, CA certificate and token there "
                                                     "(e.g. --out /tmp/node-1-creds; default DIR/HOST)")
    enroll.add_argument("--san", action="append", default=[], metavar="NAME_OR_IP",
                        help="another DNS name or IP address of the host (repeatable; e.g. --san 192.0.2.11)")
    revoke.add_argument("name", metavar="HOST", help="the host's name (e.g. node-1)")


def _write_secret(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def _emit(result: dict, output: str | None, out: TextIO, text: str) -> None:
    if output == "json":
        out.write(json.dumps(result, indent=2) + "\n")
    elif output == "yaml":
        import yaml

        out.write(yaml.safe_dump(result, sort_keys=False))
    else:
        out.write(text)


def enroll(args, client: DirectoryClient, out: TextIO) -> dict:
    """Issue host ``args.name``'s key, certificate and host token; print the agent's config lines."""
    pki_dir = args.dir or os.environ.get("NUAGE_PKI_DIR") or DEFAULT_DIR
    out_dir = args.out or os.path.join(pki_dir, args.name)
    try:
        creds = pki.issue(pki_dir, args.name, alt_names=args.san, out_dir=out_dir)
    except (pki.PKIError, OSError) as exc:
        raise UsageError(f"host enroll: {exc}") from None
    answer = client.post("/tokens", {"host": args.name, "name": f"host {args.name}"})
    path = token_path(out_dir, args.name)
    _write_secret(path, answer["token"])
    result = {"host": args.name, "key_file": creds.key_file, "cert_file": creds.cert_file,
              "ca_file": creds.ca_file, "token_file": path, "token_id": answer["id"]}
    _emit(result, getattr(args, "output", None), out,
          f"# copy {out_dir} to the host; its agent's config file:\n"
          f"[vrs]\nhost_name = {args.name}\ndirectory_token_file = {path}\n"
          f"[tls]\nkey_file = {creds.key_file}\ncert_file = {creds.cert_file}\nca_file = {creds.ca_file}\n")
    return result


def revoke(args, client: DirectoryClient, out: TextIO) -> dict:
    """Delete host ``args.name``'s token(s) and its host row."""
    name = args.name
    tokens = [t["id"] for t in client.list("/tokens") if t.get("host") == name]
    for token_id in tokens:
        client.delete(f"/tokens/{token_id}")
    hosts = [h["id"] for h in client.list("/hosts", name=name) if h.get("name") == name]
    for host_id in hosts:
        client.delete(f"/hosts/{host_id}")
    if not tokens and not hosts:
        raise UsageError(f"host revoke: no token and no host row for {name!r}")
    result = {"host": name, "tokens_deleted": tokens, "host_rows_deleted": hosts}
    _emit(result, getattr(args, "output", None), out,
          f"revoked {name}: {len(tokens)} token(s) and {len(hosts)} host row(s) deleted. Its certificate "
          "stays valid for the directory database (writes of its own rows only) until it expires or the "
          "CA is rotated: docs/security.md, 'Revoking a host'.\n")
    return result
