"""nuage-ctl pieces that need no server: argument parsing, endpoints, tables."""

import io

import pytest

from nuage_ryu.directory import ctl
from nuage_ryu.directory.ctl import parser, render, resolve


def test_parser_accepts_documented_commands():
    p = parser.build_parser()
    args = p.parse_args(["subnet", "create", "--zone", "web", "front", "10.0.1.0/24"])
    assert (args.object, args.action, args.zone, args.name, args.cidr) == ("subnet", "create", "web", "front",
                                                                          "10.0.1.0/24")
    args = p.parse_args(["--json", "vport", "list", "--subnet", "front"])
    assert args.output == "json" and args.subnet == "front"  # --json is -o json
    args = p.parse_args(["db-cluster", "create", "--members", "3", "--dir", "/tmp/x"])
    assert (args.members, args.dir) == (3, "/tmp/x")


def test_usage_errors_exit_2(capsys):
    assert ctl.main(["subnet", "create"]) == 2
    assert ctl.main(["nonsense"]) == 2
    assert ctl.main(["--help"]) == 0


def test_endpoint_syntax():
    resolver = resolve.Resolver(client=None, scope={})
    assert resolve.parse_endpoint("any", resolver.resolve) == {"type": "any"}
    assert resolve.parse_endpoint("cidr:10.0.0.0/8", resolver.resolve) == {"type": "cidr", "cidr": "10.0.0.0/8"}
    uid = "5a0e1d6a-2d70-4d53-9d2c-b6e9a1d7c001"
    assert resolve.parse_endpoint(f"pg:{uid}", resolver.resolve) == {"type": "policygroup", "id": uid}
    with pytest.raises(resolve.UsageError):
        resolve.parse_endpoint("group:x", resolver.resolve)


def test_counters_and_warnings_are_readable():
    counters = {"packets": 15, "bytes": 1500, "by_host": {"node-1": {"packets": 10, "bytes": 1000},
                                                          "node-2": {"packets": 5, "bytes": 500}}}
    assert render.fmt(counters) == "15 packets 1500 bytes (node-1=10/1000 node-2=5/500)"
    assert render.fmt({"packets": 0, "bytes": 0, "by_host": {}}) == "0 packets 0 bytes"
    warnings = [{"code": "shadowed", "message": "rule X can never match", "rule": "x", "by": "y"}]
    assert render.fmt(warnings) == "shadowed: rule X can never match"
    assert render.fmt([]) == "-"


def test_table_is_aligned_and_formats_values():
    out = io.StringIO()
    rows = [{"id": "a", "name": "short", "stateful": True, "source": {"type": "any"}, "dst_ports": None},
            {"id": "bbbb", "name": "a-much-longer-name", "stateful": False,
             "source": {"type": "cidr", "cidr": "10.0.0.0/8"}, "dst_ports": "80"}]
    render.print_table(rows, ["id", "name", "stateful", "source", "dst_ports"], out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATEFUL", "SOURCE", "DST_PORTS"]
    assert lines[1].split() == ["a", "short", "yes", "any", "-"]
    assert lines[2].split() == ["bbbb", "a-much-longer-name", "no", "cidr:10.0.0.0/8", "80"]
    assert len({line.index(col) for line, col in zip(lines, ["STATEFUL", "yes", "no"], strict=True)}) == 1
