"""Checks of field values (-> 422) and of a value against the current state (names, references, rules).

Pure: a value (and a ``DirectoryState``) in, the normalised value out, or a DirectoryError.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping

from nuage_ryu.directory import ipam
from nuage_ryu.directory.errors import BadRequest, Conflict, NotFound, ValidationError
from nuage_ryu.directory.model import ACL, ANY, ENDPOINT_TYPES, DirectoryState, Endpoint

MAX_NAME = 255
MAX_DESCRIPTION = 1024
VNI_MAX = 16777215
CT_ZONE_MAX = 65535
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOL_NUMBERS.items()}
_HOSTNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


# ---------------------------------------------------------------------------
# Text: what no string may hold, and what a name may not look like

# Free text (descriptions) may span lines; no other control character is stored anywhere.
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r")
# Bidi embeddings/overrides/isolates (U+202A-U+202E, U+2066-U+2069): they reorder how text is
# shown ("Trojan Source"), so they are refused in every string, free text included.
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# In names, no invisible or formatting characters at all: controls (Cc), format characters (Cf:
# zero-width space/joiners, bidi marks, BOM, tags), surrogates, line and paragraph separators.
# Two names that look the same must be the same name. (Unassigned and private-use code points
# are not refused: they show as boxes, they cannot pass for another name.)
NAME_REFUSED_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def text_refused(c: str) -> bool:
    """True for a character no string may hold (see ``check_text``)."""
    return (unicodedata.category(c) == "Cc" and c not in _TEXT_CONTROLS_ALLOWED) or c in _BIDI_CONTROLS


def check_text(value: str, what: str) -> str:
    """Any string of a request: no NUL or other control character (TAB/CR/LF allowed), no bidi
    override. The database refuses NUL itself, and refusing it here keeps the error the client's."""
    for c in value:
        if text_refused(c):
            raise ValidationError(f"{what} contains the control character U+{ord(c):04X}")
    return value


def normalize_name(name: str, what: str = "name") -> str:
    """A name in Unicode NFC, refused when it holds invisible/format characters (look-alikes)."""
    name = unicodedata.normalize("NFC", name)
    for c in name:
        category = unicodedata.category(c)
        if category in NAME_REFUSED_CATEGORIES:
            kind = "control" if category == "Cc" else "invisible or format"
            raise ValidationError(f"{what} contains the {kind} character U+{ord(c):04X}")
    return name


# ---------------------------------------------------------------------------
# Field values


def check_name(name: str, what: str = "name", allow_empty: bool = False) -> str:
    """Names: 1..255 printable characters, not looking like an id (names and ids are interchangeable
    in nuage-ctl, so a name that parses as a UUID would be ambiguous)."""
    if name == "" and allow_empty:
        return name
    if not name.strip():
        raise ValidationError(f"{what} must not be empty")
    if len(name) > MAX_NAME:
        raise ValidationError(f"{what} is longer than {MAX_NAME} characters")
    name = normalize_name(name, what)
    if name != name.strip():
        raise ValidationError(f"{what} must not start or end with whitespace")
    if is_uuid(name):
        raise ValidationError(f"{what} {name!r} looks like an id; choose another name")
    return name


def check_description(text: str) -> str:
    """A description: at most 1024 characters, no control characters but TAB/CR/LF."""
    check_text(text, "description")
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
    """``value`` if within ``lo..hi``."""
    if not lo <= value <= hi:
        raise ValidationError(f"{what} {value} is out of range {lo}..{hi}")
    return value


def check_choice(value: str, what: str, choices) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValidationError(f"{what} {value!r} is not one of: {', '.join(choices)}")
    return value


def check_hostname(name: str, what: str = "host") -> str:
    """A host name: letters, digits, '.', '-', '_' (not starting with '.' or '-'), at most 255."""
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
    """external_ids: keys 1..255 characters, values at most 1024."""
    for k, v in value.items():
        check_text(k, "external_ids key")
        check_text(v, f"external_ids value of {k!r}")
        if not k or len(k) > MAX_NAME:
            raise ValidationError("external_ids keys must be 1..255 characters")
        if len(v) > MAX_DESCRIPTION:
            raise ValidationError(f"external_ids value of {k!r} is longer than {MAX_DESCRIPTION} characters")
    return dict(value)


# ---------------------------------------------------------------------------
# Values against the state


def get_object(state: DirectoryState, kind: str, obj_id: str):
    """The object or NotFound."""
    obj = state.get(kind, obj_id)
    if obj is None:
        raise NotFound(f"{kind} {obj_id} not found")
    return obj


def unique_name(siblings, name: str, kind: str, parent: str, self_id: str | None = None) -> None:
    """Conflict if another of ``siblings`` (not ``self_id``) is already named ``name``."""
    for s in siblings:
        if s.name == name and s.id != self_id:
            article = "an" if kind[0] in "aeiou" else "a"  # "an enterprise"
            raise Conflict(f"{article} {kind} named {name!r} already exists in this {parent}")


def lowest_free(used: set[int], lo: int, hi: int, what: str) -> int:
    """The lowest number of ``lo..hi`` not in ``used``; Conflict when all are used."""
    for candidate in range(lo, hi + 1):
        if candidate not in used:
            return candidate
    raise Conflict(f"no free {what} left ({lo}..{hi} all in use)")


def endpoint(state: DirectoryState, domain_id: str, value, what: str) -> Endpoint:
    """A rule endpoint from its JSON form; referenced objects must be in the rule's domain."""
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


def check_acl(state: DirectoryState, domain_id: str, data: dict, self_id: str | None) -> dict:
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
        "source": endpoint(state, domain_id, data.get("source", {"type": "any"}), "source"),
        "destination": endpoint(state, domain_id, data.get("destination", {"type": "any"}), "destination"),
        "protocol": normalize_protocol(data.get("protocol", "any")),
        "action": check_choice(data.get("action", "allow"), "action", ("allow", "deny")),
        "stateful": data.get("stateful", True),
        "log": data.get("log", False),
        "enforce": data.get("enforce", True),
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


def acl_as_input(acl: ACL) -> dict:
    """A stored rule in the input form of ``check_acl`` (to merge an update into)."""
    return {"priority": acl.priority, "name": acl.name, "description": acl.description,
            "source": acl.source.as_dict(), "destination": acl.destination.as_dict(),
            "protocol": acl.protocol, "dst_ports": acl.dst_ports, "icmp_type": acl.icmp_type,
            "icmp_code": acl.icmp_code, "action": acl.action, "stateful": acl.stateful,
            "log": acl.log, "enforce": acl.enforce}


def policygroups_in(state: DirectoryState, domain_id: str, ids: list[str]) -> frozenset[str]:
    """Policy group ids, each of which must exist in ``domain_id``."""
    for pg_id in ids:
        pg = state.policygroups.get(pg_id)
        if pg is None or pg.domain != domain_id:
            raise ValidationError(f"policy group {pg_id} does not exist in this domain")
    return frozenset(ids)


def tunnel_ip(value: str) -> str:
    """A host's tunnel IP (IPv4, normalised); '' stays ''."""
    return str(ipam.parse_ipv4(value, "tunnel_ip")) if value else ""


def macs_in_use(state: DirectoryState) -> Callable[[str], bool]:
    """The test 'is this MAC taken' (by a vport or a domain's virtual router)."""
    def in_use(mac: str) -> bool:
        return state.mac_in_use(mac) or any(d.router_mac == mac for d in state.domains.values())

    return in_use

