"""The option reference (docs/config.md), generated from the declarations in ``config.py``.

``config.py`` is the one source of every option; this renders each group as a table, so the
reference cannot drift from the code (a unit test fails when it is stale). Regenerate with::

    python -m nuage_ryu.config_doc            # rewrite docs/config.md
    python -m nuage_ryu.config_doc --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nuage_ryu import config

COMMAND = "python -m nuage_ryu.config_doc"
DEFAULT_DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _type(opt) -> str:
    name = type(opt).__name__.removesuffix("Opt").lower() or "str"
    return {"multistr": "string, repeatable", "str": "string"}.get(name, name)


def _default(opt) -> str:
    value = opt.default
    if value in (None, "", []):
        return "(empty)"
    if isinstance(value, list):
        value = ",".join(value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render() -> str:
    """docs/config.md: one table per section."""
    lines = [
        "# Configuration reference",
        "",
        f"Generated from `nuage_ryu/config.py` by `{COMMAND}`; do not edit by hand.",
        "Every option goes in an INI file given with `nuage-ryu-manager --config-file FILE`; an unknown",
        "section or option is an error (a typo is never ignored). The `[DEFAULT]` options are also",
        "command-line options (`--state-dir`, `--role`). os-ken's own options (`ofp_listen_host`,",
        "`ofp_tcp_listen_port`, logging) are in [launcher.md](launcher.md).",
        "",
    ]
    for group, opts in config.GROUPS.items():
        lines += [f"## [{group}]", "", "| option | type | default | meaning |", "|---|---|---|---|"]
        for opt in opts:
            choices = f" One of: {', '.join(opt.type.choices)}." if getattr(opt.type, "choices", None) else ""
            lines.append(f"| `{opt.dest}` | {_type(opt)} | {_default(opt)} | {_cell(opt.help)}{choices} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description="Regenerate docs/config.md from config.py.")
    p.add_argument("doc", nargs="?", default=str(DEFAULT_DOC))
    p.add_argument("--check", action="store_true", help="exit 1 if the doc is stale; change nothing")
    args = p.parse_args(argv)
    path = Path(args.doc)
    current = path.read_text() if path.exists() else ""
    wanted = render()
    if args.check:
        if current != wanted:
            print(f"{path} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
