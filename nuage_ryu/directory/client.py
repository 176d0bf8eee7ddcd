"""The one client of the directory REST API (/api/v1), stdlib only.

Used by nuage-ctl (which must start fast), the attach service, the lab, the
Mininet end-to-end run (system Python: no third-party imports here), the tests
and the benchmarks.

``url`` is ``http://host:port``, ``https://host:port`` or ``unix:/path/api.sock``.
The connection policy is a constructor parameter: ``keep_alive=True`` holds one
connection (one client per thread); ``keep_alive=False`` opens one per request,
so one client may serve many threads (the attach service).

A refusal raises the class of ``nuage_ryu/directory/errors.py`` the server
raised (``NotFound``, ``Conflict``, ``ValidationError``, ``Unavailable``, ...:
one error tree for both sides, matched by the answer's ``code``, else by its
HTTP status); an unreachable endpoint raises ``CannotConnect``.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import urllib.parse

from nuage_ryu.directory import errors
from nuage_ryu.directory.errors import DirectoryError, MethodNotAllowed, NotFound

API_PREFIX = "/api/v1"
PAGE_SIZE = 500  # items per page when a list is walked page by page
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_ERRORS = (errors.BadRequest, errors.PayloadTooLarge, errors.Unauthorized, errors.Forbidden, NotFound,
           MethodNotAllowed, errors.Conflict, errors.ValidationError, errors.Unavailable)
_BY_CODE = {cls.code: cls for cls in _ERRORS}
_BY_STATUS = {cls.status: cls for cls in _ERRORS}


class CannotConnect(Exception):
    """The API endpoint could not be reached (or the connection broke before an answer)."""


def error_from_answer(status: int, code: str, message: str, allowed: list[str] | None = None) -> DirectoryError:
    """The error of the directory's tree for an error answer (``code`` first, else ``status``)."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is MethodNotAllowed:
        return MethodNotAllowed(message, allowed or [])
    if cls is not None:
        return cls(message)
    err = DirectoryError(message)  # a status without a class of its own (500, 502...)
    err.status, err.code = status, code or "error"
    return err


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the REST API's ``api_socket``)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DirectoryClient:
    """REST client of the directory; see the module docstring for ``url`` and ``keep_alive``."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0,
                 keep_alive: bool = True, ca_file: str | None = None) -> None:
        if not url:
            raise ValueError("url is required (http://HOST:PORT or unix:/path)")
        self.url = url
        self.token = token.strip() if token else None
        self.timeout = timeout
        self.keep_alive = keep_alive
        self.ca_file = ca_file  # HTTPS: check the server against this CA (a private one) instead of the system's
        self._conn: http.client.HTTPConnection | None = None

    # Transport -------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self.url.startswith("unix:"):
            return UnixHTTPConnection(self.url[5:], self.timeout)
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
            return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=self.timeout,
                                               context=context)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=self.timeout)

    def close(self) -> None:
        """Close the kept-alive connection, if any (the client stays usable)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            params: dict | None = None) -> tuple[int, dict, bytes]:
        """Send a request; returns (status, headers, body bytes). Raises CannotConnect."""
        if params:
            path += "?" + urllib.parse.urlencode(params)
        hdrs = {"Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in (1, 2):
            # Per-request mode never stores its connection: threads sharing the client share nothing.
            reused = self.keep_alive and self._conn is not None
            conn = self._conn if reused else self._connect()
            if self.keep_alive:
                self._conn = conn
            try:
                status, answer_headers, data, closed = self._exchange(conn, method, path, body, hdrs)
                if closed or not self.keep_alive:
                    self._drop(conn)
                return status, answer_headers, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(conn)
                # A kept-alive connection the server closed while idle: retry once on a fresh one.
                if not reused or attempt == 2:
                    raise CannotConnect(f"connection to the API lost: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(conn)
                raise CannotConnect(f"cannot connect to {self.url}: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
        raise CannotConnect("unreachable")  # pragma: no cover

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if self._conn is conn:
            self._conn = None

    @staticmethod
    def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
                  headers: dict) -> tuple[int, dict, bytes, bool]:
        """One request and its answer on ``conn``: (status, headers, body, the server closed it)."""
        try:
            conn.request(method, path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer before it read the whole body (413 for a body over the
            # limit) and close: its answer is already in the socket buffer, read it.
            try:
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                raise ConnectionResetError("connection closed while sending the request") from None
            return resp.status, dict(resp.getheaders()), data, True
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data, resp.getheader("Connection", "").lower() == "close"

    def request(self, method: str, path: str, body=None, params: dict | None = None):
        """JSON request under /api/v1; returns the decoded body (None for 204).

        Raises the directory's error class for an error answer, CannotConnect when unreachable.
        """
        return self.request_with_headers(method, path, body, params)[0]

    def request_with_headers(self, method: str, path: str, body=None, params: dict | None = None
                             ) -> tuple[object, dict]:
        """``request`` that also returns the answer's headers (names in lower case)."""
        data = None if body is None else json.dumps(body).encode()
        status, headers, raw = self.raw(method, API_PREFIX + path, data, params=params)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            if status < 400:
                raise error_from_answer(502, "bad_response", f"{method} {path}: the directory sent "
                                                             f"non-JSON (HTTP {status})") from None
            payload = None
        if status >= 400:
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            message = err.get("message") or raw.decode(errors="replace").strip() \
                or f"{method} {path}: HTTP {status}"
            allow = next((v for k, v in headers.items() if k.lower() == "allow"), "")
            allowed = [m.strip() for m in allow.split(",") if m.strip()]
            raise error_from_answer(status, err.get("code", ""), message, allowed)
        return payload, {k.lower(): v for k, v in headers.items()}

    def get(self, path: str, **params):
        """GET ``path`` (query parameters as keywords)."""
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body):
        """POST a JSON body to ``path``."""
        return self.request("POST", path, body)

    def put(self, path: str, body):
        """PUT a JSON body to ``path``."""
        return self.request("PUT", path, body)

    def delete(self, path: str, **params):
        """DELETE ``path``."""
        return self.request("DELETE", path, params=params or None)

    # Lookups ---------------------------------------------------------------------

    def find(self, collection: str, object_id: str) -> dict | None:
        """``/<collection>/<id>``, None when there is no such object."""
        try:
            return self.get(f"/{collection}/{urllib.parse.quote(object_id, safe='')}")
        except NotFound:
            return None

    def list(self, path: str, name: str | None = None, **filters) -> list[dict]:
        """Every item of a collection (those named ``name`` / matching ``filters``, when given).

        Walks the pages (``limit`` + ``page_token``), so a long list never comes in one answer.
        """
        params = {**filters, **({} if name is None else {"name": name}), "limit": PAGE_SIZE}
        items: list[dict] = []
        while True:
            try:
                payload, headers = self.request_with_headers("GET", path, params=params)
            except errors.BadRequest as exc:
                if "limit" not in params or "'limit'" not in exc.message:
                    raise
                # A directory from before pagination refuses the parameter: it sends everything at once.
                params = {k: v for k, v in params.items() if k != "limit"}
                continue
            if isinstance(payload, dict):  # not this API's form; take what looks like the items
                payload = next((payload[k] for k in ("items", "data", "results")
                                if isinstance(payload.get(k), list)), [])
            items += list(payload or [])
            token = headers.get("x-next-page-token")
            if not token:
                return items
            params = {**params, "page_token": token}

    def find_child(self, parent_path: str, collection: str, ref: str, kind: str) -> dict:
        """The child of ``parent_path`` named ``ref``, or the object with id ``ref`` under that parent."""
        if UUID_RE.match(ref):
            obj = self.find(collection, ref)
            if obj is not None:
                return obj
        matches = [o for o in self.list(f"{parent_path}/{collection}", name=ref) if o.get("name") == ref]
        if not matches:
            raise NotFound(f"{kind} {ref!r} not found")
        return matches[0]

    def resolve_subnet(self, enterprise: str, domain: str, zone: str, subnet: str) -> dict:
        """{"enterprise", "domain", "zone", "subnet"} objects for a chain of names or ids.

        A subnet given by id is enough on its own (its parents are read from it).
        """
        if subnet and UUID_RE.match(subnet) and not (enterprise or domain or zone):
            sub = self.find("subnets", subnet)
            if sub is None:
                raise NotFound(f"subnet {subnet!r} not found")
            dom = self.find("domains", sub["domain"]) or {}
            return {"enterprise": self.find("enterprises", dom.get("enterprise", "")) or {},
                    "domain": dom, "zone": self.find("zones", sub["zone"]) or {}, "subnet": sub}
        if UUID_RE.match(enterprise or ""):
            ent = self.find("enterprises", enterprise)
        else:
            ents = [e for e in self.list("/enterprises", name=enterprise) if e.get("name") == enterprise]
            ent = ents[0] if ents else None
        if ent is None:
            raise NotFound(f"enterprise {enterprise!r} not found")
        dom = self.find_child(f"/enterprises/{ent['id']}", "domains", domain, "domain")
        zon = self.find_child(f"/domains/{dom['id']}", "zones", zone, "zone")
        sub = self.find_child(f"/zones/{zon['id']}", "subnets", subnet, "subnet")
        return {"enterprise": ent, "domain": dom, "zone": zon, "subnet": sub}

    def resolve_policygroups(self, domain_id: str, refs: list[str]) -> list[str]:
        """Ids of the policy groups ``refs`` (names or ids) of a domain."""
        return [self.find_child(f"/domains/{domain_id}", "policygroups", ref, "policy group")["id"]
                for ref in refs]

    def subnets(self) -> list[dict]:
        """Every subnet visible to this token (walks enterprises, domains, zones)."""
        found = []
        for ent in self.list("/enterprises"):
            for dom in self.list(f"/enterprises/{ent['id']}/domains"):
                for zon in self.list(f"/domains/{dom['id']}/zones"):
                    found += self.list(f"/zones/{zon['id']}/subnets")
        return found

    # VPorts ------------------------------------------------------------------------

    def create_vport(self, subnet_id: str, fields: dict) -> dict:
        """A new vport in ``subnet_id`` (the directory assigns IP and MAC unless given)."""
        return self.request("POST", f"/subnets/{subnet_id}/vports", fields)

    def get_vport(self, vport_id: str) -> dict | None:
        """The vport, None when it is gone."""
        return self.find("vports", vport_id)

    def update_vport(self, vport_id: str, fields: dict) -> dict:
        """Change some of a vport's fields."""
        return self.request("PUT", f"/vports/{vport_id}", fields)

    def delete_vport(self, vport_id: str) -> bool:
        """Delete a vport; False when it was already gone."""
        try:
            self.request("DELETE", f"/vports/{vport_id}")
            return True
        except NotFound:
            return False

    def list_vports(self, subnet_id: str) -> list[dict]:
        """The vports of a subnet."""
        return self.list(f"/subnets/{subnet_id}/vports")

    def host_vports(self, host: str) -> list[dict]:
        """Every vport whose ``host`` is ``host`` (walks the tree; used by GC only)."""
        return [v for sub in self.subnets() for v in self.list_vports(sub["id"]) if v.get("host") == host]
