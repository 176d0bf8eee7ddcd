"""Explain a packet on the real bridge: the frame a vport sends, ``ofproto/trace`` read back.

The directory's trace (``POST /api/v1/trace``, docs/policy.md "Explain a packet") asks the agent
of the source vport's host to run the same packet through ``ovs-appctl ofproto/trace`` on its
br-int. This module is the pure part of that: it builds the frame the vport's stack would send
(its MAC and IP; to the peer's MAC inside its subnet, else to the domain's router MAC; a TCP SYN;
the VLAN of a bare-metal vport on its gateway port), writes it in ofproto/trace's flow syntax,
reads the trace's text back (the flows hit per table with their cookies, the OpenFlow outputs,
the tunnel metadata) and says what the datapath decided: the policy flow that decided (its
cookie names the rule, or the domain's default action) and where the packet left.

Pure: no I/O. The agent runs the command (``nuage_ryu/agent/tracer.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.cookies import CookieKind, cookie_for, kind_of
from nuage_ryu.vrs.reference import ICMP, TCP, UDP, Packet
from nuage_ryu.vrs.view import HostView, VPort

SYN = 0x02
TTL = 64
# What conntrack says of the traced packet when the trace reaches a ct() recirculation: a new
# connection (a trace explains the first packet; established traffic passes without the rules).
CT_NEXT = "trk,new"
POLICY_TABLES = (P.INGRESS_POLICY.number, P.EGRESS_POLICY.number)

_HIT_RE = re.compile(r"^\s*(\d+)\.\s+(?:(.*?),\s+)?priority (\d+)(?:,\s+cookie (0x[0-9a-f]+))?\s*$")
_OUTPUT_RE = re.compile(r"^\s+output:(\d+|IN_PORT)\s*$")
_TUN_DST_RE = re.compile(r"TUN_IPV4_DST\[[^\]]*\] is now ([0-9.]+)")
_TUN_ID_RE = re.compile(r"TUN_ID\[[^\]]*\] is now (0x[0-9a-f]+)")
_DATAPATH_RE = re.compile(r"^Datapath actions: (.*)$", re.M)
_NOTE_RE = re.compile(r"^\s*>> (.*)$", re.M)


class TraceError(ValueError):
    """The packet cannot be traced on this bridge (the vport is not plugged here, ...)."""


@dataclass(frozen=True)
class FlowHit:
    """One flow the packet matched: its table, priority, cookie, match and the actions listed under it."""

    table: int
    priority: int
    cookie: int
    match: str
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfprotoTrace:
    """What ``ofproto/trace`` printed, as data (all recirculation passes, in order)."""

    hits: tuple[FlowHit, ...]
    outputs: tuple[int | str, ...]  # OpenFlow output ports ("IN_PORT" for output:IN_PORT)
    tun_dst: str | None
    tun_id: int | None
    datapath_actions: str  # of the last pass
    notes: tuple[str, ...]  # ">> ..." lines (e.g. "native tunnel routing failed")


def frame_for(view: HostView, vport_id: str, pkt: Packet) -> tuple[dict, int]:
    """(frame, in_port) of ``pkt`` as the local vport ``vport_id`` sends it (simulator field names)."""
    sender = view.vports.get(vport_id)
    if sender is None:
        raise TraceError(f"vport {vport_id} is not in this host's view")
    local = view.local_port(sender)
    if local is None:
        raise TraceError(f"vport {vport_id} has no port on {view.host_name}'s bridge (not plugged yet?)")
    domain = view.domains[sender.domain_id]
    peer = next((v for v in view.vports.values() if v.domain_id == sender.domain_id and v.ip == pkt.dst_ip), None)
    dst_mac = peer.mac if peer is not None and peer.subnet_id == sender.subnet_id else domain.router_mac
    frame = {"eth_src": sender.mac, "eth_dst": dst_mac, "eth_type": P.ETH_TYPE_IPV4, "ipv4_src": pkt.src_ip,
             "ipv4_dst": pkt.dst_ip, "ip_proto": pkt.protocol, "nw_ttl": TTL}
    if sender.vlan is not None:
        frame["vlan_vid"] = P.OFPVID_PRESENT | sender.vlan
    if pkt.protocol == TCP:
        frame.update(tcp_src=pkt.src_port, tcp_dst=pkt.dst_port, tcp_flags=SYN)
    elif pkt.protocol == UDP:
        frame.update(udp_src=pkt.src_port, udp_dst=pkt.dst_port)
    elif pkt.protocol == ICMP:
        frame.update(icmpv4_type=pkt.icmp_type, icmpv4_code=pkt.icmp_code)
    return frame, local.ofport


_OFCTL_NAMES = {"eth_src": "dl_src", "eth_dst": "dl_dst", "ipv4_src": "nw_src", "ipv4_dst": "nw_dst",
                "ip_proto": "nw_proto", "nw_ttl": "nw_ttl", "tcp_src": "tcp_src", "tcp_dst": "tcp_dst",
                "tcp_flags": "tcp_flags", "udp_src": "udp_src", "udp_dst": "udp_dst", "icmpv4_type": "icmp_type",
                "icmpv4_code": "icmp_code", "eth_type": "dl_type"}
_HEX_FIELDS = ("eth_type", "tcp_flags")


def ofctl_flow(frame: dict, in_port: int) -> str:
    """The frame in ``ovs-ofctl``/``ofproto/trace`` flow syntax."""
    parts = [f"in_port={in_port}"]
    for key, value in frame.items():
        if key == "vlan_vid":
            parts.append(f"dl_vlan={value & 0xFFF}")
        elif key in _OFCTL_NAMES:
            parts.append(f"{_OFCTL_NAMES[key]}={value:#x}" if key in _HEX_FIELDS else f"{_OFCTL_NAMES[key]}={value}")
    return ",".join(parts)


_NOT_ACTIONS = ("->", ">>", "Final flow", "Megaflow", "Datapath actions", "===", "Flow:", "bridge(", "---",
                "thaw", "Resuming", "recirc(")


_BRIDGE_RE = re.compile(r'^\s*bridge\("([^"]+)"\)')


def parse(text: str, bridge: str = "br-int") -> OfprotoTrace:
    """Read ``ovs-appctl ofproto/trace`` output (OVS 2.x/3.x text format) for ``bridge``'s flows (a
    tunnelled packet continues through the underlay bridge: its flows are not ours)."""
    hits: list[FlowHit] = []
    in_bridge = True
    outputs: list[int | str] = []
    current: tuple[re.Match, list[str]] | None = None

    def close() -> None:
        if current is not None:
            m, actions = current
            hits.append(FlowHit(int(m.group(1)), int(m.group(3)), int(m.group(4) or "0", 16), m.group(2) or "",
                                tuple(actions)))

    for line in text.splitlines():
        stripped = line.strip()
        b = _BRIDGE_RE.match(line)
        if b:
            close()
            current = None
            in_bridge = b.group(1) == bridge
            continue
        if not in_bridge:
            continue
        m = _HIT_RE.match(line)
        if m:
            close()
            current = (m, [])
            continue
        out = _OUTPUT_RE.match(line)
        if out:
            outputs.append(out.group(1) if out.group(1) == "IN_PORT" else int(out.group(1)))
        if not stripped or stripped.startswith(("Final flow", "===")):
            close()
            current = None
        elif current is not None and not stripped.startswith(_NOT_ACTIONS):
            current[1].append(stripped)
    close()
    datapath = _DATAPATH_RE.findall(text)
    tun_dst = _TUN_DST_RE.findall(text)
    tun_id = _TUN_ID_RE.findall(text)
    return OfprotoTrace(tuple(hits), tuple(outputs), tun_dst[-1] if tun_dst else None,
                        int(tun_id[-1], 16) if tun_id else None, datapath[-1].strip() if datapath else "",
                        tuple(_NOTE_RE.findall(text)))


def _policy_decision(view: HostView, hit: FlowHit) -> dict:
    """What a flow of a policy table stands for: a rule's verdict flow, or a domain's default action."""
    kind = kind_of(hit.cookie)
    out = {"table": hit.table, "table_name": P.table_of(hit.table).name, "cookie": f"{hit.cookie:#x}",
           "priority": hit.priority, "rule": None, "default_action": False, "action": None}
    if kind == CookieKind.ACL_RULE:
        for rule in view.acl_rules.values():
            if cookie_for(CookieKind.ACL_RULE, rule.id) == hit.cookie:
                out.update(rule=rule.id, action=rule.action)
                break
    elif kind == CookieKind.ACL_DEFAULT:
        for domain in view.domains.values():
            if cookie_for(CookieKind.ACL_DEFAULT, domain.id) == hit.cookie:
                out.update(default_action=True, action=domain.default_action, domain=domain.id)
                break
    return out


def _table_name(number: int) -> str:
    table = P.TABLE_BY_NUMBER.get(number)
    return table.name if table is not None else str(number)


def explain(view: HostView, result: OfprotoTrace, in_port: int) -> dict:
    """The agent's answer: verdict, deciding policy flow, tables visited, where the packet left.

    ``verdict`` is ``allow`` when the trace outputs the packet at the OpenFlow level (to a vport or
    into the tunnel) and the datapath really sends it, ``deny`` otherwise: also when the flows output
    it but the datapath drops it (e.g. "native tunnel routing failed": no underlay route or neighbour
    for the remote host; ``notes`` says so). ``policy`` is the last flow hit in a policy table
    (None when the packet never got there, e.g. a spoofed source dropped by CLASSIFY).
    """
    policy_hits = [h for h in result.hits if h.table in POLICY_TABLES]
    output = None
    if result.outputs:
        port = result.outputs[-1]
        port = in_port if port == "IN_PORT" else port
        output = {"port": port}
        if port == view.tunnel_port_ofport:
            output["tunnel"] = result.tun_dst
            output["vni"] = result.tun_id
            host = next((h.name for h in view.hosts.values() if h.tunnel_ip == result.tun_dst), None)
            if host:
                output["host"] = host
        else:
            vport = _vport_at(view, port, result)
            if vport is not None:
                output["vport"] = vport.id
    return {
        "host": view.host_name,
        "verdict": "allow" if result.outputs and datapath_sends(result.datapath_actions) else "deny",
        "policy": _policy_decision(view, policy_hits[-1]) if policy_hits else None,
        "tables": [{"table": h.table, "name": _table_name(h.table), "priority": h.priority,
                    "cookie": f"{h.cookie:#x}"} for h in result.hits],
        "output": output,
        "datapath_actions": result.datapath_actions,
        "notes": list(result.notes),
    }


def datapath_sends(actions: str) -> bool:
    """Do the datapath actions of the last pass send the packet out of a port? (A top-level action
    that is a bare datapath port number: "3", or "...,tnl_push(...),1".) "drop", or only rewrites
    and conntrack, mean the packet goes nowhere."""
    depth, token, tokens = 0, "", []
    for ch in actions:
        if ch == "," and depth == 0:
            tokens.append(token.strip())
            token = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        token += ch
    tokens.append(token.strip())
    return any(t.isdigit() for t in tokens)


def _vport_at(view: HostView, port: int, result: OfprotoTrace) -> VPort | None:
    """The local vport behind an OpenFlow port (several tagged vports may share a gateway port: the
    one whose logical port the OUTPUT table matched)."""
    candidates = [view.vports[lp.vport_id] for lp in view.local_ports.values()
                  if lp.ofport == port and lp.vport_id in view.vports]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    matched = " ".join(h.match for h in result.hits if h.table == P.OUTPUT.number)
    for vport in candidates:
        logical = view.logical_port(vport)
        if logical is not None and f"reg7={logical:#x}" in matched:
            return vport
    return candidates[0]
