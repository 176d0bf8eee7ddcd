"""docs/pipeline.md's tables of registers and tables, generated from ``pipeline.py``.

The declarations in ``pipeline.py`` are the one source: this module renders them as Markdown and puts
the result between two marker comments in the doc, so the doc cannot drift from the code (a unit test
fails when it is stale). Regenerate with::

    python -m nuage_ryu.vrs.pipeline_doc            # rewrite docs/pipeline.md
    python -m nuage_ryu.vrs.pipeline_doc --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nuage_ryu.vrs import pipeline as P

COMMAND = "python -m nuage_ryu.vrs.pipeline_doc"
BEGIN = f"<!-- BEGIN GENERATED from nuage_ryu/vrs/pipeline.py by `{COMMAND}`; do not edit by hand -->"
END = "<!-- END GENERATED -->"
DEFAULT_DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _register_names() -> dict[str, str]:
    """Register field -> the name it has in pipeline.py (REG_DOMAIN, ...)."""
    return {value.field: name for name, value in vars(P).items()
            if isinstance(value, P.Register) and name.startswith("REG_")}


def render() -> str:
    """The generated section: a table of the registers and one of the tables, as Markdown."""
    names = _register_names()
    lines = [
        "### Registers",
        "",
        "| register | name in code | holds |",
        "|---|---|---|",
        *(f"| {r.field} | `{names[r.field]}` | {_cell(r.purpose)} |" for r in P.REGISTERS),
        "",
        "### Tables",
        "",
        "| # | table | purpose | next tables | match fields |",
        "|---|---|---|---|---|",
    ]
    for t in sorted(P.TABLES, key=lambda t: t.number):
        nexts = ", ".join(t.next_tables) or "–"
        fields = ", ".join(f"`{f}`" for f in sorted(t.match_fields))
        lines.append(f"| {t.number} | **{t.name}** | {_cell(t.purpose)} | {nexts} | {fields} |")
    return "\n".join(lines) + "\n"


def updated(doc: str) -> str:
    """``doc`` with the text between the markers replaced by ``render()`` (ValueError without markers)."""
    head, sep, rest = doc.partition(BEGIN)
    _old, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"markers not found: {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n{render()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the doc's generated section, or with --check report whether it is stale."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("doc", nargs="?", type=Path, default=DEFAULT_DOC, help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if the doc is stale")
    args = parser.parse_args(argv)
    text = args.doc.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{args.doc} is stale; run: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.doc.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
