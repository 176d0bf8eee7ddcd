"""Parsing a request body: JSON types and field names against the model's field declarations (-> 400)."""

from __future__ import annotations

from nuage_ryu.directory.errors import BadRequest, ValidationError
from nuage_ryu.directory.model import FIELDS, DirectoryState, as_dict
from nuage_ryu.directory.validate.check import check_text, normalize_name


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
        _check_strings(value, key)
        if key == "name" and isinstance(value, str):
            value = normalize_name(value, key)
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


def _check_strings(value, where: str) -> None:
    """Every string in a field's value (keys of objects too): see ``check_text``."""
    if isinstance(value, str):
        check_text(value, f"field {where!r}")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, f"a key of field {where!r}")
            _check_strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, where)


def _same(shown, value) -> bool:
    if isinstance(shown, list) and isinstance(value, list):
        if all(isinstance(v, dict) for v in shown + value):  # port mappings: order-free list of objects
            return sorted(map(repr, shown)) == sorted(map(repr, value))
        return sorted(shown) == sorted(value)
    return shown == value
