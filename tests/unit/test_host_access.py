"""What a host token may do (nuage_ryu/directory/host_access.py), as pure checks on a state."""

import pytest

from nuage_ryu.directory import host_access, validate
from nuage_ryu.directory.errors import Forbidden, ValidationError
from nuage_ryu.directory.model import ApiToken, DirectoryState, VPort


def _state() -> DirectoryState:
    mine = VPort(id="v1", subnet="s", domain="d", name="mine", host="h1", ip="10.0.0.2", mac="02:00:00:00:00:02",
                 gateway="10.0.0.1")
    theirs = VPort(id="v2", subnet="s", domain="d", name="theirs", host="h2", ip="10.0.0.3", gateway="10.0.0.1",
                   mac="02:00:00:00:00:03")
    return DirectoryState(vports={"v1": mine, "v2": theirs})


@pytest.mark.parametrize("handler,kind", [("list", "acl"), ("show", "enterprise"), ("members", "vport"),
                                          ("create", "vport"), ("update", "vport"), ("delete", "vport"),
                                          ("bulk", None)])
def test_reads_and_vport_writes_pass_the_route_check(handler, kind):
    host_access.check_route("h1", handler, kind)


@pytest.mark.parametrize("handler,kind", [("list", "token"), ("show", "token"), ("create", "token"),
                                          ("update", "acl"), ("create", "enterprise"), ("delete", "domain"),
                                          ("create", "host"), ("members_add", "vport"), ("members_set", "vport"),
                                          ("members_remove", "vport")])
def test_everything_else_is_refused_by_route(handler, kind):
    with pytest.raises(Forbidden):
        host_access.check_route("h1", handler, kind)


def test_a_host_writes_only_vports_on_itself():
    state = _state()
    host_access.check_vport_write("h1", state, "create", "vport", None, {"name": "n", "host": "h1"})
    host_access.check_vport_write("h1", state, "update", "vport", "v1", {"external_ids": {"a": "b"}})
    host_access.check_vport_write("h1", state, "delete", "vport", "v1", None)
    refused = [("create", "vport", None, {"name": "n", "host": "h2"}),
               ("create", "vport", None, {"name": "n"}),
               ("update", "vport", "v2", {"host": "h1"}),
               ("update", "vport", "v1", {"host": "h2"}),
               ("delete", "vport", "v2", None),
               ("update", "acl", "a1", {"action": "allow"}),
               ("create", "zone", None, {"name": "z"})]
    for action, kind, obj_id, body in refused:
        with pytest.raises(Forbidden):
            host_access.check_vport_write("h1", state, action, kind, obj_id, body)


def test_a_new_host_token_replaces_the_hosts_old_one_in_the_same_change():
    state = DirectoryState(tokens={"t1": ApiToken("t1", None, "old", host="h1"),
                                   "t2": ApiToken("t2", None, "other", host="h2")})
    change = validate.plan_create(state, "token", None, {"host": "h1"}, token_hash="new", new_id="t3")
    assert [(op.action, op.id) for op in change.ops] == [("delete", "t1"), ("insert", "t3")]
    assert change.ops[1].fields["host"] == "h1" and "enterprise" not in change.ops[1].fields
    for body in ({}, {"host": ""}, {"host": "h1", "enterprise": "e"}):
        with pytest.raises(ValidationError):
            validate.plan_create(state, "token", None, body, token_hash="x")
