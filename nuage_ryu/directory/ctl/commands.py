"""The object commands: create, list, show, update, delete, policy group members.

Each turns parsed arguments into REST calls through one DirectoryClient and writes the answer in the
output format asked for. References are resolved with ``resolve.Resolver``; the fields of a
request body come from the option declarations in ``parser.FIELD_OPTIONS``.
"""

from __future__ import annotations

import sys
from typing import TextIO

from nuage_ryu.directory.client import DirectoryClient, error_from_answer
from nuage_ryu.directory.ctl import errors, render
from nuage_ryu.directory.ctl.kinds import KINDS, SCOPES, with_article
from nuage_ryu.directory.ctl.parser import FIELD_OPTIONS, Opt
from nuage_ryu.directory.ctl.resolve import Resolver, UsageError, parse_endpoint
from nuage_ryu.directory.errors import DirectoryError


def _port_mapping(spec: str) -> dict:
    """``tcp/8080:80`` or ``8080:80`` (tcp) -> a vport port mapping."""
    protocol, _, ports = spec.rpartition("/")
    host, _, container = ports.partition(":")
    if not (host.isdigit() and container.isdigit()):
        raise UsageError(f"--port-mapping {spec!r}: expected [tcp|udp/]HOST_PORT:CONTAINER_PORT (e.g. tcp/8080:80)")
    return {"protocol": protocol or "tcp", "host_port": int(host), "container_port": int(container)}


def _kv(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--external-id {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def _int(opt: Opt, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{opt.flag} {text!r} is not a number") from None


class Body:
    """Builds a request body from the field options, resolving names inside one domain."""

    def __init__(self, kind: str, args, resolver: Resolver, creating: bool, domain_id: str | None):
        self.kind = kind
        self.args = args
        self.resolver = resolver
        self.creating = creating
        self.domain_id = domain_id

    def build(self) -> dict:
        body: dict = {}
        if self.creating and self.kind not in ("acl", "token"):
            body["name"] = self.args.name
        if self.creating and self.kind == "subnet":
            body["cidr"] = self.args.cidr
        if getattr(self.args, "new_name", None) is not None:
            body["name"] = self.args.new_name
        for opt in FIELD_OPTIONS.get(self.kind, []):
            raw = getattr(self.args, opt.dest, None)
            if raw is None:
                continue
            empty = raw == "" or (isinstance(raw, list) and raw == [""])
            if empty and opt.clearable:
                if not self.creating:
                    body[opt.field] = opt.clear
                continue
            body[opt.field] = self._value(opt, [v for v in raw if v] if isinstance(raw, list) else raw)
        if getattr(self.args, "f_stateful", None) is not None:
            body["stateful"] = self.args.f_stateful
        if getattr(self.args, "f_egress_nat", None) is not None:
            body["egress_nat"] = self.args.f_egress_nat
        for flag, key in (("f_log", "log"), ("f_enforce", "enforce"), ("f_log_default", "log_default")):
            if getattr(self.args, flag, None) is not None:
                body[key] = getattr(self.args, flag)
        if self.kind == "token" and self.creating:
            if self.args.host:
                body["host"] = self.args.host
            else:
                body["enterprise"] = self.resolver.resolve("enterprise", self.args.enterprise)
        return body

    def _value(self, opt: Opt, raw):
        if opt.type == "int":
            return _int(opt, raw)
        if opt.type == "endpoint":
            return parse_endpoint(raw, self._in_domain)
        if opt.type == "policygroups":
            return [self._in_domain("policygroup", ref) for ref in raw]
        if opt.type == "external_ids":
            return _kv(raw)
        if opt.type == "port_mappings":
            return [_port_mapping(spec) for spec in raw]
        if opt.field == "protocol" and raw.isdigit():
            return int(raw)
        return raw

    def _in_domain(self, kind: str, ref: str) -> str:
        if self.domain_id is None:
            return self.resolver.resolve(kind, ref)
        return self.resolver.resolve_in_domain(kind, ref, self.domain_id)


class ObjectCommand:
    """One ``nuage-ctl KIND ACTION`` run."""

    def __init__(self, args, client: DirectoryClient, out: TextIO | None = None):
        self.args = args
        self.kind = args.object
        self.info = KINDS[args.object]
        self.client = client
        self.out = out or sys.stdout
        self.output = getattr(args, "output", None) or "table"
        scope = {k: getattr(args, k, None) for k in SCOPES}
        if self.kind == "token":
            scope["enterprise"] = None  # token create's --enterprise is the token's enterprise, not a scope
        self.resolver = Resolver(client, scope)

    # -- output --
    def emit(self, result, kind: str | None = None) -> None:
        kind = kind or self.kind
        if self.output in ("json", "yaml"):
            self.out.write(render.render_data(result, self.output))
        elif isinstance(result, list):
            self._prefetch(kind, result)
            render.print_table(result, render.COLUMNS[kind], self.out, self.resolver, self.output == "wide")
        elif result is not None:
            self.resolver.remember(result)
            self.out.write(render.render_object(kind, result, self.resolver))

    def _prefetch(self, kind: str, rows: list[dict]) -> None:
        """Fetch whole collections of what the rows refer to (a few lists instead of one GET per id)."""
        domains = {r.get("domain") for r in rows if r.get("domain")}
        for domain_id in domains:
            if kind == "acl":
                kinds = {e["type"] for r in rows for e in (r.get("source"), r.get("destination"))
                         if isinstance(e, dict)}
                if "policygroup" in kinds:
                    self.resolver.children("policygroup", domain_id)
                if kinds & {"zone", "subnet"}:
                    for zone in self.resolver.children("zone", domain_id):
                        if "subnet" in kinds:
                            self.resolver.children("subnet", zone["id"])
            elif kind == "vport" and any(r.get("policygroups") for r in rows):
                self.resolver.children("policygroup", domain_id)

    # -- actions --
    def run(self) -> None:
        handler = getattr(self, "do_" + self.args.action.replace("-", "_"))
        try:
            handler()
        except DirectoryError as exc:  # ids in the message -> the names this command has seen
            raise error_from_answer(exc.status, exc.code, errors.with_names(exc.message, self.resolver)) from None

    def _collection(self) -> str:
        parent = self.info.parent
        if parent is None:
            return f"/{self.info.plural}"
        ref = getattr(self.args, parent, None)
        if not ref:
            raise UsageError(f"{self.kind} create needs --{parent} (the {KINDS[parent].label} to create "
                             f"{with_article(self.info.label)} in)")
        return f"/{KINDS[parent].plural}/{self.resolver.scope_id(parent)}/{self.info.plural}"

    def _domain_of_parent(self) -> str | None:
        parent = self.info.parent
        if parent == "domain":
            return self.resolver.scope_id("domain")
        if parent in ("zone", "subnet"):
            return self.resolver.get(parent, self.resolver.scope_id(parent)).get("domain")
        return None

    def do_create(self) -> None:
        path = self._collection()
        body = Body(self.kind, self.args, self.resolver, True, self._domain_of_parent()).build()
        self.emit(self.client.post(path, body))

    def do_list(self) -> None:
        params = {"name": self.args.name} if self.args.name else {}
        if self.info.parent is None:
            rows = self.client.list(f"/{self.info.plural}", **params)
        else:
            rows = []
            for pid in self.resolver.ids_in_scope(self.info.parent):
                rows += self.client.list(f"/{KINDS[self.info.parent].plural}/{pid}/{self.info.plural}", **params)
        self.emit(rows)

    def _target(self) -> str:
        return self.resolver.resolve(self.kind, self.args.ref)

    def do_show(self) -> None:
        self.emit(self.client.get(f"/{self.info.plural}/{self._target()}"))

    def do_update(self) -> None:
        obj_id = self._target()
        domain_id = None
        if self.kind in ("vport", "acl"):
            domain_id = self.resolver.get(self.kind, obj_id).get("domain")
        body = Body(self.kind, self.args, self.resolver, False, domain_id).build()
        if not body:
            raise UsageError(f"nothing to update; give at least one option (see nuage-ctl {self.kind} update "
                             "--help)")
        self.emit(self.client.put(f"/{self.info.plural}/{obj_id}", body))

    def do_delete(self) -> None:
        obj_id = self._target()
        cascade = getattr(self.args, "cascade", False)
        self.client.delete(f"/{self.info.plural}/{obj_id}", **({"cascade": "true"} if cascade else {}))
        if self.output in ("json", "yaml"):
            self.out.write(render.render_data({"deleted": obj_id}, self.output))

    # -- host credentials (host_credentials.py) --
    def do_enroll(self) -> None:
        from nuage_ryu.directory.ctl import host_credentials

        host_credentials.enroll(self.args, self.client, self.out)

    def do_revoke(self) -> None:
        from nuage_ryu.directory.ctl import host_credentials

        host_credentials.revoke(self.args, self.client, self.out)

    # -- policy group members --
    def _members_path(self) -> tuple[str, str]:
        pg = self._target()
        domain_id = self.resolver.get("policygroup", pg)["domain"]
        return f"/policygroups/{pg}/vports", domain_id

    def _vports(self, domain_id: str) -> list[str]:
        return [self.resolver.resolve_in_domain("vport", v, domain_id) for v in self.args.vports]

    def do_members(self) -> None:
        path, _domain = self._members_path()
        self.emit(self.client.list(path), "vport")

    def do_add_member(self) -> None:
        path, domain_id = self._members_path()
        self.emit(self.client.post(path, {"vports": self._vports(domain_id)}), "vport")

    def do_set_members(self) -> None:
        path, domain_id = self._members_path()
        self.emit(self.client.put(path, {"vports": self._vports(domain_id)}), "vport")

    def do_remove_member(self) -> None:
        path, domain_id = self._members_path()
        for vport_id in self._vports(domain_id):
            self.client.delete(f"{path}/{vport_id}")
        self.emit(self.client.list(path), "vport")
