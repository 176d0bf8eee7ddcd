"""Host objects in the REST API: the agent's version (written by its registration) and the vports bound."""

from __future__ import annotations

import pytest

from nuage_ryu.directory import model
from nuage_ryu.directory.errors import ValidationError
from nuage_ryu.directory.openapi import field_schema
from nuage_ryu.directory.store.agent_writes import register_host
from nuage_ryu.directory.validate import apply_change, parse_body


def registered(state, name="h1", version="1.2.3"):
    return apply_change(state, register_host(name, "192.0.2.1", 1, agent_version=version)(state))


def test_registration_records_the_agent_version_on_create_and_on_upgrade():
    state = registered(model.DirectoryState(), version="1.2.3")
    host = state.host_by_name("h1")
    assert host.agent_version == "1.2.3"
    state = registered(state, version="1.3.0")
    assert state.host_by_name("h1").agent_version == "1.3.0"
    # an agent that does not report a version leaves the recorded one alone
    again = apply_change(state, register_host("h1", "192.0.2.1", 1)(state))
    assert again.host_by_name("h1").agent_version == "1.3.0"


def test_an_unchanged_registration_writes_nothing():
    state = registered(model.DirectoryState())
    assert register_host("h1", "192.0.2.1", 1, agent_version="1.2.3")(state).ops == []


def test_host_json_shows_agent_version_and_vport_count():
    state = registered(model.DirectoryState())
    host = state.host_by_name("h1")
    vports = {f"v{i}": model.VPort(f"v{i}", "s", "d", f"c{i}", f"10.0.0.{i + 2}", f"02:00:00:00:00:0{i}",
                                   "10.0.0.1", host=h)
              for i, h in enumerate(("h1", "h1", "h2"))}
    state = model.DirectoryState(hosts=state.hosts, vports=vports)
    shown = model.as_dict("host", host, state)
    assert shown["agent_version"] == "1.2.3"
    assert shown["vport_count"] == 2


def test_agent_version_and_vport_count_are_read_only():
    state = registered(model.DirectoryState())
    host = state.host_by_name("h1")
    with pytest.raises(ValidationError, match="read-only"):
        parse_body("host", {"agent_version": "9.9"}, host, state)
    # a client may PUT back what it got
    assert parse_body("host", {"agent_version": "1.2.3", "vport_count": 0}, host, state) == {}
    fields = {f.name: f for f in model.FIELDS["host"]}
    assert field_schema(fields["vport_count"], "host")["readOnly"] is True
    assert field_schema(fields["agent_version"], "host")["type"] == "string"
