"""A small client of the directory REST API (/api/v1), stdlib only.

Used by the per-host attach service: find the subnet a container joins (by
names or ids), create/update/delete its vport, read the vport's status.
``base`` is ``http://host:port`` or ``unix:/path/to/api.sock``.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse

from nuage_ryu.directory.client import UnixHTTPConnection

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
API_PREFIX = "/api/v1"


class DirectoryClientError(Exception):
    """The directory refused a request (``status`` is the HTTP status, 0 when unreachable)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class DirectoryUnavailable(DirectoryClientError):
    """The directory could not be reached (retry later)."""

    def __init__(self, message: str):
        super().__init__(0, "unavailable", message)


class DirectoryClient:
    """REST client; one HTTP connection per request (thread-safe, no shared socket)."""

    def __init__(self, base: str, token: str, timeout: float = 10.0):
        self.base = base
        self.token = token.strip()
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.base.startswith("unix:"):
            return UnixHTTPConnection(self.base[5:], self.timeout)
        url = urllib.parse.urlsplit(self.base)
        return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=self.timeout)

    def request(self, method: str, path: str, body: dict | None = None) -> dict | list | None:
        """One API call; returns the decoded JSON body (None for 204)."""
        conn = self._connection()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, API_PREFIX + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DirectoryUnavailable(f"directory at {self.base} unreachable: {exc}") from None
        finally:
            conn.close()
        if resp.status == 204 or not raw:
            if resp.status >= 400:
                raise DirectoryClientError(resp.status, "error", f"{method} {path}: HTTP {resp.status}")
            return None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise DirectoryClientError(resp.status, "bad_response",
                                       f"{method} {path}: directory sent non-JSON (HTTP {resp.status})"
                                       ) from None
        if resp.status >= 400:
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            status = resp.status
            if status >= 500:
                raise DirectoryUnavailable(f"directory error on {method} {path}: "
                                           f"{err.get('message', 'HTTP %d' % status)}")
            raise DirectoryClientError(status, err.get("code", "error"),
                                       err.get("message", f"{method} {path}: HTTP {status}"))
        return payload

    # Lookups --------------------------------------------------------------------

    @staticmethod
    def _items(payload) -> list[dict]:
        if isinstance(payload, dict):
            for key in ("items", "data", "results"):
                if isinstance(payload.get(key), list):
                    return payload[key]
            return []
        return list(payload or [])

    def get(self, collection: str, object_id: str) -> dict | None:
        """``/<collection>/<id>``, None on 404."""
        try:
            return self.request("GET", f"/{collection}/{urllib.parse.quote(object_id, safe='')}")
        except DirectoryClientError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, name: str | None = None) -> list[dict]:
        query = "?" + urllib.parse.urlencode({"name": name}) if name is not None else ""
        return self._items(self.request("GET", path + query))

    def find_child(self, parent_path: str, collection: str, ref: str, kind: str) -> dict:
        """The child of ``parent_path`` named ``ref``, or the object with id ``ref`` under that parent."""
        if UUID_RE.match(ref):
            obj = self.get(collection, ref)
            if obj is not None:
                return obj
        matches = [o for o in self.list(f"{parent_path}/{collection}", name=ref) if o.get("name") == ref]
        if not matches:
            raise DirectoryClientError(404, "not_found", f"{kind} {ref!r} not found")
        return matches[0]

    def resolve_subnet(self, enterprise: str, domain: str, zone: str, subnet: str) -> dict:
        """{"enterprise", "domain", "zone", "subnet"} objects for a chain of names or ids.

        A subnet given by id is enough on its own (its parents are read from it).
        """
        if subnet and UUID_RE.match(subnet) and not (enterprise or domain or zone):
            sub = self.get("subnets", subnet)
            if sub is None:
                raise DirectoryClientError(404, "not_found", f"subnet {subnet!r} not found")
            dom = self.get("domains", sub["domain"]) or {}
            return {"enterprise": self.get("enterprises", dom.get("enterprise", "")) or {},
                    "domain": dom, "zone": self.get("zones", sub["zone"]) or {}, "subnet": sub}
        if UUID_RE.match(enterprise or ""):
            ent = self.get("enterprises", enterprise)
        else:
            ents = [e for e in self.list("/enterprises", name=enterprise) if e.get("name") == enterprise]
            ent = ents[0] if ents else None
        if ent is None:
            raise DirectoryClientError(404, "not_found", f"enterprise {enterprise!r} not found")
        dom = self.find_child(f"/enterprises/{ent['id']}", "domains", domain, "domain")
        zon = self.find_child(f"/domains/{dom['id']}", "zones", zone, "zone")
        sub = self.find_child(f"/zones/{zon['id']}", "subnets", subnet, "subnet")
        return {"enterprise": ent, "domain": dom, "zone": zon, "subnet": sub}

    def resolve_policygroups(self, domain_id: str, refs: list[str]) -> list[str]:
        """Ids of the policy groups ``refs`` (names or ids) of a domain."""
        return [self.find_child(f"/domains/{domain_id}", "policygroups", ref, "policy group")["id"]
                for ref in refs]

    # VPorts ----------------------------------------------------------------------

    def create_vport(self, subnet_id: str, fields: dict) -> dict:
        return self.request("POST", f"/subnets/{subnet_id}/vports", fields)

    def get_vport(self, vport_id: str) -> dict | None:
        return self.get("vports", vport_id)

    def update_vport(self, vport_id: str, fields: dict) -> dict:
        return self.request("PUT", f"/vports/{vport_id}", fields)

    def delete_vport(self, vport_id: str) -> bool:
        """Delete a vport; False when it was already gone."""
        try:
            self.request("DELETE", f"/vports/{vport_id}")
            return True
        except DirectoryClientError as exc:
            if exc.status == 404:
                return False
            raise

    def list_vports(self, subnet_id: str) -> list[dict]:
        return self.list(f"/subnets/{subnet_id}/vports")

    def host_vports(self, host: str) -> list[dict]:
        """Every vport whose ``host`` is ``host`` (walks the tree; used by GC only)."""
        found = []
        for ent in self.list("/enterprises"):
            for dom in self.list(f"/enterprises/{ent['id']}/domains"):
                for zon in self.list(f"/domains/{dom['id']}/zones"):
                    for sub in self.list(f"/zones/{zon['id']}/subnets"):
                        found += [v for v in self.list_vports(sub["id"]) if v.get("host") == host]
        return found
