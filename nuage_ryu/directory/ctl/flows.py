"""``nuage-ctl flows [--follow]``: the verdict records of logged and audit rules (like ``hubble observe``).

Reads ``GET /api/v1/verdicts`` (docs/policy.md, "Verdict logs"): first the newest ``--last``
records, then, with ``--follow``, every new one as it arrives (long polls on the cursor). One
line per record::

    2026-12-03T10:50:00.123Z h1 prod web1 10.0.1.10:40000 -> db1 10.0.3.10:22 tcp DENIED  rule no-ssh (10)
    2026-12-03T10:50:01.020Z h1 prod web1 10.0.1.10:40001 -> db1 10.0.3.10:5432 tcp WOULD-DENY  rule try (5) audit

``-o json`` prints each record as one JSON object per line (NDJSON), the API's own form.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TextIO

from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.errors import Unavailable

MAX_WAIT_S = 25.0  # what the API accepts
RETRY_S = 1.0  # after a busy answer (Retry-After) or a directory that went away


def add_parser(objs, formatter, epilog) -> argparse.ArgumentParser:
    """The ``flows`` command and its filters."""
    fp = objs.add_parser("flows", help="show verdict records of logged and audit rules (--follow: live)",
                         formatter_class=formatter,
                         description="Show the verdict records the hosts' agents report for rules with log "
                                     "(and domains with log_default) and for audit rules: who talked to whom, "
                                     "which rule decided, allow or deny (docs/policy.md).",
                         epilog=epilog(["nuage-ctl flows --follow",
                                        "nuage-ctl flows --follow --domain prod --verdict deny",
                                        "nuage-ctl flows --verdict audit --last 100 -o json"]))
    fp.add_argument("--follow", action=argparse.BooleanOptionalAction, default=False,
                    help="keep printing new records as they arrive (Ctrl-C ends); default --no-follow")
    fp.add_argument("--domain", metavar="D", help="only this domain (name or id; e.g. --domain prod)")
    fp.add_argument("--verdict", choices=("allow", "deny", "audit"),
                    help="only enforced allows, enforced denies, or audit rules' 'would' records")
    fp.add_argument("--last", type=int, default=20, metavar="N",
                    help="start with the newest N records (default 20; 0: only new ones; e.g. --last 100)")
    return fp


def line(record: dict) -> str:
    """One record as a line of text."""

    def end(vport, ip, port):
        addr = ip if port is None else f"{ip}:{port}"
        return f"{vport} {addr}" if vport else addr

    verdict = {"allow": "ALLOWED", "deny": "DENIED"}.get(record.get("verdict"), str(record.get("verdict")))
    if record.get("enforced") is False:
        verdict = "WOULD-" + record.get("verdict", "?").upper()
    if record.get("default_action"):
        why = "default action"
    else:
        why = f"rule {record.get('rule') or record.get('rule_id')} ({record.get('priority')})"
    proto = record.get("protocol")
    if proto == "icmp":
        proto = f"icmp {record.get('icmp_type')}/{record.get('icmp_code')}"
    parts = [record.get("time", ""), record.get("host", ""), record.get("domain", ""),
             end(record.get("src_vport"), record.get("src_ip"), record.get("src_port")), "->",
             end(record.get("dst_vport"), record.get("dst_ip"), record.get("dst_port")), str(proto), verdict,
             why]
    if record.get("side") == "receiver":
        parts.append("(at receiver)")
    return " ".join(str(p) for p in parts)


def run(args, client: DirectoryClient, out: TextIO) -> None:
    """``nuage-ctl flows``: print the newest records, then (``--follow``) new ones until interrupted."""
    structured = getattr(args, "output", None) in ("json", "yaml")
    params: dict = {"limit": 1000}
    if args.domain:
        params["domain"] = args.domain
    if args.verdict:
        params["verdict"] = args.verdict
    wait = max(0.0, min(MAX_WAIT_S, float(getattr(args, "timeout", 30.0) or 30.0) - 5.0))
    answer = client.get("/verdicts", **params, last=max(0, args.last))
    while True:
        for record in answer["records"]:
            out.write((json.dumps(record, separators=(",", ":")) if structured else line(record)) + "\n")
        out.flush()
        if not args.follow:
            return
        try:
            answer, headers = client.request_with_headers("GET", "/verdicts",
                                                          params={**params, "after": answer["cursor"],
                                                                  "wait": wait})
        except Unavailable:
            time.sleep(RETRY_S)
            answer = {"records": [], "cursor": answer["cursor"]}
            continue
        if "retry-after" in headers and not answer["records"]:
            time.sleep(RETRY_S)
