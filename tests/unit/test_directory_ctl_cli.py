"""nuage-ctl's command line: negations, clearing fields, references, help texts, CLI-worded errors."""

from __future__ import annotations

import io

import pytest

from nuage_ryu.directory.client import error_from_answer
from nuage_ryu.directory.ctl import errors
from nuage_ryu.directory.ctl.commands import ObjectCommand
from nuage_ryu.directory.ctl.kinds import with_article
from nuage_ryu.directory.ctl.parser import build_parser, command_tree
from nuage_ryu.directory.ctl.resolve import Resolver, UsageError
from nuage_ryu.directory.errors import DirectoryError
from tests.unit.ctl_canned import CannedApi, uid


def run(api: CannedApi, *argv: str) -> str:
    args = build_parser().parse_args(list(argv))
    out = io.StringIO()
    ObjectCommand(args, api, out).run()
    return out.getvalue()


def last_write(api: CannedApi):
    return [c for c in api.calls if c[0] != "GET"][-1]


@pytest.fixture
def api():
    return CannedApi()


# -- booleans both ways, optional fields cleared --


def test_stateful_flips_both_ways(api):
    run(api, "acl", "update", "app-to-db", "--stateful")
    assert last_write(api) == ("PUT", f"/acls/{uid(2, 'acl')}", {"stateful": True})
    run(api, "acl", "update", "app-to-db", "--stateless")
    assert last_write(api) == ("PUT", f"/acls/{uid(2, 'acl')}", {"stateful": False})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["acl", "update", "x", "--stateful", "--stateless"])


def test_cascade_has_its_negation(api):
    run(api, "domain", "delete", "globex/prod", "--no-cascade")
    assert last_write(api) == ("DELETE", f"/domains/{uid(2, 'domain')}", None)
    run(api, "domain", "delete", "globex/prod", "--cascade")
    assert last_write(api) == ("DELETE", f"/domains/{uid(2, 'domain')}", {"cascade": "true"})


def test_every_boolean_option_has_its_negation():
    parser = build_parser()
    for cmd in command_tree(parser).all():
        flags = {f for a in cmd.options for f in a.option_strings}
        for action in cmd.options:
            if action.nargs == 0 and action.dest not in ("help", "version", "output"):  # actions, not options
                pairs = {"--stateful": "--stateless", "--stateless": "--stateful"}
                for flag in action.option_strings:
                    negation = pairs.get(flag) or (flag.replace("--no-", "--") if flag.startswith("--no-")
                                                   else "--no-" + flag[2:])
                    assert negation in flags, f"{' '.join(cmd.path)} {flag} has no {negation}"


def test_empty_value_clears_optional_fields(api):
    run(api, "acl", "update", "web-to-app", "--ports", "")
    assert last_write(api)[2] == {"dst_ports": None}
    run(api, "acl", "update", "ping", "--icmp-type", "", "--icmp-code", "", "--name", "", "--description", "")
    assert last_write(api)[2] == {"icmp_type": None, "icmp_code": None, "name": "", "description": ""}
    run(api, "acl", "update", "web-to-app", "--source", "", "--destination", "any")
    assert last_write(api)[2] == {"source": {"type": "any"}, "destination": {"type": "any"}}
    run(api, "vport", "update", "web-1", "--host", "", "--policygroup", "", "--external-id", "")
    assert last_write(api)[2] == {"host": "", "policygroups": [], "external_ids": {}}
    run(api, "host", "update", "node-1", "--tunnel-ip", "", "--datapath-id", "")
    assert last_write(api)[2] == {"tunnel_ip": "", "datapath_id": ""}


def test_fields_set_by_name_inside_the_rules_domain(api):
    run(api, "acl", "update", "app-to-db", "--source", "pg:web", "--destination", "subnet:front",
        "--ports", "8000-8080", "--protocol", "6")
    assert last_write(api)[2] == {"source": {"type": "policygroup", "id": uid(1, "policygroup")},
                                  "destination": {"type": "subnet", "id": uid(1, "subnet")},
                                  "protocol": 6, "dst_ports": "8000-8080"}
    run(api, "vport", "update", "web-1", "--policygroup", "web", "--policygroup", "app",
        "--external-id", "ifname=eth1")
    assert last_write(api)[2] == {"policygroups": [uid(1, "policygroup"), uid(2, "policygroup")],
                                  "external_ids": {"ifname": "eth1"}}


def test_create_bodies(api):
    run(api, "acl", "create", "--domain", "acme/prod", "--priority", "500", "--source", "policygroup:db",
        "--destination", "cidr:0.0.0.0/0", "--protocol", "udp", "--ports", "53", "--stateless", "--ports", "53")
    assert last_write(api) == ("POST", f"/domains/{uid(1, 'domain')}/acls",
                               {"priority": 500, "source": {"type": "policygroup", "id": uid(3, "policygroup")},
                                "destination": {"type": "cidr", "cidr": "0.0.0.0/0"}, "protocol": "udp",
                                "dst_ports": "53", "stateful": False})
    run(api, "subnet", "create", "--zone", "prod/web", "edge", "10.0.9.0/24", "--gateway", "10.0.9.254")
    assert last_write(api) == ("POST", f"/zones/{uid(1, 'zone')}/subnets",
                               {"name": "edge", "cidr": "10.0.9.0/24", "gateway": "10.0.9.254"})
    run(api, "token", "create", "--enterprise", "acme", "--name", "ci")
    assert last_write(api) == ("POST", "/tokens", {"name": "ci", "enterprise": uid(1, "enterprise")})
    run(api, "enterprise", "update", "acme", "--name", "acme-corp")
    assert last_write(api)[2] == {"name": "acme-corp"}


def test_create_without_parent_names_the_option(api):
    with pytest.raises(UsageError, match="--zone"):
        run(api, "subnet", "create", "front2", "10.0.8.0/24")


# -- references --


def test_objects_by_name_path_prefix_and_priority(api):
    r = Resolver(api)
    assert r.resolve("zone", "acme/prod/web") == uid(1, "zone")
    assert r.resolve("zone", "prod/web") == uid(1, "zone")
    assert r.resolve("vport", "acme/prod/web/front/web-1") == uid(1, "vport")
    assert r.resolve("subnet", "50000003") == uid(3, "subnet")
    assert r.resolve("acl", "a0000002") == uid(2, "acl")
    assert r.resolve("acl", "A0000002-0000") == uid(2, "acl")  # any case, with dashes
    assert r.resolve("acl", "300") == uid(3, "acl")  # a rule by priority
    assert r.resolve("zone", uid(2, "zone").upper()) == uid(2, "zone")
    # a parent part may be a prefix too
    assert r.resolve("zone", "e0000001/prod/db") == uid(3, "zone")


def test_ambiguous_prefix_lists_the_candidates(api):
    with pytest.raises(UsageError) as exc:
        Resolver(api).resolve("subnet", "5000")
    message = str(exc.value)
    assert "id prefix '5000' matches 3 subnets" in message
    for name in ("acme/prod/web/front (50000001)", "acme/prod/app/mid (50000002)", "acme/prod/db/back (50000003)"):
        assert name in message


def test_ambiguous_name_lists_paths_and_the_parent_option(api):
    with pytest.raises(UsageError) as exc:
        Resolver(api).resolve("domain", "prod")
    assert "2 domains are named 'prod': acme/prod (d0000001), globex/prod (d0000002)" in str(exc.value)
    assert "--enterprise" in str(exc.value) and "path (acme/prod)" in str(exc.value)
    assert Resolver(api, {"enterprise": "globex"}).resolve("domain", "prod") == uid(2, "domain")


def test_missing_names_are_not_found(api):
    with pytest.raises(DirectoryError, match="no zone named 'nope' in domain acme/prod"):
        Resolver(api).resolve("zone", "acme/prod/nope")
    with pytest.raises(DirectoryError, match="no vport named 'ffff' .nor with that id prefix."):
        Resolver(api).resolve("vport", "ffff")
    with pytest.raises(UsageError, match="at most 3: enterprise/domain/zone"):
        Resolver(api).resolve("zone", "a/b/c/d")


def test_short_names_are_names_not_prefixes(api):
    api.tree["zone"][2]["name"] = "db"  # 'db' is hex, but shorter than a prefix
    api.tree["zone"][0]["name"] = "beef"  # a name that also looks like a prefix: the name wins
    r = Resolver(api)
    assert r.resolve("zone", "db") == uid(3, "zone")
    assert r.resolve("zone", "beef") == uid(1, "zone")


# -- help --


def test_every_option_has_help_and_every_command_examples():
    for cmd in command_tree(build_parser()).all():
        for action in cmd.options + cmd.positionals:
            assert action.help, f"{' '.join(cmd.path)}: {action.option_strings or action.dest} has no help"
        if cmd.path:
            assert cmd.help, f"{' '.join(cmd.path)} has no one-line help"
            assert cmd.parser.epilog and "examples:\n  nuage-ctl " in cmd.parser.epilog, \
                f"{' '.join(cmd.path)} has no examples"


def test_object_help_lists_its_actions(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["acl", "--help"])
    text = capsys.readouterr().out
    for line in ("create    create an ACL rule", "list      list ACL rules", "update    change fields of an ACL rule"):
        assert line in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["acl", "create", "--help"])
    text = capsys.readouterr().out
    assert "pg:GROUP" in text and "--priority" in text and "e.g. --priority 100" in text


def test_option_examples_are_given_where_values_are_typed():
    for cmd in command_tree(build_parser()).all():
        for action in cmd.options:
            if action.nargs != 0 and action.dest != "help" and not action.choices:
                assert "e.g." in action.help, f"{' '.join(cmd.path)} {action.option_strings} has no example"


def test_output_option_before_or_after_the_action():
    parser = build_parser()
    assert parser.parse_args(["-o", "yaml", "acl", "list"]).output == "yaml"
    assert parser.parse_args(["acl", "list", "-o", "wide"]).output == "wide"
    assert parser.parse_args(["--json", "acl", "list"]).output == "json"
    assert parser.parse_args(["acl", "list", "--json"]).output == "json"
    assert parser.parse_args(["-o", "yaml", "acl", "list", "-o", "json"]).output == "json"  # the last one wins
    assert parser.parse_args(["acl", "list"]).output is None
    for cmd in command_tree(parser).all():
        if not cmd.subcommands and cmd.path[0] not in ("completion", "man", "db-cluster", "db-relay") \
                and cmd.path[-1] not in ("set", "use-context", "delete-context"):
            assert any("-o" in a.option_strings for a in cmd.options), cmd.path


# -- words --


def test_grammar_of_articles():
    assert [with_article(w) for w in ("enterprise", "domain", "ACL rule", "host", "policy group")] == \
        ["an enterprise", "a domain", "an ACL rule", "a host", "a policy group"]


def test_api_errors_speak_cli():
    conflict = error_from_answer(409, "conflict", "domain d1 still has 3 zones; delete them first or use ?cascade=true")
    assert errors.describe(conflict) == "domain d1 still has 3 zones; delete them first or use --cascade (409 conflict)"
    bad = error_from_answer(422, "validation_error", "dst_ports needs protocol tcp or udp, not any")
    assert errors.cli_message(bad) == "--ports needs --protocol tcp or udp, not any"
    typed = error_from_answer(400, "bad_request", "field 'icmp_type' must be an integer")
    assert errors.cli_message(typed) == "--icmp-type must be an integer"
    prose = error_from_answer(409, "conflict", "domain d1 still has 2 policygroups")
    assert errors.cli_message(prose) == "domain d1 still has 2 policygroups"


def test_ids_in_errors_become_names(api):
    r = Resolver(api)
    r.resolve("domain", "acme/prod")
    message = errors.with_names(f"domain {uid(1, 'domain')} still has 3 zones", r)
    assert message == "domain prod (d0000001) still has 3 zones"


def test_usage_errors_exit_2_and_name_the_problem(capsys):
    from nuage_ryu.directory.ctl import main

    assert main(["acl", "create", "--domain", "prod"]) == 2  # --priority missing
    assert "--priority" in capsys.readouterr().err
    assert main(["acl", "update", "x", "--stateful", "--stateless"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
