"""The br-int pipeline as data: tables, registers and priorities, declared once.

Every other module (compiler, policy, simulator, docs) refers to these names;
no table number or priority literal appears anywhere else. Like Faucet's
``faucet_pipeline.py``, each table declares the match fields it accepts so a
test can refuse a flow that uses a field its table was not designed for.

Paths through the pipeline::

    local vport  -> CLASSIFY -> ARP_RESPONDER                       (ARP: answered, never forwarded)
    local vport  -> CLASSIFY -> INGRESS_CT -> INGRESS_CT_STATE [-> INGRESS_POLICY] -> L3_LOOKUP -> OUTPUT
    VXLAN tunnel -> CLASSIFY -> OVERLAY_LOOKUP -> EGRESS_CT -> EGRESS_CT_STATE [-> EGRESS_POLICY] -> OUTPUT
    to outside   -> ... -> L3_LOOKUP -> EXT_EGRESS -> EXT_EGRESS_STATE -> EXT_PAT -> EXT_TO_UPLINK -> patch
    from outside -> CLASSIFY -> EXT_INGRESS -> EXT_INGRESS_STATE -> EXT_INGRESS_DOMAIN -> EXT_DELIVER
                 -> EGRESS_CT -> EGRESS_CT_STATE [-> EGRESS_POLICY] -> OUTPUT      (docs/external.md)

Policy is decided once per host the packet crosses: the sending host runs the
rules in INGRESS_POLICY; the receiving host runs them again in EGRESS_POLICY
for traffic that came over the overlay (it has no other way to learn the
verdict, VXLAN carries only the VNI), which also lets each host commit the
connection in its own conntrack so that replies are recognised on both ends.
Local-to-local traffic is decided at INGRESS_POLICY only.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- registers ---------------------------------------------------------------
# Registers survive goto, resubmit and ct() recirculation, so each stage can
# read what an earlier one learned without re-matching it.


@dataclass(frozen=True)
class Register:
    field: str  # the OXM/NXM field name
    purpose: str


REG_DOMAIN = Register(
    "reg6",
    "the domain of the packet: its VNI (24 bits). Set by CLASSIFY (from the vport or from `tunnel_id`); every "
    "later stage matches it, which is what keeps overlapping tenants apart.")
REG_SRC_PORT = Register(
    "reg5",
    "logical port of the sending local vport (its ofport; for a VLAN-tagged bare-metal vport also its VLAN in "
    "bits 16..27); 0 for packets from the tunnel. Policy source clause on the sending side.")
REG_DST_PORT = Register(
    "reg7",
    "where the packet leaves: a local vport's logical port, or the VXLAN port. Written by L3_LOOKUP / "
    "OVERLAY_LOOKUP; policy destination clause on the receiving side.")
REG_DST_HOST = Register(
    "reg4", "tunnel IPv4 (as an int) of the destination's host, when REG_DST_PORT is the VXLAN port.")

REGISTERS = (REG_DOMAIN, REG_SRC_PORT, REG_DST_PORT, REG_DST_HOST)

VNI_BITS = 24  # VXLAN network identifier width: what REG_DOMAIN copies into tunnel_id

# ---- conntrack ct_state bits (ovs-fields(7)) ----------------------------------
CT_NEW = 0x01
CT_EST = 0x02
CT_REL = 0x04
CT_RPL = 0x08
CT_INV = 0x10
CT_TRK = 0x20

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2
IP_PROTO_ICMP = 1
IP_PROTO_TCP = 6
IP_PROTO_UDP = 17
DHCP_CLIENT_PORT = 68
DHCP_SERVER_PORT = 67
OFPVID_PRESENT = 0x1000  # OpenFlow 1.3 vlan_vid: set when the frame carries a tag


# ---- tables --------------------------------------------------------------------

_L2 = frozenset({"in_port", "eth_src", "eth_dst", "eth_type", "vlan_vid"})
_REGS = frozenset(r.field for r in REGISTERS)
_IP = frozenset({"ipv4_src", "ipv4_dst", "ip_proto"})
_L4 = frozenset({"tcp_src", "tcp_dst", "udp_src", "udp_dst", "icmpv4_type", "icmpv4_code"})
_ARP = frozenset({"arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"})
_POLICY = _REGS | _IP | _L4 | frozenset({"eth_type", "ct_state", "conj_id"})


@dataclass(frozen=True)
class Table:
    name: str
    number: int
    purpose: str
    match_fields: frozenset[str]
    next_tables: tuple[str, ...] = ()  # where its flows may go (documentation and a test check)


CLASSIFY = Table(
    "CLASSIFY", 0,
    "Who sent this? Local vport by in_port (anti-spoofing: only its own MAC/IP, ARP only with its own "
    "sha/spa, DHCP to the controller) or the VXLAN port by VNI, tunnel source and source IP (a remote "
    "vport's address only from the host it lives on) -> REG_DOMAIN; the external patch port (outside "
    "world: IPv4, ARP for a floating IP). Everything else dropped.",
    _L2 | _IP | _ARP | frozenset({"tunnel_id", "tun_ipv4_src", "udp_src", "udp_dst"}),
    ("ARP_RESPONDER", "INGRESS_CT", "OVERLAY_LOOKUP", "EXT_INGRESS"),
)
ARP_RESPONDER = Table(
    "ARP_RESPONDER", 10,
    "Answer ARP requests locally for every vport IP of the domain (with its MAC) and every subnet "
    "gateway (with the domain's router MAC). Nothing else: ARP is never flooded or tunnelled.",
    _REGS | _ARP | frozenset({"eth_type"}),
)
INGRESS_CT = Table(
    "INGRESS_CT", 20, "Sender side: send IPv4 through conntrack in the domain's zone.",
    _REGS | frozenset({"eth_type"}), ("INGRESS_CT_STATE",),
)
INGRESS_CT_STATE = Table(
    "INGRESS_CT_STATE", 21,
    "Sender side, after conntrack: established/related (not invalid) continue to L3_LOOKUP; "
    "anything else (new, or invalid: a packet of an uncommitted exchange) goes to the rules.",
    _REGS | frozenset({"ct_state"}), ("L3_LOOKUP", "INGRESS_POLICY"),
)
INGRESS_POLICY = Table(
    "INGRESS_POLICY", 22,
    "Sender side ACL for new connections: the domain's rules as conjunctive matches (first match by "
    "rule priority decides; stateful allows commit), then the domain's default action.",
    _POLICY, ("L3_LOOKUP", "POLICY_DROP"),
)
L3_LOOKUP = Table(
    "L3_LOOKUP", 30,
    "Where is the destination? Same subnet: L2 delivery to its MAC. Other subnet of the domain: "
    "distributed routing on the first hop (eth_src=router MAC, eth_dst=its MAC, dec_ttl). Writes "
    "REG_DST_PORT (+REG_DST_HOST for a remote vport). With external connectivity: an unknown address of "
    "the domain's own subnets is dropped, anything else routed to EXT_EGRESS.",
    _REGS | _IP | frozenset({"eth_type", "eth_dst"}), ("OUTPUT", "EXT_EGRESS"),
)
OVERLAY_LOOKUP = Table(
    "OVERLAY_LOOKUP", 31,
    "Traffic from the tunnel: only to a local vport of the VNI's domain, by its MAC and IP.",
    _REGS | _IP | frozenset({"eth_type", "eth_dst"}), ("EGRESS_CT",),
)
EGRESS_CT = Table(
    "EGRESS_CT", 40, "Receiver side: send IPv4 from the overlay through conntrack in the domain's zone.",
    _REGS | frozenset({"eth_type"}), ("EGRESS_CT_STATE",),
)
EGRESS_CT_STATE = Table(
    "EGRESS_CT_STATE", 41, "Receiver side, after conntrack: like INGRESS_CT_STATE.",
    _REGS | frozenset({"ct_state"}), ("OUTPUT", "EGRESS_POLICY"),
)
EGRESS_POLICY = Table(
    "EGRESS_POLICY", 42,
    "Receiver side ACL for new connections from the overlay: the same rules as INGRESS_POLICY, seen "
    "from the destination.",
    _POLICY, ("OUTPUT", "POLICY_DROP"),
)
OUTPUT = Table(
    "OUTPUT", 50,
    "Leave the bridge: a local vport by REG_DST_PORT, or the flow-based VXLAN port with "
    "tunnel_id=REG_DOMAIN and tun_ipv4_dst=REG_DST_HOST (in_port: back out of a shared gateway port).",
    _REGS | frozenset({"in_port"}),
)
# -- external connectivity (docs/external.md): egress NAT, floating IPs, published ports --------------
_CT = frozenset({"ct_state"})
EXT_INGRESS = Table(
    "EXT_INGRESS", 32,
    "From the outside (external patch port): a floating IP is rewritten to its vport's address "
    "(stateless 1:1); anything else goes through the external NAT zone (un-SNAT of a reply, re-DNAT of "
    "a published port's connection).",
    _IP | frozenset({"eth_type"}), ("EXT_DELIVER",),
)
EXT_INGRESS_STATE = Table(
    "EXT_INGRESS_STATE", 33,
    "After the external zone: a known connection is told its domain by its transit address; a new one "
    "to a published host port is DNATed to the domain's transit address. Anything else dropped.",
    _REGS | _IP | _L4 | _CT | frozenset({"eth_type"}), ("EXT_INGRESS_DOMAIN",),
)
EXT_INGRESS_DOMAIN = Table(
    "EXT_INGRESS_DOMAIN", 34,
    "The domain's NAT zone: un-NAT (transit -> the vport's private address) or, for a new published-port "
    "connection, DNAT to the vport's address and container port.",
    _REGS | _IP | _L4 | _CT | frozenset({"eth_type"}), ("EXT_DELIVER",),
)
EXT_DELIVER = Table(
    "EXT_DELIVER", 35,
    "To a local vport by its private address: routed (router MAC, dec_ttl), REG_DST_PORT, then the "
    "receive-side policy (EGRESS_CT): the rules decide new inbound connections.",
    _REGS | _IP | frozenset({"eth_type"}), ("EGRESS_CT",),
)
EXT_EGRESS = Table(
    "EXT_EGRESS", 60,
    "To the outside, after the sender-side policy: look the packet up in its domain's NAT zone (an "
    "existing translation is applied).",
    _REGS | frozenset({"eth_type"}), ("EXT_EGRESS_STATE",),
)
EXT_EGRESS_STATE = Table(
    "EXT_EGRESS_STATE", 61,
    "Continuation/reply of a NATed connection -> EXT_PAT; a vport with a floating IP -> source rewritten "
    "(1:1) -> EXT_TO_UPLINK; a new connection of a domain with egress_nat -> SNAT to the domain's transit "
    "address; anything else (egress off) dropped.",
    _REGS | _IP | _CT | frozenset({"eth_type"}), ("EXT_PAT", "EXT_TO_UPLINK"),
)
EXT_PAT = Table(
    "EXT_PAT", 62,
    "The host's external NAT zone: transit address -> the host's address and a port of the NAT range.",
    frozenset({"eth_type"}), ("EXT_TO_UPLINK",),
)
EXT_TO_UPLINK = Table(
    "EXT_TO_UPLINK", 63,
    "Hand the packet to the physical bridge, addressed to the host's own stack, which routes it out.",
    frozenset({"eth_type"}),
)
POLICY_DROP = Table(
    "POLICY_DROP", 70,
    "Where the policy tables send what they deny (a deny rule, a default deny): one drop flow per local "
    "vport, by REG_SRC_PORT (it sent the packet: INGRESS_POLICY) or REG_DST_PORT (the packet was for it: "
    "EGRESS_POLICY), carrying the vport's cookie, so that its flow statistics are the vport's policy drops "
    "(agent metric nuage_vport_policy_drops_total). Anything else: the table-miss drop.",
    _REGS,
)
CANARY = Table(
    "CANARY", 99,
    "Holds one well-known flow that no packet reaches; if it is missing the switch lost its flows "
    "(OVS restart) and the sync engine must re-push everything.",
    frozenset({"reg0"}),
)

TABLES: tuple[Table, ...] = (
    CLASSIFY, ARP_RESPONDER, INGRESS_CT, INGRESS_CT_STATE, INGRESS_POLICY, L3_LOOKUP, OVERLAY_LOOKUP,
    EXT_INGRESS, EXT_INGRESS_STATE, EXT_INGRESS_DOMAIN, EXT_DELIVER,
    EGRESS_CT, EGRESS_CT_STATE, EGRESS_POLICY, OUTPUT,
    EXT_EGRESS, EXT_EGRESS_STATE, EXT_PAT, EXT_TO_UPLINK, POLICY_DROP, CANARY,
)
TABLE_BY_NUMBER = {t.number: t for t in TABLES}
TABLE_BY_NAME = {t.name: t for t in TABLES}

# ---- priorities -----------------------------------------------------------------
# One place for every priority. ACL rules own the whole 16-bit range of the two
# policy tables (the directory allows rule priorities 1..65535, lower first);
# the conntrack verdicts therefore live in their own *_CT_STATE tables and the
# policy tables carry no table-miss flow (every domain has its default flow at 0;
# a packet of no known domain never gets there, and OpenFlow 1.3+ misses drop).

PRIO_TABLE_MISS = 0  # explicit drop at the bottom of the other tables (counted by cookie)
PRIO_DEFAULT_ACTION = 0  # a domain's default allow/deny in INGRESS_POLICY / EGRESS_POLICY
ACL_RULE_PRIORITY_MIN = 1
ACL_RULE_PRIORITY_MAX = 65535
PRIO_CT_ESTABLISHED = 200  # *_CT_STATE: continuation/reply of a committed connection
PRIO_CT_NEW = 1  # *_CT_STATE: everything else goes to the rules
PRIO_CT_SEND = 100  # INGRESS_CT/EGRESS_CT: into conntrack
PRIO_PORT_SECURITY = 100  # CLASSIFY: a vport's own MAC+IP / MAC+ARP
PRIO_DHCP = 200  # CLASSIFY: above port security, a DHCP client may have no IP yet
PRIO_TUNNEL = 100  # CLASSIFY: VXLAN port + VNI
PRIO_ARP_REPLY = 100
PRIO_GRATUITOUS_ARP = 110  # ARP_RESPONDER: a vport announcing itself gets no answer
PRIO_L2 = 100  # L3_LOOKUP: same-subnet delivery
PRIO_L3 = 90  # L3_LOOKUP: routed via the domain's router MAC
PRIO_OVERLAY_DELIVERY = 100
PRIO_OUTPUT = 100
PRIO_OUTPUT_HAIRPIN = 110  # OUTPUT: to a tagged vport from its own gateway port (output IN_PORT)
PRIO_CANARY = 1
# POLICY_DROP: a packet its local sender sent (REG_SRC_PORT) is counted there even if its destination is
# local too; the receiving side (REG_DST_PORT, REG_SRC_PORT 0: from the overlay or outside) below it.
PRIO_DROP_SENT = 110
PRIO_DROP_RECEIVED = 100
PRIO_EXT_FROM_UPLINK = 100  # CLASSIFY: the external patch port
PRIO_EXT_OWN_SUBNET = 20  # L3_LOOKUP: an unknown address of the domain's own subnets never leaves
PRIO_EXT_ROUTE = 10  # L3_LOOKUP: anything else is outside
PRIO_EXT_KNOWN = 300  # EXT_EGRESS_STATE / EXT_INGRESS_STATE: a connection already translated
PRIO_EXT_FLOATING_IP = 200  # floating IP rewrites (both directions)
PRIO_EXT_PUBLISHED = 200  # EXT_INGRESS_STATE / EXT_INGRESS_DOMAIN: a new connection to a published port
PRIO_EXT_DEFAULT = 100  # the rest of each external table's regular flows

# ---- the physical (uplink) bridge: br-phy steering, docs/external.md ----------------------------------
# br-phy keeps its NORMAL switching; these flows only pull out what belongs to br-int. Not part of
# TABLES (that is br-int's pipeline).
UPLINK_CLASSIFY = Table(
    "UPLINK_CLASSIFY", 0,
    "On br-phy, from the uplink: VXLAN to the host stays NORMAL; published host ports and floating IPs go "
    "to br-int; other IPv4 to the host's address is looked up in the external NAT zone.",
    frozenset({"in_port", "eth_type", "ip_proto", "ipv4_dst", "tcp_dst", "udp_dst", "arp_tpa"}),
    ("UPLINK_CT_STATE",),
)
UPLINK_CT_STATE = Table(
    "UPLINK_CT_STATE", 1,
    "On br-phy, after the lookup: a connection br-int translated goes to br-int, the rest NORMAL.",
    frozenset({"ct_state"}),
)
UPLINK_TABLES: tuple[Table, ...] = (UPLINK_CLASSIFY, UPLINK_CT_STATE)
PRIO_UPLINK_TUNNEL = 300
PRIO_UPLINK_STEER = 200
PRIO_UPLINK_LOOKUP = 100

# ---- conntrack zones and addresses of external connectivity (docs/external.md §2) ------------------
EXT_ZONE = 0x8000  # the host's external NAT zone: transit <-> the host's address
NAT_ZONE_BIT = 0x8000  # a domain's NAT zone is NAT_ZONE_BIT | its policy zone
MAX_EXTERNAL_CT_ZONE = 0x7FFF  # domains with a higher policy zone get no external flows
TRANSIT_BASE = 0x64400000  # 100.64.0.0 (RFC 6598): a domain's transit address is this + its policy zone
DEFAULT_NAT_PORTS = (61000, 65535)  # above Linux's ephemeral range (32768-60999)


def nat_zone(ct_zone: int) -> int:
    """The NAT zone of the domain whose policy zone is ``ct_zone``."""
    if not 1 <= ct_zone <= MAX_EXTERNAL_CT_ZONE:
        raise ValueError(f"ct_zone {ct_zone} outside 1..{MAX_EXTERNAL_CT_ZONE}: no external connectivity")
    return NAT_ZONE_BIT | ct_zone


def transit_ip(ct_zone: int) -> str:
    """The transit address of a domain (never on the wire: between its NAT zone and the external zone)."""
    nat_zone(ct_zone)  # same range check
    value = TRANSIT_BASE + ct_zone
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def acl_priority(rule_priority: int) -> int:
    """OpenFlow priority for an ACL rule priority (lower rule number wins, so it maps higher)."""
    if not ACL_RULE_PRIORITY_MIN <= rule_priority <= ACL_RULE_PRIORITY_MAX:
        raise ValueError(
            f"ACL priority {rule_priority} outside {ACL_RULE_PRIORITY_MIN}..{ACL_RULE_PRIORITY_MAX}")
    return ACL_RULE_PRIORITY_MAX + 1 - rule_priority


PRIO_ACL_TOP = 65535  # level 0 of the ACL rules (see compile.acl.plan_domain)


def acl_level_priority(level: int) -> int:
    """OpenFlow priority of an ACL priority level (0 = evaluated first)."""
    prio = PRIO_ACL_TOP - level
    if prio <= PRIO_DEFAULT_ACTION:
        raise ValueError(f"too many ACL levels ({level})")
    return prio


def table_of(number: int) -> Table:
    """The table declared with this number (KeyError if none)."""
    return TABLE_BY_NUMBER[number]
