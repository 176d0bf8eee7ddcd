"""nuage-ctl's entry point: parse, connect, run one command, map failures to exit codes.

Exit codes: 0 ok, 1 the API refused (message printed), 2 usage error, 3 cannot connect.
A closed stdout (``| head``) ends the command quietly with 0.
"""

from __future__ import annotations

import os
import sys

from nuage_ryu.closed_stdout import run_quietly
from nuage_ryu.directory.client import CannotConnect
from nuage_ryu.directory.ctl import context, errors
from nuage_ryu.directory.ctl.parser import build_parser
from nuage_ryu.directory.ctl.resolve import UsageError
from nuage_ryu.directory.errors import DirectoryError

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3


def run(args, parser, out=None) -> int:
    """Run parsed arguments (raises UsageError, DirectoryError, CannotConnect)."""
    out = out or sys.stdout
    if args.object == "db-cluster":
        from nuage_ryu.db import cluster

        return cluster.run_cli(args)
    if args.object == "db-relay":
        from nuage_ryu.db import relay

        return relay.run_cli(args)
    if args.object == "pki":
        from nuage_ryu.directory.ctl import pki_cli

        return pki_cli.run_cli(args, out)
    if args.object == "completion":
        from nuage_ryu.directory.ctl import completion

        out.write(completion.script(args.shell, parser))
        return EXIT_OK
    if args.object == "man":
        from nuage_ryu.directory.ctl import manpage

        out.write(manpage.manpage(parser))
        return EXIT_OK
    if args.object == "config":
        context.run_config(args, out)
        return EXIT_OK
    if args.object == "audit":
        from nuage_ryu.directory.ctl import audit

        audit.run(args, out)
        return EXIT_OK
    from nuage_ryu.directory.ctl import files
    from nuage_ryu.directory.ctl.commands import ObjectCommand

    conn = context.resolve_connection(args, os.environ)
    client = conn.client(args.timeout)
    try:
        if args.object in files.COMMANDS:
            files.COMMANDS[args.object](args, client, out)
        elif args.object == "trace":
            from nuage_ryu.directory.ctl import trace

            trace.run(args, client, out)
        else:
            ObjectCommand(args, client, out).run()
    except CannotConnect as exc:
        raise CannotConnect(f"{exc} (from {conn.sources['endpoint']}; 'nuage-ctl config show' tells where "
                            "nuage-ctl looks)") from None
    finally:
        client.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    try:
        return run(args, parser)
    except UsageError as exc:
        print(f"nuage-ctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DirectoryError as exc:
        print(f"nuage-ctl: error: {errors.describe(exc)}", file=sys.stderr)
        return EXIT_API
    except CannotConnect as exc:
        print(f"nuage-ctl: {exc}", file=sys.stderr)
        return EXIT_CONNECT


def console_main() -> None:
    """The ``nuage-ctl`` console script."""
    sys.exit(run_quietly(main))
