"""The shape shared by nuage-ctl's database commands (``db-cluster``, ``db-relay``).

Each is one subparser with an ``examples:`` epilog and required actions; most actions take only ``--dir``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

RAW = argparse.RawDescriptionHelpFormatter


def example_lines(command: str) -> Callable[..., str]:
    """A function turning argument lines into an ``examples:`` epilog of ``nuage-ctl COMMAND ...``."""
    def examples(*lines: str) -> str:
        return "examples:\n" + "\n".join(f"  nuage-ctl {command} {line}" for line in lines)
    return examples


def add_command(subparsers, command: str, help: str, description: str, examples: tuple[str, ...]):
    """Register ``command`` with its actions subparsers; returns them (``dest="action"``)."""
    p = subparsers.add_parser(command, help=help, description=description, formatter_class=RAW,
                              epilog=example_lines(command)(*examples))
    return p.add_subparsers(dest="action", metavar="ACTION", required=True, title="actions")


def add_dir_actions(actions, command: str, helps: dict[str, str], example_dir: str, dir_help: str) -> None:
    """One action per ``helps`` entry (name -> help) whose only argument is ``--dir``."""
    examples = example_lines(command)
    for name, text in helps.items():
        sp = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", formatter_class=RAW,
                                epilog=examples(f"{name} --dir {example_dir}"))
        sp.add_argument("--dir", required=True, metavar="DIR", help=dir_help)
