"""Declarative files of one enterprise: the document form, export, and the diff that ``apply`` sends.

Pure: API objects (dicts) in, documents / bulk operations out. ``nuage-ctl export`` turns an
enterprise's objects into a document; ``nuage-ctl apply`` compares a document with what exists and
sends the difference as ONE bulk request (all or nothing). Format (YAML or JSON, docs/nuage-ctl.md):

    enterprise: acme
    description: ACME Corp                # optional
    domains:
    - name: prod
      vni: 5001                           # optional: absent = any (lowest free on create)
      default_action: deny                # default deny
      log_default: true                   # optional: verdict records of the default action (default false)
      zones:
      - name: web
        subnets:
        - {name: front, cidr: 10.0.1.0/24, gateway: 10.0.1.1}   # gateway optional
      policygroups:
      - name: web
      acls:
      - {priority: 100, name: web-to-app, source: pg:web, destination: pg:app, protocol: tcp, dst_ports: '8080'}
      - {priority: 900, name: try-deny, action: deny, log: true, enforce: false}   # audit mode, logged

Objects are matched by name (rules: by name when they have one, else by priority). A field absent
from the file takes its default (description '', default_action deny, a rule's any/allow/stateful...),
except ``vni`` and ``gateway``: absent means "whatever it is". Fields fixed at creation (vni, cidr,
gateway) are never changed by apply: a difference is an error (delete and re-create instead).
Vports are not part of the file: plugins create them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from nuage_ryu.directory.ctl.resolve import UsageError

DOMAIN_KEYS = {"name", "description", "vni", "default_action", "log_default", "zones", "policygroups", "acls"}
ZONE_KEYS = {"name", "description", "subnets"}
SUBNET_KEYS = {"name", "description", "cidr", "gateway"}
GROUP_KEYS = {"name", "description"}
ACL_KEYS = {"priority", "name", "description", "source", "destination", "protocol", "dst_ports", "icmp_type",
            "icmp_code", "action", "stateful", "log", "enforce"}
ACL_DEFAULTS = {"name": "", "description": "", "source": "any", "destination": "any", "protocol": "any",
                "dst_ports": None, "icmp_type": None, "icmp_code": None, "action": "allow", "stateful": True,
                "log": False, "enforce": True}
_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}
_ENDPOINT_PREFIXES = {"pg": "policygroup", "policygroup": "policygroup", "zone": "zone", "subnet": "subnet"}


# ---------------------------------------------------------------------------
# reading and normalising a document


def load(text: str, what: str = "the file") -> dict:
    """A document from YAML or JSON text (UsageError when it is neither)."""
    try:
        data = json.loads(text)
    except ValueError:
        import yaml  # only when the file is not JSON: nuage-ctl starts fast

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{what} is neither JSON nor YAML: {exc}") from None
    return data


def _check_keys(obj, allowed: set[str], where: str, required: tuple[str, ...] = ("name",)) -> dict:
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a mapping, got {type(obj).__name__}")
    extra = set(obj) - allowed
    if extra:
        raise UsageError(f"{where}: unknown key {sorted(extra)[0]!r}; allowed: {', '.join(sorted(allowed))}")
    for key in required:
        if obj.get(key) in (None, ""):
            raise UsageError(f"{where}: {key!r} is required")
    return obj


def _list(obj: dict, key: str, where: str) -> list:
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise UsageError(f"{where}.{key}: expected a list")
    return value


def _unique(items: list[dict], key, where: str, what: str) -> None:
    seen = set()
    for item in items:
        k = key(item)
        if k in seen:
            raise UsageError(f"{where}: two {what}s with {k!r}")
        seen.add(k)


def _text(value, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected text")
    return value


def _protocol(value, where: str) -> str:
    if isinstance(value, bool):
        raise UsageError(f"{where}: protocol must be any, tcp, udp, icmp or 0..255")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        n = int(value)
        return _PROTOCOL_NAMES.get(n, str(n))
    if isinstance(value, str):
        return value.strip().lower()
    raise UsageError(f"{where}: protocol must be any, tcp, udp, icmp or 0..255")


def _ports(value, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise UsageError(f"{where}: dst_ports must be like '80' or '8000-8080'")
    lo, sep, hi = value.strip().partition("-")
    if sep and lo.strip() == hi.strip():
        return lo.strip()
    return value.strip()


def _endpoint(value, where: str) -> str:
    """'any', 'cidr:10.0.0.0/8', 'pg:web' (policygroup:web), 'zone:db', 'subnet:front' or 'subnet:web/front'."""
    if value is None or value == "any":
        return "any"
    if not isinstance(value, str) or ":" not in value:
        raise UsageError(f"{where}: endpoint {value!r} must be any, cidr:CIDR, pg:GROUP, zone:ZONE or "
                         "subnet:[ZONE/]SUBNET")
    prefix, _, rest = value.partition(":")
    if prefix == "cidr":
        try:
            return f"cidr:{ipaddress.IPv4Network(rest.strip())}"
        except ValueError:
            raise UsageError(f"{where}: {rest!r} is not an IPv4 network like 10.0.0.0/8") from None
    if prefix not in _ENDPOINT_PREFIXES or not rest:
        raise UsageError(f"{where}: endpoint {value!r} must be any, cidr:CIDR, pg:GROUP, zone:ZONE or "
                         "subnet:[ZONE/]SUBNET")
    kind = _ENDPOINT_PREFIXES[prefix]
    return f"{'pg' if kind == 'policygroup' else kind}:{rest}"


def normalize(doc) -> dict:
    """The document in its one canonical form (what export writes); UsageError naming the bad place."""
    doc = _check_keys(doc, {"enterprise", "description", "domains"}, "file", ("enterprise",))
    out: dict = {"enterprise": _text(doc["enterprise"], "enterprise")}
    if doc.get("description"):
        out["description"] = _text(doc["description"], "description")
    domains = []
    for i, d in enumerate(_list(doc, "domains", "file")):
        where = f"domains[{i}]"
        d = _check_keys(d, DOMAIN_KEYS, where)
        dom: dict = {"name": _text(d["name"], f"{where}.name")}
        if d.get("description"):
            dom["description"] = _text(d["description"], f"{where}.description")
        if d.get("vni") is not None:
            if not isinstance(d["vni"], int) or isinstance(d["vni"], bool):
                raise UsageError(f"{where}.vni: expected a number")
            dom["vni"] = d["vni"]
        dom["default_action"] = d.get("default_action") or "deny"
        if d.get("log_default"):
            if not isinstance(d["log_default"], bool):
                raise UsageError(f"{where}.log_default: expected true or false")
            dom["log_default"] = True
        zones = []
        for j, z in enumerate(_list(d, "zones", where)):
            zw = f"{where}.zones[{j}]"
            z = _check_keys(z, ZONE_KEYS, zw)
            zone: dict = {"name": _text(z["name"], f"{zw}.name")}
            if z.get("description"):
                zone["description"] = _text(z["description"], f"{zw}.description")
            subnets = []
            for k, s in enumerate(_list(z, "subnets", zw)):
                sw = f"{zw}.subnets[{k}]"
                s = _check_keys(s, SUBNET_KEYS, sw, ("name", "cidr"))
                sub: dict = {"name": _text(s["name"], f"{sw}.name"), "cidr": _text(s["cidr"], f"{sw}.cidr")}
                if s.get("gateway"):
                    sub["gateway"] = _text(s["gateway"], f"{sw}.gateway")
                if s.get("description"):
                    sub["description"] = _text(s["description"], f"{sw}.description")
                subnets.append(sub)
            _unique(subnets, lambda x: x["name"], zw, "subnet")
            if subnets:
                zone["subnets"] = sorted(subnets, key=lambda x: x["name"])
            zones.append(zone)
        _unique(zones, lambda x: x["name"], where, "zone")
        groups = []
        for j, g in enumerate(_list(d, "policygroups", where)):
            gw = f"{where}.policygroups[{j}]"
            g = _check_keys(g, GROUP_KEYS, gw)
            group: dict = {"name": _text(g["name"], f"{gw}.name")}
            if g.get("description"):
                group["description"] = _text(g["description"], f"{gw}.description")
            groups.append(group)
        _unique(groups, lambda x: x["name"], where, "policy group")
        subnet_zones: dict[str, list[str]] = {}
        for zone in zones:
            for sub in zone.get("subnets", []):
                subnet_zones.setdefault(sub["name"], []).append(zone["name"])
        acls = []
        for j, a in enumerate(_list(d, "acls", where)):
            aw = f"{where}.acls[{j}]"
            a = _check_keys(a, ACL_KEYS, aw, ("priority",))
            if not isinstance(a["priority"], int) or isinstance(a["priority"], bool):
                raise UsageError(f"{aw}.priority: expected a number")
            rule = {"priority": a["priority"]}
            for key, default in ACL_DEFAULTS.items():
                value = a.get(key, default)
                if key in ("source", "destination"):
                    value = _qualify_subnet(_endpoint(value, f"{aw}.{key}"), subnet_zones, f"{aw}.{key}")
                elif key == "protocol":
                    value = _protocol(value, f"{aw}.protocol")
                elif key == "dst_ports":
                    value = _ports(value, f"{aw}.dst_ports")
                elif key in ("name", "description"):
                    value = _text(value, f"{aw}.{key}")
                if value != default:
                    rule[key] = value
            acls.append(rule)
        _unique(acls, lambda x: x["priority"], where, "rule")
        _unique([a for a in acls if a.get("name")], lambda x: x["name"], where, "rule")
        if zones:
            dom["zones"] = sorted(zones, key=lambda x: x["name"])
        if groups:
            dom["policygroups"] = sorted(groups, key=lambda x: x["name"])
        if acls:
            dom["acls"] = sorted(acls, key=lambda x: x["priority"])
        domains.append(dom)
    _unique(domains, lambda x: x["name"], "file", "domain")
    if domains:
        out["domains"] = sorted(domains, key=lambda x: x["name"])
    return out


def _qualify_subnet(endpoint: str, subnet_zones: dict[str, list[str]], where: str) -> str:
    """'subnet:front' -> 'subnet:web/front' when the file's domain has exactly one subnet front."""
    if not endpoint.startswith("subnet:") or "/" in endpoint:
        return endpoint
    name = endpoint[len("subnet:"):]
    zones = subnet_zones.get(name, [])
    if len(zones) != 1:
        raise UsageError(f"{where}: {'no' if not zones else 'more than one'} subnet named {name!r} in this domain; "
                         "write subnet:ZONE/SUBNET")
    return f"subnet:{zones[0]}/{name}"


# ---------------------------------------------------------------------------
# what exists: the API objects of one enterprise


@dataclass
class DomainTree:
    """One domain's API objects."""

    obj: dict
    zones: list[dict] = field(default_factory=list)
    subnets: dict[str, list[dict]] = field(default_factory=dict)  # zone id -> subnets
    policygroups: list[dict] = field(default_factory=list)
    acls: list[dict] = field(default_factory=list)


@dataclass
class EnterpriseTree:
    """An enterprise's API objects (those the file format covers)."""

    obj: dict
    domains: list[DomainTree] = field(default_factory=list)


def fetch(client, enterprise: str) -> EnterpriseTree | None:
    """What exists of ``enterprise`` (a name), None when there is no such enterprise."""
    ents = [e for e in client.list("/enterprises", name=enterprise) if e.get("name") == enterprise]
    if not ents:
        return None
    tree = EnterpriseTree(ents[0])
    for dom in client.list(f"/enterprises/{ents[0]['id']}/domains"):
        dt = DomainTree(dom, zones=client.list(f"/domains/{dom['id']}/zones"),
                        policygroups=client.list(f"/domains/{dom['id']}/policygroups"),
                        acls=client.list(f"/domains/{dom['id']}/acls"))
        for zone in dt.zones:
            dt.subnets[zone["id"]] = client.list(f"/zones/{zone['id']}/subnets")
        tree.domains.append(dt)
    return tree


def _names(dt: DomainTree) -> dict[str, str]:
    """id -> endpoint text of the domain's groups, zones and subnets."""
    out = {g["id"]: f"pg:{g['name']}" for g in dt.policygroups}
    for zone in dt.zones:
        out[zone["id"]] = f"zone:{zone['name']}"
        for sub in dt.subnets.get(zone["id"], []):
            out[sub["id"]] = f"subnet:{zone['name']}/{sub['name']}"
    return out


def _endpoint_text(endpoint: dict, names: dict[str, str]) -> str:
    if endpoint.get("type") == "any":
        return "any"
    if endpoint.get("type") == "cidr":
        return f"cidr:{endpoint['cidr']}"
    return names.get(endpoint.get("id"), f"{endpoint.get('type')}:{endpoint.get('id')}")


def rule_document(acl: dict, names: dict[str, str]) -> dict:
    """A rule in the document form (defaults left out)."""
    rule = {"priority": acl["priority"]}
    for key, default in ACL_DEFAULTS.items():
        value = acl.get(key, default)
        if key in ("source", "destination"):
            value = _endpoint_text(value, names)
        if value != default:
            rule[key] = value
    return rule


def export(tree: EnterpriseTree) -> dict:
    """The document of what exists (normalised: ``normalize(export(t)) == export(t)``)."""
    doc: dict = {"enterprise": tree.obj["name"]}
    if tree.obj.get("description"):
        doc["description"] = tree.obj["description"]
    domains = []
    for dt in tree.domains:
        d = dt.obj
        dom: dict = {"name": d["name"]}
        if d.get("description"):
            dom["description"] = d["description"]
        dom["vni"] = d["vni"]
        dom["default_action"] = d["default_action"]
        if d.get("log_default"):
            dom["log_default"] = True
        zones = []
        for z in dt.zones:
            zone: dict = {"name": z["name"]}
            if z.get("description"):
                zone["description"] = z["description"]
            subnets = []
            for s in dt.subnets.get(z["id"], []):
                sub = {"name": s["name"], "cidr": s["cidr"], "gateway": s["gateway"]}
                if s.get("description"):
                    sub["description"] = s["description"]
                subnets.append(sub)
            if subnets:
                zone["subnets"] = sorted(subnets, key=lambda x: x["name"])
            zones.append(zone)
        if zones:
            dom["zones"] = sorted(zones, key=lambda x: x["name"])
        groups = [{"name": g["name"], **({"description": g["description"]} if g.get("description") else {})}
                  for g in dt.policygroups]
        if groups:
            dom["policygroups"] = sorted(groups, key=lambda x: x["name"])
        names = _names(dt)
        acls = [rule_document(a, names) for a in dt.acls]
        if acls:
            dom["acls"] = sorted(acls, key=lambda x: x["priority"])
        domains.append(dom)
    if domains:
        doc["domains"] = sorted(domains, key=lambda x: x["name"])
    return doc


# ---------------------------------------------------------------------------
# the difference, as bulk operations


@dataclass
class Plan:
    """What apply sends (bulk operations, in order) and says (one line per change)."""

    operations: list[dict] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def _fields(desired: dict, current: dict, keys: tuple[str, ...], defaults: dict) -> dict:
    """The fields among ``keys`` whose desired value differs from the current one."""
    out = {}
    for key in keys:
        want = desired.get(key, defaults.get(key))
        if current.get(key, defaults.get(key)) != want:
            out[key] = want
    return out


def _show(value) -> str:
    return "''" if value in ("", None) else str(value)


def _fixed(where: str, key: str, want, have) -> None:
    if want is not None and want != have:
        raise UsageError(f"{where}: {key} cannot be changed ({have} now, {want} in the file); delete and "
                         "re-create it to change it")


class _Planner:
    def __init__(self, doc: dict, tree: EnterpriseTree | None, prune: bool):
        self.doc = doc
        self.tree = tree
        self.prune = prune
        self.plan = Plan()
        self.first_deletes: list[dict] = []  # rules: before any create (a priority may be reused)
        self.last_deletes: list[dict] = []  # groups, subnets, zones, domains: after the rules moved away

    def op(self, line: str, **operation) -> None:
        self.plan.changes.append(line)
        self.plan.operations.append(operation)

    def update(self, kind: str, path: str, obj_id: str, changed: dict, before: dict,
               after: dict | None = None) -> None:
        """An update of ``changed`` (API values); the line shows ``before`` -> ``after`` (default: the body)."""
        if not changed:
            return
        after = after or changed
        what = ", ".join(f"{k} {_show(before.get(k))} -> {_show(after[k])}" for k in changed)
        self.op(f"~ {kind} {path}: {what}", action="update", kind=kind, id=obj_id, body=changed)

    def delete(self, kind: str, path: str, obj_id: str, first: bool = False) -> None:
        entry = {"line": f"- {kind} {path}", "op": {"action": "delete", "kind": kind, "id": obj_id}}
        (self.first_deletes if first else self.last_deletes).append(entry)

    def run(self) -> Plan:
        doc, tree = self.doc, self.tree
        ent_name = doc["enterprise"]
        if tree is None:
            body = {"name": ent_name, **({"description": doc["description"]} if doc.get("description") else {})}
            self.op(f"+ enterprise {ent_name}", action="create", kind="enterprise", ref="enterprise", body=body)
            ent_ref = "$enterprise"
            current_domains: dict[str, DomainTree] = {}
        else:
            ent_ref = tree.obj["id"]
            self.update("enterprise", ent_name, tree.obj["id"],
                        _fields(doc, tree.obj, ("description",), {"description": ""}), tree.obj)
            current_domains = {dt.obj["name"]: dt for dt in tree.domains}
        for dom in doc.get("domains", []):
            self.domain(f"{ent_name}/{dom['name']}", dom, current_domains.get(dom["name"]), ent_ref)
        if self.prune:
            wanted = {d["name"] for d in doc.get("domains", [])}
            for name, dt in current_domains.items():
                if name not in wanted:
                    self.prune_domain(f"{ent_name}/{name}", dt)
        ordered = ([(e["line"], e["op"]) for e in self.first_deletes]
                   + list(zip(self.plan.changes, self.plan.operations, strict=True))
                   + [(e["line"], e["op"]) for e in self.last_deletes])
        return Plan([o for _line, o in ordered], [line for line, _o in ordered])

    def domain(self, path: str, dom: dict, dt: DomainTree | None, ent_ref: str) -> None:
        ref = f"domain:{dom['name']}"
        if dt is None:
            body = {k: dom[k] for k in ("name", "description", "vni", "default_action", "log_default") if k in dom}
            self.op(f"+ domain {path}", action="create", kind="domain", parent=ent_ref, ref=ref, body=body)
            dom_id, dt = f"${ref}", DomainTree({})
        else:
            dom_id = dt.obj["id"]
            _fixed(f"domain {path}", "vni", dom.get("vni"), dt.obj.get("vni"))
            self.update("domain", path, dom_id,
                        _fields(dom, dt.obj, ("description", "default_action", "log_default"),
                                {"description": "", "default_action": "deny", "log_default": False}), dt.obj)
        # ids (or refs) of the domain's groups, zones and subnets, by endpoint text
        targets: dict[str, str] = {}
        have_zones = {z["name"]: z for z in dt.zones}
        for zone in dom.get("zones", []):
            zpath, zref = f"{path}/{zone['name']}", f"zone:{dom['name']}/{zone['name']}"
            cur = have_zones.get(zone["name"])
            if cur is None:
                body = {k: zone[k] for k in ("name", "description") if k in zone}
                self.op(f"+ zone {zpath}", action="create", kind="zone", parent=dom_id, ref=zref, body=body)
                zone_id, have_subnets = f"${zref}", {}
            else:
                zone_id = cur["id"]
                self.update("zone", zpath, zone_id, _fields(zone, cur, ("description",), {"description": ""}), cur)
                have_subnets = {s["name"]: s for s in dt.subnets.get(cur["id"], [])}
            targets[f"zone:{zone['name']}"] = zone_id
            for sub in zone.get("subnets", []):
                spath, sref = f"{zpath}/{sub['name']}", f"subnet:{dom['name']}/{zone['name']}/{sub['name']}"
                scur = have_subnets.pop(sub["name"], None)
                if scur is None:
                    body = {k: sub[k] for k in ("name", "description", "cidr", "gateway") if k in sub}
                    self.op(f"+ subnet {spath} {sub['cidr']}", action="create", kind="subnet", parent=zone_id,
                            ref=sref, body=body)
                    targets[f"subnet:{zone['name']}/{sub['name']}"] = f"${sref}"
                else:
                    _fixed(f"subnet {spath}", "cidr", sub["cidr"], scur["cidr"])
                    _fixed(f"subnet {spath}", "gateway", sub.get("gateway"), scur["gateway"])
                    self.update("subnet", spath, scur["id"],
                                _fields(sub, scur, ("description",), {"description": ""}), scur)
                    targets[f"subnet:{zone['name']}/{sub['name']}"] = scur["id"]
            if self.prune:
                for name, scur in have_subnets.items():
                    self.delete("subnet", f"{zpath}/{name}", scur["id"])
        have_groups = {g["name"]: g for g in dt.policygroups}
        for group in dom.get("policygroups", []):
            gpath, gref = f"{path}/{group['name']}", f"pg:{dom['name']}/{group['name']}"
            cur = have_groups.pop(group["name"], None)
            if cur is None:
                body = {k: group[k] for k in ("name", "description") if k in group}
                self.op(f"+ policygroup {gpath}", action="create", kind="policygroup", parent=dom_id, ref=gref,
                        body=body)
                targets[f"pg:{group['name']}"] = f"${gref}"
            else:
                self.update("policygroup", gpath, cur["id"],
                            _fields(group, cur, ("description",), {"description": ""}), cur)
                targets[f"pg:{group['name']}"] = cur["id"]
        # existing objects the file does not mention can still be rule endpoints (unless pruned)
        names = _names(dt)
        for obj_id, text in names.items():
            targets.setdefault(text, obj_id)
        self.rules(path, dom, dt, dom_id, targets, names)
        if self.prune:
            for name, cur in have_groups.items():
                self.delete("policygroup", f"{path}/{name}", cur["id"])
            wanted = {z["name"] for z in dom.get("zones", [])}
            for name, cur in have_zones.items():
                if name not in wanted:
                    for sub in dt.subnets.get(cur["id"], []):
                        self.delete("subnet", f"{path}/{name}/{sub['name']}", sub["id"])
                    self.delete("zone", f"{path}/{name}", cur["id"])

    def rules(self, path: str, dom: dict, dt: DomainTree, dom_id: str, targets: dict[str, str],
              names: dict[str, str]) -> None:
        by_name = {a["name"]: a for a in dt.acls if a.get("name")}
        by_priority = {a["priority"]: a for a in dt.acls}
        matched: set[str] = set()
        for rule in dom.get("acls", []):
            rpath = f"{path}/{rule.get('name') or rule['priority']}"
            cur = by_name.get(rule.get("name")) if rule.get("name") else None
            if cur is None:
                cur = by_priority.get(rule["priority"])
                if cur is not None and cur.get("name") and cur["name"] != rule.get("name") \
                        and any(r.get("name") == cur["name"] for r in dom.get("acls", [])):
                    cur = None  # that rule is another of the file's rules, matched by its name
            if cur is not None and cur["id"] in matched:
                cur = None
            body = self.rule_body(rule, targets, rpath)
            if cur is None:
                self.op(f"+ acl {rpath} (priority {rule['priority']})", action="create", kind="acl", parent=dom_id,
                        body=body)
                continue
            matched.add(cur["id"])
            shown = rule_document(cur, names)
            want = {"priority": rule["priority"], **{k: rule.get(k, d) for k, d in ACL_DEFAULTS.items()}}
            have = {"priority": shown["priority"], **{k: shown.get(k, d) for k, d in ACL_DEFAULTS.items()}}
            changed = {k: body[k] for k in want if want[k] != have[k]}
            self.update("acl", rpath, cur["id"], changed, have, want)
        if self.prune:
            for acl in dt.acls:
                if acl["id"] not in matched:
                    self.delete("acl", f"{path}/{acl.get('name') or acl['priority']}", acl["id"], first=True)

    @staticmethod
    def rule_body(rule: dict, targets: dict[str, str], where: str) -> dict:
        body: dict = {"priority": rule["priority"]}
        for key, default in ACL_DEFAULTS.items():
            value = rule.get(key, default)
            if key in ("source", "destination"):
                if value == "any":
                    value = {"type": "any"}
                elif value.startswith("cidr:"):
                    value = {"type": "cidr", "cidr": value[5:]}
                else:
                    if value not in targets:
                        raise UsageError(f"acl {where}: {key} {value} does not exist in this domain")
                    kind = value.partition(":")[0]
                    value = {"type": "policygroup" if kind == "pg" else kind, "id": targets[value]}
            body[key] = value
        return body

    def prune_domain(self, path: str, dt: DomainTree) -> None:
        for acl in dt.acls:
            self.delete("acl", f"{path}/{acl.get('name') or acl['priority']}", acl["id"], first=True)
        for group in dt.policygroups:
            self.delete("policygroup", f"{path}/{group['name']}", group["id"])
        for zone in dt.zones:
            for sub in dt.subnets.get(zone["id"], []):
                self.delete("subnet", f"{path}/{zone['name']}/{sub['name']}", sub["id"])
            self.delete("zone", f"{path}/{zone['name']}", zone["id"])
        self.delete("domain", path, dt.obj["id"])


def plan(doc: dict, tree: EnterpriseTree | None, prune: bool = False) -> Plan:
    """The bulk operations that make ``tree`` what the normalised ``doc`` describes, in a safe order:
    rules to prune first (their priorities may be reused), then creates and updates from the top
    down, then the other deletes from the bottom up. Objects with vports are never deleted: the
    bulk request then fails (the subnet still has vports) and nothing changes."""
    return _Planner(doc, tree, prune).run()
