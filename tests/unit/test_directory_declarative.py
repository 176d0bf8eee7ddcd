"""The document form of nuage-ctl apply/export and the diff it sends, on canned API objects (no server)."""

from pathlib import Path

import pytest

from nuage_ryu.directory.ctl import declarative as d
from nuage_ryu.directory.ctl.resolve import UsageError
from tests.unit.ctl_canned import CannedApi

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "3tier.yaml"


def test_export_is_in_normal_form_and_applying_it_changes_nothing():
    tree = d.fetch(CannedApi(), "acme")
    doc = d.export(tree)
    assert d.normalize(doc) == doc
    assert d.plan(doc, tree, prune=True).operations == []


def test_the_example_creates_everything_top_down_with_refs():
    doc = d.normalize(d.load(EXAMPLE.read_text()))
    p = d.plan(doc, None)
    kinds = [op["kind"] for op in p.operations]
    assert kinds.index("enterprise") < kinds.index("domain") < kinds.index("zone") < kinds.index("acl")
    assert all(op["action"] == "create" for op in p.operations) and len(p.changes) == len(p.operations)
    ping = next(op for op in p.operations if op.get("body", {}).get("name") == "ping-db")
    assert ping["body"]["destination"] == {"type": "subnet", "id": "$subnet:prod/db/back"}
    assert ping["body"]["source"] == {"type": "zone", "id": "$zone:prod/app"}


def test_prune_deletes_rules_first_and_containers_last():
    tree = d.fetch(CannedApi(), "acme")
    doc = d.export(tree)
    doc["domains"][0]["acls"] = doc["domains"][0]["acls"][:1]
    doc["domains"][0]["zones"] = [z for z in doc["domains"][0]["zones"] if z["name"] != "db"]
    doc["domains"][0]["policygroups"].append({"name": "extra"})
    p = d.plan(d.normalize(doc), tree, prune=True)
    actions = [(op["action"], op["kind"]) for op in p.operations]
    first_create = actions.index(("create", "policygroup"))
    assert all(a == ("delete", "acl") for a in actions[:first_create])
    assert actions[-2:] == [("delete", "subnet"), ("delete", "zone")]
    assert d.plan(d.normalize(doc), tree, prune=False).operations == [
        op for op in p.operations if op["action"] != "delete"]


@pytest.mark.parametrize("doc,message", [
    ({"domains": []}, "'enterprise' is required"),
    ({"enterprise": "a", "domains": [{"name": "d", "colour": 1}]}, "domains[0]: unknown key 'colour'"),
    ({"enterprise": "a", "domains": [{"name": "d", "zones": [{"name": "z", "subnets": [{"name": "s"}]}]}]},
     "domains[0].zones[0].subnets[0]: 'cidr' is required"),
    ({"enterprise": "a", "domains": [{"name": "d", "acls": [{"priority": 1, "source": "pg web"}]}]},
     "domains[0].acls[0].source: endpoint"),
    ({"enterprise": "a", "domains": [{"name": "d", "acls": [{"priority": 1, "destination": "subnet:x"}]}]},
     "no subnet named 'x'"),
    ({"enterprise": "a", "domains": [{"name": "d"}, {"name": "d"}]}, "two domains with 'd'"),
    ({"enterprise": "a", "domains": [{"name": "d", "acls": [{"priority": 1}, {"priority": 1}]}]},
     "two rules with 1"),
])
def test_file_errors_name_their_place(doc, message):
    with pytest.raises(UsageError) as info:
        d.normalize(doc)
    assert message in str(info.value)


def test_values_are_normalised_so_that_equal_rules_compare_equal():
    doc = d.normalize({"enterprise": "a", "domains": [{"name": "d", "acls": [
        {"priority": 1, "protocol": 6, "dst_ports": 80, "source": "cidr:10.0.0.0/8", "stateful": True},
        {"priority": 2, "protocol": "UDP", "dst_ports": "53-53", "destination": "policygroup:dns"}]}]})
    assert doc["domains"][0]["acls"] == [
        {"priority": 1, "protocol": "tcp", "dst_ports": "80", "source": "cidr:10.0.0.0/8"},
        {"priority": 2, "protocol": "udp", "dst_ports": "53", "destination": "pg:dns"}]


def test_fixed_fields_are_not_changed_silently():
    tree = d.fetch(CannedApi(), "acme")
    doc = d.export(tree)
    doc["domains"][0]["zones"][0]["subnets"][0]["cidr"] = "10.9.9.0/24"
    with pytest.raises(UsageError, match="cidr cannot be changed"):
        d.plan(d.normalize(doc), tree)


def test_verdict_logs_and_audit_mode_round_trip_through_apply_and_export():
    # docs/policy.md: a rule's log/enforce and a domain's log_default are part of the document.
    tree = d.fetch(CannedApi(), "acme")
    doc = d.export(tree)
    rule = doc["domains"][0]["acls"][0]
    doc["domains"][0]["log_default"] = True
    rule["log"], rule["enforce"] = True, False
    normal = d.normalize(doc)
    assert normal["domains"][0]["log_default"] is True
    assert (normal["domains"][0]["acls"][0]["log"], normal["domains"][0]["acls"][0]["enforce"]) == (True, False)
    p = d.plan(normal, tree)
    bodies = [op["body"] for op in p.operations if op["action"] == "update"]
    assert {"log_default": True} in bodies
    assert any(b.get("log") is True and b.get("enforce") is False for b in bodies), bodies
    # the defaults stay out of an exported document
    assert "log" not in d.export(tree)["domains"][0]["acls"][0] and "log_default" not in d.export(tree)["domains"][0]
    with pytest.raises(UsageError, match="log_default"):
        d.normalize(dict(doc, domains=[dict(doc["domains"][0], log_default="yes")]))
