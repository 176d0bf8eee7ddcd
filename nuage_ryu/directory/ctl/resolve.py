"""Object references on the command line -> ids, and ids -> readable names.

A reference is, tried in this order:
  - a full id (UUID);
  - a name, looked up under the parent options given (--enterprise, --domain, ...) or under
    everything the token can see;
  - a path of names from the top, or its tail: ``acme/prod/web`` (zone web of domain prod of
    enterprise acme), ``prod/web``; each part may itself be a name or an id prefix;
  - for an ACL rule, its priority (``100``: unique in a domain);
  - a unique id prefix of at least 4 hex digits (``1a2b3c4d``, as the tables show).
An ambiguous name or prefix is a usage error that lists the candidates.

Everything fetched is cached for the life of one command, so resolving several references
and rendering names costs one request per collection.
"""

from __future__ import annotations

import re
import uuid

from nuage_ryu.directory.client import DirectoryClient, error_from_answer
from nuage_ryu.directory.ctl.kinds import ENDPOINT_KINDS, KINDS, SCOPES, with_article
from nuage_ryu.directory.errors import DirectoryError

MIN_PREFIX = 4
SHORT_ID = 8
_PREFIX_RE = re.compile(r"[0-9a-f][0-9a-f-]*")


class UsageError(Exception):
    """Bad command line (exit 2)."""


def is_id(text: str) -> bool:
    """A full object id (UUID, canonical form, any case)."""
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def is_id_prefix(text: str) -> bool:
    """Could be the start of an id (4+ hex digits, dashes allowed)."""
    return len(text.replace("-", "")) >= MIN_PREFIX and bool(_PREFIX_RE.fullmatch(text.lower()))


def short_id(obj_id: str) -> str:
    return obj_id[:SHORT_ID]


class Resolver:
    """Turns references into ids by walking the API under the given parent scope (cached)."""

    def __init__(self, client: DirectoryClient | None, scope: dict[str, str | None] | None = None):
        self.client = client
        self.scope = dict(scope or {})
        self._lists: dict[str, list[dict]] = {}
        self._objects: dict[str, dict] = {}  # id -> object (ids are unique across kinds)
        self._scope_ids: dict[str, str] = {}

    # -- fetching (cached) --
    def _list(self, path: str) -> list[dict]:
        if path not in self._lists:
            rows = self.client.list(path)  # every page
            self._lists[path] = rows
            for row in rows:
                self._objects[row["id"]] = row
        return self._lists[path]

    def top(self, kind: str) -> list[dict]:
        """All visible objects of a top-level kind."""
        return self._list(f"/{KINDS[kind].plural}")

    def children(self, kind: str, parent_id: str) -> list[dict]:
        """Objects of ``kind`` under the parent object ``parent_id``."""
        parent = KINDS[kind].parent
        return self._list(f"/{KINDS[parent].plural}/{parent_id}/{KINDS[kind].plural}")

    def get(self, kind: str, obj_id: str) -> dict:
        """One object by id (cached; a list fetched earlier fills the cache)."""
        if obj_id not in self._objects:
            self._objects[obj_id] = self.client.get(f"/{KINDS[kind].plural}/{obj_id}")
        return self._objects[obj_id]

    def remember(self, obj: dict) -> None:
        """Cache an object the command got otherwise (create/update answers)."""
        if isinstance(obj, dict) and "id" in obj:
            self._objects[obj["id"]] = obj

    def cached(self, obj_id: str) -> dict | None:
        return self._objects.get(obj_id)

    # -- scope --
    def scope_id(self, kind: str) -> str | None:
        """The id of the parent option --KIND given, resolved (None when not given)."""
        ref = self.scope.get(kind)
        if not ref:
            return None
        if kind not in self._scope_ids:
            self._scope_ids[kind] = self.resolve(kind, ref)
        return self._scope_ids[kind]

    def ids_in_scope(self, kind: str) -> list[str]:
        """Ids of every object of ``kind`` inside the scope given."""
        given = self.scope_id(kind) if kind in SCOPES else None
        if given:
            return [given]
        return [o["id"] for o in self.in_scope(kind)]

    def in_scope(self, kind: str) -> list[dict]:
        """Every object of ``kind`` inside the scope given (the whole tree when none is)."""
        parent = KINDS[kind].parent
        if parent is None:
            return self.top(kind)
        out: list[dict] = []
        for pid in self.ids_in_scope(parent):
            out += self.children(kind, pid)
        return out

    # -- references -> ids --
    def resolve(self, kind: str, ref: str) -> str:
        """The id of the ``kind`` object ``ref`` names (see the module docstring)."""
        if is_id(ref):
            return ref.lower()
        return self._pick(kind, ref, self.in_scope(kind), self._where(kind))

    def resolve_in_domain(self, kind: str, ref: str, domain_id: str) -> str:
        """A policy group, zone, subnet or vport of one domain (rule endpoints, group members)."""
        if is_id(ref):
            return ref.lower()
        if "/" not in ref:
            if kind in ("policygroup", "zone"):
                candidates = self.children(kind, domain_id)
            else:
                candidates = [o for z in self.children("zone", domain_id) for o in self._below_zone(kind, z["id"])]
            where = f" in domain {self.path_of('domain', domain_id)}"
            return self._pick(kind, ref, candidates, where)
        return self.resolve(kind, ref)

    def _below_zone(self, kind: str, zone_id: str) -> list[dict]:
        subnets = self.children("subnet", zone_id)
        if kind == "subnet":
            return subnets
        return [v for s in subnets for v in self.children("vport", s["id"])]

    def _where(self, kind: str) -> str:
        for scope in reversed(SCOPES):
            if scope in KINDS[kind].ancestry[:-1] and self.scope.get(scope):
                return f" in {KINDS[scope].label} {self.scope[scope]}"
        return ""

    @staticmethod
    def _matches(kind: str, ref: str, candidates: list[dict]) -> list[dict]:
        """The candidates ``ref`` names: by name, else (a rule) by priority, else by id prefix."""
        named = [o for o in candidates if o.get("name") == ref]
        if named:
            return named
        if kind == "acl" and ref.isdigit():  # a rule by its priority (unique in a domain)
            at = [o for o in candidates if o.get("priority") == int(ref)]
            if at:
                return at
        if is_id_prefix(ref):
            return [o for o in candidates if o["id"].startswith(ref.lower())]
        return []

    def _pick(self, kind: str, ref: str, candidates: list[dict], where: str) -> str:
        matches = self._matches(kind, ref, candidates)
        if not matches and "/" in ref:
            return self._resolve_path(kind, ref)
        if len(matches) == 1:
            return matches[0]["id"]
        if matches:
            raise self._ambiguous(kind, ref, matches, where)
        raise self._not_found(kind, ref, where)

    def _ambiguous(self, kind: str, ref: str, matches: list[dict], where: str) -> UsageError:
        label = KINDS[kind].label
        listing = self._listing(kind, matches)
        if matches[0].get("name") == ref:
            parent = KINDS[kind].parent
            hint = f"give a path ({self.path_of(kind, matches[0]['id'])})"
            hint += f", the parent (--{parent})" if parent else ""
            return UsageError(f"{len(matches)} {label}s are named {ref!r}{where}: {listing}; {hint} or an id prefix")
        if kind == "acl" and ref.isdigit():
            return UsageError(f"{len(matches)} ACL rules have priority {ref}{where}: {listing}; "
                              "give the domain (--domain) or an id prefix")
        return UsageError(f"id prefix {ref!r} matches {len(matches)} {label}s: {listing}; give more digits")

    def _not_found(self, kind: str, ref: str, where: str) -> DirectoryError:
        return error_from_answer(404, "not_found", f"no {KINDS[kind].label} named {ref!r}{where}"
                        + (" (nor with that id prefix)" if is_id_prefix(ref) else ""))

    def _resolve_path(self, kind: str, ref: str) -> str:
        """``acme/prod/web`` or a tail of it: every object the path fits, which must be one."""
        parts = ref.strip("/").split("/")
        chain = KINDS[kind].ancestry
        if len(parts) > len(chain):
            raise UsageError(f"path {ref!r} has {len(parts)} parts; {with_article(KINDS[kind].label)} path "
                             f"has at most {len(chain)}: {'/'.join(chain)}")
        kinds = chain[len(chain) - len(parts):]
        # The first part is looked for under the scope given (the whole tree when none is); a tail
        # like prod/web may fit under several parents and is ambiguous only if it fits several.
        current = self._matches(kinds[0], parts[0], self.in_scope(kinds[0]))
        if not current:
            raise self._not_found(kinds[0], parts[0], self._where(kinds[0]))
        for parent_kind, sub_kind, part in zip(kinds, kinds[1:], parts[1:], strict=False):
            found = [m for obj in current for m in self._matches(sub_kind, part, self.children(sub_kind, obj["id"]))]
            if not found:
                where = f" in {KINDS[parent_kind].label} {self.path_of(parent_kind, current[0]['id'])}" \
                    if len(current) == 1 else ""
                raise self._not_found(sub_kind, part, where)
            current = found
        if len(current) > 1:
            raise UsageError(f"path {ref!r} fits {len(current)} {KINDS[kind].label}s: "
                             f"{self._listing(kind, current)}; give more of the path or an id prefix")
        return current[0]["id"]

    def _listing(self, kind: str, objs: list[dict], limit: int = 8) -> str:
        shown = [f"{self.path_of(kind, o['id'])} ({short_id(o['id'])})" for o in objs[:limit]]
        more = f", and {len(objs) - limit} more" if len(objs) > limit else ""
        return ", ".join(shown) + more

    # -- ids -> names --
    def name_of(self, kind: str, obj_id: str | None) -> str:
        """The object's name (its short id when it has none or cannot be read)."""
        if not obj_id:
            return "-"
        try:
            obj = self.get(kind, obj_id)
        except DirectoryError:
            return short_id(obj_id)
        name = obj.get("name") or (f"prio-{obj['priority']}" if kind == "acl" else "")
        return name or short_id(obj_id)

    def path_of(self, kind: str, obj_id: str) -> str:
        """``acme/prod/web``: the names from the top down to the object."""
        names = []
        current_kind, current_id = kind, obj_id
        while current_id:
            names.insert(0, self.name_of(current_kind, current_id))
            parent = KINDS[current_kind].parent
            if parent is None:
                break
            obj = self.cached(current_id)
            current_kind, current_id = parent, (obj or {}).get(parent)
        return "/".join(names)


def parse_endpoint(text: str, resolve) -> dict:
    """'any', 'cidr:10.0.0.0/8', 'policygroup:NAME' or 'pg:NAME', 'zone:NAME', 'subnet:NAME'.

    ``resolve(kind, ref)`` turns the reference into an id ('' means any).
    """
    if text in ("any", ""):
        return {"type": "any"}
    etype, sep, value = text.partition(":")
    if not sep or not value or (etype != "cidr" and etype not in ENDPOINT_KINDS):
        raise UsageError(f"endpoint {text!r} must be any, cidr:CIDR, pg:GROUP (or policygroup:GROUP), "
                         "zone:ZONE or subnet:SUBNET")
    if etype == "cidr":
        return {"type": "cidr", "cidr": value}
    kind = ENDPOINT_KINDS[etype]
    return {"type": kind, "id": resolve(kind, value)}
