"""``GET /api/v1/verdicts``: the verdict records the agents sent, with a cursor and a long poll.

What ``nuage-ctl flows --follow`` and the console's verdict stream loop on (docs/policy.md,
"Verdict logs"; docs/api.md). Query parameters:

* ``after``: the ``cursor`` of the previous answer (absent: from the oldest record kept);
* ``wait``: seconds (0..25) to wait for a first matching record when there is none yet;
* ``limit``: at most this many records (1..1000, default 100);
* ``last``: without ``after``, start with the newest ``last`` matching records (not the oldest);
* ``domain``: a domain id or name; ``verdict``: ``allow``, ``deny`` (enforced decisions) or
  ``audit`` (audit rules' "would ..." records).

Answer: ``{"records": [...], "cursor": "...", "reset": bool}``; ``reset`` says the cursor came
from another directory process (or before a restart) and the records start from the oldest kept.
At most ``[directory] verdict_waiters`` polls wait at once; one more is answered at once with
``Retry-After: 1``, so that followers can never hold every REST worker. An enterprise token sees
the records of its own enterprise's domains only.
"""

from __future__ import annotations

from nuage_ryu.directory.errors import BadRequest
from nuage_ryu.directory.store.verdicts import matches

PARAMS = ("after", "wait", "limit", "last", "domain", "verdict")
MAX_WAIT_S = 25.0
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
VERDICTS = ("allow", "deny", "audit")


def _number(params: dict, name: str, default: float, low: float, high: float, integer: bool = False) -> float:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low:g} and {high:g}")
    return value


def answer(feed, state, enterprise: str | None, params: dict) -> tuple[dict, dict]:
    """(body, headers) of one call; ``enterprise`` None for the admin token (every domain)."""
    wait = _number(params, "wait", 0.0, 0.0, MAX_WAIT_S)
    limit = int(_number(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, integer=True))
    last = int(_number(params, "last", -1, 0, MAX_LIMIT, integer=True))
    verdict = params.get("verdict")
    if verdict is not None and verdict not in VERDICTS:
        raise BadRequest(f"verdict must be one of: {', '.join(VERDICTS)}")
    domain = params.get("domain") or None
    visible = None if enterprise is None else frozenset(d.id for d in state.domains_of(enterprise))
    if feed is None:  # a store that does not follow the records (never the REST API's own)
        return {"records": [], "cursor": "", "reset": False}, {}
    result = feed.read(params.get("after"), limit, lambda r: matches(r, visible, domain, verdict), wait,
                       last if last >= 0 else None)
    headers = {"Retry-After": "1"} if result.get("busy") else {}
    return {"records": result["records"], "cursor": result["cursor"], "reset": result["reset"]}, headers


def openapi_operation() -> dict:
    """The operation's parameters and responses for the OpenAPI document."""
    record = {
        "type": "object",
        "description": "One verdict record (docs/policy.md, 'Verdict logs').",
        "properties": {
            "time": {"type": "string", "description": "UTC, ISO 8601 with milliseconds"},
            "host": {"type": "string"}, "domain": {"type": "string"}, "domain_id": {"type": "string"},
            "rule": {"type": "string", "nullable": True, "description": "The rule's name; null: default"},
            "rule_id": {"type": "string", "nullable": True}, "priority": {"type": "integer", "nullable": True},
            "default_action": {"type": "boolean"}, "verdict": {"type": "string", "enum": ["allow", "deny"]},
            "enforced": {"type": "boolean", "description": "false: an audit rule's 'would ...'"},
            "side": {"type": "string", "enum": ["sender", "receiver"]},
            "protocol": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "src_ip": {"type": "string"}, "src_port": {"type": "integer", "nullable": True},
            "dst_ip": {"type": "string"}, "dst_port": {"type": "integer", "nullable": True},
            "icmp_type": {"type": "integer"}, "icmp_code": {"type": "integer"},
            "src_vport": {"type": "string", "nullable": True}, "dst_vport": {"type": "string", "nullable": True},
        },
    }
    query = [
        ("after", {"type": "string"}, "The cursor of the previous answer; absent: from the oldest record kept."),
        ("wait", {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
         "Seconds to wait for a first matching record (long poll)."),
        ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "At most this many records."),
        ("last", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
         "Without after: the newest this many matching records."),
        ("domain", {"type": "string"}, "A domain id or name."),
        ("verdict", {"type": "string", "enum": list(VERDICTS)},
         "allow/deny: enforced decisions; audit: audit rules' records."),
    ]
    return {
        "description": __doc__.split("\n\n", 1)[1].strip(),
        "parameters": [{"name": n, "in": "query", "required": False, "schema": s, "description": d}
                       for n, s, d in query],
        "responses": {"200": {"description": "Records after the cursor (maybe none), and the next cursor",
                              "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                          "description": "Set when too many polls wait"}},
                              "content": {"application/json": {"schema": {
                                  "type": "object", "required": ["records", "cursor", "reset"],
                                  "properties": {"records": {"type": "array", "items": record},
                                                 "cursor": {"type": "string"}, "reset": {"type": "boolean"}}}}}}},
    }
