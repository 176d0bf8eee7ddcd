"""nuage-ctl: the directory REST API from the shell (like ovn-nbctl).

    nuage-ctl [--url URL | --socket PATH] [--token-file F] [--json] OBJECT ACTION [ARGS]
    nuage-ctl enterprise create acme
    nuage-ctl domain create --enterprise acme prod
    nuage-ctl subnet create --zone web front 10.0.1.0/24
    nuage-ctl vport list --subnet front
    nuage-ctl db-cluster create --members 3 --dir /tmp/cluster

Objects may be given by id or by name; a name is looked up under the parent
options given (--enterprise, --domain, --zone, --subnet), or everywhere visible
when they are omitted (ambiguous names are a usage error).

Exit codes: 0 ok, 1 the API refused (message printed), 2 usage error,
3 cannot connect. Stdlib only, so that it starts fast.
Environment: NUAGE_URL, NUAGE_SOCKET, NUAGE_TOKEN, NUAGE_TOKEN_FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid

from nuage_ryu.directory.client import CannotConnect, DirectoryClient
from nuage_ryu.directory.errors import DirectoryError, NotFound

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TOKEN_FILE = "/var/lib/nuage-ryu/api-token"

# kind -> (plural, parent kind, table columns)
KINDS = {
    "enterprise": ("enterprises", None, ["id", "name", "description"]),
    "domain": ("domains", "enterprise", ["id", "name", "vni", "default_action", "ct_zone", "router_mac",
                                         "egress_nat"]),
    "zone": ("zones", "domain", ["id", "name", "description"]),
    "subnet": ("subnets", "zone", ["id", "name", "cidr", "gateway"]),
    "vport": ("vports", "subnet", ["id", "name", "ip", "mac", "status", "host", "type"]),
    "policygroup": ("policygroups", "domain", ["id", "name", "description"]),
    "acl": ("acls", "domain", ["id", "priority", "source", "destination", "protocol", "dst_ports", "action",
                               "stateful"]),
    "host": ("hosts", None, ["id", "name", "tunnel_ip", "datapath_id", "connected", "last_seen"]),
    "token": ("tokens", None, ["id", "enterprise", "name", "created"]),
}
SCOPES = ("enterprise", "domain", "zone", "subnet")


class UsageError(Exception):
    """Bad command line (exit 2)."""


def is_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


class Resolver:
    """Turns names into ids by walking the API under the given parent scope."""

    def __init__(self, client: DirectoryClient, scope: dict[str, str | None]):
        self.client = client
        self.scope = scope

    def all_ids(self, kind: str) -> list[str]:
        plural, parent, _cols = KINDS[kind]
        if self.scope.get(kind):
            return [self.resolve(kind, self.scope[kind])]
        if parent is None:
            return [o["id"] for o in self.client.get(f"/{plural}")]
        out = []
        for pid in self.all_ids(parent):
            out += [o["id"] for o in self.client.get(f"/{KINDS[parent][0]}/{pid}/{plural}")]
        return out

    def resolve(self, kind: str, ref: str) -> str:
        if is_id(ref):
            return ref
        plural, parent, _cols = KINDS[kind]
        if parent is None:
            matches = self.client.get(f"/{plural}", name=ref)
        else:
            matches = []
            for pid in self.all_ids(parent):
                matches += self.client.get(f"/{KINDS[parent][0]}/{pid}/{plural}", name=ref)
        if not matches:
            raise NotFound(f"no {kind} named {ref!r}")
        if len(matches) > 1:
            raise UsageError(f"{len(matches)} {kind}s are named {ref!r}; give the parent "
                             f"(--{parent}) or the id")
        return matches[0]["id"]


def endpoint(text: str, resolver: Resolver) -> dict:
    """'any', 'cidr:10.0.0.0/8', 'policygroup:NAME', 'zone:NAME', 'subnet:NAME' (names or ids)."""
    if text == "any":
        return {"type": "any"}
    etype, sep, value = text.partition(":")
    if not sep or etype not in ("cidr", "policygroup", "pg", "zone", "subnet"):
        raise UsageError(f"endpoint {text!r} must be any, cidr:X, policygroup:NAME, zone:NAME or subnet:NAME")
    if etype == "cidr":
        return {"type": "cidr", "cidr": value}
    etype = "policygroup" if etype == "pg" else etype
    return {"type": etype, "id": resolver.resolve(etype, value)}


# ---------------------------------------------------------------------------
# output


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if "by_host" in value:  # counters: the sum, then each host's part
            hosts = " ".join(f"{h}={c['packets']}/{c['bytes']}" for h, c in value["by_host"].items())
            return f"{value['packets']} packets {value['bytes']} bytes" + (f" ({hosts})" if hosts else "")
        if "type" in value:
            if value["type"] == "any":
                return "any"
            return f"{value['type']}:{value.get('id') or value.get('cidr')}"
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "message" in v for v in value):  # warnings
            return "; ".join(f"{v['code']}: {v['message']}" for v in value)
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def print_table(rows: list[dict], columns: list[str], out=sys.stdout) -> None:
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def print_object(obj: dict, out=sys.stdout) -> None:
    width = max(len(k) for k in obj) if obj else 0
    for key, value in obj.items():
        out.write(f"{key.ljust(width)}  {fmt(value)}\n")


# ---------------------------------------------------------------------------
# command line


def _kv(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{item!r} must be KEY=VALUE")
        out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nuage-ctl", description="Manage the nuage-ryu policy directory.")
    p.add_argument("--url", default=os.environ.get("NUAGE_URL"), help=f"API base URL (default {DEFAULT_URL})")
    p.add_argument("--socket", default=os.environ.get("NUAGE_SOCKET"),
                   help="API unix socket instead of --url")
    p.add_argument("--token-file", default=os.environ.get("NUAGE_TOKEN_FILE", DEFAULT_TOKEN_FILE))
    p.add_argument("--token", default=os.environ.get("NUAGE_TOKEN"), help="token (overrides --token-file)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--timeout", type=float, default=30.0)
    objs = p.add_subparsers(dest="object", metavar="OBJECT", required=True)

    def scoped(sp, kinds):
        for k in kinds:
            sp.add_argument(f"--{k}", help=f"{k} name or id")

    parents = {"enterprise": [], "domain": ["enterprise"], "zone": ["enterprise", "domain"],
               "subnet": ["enterprise", "domain", "zone"],
               "vport": ["enterprise", "domain", "zone", "subnet"],
               "policygroup": ["enterprise", "domain"], "acl": ["enterprise", "domain"],
               "host": [], "token": []}
    for kind in KINDS:
        op = objs.add_parser(kind, help=f"{kind}s").add_subparsers(dest="action", metavar="ACTION",
                                                                  required=True)
        create = op.add_parser("create")
        scoped(create, parents[kind])
        lst = op.add_parser("list")
        scoped(lst, parents[kind])
        lst.add_argument("--name")
        show = op.add_parser("show")
        scoped(show, parents[kind])
        show.add_argument("ref", help="name or id")
        delete = op.add_parser("delete")
        scoped(delete, parents[kind])
        delete.add_argument("ref")
        delete.add_argument("--cascade", action="store_true", help="also delete everything below")
        update = None
        if kind != "token":
            update = op.add_parser("update")
            scoped(update, parents[kind])
            update.add_argument("ref")
        for sp in (create, update):
            if sp is None:
                continue
            if kind in ("enterprise", "domain", "zone", "subnet", "vport", "policygroup", "acl"):
                sp.add_argument("--description")
            if sp is update and kind not in ("acl",):
                sp.add_argument("--name", dest="new_name")
        if kind not in ("acl", "token"):
            create.add_argument("name")
        if kind == "domain":
            create.add_argument("--vni", type=int)
            create.add_argument("--router-mac")
            for sp in (create, update):
                sp.add_argument("--default-action", choices=["allow", "deny"])
                sp.add_argument("--egress-nat", choices=["on", "off"],
                                help="vports may reach outside addresses through their host (docs/external.md)")
        elif kind == "subnet":
            create.add_argument("cidr")
            create.add_argument("--gateway")
        elif kind == "vport":
            create.add_argument("--ip")
            create.add_argument("--mac")
            create.add_argument("--type", choices=["container", "vm", "host"])
            for sp in (create, update):
                sp.add_argument("--host")
                sp.add_argument("--policygroup", action="append", help="policy group name or id (repeat)")
                sp.add_argument("--external-id", action="append", metavar="KEY=VALUE")
                sp.add_argument("--floating-ip", help="external address from the pool; '' removes it")
                sp.add_argument("--port-mapping", action="append", metavar="[PROTO/]HOST_PORT:CONTAINER_PORT",
                                help="publish a port on the host's address (repeat; 'none' clears)")
        elif kind == "acl":
            for sp in (create, update):
                sp.add_argument("--priority", type=int, required=sp is create)
                sp.add_argument("--name", dest="acl_name")
                sp.add_argument("--source", help="any | cidr:X | policygroup:N | zone:N | subnet:N")
                sp.add_argument("--destination")
                sp.add_argument("--protocol")
                sp.add_argument("--ports", dest="dst_ports", help="'80' or '8000-8080'")
                sp.add_argument("--icmp-type", type=int)
                sp.add_argument("--icmp-code", type=int)
                sp.add_argument("--action", dest="rule_action", choices=["allow", "deny"])
                sp.add_argument("--stateless", action="store_true", default=None)
        elif kind == "host":
            for sp in (create, update):
                sp.add_argument("--tunnel-ip")
                sp.add_argument("--datapath-id")
        elif kind == "token":
            create.add_argument("--enterprise", required=True, help="enterprise name or id")
            create.add_argument("--name")
        if kind == "policygroup":
            members = op.add_parser("members", help="list member vports")
            scoped(members, parents[kind])
            members.add_argument("ref")
            for action in ("add-member", "remove-member", "set-members"):
                sp = op.add_parser(action)
                scoped(sp, parents[kind])
                sp.add_argument("ref")
                sp.add_argument("vports", nargs="*", help="vport names or ids")

    from nuage_ryu.db import cluster

    cluster.add_cli(objs)
    return p


def port_mappings(specs: list[str]) -> list[dict]:
    """``["tcp/8080:80", "53:53"]`` (protocol default tcp; ``none`` alone = no mappings) -> API objects."""
    if specs == ["none"]:
        return []
    out = []
    for spec in specs:
        protocol, _, ports = spec.rpartition("/")
        host, _, container = ports.partition(":")
        if not (host.isdigit() and container.isdigit()):
            raise UsageError(f"port mapping {spec!r} must look like [tcp|udp/]HOST_PORT:CONTAINER_PORT")
        out.append({"protocol": protocol or "tcp", "host_port": int(host), "container_port": int(container)})
    return out


def _body(kind: str, args, resolver: Resolver, creating: bool) -> dict:
    body: dict = {}
    if creating and kind not in ("acl", "token"):
        body["name"] = args.name
    if getattr(args, "new_name", None) is not None:
        body["name"] = args.new_name
    # argparse dest -> API field
    simple = {"description": "description", "vni": "vni", "router_mac": "router_mac",
              "default_action": "default_action", "cidr": "cidr", "gateway": "gateway", "ip": "ip",
              "mac": "mac", "type": "type", "host": "host", "priority": "priority", "acl_name": "name",
              "protocol": "protocol", "dst_ports": "dst_ports", "icmp_type": "icmp_type",
              "icmp_code": "icmp_code", "rule_action": "action", "tunnel_ip": "tunnel_ip",
              "datapath_id": "datapath_id"}
    for attr, field in simple.items():
        value = getattr(args, attr, None)
        if value is not None and not (attr == "cidr" and kind != "subnet"):
            body[field] = value
    if getattr(args, "stateless", None):
        body["stateful"] = False
    if getattr(args, "egress_nat", None) is not None:
        body["egress_nat"] = args.egress_nat == "on"
    if getattr(args, "floating_ip", None) is not None:
        body["floating_ip"] = args.floating_ip
    if getattr(args, "port_mapping", None) is not None:
        body["port_mappings"] = port_mappings(args.port_mapping)
    for attr in ("source", "destination"):
        if getattr(args, attr, None):
            body[attr] = endpoint(getattr(args, attr), resolver)
    if getattr(args, "policygroup", None) is not None:
        body["policygroups"] = [resolver.resolve("policygroup", pg) for pg in args.policygroup]
    if getattr(args, "external_id", None) is not None:
        body["external_ids"] = _kv(args.external_id)
    if kind == "token" and creating:
        if not args.enterprise:
            raise UsageError("token create needs --enterprise")
        body["enterprise"] = resolver.resolve("enterprise", args.enterprise)
        if args.name:
            body["name"] = args.name
    return body


def run_object(args, client: DirectoryClient, out=sys.stdout) -> int:
    kind, action = args.object, args.action
    plural, parent, columns = KINDS[kind]
    scope = {k: getattr(args, k, None) for k in SCOPES}
    if kind == "token":
        scope["enterprise"] = None  # --enterprise is the token's enterprise, not a lookup scope
    resolver = Resolver(client, scope)

    def emit(result):
        if args.json:
            out.write(json.dumps(result, indent=2) + "\n")
        elif isinstance(result, list):
            print_table(result, columns, out)
        elif result is not None:
            print_object(result, out)

    if action == "create":
        body = _body(kind, args, resolver, creating=True)
        if parent:
            if not scope.get(parent):
                raise UsageError(f"{kind} create needs --{parent}")
            path = f"/{KINDS[parent][0]}/{resolver.resolve(parent, scope[parent])}/{plural}"
        else:
            path = f"/{plural}"
        emit(client.post(path, body))
    elif action == "list":
        if parent is None:
            rows = client.get(f"/{plural}", **({"name": args.name} if args.name else {}))
        else:
            rows = []
            for pid in resolver.all_ids(parent):
                params = {"name": args.name} if args.name else {}
                rows += client.get(f"/{KINDS[parent][0]}/{pid}/{plural}", **params)
        emit(rows)
    elif action == "show":
        emit(client.get(f"/{plural}/{resolver.resolve(kind, args.ref)}"))
    elif action == "update":
        obj_id = resolver.resolve(kind, args.ref)
        body = _body(kind, args, resolver, creating=False)
        if not body:
            raise UsageError("nothing to update; give at least one option")
        emit(client.put(f"/{plural}/{obj_id}", body))
    elif action == "delete":
        obj_id = resolver.resolve(kind, args.ref)
        client.delete(f"/{plural}/{obj_id}", **({"cascade": "true"} if args.cascade else {}))
        if args.json:
            out.write(json.dumps({"deleted": obj_id}) + "\n")
    elif action in ("members", "add-member", "remove-member", "set-members"):
        pg = resolver.resolve("policygroup", args.ref)
        path = f"/policygroups/{pg}/vports"
        if action == "members":
            result = client.get(path)
        else:
            vports = [resolver.resolve("vport", v) for v in args.vports]
            if action == "add-member":
                result = client.post(path, {"vports": vports})
            elif action == "set-members":
                result = client.put(path, {"vports": vports})
            else:
                for v in vports:
                    client.delete(f"{path}/{v}")
                result = client.get(path)
        old_columns = columns
        columns = KINDS["vport"][2]
        emit(result)
        columns = old_columns
    return EXIT_OK


def _token(args) -> str:
    if args.token:
        return args.token
    try:
        with open(args.token_file) as f:
            token = f.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read token file {args.token_file}: {exc.strerror} "
                         "(use --token-file, --token or NUAGE_TOKEN)") from None
    if not token:
        raise UsageError(f"token file {args.token_file} is empty")
    return token


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and exits with) the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    try:
        if args.object == "db-cluster":
            from nuage_ryu.db import cluster

            return cluster.run_cli(args)
        client = DirectoryClient("unix:" + args.socket if args.socket else (args.url or DEFAULT_URL),
                                 token=_token(args), timeout=args.timeout)
        try:
            return run_object(args, client)
        finally:
            client.close()
    except UsageError as exc:
        print(f"nuage-ctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DirectoryError as exc:
        print(f"nuage-ctl: error: {exc.message} ({exc.status} {exc.code})", file=sys.stderr)
        return EXIT_API
    except CannotConnect as exc:
        print(f"nuage-ctl: {exc}", file=sys.stderr)
        return EXIT_CONNECT


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
