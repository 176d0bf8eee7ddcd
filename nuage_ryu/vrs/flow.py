"""The flow vocabulary: OpenFlow flows as plain, hashable data.

The compiler (``nuage_ryu.vrs.compile``) produces ``Flow`` objects; the sync
engine diffs them against what a bridge reports and turns the difference into
OpenFlow messages (``nuage_ryu.vrs.ofmsg``); the table simulator
(``nuage_ryu.vrs.simulator``) executes them. Nothing here does I/O.

Field names are os-ken's OXM/NXM match field names (``eth_src``, ``ipv4_dst``,
``tunnel_id``, ``tun_ipv4_dst``, ``reg0``..``reg7``, ``ct_state``, ``ct_zone``,
``conj_id``, ``arp_tpa`` ...). Values are ints, MAC strings
("aa:bb:cc:dd:ee:ff") or dotted IPv4 strings; a mask uses the same form.

A flow's OpenFlow identity is (table, priority, match): two flows with the same
identity are the same flow in the switch, whatever their actions or cookie.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

Value = int | str


class MatchField(NamedTuple):
    """One field of a match: ``value`` (and ``mask``) in the form of ``Value``.

    A named tuple rather than a dataclass: hashing and comparing happen in C. A flow's key is
    hashed and compared field by field in every dict the sync engine keeps (desired, installed,
    the read-back), ~1M times for a 100k-flow table; a dataclass's generated ``__hash__`` and
    ``__eq__`` are Python functions, ~3x slower there. Equality, ordering and hashing are the
    same as the dataclass's: by (name, value, mask).
    """

    name: str
    value: Value
    mask: Value | None = None


def match(**fields: Value | tuple[Value, Value]) -> tuple[MatchField, ...]:
    """Build a canonical match: ``match(in_port=3, ipv4_dst=("10.0.0.0", "255.255.255.0"))``."""
    out = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            out.append(MatchField(name, value[0], value[1]))
        else:
            out.append(MatchField(name, value))
    return tuple(sorted(out))


# ---- actions ---------------------------------------------------------------
# Actions are applied in order (OpenFlow "apply-actions"); a trailing Goto
# becomes the goto-table instruction. An empty action list drops the packet.


@dataclass(frozen=True)
class Output:
    port: int  # an OpenFlow port number; use OFPP_IN_PORT (0xfffffff8) to send back


@dataclass(frozen=True)
class Goto:
    table: int


@dataclass(frozen=True)
class Resubmit:
    """Nicira resubmit: run ``table`` now and come back (used to fan out)."""

    table: int
    in_port: int | None = None  # None: keep the packet's in_port


@dataclass(frozen=True)
class SetField:
    name: str
    value: Value


@dataclass(frozen=True)
class Move:
    """Nicira reg_move: copy ``n_bits`` bits from one field to another."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0


@dataclass(frozen=True)
class DecTtl:
    pass


@dataclass(frozen=True)
class Nat:
    """The ``nat`` of a conntrack action (ovs-actions(7)).

    ``kind`` None: apply the connection's existing translation (un-NAT a reply, re-NAT a
    continuation) and set up none. ``"src"``/``"dst"``: on commit, translate the source or the
    destination to ``ip`` (``ip_max``: a range) and, for TCP/UDP, the port to ``port``
    (``port_max``: a range). Canonical form (what OVS reports back): a ``*_max`` equal to its
    minimum is None.
    """

    kind: str | None = None
    ip: str | None = None
    ip_max: str | None = None
    port: int | None = None
    port_max: int | None = None


@dataclass(frozen=True)
class Ct:
    """Nicira conntrack action; ``table`` recirculates there after the lookup; ``nat``: see Nat."""

    zone: int = 0
    zone_src: str | None = None  # take the zone from this field (e.g. "reg6") instead
    commit: bool = False
    table: int | None = None
    nat: Nat | None = None


@dataclass(frozen=True)
class Conjunction:
    conj_id: int
    clause: int  # 1-based, as in ovs-ofctl
    n_clauses: int


@dataclass(frozen=True)
class Controller:
    max_len: int = 0xFFFF


@dataclass(frozen=True)
class MeteredController:
    """A copy of the packet (its first ``max_len`` bytes) to the controller through meter ``meter_id``.

    OVS's ``controller(max_len=N,meter_id=M)`` (NXAST_CONTROLLER2): the packet-in names the flow's
    cookie and table. Unlike ``Controller`` it is a sample, not a destination: the packet goes on
    with the next actions, and a copy over the meter's rate is dropped alone.
    """

    meter_id: int
    max_len: int = 128


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


Action = (
    Output | Goto | Resubmit | SetField | Move | DecTtl | Ct | Conjunction | Controller | MeteredController
    | PushVlan | PopVlan
)

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPP_NORMAL = 0xFFFFFFFA  # the switch's own L2 learning (br-phy keeps it)


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: tuple[MatchField, ...]
    actions: tuple[Action, ...] = ()
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0

    @property
    def key(self) -> tuple[int, int, tuple[MatchField, ...]]:
        """OpenFlow identity of this flow in a switch."""
        return (self.table, self.priority, self.match)

    def match_dict(self) -> dict[str, Value | tuple[Value, Value]]:
        return {m.name: (m.value if m.mask is None else (m.value, m.mask)) for m in self.match}


@dataclass
class FlowDiff:
    """What must change in a switch to go from one flow set to another."""

    add: list[Flow] = field(default_factory=list)  # new keys, or same key with new actions/cookie
    delete: list[Flow] = field(default_factory=list)  # keys that must go (strict delete)

    def __bool__(self) -> bool:
        return bool(self.add or self.delete)


def diff_flows(installed: dict, desired: dict) -> FlowDiff:
    """Diff two {key: Flow} maps. A changed flow is re-added (OFPFC_ADD replaces it in place)."""
    out = FlowDiff()
    for key, flow in desired.items():
        have = installed.get(key)
        if have is None or have.actions != flow.actions or have.cookie != flow.cookie:
            out.add.append(flow)
    for key, flow in installed.items():
        if key not in desired:
            out.delete.append(flow)
    return out


def index(flows) -> dict:
    """{key: Flow}; a later flow with the same key replaces an earlier one."""
    return {f.key: f for f in flows}
