"""The static skeleton every bridge has: table-miss drops, conntrack verdicts, canary, tunnel output."""

from __future__ import annotations

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs.compile.base import REG_DOMAIN, REG_DST_HOST, REG_DST_PORT, Owner, OwnerKind, OwnerTag, match
from nuage_ryu.vrs.cookies import CANARY_COOKIE, STATIC_COOKIE
from nuage_ryu.vrs.flow import Flow, Goto, Move, Output
from nuage_ryu.vrs.view import HostView

_TABLES_WITH_MISS_DROP = (
    P.CLASSIFY, P.ARP_RESPONDER, P.INGRESS_CT, P.L3_LOOKUP, P.OVERLAY_LOOKUP, P.EGRESS_CT, P.OUTPUT,
    P.POLICY_DROP,
)

# ct_state matches: (value, mask). "+trk+est" must also be "-inv" to pass.
CT_ESTABLISHED = (P.CT_TRK | P.CT_EST, P.CT_TRK | P.CT_EST | P.CT_INV)
CT_RELATED = (P.CT_TRK | P.CT_REL, P.CT_TRK | P.CT_REL | P.CT_INV)


def compile_static(view: HostView) -> list[Flow]:
    """The skeleton every bridge has: table-miss drops, conntrack verdicts, canary, tunnel output."""
    c = STATIC_COOKIE
    flows = [Flow(t.number, P.PRIO_TABLE_MISS, (), (), c) for t in _TABLES_WITH_MISS_DROP]
    for ct_table, accepted, rules in (
        (P.INGRESS_CT_STATE, P.L3_LOOKUP, P.INGRESS_POLICY),
        (P.EGRESS_CT_STATE, P.OUTPUT, P.EGRESS_POLICY),
    ):
        # Continuations and replies of a connection a stateful allow committed pass without
        # re-evaluating the rules (a rule change never cuts a connection it still allows).
        # Everything else - +new, and +inv too - goes to the rules: OVS conntrack marks every
        # packet of an uncommitted TCP/ICMP exchange after the first one +inv (a SYN-ACK or an
        # echo reply it never saw the start of), and those are exactly what stateless rules
        # must be able to allow. ct(commit) never commits a +inv packet.
        flows += [
            Flow(ct_table.number, P.PRIO_CT_ESTABLISHED, match(ct_state=CT_ESTABLISHED),
                 (Goto(accepted.number),), c),
            Flow(ct_table.number, P.PRIO_CT_ESTABLISHED, match(ct_state=CT_RELATED),
                 (Goto(accepted.number),), c),
            Flow(ct_table.number, P.PRIO_CT_NEW, (), (Goto(rules.number),), c),
        ]
    flows.append(Flow(P.CANARY.number, P.PRIO_CANARY, (), (), CANARY_COOKIE))
    tun = view.tunnel_port_ofport
    if tun is not None:
        # One flow for every remote destination: L3_LOOKUP left the VNI in REG_DOMAIN and the
        # remote host's tunnel IP in REG_DST_HOST.
        flows.append(Flow(P.OUTPUT.number, P.PRIO_OUTPUT, match(**{REG_DST_PORT: tun}), (
            Move(REG_DOMAIN, "tunnel_id", P.VNI_BITS),
            Move(REG_DST_HOST, "tun_ipv4_dst", 32),
            Output(tun),
        ), c))
    return flows


def _static_inputs(view: HostView, present: frozenset[str]) -> dict[Owner, object]:
    return {(OwnerTag.STATIC,): view.tunnel_port_ofport}


STATIC_OWNERS = OwnerKind((OwnerTag.STATIC,), _static_inputs, lambda view, owner: compile_static(view),
                          lambda old, new, delta: [(OwnerTag.STATIC,)],  # one owner: always compared
                          lambda view, present, owners: _static_inputs(view, present))
