"""Collection listings: filters and pages (``limit`` + opaque ``page_token``). Pure: objects in, a page out.

Order is stable and total: (priority, name, id) — rules by priority, everything else by name, the
id breaking ties. A page token holds the sort key of the last item sent, so the next page starts
right after it whatever was created or deleted in between: every item that exists for the whole
walk is returned exactly once; one created meanwhile appears if it sorts after the position
reached. (An offset would skip or repeat items when earlier ones are added or removed.)
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable

from nuage_ryu.directory.errors import BadRequest
from nuage_ryu.directory.model import ACTIONS, VPORT_STATUSES, VPORT_TYPES

MAX_LIMIT = 1000
PAGE_PARAMS = ("limit", "page_token")


def _choice(attr: str, choices) -> Callable:
    def check(value: str) -> str:
        if value not in choices:
            raise BadRequest(f"{attr} must be one of {', '.join(choices)}")
        return value
    return check


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise BadRequest("connected must be true or false")
    return value.lower() == "true"


def _refers_to(acl, pg_id: str) -> bool:
    return any(e.type == "policygroup" and e.id == pg_id for e in (acl.source, acl.destination))


# kind -> query parameter -> (parse the value, does an object match it), besides "name" (every kind with names)
FILTERS: dict[str, dict[str, tuple[Callable, Callable]]] = {
    "vport": {
        "host": (str, lambda o, v: o.host == v),
        "status": (_choice("status", VPORT_STATUSES), lambda o, v: o.status == v),
        "policygroup": (str, lambda o, v: v in o.policygroups),
        "type": (_choice("type", VPORT_TYPES), lambda o, v: o.type == v),
        "ip": (str, lambda o, v: o.ip == v),
        "mac": (lambda v: v.lower(), lambda o, v: o.mac == v),
    },
    "acl": {
        "policygroup": (str, _refers_to),
        "action": (_choice("action", ACTIONS), lambda o, v: o.action == v),
    },
    "subnet": {"cidr": (str, lambda o, v: o.cidr == v)},
    "host": {"connected": (_boolean, lambda o, v: o.connected == v)},
}
FILTER_HELP = {
    "name": "Only objects with this name.",
    "host": "Only vports on this host (name).",
    "status": "Only vports with this status.",
    "policygroup": "Vports: members of this policy group (id). Rules: with this group (id) as source or "
                   "destination.",
    "type": "Only vports of this type.",
    "ip": "Only the vport with this address.",
    "mac": "Only the vport with this MAC.",
    "action": "Only rules with this action.",
    "cidr": "Only the subnet with this CIDR.",
    "connected": "Only hosts that are (true) or are not (false) connected.",
}


def filter_params(kind: str) -> tuple[str, ...]:
    """The filter query parameters a list of ``kind`` takes."""
    return ("name", *FILTERS.get(kind, {}))


def sort_key(obj) -> tuple[int, str, str]:
    """The listing order: (priority, name, id)."""
    return (getattr(obj, "priority", 0), getattr(obj, "name", ""), obj.id)


def encode_token(key: tuple[int, str, str]) -> str:
    """The opaque page token that continues after ``key``."""
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[int, str, str]:
    """The sort key a page token continues after (BadRequest for anything this API did not issue)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
        if (isinstance(key, list) and len(key) == 3 and isinstance(key[0], int) and not isinstance(key[0], bool)
                and isinstance(key[1], str) and isinstance(key[2], str)):
            return (key[0], key[1], key[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise BadRequest("page_token is not valid (use the X-Next-Page-Token of the previous page as is)")


def parse_limit(text: str | None) -> int | None:
    """``limit`` 1..MAX_LIMIT, None when absent (the whole list)."""
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a number 1..{MAX_LIMIT}")
    return int(text)


def select(kind: str, objs, params: dict[str, str]) -> tuple[list, str | None]:
    """Filter, sort and cut one page of ``objs``; returns (page, token of the next page or None).

    ``params``: the request's query parameters (filters, ``limit``, ``page_token``); others are ignored.
    """
    tests = []
    if "name" in params:
        tests.append((lambda o, v: getattr(o, "name", None) == v, params["name"]))
    for key, (parse, match) in FILTERS.get(kind, {}).items():
        if key in params:
            tests.append((match, parse(params[key])))
    limit = parse_limit(params.get("limit"))
    after = decode_token(params["page_token"]) if "page_token" in params else None
    chosen = [o for o in objs if all(match(o, value) for match, value in tests)]
    chosen.sort(key=sort_key)
    if after is not None:
        chosen = chosen[bisect.bisect_right([sort_key(o) for o in chosen], after):]
    if limit is None or len(chosen) <= limit:
        return chosen, None
    page = chosen[:limit]
    return page, encode_token(sort_key(page[-1]))
