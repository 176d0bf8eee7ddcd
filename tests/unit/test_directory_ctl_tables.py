"""nuage-ctl's output, golden: tables with names and short ids, -o wide/json/yaml, show with names.

The expected text lives in tests/unit/golden/ctl/; after a deliberate change of the layout,
regenerate with ``NUAGE_UPDATE_GOLDEN=1 pytest tests/unit/test_directory_ctl_tables.py`` and
review the diff.
"""

from __future__ import annotations

import io
import json
import os

import pytest
import yaml

from nuage_ryu.directory.ctl import render
from nuage_ryu.directory.ctl.commands import ObjectCommand
from nuage_ryu.directory.ctl.parser import build_parser
from tests.unit.ctl_canned import CannedApi, uid

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "ctl")


def run(api: CannedApi, *argv: str) -> str:
    args = build_parser().parse_args(list(argv))
    out = io.StringIO()
    ObjectCommand(args, api, out).run()
    return out.getvalue()


def golden(name: str, text: str) -> None:
    path = os.path.join(GOLDEN, name)
    if os.environ.get("NUAGE_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"output differs from {path}"


@pytest.fixture
def api():
    return CannedApi()


CASES = {
    "acl-list.txt": ("acl", "list", "--domain", "acme/prod"),
    "acl-list-wide.txt": ("acl", "list", "--domain", "acme/prod", "-o", "wide"),
    "vport-list.txt": ("vport", "list", "--enterprise", "acme"),
    "vport-show.txt": ("vport", "show", "acme/prod/web/front/web-1"),
    "acl-show.txt": ("acl", "show", "app-to-db"),
    "domain-list.txt": ("domain", "list"),
    "domain-list-wide.txt": ("domain", "list", "-o", "wide"),
    "subnet-list.txt": ("subnet", "list", "--domain", "acme/prod"),
    "host-list.txt": ("host", "list"),
    "token-list.txt": ("token", "list"),
    "policygroup-members.txt": ("policygroup", "members", "acme/prod/web"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_output(api, name):
    golden(name, run(api, *CASES[name]))


def test_acl_list_shows_names_and_endpoints_by_name(api):
    lines = run(api, "acl", "list", "--domain", "acme/prod").splitlines()
    assert lines[0].split() == ["PRIO", "NAME", "SOURCE", "DESTINATION", "PROTO", "PORTS", "ACTION", "STATEFUL", "ID"]
    assert lines[1].split() == ["100", "web-to-app", "pg:web", "pg:app", "tcp", "8080", "allow", "yes",
                                uid(1, "acl")[:8]]
    assert lines[2].split() == ["200", "app-to-db", "zone:app", "subnet:back", "tcp", "5432", "allow", "no",
                                uid(2, "acl")[:8]]
    assert lines[3].split()[:4] == ["300", "-", "cidr:10.0.0.0/8", "any"]
    assert "type 8" in lines[4]  # an ICMP rule shows its type where ports would be
    assert all(len(line) <= 120 for line in lines)
    assert not any("policygroup:" in line for line in lines)


def test_vport_show_names_its_policy_groups_and_parents(api):
    text = run(api, "vport", "show", "web-1")
    assert f"policygroups  web ({uid(1, 'policygroup')})" in text
    assert f"subnet        acme/prod/web/front ({uid(1, 'subnet')})" in text
    assert f"domain        acme/prod ({uid(1, 'domain')})" in text


def test_tables_fit_120_columns_by_shortening_free_text(api):
    api.tree["enterprise"][0]["description"] = "a very long description " * 10
    api.tree["enterprise"][0]["name"] = "n" * 80
    lines = run(api, "enterprise", "list").splitlines()
    assert max(len(line) for line in lines) <= 120
    long_row = [line for line in lines if line.startswith("nnn")][0]
    assert long_row.split()[-1] == uid(1, "enterprise")[:8]  # the id is never cut
    assert "~" in long_row
    wide = [line for line in run(api, "enterprise", "list", "-o", "wide").splitlines() if line.startswith("nnn")]
    assert ("a very long description " * 10).strip() in wide[0] and uid(1, "enterprise") in wide[0]


def test_short_ids_grow_until_they_are_unique(api):
    api.tree["host"][1]["id"] = api.tree["host"][0]["id"][:10] + "ff" + api.tree["host"][0]["id"][12:]
    ids = [line.split()[-1] for line in run(api, "host", "list").splitlines()[1:3]]
    assert len(set(ids)) == 2 and all(len(i) == 11 for i in ids)


@pytest.mark.parametrize("where", ["global", "command"])
def test_json_and_yaml_are_the_api_objects(api, where):
    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        argv = ["-o", fmt, "acl", "list", "--domain", "prod", "--enterprise", "acme"] if where == "global" else \
            ["acl", "list", "--domain", "prod", "--enterprise", "acme", "-o", fmt]
        data = load(run(api, *argv))
        assert data == api.get(f"/domains/{uid(1, 'domain')}/acls")
    assert json.loads(run(api, "acl", "show", "100", "--domain", "acme/prod", "--json"))["name"] == "web-to-app"


def test_plain_print_table_keeps_field_columns():
    out = io.StringIO()
    render.print_table([{"id": "x", "stateful": False}], ["id", "stateful"], out)
    assert out.getvalue() == "ID  STATEFUL\nx   no\n"
