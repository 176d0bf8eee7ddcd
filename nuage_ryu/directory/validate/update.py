"""Planning an update (PUT) and policy-group membership: one planner per kind, from ``UPDATE_PLANNERS``."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from nuage_ryu.directory import external
from nuage_ryu.directory.errors import BadRequest, ValidationError
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.validate.change import Change, Op
from nuage_ryu.directory.validate.check import (
    acl_as_input,
    check_acl,
    check_choice,
    check_description,
    check_external_ids,
    check_hostname,
    check_name,
    get_object,
    normalize_datapath_id,
    policygroups_in,
    tunnel_ip,
    unique_name,
)
from nuage_ryu.directory.validate.parse import parse_body

# kind -> the objects whose names a renamed object must not take (acls and tokens have no unique name)
NAME_SIBLINGS: dict[str, Callable] = {
    "enterprise": lambda state, current: state.enterprises.values(),
    "domain": lambda state, current: state.domains_of(current.enterprise),
    "zone": lambda state, current: state.zones_of(current.domain),
    "subnet": lambda state, current: state.subnets_of_zone(current.zone),
    "vport": lambda state, current: state.vports_of_subnet(current.subnet),
    "policygroup": lambda state, current: state.policygroups_of(current.domain),
    "host": lambda state, current: state.hosts.values(),
}


def _domain(state: DirectoryState, current, data: dict) -> dict:
    fields: dict = {}
    if "default_action" in data:
        fields["default_action"] = check_choice(data["default_action"], "default_action", ("allow", "deny"))
    if "egress_nat" in data:
        fields["egress_nat"] = data["egress_nat"]
    if "log_default" in data:
        fields["log_default"] = data["log_default"]
    return fields


def _vport(state: DirectoryState, current, data: dict) -> dict:
    fields: dict = {}
    if "host" in data:
        fields["host"] = check_hostname(data["host"]) if data["host"] else ""
    if "policygroups" in data:
        fields["policygroups"] = policygroups_in(state, current.domain, data["policygroups"])
    if "external_ids" in data:
        fields["external_ids"] = MappingProxyType(check_external_ids(data["external_ids"]))
    # External connectivity (docs/external.md): the rules live in nuage_ryu/directory/external.py.
    if "floating_ip" in data:
        fields["floating_ip"] = external.check_floating_ip(state, data["floating_ip"], current.id)
    if "port_mappings" in data:
        fields["port_mappings"] = external.parse_port_mappings(data["port_mappings"])
    if "host" in data or "port_mappings" in data:
        external.check_host_ports(state, fields.get("host", current.host),
                                  fields.get("port_mappings", current.port_mappings), current.id)
    return fields


def _acl(state: DirectoryState, current, data: dict) -> dict:
    # A rule is checked whole: the update merged into the current rule.
    merged = acl_as_input(current)
    merged.update(data)
    new = check_acl(state, current.domain, merged, current.id)
    return {k: v for k, v in new.items() if getattr(current, k) != v}


def _host(state: DirectoryState, current, data: dict) -> dict:
    fields: dict = {}
    if "tunnel_ip" in data:
        fields["tunnel_ip"] = tunnel_ip(data["tunnel_ip"])
    if "datapath_id" in data:
        fields["datapath_id"] = normalize_datapath_id(data["datapath_id"])
    return fields


# kind -> planner of the kind's own mutable fields (after name and description); kinds not listed
# have no others
UPDATE_PLANNERS: dict[str, Callable[[DirectoryState, object, dict], dict]] = {
    "domain": _domain,
    "vport": _vport,
    "acl": _acl,
    "host": _host,
}


def plan_update(state: DirectoryState, kind: str, obj_id: str, body) -> Change:
    """Plan a PUT: only the mutable fields given change; the rest stays."""
    current = get_object(state, kind, obj_id)
    data = parse_body(kind, body, current, state)
    fields: dict = {}
    if "description" in data:
        fields["description"] = check_description(data["description"])
    if "name" in data and kind != "acl":
        name = check_name(data["name"])
        unique_name(NAME_SIBLINGS[kind](state, current), name, kind, KINDS[kind][2] or "directory", obj_id)
        fields["name"] = name
    planner = UPDATE_PLANNERS.get(kind)
    if planner is not None:
        fields.update(planner(state, current, data))
    fields = {k: v for k, v in fields.items() if getattr(current, k) != v}
    change = Change(result=(kind, obj_id))
    if fields:
        change.ops.append(Op("update", kind, obj_id, fields))
    return change


def plan_membership(state: DirectoryState, pg_id: str, vport_ids, mode: str) -> Change:
    """Set (``set``), add (``add``) or remove (``remove``) member vports of a policy group."""
    pg = get_object(state, "policygroup", pg_id)
    if not isinstance(vport_ids, list) or not all(isinstance(v, str) for v in vport_ids):
        raise BadRequest("'vports' must be a list of vport ids")
    wanted = set(vport_ids)
    for vid in wanted:
        vport = state.vports.get(vid)
        if vport is None or vport.domain != pg.domain:
            raise ValidationError(f"vport {vid} does not exist in this domain")
    current = {v.id for v in state.members_of(pg_id)}
    if mode == "set":
        add, remove = wanted - current, current - wanted
    elif mode == "add":
        add, remove = wanted - current, set()
    else:
        add, remove = set(), wanted & current
    change = Change(result=("policygroup", pg_id))
    for vid in sorted(add | remove):
        groups = set(state.vports[vid].policygroups)
        if vid in add:
            groups.add(pg_id)
        else:
            groups.discard(pg_id)
        change.ops.append(Op("update", "vport", vid, {"policygroups": frozenset(groups)}))
    return change
