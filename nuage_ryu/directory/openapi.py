"""The OpenAPI 3.0 document of /api/v1, generated from the route table and the field declarations.

Generated (not hand-written) so that it cannot drift from what the API accepts;
the tests validate real requests and responses against it with openapi-core.
"""

from __future__ import annotations

import unicodedata

from nuage_ryu import __version__
from nuage_ryu.directory import listing, verdicts_api
from nuage_ryu.directory.model import ACTIONS as ACTIONS_OF_RULES
from nuage_ryu.directory.model import FIELDS, KINDS, VPORT_STATUSES, VPORT_TYPES, Field
from nuage_ryu.directory.validate import check
from nuage_ryu.directory.validate.bulk import ACTIONS, BULK_KINDS, MAX_OPERATIONS

ERRORS = {
    "400": "Malformed request (not JSON, wrong types, unknown fields or parameters)",
    "401": "Missing or unknown bearer token",
    "403": "Not allowed for this token",
    "404": "No such object (or not visible to this token)",
    "405": "Method not allowed on this path",
    "408": "The request body did not arrive within the read timeout",
    "413": "Request body too large",
    "409": "Conflict with existing state (duplicate, overlap, in use, exhausted, has dependents)",
    "422": "Invalid value",
    "503": "Directory database unavailable; retry",
}

_UUID = {"type": "string", "format": "uuid"}


_COUNT = {"type": "object", "required": ["packets", "bytes"], "additionalProperties": False,
          "properties": {"packets": {"type": "integer", "minimum": 0}, "bytes": {"type": "integer", "minimum": 0}}}
_COUNTERS = {
    "type": "object",
    "required": ["packets", "bytes", "by_host"],
    "additionalProperties": False,
    "properties": {
        "packets": {"type": "integer", "minimum": 0},
        "bytes": {"type": "integer", "minimum": 0},
        "by_host": {"type": "object", "additionalProperties": _COUNT,
                    "description": "The last totals each host reported, by host name."},
    },
}
_WARNING = {
    "type": "object",
    "required": ["code", "message", "rule", "by"],
    "properties": {
        "code": {"type": "string", "enum": ["shadowed"]},
        "message": {"type": "string"},
        "rule": {**_UUID, "description": "The rule that can never match."},
        "by": {**_UUID, "description": "The earlier rule that matches all of its traffic."},
    },
}


_BULK_OPERATION = {
    "type": "object",
    "required": ["action", "kind"],
    "additionalProperties": False,
    "description": "create: kind, parent (except enterprise/host), body, optional ref; update: kind, id, body; "
                   "delete: kind, id, optional cascade. Wherever an object id is expected (parent, id, "
                   "body.policygroups, body.source.id, body.destination.id) \"$REF\" names the object an "
                   "earlier create of this request gave ref REF.",
    "properties": {
        "action": {"type": "string", "enum": list(ACTIONS)},
        "kind": {"type": "string", "enum": list(BULK_KINDS)},
        "parent": {"type": "string", "description": "Parent id or $REF (create)."},
        "id": {"type": "string", "description": "Object id or $REF (update, delete)."},
        "ref": {"type": "string", "maxLength": 255, "description": "Name for the new object within this request."},
        "body": {"type": "object", "description": "What POST (create) or PUT (update) of the kind takes."},
        "cascade": {"type": "boolean", "description": "Delete: also everything below (as ?cascade=true)."},
    },
}
_BULK_RESULT = {
    "type": "object",
    "required": ["index", "action", "kind", "id"],
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "kind": {"type": "string", "enum": list(BULK_KINDS)},
        "id": _UUID,
        "ref": {"type": "string"},
        "object": {"type": "object", "description": "The object after the request (create, update)."},
        "warnings": {"type": "array", "items": _WARNING, "description": "Rules: as for a single create/update."},
    },
}
_PAGE_HEADERS = {
    "X-Next-Page-Token": {"description": "Present when more items follow: pass it as page_token.",
                          "schema": {"type": "string"}},
    "Link": {"description": 'The next page\'s URL, rel="next" (when more items follow).',
             "schema": {"type": "string"}},
}


# The filters whose values the server checks (listing.FILTERS): the same choices, stated.
_FILTER_SCHEMAS = {
    "status": {"type": "string", "enum": list(VPORT_STATUSES)},
    "type": {"type": "string", "enum": list(VPORT_TYPES)},
    "action": {"type": "string", "enum": list(ACTIONS_OF_RULES)},
    "connected": {"type": "string", "enum": ["true", "false"]},
}


def list_parameters(kind: str) -> list[dict]:
    """Query parameters of a list of ``kind``: its filters, limit and page_token."""
    params = [{"name": p, "in": "query", "required": False, "schema": _FILTER_SCHEMAS.get(p, {"type": "string"}),
               "description": listing.FILTER_HELP[p]} for p in listing.filter_params(kind)]
    params.append({"name": "limit", "in": "query", "required": False,
                   "schema": {"type": "integer", "minimum": 1, "maximum": listing.MAX_LIMIT},
                   "description": "At most this many items (default: all). Items are ordered by "
                                  "(priority, name, id)."})
    params.append({"name": "page_token", "in": "query", "required": False, "schema": {"type": "string"},
                   "description": "Opaque: the X-Next-Page-Token of the previous page; continues right after "
                                  "its last item (stable while objects are created or deleted)."})
    return params


_PORT_MAPPING = {
    "type": "object",
    "required": ["host_port", "container_port"],
    "properties": {
        "protocol": {"type": "string", "enum": ["tcp", "udp"], "default": "tcp"},
        "host_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "container_port": {"type": "integer", "minimum": 1, "maximum": 65535},
    },
    "additionalProperties": False,
}


def _char_class(refused) -> str:
    """A regex character class (ECMA-262 and Python alike) of the characters ``refused(c)`` is False for."""
    ranges: list[list[int]] = []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates: not characters (a JSON body holding one is refused as malformed)
        if refused(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    # The characters themselves, not \\u escapes (which not every generator of the document's
    # users reads); none of them is special inside a class.
    parts = "".join(chr(lo) if lo == hi else f"{chr(lo)}-{chr(hi)}" for lo, hi in ranges if hi <= 0xFFFF)
    return "[^" + parts + "]"


def _name_refused(c: str) -> bool:
    return unicodedata.category(c) in check.NAME_REFUSED_CATEGORIES


def _text_refused(c: str) -> bool:
    return check.text_refused(c)


_NAME_CHAR = _char_class(_name_refused)
_NAME_EDGE = _char_class(lambda c: _name_refused(c) or c.isspace())
# What check_name / check_text take (the NFC normalization aside): no refused character, no
# leading or trailing whitespace.
NAME_PATTERN = f"^{_NAME_EDGE}({_NAME_CHAR}*{_NAME_EDGE})?$"
TEXT_PATTERN = f"^{_char_class(_text_refused)}*$"
_HOSTNAME = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", "maxLength": check.MAX_NAME}
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_CIDR = {"type": "string", "pattern": rf"^{_IPV4}/([0-9]|[12][0-9]|3[0-2])$",
         "description": "An IPv4 network, host bits clear (10.0.1.0/24)."}
# One form per endpoint type: {"type": "any"}, {"type": "zone", "id": ...}, {"type": "cidr", "cidr": ...}.
_ENDPOINT = {"oneOf": [
    {"type": "object", "required": ["type"], "additionalProperties": False,
     "properties": {"type": {"type": "string", "enum": ["any"]}}},
    {"type": "object", "required": ["type", "id"], "additionalProperties": False,
     "properties": {"type": {"type": "string", "enum": ["policygroup", "zone", "subnet"]}, "id": _UUID}},
    {"type": "object", "required": ["type", "cidr"], "additionalProperties": False,
     "properties": {"type": {"type": "string", "enum": ["cidr"]}, "cidr": _CIDR}},
]}


def _string_schema(f: Field, kind: str) -> dict:
    """The string fields whose value is checked on its own: the same checks, as a pattern."""
    if f.name == "name" and kind == "host":
        return dict(_HOSTNAME, minLength=1)
    if f.name == "host":
        return {"type": "string", "pattern": "^$|" + _HOSTNAME["pattern"], "maxLength": check.MAX_NAME}
    if f.name == "name":
        s = {"type": "string", "pattern": NAME_PATTERN, "maxLength": check.MAX_NAME}
        if kind in ("acl", "token"):  # may be empty
            s["pattern"] = "^$|" + NAME_PATTERN
        else:
            s["minLength"] = 1
        return s
    if f.name == "description":
        return {"type": "string", "pattern": TEXT_PATTERN, "maxLength": check.MAX_DESCRIPTION}
    if f.name == "datapath_id":
        return {"type": "string", "pattern": "^$|^(0x)?[0-9a-f]{1,16}$"}
    return {"type": "string"}


def field_schema(f: Field, kind: str = "") -> dict:
    """JSON schema of one field (of an object of ``kind``)."""
    k = f.kind
    if k == "string":
        s: dict = _string_schema(f, kind)
    elif k == "cidr":
        s = dict(_CIDR)
    elif k == "ports":
        s = {"type": "string", "pattern": r"^[0-9]{1,5}(-[0-9]{1,5})?$"}
    elif k == "ip":
        s = {"type": "string", "format": "ipv4"}
    elif k == "ip_or_empty":
        s = {"type": "string", "pattern": rf"^$|^{_IPV4}$"}
    elif k == "mac":
        # unicast (the low bit of the first octet clear), not all zero
        s = {"type": "string", "example": "02:00:00:00:00:01",
             "pattern": "^(?!00(:00){5}$)[0-9a-fA-F][02468aceACE](:[0-9a-fA-F]{2}){5}$"}
    elif k == "id":
        s = dict(_UUID)
    elif k == "integer":
        s = {"type": "integer"}
        if f.minimum is not None:
            s["minimum"] = f.minimum
        if f.maximum is not None:
            s["maximum"] = f.maximum
    elif k == "boolean":
        s = {"type": "boolean"}
    elif k == "enum":
        s = {"type": "string", "enum": list(f.choices)}
    elif k == "endpoint":
        s = dict(_ENDPOINT)
    elif k == "protocol":
        s = {"oneOf": [{"type": "string", "pattern": rf"^(any|tcp|udp|icmp|{_OCTET})$"},
                       {"type": "integer", "minimum": 0, "maximum": 255}]}
    elif k == "ids":
        s = {"type": "array", "items": _UUID}
    elif k == "map":
        # (OpenAPI 3.0 has no propertyNames: keys get the same checks as values, said in words)
        s = {"type": "object",
             "additionalProperties": {"type": "string", "pattern": TEXT_PATTERN,
                                      "maxLength": check.MAX_DESCRIPTION},
             "x-key-rules": "keys: 1..255 characters, no control characters but TAB/CR/LF"}
    elif k == "timestamp":
        s = {"type": "string", "format": "date-time"}
    elif k == "counters":
        s = dict(_COUNTERS)
    elif k == "portmaps":
        s = {"type": "array", "items": _PORT_MAPPING}
    else:  # pragma: no cover
        raise ValueError(k)
    if f.nullable:
        s["nullable"] = True
    if f.description:
        s["description"] = f.description
    if f.access == "server":
        s["readOnly"] = True
    return s


def _cap(kind: str) -> str:
    return {"policygroup": "PolicyGroup", "acl": "ACL", "vport": "VPort", "token": "ApiToken"}.get(
        kind, kind.capitalize())


_REF_OR_IP = {"type": "string", "minLength": 1,
              "description": "A vport (name, id, id prefix of 4+ characters, or path [enterprise/]domain/zone/"
                             "subnet/name) or an IPv4 address of the source's domain."}
_TRACE_RULE = {"type": "object", "nullable": True, "description": "The deciding rule (null: the default action).",
               "properties": {k: {} for k in ("id", "name", "priority", "action", "stateful", "protocol", "dst_ports",
                                              "icmp_type", "icmp_code", "source", "destination", "description")}}
TRACE_SCHEMAS = {
    "TraceQuery": {
        "type": "object", "required": ["from", "to"], "additionalProperties": False,
        "properties": {
            "from": _REF_OR_IP, "to": _REF_OR_IP,
            "protocol": {"description": "tcp, udp, icmp, any (a packet only protocol-any rules match) or an IP "
                                        "protocol number 1..254; default tcp with a port, else icmp",
                         "oneOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": 254}]},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                     "description": "Destination port (tcp/udp; required for them)."},
            "src_port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 40000},
            "icmp_type": {"type": "integer", "minimum": 0, "maximum": 255, "default": 8},
            "icmp_code": {"type": "integer", "minimum": 0, "maximum": 255, "default": 0},
            "domain": {"type": "string", "description": "The domain (name, enterprise/domain or id) when the "
                                                        "source is an address in several domains."},
            "timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 30, "default": 5,
                        "description": "Seconds to wait for the source host's ofproto/trace."},
            "datapath": {"type": "boolean", "default": True,
                         "description": "false: answer from the policy only, ask no agent."},
        },
    },
    "TraceAnswer": {
        "type": "object", "required": ["verdict", "rule", "default_action", "path", "datapath"],
        "properties": {
            "verdict": {"type": "string", "enum": ["allow", "deny"],
                        "description": "Is the packet delivered (policy and forwarding)?"},
            "rule": _TRACE_RULE,
            "default_action": {"type": "boolean", "description": "No rule matched: the domain's default decided."},
            "policy": {"type": "object", "description": "The policy's own verdict, deciding rule id or "
                                                        "\"default\", stateful, explanation."},
            "domain": {"type": "object"}, "packet": {"type": "object"}, "from": {"type": "object"},
            "to": {"type": "object", "description": "Also forwarding: vport, outside or unknown."},
            "path": {"type": "object", "description": "hosts, and hops (host, role, tables visited; observed: "
                                                      "true when read from ofproto/trace)."},
            "datapath": {"type": "string", "enum": ["agree", "disagree", "unavailable"],
                         "description": "The source host's ofproto/trace against this answer."},
            "datapath_detail": {"type": "object", "description": "host, reason (unavailable), differences "
                                                                 "(disagree), observed (the agent's reading of "
                                                                 "the trace), seconds."},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def component_schemas() -> dict:
    """Object, Create and Update schemas for every kind, plus Error."""
    out: dict = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"],
                                     "properties": {"code": {"type": "string"},
                                                    "message": {"type": "string"}}}},
        },
        "Members": {"type": "object", "required": ["vports"], "additionalProperties": False,
                    "properties": {"vports": {"type": "array", "items": _UUID}}},
        "BulkRequest": {"type": "object", "required": ["operations"], "additionalProperties": False,
                        "properties": {"operations": {"type": "array", "minItems": 1, "maxItems": MAX_OPERATIONS,
                                                      "items": _BULK_OPERATION}}},
        "BulkResult": {"type": "object", "required": ["dry_run", "results"],
                       "properties": {"dry_run": {"type": "boolean"},
                                      "results": {"type": "array", "items": _BULK_RESULT}}},
        "BulkError": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"],
                                     "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                    "operation": {"type": "integer", "minimum": 0,
                                                                  "description": "Index of the failing "
                                                                                 "operation."}}}},
        },
    }
    out.update(TRACE_SCHEMAS)
    for kind in KINDS:
        fields = FIELDS[kind]
        name = _cap(kind)
        props = {}
        for f in fields:
            s = field_schema(f, kind)
            s.pop("readOnly", None)
            props[f.name] = s
        if kind == "token":
            props["token"] = {"type": "string", "description": "The token; returned only by create."}
        if kind == "acl":
            props["warnings"] = {"type": "array", "items": _WARNING,
                                 "description": "Returned by create/update only: rules shadowed by an "
                                                "earlier one (this rule, or later rules this one shadows)."}
        out[name] = {"type": "object", "required": [f.name for f in fields], "properties": props}
        create = {f.name: field_schema(f, kind) for f in fields if f.access != "server"}
        out["Create" + name] = {"type": "object", "additionalProperties": False, "properties": create}
        required = [f.name for f in fields if f.access == "required"]
        if required:  # OpenAPI 3.0: an empty "required" is invalid (a token needs enterprise OR host)
            out["Create" + name]["required"] = required
        # PUT takes mutable fields; the others are readOnly here: accepted only unchanged (the round
        # trip of a GET), counters ignored whatever their value.
        update = {f.name: field_schema(f, kind) for f in fields}
        for f in fields:
            if f.access == "server" or not f.mutable:
                update[f.name]["readOnly"] = True
        out["Update" + name] = {"type": "object", "additionalProperties": False, "properties": update}
    return out


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(codes) -> dict:
    return {c: {"description": ERRORS[c], **_json(_ref("Error"))} for c in codes}


def build_document(routes) -> dict:
    """The whole OpenAPI document for ``routes`` (see ``api.ROUTES``)."""
    paths: dict = {}
    std = ["400", "401", "404", "405", "503"]
    for route in routes:
        item: dict = {}
        params = [{"name": p, "in": "path", "required": True, "schema": _UUID}
                  for p in ("id", "vport_id") if "{" + p + "}" in route.pattern]
        if params:
            item["parameters"] = params
        for method, handler in route.methods.items():
            op: dict = {"summary": f"{handler} {route.summary}", "operationId": f"{handler}_{route.pattern}",
                        "responses": {}}
            kind = route.kind
            name = _cap(kind) if kind else None
            if handler == "openapi":
                op["security"] = []
                op["responses"] = {"200": {"description": "This document", **_json({"type": "object"})},
                                   **_errors(["404", "405"])}
            elif handler == "list":
                op["parameters"] = list_parameters(kind)
                op["responses"] = {"200": {"description": "Objects (one page when limit is given)",
                                           "headers": _PAGE_HEADERS,
                                           **_json({"type": "array", "items": _ref(name)})},
                                   **_errors(std + ["403"])}
            elif handler == "bulk":
                op["description"] = (f"At most {MAX_OPERATIONS} operations, planned in order (each validated as "
                                     "its single call) and committed as one transaction: all or nothing. An "
                                     "error names the failing operation (error.operation). An enterprise token "
                                     "may do exactly what its single calls may.")
                op["parameters"] = [{"name": "dry_run", "in": "query", "required": False,
                                     "schema": {"type": "string", "enum": ["true", "false"]},
                                     "description": "Validate and answer as if applied; change nothing."}]
                op["requestBody"] = {"required": True, **_json(_ref("BulkRequest"))}
                op["responses"] = {"200": {"description": "Applied (or, with dry_run, would be)",
                                           **_json(_ref("BulkResult"))},
                                   **{c: {"description": ERRORS[c], **_json(_ref("BulkError"))}
                                      for c in ["400", "401", "403", "404", "405", "409", "413", "422", "503"]}}
            elif handler == "verdicts":
                op.update(verdicts_api.openapi_operation())
                op["responses"].update(_errors(["400", "401", "404", "405"]))
            elif handler == "trace":
                op["description"] = ("Which rule decides this packet (or the default action), its path, and "
                                     "whether the flows installed on the source vport's host agree "
                                     "(ofproto/trace there). An enterprise token traces within its enterprise.")
                op["requestBody"] = {"required": True, **_json(_ref("TraceQuery"))}
                op["responses"] = {"200": {"description": "The explanation", **_json(_ref("TraceAnswer"))},
                                   **_errors(std + ["408", "409", "413", "422"])}
            elif handler == "create":
                op["requestBody"] = {"required": True, **_json(_ref("Create" + name))}
                op["responses"] = {"201": {"description": "Created", **_json(_ref(name))},
                                   **_errors(std + ["403", "408", "409", "413", "422"])}
            elif handler == "show":
                op["responses"] = {"200": {"description": "The object", **_json(_ref(name))},
                                   **_errors(std)}
            elif handler == "update":
                op["requestBody"] = {"required": True, **_json(_ref("Update" + name))}
                op["responses"] = {"200": {"description": "Updated", **_json(_ref(name))},
                                   **_errors(std + ["403", "408", "409", "413", "422"])}
            elif handler in ("delete", "members_remove"):
                if handler == "delete":
                    op["parameters"] = [{"name": "cascade", "in": "query", "required": False,
                                         "schema": {"type": "string", "enum": ["true", "false", "1", "0",
                                                                                "yes", "no"]}}]
                op["responses"] = {"204": {"description": "Deleted"}, **_errors(std + ["403", "409", "422"])}
            elif handler == "members":
                op["parameters"] = list_parameters("vport")
                op["responses"] = {"200": {"description": "Member vports", "headers": _PAGE_HEADERS,
                                           **_json({"type": "array", "items": _ref("VPort")})},
                                   **_errors(std)}
            elif handler in ("members_set", "members_add"):
                op["requestBody"] = {"required": True, **_json(_ref("Members"))}
                op["responses"] = {"200": {"description": "Member vports after the change",
                                           **_json({"type": "array", "items": _ref("VPort")})},
                                   **_errors(std + ["408", "409", "413", "422"])}
            item[method.lower()] = op
        paths["/api/v1" + route.pattern] = item
    return {
        "openapi": "3.0.3",
        "info": {"title": "nuage-ryu directory API", "version": __version__,
                 "description": "Policy directory (VSD role): enterprises, domains, zones, subnets, vports, "
                                "policy groups, ACL rules, hosts. "
                                "Errors are {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": component_schemas()},
        "paths": paths,
    }
