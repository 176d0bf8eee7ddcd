"""Validation and change planning: a request + a DirectoryState -> a Change, or a DirectoryError.

Pure: no I/O. Every REST write is planned here into one ``Change`` (a list of
insert/update/delete operations), which the store applies as one OVSDB
transaction, so a request is either applied completely or not at all.

Error classes: wrong JSON types / unknown fields -> BadRequest (400); invalid
values -> ValidationError (422); clashes with existing objects (names, VNIs,
addresses, priorities, overlaps, dependents, exhaustion) -> Conflict (409).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from nuage_ryu.directory import external, ipam
from nuage_ryu.directory.errors import BadRequest, Conflict, NotFound, ValidationError
from nuage_ryu.directory.model import (
    ACL,
    ANY,
    ENDPOINT_TYPES,
    FIELDS,
    KINDS,
    OBJECT_CLASSES,
    DirectoryState,
    Endpoint,
    as_dict,
)

MAX_NAME = 255
MAX_DESCRIPTION = 1024
VNI_MAX = 16777215
CT_ZONE_MAX = 65535
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOL_NUMBERS.items()}
_HOSTNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


@dataclass
class Op:
    """One row operation. ``fields`` use model attribute names and model values."""

    action: str  # insert | update | delete
    kind: str
    id: str
    fields: dict = field(default_factory=dict)


@dataclass
class Change:
    """Everything one request changes, applied as one transaction.

    result: (kind, id) of the object the request returns.
    guards: (kind, id, column) to verify-and-increment, so that concurrent writers
      (other API processes) that checked the same invariant conflict and re-plan.
    auto_assigned: an address/VNI/zone was picked automatically, so an index
      conflict means "someone else took it meanwhile": re-plan instead of failing.
    """

    ops: list[Op] = field(default_factory=list)
    result: tuple[str, str] | None = None
    guards: list[tuple[str, str, str]] = field(default_factory=list)
    auto_assigned: bool = False


# ---------------------------------------------------------------------------
# Body parsing (types -> 400)


def _type_ok(f, value) -> bool:
    if value is None:
        return f.nullable
    k = f.kind
    if k in ("string", "ip", "ip_or_empty", "cidr", "mac", "ports", "enum", "id"):
        return isinstance(value, str)
    if k == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if k == "boolean":
        return isinstance(value, bool)
    if k == "protocol":
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if k in ("endpoint", "counters"):
        return isinstance(value, dict)
    if k == "ids":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if k == "map":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if k == "portmaps":
        return isinstance(value, list)
    return True


_TYPE_NAMES = {"integer": "an integer", "boolean": "a boolean (true/false)", "endpoint": "an object",
               "counters": "an object", "portmaps": "a list of objects",
               "ids": "a list of id strings", "map": "an object of strings", "protocol": "a string or number"}


def parse_body(kind: str, body, current=None, state: DirectoryState | None = None) -> dict:
    """Check the JSON body of a create (current None) or update; return the settable fields given.

    Read-only / immutable fields are accepted on update only when equal to the
    current value, so that a client can PUT back what it got from GET.
    """
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    fields = {f.name: f for f in FIELDS[kind]}
    shown = as_dict(kind, current, state) if current is not None else None
    out = {}
    for key, value in body.items():
        f = fields.get(key)
        if f is None:
            settable = sorted(n for n, x in fields.items() if x.access != "server")
            raise BadRequest(f"unknown field {key!r} for {kind}; allowed: {', '.join(settable)}")
        if not _type_ok(f, value):
            raise BadRequest(f"field {key!r} must be {_TYPE_NAMES.get(f.kind, 'a string')}")
        if shown is None:
            if f.access == "server":
                raise ValidationError(f"field {key!r} is read-only")
        elif f.kind == "counters":
            continue  # observations that move between a GET and its PUT: ignored, never compared
        elif f.access == "server" or not f.mutable:
            if _same(shown.get(key), value):
                continue
            what = "is read-only" if f.access == "server" else "cannot be changed after creation"
            raise ValidationError(f"field {key!r} {what}")
        out[key] = value
    if shown is None:
        for f in FIELDS[kind]:
            if f.access == "required" and f.name not in out:
                raise ValidationError(f"field {f.name!r} is required")
    return out


def _same(shown, value) -> bool:
    if isinstance(shown, list) and isinstance(value, list):
        if all(isinstance(v, dict) for v in shown + value):  # port mappings: order-free list of objects
            return sorted(map(repr, shown)) == sorted(map(repr, value))
        return sorted(shown) == sorted(value)
    return shown == value


# ---------------------------------------------------------------------------
# Field value checks (-> 422)


def check_name(name: str, what: str = "name", allow_empty: bool = False) -> str:
    """Names: 1..255 printable characters, not looking like an id (names and ids are interchangeable
    in nuage-ctl, so a name that parses as a UUID would be ambiguous)."""
    if name == "" and allow_empty:
        return name
    if not name.strip():
        raise ValidationError(f"{what} must not be empty")
    if len(name) > MAX_NAME:
        raise ValidationError(f"{what} is longer than {MAX_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError(f"{what} contains control characters")
    if name != name.strip():
        raise ValidationError(f"{what} must not start or end with whitespace")
    if is_uuid(name):
        raise ValidationError(f"{what} {name!r} looks like an id; choose another name")
    return name


def check_description(text: str) -> str:
    if len(text) > MAX_DESCRIPTION:
        raise ValidationError(f"description is longer than {MAX_DESCRIPTION} characters")
    return text


def is_uuid(text: str) -> bool:
    """True if ``text`` is a canonical UUID string (an object id)."""
    try:
        return str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except (ValueError, AttributeError, TypeError):
        return False


def check_int(value: int, what: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise ValidationError(f"{what} {value} is out of range {lo}..{hi}")
    return value


def check_choice(value: str, what: str, choices) -> str:
    if value not in choices:
        raise ValidationError(f"{what} {value!r} is not one of: {', '.join(choices)}")
    return value


def check_hostname(name: str, what: str = "host") -> str:
    if len(name) > MAX_NAME or not _HOSTNAME.match(name):
        raise ValidationError(f"{what} {name!r} is not a valid host name (letters, digits, '.', '-', '_')")
    return name


def normalize_protocol(value) -> str:
    """'any', 'tcp', 'udp', 'icmp' or a number 0..255 (6/17/1 are shown as their names)."""
    if isinstance(value, str) and value.strip().lower() in ("any", "tcp", "udp", "icmp"):
        return value.strip().lower()
    if isinstance(value, str):
        if not value.isdigit():
            raise ValidationError(f"protocol {value!r} is not any, tcp, udp, icmp or a number 0..255")
        value = int(value)
    check_int(value, "protocol", 0, 255)
    return PROTOCOL_NAMES.get(value, str(value))


def check_ports(value: str) -> str:
    """'80' or '8000-8080' with 1 <= lo <= hi <= 65535."""
    m = _PORTS.match(value.strip())
    if not m:
        raise ValidationError(f"dst_ports {value!r} must be a port like '80' or a range like '8000-8080'")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    if not 1 <= lo <= 65535 or not 1 <= hi <= 65535:
        raise ValidationError(f"dst_ports {value!r}: ports must be within 1..65535")
    if lo > hi:
        raise ValidationError(f"dst_ports {value!r}: the range start is above its end")
    return str(lo) if lo == hi else f"{lo}-{hi}"


def normalize_datapath_id(value: str) -> str:
    """Datapath id as 16 lower-case hex digits ('0x1', '00:00:..', '1a' accepted); '' stays ''."""
    if value == "":
        return ""
    text = value.lower().replace(":", "")
    text = text[2:] if text.startswith("0x") else text
    if not text or len(text) > 16 or any(c not in "0123456789abcdef" for c in text):
        raise ValidationError(f"datapath_id {value!r} is not a 64-bit hex number")
    return text.rjust(16, "0")


def check_external_ids(value: Mapping) -> dict:
    for k, v in value.items():
        if not k or len(k) > MAX_NAME:
            raise ValidationError("external_ids keys must be 1..255 characters")
        if len(v) > MAX_DESCRIPTION:
            raise ValidationError(f"external_ids value of {k!r} is longer than {MAX_DESCRIPTION} characters")
    return dict(value)


# ---------------------------------------------------------------------------
# Helpers on the state


def get_object(state: DirectoryState, kind: str, obj_id: str):
    """The object or NotFound."""
    obj = state.get(kind, obj_id)
    if obj is None:
        raise NotFound(f"{kind} {obj_id} not found")
    return obj


def _unique_name(siblings, name: str, kind: str, parent: str, self_id: str | None = None) -> None:
    for s in siblings:
        if s.name == name and s.id != self_id:
            raise Conflict(f"a {kind} named {name!r} already exists in this {parent}")


def _new_id() -> str:
    return str(uuid.uuid4())


def _lowest_free(used: set[int], lo: int, hi: int, what: str) -> int:
    for candidate in range(lo, hi + 1):
        if candidate not in used:
            return candidate
    raise Conflict(f"no free {what} left ({lo}..{hi} all in use)")


def _endpoint(state: DirectoryState, domain_id: str, value, what: str) -> Endpoint:
    if not isinstance(value, dict):
        raise BadRequest(f"field {what!r} must be an object")
    etype = value.get("type")
    if not isinstance(etype, str):
        raise BadRequest(f"{what}.type must be a string")
    check_choice(etype, f"{what}.type", ENDPOINT_TYPES)
    allowed = {"any": {"type"}, "cidr": {"type", "cidr"}}.get(etype, {"type", "id"})
    extra = set(value) - allowed
    if extra:
        raise BadRequest(f"{what} of type {etype} takes only {', '.join(sorted(allowed))}; "
                         f"unexpected {', '.join(sorted(extra))}")
    if etype == "any":
        return ANY
    if etype == "cidr":
        cidr = value.get("cidr")
        if not isinstance(cidr, str):
            raise BadRequest(f"{what}.cidr must be a string")
        return Endpoint("cidr", cidr=str(ipam.parse_cidr(cidr, f"{what}.cidr").cidr))
    ref = value.get("id")
    if not isinstance(ref, str):
        raise BadRequest(f"{what}.id must be a string")
    target = state.get(etype, ref)
    # Another domain's (or tenant's) object is reported exactly like a missing one.
    if target is None or target.domain != domain_id:
        raise ValidationError(f"{what}: {etype} {ref} does not exist in this domain")
    return Endpoint(etype, id=ref)


def _check_acl(state: DirectoryState, domain_id: str, data: dict, self_id: str | None) -> dict:
    """Validate a complete rule (create, or current merged with the update)."""
    priority = check_int(data["priority"], "priority", 1, CT_ZONE_MAX)
    for other in state.acls_of(domain_id):
        if other.priority == priority and other.id != self_id:
            # 422, as issue 5 asks: a rule's priority is part of its validity (and the database's
            # (domain, priority) index violation in a race maps to the same error).
            raise ValidationError(f"priority {priority} is already used by rule {other.id} in this domain")
    out = {
        "priority": priority,
        "name": check_name(data.get("name", ""), allow_empty=True),
        "description": check_description(data.get("description", "")),
        "source": _endpoint(state, domain_id, data.get("source", {"type": "any"}), "source"),
        "destination": _endpoint(state, domain_id, data.get("destination", {"type": "any"}), "destination"),
        "protocol": normalize_protocol(data.get("protocol", "any")),
        "action": check_choice(data.get("action", "allow"), "action", ("allow", "deny")),
        "stateful": data.get("stateful", True),
    }
    proto = out["protocol"]
    ports = data.get("dst_ports")
    if ports is not None:
        if proto not in ("tcp", "udp"):
            raise ValidationError(f"dst_ports needs protocol tcp or udp, not {proto}")
        ports = check_ports(ports)
    out["dst_ports"] = ports
    for key in ("icmp_type", "icmp_code"):
        val = data.get(key)
        if val is not None:
            if proto != "icmp":
                raise ValidationError(f"{key} needs protocol icmp, not {proto}")
            check_int(val, key, 0, 255)
        out[key] = val
    if out["icmp_code"] is not None and out["icmp_type"] is None:
        raise ValidationError("icmp_code needs icmp_type")
    return out


def _acl_as_input(acl: ACL) -> dict:
    return {"priority": acl.priority, "name": acl.name, "description": acl.description,
            "source": acl.source.as_dict(), "destination": acl.destination.as_dict(),
            "protocol": acl.protocol, "dst_ports": acl.dst_ports, "icmp_type": acl.icmp_type,
            "icmp_code": acl.icmp_code, "action": acl.action, "stateful": acl.stateful}


def _policygroups(state: DirectoryState, domain_id: str, ids: list[str]) -> frozenset[str]:
    for pg_id in ids:
        pg = state.policygroups.get(pg_id)
        if pg is None or pg.domain != domain_id:
            raise ValidationError(f"policy group {pg_id} does not exist in this domain")
    return frozenset(ids)


def _tunnel_ip(value: str) -> str:
    return str(ipam.parse_ipv4(value, "tunnel_ip")) if value else ""


def _macs_in_use(state: DirectoryState) -> Callable[[str], bool]:
    def in_use(mac: str) -> bool:
        return state.mac_in_use(mac) or any(d.router_mac == mac for d in state.domains.values())

    return in_use


# ---------------------------------------------------------------------------
# Create


def plan_create(state: DirectoryState, kind: str, parent_id: str | None, body, *,
                new_id: str | None = None, rand: Callable[[int], int] | None = None,
                token_hash: str | None = None, now_ms: int = 0) -> Change:
    """Plan the creation of one object of ``kind`` under ``parent_id``.

    ``rand`` (bits -> int) drives MAC generation; ``token_hash``/``now_ms`` are
    used for tokens only.
    """
    data = parse_body(kind, body)
    obj_id = new_id or _new_id()
    parent_kind = KINDS[kind][2]
    parent = get_object(state, parent_kind, parent_id) if parent_kind else None
    change = Change(result=(kind, obj_id))
    name = data.get("name")
    fields: dict = {}
    if name is not None:
        fields["name"] = check_name(name, allow_empty=(kind in ("acl", "token")))
    if "description" in data:
        fields["description"] = check_description(data["description"])

    if kind == "enterprise":
        _unique_name(state.enterprises.values(), name, "enterprise", "directory")
    elif kind == "domain":
        _unique_name(state.domains_of(parent.id), name, "domain", "enterprise")
        fields["enterprise"] = parent.id
        used_vnis = {d.vni: d for d in state.domains.values()}
        if "vni" in data:
            vni = check_int(data["vni"], "vni", 1, VNI_MAX)
            if vni in used_vnis:
                raise Conflict(f"vni {vni} is already used by domain {used_vnis[vni].name!r}")
        else:
            vni = _lowest_free(set(used_vnis), 1, VNI_MAX, "VNI")
            change.auto_assigned = True
        fields["vni"] = vni
        fields["ct_zone"] = _lowest_free({d.ct_zone for d in state.domains.values()}, 1, CT_ZONE_MAX,
                                         "conntrack zone (one per domain)")
        change.auto_assigned = True  # ct_zone is always picked here
        fields["default_action"] = check_choice(data.get("default_action", "deny"), "default_action",
                                                ("allow", "deny"))
        fields["egress_nat"] = data.get("egress_nat", False)  # external connectivity (docs/external.md)
        if "router_mac" in data:
            fields["router_mac"] = ipam.normalize_mac(data["router_mac"], "router_mac")
        else:
            fields["router_mac"] = ipam.generate_mac(_macs_in_use(state), rand)
    elif kind == "zone":
        _unique_name(state.zones_of(parent.id), name, "zone", "domain")
        fields["domain"] = parent.id
    elif kind == "policygroup":
        _unique_name(state.policygroups_of(parent.id), name, "policy group", "domain")
        fields["domain"] = parent.id
    elif kind == "subnet":
        _unique_name(state.subnets_of_zone(parent.id), name, "subnet", "zone")
        cidr, gateway = ipam.check_subnet(data["cidr"], data.get("gateway"))
        net = ipam.parse_cidr(cidr)
        for other in state.subnets_of(parent.domain):
            o = ipam.parse_cidr(other.cidr)
            if o.first <= net.last and net.first <= o.last:
                raise Conflict(f"cidr {cidr} overlaps subnet {other.name!r} ({other.cidr}) "
                               "of the same domain")
        fields.update(zone=parent.id, domain=parent.domain, cidr=cidr, gateway=gateway)
        change.guards.append(("domain", parent.domain, "subnet_epoch"))
    elif kind == "vport":
        usage = state.subnet_ports(parent.id)  # precomputed sets: no scan of all vports
        if name in usage.names:
            raise Conflict(f"a vport named {name!r} already exists in this subnet")
        if data.get("ip"):
            ip = ipam.allocate_ip(parent.cidr, parent.gateway, usage.ips, data["ip"])
        else:
            ip = ipam.allocate_ip(parent.cidr, parent.gateway, usage.ips, hint=usage.max_ip)
            change.auto_assigned = True
        if data.get("mac"):
            mac = ipam.normalize_mac(data["mac"])
            if _macs_in_use(state)(mac):
                raise Conflict(f"mac {mac} is already in use")
        else:
            mac = ipam.generate_mac(_macs_in_use(state), rand)
            change.auto_assigned = True
        fields.update(
            subnet=parent.id, domain=parent.domain, ip=ip, mac=mac, gateway=parent.gateway, status="down",
            type=check_choice(data.get("type", "container"), "type", ("container", "vm", "host")),
            host=check_hostname(data["host"]) if data.get("host") else "",
            policygroups=_policygroups(state, parent.domain, data.get("policygroups", [])),
            external_ids=MappingProxyType(check_external_ids(data.get("external_ids", {}))),
            # External connectivity (docs/external.md): rules in nuage_ryu/directory/external.py.
            floating_ip=external.check_floating_ip(state, data.get("floating_ip", ""), None),
            port_mappings=external.parse_port_mappings(data.get("port_mappings", [])),
        )
        external.check_host_ports(state, fields["host"], fields["port_mappings"], None)
    elif kind == "acl":
        fields.update(_check_acl(state, parent.id, data, None))
        fields["domain"] = parent.id
    elif kind == "host":
        check_hostname(name, "name")
        if state.host_by_name(name):
            raise Conflict(f"a host named {name!r} already exists")
        fields["tunnel_ip"] = _tunnel_ip(data.get("tunnel_ip", ""))
        fields["datapath_id"] = normalize_datapath_id(data.get("datapath_id", ""))
    elif kind == "token":
        ent = state.enterprises.get(data["enterprise"])
        if ent is None:
            raise ValidationError(f"enterprise {data['enterprise']} does not exist")
        if not token_hash:
            raise ValueError("token_hash is required to create a token")
        fields.update(enterprise=ent.id, token_hash=token_hash, created=now_ms, name=data.get("name", ""))
    else:  # pragma: no cover - route table and KINDS agree
        raise NotFound(f"unknown object kind {kind}")
    change.ops.append(Op("insert", kind, obj_id, fields))
    return change


# ---------------------------------------------------------------------------
# Update


def plan_update(state: DirectoryState, kind: str, obj_id: str, body) -> Change:
    """Plan a PUT: only the mutable fields given change; the rest stays."""
    current = get_object(state, kind, obj_id)
    data = parse_body(kind, body, current, state)
    fields: dict = {}
    if "description" in data:
        fields["description"] = check_description(data["description"])
    if "name" in data and kind != "acl":
        name = check_name(data["name"])
        siblings = {
            "enterprise": lambda: state.enterprises.values(),
            "domain": lambda: state.domains_of(current.enterprise),
            "zone": lambda: state.zones_of(current.domain),
            "subnet": lambda: state.subnets_of_zone(current.zone),
            "vport": lambda: state.vports_of_subnet(current.subnet),
            "policygroup": lambda: state.policygroups_of(current.domain),
            "host": lambda: state.hosts.values(),
        }[kind]()
        _unique_name(siblings, name, kind, KINDS[kind][2] or "directory", obj_id)
        fields["name"] = name
    if kind == "domain" and "default_action" in data:
        fields["default_action"] = check_choice(data["default_action"], "default_action", ("allow", "deny"))
    if kind == "domain" and "egress_nat" in data:
        fields["egress_nat"] = data["egress_nat"]
    elif kind == "vport":
        if "host" in data:
            fields["host"] = check_hostname(data["host"]) if data["host"] else ""
        if "policygroups" in data:
            fields["policygroups"] = _policygroups(state, current.domain, data["policygroups"])
        if "external_ids" in data:
            fields["external_ids"] = MappingProxyType(check_external_ids(data["external_ids"]))
        # External connectivity (docs/external.md): rules in nuage_ryu/directory/external.py.
        if "floating_ip" in data:
            fields["floating_ip"] = external.check_floating_ip(state, data["floating_ip"], obj_id)
        if "port_mappings" in data:
            fields["port_mappings"] = external.parse_port_mappings(data["port_mappings"])
        if "host" in data or "port_mappings" in data:
            external.check_host_ports(state, fields.get("host", current.host),
                                      fields.get("port_mappings", current.port_mappings), obj_id)
    elif kind == "acl":
        merged = _acl_as_input(current)
        merged.update(data)
        new = _check_acl(state, current.domain, merged, obj_id)
        fields.update({k: v for k, v in new.items() if getattr(current, k) != v})
    elif kind == "host":
        if "tunnel_ip" in data:
            fields["tunnel_ip"] = _tunnel_ip(data["tunnel_ip"])
        if "datapath_id" in data:
            fields["datapath_id"] = normalize_datapath_id(data["datapath_id"])
    fields = {k: v for k, v in fields.items() if getattr(current, k) != v}
    change = Change(result=(kind, obj_id))
    if fields:
        change.ops.append(Op("update", kind, obj_id, fields))
    return change


def plan_membership(state: DirectoryState, pg_id: str, vport_ids, mode: str) -> Change:
    """Set (``set``), add (``add``) or remove (``remove``) member vports of a policy group."""
    pg = get_object(state, "policygroup", pg_id)
    if not isinstance(vport_ids, list) or not all(isinstance(v, str) for v in vport_ids):
        raise BadRequest("'vports' must be a list of vport ids")
    wanted = set(vport_ids)
    for vid in wanted:
        vport = state.vports.get(vid)
        if vport is None or vport.domain != pg.domain:
            raise ValidationError(f"vport {vid} does not exist in this domain")
    current = {v.id for v in state.members_of(pg_id)}
    if mode == "set":
        add, remove = wanted - current, current - wanted
    elif mode == "add":
        add, remove = wanted - current, set()
    else:
        add, remove = set(), wanted & current
    change = Change(result=("policygroup", pg_id))
    for vid in sorted(add | remove):
        groups = set(state.vports[vid].policygroups)
        if vid in add:
            groups.add(pg_id)
        else:
            groups.discard(pg_id)
        change.ops.append(Op("update", "vport", vid, {"policygroups": frozenset(groups)}))
    return change


# ---------------------------------------------------------------------------
# Delete


def _dependents(state: DirectoryState, kind: str, obj_id: str) -> list[tuple[str, object]]:
    """Direct dependents that block a non-cascading delete."""
    if kind == "enterprise":
        return [("domain", d) for d in state.domains_of(obj_id)]
    if kind == "domain":
        return ([("zone", z) for z in state.zones_of(obj_id)]
                + [("policygroup", p) for p in state.policygroups_of(obj_id)]
                + [("acl", a) for a in state.acls_of(obj_id)])
    if kind == "zone":
        return ([("subnet", s) for s in state.subnets_of_zone(obj_id)]
                + [("acl", a) for a in state.acls_referencing("zone", obj_id)])
    if kind == "subnet":
        return ([("vport", v) for v in state.vports_of_subnet(obj_id)]
                + [("acl", a) for a in state.acls_referencing("subnet", obj_id)])
    if kind == "policygroup":
        return ([("member vport", v) for v in state.members_of(obj_id)]
                + [("acl", a) for a in state.acls_referencing("policygroup", obj_id)])
    return []


_CHILD_KINDS = {
    "enterprise": lambda s, i: [("domain", d.id) for d in s.domains_of(i)]
    + [("token", t.id) for t in s.tokens.values() if t.enterprise == i],
    "domain": lambda s, i: [("zone", z.id) for z in s.zones_of(i)]
    + [("policygroup", p.id) for p in s.policygroups_of(i)] + [("acl", a.id) for a in s.acls_of(i)],
    "zone": lambda s, i: [("subnet", x.id) for x in s.subnets_of_zone(i)]
    + [("acl", a.id) for a in s.acls_referencing("zone", i)],
    "subnet": lambda s, i: [("vport", v.id) for v in s.vports_of_subnet(i)]
    + [("acl", a.id) for a in s.acls_referencing("subnet", i)],
    "policygroup": lambda s, i: [("acl", a.id) for a in s.acls_referencing("policygroup", i)],
}


def plan_delete(state: DirectoryState, kind: str, obj_id: str, cascade: bool = False) -> Change:
    """Plan a DELETE. With dependents: 409 unless ``cascade``, which deletes the whole subtree
    (and rules referencing deleted zones/subnets/groups) in the same transaction."""
    get_object(state, kind, obj_id)
    deps = _dependents(state, kind, obj_id)
    if deps and not cascade:
        counts: dict[str, int] = {}
        for dkind, _ in deps:
            counts[dkind] = counts.get(dkind, 0) + 1
        listing = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in counts.items())
        raise Conflict(f"{kind} {obj_id} still has {listing}; delete them first or use ?cascade=true")
    doomed: dict[str, str] = {}
    todo = [(kind, obj_id)]
    while todo:
        k, i = todo.pop()
        if i in doomed:
            continue
        doomed[i] = k
        if k in _CHILD_KINDS:
            todo.extend(_CHILD_KINDS[k](state, i))
    # Tokens of an enterprise are not "children" for the user; they always go with it (see _CHILD_KINDS).
    change = Change(result=None)
    for i, k in doomed.items():
        change.ops.append(Op("delete", k, i))
    # Memberships that surviving vports hold in deleted policy groups are removed, not the vports.
    drops: dict[str, set[str]] = {}
    for i, k in doomed.items():
        if k == "policygroup":
            for vport in state.members_of(i):
                if vport.id not in doomed:
                    drops.setdefault(vport.id, set()).add(i)
    for vid, groups in drops.items():
        change.ops.append(Op("update", "vport", vid, {"policygroups": state.vports[vid].policygroups - groups}))
    return change


def apply_change(state: DirectoryState, change: Change) -> DirectoryState:
    """Apply a planned change in memory (what the database does): a new state, ``state`` untouched.

    Used by tests and tools that need a directory without a database. Does not
    re-check invariants; the planner did.
    """
    maps = {plural: dict(state.table(kind)) for kind, (_t, plural, _p) in KINDS.items()}
    for kind, obj_id, column in change.guards:
        table = maps[KINDS[kind][1]]
        table[obj_id] = replace(table[obj_id], **{column: getattr(table[obj_id], column) + 1})
    for op in change.ops:
        table = maps[KINDS[op.kind][1]]
        if op.action == "insert":
            table[op.id] = OBJECT_CLASSES[op.kind](id=op.id, **op.fields)
        elif op.action == "update":
            table[op.id] = replace(table[op.id], **op.fields)
        else:
            table.pop(op.id, None)
    return DirectoryState(**maps)
