"""An OpenFlow table simulator for unit tests (in the spirit of Faucet's fakeoftable).

Load ``Flow`` objects, then ask where a packet goes::

    sim = TableSimulator(flows)
    result = sim.process({"eth_src": ..., "eth_type": 0x0800, "ipv4_dst": ...}, in_port=3)
    result.outputs  # [Delivery(port, packet)], empty when dropped

It models what the VRS pipeline relies on: tables with priorities and masked
matches, goto, resubmit, set_field and move (partial bits), dec_ttl, output
(IN_PORT), controller (and metered copies: ``Result.samples``), VLAN push/pop, Nicira ``conjunction`` (all clauses of a
conj_id at one priority must match; a flow may carry several conjunction
actions) and ``ct`` with a small conntrack model (zones, +trk/+new/+est/+rpl/+inv,
commit; a connection's original direction stays +new until a reply is seen, as in
Linux conntrack). Loading two flows with the same (table, priority, match)
replaces the first, as OVS does. ``Overlay`` joins simulators of several hosts by
their tunnel IPs so a test can follow a packet across the VXLAN fabric.

Packets are dicts of os-ken field names; MACs and IPv4 addresses are strings,
everything else ints. A field absent from the packet matches only if the field
defaults to 0 (registers, metadata, tunnel fields, ct fields, vlan_vid).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from nuage_ryu.vrs import flow as F

MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha"})
IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_dst", "tun_ipv4_src"})
# Pipeline metadata: present (as 0) on every packet.
ZERO_DEFAULT = frozenset(
    {f"reg{i}" for i in range(16)}
    | {"metadata", "tunnel_id", "tun_ipv4_dst", "tun_ipv4_src", "ct_state", "ct_zone", "ct_mark", "conj_id",
       "vlan_vid"}
)
FIELD_BITS = {
    **{f: 48 for f in MAC_FIELDS},
    **{f: 32 for f in IPV4_FIELDS},
    **{f"reg{i}": 32 for i in range(16)},
    "metadata": 64, "tunnel_id": 64, "in_port": 32, "eth_type": 16, "vlan_vid": 13, "ip_proto": 8,
    "nw_ttl": 8, "tcp_flags": 12, "tcp_src": 16, "tcp_dst": 16, "udp_src": 16, "udp_dst": 16,
    "icmpv4_type": 8, "icmpv4_code": 8, "arp_op": 16, "ct_state": 32, "ct_zone": 16, "ct_mark": 32,
    "conj_id": 32,
}
MAX_DEPTH = 64  # resubmit/goto/recirculation bound, like OVS's own recursion limit

CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10


class SimulationError(Exception):
    """The flows do something the simulator (or OVS) would refuse."""


def to_int(name: str, value) -> int:
    """A field value (MAC/IPv4 string or int) as an int."""
    if isinstance(value, int):
        return value
    if name in MAC_FIELDS or (isinstance(value, str) and value.count(":") == 5):
        return int(value.replace(":", ""), 16)
    return int(ipaddress.IPv4Address(value))


def to_display(name: str, value: int):
    """The readable form of a field value: MAC/IPv4 strings for address fields."""
    if name in MAC_FIELDS:
        h = f"{value:012x}"
        return ":".join(h[i:i + 2] for i in range(0, 12, 2))
    if name in IPV4_FIELDS:
        return str(ipaddress.IPv4Address(value))
    return value


@dataclass(frozen=True)
class Delivery:
    port: int
    packet: dict  # fields as the packet leaves (address fields as strings)

    @property
    def tunnel(self) -> tuple[int, str] | None:
        """(VNI, tunnel destination IP) if this left with tunnel metadata set."""
        if self.packet.get("tun_ipv4_dst") in (None, "0.0.0.0"):
            return None
        return (self.packet.get("tunnel_id", 0), self.packet["tun_ipv4_dst"])


@dataclass(frozen=True)
class Step:
    table: int
    priority: int
    cookie: int
    flow: F.Flow


@dataclass(frozen=True)
class Sample:
    """A metered copy to the controller (a verdict record): the flow's table and cookie, the packet then."""

    table: int
    cookie: int
    meter_id: int
    packet: dict


@dataclass
class Result:
    outputs: list[Delivery] = field(default_factory=list)
    to_controller: list[dict] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # metered copies: not a destination of the packet
    trace: list[Step] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)  # same-priority overlaps met on the way

    @property
    def dropped(self) -> bool:
        return not self.outputs and not self.to_controller

    @property
    def cookies(self) -> list[int]:
        return [s.cookie for s in self.trace]

    @property
    def ports(self) -> list[int]:
        return [d.port for d in self.outputs]

    def format(self) -> str:
        """A readable trace, like a much shorter ofproto/trace."""
        lines = [f"table={s.table} priority={s.priority} cookie={s.cookie:#x} actions={_fmt_actions(s.flow)}"
                 for s in self.trace]
        for d in self.outputs:
            lines.append(f"-> output {d.port}: " + ", ".join(f"{k}={v}" for k, v in sorted(d.packet.items())))
        for _ in self.to_controller:
            lines.append("-> controller")
        if self.dropped:
            lines.append("-> drop")
        return "\n".join(lines)


def _fmt_actions(flow: F.Flow) -> str:
    if not flow.actions:
        return "drop"
    return ",".join(type(a).__name__ + (f"({_args(a)})") for a in flow.actions)


def _args(action) -> str:
    return ",".join(f"{k}={v}" for k, v in vars(action).items() if v is not None) if vars(action) else ""


_ICMP_REPLY_OF = {0: 8, 14: 13, 16: 15, 18: 17}  # reply type -> its request type


class Conntrack:
    """A minimal connection tracker: per zone, 5-tuple connections, original vs reply direction."""

    def __init__(self) -> None:
        # (zone, original tuple) -> {"seen_reply", "orig", "translated"}; replies: (zone, reply tuple) -> same
        self.connections: dict[tuple, dict] = {}
        self.replies: dict[tuple, dict] = {}

    @staticmethod
    def tuple_of(pkt: dict) -> tuple | None:
        if pkt.get("eth_type") != 0x0800 or "ipv4_src" not in pkt:
            return None
        proto = pkt.get("ip_proto", 0)
        if proto == 1:
            # ICMP queries are tracked per query kind (echo, timestamp...): a request and its reply are
            # one connection, another type/code is another one (Linux keys on type, code, id).
            # Error messages are not modelled (they are +new, not +rel).
            icmp_type, code = pkt.get("icmpv4_type", 0), pkt.get("icmpv4_code", 0)
            is_reply = icmp_type in _ICMP_REPLY_OF
            query = (_ICMP_REPLY_OF.get(icmp_type, icmp_type), code)
            # "Ports" mark the direction, so only a reply type matches the reverse of a request.
            me, peer = (query, "reply"), (query, "request")
            if not is_reply:
                me, peer = peer, me
            return (proto, pkt["ipv4_src"], pkt["ipv4_dst"], me, peer)
        sport = pkt.get("tcp_src", pkt.get("udp_src", 0))
        dport = pkt.get("tcp_dst", pkt.get("udp_dst", 0))
        return (proto, pkt["ipv4_src"], pkt["ipv4_dst"], sport, dport)

    @staticmethod
    def starts_connection(pkt: dict) -> bool:
        """Can this packet open a connection? As in OVS conntrack: a TCP packet only if it is a SYN
        without ACK/RST, an ICMP packet only if it is not a reply. Packets without ``tcp_flags`` are
        taken as a SYN (tests that care about replies give the flags)."""
        proto = pkt.get("ip_proto")
        if proto == 6:
            flags = pkt.get("tcp_flags", TCP_SYN)
            return bool(flags & TCP_SYN) and not flags & (TCP_ACK | TCP_RST)
        if proto == 1:
            return pkt.get("icmpv4_type", 8) not in _ICMP_REPLY_OF
        return True

    @staticmethod
    def _reverse(t: tuple) -> tuple:
        proto, src, dst, sport, dport = t
        return (proto, dst, src, dport, sport)

    def find(self, zone: int, pkt: dict) -> tuple[dict | None, bool]:
        """(connection, is_reply) of the packet in ``zone``; (None, False) if untracked."""
        t = self.tuple_of(pkt)
        if t is None:
            return None, False
        conn = self.connections.get((zone, t))
        if conn is not None:
            return conn, False
        conn = self.replies.get((zone, t))
        return (conn, True) if conn is not None else (None, False)

    def lookup(self, zone: int, pkt: dict) -> int:
        t = self.tuple_of(pkt)
        if t is None:
            return CT_TRK | CT_INV
        conn, is_reply = self.find(zone, pkt)
        if conn is not None and not is_reply:
            # Linux (kernel datapath) semantics: the original direction is +new until a reply is seen.
            return CT_TRK | (CT_EST if conn["seen_reply"] else CT_NEW)
        if conn is not None:
            conn["seen_reply"] = True
            return CT_TRK | CT_EST | CT_RPL
        return CT_TRK | (CT_NEW if self.starts_connection(pkt) else CT_INV)

    def commit(self, zone: int, pkt: dict, nat: F.Nat | None = None) -> dict | None:
        """Commit the packet's connection (with ``nat``'s translation, set up once, when the connection
        is created); an invalid packet (see ``starts_connection``) commits nothing. Returns the
        connection (new or existing), None if nothing is tracked."""
        t = self.tuple_of(pkt)
        if t is None:
            return None
        conn, _ = self.find(zone, pkt)
        if conn is not None:
            return conn  # already tracked (committing a reply or a continuation)
        if pkt.get("ct_state", 0) & CT_INV or not self.starts_connection(pkt):
            return None
        translated = self._translate(zone, t, nat)
        conn = {"seen_reply": False, "orig": t, "translated": translated}
        self.connections[(zone, t)] = conn
        self.replies[(zone, self._reverse(translated))] = conn
        return conn

    def _translate(self, zone: int, t: tuple, nat: F.Nat | None) -> tuple:
        """The tuple the connection continues with after ``nat`` (a free source port if it must)."""
        if nat is None or nat.kind is None:
            return t
        proto, src, dst, sport, dport = t
        has_ports = proto in (6, 17)
        if nat.port is not None and has_ports:
            ports = range(nat.port, (nat.port_max or nat.port) + 1)
        else:
            ports = [sport if nat.kind == "src" else dport]
        for port in ports:
            if nat.kind == "src":
                candidate = (proto, nat.ip, dst, port if has_ports else sport, dport)
            else:
                candidate = (proto, src, nat.ip, sport, port if has_ports else dport)
            if (zone, self._reverse(candidate)) not in self.replies:
                return candidate
        raise SimulationError(f"no free port to translate {t} in zone {zone}")

    @staticmethod
    def rewrite(pkt: dict, conn: dict, is_reply: bool) -> None:
        """Apply a connection's translation to a packet (the reverse one to a reply), in place."""
        orig, new = conn["orig"], conn["translated"]
        if orig == new:
            return
        if is_reply:  # a reply travels new-reversed -> orig-reversed
            orig, new = Conntrack._reverse(new), Conntrack._reverse(orig)
        proto, src, dst, sport, dport = new
        pkt["ipv4_src"], pkt["ipv4_dst"] = to_int("ipv4_src", src), to_int("ipv4_dst", dst)
        if proto in (6, 17):
            prefix = "tcp" if proto == 6 else "udp"
            pkt[f"{prefix}_src"], pkt[f"{prefix}_dst"] = sport, dport

    def flush(self) -> None:
        self.connections.clear()
        self.replies.clear()


def ovs_identity(flow: F.Flow) -> tuple:
    """A flow's identity as OVS keeps it: (table, priority, normalised match).

    OVS stores a masked field as value & mask, a full mask as an exact match, and drops a field
    whose mask is all zeros (it matches everything). Two flows with equal identities are one flow
    in the switch, whatever the compiler's ``Flow.key`` says.
    """
    fields = []
    for m in flow.match:
        value = to_int(m.name, m.value)
        if m.mask is None:
            fields.append((m.name, value, None))
            continue
        mask = to_int(m.name, m.mask)
        if mask == 0:
            continue
        bits = FIELD_BITS.get(m.name)
        full = bits is not None and mask == (1 << bits) - 1
        fields.append((m.name, value, None) if full else (m.name, value & mask, mask))
    return (flow.table, flow.priority, tuple(sorted(fields)))


class TableSimulator:
    """One bridge's flow tables plus its conntrack."""

    def __init__(self, flows: Iterable[F.Flow] = ()) -> None:
        self.tables: dict[int, dict[tuple, F.Flow]] = {}
        self.conntrack = Conntrack()
        self.load(flows)

    def load(self, flows: Iterable[F.Flow]) -> None:
        """Add flows; a flow with the identity of one already there replaces it (OFPFC_ADD).

        The identity is OVS's (``ovs_identity``): ``ipv4_src=0.0.0.0/0`` is no match field at all,
        so such a flow replaces one without ``ipv4_src``, as it does in a real bridge."""
        for f in flows:
            self.tables.setdefault(f.table, {})[ovs_identity(f)] = f
        self._sorted: dict[int, list[F.Flow]] = {}

    def delete(self, flows: Iterable[F.Flow]) -> None:
        """Strict delete by (OVS) identity."""
        for f in flows:
            self.tables.get(f.table, {}).pop(ovs_identity(f), None)
        self._sorted = {}

    def apply(self, diff) -> None:
        """Apply a ``FlowDiff`` (deletes first, then adds, like a bundle)."""
        self.delete(diff.delete)
        self.load(diff.add)

    def flows(self) -> list[F.Flow]:
        return [f for t in sorted(self.tables) for f in self.tables[t].values()]

    def _table(self, number: int) -> list[F.Flow]:
        if number not in self._sorted:
            self._sorted[number] = sorted(self.tables.get(number, {}).values(), key=lambda f: -f.priority)
        return self._sorted[number]

    # -- matching --
    @staticmethod
    def _matches(flow: F.Flow, pkt: dict) -> bool:
        for m in flow.match:
            if m.name in pkt:
                have = to_int(m.name, pkt[m.name])
            elif m.name in ZERO_DEFAULT:
                have = 0
            else:
                return False
            want = to_int(m.name, m.value)
            if m.mask is None:
                if have != want:
                    return False
            else:
                mask = to_int(m.name, m.mask)
                if have & mask != want & mask:
                    return False
        return True

    def lookup(self, table: int, pkt: dict, result: Result | None = None) -> F.Flow | None:
        """The flow that wins for ``pkt`` in ``table``, with OVS conjunction semantics."""
        hard: F.Flow | None = None
        soft: dict[int, list[F.Flow]] = {}
        for f in self._table(table):
            if hard is not None and f.priority < hard.priority:
                break
            if not self._matches(f, pkt):
                continue
            if f.actions and all(isinstance(a, F.Conjunction) for a in f.actions):
                soft.setdefault(f.priority, []).append(f)
            elif hard is None:
                hard = f
            elif f.priority == hard.priority and result is not None:
                result.ambiguous.append(f"table {table} priority {f.priority}: several flows match")
        # Conjunctive matches above the best ordinary flow, highest priority first.
        for prio in sorted(soft, reverse=True):
            if hard is not None and prio <= hard.priority:
                break
            clauses: dict[int, set[int]] = {}
            sizes: dict[int, int] = {}
            for f in soft[prio]:
                for a in f.actions:
                    clauses.setdefault(a.conj_id, set()).add(a.clause)
                    sizes[a.conj_id] = a.n_clauses
            done = sorted(cid for cid, seen in clauses.items() if len(seen) == sizes[cid])
            if not done:
                continue
            if len(done) > 1 and result is not None:
                result.ambiguous.append(f"table {table} priority {prio}: conjunctions {done} all match")
            # OVS re-runs the lookup with conj_id set; only an ordinary flow can win that lookup.
            probe = dict(pkt, conj_id=done[0])
            for f in self._table(table):
                if f.priority < prio:
                    break
                if any(m.name == "conj_id" for m in f.match) and self._matches(f, probe):
                    return f
        return hard

    # -- execution --
    def process(self, packet: dict, in_port: int) -> Result:
        """Run ``packet`` arriving on ``in_port`` through the pipeline from table 0."""
        pkt = {k: to_int(k, v) for k, v in packet.items()}
        pkt["in_port"] = in_port
        result = Result()
        self._run_table(0, pkt, result, 0)
        return result

    def _run_table(self, table: int, pkt: dict, result: Result, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise SimulationError("pipeline recursion too deep")
        flow = self.lookup(table, pkt, result)
        if flow is None:
            return  # table miss: OpenFlow 1.3+ drops
        result.trace.append(Step(table, flow.priority, flow.cookie, flow))
        self._run_actions(flow, pkt, result, depth)

    def _run_actions(self, flow: F.Flow, pkt: dict, result: Result, depth: int) -> None:
        for i, a in enumerate(flow.actions):
            if isinstance(a, F.Goto):
                if i != len(flow.actions) - 1:
                    raise SimulationError(f"goto must be the last action: {flow}")
                if a.table <= flow.table:
                    raise SimulationError(f"goto must go forward: {flow}")
                self._run_table(a.table, pkt, result, depth + 1)
            elif isinstance(a, F.Output):
                port = pkt["in_port"] if a.port == F.OFPP_IN_PORT else a.port
                if a.port != F.OFPP_IN_PORT and port == pkt["in_port"]:
                    continue  # OVS never outputs to the in_port unless told IN_PORT
                result.outputs.append(Delivery(port, self._export(pkt)))
            elif isinstance(a, F.Controller):
                result.to_controller.append(self._export(pkt))
            elif isinstance(a, F.MeteredController):
                # No rate here: the meter belongs to the switch; the simulator records every copy.
                result.samples.append(Sample(flow.table, flow.cookie, a.meter_id, self._export(pkt)))
            elif isinstance(a, F.SetField):
                pkt[a.name] = to_int(a.name, a.value)
            elif isinstance(a, F.Move):
                src = (pkt.get(a.src, 0) >> a.src_ofs) & ((1 << a.n_bits) - 1)
                mask = ((1 << a.n_bits) - 1) << a.dst_ofs
                pkt[a.dst] = (pkt.get(a.dst, 0) & ~mask) | (src << a.dst_ofs)
            elif isinstance(a, F.DecTtl):
                ttl = pkt.get("nw_ttl", 64)
                if ttl <= 1:
                    return  # OVS stops here (would send "invalid TTL" to a controller asking for it)
                pkt["nw_ttl"] = ttl - 1
            elif isinstance(a, F.Resubmit):
                saved = pkt["in_port"]
                if a.in_port is not None:
                    pkt["in_port"] = a.in_port
                self._run_table(a.table, pkt, result, depth + 1)
                pkt["in_port"] = saved
            elif isinstance(a, F.Ct):
                self._conntrack(a, pkt, result, depth)
            elif isinstance(a, F.PushVlan):
                pkt["vlan_vid"] = 0x1000
            elif isinstance(a, F.PopVlan):
                pkt.pop("vlan_vid", None)
            elif isinstance(a, F.Conjunction):
                raise SimulationError(f"conjunction mixed with other actions: {flow}")
            else:
                raise SimulationError(f"unknown action {a!r}")

    def _conntrack(self, a: F.Ct, pkt: dict, result: Result, depth: int) -> None:
        zone = a.zone if a.zone_src is None else pkt.get(a.zone_src, 0) & 0xFFFF
        view = self._export(pkt)
        tracked = a.table is not None or a.nat is not None
        state = self.conntrack.lookup(zone, view) if tracked else None
        conn, is_reply = self.conntrack.find(zone, view)
        if a.commit:
            conn = self.conntrack.commit(zone, view, a.nat) or conn
        if a.nat is not None and conn is not None:
            # ct(nat...) rewrites the packet itself: what follows (and the recirculated copy) sees it.
            self.conntrack.rewrite(pkt, conn, is_reply)
        if a.table is None:
            return
        # ct(table=N) recirculates a tracked copy of the packet into table N.
        copy = dict(pkt, ct_state=state, ct_zone=zone)
        self._run_table(a.table, copy, result, depth + 1)

    @staticmethod
    def _export(pkt: dict) -> dict:
        return {k: to_display(k, v) for k, v in pkt.items()}


class Overlay:
    """Several hosts' simulators joined by VXLAN: follows tunnelled packets to their destination host."""

    def __init__(self, tunnel_port: dict[str, int]) -> None:
        self.hosts: dict[str, TableSimulator] = {}
        self.tunnel_ip: dict[str, str] = {}
        self.tunnel_port = tunnel_port  # host name -> ofport of its VXLAN port
        self.samples: list[tuple[str, Sample]] = []  # (host, copy) of the last send, in order

    def add_host(self, name: str, tunnel_ip: str, sim: TableSimulator) -> None:
        self.hosts[name] = sim
        self.tunnel_ip[name] = tunnel_ip

    def send(self, host: str, packet: dict, in_port: int) -> list[tuple[str, Delivery]]:
        """Final deliveries (host, Delivery) of a packet sent on ``host``'s ``in_port``; [] if dropped."""
        out = []
        first = self.hosts[host].process(packet, in_port)
        self.samples = [(host, sample) for sample in first.samples]
        for d in first.outputs:
            if d.port == self.tunnel_port.get(host) and d.tunnel:
                vni, dst_ip = d.tunnel
                target = next((h for h, ip in self.tunnel_ip.items() if ip == dst_ip), None)
                if target is None:
                    continue  # nobody has that tunnel IP: lost in the underlay
                # What crosses the underlay: the inner frame plus VNI; registers do not.
                inner = {k: v for k, v in d.packet.items() if k in _WIRE_FIELDS}
                inner.update(tunnel_id=vni, tun_ipv4_src=self.tunnel_ip[host], tun_ipv4_dst=dst_ip)
                arrived = self.hosts[target].process(inner, self.tunnel_port[target])
                self.samples += [(target, sample) for sample in arrived.samples]
                out += [(target, dd) for dd in arrived.outputs]
            else:
                out.append((host, d))
        return out


_WIRE_FIELDS = frozenset({
    "eth_src", "eth_dst", "eth_type", "vlan_vid", "ipv4_src", "ipv4_dst", "ip_proto", "nw_ttl", "tcp_flags",
    "tcp_src",
    "tcp_dst", "udp_src", "udp_dst", "icmpv4_type", "icmpv4_code", "arp_op", "arp_spa", "arp_tpa", "arp_sha",
    "arp_tha",
})
