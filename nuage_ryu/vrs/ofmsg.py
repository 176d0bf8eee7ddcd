"""Flows <-> OpenFlow 1.4 messages (os-ken objects) and ovs-ofctl text.

Three translations of the flow vocabulary (``nuage_ryu.vrs.flow``):

* ``flow_mod`` / ``delete_strict``: os-ken ``OFPFlowMod`` objects (OXM + NXM
  match fields, Nicira actions). This is the reference encoding; the fast path
  (``nuage_ryu.vrs.ofwire``) produces the same bytes and is tested against it.
* ``to_ofctl``: the ``ovs-ofctl`` text form of a flow (``ovs-ofctl --bundle
  add-flows`` in the benchmark, debugging, docs).
* ``from_flow_stats``: an os-ken ``OFPFlowStats`` entry back into a ``Flow``,
  canonical (see ``canonical_flow``) so that it compares equal to the desired
  flow it was installed from.

Conventions the encoding relies on (and the round-trip test on a real OVS checks):

* a trailing ``Goto`` is the goto-table instruction; other actions form one
  apply-actions instruction; no actions means drop;
* ``Conjunction.clause`` is 1-based as in ovs-ofctl (the wire carries k-1);
* ``Ct.zone_src`` takes the zone from bits 0..15 of that field;
* ``Resubmit(in_port=None)`` keeps the packet's in_port (OFPP_IN_PORT);
* ``Output(OFPP_CONTROLLER)`` and ``Controller()`` are the same action.
"""

from __future__ import annotations

from nuage_ryu.framework import ofproto_v1_4, ofproto_v1_4_parser
from nuage_ryu.vrs import flow as F
from nuage_ryu.vrs import ofwire
from nuage_ryu.vrs.ofwire import RawAction, WireError, canonical_flow

__all__ = [
    "DATAPATH",
    "WireError",
    "canonical_flow",
    "delete_strict",
    "flow_mod",
    "from_flow_stats",
    "to_ofctl",
    "ofctl_match",
    "ofctl_actions",
]

ofp = ofproto_v1_4
parser = ofproto_v1_4_parser


class _OfpOnly:
    """The part of an os-ken Datapath that message constructors need (no socket)."""

    ofproto = ofp
    ofproto_parser = parser


DATAPATH = _OfpOnly()


def match_obj(flow: F.Flow):
    """os-ken OFPMatch of the flow's match."""
    return parser.OFPMatch(**flow.match_dict())


def instructions(flow: F.Flow) -> list:
    actions = flow.actions
    goto = None
    if actions and isinstance(actions[-1], F.Goto):
        goto = actions[-1].table
        actions = actions[:-1]
    if any(isinstance(a, F.Goto) for a in actions):
        raise WireError("Goto must be the last action of a flow")
    out = []
    if actions:
        out.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                [ofwire.oskens_action(a) for a in actions]))
    if goto is not None:
        out.append(parser.OFPInstructionGotoTable(goto))
    return out


def flow_mod(flow: F.Flow, datapath=DATAPATH):
    """OFPFlowMod (OFPFC_ADD) installing ``flow``; replaces a flow with the same key."""
    return parser.OFPFlowMod(datapath, cookie=flow.cookie, cookie_mask=0, table_id=flow.table,
                             command=ofp.OFPFC_ADD, idle_timeout=flow.idle_timeout,
                             hard_timeout=flow.hard_timeout, priority=flow.priority,
                             buffer_id=ofp.OFP_NO_BUFFER, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             flags=0, match=match_obj(flow), instructions=instructions(flow))


def delete_strict(flow: F.Flow, datapath=DATAPATH):
    """OFPFlowMod (OFPFC_DELETE_STRICT) removing exactly the flow with ``flow``'s key."""
    return parser.OFPFlowMod(datapath, cookie=0, cookie_mask=0, table_id=flow.table,
                             command=ofp.OFPFC_DELETE_STRICT, priority=flow.priority,
                             buffer_id=ofp.OFP_NO_BUFFER, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             flags=0, match=match_obj(flow), instructions=[])


def delete_by_cookie(cookie: int, datapath=DATAPATH):
    """OFPFlowMod (OFPFC_DELETE) removing every flow, in any table, whose cookie is exactly ``cookie``."""
    return parser.OFPFlowMod(datapath, cookie=cookie, cookie_mask=ofwire.COOKIE_MASK_FULL,
                             table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE, priority=0,
                             buffer_id=ofp.OFP_NO_BUFFER, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             flags=0, match=parser.OFPMatch(), instructions=[])


def serialize(msg, xid: int = 0) -> bytes:
    """Wire bytes of an os-ken message with the given xid."""
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


# ---- back from the switch ------------------------------------------------------

def from_flow_stats(stat) -> F.Flow:
    """A canonical Flow from an os-ken OFPFlowStats entry (the slow, reference path)."""
    match = []
    for name, uv in stat.match.items():
        if isinstance(uv, tuple):
            match.append(F.MatchField(name, uv[0], uv[1]))
        else:
            match.append(F.MatchField(name, uv))
    actions: list = []
    goto = None
    for inst in stat.instructions:
        if isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS:
            for act in inst.actions:
                if isinstance(act, parser.NXActionCT) and act.actions:
                    actions.append(_ct_with_nat(act))
                    continue
                buf = bytearray()
                act.serialize(buf, 0)
                actions.extend(ofwire.decode_actions(bytes(buf), 0, len(buf)))
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = F.Goto(inst.table_id)
        else:
            buf = bytearray()
            inst.serialize(buf, 0)
            actions.append(RawAction(bytes(buf)))
    if goto is not None:
        actions.append(goto)
    flow = F.Flow(stat.table_id, stat.priority, tuple(sorted(match)), tuple(actions), stat.cookie,
                stat.idle_timeout, stat.hard_timeout)
    return canonical_flow(flow)


def _ct_with_nat(act) -> object:
    """An os-ken NXActionCT with nested actions -> Ct with Nat (os-ken cannot re-serialise a nat
    correctly, see ``ofwire._nat_bytes``), or RawAction for anything outside the vocabulary."""
    base = parser.NXActionCT(flags=act.flags, zone_src=act.zone_src, zone_ofs_nbits=act.zone_ofs_nbits,
                             recirc_table=act.recirc_table, alg=act.alg, actions=[])
    buf = bytearray()
    base.serialize(buf, 0)
    ct = ofwire.decode_actions(bytes(buf), 0, len(buf))[0]
    nested = act.actions
    if not isinstance(ct, F.Ct) or len(nested) != 1 or not isinstance(nested[0], parser.NXActionNAT):
        return RawAction(bytes(buf))
    nat = nested[0]
    kind = {0: None, 1: "src", 2: "dst"}.get(nat.flags, "other")
    if kind == "other":
        return RawAction(bytes(buf))
    value = ofwire.canonical_nat(F.Nat(kind, nat.range_ipv4_min or None, nat.range_ipv4_max or None,
                                     nat.range_proto_min, nat.range_proto_max))
    return F.Ct(ct.zone, ct.zone_src, ct.commit, ct.table, value)


# ---- ovs-ofctl text ----------------------------------------------------------------


def ofctl_nat(nat: F.Nat) -> str:
    """``nat``, ``nat(src=192.0.2.11:61000-65535)``, ``nat(dst=10.0.1.10:80)`` as ovs-ofctl writes it."""
    if nat.kind is None:
        return "nat"
    where = nat.ip or ""
    if nat.ip_max:
        where += f"-{nat.ip_max}"
    if nat.port is not None:
        where += f":{nat.port}" + (f"-{nat.port_max}" if nat.port_max is not None else "")
    return f"nat({nat.kind}={where})"

# os-ken field name -> ovs-ofctl field name, where they differ.
OFCTL_FIELD = {
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "eth_type": "dl_type",
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "ip_proto": "nw_proto",
    "ip_dscp": "ip_dscp",
    "icmpv4_type": "icmp_type",
    "icmpv4_code": "icmp_code",
    "tunnel_id": "tun_id",
    "tun_ipv4_src": "tun_src",
    "tun_ipv4_dst": "tun_dst",
    "ipv6_nd_target": "nd_target",
    "ipv6_nd_sll": "nd_sll",
    "ipv6_nd_tll": "nd_tll",
}

_PORT_NAMES = {F.OFPP_IN_PORT: "in_port", F.OFPP_CONTROLLER: "controller", F.OFPP_LOCAL: "local",
               F.OFPP_NORMAL: "normal"}


def _ofctl_value(name: str, value, masked: bool = False) -> str:
    # Decimal: ovs-ofctl takes port numbers (in_port) only in decimal; hex for masks and flag fields.
    if isinstance(value, int):
        return f"{value:#x}" if masked or name == "ct_state" else str(value)
    return str(value)


def ofctl_match(match: tuple[F.MatchField, ...]) -> str:
    parts = []
    for m in match:
        name = OFCTL_FIELD.get(m.name, m.name)
        if m.mask is None:
            parts.append(f"{name}={_ofctl_value(m.name, m.value)}")
        else:
            parts.append(f"{name}={_ofctl_value(m.name, m.value, True)}/{_ofctl_value(m.name, m.mask, True)}")
    return ",".join(parts)


def _nxm_ref(name: str, ofs: int, n_bits: int) -> str:
    return f"{OFCTL_FIELD.get(name, name)}[{ofs}..{ofs + n_bits - 1}]"


def ofctl_action(action) -> str:
    cls = type(action)
    if cls is F.Output:
        return f"output:{_PORT_NAMES.get(action.port, action.port)}"
    if cls is F.Goto:
        return f"goto_table:{action.table}"
    if cls is F.SetField:
        value = _ofctl_value(action.name, action.value)
        return f"set_field:{value}->{OFCTL_FIELD.get(action.name, action.name)}"
    if cls is F.Resubmit:
        port = "" if action.in_port is None else _PORT_NAMES.get(action.in_port, action.in_port)
        return f"resubmit({port},{action.table})"
    if cls is F.Move:
        return f"move:{_nxm_ref(action.src, action.src_ofs, action.n_bits)}->" \
               f"{_nxm_ref(action.dst, action.dst_ofs, action.n_bits)}"
    if cls is F.DecTtl:
        return "dec_ttl"
    if cls is F.Ct:
        args = []
        if action.commit:
            args.append("commit")
        if action.zone_src:
            args.append(f"zone={_nxm_ref(action.zone_src, 0, 16)}")
        elif action.zone:
            args.append(f"zone={action.zone}")
        if action.table is not None:
            args.append(f"table={action.table}")
        if action.nat is not None:
            args.append(ofctl_nat(action.nat))
        return f"ct({','.join(args)})"
    if cls is F.Conjunction:
        return f"conjunction({action.conj_id},{action.clause}/{action.n_clauses})"
    if cls is F.Controller:
        return f"controller(max_len={action.max_len})"
    if cls is F.MeteredController:
        return f"controller(max_len={action.max_len},meter_id={action.meter_id})"
    if cls is F.PushVlan:
        return f"push_vlan:{action.ethertype:#x}"
    if cls is F.PopVlan:
        return "pop_vlan"
    raise WireError(f"no ovs-ofctl form for {action!r}")


def ofctl_actions(actions: tuple) -> str:
    return ",".join(ofctl_action(a) for a in actions) if actions else "drop"


def to_ofctl(flow: F.Flow) -> str:
    """One ``ovs-ofctl add-flows`` line: ``table=10,priority=100,cookie=0x1,in_port=3,actions=...``."""
    flow = canonical_flow(flow)  # e.g. Output(CONTROLLER) carries max_len 65509 on the wire
    head = f"table={flow.table},priority={flow.priority},cookie={flow.cookie:#x}"
    if flow.idle_timeout:
        head += f",idle_timeout={flow.idle_timeout}"
    if flow.hard_timeout:
        head += f",hard_timeout={flow.hard_timeout}"
    match = ofctl_match(flow.match)
    if match:
        head += "," + match
    return f"{head},actions={ofctl_actions(flow.actions)}"
