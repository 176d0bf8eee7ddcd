"""``nuage-ctl pki``: the private CA on the controller, and enrolling hosts with their own credentials.

Local commands (no REST call): they read and write the PKI folder, which holds the
CA key and so must stay on the controller (default ``/var/lib/nuage-ryu/pki``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from nuage_ryu import pki

DEFAULT_DIR = os.path.join("/var/lib/nuage-ryu", "pki")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  nuage-ctl pki {line}" for line in lines)


def add_cli(subparsers, add_output_options) -> None:
    """Register ``pki`` on nuage-ctl's object subparsers (``add_output_options``: the parser's ``-o`` set)."""
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("pki", help="the private CA; host and server certificates (local, no REST)",
                              description="The directory's private CA and the credentials it issues. "
                                          "Run on the controller: the CA key never leaves it.",
                              formatter_class=raw,
                              epilog=_examples("init", "enroll host-1 --out /tmp/host-1-creds",
                                               "issue directory --san 192.0.2.10 --san ctl.example.net"))
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True, title="actions")
    dir_help = (f"the PKI folder (e.g. --dir /tmp/lab/pki; default $NUAGE_PKI_DIR or {DEFAULT_DIR})")
    init = sub.add_parser("init", help="create the CA (no-op when it exists)", formatter_class=raw,
                          description="Create the CA key and certificate unless they exist.",
                          epilog=_examples("init --dir /tmp/lab/pki"))
    init.add_argument("--dir", metavar="DIR", help=dir_help)
    add_output_options(init, top=False)
    for name, text in (("enroll", "issue a host's own key and certificate (CN = host name)"),
                       ("issue", "issue a server's key and certificate (e.g. the directory)")):
        sp = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ". Issuing again "
                            "for the same name rotates the credentials.", formatter_class=raw,
                            epilog=_examples(f"{name} host-1 --out /tmp/host-1-creds",
                                             f"{name} host-1 --san 192.0.2.11"))
        sp.add_argument("name", metavar="NAME", help="the identity: a host name or a service name (e.g. host-1)")
        sp.add_argument("--dir", metavar="DIR", help=dir_help)
        sp.add_argument("--out", metavar="DIR", help="write key, certificate and CA certificate there "
                                                   "(e.g. --out /tmp/host-1-creds; default the PKI folder)")
        sp.add_argument("--san", action="append", default=[], metavar="NAME_OR_IP",
                        help="another DNS name or IP address of the identity (repeatable; e.g. --san 192.0.2.11)")
        add_output_options(sp, top=False)


def run_cli(args, out=None) -> int:
    """Run a ``pki`` command; exit code 0, or 1 with a one-line error."""
    out = out or sys.stdout
    pki_dir = args.dir or os.environ.get("NUAGE_PKI_DIR") or DEFAULT_DIR
    try:
        if args.action == "init":
            result = {"ca_file": pki.init_ca(pki_dir)}
        else:
            creds = pki.issue(pki_dir, args.name, alt_names=args.san, out_dir=args.out)
            result = {"key_file": creds.key_file, "cert_file": creds.cert_file, "ca_file": creds.ca_file}
    except (pki.PKIError, OSError) as exc:
        print(f"nuage-ctl: pki: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "output", None) == "json":
        out.write(json.dumps(result, indent=2) + "\n")
    elif getattr(args, "output", None) == "yaml":
        import yaml

        out.write(yaml.safe_dump(result, sort_keys=False))
    else:  # the [tls] lines to paste into the node's config file
        out.write("".join(f"{k} = {v}\n" for k, v in result.items()))
    return 0
