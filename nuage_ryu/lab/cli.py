"""``nuage-lab``: build, inspect, use and remove the multi-host lab (see docs/lab.md).

    nuage-lab up --hosts N [--state-dir DIR] [--prefix NAME] [--controller TARGET ...] [--outside]
                 [--plane [--no-tls]]
    nuage-lab plane [--no-tls]
    nuage-lab attach HOST NAME --subnet SUBNET [--policygroup PG ...]
    nuage-lab detach NAME
    nuage-lab status [--json]
    nuage-lab exec HOST|CONTAINER -- CMD ...
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

from nuage_ryu import __version__

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
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tls_option = argparse.ArgumentParser(add_help=False)
    tls_option.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True,
                            help="control plane: TLS between the nodes (the default, as on real hosts); "
                                 "--no-tls: plain TCP and unix sockets")

    up = commands.add_parser("up", parents=[common, tls_option], help="build the lab")
    up.add_argument("--hosts", type=_host_count, required=True, metavar="N", help="number of hosts")
    up.add_argument("--controller", action="append", metavar="TARGET",
                    help="OpenFlow controller target of every br-int (repeatable; "
                         "default tcp:127.0.0.1:6653, the agent inside each host)")
    up.add_argument("--outside", action="store_true",
                    help="also build an outside world: a router on the underlay (192.0.2.1) and an "
                         "'internet' server 203.0.113.80 behind it (nodes rtr and inet)")
    up.add_argument("--plane", action="store_true",
                    help="also start the control plane: the directory on ctl and a VRS agent per host "
                         "(left running until 'down'; needs the default --controller)")

    commands.add_parser("plane", parents=[common, tls_option],
                        help="start the control plane on a lab that is up (directory on ctl, an agent per host)")

    attach = commands.add_parser(
        "attach", parents=[common], help="make a container on a host, through the real nuage-cni plugin",
        description="Create a container namespace on HOST and attach it with nuage-cni (CNI ADD, as a "
                    "container runtime on that host does). Example: nuage-lab attach h1 web1 "
                    "--subnet acme/prod/web/front --policygroup web")
    attach.add_argument("host", metavar="HOST", help="the lab host (h1, h2, ...)")
    attach.add_argument("name", metavar="NAME", help="container name (also for exec and detach)")
    attach.add_argument("--subnet", required=True,
                        help="the subnet, as nuage-ctl takes it: a path (acme/prod/web/front), a unique "
                             "name or an id prefix")
    attach.add_argument("--policygroup", action="append", default=[], metavar="PG",
                        help="policy group of the container (repeatable; CNI_ARGS NUAGE_POLICYGROUPS)")
    attach.add_argument("--json", action="store_true", help="print the container's record as JSON")

    detach = commands.add_parser("detach", parents=[common], help="remove a container (CNI DEL)")
    detach.add_argument("name", metavar="NAME", help="the container's name, as given to attach")

    status = commands.add_parser("status", parents=[common], help="show hosts, bridges, ports, processes")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    run = commands.add_parser("exec", parents=[common],
                              help="run a command on a host (h1, ...), on ctl, on rtr / inet (--outside) "
                                   "or in a container made by attach")
    run.add_argument("host", metavar="HOST")
    if not exec_command_after_dashes:
        run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")

    commands.add_parser("down", parents=[common],
                        help="remove everything the lab created (containers, control plane, hosts)")
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
        if args.command == "plane":
            return _plane(lab, args.tls)
        if args.command == "attach":
            return _attach(lab, args)
        if args.command == "detach":
            return _detach(lab, args)
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
    from nuage_ryu.lab.lab import LabError

    if args.plane and args.controller:
        raise LabError("--plane starts an agent inside each host: leave --controller at its default")
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
    if args.plane:
        try:
            return _plane(lab, args.tls)
        except BaseException:
            lab.down()  # 'up --plane' is one step: a plane that cannot start takes the lab with it
            raise
    return 0


def _plane(lab, tls: bool) -> int:
    from nuage_ryu.lab import standing

    started = time.monotonic()
    plane = standing.start_plane(lab, tls=tls)
    pids = standing.recorded_pids(lab)
    print(f"control plane up in {time.monotonic() - started:.1f}s ({'TLS' if tls else 'no TLS'}): "
          + ", ".join(f"{name} {pid}" for name, pid in sorted(pids.items())))
    for line in standing.next_steps(lab, plane):
        print(line)
    return 0


def _attach(lab, args) -> int:
    from nuage_ryu.lab import containers, standing
    from nuage_ryu.lab.lab import LabError

    plane = standing.recorded_plane(lab)
    if plane is None:
        raise LabError(f"the lab in {lab.state_dir} runs no control plane (nuage-lab plane, or up --plane)")
    started = time.monotonic()
    record = containers.attach(lab, plane, args.host, args.name, args.subnet, args.policygroup)
    if args.json:
        json.dump(record, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    groups = ",".join(record["policygroups"]) or "-"
    print(f"{record['name']} on {record['host']}: {record['address']} mac {record['mac']} subnet "
          f"{record['subnet']} groups {groups} (netns {record['netns']}, "
          f"{time.monotonic() - started:.1f}s)")
    return 0


def _detach(lab, args) -> int:
    from nuage_ryu.lab import containers

    for item in containers.detach(lab, args.name):
        print(f"  {item}")
    return 0


def _print_outside(world: dict | None) -> None:
    if not world:
        return
    router, internet = world["router"], world["internet"]
    print(f"  {router['name']:<4} netns {router['netns']:<16} underlay {router['underlay_ip']:<12} "
          f"outside {router['outside_ip']}")
    print(f"  {internet['name']:<4} netns {internet['netns']:<16} outside  {internet['ip']}")


def _status(lab, args) -> int:
    from nuage_ryu.lab.plane_status import plane_status

    report = lab.status()
    report["plane"] = plane_status(lab, report)
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
    _print_plane(report["plane"])
    return 0


def _yes(flag: bool, yes: str = "connected", no: str = "NOT CONNECTED") -> str:
    return yes if flag else no


def _print_plane(plane: dict | None) -> None:
    if plane is None:
        print("control plane: not started by nuage-lab (nuage-lab plane)")
        return
    processes = ", ".join(f"{name} {p['pid']} {'alive' if p['alive'] else 'DEAD'}"
                          for name, p in plane["processes"].items())
    directory = plane["directory"]
    print(f"control plane ({'TLS' if plane['tls'] else 'no TLS'}): {processes}")
    print(f"  directory API unix:{plane['api_socket']} "
          f"{'answers' if directory['answers'] else 'DOES NOT ANSWER: ' + str(directory['error'])}; "
          f"nuage-ctl context {plane['context']}")
    print(f"  {'host':<4} {'br-int<->agent':<15} {'agent':<22} {'agent<->directory':<18} "
          f"vports: directory (up) / agent / ovs")
    for host in plane["hosts"]:
        agent = host["agent"]
        if not agent["alive"]:
            agent_text = "DEAD"
        elif not agent.get("reachable"):
            agent_text = "socket DOES NOT ANSWER"
        else:
            agent_text = "ready" if agent["ready"] else "NOT READY"
        agent_text = f"{agent['pid']} {agent_text}"
        seen = host["directory"]
        link = _yes(seen["connected"]) if seen["registered"] else "NOT REGISTERED"
        v = host["vports"]
        agent_count = "-" if v["agent"] is None else v["agent"]
        print(f"  {host['name']:<4} {_yes(host['openflow']['connected']):<15} {agent_text:<22} {link:<18} "
              f"{v['directory']} ({v['up']}) / {agent_count} / {v['ovs']}")
        for problem in agent.get("problems", []) or ([agent["error"]] if agent.get("error") else []):
            print(f"       agent: {problem}")
    for c in plane["containers"]:
        print(f"  container {c['name']} on {c['host']}: {c.get('address') or '(attaching)'} "
              f"subnet {c['subnet'] or '-'} groups {','.join(c['policygroups']) or '-'} netns {c['netns']}")


def _exec(lab, args) -> int:
    from nuage_ryu.lab import containers
    from nuage_ryu.lab.lab import LabError

    argv = args.argv
    if not argv:
        raise LabError("no command given (usage: nuage-lab exec HOST -- CMD ...)")
    netns_name = containers.netns_of(lab, args.host) if lab.is_recorded else None
    if netns_name is not None:
        env = {**os.environ, "NUAGE_LAB_NODE": args.host}
    else:
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
    from nuage_ryu.lab import containers, standing

    started = time.monotonic()
    # Containers first (their CNI DEL needs the agents), then the plane by its pids, then the lab.
    removed = containers.detach_all(lab) + standing.stop_plane(lab)
    if not lab.is_recorded:
        for item in removed:
            print(f"  {item}")
        print(f"no lab recorded in {lab.state_dir}; nothing to do")
        lab.down()  # still drops a stale lock file / empty state dir
        return 0
    removed += lab.down()
    print(f"lab down in {time.monotonic() - started:.1f}s: removed {len(removed)} item(s)")
    for item in removed:
        print(f"  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
