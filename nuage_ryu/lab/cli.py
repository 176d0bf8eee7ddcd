"""``nuage-lab``: build, inspect, use and remove the multi-host lab (see docs/lab.md).

    nuage-lab up --hosts N [--state-dir DIR] [--prefix NAME] [--controller TARGET ...] [--outside]
    nuage-lab status [--json]
    nuage-lab exec HOST -- CMD ...
    nuage-lab down

Errors are one line on stderr and exit status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

DEFAULT_STATE_DIR_ENV = "NUAGE_LAB_STATE_DIR"


def build_parser(exec_command_after_dashes: bool = False) -> argparse.ArgumentParser:
    """The argument parser; with ``exec_command_after_dashes`` exec's CMD was split off at '--'."""
    from nuage_ryu.lab.lab import DEFAULT_PREFIX, DEFAULT_STATE_DIR

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=os.environ.get(DEFAULT_STATE_DIR_ENV, DEFAULT_STATE_DIR),
                        help=f"where the lab records itself and keeps each host's OVS files "
                             f"(default ${DEFAULT_STATE_DIR_ENV} or {DEFAULT_STATE_DIR})")
    common.add_argument("--prefix", default=DEFAULT_PREFIX,
                        help=f"name prefix of the lab's network namespaces (default {DEFAULT_PREFIX})")

    parser = argparse.ArgumentParser(prog="nuage-lab", description="Multi-host nuage-ryu lab on one machine.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", parents=[common], help="build the lab")
    up.add_argument("--hosts", type=_host_count, required=True, metavar="N", help="number of hosts")
    up.add_argument("--controller", action="append", metavar="TARGET",
                    help="OpenFlow controller target of every br-int (repeatable; "
                         "default tcp:127.0.0.1:6653, the agent inside each host)")
    up.add_argument("--outside", action="store_true",
                    help="also build an outside world: a router on the underlay (192.0.2.1) and an "
                         "'internet' server 203.0.113.80 behind it (nodes rtr and inet)")

    status = commands.add_parser("status", parents=[common], help="show hosts, bridges, ports, processes")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    run = commands.add_parser("exec", parents=[common],
                              help="run a command on a host (h1, ...), on ctl, or on rtr / inet (--outside)")
    run.add_argument("host", metavar="HOST")
    if not exec_command_after_dashes:
        run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")

    commands.add_parser("down", parents=[common], help="remove everything the lab created")
    return parser


def _host_count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nuage-lab`` console script (``status --json | head`` ends quietly)."""
    from nuage_ryu.closed_stdout import run_quietly

    return run_quietly(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    # python-ovs imports eventlet when it is installed, which warns on import.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after the first "--" is the command of 'exec', so that options
    # may follow HOST ('exec h1 --state-dir D -- CMD') without being taken as CMD.
    command = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = build_parser(exec_command_after_dashes=command is not None)
    args = parser.parse_args(argv)
    if command is not None:
        if args.command != "exec":
            parser.error(f"'--' is only used with 'exec', not with '{args.command}'")
        args.argv = command

    from nuage_ryu.hostovs.process import OvsError
    from nuage_ryu.lab.lab import Lab, LabError

    try:
        lab = Lab(args.state_dir, args.prefix)
        if args.command == "up":
            return _up(lab, args)
        if args.command == "status":
            return _status(lab, args)
        if args.command == "exec":
            return _exec(lab, args)
        if args.command == "down":
            return _down(lab)
    except Exception as exc:
        # The OVSDB layer is imported lazily (slow import), so its error type is looked up, not imported.
        host_layer = sys.modules.get("nuage_ryu.hostovs.host")
        if not isinstance(exc, (LabError, OvsError)) and not (
                host_layer is not None and isinstance(exc, host_layer.HostOVSError)):
            raise
        print(f"nuage-lab: error: {(str(exc).splitlines() or [type(exc).__name__])[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nuage-lab: interrupted", file=sys.stderr)
        return 130
    return 2


def _up(lab, args) -> int:
    started = time.monotonic()
    lab.up(args.hosts, args.controller, outside=args.outside)
    print(f"lab up in {time.monotonic() - started:.1f}s: {len(lab.hosts)} host(s), prefix {lab.prefix}, "
          f"state {lab.state_dir}")
    for host in lab.hosts:
        print(f"  {host.name:<4} netns {host.netns:<16} underlay {host.underlay_ip:<12} "
              f"ovsdb {host.db_remote}")
    ctl = lab.controller_node
    print(f"  {ctl.name:<4} netns {ctl.netns:<16} underlay {ctl.underlay_ip}")
    _print_outside(lab.outside)
    return 0


def _print_outside(world: dict | None) -> None:
    if not world:
        return
    router, internet = world["router"], world["internet"]
    print(f"  {router['name']:<4} netns {router['netns']:<16} underlay {router['underlay_ip']:<12} "
          f"outside {router['outside_ip']}")
    print(f"  {internet['name']:<4} netns {internet['netns']:<16} outside  {internet['ip']}")


def _status(lab, args) -> int:
    report = lab.status()
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    print(f"lab {report['prefix']} ({report['status']}) in {report['state_dir']}, "
          f"controllers {', '.join(report['controllers'])}")
    underlay, ctl = report["underlay"], report["controller_node"]
    print(f"underlay {underlay['subnet']} on {underlay['bridge']} in {underlay['netns']}"
          f"{'' if underlay['exists'] else ' (MISSING)'}")
    print(f"ctl  netns {ctl['netns']} underlay {ctl['ip']}{'' if ctl['exists'] else ' (MISSING)'}")
    if report.get("outside"):
        world = report["outside"]
        print(f"outside {world['subnet']}: router {world['router']['netns']} {world['router']['underlay_ip']}/"
              f"{world['router']['outside_ip']}, internet {world['internet']['netns']} {world['internet']['ip']}"
              f"{'' if world['exists'] else ' (MISSING)'}")
    for host in report["hosts"]:
        print(f"{host['name']:<4} netns {host['netns']}{'' if host['netns_exists'] else ' (MISSING)'} "
              f"underlay {host['underlay_ip']} dpid {host['datapath_id']}")
        processes = ", ".join(f"{daemon} {info['pid']} {'alive' if info['alive'] else 'DEAD'}"
                              for daemon, info in host["processes"].items())
        print(f"     processes: {processes}")
        if "error" in host["bridges"]:
            print(f"     ovsdb: {host['bridges']['error']}")
            continue
        for name, bridge in host["bridges"].items():
            ports = " ".join(f"{port}:{ofport if ofport is not None else '-'}"
                             for port, ofport in sorted(bridge["ports"].items()))
            controllers = ", ".join(f"{c['target']}{' (connected)' if c['is_connected'] else ''}"
                                    for c in bridge["controllers"])
            print(f"     {name}: {bridge['datapath_type']} fail_mode={bridge['fail_mode']}"
                  f"{' controller ' + controllers if controllers else ''}")
            print(f"       ports {ports}")
            if "tunnel" in bridge:
                tunnel = " ".join(f"{k}={v}" for k, v in sorted(bridge["tunnel"].items()))
                print(f"       tunnel {tunnel}")
            for vport in bridge.get("vports", []):
                print(f"       vport {vport['vport_id']} on {vport['ifname']} (ofport {vport['ofport']}, "
                      f"container {vport['container_id'] or '-'})")
    return 0


def _exec(lab, args) -> int:
    from nuage_ryu.lab.lab import LabError

    argv = args.argv
    if not argv:
        raise LabError("no command given (usage: nuage-lab exec HOST -- CMD ...)")
    netns_name = lab.node_netns(args.host)
    env = lab.env_for(args.host)
    sys.stdout.flush()
    # Replace this process: the command gets the terminal, and its exit status is ours.
    try:
        os.execvpe("ip", ["ip", "netns", "exec", netns_name, *argv], env)
    except FileNotFoundError:
        raise LabError("the 'ip' command (iproute2) is not installed") from None
    return 1  # not reached


def _down(lab) -> int:
    if not lab.is_recorded:
        print(f"no lab recorded in {lab.state_dir}; nothing to do")
        lab.down()  # still drops a stale lock file / empty state dir
        return 0
    started = time.monotonic()
    removed = lab.down()
    print(f"lab down in {time.monotonic() - started:.1f}s: removed {len(removed)} item(s)")
    for item in removed:
        print(f"  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
