"""``nuage-ctl trace FROM TO``: explain a packet (``POST /api/v1/trace``, docs/policy.md).

FROM and TO are vports (name, id prefix, path) or addresses of the source's domain; the server
resolves them, so the command sends them as typed. The table output is a few labelled lines:
the verdict, what decided it, the path with the tables visited, and the datapath check.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from nuage_ryu.directory.ctl.render import render_data

PROTOCOLS = ("tcp", "udp", "icmp", "any")


def add_parser(objs, formatter, epilog) -> argparse.ArgumentParser:
    """The ``trace`` command."""
    tp = objs.add_parser(
        "trace", help="explain a packet: which rule decides it, its path, and whether the datapath agrees",
        formatter_class=formatter,
        description="Explain a packet from FROM to TO: the rule that decides it (or the domain's default "
                    "action), the hosts and OpenFlow tables it crosses, and whether the flows installed on the "
                    "source's host agree (the agent runs it through ofproto/trace).",
        epilog=epilog(["nuage-ctl trace web1 app1 --port 8080",
                       "nuage-ctl trace acme/prod/web/web/web1 10.10.3.5 --protocol tcp --port 5432 -o json",
                       "nuage-ctl trace web1 db1 --protocol icmp --icmp-type 8",
                       "nuage-ctl trace 10.10.1.7 app1 --domain acme/prod --protocol udp --port 53"]))
    tp.add_argument("source", metavar="FROM", help="a vport (name, path, id prefix) or an IPv4 address of the "
                                                   "source's domain (e.g. web1)")
    tp.add_argument("destination", metavar="TO", help="the same forms (e.g. app1 or 10.10.2.4)")
    tp.add_argument("--protocol", metavar="P", help="tcp, udp, icmp, any or an IP protocol number "
                                                   "(default: tcp with --port, else icmp; e.g. --protocol udp)")
    tp.add_argument("--port", type=int, metavar="N", help="destination port for tcp/udp (e.g. --port 8080)")
    tp.add_argument("--src-port", type=int, metavar="N", help="source port (default 40000; e.g. --src-port 5555)")
    tp.add_argument("--icmp-type", type=int, metavar="T", help="ICMP type (default 8, echo; e.g. --icmp-type 13)")
    tp.add_argument("--icmp-code", type=int, metavar="C", help="ICMP code (default 0; e.g. --icmp-code 0)")
    tp.add_argument("--domain", metavar="D", help="the domain, when FROM is an address of several "
                                                  "(e.g. --domain acme/prod)")
    tp.add_argument("--datapath", dest="datapath", action="store_true", default=True,
                    help="ask the source host's agent to check the datapath (the default)")
    tp.add_argument("--no-datapath", dest="datapath", action="store_false",
                    help="answer from the policy only; do not ask the source host's agent")
    tp.add_argument("--trace-timeout", type=float, metavar="S",
                    help="seconds to wait for the source host's ofproto/trace (default 5; e.g. --trace-timeout 2)")
    return tp


def body_of(args) -> dict:
    """The request body for the parsed arguments."""
    body: dict = {"from": args.source, "to": args.destination}
    if args.protocol is not None:
        body["protocol"] = int(args.protocol) if args.protocol.isdigit() else args.protocol
    for key, value in (("port", args.port), ("src_port", args.src_port), ("icmp_type", args.icmp_type),
                       ("icmp_code", args.icmp_code), ("domain", args.domain), ("timeout", args.trace_timeout)):
        if value is not None:
            body[key] = value
    if not args.datapath:
        body["datapath"] = False
    return body


def _end(end: dict, wide: bool) -> str:
    if "name" not in end:
        return end["ip"]
    vid = end["vport"] if wide else end["vport"][:8]
    return f"{end['name']} ({end['ip']}, {end.get('host') or 'no host'}{', ' + vid if wide else ''})"


def _service(packet: dict) -> str:
    proto = packet["protocol"]
    if "dst_port" in packet:
        return f"{proto} {packet['src_port']} -> {packet['dst_port']}"
    if "icmp_type" in packet:
        return f"icmp type {packet['icmp_type']} code {packet['icmp_code']}"
    return proto


def _decided(answer: dict, wide: bool) -> str:
    rule = answer.get("rule")
    if rule is None:
        return f"the default action ({answer['domain']['default_action']}) of domain {answer['domain']['name']}: " \
               "no rule matches"
    rid = rule["id"] if wide else rule["id"][:8]
    name = f"{rule['name']} ({rid})" if rule.get("name") else rid
    state = "stateful" if rule.get("stateful") else "stateless"
    service = rule["protocol"] + (f"/{rule['dst_ports']}" if rule.get("dst_ports") else "")
    return (f"rule {name}, priority {rule['priority']}: {_endpoint(rule['source'])} -> "
            f"{_endpoint(rule['destination'])} {service} {rule['action']}, {state}")


def _endpoint(ep: dict) -> str:
    if ep["type"] == "any":
        return "any"
    if ep["type"] == "cidr":
        return f"cidr:{ep['cidr']}"
    short = {"policygroup": "pg"}.get(ep["type"], ep["type"])
    return f"{short}:{ep.get('name') or ep['id'][:8]}"


def _hop(hop: dict) -> str:
    tables = " ".join(f"{t['name']}({t['table']})" for t in hop["tables"])
    source = "ofproto/trace" if hop.get("observed") else "pipeline"
    return f"{hop.get('host') or '-'} {hop['role']}: {tables}  [{source}]"


def lines(answer: dict, wide: bool = False) -> list[tuple[str, str]]:
    """(label, text) lines of the table output."""
    domain = answer["domain"]
    out = [("packet", f"{_end(answer['from'], wide)} -> {_end(answer['to'], wide)}"),
           ("service", f"{_service(answer['packet'])} in domain {domain['enterprise']}/{domain['name']}"),
           ("verdict", answer["verdict"]),
           ("decided by", _decided(answer, wide))]
    if answer["policy"]["verdict"] != answer["verdict"]:
        out.append(("policy", f"{answer['policy']['verdict']} (but: {answer['to'].get('forwarding')})"))
    for i, hop in enumerate(answer["path"]["hops"]):
        out.append(("path" if i == 0 else "", _hop(hop)))
    detail = answer.get("datapath_detail") or {}
    status = answer["datapath"]
    if status == "unavailable":
        out.append(("datapath", f"unavailable: {detail.get('reason', '')}"))
    else:
        seconds = f", {detail['seconds']:g} s" if "seconds" in detail else ""
        out.append(("datapath", f"{status} ({detail.get('host')}{seconds})"))
        for diff in detail.get("differences", []):
            out.append(("", f"- {diff}"))
        observed = detail.get("observed") or {}
        if wide and observed:
            out.append(("flow", observed.get("flow", "")))
            out.append(("actions", observed.get("datapath_actions", "")))
    for note in answer.get("notes", []):
        out.append(("note", note))
    return out


def run(args, client, out: TextIO) -> None:
    """Send the trace and print the answer (table, wide, json or yaml)."""
    answer = client.post("/trace", body_of(args))
    output = getattr(args, "output", None) or "table"
    if output in ("json", "yaml"):
        out.write(render_data(answer, output))
        return
    rows = lines(answer, wide=output == "wide")
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        out.write(f"{label:<{width}}  {text}\n" if label else f"{'':<{width}}  {text}\n")
