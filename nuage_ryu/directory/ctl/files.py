"""The commands that work on files: ``apply`` and ``export`` (an enterprise's document), ``bulk`` (operations).

All three go through the bulk API, so a file is applied completely or not at all.
"""

from __future__ import annotations

import sys
from typing import TextIO

from nuage_ryu.directory.client import DirectoryClient
from nuage_ryu.directory.ctl import declarative, render
from nuage_ryu.directory.ctl.resolve import UsageError


def read_file(path: str) -> str:
    """The text of ``path`` ('-': standard input)."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _output(args) -> str:
    return getattr(args, "output", None) or "table"


def run_apply(args, client: DirectoryClient, out: TextIO) -> None:
    """``nuage-ctl apply -f FILE [--dry-run] [--prune]``."""
    doc = declarative.normalize(declarative.load(read_file(args.file), args.file))
    tree = declarative.fetch(client, doc["enterprise"])
    plan = declarative.plan(doc, tree, prune=args.prune)
    structured = _output(args) in ("json", "yaml")
    if not plan.operations:
        if structured:
            out.write(render.render_data({"enterprise": doc["enterprise"], "changes": [], "applied": False},
                                         _output(args)))
        else:
            out.write(f"enterprise {doc['enterprise']}: no changes (the directory already matches {args.file})\n")
        return
    # Sent even for a dry run: the directory validates every change as it would apply it.
    client.request("POST", "/bulk", {"operations": plan.operations}, params={"dry_run": "true"} if args.dry_run
                   else None)
    if structured:
        out.write(render.render_data({"enterprise": doc["enterprise"], "changes": plan.changes,
                                      "applied": not args.dry_run}, _output(args)))
        return
    for line in plan.changes:
        out.write(line + "\n")
    n = len(plan.changes)
    verb = "would be made (dry run: nothing changed)" if args.dry_run else "made"
    out.write(f"enterprise {doc['enterprise']}: {n} change{'s' if n != 1 else ''} {verb}\n")


def run_export(args, client: DirectoryClient, out: TextIO) -> None:
    """``nuage-ctl export ENTERPRISE [-o yaml|json] [-f FILE]``."""
    tree = declarative.fetch(client, args.enterprise)
    if tree is None:
        raise UsageError(f"no enterprise named {args.enterprise!r}")
    text = render.render_data(declarative.export(tree), "json" if _output(args) == "json" else "yaml")
    if args.file and args.file != "-":
        with open(args.file, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        out.write(text)


def run_bulk(args, client: DirectoryClient, out: TextIO) -> None:
    """``nuage-ctl bulk -f FILE [--dry-run]``: a file of bulk operations, as the API takes them."""
    data = declarative.load(read_file(args.file), args.file)
    body = {"operations": data} if isinstance(data, list) else data
    result = client.request("POST", "/bulk", body, params={"dry_run": "true"} if args.dry_run else None)
    if _output(args) in ("json", "yaml"):
        out.write(render.render_data(result, _output(args)))
        return
    rows = result.get("results", [])
    width = max((len(r.get("ref", "")) for r in rows), default=3)
    out.write(f"{'#':>5}  {'ACTION':<7} {'KIND':<12} {'REF':<{width}}  {'ID':<36}  NAME\n")
    for r in rows:
        name = (r.get("object") or {}).get("name", "")
        out.write(f"{r['index']:>5}  {r['action']:<7} {r['kind']:<12} {r.get('ref', ''):<{width}}  {r['id']:<36}  "
                  f"{name}\n")
    verb = "would be applied (dry run: nothing changed)" if result.get("dry_run") else "applied in one transaction"
    out.write(f"{len(rows)} operation{'s' if len(rows) != 1 else ''} {verb}\n")


COMMANDS = {"apply": run_apply, "export": run_export, "bulk": run_bulk}
