"""Explain a packet: ``POST /api/v1/trace`` (docs/policy.md "Explain a packet").

Given a source and a destination (vports by name, id, id prefix or path, or addresses of the
source's domain) and a service, the answer says what the policy decides and why: the deciding
rule (or the domain's default action), from the reference evaluator of the documented semantics
(``nuage_ryu/vrs/reference.py``); where the packet goes (hosts, the tables of the pipeline); and
whether the flows actually installed agree: the agent of the source vport's host runs the same
packet through ``ofproto/trace`` on its br-int (a ``TraceRequest`` row of the directory database,
``store/trace_rows.py``) and the two answers are compared.

The pure parts (parsing, resolving, deciding, comparing) take the snapshot; ``run_trace`` adds the
one round trip to the agent.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from nuage_ryu.directory.errors import BadRequest, Conflict, NotFound, ValidationError
from nuage_ryu.directory.model import DirectoryState, as_dict
from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs import reference as R
from nuage_ryu.vrs.view import AclRule, Domain, Endpoint, Subnet, VPort

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 30.0
DEFAULT_SRC_PORT = 40000  # an ephemeral port, as a client's stack would pick
ANY_PROTOCOL = 255  # "any": a packet of a protocol no named rule covers (only protocol-any rules match)
FIELDS = ("from", "to", "protocol", "port", "src_port", "icmp_type", "icmp_code", "domain", "timeout",
          "datapath")
RULE_FIELDS = ("id", "name", "priority", "action", "stateful", "protocol", "dst_ports", "icmp_type", "icmp_code",
               "source", "destination", "description")

SENDER_TABLES = (P.CLASSIFY, P.INGRESS_CT, P.INGRESS_CT_STATE, P.INGRESS_POLICY)
RECEIVER_TABLES = (P.CLASSIFY, P.OVERLAY_LOOKUP, P.EGRESS_CT, P.EGRESS_CT_STATE, P.EGRESS_POLICY, P.OUTPUT)

Visible = Callable[[str, object], bool]


@dataclass(frozen=True)
class TraceQuery:
    """A checked trace request body."""

    src: str
    dst: str
    protocol: int
    dst_port: int = 0
    src_port: int = DEFAULT_SRC_PORT
    icmp_type: int = 8
    icmp_code: int = 0
    domain: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    datapath: bool = True

    @property
    def protocol_name(self) -> str:
        names = {v: k for k, v in R.PROTOCOL_NUMBERS.items()}
        return "any" if self.protocol == ANY_PROTOCOL else names.get(self.protocol, str(self.protocol))


@dataclass(frozen=True)
class Party:
    """One end of the traced packet: a vport of the domain, or an address only."""

    ip: str
    vport: object | None = None  # nuage_ryu.directory.model.VPort
    note: str = ""


def _int(body: dict, key: str, lo: int, hi: int, default: int | None = None) -> int | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValidationError(f"{key} must be an integer {lo}..{hi}")
    return value


def parse_query(body) -> TraceQuery:
    """Check a request body; BadRequest / ValidationError with a message saying what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest('body must be a JSON object like {"from": "web1", "to": "app1", "protocol": "tcp", '
                         '"port": 8080}')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    for key in ("from", "to"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise ValidationError(f"{key!r} is required: a vport (name, id, id prefix or path) or an IPv4 address")
    port = _int(body, "port", 1, 65535)
    raw = body.get("protocol")
    if raw is None:
        raw = "tcp" if port is not None else "icmp"
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, str):
        if raw == "any":
            protocol = ANY_PROTOCOL
        elif raw in R.PROTOCOL_NUMBERS:
            protocol = R.PROTOCOL_NUMBERS[raw]
        else:
            raise ValidationError(f"protocol {raw!r} is not one of tcp, udp, icmp, any or a number 1..254")
    elif isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 254:
        protocol = raw
    else:
        raise ValidationError("protocol must be tcp, udp, icmp, any or a number 1..254")
    if protocol in (R.TCP, R.UDP) and port is None:
        raise ValidationError(f"port is required for {raw} (the destination port, e.g. \"port\": 8080)")
    if protocol not in (R.TCP, R.UDP) and port is not None:
        raise ValidationError("port is only for tcp and udp")
    if protocol != R.ICMP and ("icmp_type" in body or "icmp_code" in body):
        raise ValidationError("icmp_type and icmp_code are only for icmp")
    domain = body.get("domain")
    if domain is not None and (not isinstance(domain, str) or not domain.strip()):
        raise ValidationError("domain must be a domain name, path (enterprise/domain) or id")
    timeout = body.get("timeout", DEFAULT_TIMEOUT_S)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValidationError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT_S:g}]")
    datapath = body.get("datapath", True)
    if not isinstance(datapath, bool):
        raise ValidationError("datapath must be true or false")
    return TraceQuery(body["from"].strip(), body["to"].strip(), protocol, port or 0,
                      _int(body, "src_port", 1, 65535, DEFAULT_SRC_PORT),
                      _int(body, "icmp_type", 0, 255, 8), _int(body, "icmp_code", 0, 255, 0),
                      domain.strip() if domain else None, float(timeout), datapath)


# ---- resolving the two ends -----------------------------------------------------------------------


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _one(matches: list, what: str, ref: str):
    if not matches:
        raise NotFound(f"no {what} {ref!r}")
    if len(matches) > 1:
        names = ", ".join(sorted(getattr(m, "name", "") or m.id for m in matches)[:5])
        raise Conflict(f"{what} {ref!r} is ambiguous ({len(matches)} match: {names}); give its id or path")
    return matches[0]


def resolve_vport(state: DirectoryState, visible: Visible, ref: str):
    """A vport by id, unique id prefix (4+ characters), name or path (``[enterprise/]domain/zone/subnet/name``,
    any suffix of it); NotFound / Conflict otherwise."""
    vport = state.vports.get(ref)
    if vport is not None and visible("vport", vport):
        return vport
    if "/" in ref:
        parts = ref.split("/")
        matches = [v for v in state.vports.values() if v.name == parts[-1] and visible("vport", v)
                   and _path_of(state, v)[-len(parts):] == parts]
        return _one(matches, "vport", ref)
    matches = [v for v in state.vports.values() if v.name == ref and visible("vport", v)]
    if not matches and len(ref) >= 4 and all(c in "0123456789abcdef-" for c in ref.lower()):
        matches = [v for v in state.vports.values() if v.id.startswith(ref.lower()) and visible("vport", v)]
    return _one(matches, "vport", ref)


def _path_of(state: DirectoryState, vport) -> list[str]:
    subnet = state.subnets.get(vport.subnet)
    zone = state.zones.get(subnet.zone) if subnet else None
    domain = state.domains.get(vport.domain)
    ent = state.enterprises.get(domain.enterprise) if domain else None
    return [o.name if o else "?" for o in (ent, domain, zone, subnet)] + [vport.name]


def resolve_domain(state: DirectoryState, visible: Visible, ref: str):
    """A domain by id, name (unique among the visible ones) or ``enterprise/domain``."""
    domain = state.domains.get(ref)
    if domain is not None and visible("domain", domain):
        return domain
    ent_name, _, name = ref.rpartition("/")
    matches = [d for d in state.domains.values() if d.name == name and visible("domain", d)
               and (not ent_name or getattr(state.enterprises.get(d.enterprise), "name", None) == ent_name)]
    return _one(matches, "domain", ref)


def _domains_holding(state: DirectoryState, visible: Visible, ip: str) -> list:
    addr = ipaddress.IPv4Address(ip)
    ids = {s.domain for s in state.subnets.values() if addr in ipaddress.IPv4Network(s.cidr, strict=False)}
    return [d for d in (state.domains.get(i) for i in sorted(ids)) if d is not None and visible("domain", d)]


def resolve_ends(state: DirectoryState, visible: Visible, query: TraceQuery):
    """(domain, source Party, destination Party): the packet is the source's, in its domain."""
    src_vport = None if _is_ip(query.src) else resolve_vport(state, visible, query.src)
    dst_vport = None if _is_ip(query.dst) else resolve_vport(state, visible, query.dst)
    if query.domain:
        domain = resolve_domain(state, visible, query.domain)
    elif src_vport is not None:
        domain = state.domains[src_vport.domain]
    elif dst_vport is not None:
        domain = state.domains[dst_vport.domain]
    else:
        candidates = _domains_holding(state, visible, query.src)
        if len(candidates) != 1:
            raise ValidationError(f"the source address {query.src} is in {len(candidates)} domains: "
                                  "give \"domain\" (its name, enterprise/domain or id)")
        domain = candidates[0]
    if src_vport is not None and src_vport.domain != domain.id:
        raise ValidationError(f"vport {src_vport.name} is not in domain {domain.name}")
    if src_vport is not None:
        if not src_vport.ip:
            raise ValidationError(f"vport {src_vport.name} has no address yet")
        src = Party(src_vport.ip, src_vport)
    else:
        src = Party(query.src, _vport_at(state, domain.id, query.src))
    if dst_vport is not None:
        if dst_vport.domain != domain.id:
            # Addresses never cross domains: the packet is the source's, sent to that address in its own domain.
            other = state.domains.get(dst_vport.domain)
            holder = _vport_at(state, domain.id, dst_vport.ip)
            held = f", where vport {holder.name} holds it" if holder is not None else ", where no vport holds it"
            dst = Party(dst_vport.ip, holder,
                        f"vport {dst_vport.name} is in another domain ({getattr(other, 'name', '?')}): its address "
                        f"{dst_vport.ip} is looked up in {domain.name}, the source's domain{held}")
        else:
            dst = Party(dst_vport.ip, dst_vport)
    else:
        dst = Party(query.dst, _vport_at(state, domain.id, query.dst))
    if src.vport is not None and dst.vport is not None and src.vport.id == dst.vport.id:
        raise ValidationError("source and destination are the same vport")
    return domain, src, dst


def _vport_at(state: DirectoryState, domain_id: str, ip: str):
    """The vport holding ``ip`` in the domain: looked up in the subnets that contain it (the per-subnet
    index), not by walking every vport."""
    addr = ipaddress.IPv4Address(ip)
    for subnet in state.subnets.values():
        if subnet.domain == domain_id and addr in ipaddress.IPv4Network(subnet.cidr, strict=False):
            found = next((v for v in state.vports_of_subnet(subnet.id) if v.ip == ip), None)
            if found is not None:
                return found
    return None


# ---- what the policy and the network do ---------------------------------------------------------


def domain_policy(state: DirectoryState, domain, members=None) -> R.DomainPolicy:
    """The reference evaluator's view of one domain (the objects ``vrs.view.from_directory`` builds).

    ``members``: the vports whose memberships matter (a trace asks only about its two ends' addresses,
    so it passes those and stays independent of the domain's size); None: every vport of the domain."""
    d = Domain(domain.id, domain.vni, domain.router_mac, domain.default_action, domain.ct_zone, domain.egress_nat)
    subnets = [Subnet(s.id, s.domain, s.cidr, s.gateway, s.zone) for s in state.subnets.values()
               if s.domain == domain.id]
    members = state.vports.values() if members is None else members
    vports = [VPort(v.id, v.domain, v.subnet, v.mac, v.ip, v.host, v.type, frozenset(v.policygroups))
              for v in members if v.domain == domain.id and v.ip]
    rules = [AclRule(a.id, a.domain, a.priority, Endpoint(a.source.type, a.source.id, a.source.cidr),
                     Endpoint(a.destination.type, a.destination.id, a.destination.cidr), a.protocol, a.dst_ports,
                     a.icmp_type, a.icmp_code, a.action, a.stateful)
             for a in state.acls.values() if a.domain == domain.id]
    groups = {g.id: g.domain for g in state.policygroups.values()}
    return R.DomainPolicy.build(d, rules, subnets, vports, groups)


def packet_of(query: TraceQuery, src: Party, dst: Party) -> R.Packet:
    if query.protocol in (R.TCP, R.UDP):
        return R.Packet(src.ip, dst.ip, query.protocol, query.src_port, query.dst_port)
    if query.protocol == R.ICMP:
        return R.Packet(src.ip, dst.ip, R.ICMP, icmp_type=query.icmp_type, icmp_code=query.icmp_code)
    return R.Packet(src.ip, dst.ip, query.protocol)


def _forwarding(state: DirectoryState, domain, src: Party, dst: Party) -> tuple[str, str]:
    """(kind, why) of where the domain sends the destination address, policy aside."""
    if dst.vport is not None:
        return "vport", ""
    addr = ipaddress.IPv4Address(dst.ip)
    inside = any(addr in ipaddress.IPv4Network(s.cidr, strict=False) for s in state.subnets.values()
                 if s.domain == domain.id)
    if inside:
        return "unknown", f"no vport holds {dst.ip} in domain {domain.name}: nothing to deliver to"
    if domain.egress_nat or (src.vport is not None and src.vport.floating_ip):
        return "outside", ""
    return "unknown", f"{dst.ip} is outside domain {domain.name}'s subnets and egress NAT is off"


def rule_dict(state: DirectoryState, acl_id: str) -> dict:
    """The deciding rule as the API shows it (no counters), its endpoints with their objects' names."""
    acl = state.acls[acl_id]
    full = as_dict("acl", acl, state)
    out = {k: full[k] for k in RULE_FIELDS if k in full}
    for key in ("source", "destination"):
        ep = dict(out[key])
        table = {"policygroup": state.policygroups, "zone": state.zones, "subnet": state.subnets}.get(ep["type"])
        if table is not None and ep.get("id") in table:
            ep["name"] = table[ep["id"]].name
        out[key] = ep
    return out


def _tables(tables) -> list[dict]:
    return [{"table": t.number, "name": t.name} for t in tables]


def expected_path(state: DirectoryState, src: Party, dst: Party, policy_allows: bool, forwarding: str) -> list[dict]:
    """The hops and tables the pipeline declares for this packet (``vrs/pipeline.py``)."""
    sender = list(SENDER_TABLES)
    receiver = None
    if not policy_allows:
        sender.append(P.POLICY_DROP)  # denied packets are dropped there, counted per vport
    else:
        sender.append(P.L3_LOOKUP)
        if forwarding == "vport":
            sender.append(P.OUTPUT)
            if dst.vport.host != (src.vport.host if src.vport else None):
                receiver = dst.vport.host
        elif forwarding == "outside":
            sender += [P.EXT_EGRESS, P.EXT_EGRESS_STATE]
    hops = [{"host": src.vport.host if src.vport else None, "role": "sender", "tables": _tables(sender)}]
    if receiver:
        hops.append({"host": receiver, "role": "receiver", "tables": _tables(RECEIVER_TABLES)})
    return hops


def decide(state: DirectoryState, domain, src: Party, dst: Party, query: TraceQuery) -> dict:
    """The answer without the datapath check: verdict, deciding rule or default, path."""
    policy = domain_policy(state, domain, [p.vport for p in (src, dst) if p.vport is not None])
    pkt = packet_of(query, src, dst)
    decision = R.decide(policy, pkt)
    forwarding, why = _forwarding(state, domain, src, dst)
    delivered = decision.allowed and forwarding != "unknown"
    notes = [n for n in (src.note, dst.note) if n]
    if decision.allowed and why:
        notes.append(why)
    rule = rule_dict(state, decision.rule.id) if decision.rule is not None else None
    ent = state.enterprises.get(domain.enterprise)
    answer = {
        "verdict": "allow" if delivered else "deny",
        "rule": rule,
        "default_action": decision.rule is None,
        "policy": {"verdict": decision.verdict, "stateful": decision.stateful,
                   "deciding": rule["id"] if rule else "default",
                   "explanation": _explain(decision, rule, domain)},
        "domain": {"id": domain.id, "name": domain.name, "enterprise": getattr(ent, "name", ""),
                   "default_action": domain.default_action},
        "packet": {"src_ip": pkt.src_ip, "dst_ip": pkt.dst_ip, "protocol": query.protocol_name,
                   **({"src_port": pkt.src_port, "dst_port": pkt.dst_port} if pkt.protocol in (R.TCP, R.UDP) else {}),
                   **({"icmp_type": pkt.icmp_type, "icmp_code": pkt.icmp_code} if pkt.protocol == R.ICMP else {})},
        "from": _party(state, src),
        "to": {**_party(state, dst), "forwarding": forwarding},
        "path": {"hosts": [], "hops": expected_path(state, src, dst, decision.allowed, forwarding)},
        "notes": notes,
    }
    answer["path"]["hosts"] = [h["host"] for h in answer["path"]["hops"] if h["host"]]
    return answer


def _explain(decision: R.Decision, rule: dict | None, domain) -> str:
    if rule is None:
        return f"no rule matches: the domain's default action ({domain.default_action})"
    name = f" {rule['name']!r}" if rule.get("name") else ""
    return f"rule{name} (priority {rule['priority']}) is the first that matches: {rule['action']}"


def _party(state: DirectoryState, party: Party) -> dict:
    out: dict = {"ip": party.ip}
    if party.vport is not None:
        v = party.vport
        out.update(vport=v.id, name=v.name, host=v.host, status=v.status)
    return out


# ---- the datapath check ------------------------------------------------------------------------------


def datapath_request(src: Party, pkt: dict, protocol: int) -> dict:
    """The fields the agent needs to rebuild the packet (``agent/tracer.py``)."""
    return {"src_vport": src.vport.id, "src_ip": pkt["src_ip"], "dst_ip": pkt["dst_ip"], "protocol": protocol,
            "src_port": pkt.get("src_port", 0), "dst_port": pkt.get("dst_port", 0),
            "icmp_type": pkt.get("icmp_type", 0), "icmp_code": pkt.get("icmp_code", 0)}


def unavailable_reason(state: DirectoryState, src: Party) -> str | None:
    """Why the source's host cannot be asked, or None."""
    if src.vport is None:
        return f"the source {src.ip} is an address, not a vport: there is no host to trace on"
    if not src.vport.host:
        return f"vport {src.vport.name} is bound to no host"
    host = state.host_by_name(src.vport.host)
    if host is None:
        return f"host {src.vport.host} of vport {src.vport.name} is not registered"
    if not host.connected:
        return f"host {src.vport.host} is not connected (its agent is down)"
    return None


def compare(state: DirectoryState, answer: dict, observed: dict, dst: Party) -> list[str]:
    """The differences between the expected answer and what the datapath did (empty: they agree)."""
    diffs = []
    if observed.get("verdict") != answer["verdict"]:
        why = "; ".join(observed.get("notes") or [])
        diffs.append(f"verdict: expected {answer['verdict']}, datapath {observed.get('verdict')}"
                     + (f" ({why})" if why else ""))
    seen = observed.get("policy")
    expected = answer["policy"]["deciding"]
    if seen is None:
        diffs.append(f"deciding: expected {_deciding_name(state, expected)}, the datapath never reached the policy "
                     "table")
    else:
        got = seen.get("rule") or ("default" if seen.get("default_action") else f"cookie {seen.get('cookie')}")
        if got != expected:
            diffs.append(f"deciding: expected {_deciding_name(state, expected)}, datapath {_deciding_name(state, got)}")
    if answer["verdict"] == "allow" and observed.get("verdict") == "allow" and dst.vport is not None:
        out = observed.get("output") or {}
        if dst.vport.host == observed.get("host"):
            if out.get("vport") != dst.vport.id:
                diffs.append(f"output: expected vport {dst.vport.name}, datapath {out}")
        else:
            domain = state.domains[dst.vport.domain]
            if out.get("host") != dst.vport.host or out.get("vni") not in (None, domain.vni):
                diffs.append(f"output: expected the tunnel to {dst.vport.host} (VNI {domain.vni}), datapath {out}")
    return diffs


def _deciding_name(state: DirectoryState, deciding: str) -> str:
    if deciding == "default":
        return "the default action"
    acl = state.acls.get(deciding)
    if acl is None:
        return deciding
    return f"rule {acl.name or acl.id[:8]} (priority {acl.priority})"


def run_trace(store, state: DirectoryState, visible: Visible, body, clock: Callable[[], float] = time.time) -> dict:
    """The whole answer: parse, resolve, decide, and ask the source host's agent (``store``: the REST
    API's DirectoryStore; its ``ask_trace``/``wait_trace``/``withdraw_trace``)."""
    query = parse_query(body)
    domain, src, dst = resolve_ends(state, visible, query)
    answer = decide(state, domain, src, dst, query)
    if not query.datapath:
        answer.update(datapath="unavailable", datapath_detail={"reason": "not asked (datapath: false)"})
        return answer
    reason = unavailable_reason(state, src)
    if reason is not None:
        answer.update(datapath="unavailable", datapath_detail={"reason": reason})
        return answer
    host = src.vport.host
    started = time.monotonic()
    request_id = store.ask_trace(host, datapath_request(src, answer["packet"], query.protocol),
                                 int((clock() + query.timeout) * 1000))
    try:
        got = store.wait_trace(request_id, started + query.timeout)
    finally:
        try:
            store.withdraw_trace(request_id)
        except Exception:  # noqa: BLE001 - the next request deletes it once expired
            pass
    seconds = round(time.monotonic() - started, 4)
    if got is None:
        answer.update(datapath="unavailable", datapath_detail={
            "host": host, "reason": f"no answer from host {host}'s agent within {query.timeout:g} s",
            "seconds": seconds})
        return answer
    observed = got.answer or {}
    if "error" in observed:
        answer.update(datapath="unavailable", datapath_detail={"host": host, "reason": observed["error"],
                                                               "seconds": seconds})
        return answer
    diffs = compare(state, answer, observed, dst)
    answer["path"]["hops"][0] = {"host": host, "role": "sender", "tables": [
        {"table": t["table"], "name": t["name"]} for t in observed.get("tables", [])], "observed": True}
    answer.update(datapath="disagree" if diffs else "agree",
                  datapath_detail={"host": host, "differences": diffs, "observed": observed, "seconds": seconds})
    return answer
