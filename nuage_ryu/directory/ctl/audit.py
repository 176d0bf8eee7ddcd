"""``nuage-ctl audit``: read the directory's audit log (``<state_dir>/audit.log`` and its rotations).

The log is a file on the directory's machine (docs/security.md), so this command reads it
there: from ``--file``, ``--state-dir``, or the state dir of the directory running on this
machine (its discovery record). It needs no token, only read access to the file (mode 0600,
owned by the directory's user).
"""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from nuage_ryu.directory import audit, discovery
from nuage_ryu.directory.ctl.render import field, print_table, render_data
from nuage_ryu.directory.ctl.resolve import UsageError

COLUMNS = [field("time"), field("principal"), field("enterprise_name", "ENTERPRISE"), field("method"),
           field("path"), field("status")]
WIDE = COLUMNS + [field("ids"), field("remote"), field("error")]


def add_parser(objs, formatter, epilog) -> argparse.ArgumentParser:
    """The ``audit`` command and its filters."""
    ap = objs.add_parser("audit", help="show the audit log of mutating API calls (on the directory's machine)",
                         formatter_class=formatter,
                         description="Show the directory's audit log: one entry per mutating REST call "
                                     "(who, what, result), oldest first.",
                         epilog=epilog(["nuage-ctl audit --enterprise acme --since 2026-12-03T08:00Z",
                                        "nuage-ctl audit --principal admin -o json",
                                        "nuage-ctl audit --state-dir /var/lib/nuage-ryu --until 2026-12-03"]))
    ap.add_argument("--enterprise", metavar="E",
                    help="only calls in this enterprise (name or id; e.g. --enterprise acme)")
    ap.add_argument("--principal", metavar="P", help="only calls by admin, token:NAME, host:HOST, or a token's "
                                                      "name or id (e.g. --principal token:ci-bot)")
    ap.add_argument("--since", metavar="T", help="from this time on (ISO 8601, e.g. 2026-12-03T08:00Z; "
                                                 "or epoch seconds)")
    ap.add_argument("--until", metavar="T", help="up to this time (same forms as --since; "
                                                 "e.g. --until 2026-12-03T09:00Z)")
    ap.add_argument("--state-dir", dest="audit_state_dir", metavar="DIR",
                    help="the directory's state dir (default: the directory running on this machine; "
                         "e.g. --state-dir /var/lib/nuage-ryu)")
    ap.add_argument("--file", dest="audit_file", metavar="FILE", help="the audit log file itself "
                                                                          "(e.g. --file ./audit.log.1)")
    return ap


def _time(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return audit.parse_time(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a time (ISO 8601 like 2026-12-03T08:00Z, "
                         "or epoch seconds)") from None


def log_path(args, discovery_paths: list[str] | None = None) -> str:
    """Which audit log to read (see the module docstring)."""
    if args.audit_file:
        return args.audit_file
    state_dir = args.audit_state_dir
    if not state_dir:
        for path in discovery_paths or [discovery.POINTER]:
            record = discovery.read(path)
            if record and record.get("state_dir"):
                state_dir = record["state_dir"]
                break
    if not state_dir:
        raise UsageError("no directory runs on this machine: give --state-dir DIR or --file FILE")
    return os.path.join(state_dir, audit.AUDIT_FILE)


def run(args, out: TextIO, discovery_paths: list[str] | None = None) -> None:
    """Print the matching entries (table, wide, json or yaml)."""
    path = log_path(args, discovery_paths)
    if not audit.files_oldest_first(path):
        raise UsageError(f"no audit log at {path}")
    entries = list(audit.read_entries(path, enterprise=args.enterprise, principal=args.principal,
                                      since=_time(args.since, "--since"), until=_time(args.until, "--until")))
    output = getattr(args, "output", None) or "table"
    if output in ("json", "yaml"):
        out.write(render_data(entries, output))
    else:
        print_table(entries, WIDE if output == "wide" else COLUMNS, out, wide=output == "wide")

