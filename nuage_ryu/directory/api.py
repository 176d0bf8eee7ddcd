"""The directory REST API as a plain WSGI application (webob, a small route table).

Runs inside the ``DirectoryApi`` app (cheroot server thread) but needs no os-ken:
tests and tools can serve it with any WSGI server. All writes go through
``DirectoryStore.apply`` with a planner from ``validate``, so each request is one
OVSDB transaction.

Auth: ``Authorization: Bearer <token>``. The admin token (from the token file)
may do everything. An enterprise token (created via ``POST /tokens``; only its
SHA-256 is stored) sees and changes only its own enterprise's objects: others'
objects are 404 to it; it may read hosts but not create/change them, and may not
create or delete enterprises or manage tokens (403). A host token (``POST /tokens`` with
``host``) is what a host's attach service holds: it reads the directory and writes only the
vports on its own host (``host_access.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import webob
from webob.request import DisconnectionError

from nuage_ryu import json_input
from nuage_ryu.directory import host_access, listing, openapi, shadow, trace, validate, verdicts_api
from nuage_ryu.directory.audit import AuditLog
from nuage_ryu.directory.errors import (
    BadRequest,
    DirectoryError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    Unavailable,
)
from nuage_ryu.directory.model import KINDS, NO_COUNTERS, DirectoryState, as_dict
from nuage_ryu.directory.validate import bulk

LOG = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 1 << 20
# A bulk body may be larger; it stays below the HTTP server's backstop (service.py: 4 * MAX_BODY).
MAX_BULK_BODY = 3 * MAX_BODY
TOKEN_PREFIX = "nrt_"
# A trace holds its HTTP worker while the agent answers (up to its timeout): at most this many at
# once, so that traces can never take every worker from the rest of the API (503 beyond).
MAX_CONCURRENT_TRACES = 4
MUTATING = frozenset(("POST", "PUT", "PATCH", "DELETE"))
_AUDIT_KEY = "nuage.audit"  # what the request path learnt for the audit log (environ key)


def hash_token(token: str) -> str:
    """The stored form of an enterprise token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the admin, an enterprise token limited to ``enterprise``, or a host token
    limited to the vports of ``host``."""

    admin: bool
    enterprise: str | None = None
    token_id: str = ""
    token_name: str = ""
    host: str = ""

    @property
    def principal(self) -> str:
        """Who, as the audit log names it: ``admin``, ``host:<host name>`` or ``token:<name or id>``
        (never the token)."""
        if self.admin:
            return "admin"
        return f"host:{self.host}" if self.host else f"token:{self.token_name or self.token_id}"


@dataclass(frozen=True)
class Route:
    """One path pattern and the handler name for each method."""

    pattern: str  # e.g. "/domains/{id}/zones"
    methods: dict[str, str]
    kind: str | None = None
    parent: str | None = None
    summary: str = ""

    @property
    def regex(self) -> re.Pattern:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "$")


def build_routes() -> list[Route]:
    """The route table (also the source of the OpenAPI document)."""
    routes = []
    for kind, (_table, plural, parent) in KINDS.items():
        if parent is None:
            routes.append(Route(f"/{plural}", {"GET": "list", "POST": "create"}, kind, None,
                                f"{kind} collection"))
        else:
            pplural = KINDS[parent][1]
            routes.append(Route(f"/{pplural}/{{id}}/{plural}", {"GET": "list", "POST": "create"},
                                kind, parent, f"{kind}s of {'an' if parent[0] in 'aeiou' else 'a'} {parent}"))
        item = {"GET": "show", "PUT": "update", "DELETE": "delete"}
        if kind == "token":
            item = {"GET": "show", "DELETE": "delete"}
        routes.append(Route(f"/{plural}/{{id}}", item, kind, None, f"one {kind}"))
    routes.append(Route("/policygroups/{id}/vports", {"GET": "members", "PUT": "members_set",
                                                      "POST": "members_add"}, "vport", "policygroup",
                        "member vports of a policy group"))
    routes.append(Route("/policygroups/{id}/vports/{vport_id}", {"DELETE": "members_remove"}, "vport",
                        "policygroup", "remove one member"))
    routes.append(Route("/bulk", {"POST": "bulk"}, None, None,
                        "many creates/updates/deletes in one transaction (all or nothing)"))
    routes.append(Route("/verdicts", {"GET": "verdicts"}, None, None,
                        "verdict records of logged and audit rules (cursor, long poll)"))
    routes.append(Route("/trace", {"POST": "trace"}, None, None,
                        "explain a packet: the deciding rule, the path, and whether the datapath agrees"))
    routes.append(Route("/openapi.json", {"GET": "openapi"}, None, None, "this document"))
    return routes


ROUTES = build_routes()
_COMPILED = [(r, r.regex) for r in ROUTES]


def _json_response(status: int, body=None, headers: dict | None = None) -> webob.Response:
    resp = webob.Response(status=status, charset=None)
    if body is not None:
        resp.content_type = "application/json"
        resp.body = json.dumps(body, separators=(",", ":")).encode()
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def error_response(exc: DirectoryError) -> webob.Response:
    headers = {"Allow": ", ".join(exc.allowed)} if isinstance(exc, MethodNotAllowed) else None
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="nuage-ryu"'}
    return _json_response(exc.status, exc.as_dict(), headers)


class DirectoryAPI:
    """WSGI application of ``/api/v1``."""

    def __init__(self, store, admin_token: str, clock: Callable[[], float] = time.time,
                 audit: AuditLog | None = None):
        """``audit``: where every mutating call is recorded (None: not recorded)."""
        if not admin_token:
            raise ValueError("an admin token is required")
        self.store = store
        self.audit = audit
        self._admin_token = admin_token.encode()
        self._clock = clock
        self._openapi = json.dumps(openapi.build_document(ROUTES)).encode()
        self._traces = threading.BoundedSemaphore(MAX_CONCURRENT_TRACES)

    # -- WSGI --
    def __call__(self, environ, start_response):
        req = webob.Request(environ)
        try:
            resp = self.handle(req)
        except DirectoryError as exc:
            resp = error_response(exc)
        except Exception:  # a bug, never bad input: bad input raises DirectoryError
            LOG.exception("internal error on %s %s", req.method, req.path)
            resp = _json_response(500, {"error": {"code": "internal_error", "message": "internal error"}})
        if self.audit is not None and req.method in MUTATING:
            self._record(req, resp)
        return resp(environ, start_response)

    def _record(self, req: webob.Request, resp: webob.Response) -> None:
        """The audit hook: one entry per mutating call, whatever its route and outcome."""
        seen = req.environ.get(_AUDIT_KEY, {})
        caller: Caller | None = seen.get("caller")
        ids = list(seen.get("ids", ()))
        location = resp.headers.get("Location", "")
        if location:
            ids.append(location.rsplit("/", 1)[-1])
        entry = {"principal": caller.principal if caller else "anonymous",
                 "enterprise": seen.get("enterprise"), "method": req.method, "path": req.path_info,
                 "ids": ids, "status": resp.status_code, "remote": req.remote_addr or ""}
        if caller and caller.token_id:
            entry["token_id"] = caller.token_id
        if entry["enterprise"] is None and seen.get("route_kind") == "enterprise" and location:
            entry["enterprise"] = ids[-1]  # an enterprise just created
        if entry["enterprise"]:
            ent = self.store.snapshot().enterprises.get(entry["enterprise"])
            entry["enterprise_name"] = ent.name if ent else seen.get("enterprise_name", "")
        if resp.status_code >= 400 and resp.content_type == "application/json":
            try:
                entry["error"] = json.loads(resp.body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                pass
        try:
            self.audit.record(entry)
        except OSError:  # a full disk must not turn every write into a 500; the log says so
            LOG.exception("cannot write the audit log %s", self.audit.path)

    def handle(self, req: webob.Request) -> webob.Response:
        path = req.path_info
        if not path.startswith(PREFIX + "/"):
            raise NotFound(f"no such path {path}; the API lives under {PREFIX}/")
        sub = path[len(PREFIX):].rstrip("/") or "/"
        for route, regex in _COMPILED:
            m = regex.match(sub)
            if not m:
                continue
            handler = route.methods.get(req.method)
            if handler is None:
                raise MethodNotAllowed(f"{req.method} is not allowed on {path}", sorted(route.methods))
            if handler == "openapi":
                return webob.Response(body=self._openapi, content_type="application/json", charset=None)
            params = m.groupdict()
            seen = req.environ.setdefault(_AUDIT_KEY, {})
            seen.update(ids=[v for v in params.values() if v], route_kind=route.kind)
            if req.method in MUTATING:  # the enterprise acted in: of the object, known before any check
                seen["enterprise"] = self._enterprise_of(route, params)
            caller = self._authenticate(req)
            seen["caller"] = caller
            if caller.host:
                host_access.check_route(caller.host, handler, route.kind)
            if req.method in MUTATING:
                seen["enterprise"] = seen["enterprise"] or caller.enterprise
                ent = self.store.snapshot().enterprises.get(seen["enterprise"] or "")
                seen["enterprise_name"] = ent.name if ent else ""  # kept for a deleted enterprise
            return getattr(self, "_" + handler)(req, caller, route, **params)
        raise NotFound(f"no such path {path}")

    # -- auth --
    def _authenticate(self, req: webob.Request) -> Caller:
        header = req.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        token = token.strip()
        if hmac.compare_digest(token.encode(), self._admin_token):
            return Caller(admin=True)
        record = self.store.snapshot().token_by_hash(hash_token(token))
        if record is None:
            raise Unauthorized("unknown or revoked token")
        return Caller(admin=False, enterprise=record.enterprise, token_id=record.id, token_name=record.name,
                      host=record.host)

    def _enterprise_of(self, route: Route, params: dict) -> str | None:
        """The enterprise a call acts in (for the audit log): of its parent or its object."""
        obj_id = params.get("id")
        kind = route.parent or route.kind
        if not obj_id or kind is None:
            return None
        state = self.store.snapshot()
        obj = state.get(kind, obj_id)
        return state.enterprise_of(kind, obj) if obj is not None else None

    @staticmethod
    def _visible(state: DirectoryState, caller: Caller, kind: str, obj) -> bool:
        if caller.admin or kind == "host":
            return True
        if kind == "token":
            return False
        if caller.host:  # a host carries vports of any tenant (host_access.py)
            return True
        return state.enterprise_of(kind, obj) == caller.enterprise

    def _lookup(self, state: DirectoryState, caller: Caller, kind: str, obj_id: str):
        obj = state.get(kind, obj_id)
        if obj is None or not self._visible(state, caller, kind, obj):
            raise NotFound(f"{kind} {obj_id} not found")
        return obj

    @staticmethod
    def _require_admin(caller: Caller, what: str) -> None:
        if not caller.admin:
            raise Forbidden(f"only the admin token may {what}")

    # -- request helpers --
    @staticmethod
    def _params(req: webob.Request, allowed: tuple[str, ...]) -> dict[str, str]:
        params = {}
        for key, value in req.GET.items():
            if key not in allowed:
                raise BadRequest(f"unknown query parameter {key!r}"
                                 + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
            params[key] = value
        return params

    @staticmethod
    def _body(req: webob.Request, limit: int = MAX_BODY):
        if req.content_length and req.content_length > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
        try:
            raw = req.body_file.read(limit + 1)  # also bounds chunked bodies without a length
        except TimeoutError:
            raise RequestTimeout("the request body did not arrive in time") from None
        except DisconnectionError as exc:
            # Fewer bytes than Content-Length: the server's body deadline shut the read side
            # (http_server), or the client stopped. Before, this was a 400 "malformed body".
            raise RequestTimeout(f"the request body did not arrive in time ({exc})") from None
        except (ValueError, OSError) as exc:
            # cheroot's chunked reader: "Bad chunked transfer size", a missing CRLF, a closed read side
            raise BadRequest(f"malformed request body: {exc}") from None
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
        if req.content_length and len(raw) < req.content_length:
            # the server's body deadline shut the read side (http_server), or the client stopped
            raise RequestTimeout(f"the request body did not arrive in time ({len(raw)} of "
                                 f"{req.content_length} bytes)")
        if not raw.strip():
            raise BadRequest("request body must be a JSON object")
        # The content type is not checked: curl's default form type with a JSON body is common.
        try:
            body = json_input.loads(raw)
        except json_input.JSONInputError as exc:
            raise BadRequest(str(exc)) from None
        try:
            # Lone surrogates ("\ud800") parse but cannot be stored (OVSDB strings are UTF-8).
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("request body contains invalid unicode (lone surrogates)") from None
        return body

    @staticmethod
    def _flag(params: dict, name: str) -> bool:
        value = params.get(name, "false").lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            raise BadRequest(f"{name} must be true or false")
        return value in ("true", "1", "yes")

    @classmethod
    def _cascade(cls, params: dict) -> bool:
        return cls._flag(params, "cascade")

    def _show(self, req, caller, route, id):
        self._params(req, ())
        state = self.store.snapshot()
        obj = self._lookup(state, caller, route.kind, id)
        return _json_response(200, as_dict(route.kind, obj, state, self.store.counters()))

    @staticmethod
    def _page(req: webob.Request, kind: str, state: DirectoryState, objs, params: dict,
              counters=None) -> webob.Response:
        """One page of ``objs`` (filters, order, limit, page_token); the next page's token in headers."""
        page, token = listing.select(kind, objs, params)
        headers = {}
        if token:
            query = {**params, "page_token": token}
            headers = {"X-Next-Page-Token": token,
                       "Link": f'<{req.script_name}{req.path_info}?{urllib.parse.urlencode(query)}>; rel="next"'}
        counters = counters if counters is not None else NO_COUNTERS
        return _json_response(200, [as_dict(kind, o, state, counters) for o in page], headers)

    def _list(self, req, caller, route, id=None):
        params = self._params(req, listing.filter_params(route.kind) + listing.PAGE_PARAMS)
        kind = route.kind
        state = self.store.snapshot()
        if kind == "token":
            self._require_admin(caller, "manage tokens")
        if route.parent:
            self._lookup(state, caller, route.parent, id)
            if kind == "vport":
                objs = state.vports_of_subnet(id)  # indexed: no walk over every vport
            else:
                objs = [o for o in state.table(kind).values() if getattr(o, route.parent) == id]
        else:
            objs = [o for o in state.table(kind).values() if self._visible(state, caller, kind, o)]
        return self._page(req, kind, state, objs, params, self.store.counters())

    def _create(self, req, caller, route, id=None):
        self._params(req, ())
        kind = route.kind
        if kind in ("enterprise", "host"):
            self._require_admin(caller, f"create {kind}s")
        if kind == "token":
            self._require_admin(caller, "manage tokens")
        body = self._body(req)
        if caller.host:
            host_access.check_vport_write(caller.host, self.store.snapshot(), "create", kind, None, body)
        if route.parent:
            self._lookup(self.store.snapshot(), caller, route.parent, id)
        extra: dict = {}
        token = None
        if kind == "token":
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            extra = {"token_hash": hash_token(token), "now_ms": int(self._clock() * 1000)}
        # One id for all attempts: if a commit's reply is lost (leader change), the retry finds the
        # row and reports success instead of creating a second object.
        extra["new_id"] = str(uuid.uuid4())
        change, state = self.store.apply(lambda s: validate.plan_create(s, kind, id, body, **extra))
        obj_id = change.result[1]
        out = as_dict(kind, state.get(kind, obj_id), state, self.store.counters())
        if token:
            out["token"] = token  # shown once; only the hash is stored
        if kind == "acl":
            out["warnings"] = shadow.shadow_warnings(state, obj_id)
        return _json_response(201, out, {"Location": f"{PREFIX}/{KINDS[kind][1]}/{obj_id}"})

    def _update(self, req, caller, route, id):
        self._params(req, ())
        kind = route.kind
        if kind == "host":
            self._require_admin(caller, "change hosts")
        body = self._body(req)
        self._lookup(self.store.snapshot(), caller, kind, id)

        def planner(s: DirectoryState):
            if caller.host:  # on the state planned on: a vport moved meanwhile is no longer its own
                host_access.check_vport_write(caller.host, s, "update", kind, id, body)
            return validate.plan_update(s, kind, id, body)

        _change, state = self.store.apply(planner)
        out = as_dict(kind, validate.get_object(state, kind, id), state, self.store.counters())
        if kind == "acl":
            out["warnings"] = shadow.shadow_warnings(state, id)
        return _json_response(200, out)

    def _delete(self, req, caller, route, id):
        cascade = self._cascade(self._params(req, ("cascade",)))
        kind = route.kind
        if kind in ("host", "token"):
            self._require_admin(caller, f"delete {kind}s")
        # Looked up first, so that another tenant's enterprise is 404 (not 403) to a tenant.
        self._lookup(self.store.snapshot(), caller, kind, id)
        if kind == "enterprise":
            self._require_admin(caller, "delete enterprises")

        def planner(s: DirectoryState):
            if caller.host:  # on the state planned on (see _update)
                host_access.check_vport_write(caller.host, s, "delete", kind, id, None)
            return validate.plan_delete(s, kind, id, cascade)

        self.store.apply(planner)
        return _json_response(204)

    def _members(self, req, caller, route, id):
        params = self._params(req, listing.filter_params("vport") + listing.PAGE_PARAMS)
        state = self.store.snapshot()
        self._lookup(state, caller, "policygroup", id)
        return self._page(req, "vport", state, state.members_of(id), params)

    def _change_members(self, req, caller, id, mode):
        self._lookup(self.store.snapshot(), caller, "policygroup", id)
        body = self._body(req)
        if not isinstance(body, dict) or set(body) != {"vports"}:
            raise BadRequest('body must be {"vports": [<vport id>, ...]}')
        vport_ids = body["vports"]
        _change, state = self.store.apply(lambda s: validate.plan_membership(s, id, vport_ids, mode))
        members = sorted(state.members_of(id), key=listing.sort_key)
        return _json_response(200, [as_dict("vport", v, state) for v in members])

    def _members_set(self, req, caller, route, id):
        self._params(req, ())
        return self._change_members(req, caller, id, "set")

    def _members_add(self, req, caller, route, id):
        self._params(req, ())
        return self._change_members(req, caller, id, "add")

    def _members_remove(self, req, caller, route, id, vport_id):
        self._params(req, ())
        state = self.store.snapshot()
        self._lookup(state, caller, "policygroup", id)
        vport = state.vports.get(vport_id)
        if vport is None or id not in vport.policygroups:
            raise NotFound(f"vport {vport_id} is not a member of policy group {id}")
        self.store.apply(lambda s: validate.plan_membership(s, id, [vport_id], "remove"))
        return _json_response(204)

    # -- verdict records (docs/policy.md) --
    def _verdicts(self, req, caller, route):
        params = self._params(req, verdicts_api.PARAMS)
        body, headers = verdicts_api.answer(getattr(self.store, "verdicts", None), self.store.snapshot(),
                                            None if caller.admin else caller.enterprise, params)
        return _json_response(200, body, headers)

    # -- bulk --
    def _authorize_op(self, caller: Caller, state: DirectoryState, op: bulk.BulkOperation,
                      parent_id: str | None, obj_id: str | None) -> None:
        """What the single call checks before planning, for one operation of a bulk request."""
        kind = op.kind
        if caller.host:  # any operation outside its own vports fails the whole request (403)
            host_access.check_vport_write(caller.host, state, op.action, kind, obj_id, op.body)
        if op.action == "create":
            if kind in ("enterprise", "host"):
                self._require_admin(caller, f"create {kind}s")
            if parent_id is not None:
                self._lookup(state, caller, KINDS[kind][2], parent_id)
            return
        if op.action == "update" and kind == "host":
            self._require_admin(caller, "change hosts")
        if op.action == "delete" and kind == "host":
            self._require_admin(caller, "delete hosts")
        self._lookup(state, caller, kind, obj_id)
        if op.action == "delete" and kind == "enterprise":
            self._require_admin(caller, "delete enterprises")

    def _bulk(self, req, caller, route):
        params = self._params(req, ("dry_run",))
        dry_run = self._flag(params, "dry_run")
        operations = bulk.parse_bulk(self._body(req, MAX_BULK_BODY))
        # One id per create for all attempts (see _create).
        new_ids = [str(uuid.uuid4()) for _ in operations]

        def planner(state: DirectoryState):
            plan = bulk.plan_bulk(state, operations, new_ids,
                                  authorize=lambda s, op, p, o: self._authorize_op(caller, s, op, p, o))
            plans.append(plan)
            return plan.change

        plans: list[bulk.BulkPlan] = []
        try:
            if dry_run:
                planner(self.store.snapshot())
                state = validate.apply_change(self.store.snapshot(), plans[-1].change)
            else:
                _change, state = self.store.apply(planner)
        except DirectoryError as exc:
            resp = exc.as_dict()
            if getattr(exc, "operation", None) is not None:
                resp["error"]["operation"] = exc.operation
            return _json_response(exc.status, resp)
        plan = plans[-1]
        counters = self.store.counters()
        results = []
        for op, obj_id in zip(operations, plan.ids, strict=True):
            item: dict = {"index": op.index, "action": op.action, "kind": op.kind, "id": obj_id}
            if op.ref:
                item["ref"] = op.ref
            obj = state.get(op.kind, obj_id)
            if op.action != "delete" and obj is not None:
                item["object"] = as_dict(op.kind, obj, state, counters)
                if op.kind == "acl":
                    item["warnings"] = shadow.shadow_warnings(state, obj_id)
            results.append(item)
        return _json_response(200, {"dry_run": dry_run, "results": results})

    # -- explain a packet (trace.py) --
    def _trace(self, req, caller, route):
        """``POST /trace``: a tenant traces only between objects of its own enterprise (others are 404)."""
        self._params(req, ())
        body = self._body(req)
        state = self.store.snapshot()
        if not self._traces.acquire(blocking=False):
            raise Unavailable(f"{MAX_CONCURRENT_TRACES} traces are in progress; try again")
        try:
            answer = trace.run_trace(self.store, state, lambda kind, obj: self._visible(state, caller, kind, obj),
                                     body)
        finally:
            self._traces.release()
        return _json_response(200, answer)
