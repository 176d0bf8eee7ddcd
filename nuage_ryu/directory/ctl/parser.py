"""nuage-ctl's command line: objects, actions, options, help texts and examples, declared once.

The same parser drives parsing, ``--help``, the shell completion scripts and the man page
(``completion.py``, ``manpage.py``), so they cannot disagree.

Conventions (documented in docs/nuage-ctl.md):
  - every boolean option comes in a pair: ``--stateful/--stateless``, ``--enforce/--audit``,
    ``--cascade/--no-cascade``;
  - an empty value clears an optional field on update: ``--ports ''``, ``--host ''``,
    ``--policygroup ''`` (no groups), ``--description ''``;
  - ``-o table|wide|json|yaml`` (``--json`` = ``-o json``) goes before or after the action.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from nuage_ryu import __version__
from nuage_ryu.directory.ctl import audit, flows, trace
from nuage_ryu.directory.ctl.kinds import KINDS, SCOPE_OPTIONS, with_article
from nuage_ryu.directory.ctl.render import OUTPUTS

PROG = "nuage-ctl"
EX = "nuage-ctl"


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the example blocks as written; a little wider option column."""

    def __init__(self, prog, **kwargs):
        super().__init__(prog, max_help_position=32, **kwargs)


# ---------------------------------------------------------------------------
# field options: one declaration per option, read by the parser and by commands.build_body


@dataclass(frozen=True)
class Opt:
    """An option that sets an API field on create and/or update."""

    flag: str  # "--ports"
    field: str  # API field: "dst_ports"
    help: str
    actions: tuple[str, ...] = ("create", "update")
    metavar: str | None = None
    type: str = "text"  # text, int, choice, endpoint, policygroups, external_ids, port_mappings
    choices: tuple[str, ...] = ()
    required_on_create: bool = False
    clear: object = "unset"  # value sent for '' on update; "unset": '' is not special

    @property
    def dest(self) -> str:
        return "f_" + self.flag[2:].replace("-", "_")

    @property
    def clearable(self) -> bool:
        return self.clear != "unset"


def _descr() -> Opt:
    return Opt("--description", "description", "free text (e.g. --description 'web tier'); '' clears",
               metavar="TEXT", clear="")


FIELD_OPTIONS: dict[str, list[Opt]] = {
    "enterprise": [_descr()],
    "domain": [
        _descr(),
        Opt("--vni", "vni", "VXLAN network identifier 1..16777215 (e.g. --vni 5001; default: lowest free)",
            ("create",), "N", "int"),
        Opt("--router-mac", "router_mac", "MAC of the distributed router (e.g. --router-mac 02:00:00:00:00:01; "
            "default: generated)", ("create",), "MAC"),
        Opt("--default-action", "default_action", "what traffic no rule matches gets (e.g. --default-action "
            "deny; default deny)", metavar="allow|deny", type="choice", choices=("allow", "deny")),
    ],
    "zone": [_descr()],
    "subnet": [
        _descr(),
        Opt("--gateway", "gateway", "default gateway (e.g. --gateway 10.0.1.1; default: first address)",
            ("create",), "IP"),
    ],
    "vport": [
        _descr(),
        Opt("--ip", "ip", "address (e.g. --ip 10.0.1.10; default: allocated from the subnet)", ("create",), "IP"),
        Opt("--mac", "mac", "MAC address (e.g. --mac 02:00:0a:00:01:0a; default: generated)", ("create",), "MAC"),
        Opt("--type", "type", "kind of interface (e.g. --type vm; default container)", ("create",),
            "container|vm|host", "choice", ("container", "vm", "host")),
        Opt("--host", "host", "host the vport lives on (e.g. --host node-1); '' clears", metavar="HOST", clear=""),
        Opt("--policygroup", "policygroups", "policy group, by name or id; repeat for several, replaces the "
            "list on update (e.g. --policygroup web); '' removes all", metavar="GROUP", type="policygroups",
            clear=[]),
        Opt("--external-id", "external_ids", "plugin data, repeat for several, replaces the map on update "
            "(e.g. --external-id ifname=eth0); '' removes all", metavar="KEY=VALUE", type="external_ids",
            clear={}),
        Opt("--floating-ip", "floating_ip", "external address from the directory's floating IP pool, served by "
            "the vport's host (e.g. --floating-ip 198.51.100.7); '' removes it", metavar="IP", clear=""),
        Opt("--port-mapping", "port_mappings", "port published on the host's address, repeat for several, "
            "replaces the list on update (e.g. --port-mapping tcp/8080:80); '' removes all",
            metavar="[PROTO/]HOST:CONTAINER", type="port_mappings", clear=[]),
    ],
    "policygroup": [_descr()],
    "acl": [
        _descr(),
        Opt("--priority", "priority", "1..65535, unique in the domain, lower is evaluated first "
            "(e.g. --priority 100)", metavar="N", type="int", required_on_create=True),
        Opt("--name", "name", "label of the rule (e.g. --name web-to-app); '' clears", metavar="NAME", clear=""),
        Opt("--source", "source", "where traffic comes from: any, cidr:CIDR, pg:GROUP (policygroup:GROUP), "
            "zone:ZONE or subnet:SUBNET (e.g. --source pg:web); default any, '' resets to any",
            metavar="ENDPOINT", type="endpoint", clear={"type": "any"}),
        Opt("--destination", "destination", "where traffic goes, same forms as --source "
            "(e.g. --destination cidr:10.0.2.0/24); default any, '' resets to any", metavar="ENDPOINT",
            type="endpoint", clear={"type": "any"}),
        Opt("--protocol", "protocol", "any, tcp, udp, icmp or a number 0..255 (e.g. --protocol tcp; default any)",
            metavar="PROTO"),
        Opt("--ports", "dst_ports", "destination port or range, tcp/udp only (e.g. --ports 443 or --ports "
            "8000-8080); '' clears (all ports)", metavar="PORTS", clear=None),
        Opt("--icmp-type", "icmp_type", "ICMP type 0..255, icmp only (e.g. --icmp-type 8); '' clears",
            metavar="N", type="int", clear=None),
        Opt("--icmp-code", "icmp_code", "ICMP code 0..255, needs --icmp-type (e.g. --icmp-code 0); '' clears",
            metavar="N", type="int", clear=None),
        Opt("--action", "action", "allow or deny the traffic (e.g. --action deny; default allow)",
            metavar="allow|deny", type="choice", choices=("allow", "deny")),
    ],
    "host": [
        Opt("--tunnel-ip", "tunnel_ip", "VXLAN tunnel endpoint (e.g. --tunnel-ip 192.0.2.11); '' clears",
            metavar="IP", clear=""),
        Opt("--datapath-id", "datapath_id", "br-int datapath id, 16 hex digits (e.g. --datapath-id "
            "0000aabbccddeeff); '' clears", metavar="DPID", clear=""),
    ],
    "token": [
        Opt("--name", "name", "label (e.g. --name ci)", ("create",), "NAME"),
    ],
}

# Examples for the epilog of each command: (kind, action) -> lines; (kind, None) for the object's help.
EXAMPLES: dict[tuple[str, str | None], list[str]] = {
    ("enterprise", "create"): [f"{EX} enterprise create acme --description 'ACME Corp'"],
    ("enterprise", "list"): [f"{EX} enterprise list", f"{EX} enterprise list -o yaml"],
    ("enterprise", "show"): [f"{EX} enterprise show acme", f"{EX} enterprise show 1a2b3c4d"],
    ("enterprise", "update"): [f"{EX} enterprise update acme --name acme-corp", f"{EX} enterprise update acme "
                                                                                 "--description ''"],
    ("enterprise", "delete"): [f"{EX} enterprise delete acme --cascade"],
    ("domain", "create"): [f"{EX} domain create --enterprise acme prod --vni 5001",
                           f"{EX} domain create --enterprise acme lab --default-action allow"],
    ("domain", "list"): [f"{EX} domain list", f"{EX} domain list --enterprise acme -o wide"],
    ("domain", "show"): [f"{EX} domain show acme/prod"],
    ("domain", "update"): [f"{EX} domain update acme/prod --default-action allow",
                           f"{EX} domain update acme/prod --egress-nat      # vports may reach the outside"],
    ("domain", "delete"): [f"{EX} domain delete acme/prod --cascade"],
    ("zone", "create"): [f"{EX} zone create --domain prod web", f"{EX} zone create --domain acme/prod db"],
    ("zone", "list"): [f"{EX} zone list --domain prod"],
    ("zone", "show"): [f"{EX} zone show acme/prod/web"],
    ("zone", "update"): [f"{EX} zone update prod/web --description 'web tier'"],
    ("zone", "delete"): [f"{EX} zone delete prod/web", f"{EX} zone delete prod/web --cascade"],
    ("subnet", "create"): [f"{EX} subnet create --zone web front 10.0.1.0/24",
                           f"{EX} subnet create --zone prod/db back 10.0.3.0/24 --gateway 10.0.3.254"],
    ("subnet", "list"): [f"{EX} subnet list --domain prod"],
    ("subnet", "show"): [f"{EX} subnet show front", f"{EX} subnet show acme/prod/web/front"],
    ("subnet", "update"): [f"{EX} subnet update front --name frontend"],
    ("subnet", "delete"): [f"{EX} subnet delete front --cascade"],
    ("vport", "create"): [f"{EX} vport create --subnet front web-1 --host node-1 --policygroup web",
                          f"{EX} vport create --subnet front vm-1 --type vm --host compute-7 --ip 10.0.1.50"],
    ("vport", "list"): [f"{EX} vport list --subnet front", f"{EX} vport list --domain prod -o wide"],
    ("vport", "show"): [f"{EX} vport show web-1", f"{EX} vport show prod/web/front/web-1"],
    ("vport", "update"): [f"{EX} vport update web-1 --host node-2",
                          f"{EX} vport update web-1 --policygroup web --policygroup monitored",
                          f"{EX} vport update web-1 --policygroup ''      # in no group"],
    ("vport", "delete"): [f"{EX} vport delete web-1"],
    ("policygroup", "create"): [f"{EX} policygroup create --domain prod web"],
    ("policygroup", "list"): [f"{EX} policygroup list --domain prod"],
    ("policygroup", "show"): [f"{EX} policygroup show prod/web"],
    ("policygroup", "update"): [f"{EX} policygroup update web --description 'front ends'"],
    ("policygroup", "delete"): [f"{EX} policygroup delete web"],
    ("policygroup", "members"): [f"{EX} policygroup members web"],
    ("policygroup", "add-member"): [f"{EX} policygroup add-member web web-1 web-2"],
    ("policygroup", "remove-member"): [f"{EX} policygroup remove-member web web-2"],
    ("policygroup", "set-members"): [f"{EX} policygroup set-members web web-1 web-3",
                                     f"{EX} policygroup set-members web      # no members"],
    ("acl", "create"): [f"{EX} acl create --domain prod --priority 100 --source pg:web --destination pg:app "
                        "--protocol tcp --ports 8080",
                        f"{EX} acl create --domain prod --priority 200 --source any --destination zone:db "
                        "--action deny --stateless"],
    ("acl", "list"): [f"{EX} acl list --domain prod", f"{EX} acl list --domain prod -o wide"],
    ("acl", "show"): [f"{EX} acl show web-to-app", f"{EX} acl show 1a2b3c4d"],
    ("acl", "update"): [f"{EX} acl update web-to-app --stateful", f"{EX} acl update web-to-app --ports ''",
                        f"{EX} acl update 1a2b --protocol icmp --ports '' --icmp-type 8"],
    ("acl", "delete"): [f"{EX} acl delete web-to-app"],
    ("host", "create"): [f"{EX} host create node-1 --tunnel-ip 192.0.2.11"],
    ("host", "list"): [f"{EX} host list"],
    ("host", "show"): [f"{EX} host show node-1"],
    ("host", "update"): [f"{EX} host update node-1 --tunnel-ip 192.0.2.12"],
    ("host", "delete"): [f"{EX} host delete node-1"],
    ("host", "enroll"): [f"{EX} host enroll node-1 --san 192.0.2.11 --out /tmp/node-1-creds",
                         f"{EX} host enroll node-1 --dir /var/lib/nuage-ryu/pki      # again: rotation"],
    ("host", "revoke"): [f"{EX} host revoke node-1"],
    ("token", "create"): [f"{EX} token create --enterprise acme --name ci      # prints the token once",
                          f"{EX} token create --host node-1      # a host token (replaces node-1's old one)"],
    ("token", "list"): [f"{EX} token list"],
    ("token", "show"): [f"{EX} token show ci"],
    ("token", "delete"): [f"{EX} token delete ci"],
}

ACTION_HELP = {
    "create": "create {a}",
    "list": "list {kind}s (a table; -o wide|json|yaml)",
    "show": "show one {kind}",
    "update": "change fields of {a}",
    "delete": "delete {a}",
    "members": "list the vports in a policy group",
    "add-member": "add vports to a policy group",
    "remove-member": "remove vports from a policy group",
    "set-members": "make these vports the only members of a policy group",
    "enroll": "issue a host's credentials: key, certificate and host token (again: rotation)",
    "revoke": "revoke a host: delete its token and its host row",
}

REF_HELP = ("the {kind}: a name, a path ({path}) or an id prefix (4+ hex digits)")
PATH_EXAMPLE = {"enterprise": "acme", "domain": "acme/prod", "zone": "acme/prod/web",
                "subnet": "acme/prod/web/front", "vport": "prod/web/front/web-1", "policygroup": "acme/prod/web",
                "acl": "acme/prod/web-to-app", "host": "node-1", "token": "ci"}


def epilog(lines: list[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_output_options(p: argparse.ArgumentParser, top: bool) -> None:
    """-o/--output and --json: on the main parser and again on every command, so that both
    'nuage-ctl -o yaml acl list' and 'nuage-ctl acl list -o yaml' work (SUPPRESS keeps the
    command's absent option from resetting the global one)."""
    default = None if top else argparse.SUPPRESS
    group = p.add_argument_group("output options")
    group.add_argument("-o", "--output", choices=OUTPUTS, default=default, metavar="FORMAT",
                       help="table (default: names, short ids, fits 120 columns), wide (more columns, full ids), "
                            "json or yaml (the API objects) (e.g. -o yaml)")
    group.add_argument("--json", dest="output", action="store_const", const="json", default=default,
                       help="same as -o json")


def _scope_options(p: argparse.ArgumentParser, kind: str) -> None:
    for scope in SCOPE_OPTIONS[kind]:
        p.add_argument(f"--{scope}", metavar=scope.upper(), dest=scope,
                       help=f"look names up in this {KINDS[scope].label} (name, path or id prefix; "
                            f"e.g. --{scope} {PATH_EXAMPLE[scope]})")


def _field_options(p: argparse.ArgumentParser, kind: str, action: str) -> None:
    for opt in FIELD_OPTIONS.get(kind, []):
        if action not in opt.actions:
            continue
        kwargs: dict = {"dest": opt.dest, "metavar": opt.metavar, "help": opt.help}
        if opt.type == "choice":
            kwargs["choices"] = opt.choices
        if opt.type in ("policygroups", "external_ids", "port_mappings"):
            kwargs["action"] = "append"
        if opt.required_on_create and action == "create":
            kwargs["required"] = True
        p.add_argument(opt.flag, **kwargs)
    if kind == "domain":
        group = p.add_mutually_exclusive_group()
        group.add_argument("--egress-nat", dest="f_egress_nat", action="store_const", const=True,
                           help="vports may reach outside addresses through their host's address (docs/external.md)")
        group.add_argument("--no-egress-nat", dest="f_egress_nat", action="store_const", const=False,
                           help="no path out of the overlay (the default for a new domain)")
        group = p.add_mutually_exclusive_group()
        group.add_argument("--log-default", dest="f_log_default", action="store_const", const=True,
                           help="log the packets the default action decides (verdict records, docs/policy.md)")
        group.add_argument("--no-log-default", dest="f_log_default", action="store_const", const=False,
                           help="do not log the default action's decisions (the default)")
    if kind == "acl":
        group = p.add_mutually_exclusive_group()
        group.add_argument("--stateful", dest="f_stateful", action="store_const", const=True,
                           help="let replies through (the default for a new rule)")
        group.add_argument("--stateless", dest="f_stateful", action="store_const", const=False,
                           help="match this direction only: replies need their own rule")
        group = p.add_mutually_exclusive_group()
        group.add_argument("--log", dest="f_log", action="store_const", const=True,
                           help="log the packets this rule decides (verdict records, docs/policy.md)")
        group.add_argument("--no-log", dest="f_log", action="store_const", const=False,
                           help="do not log its decisions (the default for a new rule)")
        group = p.add_mutually_exclusive_group()
        group.add_argument("--enforce", dest="f_enforce", action="store_const", const=True,
                           help="the rule decides (the default for a new rule)")
        group.add_argument("--audit", dest="f_enforce", action="store_const", const=False,
                           help="audit mode: count and log what the rule would decide; traffic goes on to "
                                "the next rules")


def _command(actions, kind: str, action: str, **kwargs) -> argparse.ArgumentParser:
    label = KINDS[kind].label
    help_text = ACTION_HELP[action].format(a=with_article(label), kind=label)
    sp = actions.add_parser(action, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                            epilog=epilog(EXAMPLES[(kind, action)]), formatter_class=Formatter, **kwargs)
    add_output_options(sp, top=False)
    return sp


def _ref(sp: argparse.ArgumentParser, kind: str) -> None:
    sp.add_argument("ref", metavar=kind.upper(), help=REF_HELP.format(kind=KINDS[kind].label,
                                                                      path=PATH_EXAMPLE[kind]))


def add_object(objs, kind: str) -> None:
    """``nuage-ctl KIND ACTION ...`` for one object kind."""
    info = KINDS[kind]
    actions_here = ["create", "list", "show"] + ([] if kind == "token" else ["update"]) + ["delete"]
    if kind == "policygroup":
        actions_here += ["members", "add-member", "remove-member", "set-members"]
    if kind == "host":
        actions_here += ["enroll", "revoke"]
    examples = [EXAMPLES[(kind, a)][0] for a in actions_here]
    op = objs.add_parser(kind, help=info.summary, formatter_class=Formatter,
                         description=f"{info.summary[0].upper()}{info.summary[1:]}.\n\n"
                                     f"Give {with_article(info.label)} by name, by path "
                                     f"({PATH_EXAMPLE[kind]}) or by id prefix.",
                         epilog=epilog(examples))
    actions = op.add_subparsers(dest="action", metavar="ACTION", required=True, title="actions")

    create = _command(actions, kind, "create")
    if kind == "token":
        limit = create.add_mutually_exclusive_group(required=True)
        limit.add_argument("--enterprise", metavar="ENTERPRISE",
                           help="the enterprise the token is limited to (e.g. --enterprise acme)")
        limit.add_argument("--host", metavar="HOST",
                           help="a host token: that host's attach service reads the directory and writes "
                                "only its own vports; replaces the host's old token (e.g. --host node-1)")
    else:
        _scope_options(create, kind)
    if kind not in ("acl", "token"):
        unique = f"unique in its {KINDS[info.parent].label}" if info.parent else "unique"
        create.add_argument("name", metavar="NAME", help=f"name of the new {info.label}, {unique}")
    if kind == "subnet":
        create.add_argument("cidr", metavar="CIDR", help="IPv4 network (e.g. 10.0.1.0/24)")
    _field_options(create, kind, "create")

    lst = _command(actions, kind, "list")
    _scope_options(lst, kind)
    lst.add_argument("--name", metavar="NAME", help="only objects with this name (e.g. --name web)")

    show = _command(actions, kind, "show")
    _scope_options(show, kind)
    _ref(show, kind)

    if kind != "token":
        update = _command(actions, kind, "update")
        _scope_options(update, kind)
        _ref(update, kind)
        if kind not in ("acl", "host"):
            update.add_argument("--name", dest="new_name", metavar="NAME",
                                help=f"rename the {info.label} (e.g. --name web-tier)")
        _field_options(update, kind, "update")

    delete = _command(actions, kind, "delete")
    _scope_options(delete, kind)
    _ref(delete, kind)
    if kind not in ("host", "token", "vport"):
        delete.add_argument("--cascade", action=argparse.BooleanOptionalAction, default=False,
                            help="also delete everything below it (default --no-cascade: refuse "
                                 "while it has children)")

    if kind == "host":
        from nuage_ryu.directory.ctl import host_credentials

        host_credentials.add_actions(_command(actions, kind, "enroll"), _command(actions, kind, "revoke"))

    if kind == "policygroup":
        members = _command(actions, kind, "members")
        _scope_options(members, kind)
        _ref(members, kind)
        for action in ("add-member", "remove-member", "set-members"):
            sp = _command(actions, kind, action)
            _scope_options(sp, kind)
            _ref(sp, kind)
            sp.add_argument("vports", nargs="*" if action == "set-members" else "+", metavar="VPORT",
                            help="vports of the group's domain, by name, path or id prefix")


CONFIG_EXAMPLES = {
    "set": [f"{EX} config set lab --url http://127.0.0.1:8080 --token-file /tmp/lab/api-token --use",
            f"{EX} config set lab --state-dir /tmp/lab      # copy what that running directory published",
            f"{EX} config set prod --url https://vsd.example.net:8443 --ca-file /etc/nuage-ryu/ca.pem",
            f"{EX} config set lab --socket ''               # '' removes a key"],
    "show": [f"{EX} config show", f"{EX} config show -o yaml"],
    "use-context": [f"{EX} config use-context lab"],
    "delete-context": [f"{EX} config delete-context lab"],
}


def add_config(objs) -> None:
    """``nuage-ctl config ...``: the client config file of named contexts."""
    cp = objs.add_parser("config", help="client contexts: which directory to talk to, with which token",
                         formatter_class=Formatter,
                         description="Named contexts (API URL or socket, token file, CA file) in "
                                     "~/.config/nuage-ryu/ctl.ini (or $NUAGE_CTL_CONFIG).",
                         epilog=epilog([lines[0] for lines in CONFIG_EXAMPLES.values()]))
    actions = cp.add_subparsers(dest="action", metavar="ACTION", required=True, title="actions")
    helps = {"set": "create or change a context", "show": "where nuage-ctl connects now, and why; the contexts",
             "use-context": "make a context the current one", "delete-context": "remove a context"}
    parsers = {}
    for name, text in helps.items():
        sp = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                                epilog=epilog(CONFIG_EXAMPLES[name]), formatter_class=Formatter)
        parsers[name] = sp
    s = parsers["set"]
    s.add_argument("name", nargs="?", metavar="CONTEXT",
                   help="context to change (default: the current one, else 'default')")
    s.add_argument("--url", dest="c_url", metavar="URL", help="API URL (e.g. --url http://127.0.0.1:8080)")
    s.add_argument("--socket", dest="c_socket", metavar="PATH",
                   help="API unix socket instead of the URL (e.g. --socket /run/nuage-ryu/api.sock)")
    s.add_argument("--token-file", dest="c_token_file", metavar="FILE",
                   help="file holding the bearer token (e.g. --token-file /var/lib/nuage-ryu/api-token)")
    s.add_argument("--ca-file", dest="c_ca_file", metavar="FILE",
                   help="CA certificate(s) that sign the API's HTTPS certificate (e.g. --ca-file ca.pem)")
    s.add_argument("--state-dir", dest="c_state_dir", metavar="DIR",
                   help="take URL, socket and token file from the directory running with this state dir "
                        "(e.g. --state-dir /tmp/lab)")
    s.add_argument("--use", action=argparse.BooleanOptionalAction, default=None,
                   help="make it the current context (default: only when there is none yet)")
    add_output_options(parsers["show"], top=False)
    for name in ("use-context", "delete-context"):
        parsers[name].add_argument("name", metavar="CONTEXT", help="context name (e.g. lab)")


FILE_EXAMPLES = {
    "apply": [f"{EX} apply -f acme.yaml", f"{EX} apply -f acme.yaml --dry-run      # print the changes only",
              f"{EX} apply -f acme.yaml --prune        # also delete what the file does not list"],
    "export": [f"{EX} export acme > acme.yaml", f"{EX} export acme -o json -f acme.json"],
    "bulk": [f"{EX} bulk -f vports.json", f"{EX} bulk -f ops.yaml --dry-run -o json"],
}


def add_files(objs) -> None:
    """``nuage-ctl apply|export|bulk``: files of an enterprise's objects, or of bulk operations."""
    helps = {"apply": "make an enterprise match a file (YAML/JSON): one transaction, idempotent",
             "export": "write an enterprise's domains, zones, subnets, groups and rules as a file apply takes",
             "bulk": "send a file of create/update/delete operations as one bulk request (all or nothing)"}
    parsers = {}
    for name, text in helps.items():
        sp = objs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                             epilog=epilog(FILE_EXAMPLES[name]), formatter_class=Formatter)
        add_output_options(sp, top=False)
        parsers[name] = sp
    for name in ("apply", "bulk"):
        parsers[name].add_argument("-f", "--file", required=True, metavar="FILE",
                                   help="YAML or JSON file, '-' for standard input (e.g. -f acme.yaml)")
        parsers[name].add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=False,
                                   help="let the directory validate everything, change nothing "
                                        "(default --no-dry-run)")
    parsers["apply"].add_argument("--prune", action=argparse.BooleanOptionalAction, default=False,
                                  help="also delete the enterprise's domains, zones, subnets, groups and rules "
                                       "the file does not list (never vports: a subnet that has some stays "
                                       "and the apply fails) (default --no-prune)")
    parsers["export"].add_argument("enterprise", metavar="ENTERPRISE", help="enterprise name (e.g. acme)")
    parsers["export"].add_argument("-f", "--file", metavar="FILE",
                                   help="write to FILE instead of standard output (e.g. -f acme.yaml)")


def add_tools(objs) -> None:
    comp = objs.add_parser("completion", help="print a shell completion script (bash or zsh)",
                           formatter_class=Formatter, description="Print a completion script generated "
                                                                  "from this command line.",
                           epilog=epilog([f"{EX} completion bash > /etc/bash_completion.d/nuage-ctl",
                                          f"source <({EX} completion bash)      # or this, in ~/.bashrc",
                                          f"{EX} completion zsh > \"${{fpath[1]}}/_nuage-ctl\""]))
    comp.add_argument("shell", choices=("bash", "zsh"), metavar="SHELL", help="bash or zsh")
    objs.add_parser("man", help="print the man page (roff)", formatter_class=Formatter,
                    description="Print the nuage-ctl(1) man page, generated from this command line.",
                    epilog=epilog([f"{EX} man | man -l -", f"{EX} man > docs/nuage-ctl.1"]))


TOP_EPILOG = f"""\
references:
  Objects are given by name (web), by path (acme/prod/web: enterprise/domain/zone) or by a unique
  id prefix (1a2b3c4d, as tables show). Parent options (--enterprise, --domain, --zone, --subnet)
  narrow a name lookup. ACL endpoints: any, cidr:10.0.0.0/8, pg:web (policygroup:web), zone:db,
  subnet:front.

conventions:
  Booleans come in pairs (--stateful/--stateless, --enforce/--audit, --cascade/--no-cascade); an empty value clears
  an optional field (--ports '', --host ''); -o table|wide|json|yaml works before or after the action.

connection:
  --url/--socket, --token/--token-file, --ca-file; else $NUAGE_URL, $NUAGE_SOCKET, $NUAGE_TOKEN,
  $NUAGE_TOKEN_FILE, $NUAGE_CA_FILE; else the current context of ~/.config/nuage-ryu/ctl.ini
  ($NUAGE_CTL_CONFIG; see 'nuage-ctl config'); else a directory running on this machine
  (/run/nuage-ryu/directory.json); else http://127.0.0.1:8080 with /var/lib/nuage-ryu/api-token.

exit status:
  0 ok, 1 the API refused (message printed), 2 usage error, 3 cannot connect.

{epilog([f"{EX} enterprise create acme",
         f"{EX} domain create --enterprise acme prod",
         f"{EX} acl list --domain prod",
         f"{EX} acl update prod/web-to-app --stateless",
         f"{EX} vport show acme/prod/web/front/web-1 -o yaml",
         f"{EX} config show"])}"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    p = argparse.ArgumentParser(prog=PROG, formatter_class=Formatter,
                                description="Manage the nuage-ryu policy directory: enterprises, domains, "
                                            "zones, subnets, vports, policy groups, ACL rules, hosts.",
                                epilog=TOP_EPILOG)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print the version of nuage-ryu and exit")
    conn = p.add_argument_group("connection options")
    conn.add_argument("--url", metavar="URL", help="API base URL (e.g. --url http://127.0.0.1:8080)")
    conn.add_argument("--socket", metavar="PATH", help="API unix socket instead of --url "
                                                      "(e.g. --socket /tmp/lab/api.sock)")
    conn.add_argument("--token-file", metavar="FILE", help="file with the bearer token "
                                                          "(e.g. --token-file /tmp/lab/api-token)")
    conn.add_argument("--token", metavar="TOKEN", help="the bearer token itself (overrides --token-file; "
                                                      "e.g. --token nrt_...)")
    conn.add_argument("--ca-file", metavar="FILE", help="CA certificate(s) for an https URL "
                                                       "(e.g. --ca-file ca.pem)")
    conn.add_argument("--context", metavar="NAME", help="context of the config file to use (e.g. --context lab)")
    conn.add_argument("--config", metavar="FILE", help="client config file (e.g. --config ./ctl.ini; "
                                                      "default $NUAGE_CTL_CONFIG or ~/.config/nuage-ryu/ctl.ini)")
    conn.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                      help="per-request timeout (e.g. --timeout 5; default 30)")
    add_output_options(p, top=True)
    objs = p.add_subparsers(dest="object", metavar="OBJECT", required=True, title="objects and commands")
    for kind in KINDS:
        add_object(objs, kind)
    add_config(objs)
    add_files(objs)
    add_tools(objs)
    add_output_options(audit.add_parser(objs, Formatter, epilog), top=False)
    add_output_options(flows.add_parser(objs, Formatter, epilog), top=False)
    add_output_options(trace.add_parser(objs, Formatter, epilog), top=False)

    from nuage_ryu.db import cluster, relay
    from nuage_ryu.directory.ctl import pki_cli

    cluster.add_cli(objs)
    relay.add_cli(objs)
    pki_cli.add_cli(objs, add_output_options)
    return p


# ---------------------------------------------------------------------------
# the parser as a tree (for completion and the man page)


@dataclass
class Command:
    """A (sub)command: its words after 'nuage-ctl', parser, one-line help and subcommands."""

    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str
    subcommands: list[Command]

    @property
    def options(self) -> list[argparse.Action]:
        return [a for a in self.parser._actions if a.option_strings and a.help != argparse.SUPPRESS]

    @property
    def positionals(self) -> list[argparse.Action]:
        return [a for a in self.parser._actions
                if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]

    def all(self):
        """This command and every command below it, depth first."""
        yield self
        for sub in self.subcommands:
            yield from sub.all()


def command_tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help_text: str = "") -> Command:
    """Walk the subparsers (argparse keeps them in _SubParsersAction.choices)."""
    subs = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                subs.append(command_tree(sub, path + (name,), helps.get(name) or ""))
    return Command(path, parser, help_text or (parser.description or ""), subs)


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0
