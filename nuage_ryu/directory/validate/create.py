"""Planning a create: one planner per object kind, chosen from ``CREATE_PLANNERS``.

Each planner checks the kind's own fields on the state and returns them; the common
steps (body parsing, parent lookup, name and description) run before it in ``plan_create``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from nuage_ryu.directory import external, ipam
from nuage_ryu.directory.errors import Conflict, NotFound, ValidationError
from nuage_ryu.directory.model import KINDS, DirectoryState
from nuage_ryu.directory.validate.change import Change, Op
from nuage_ryu.directory.validate.check import (
    CT_ZONE_MAX,
    VNI_MAX,
    check_acl,
    check_choice,
    check_description,
    check_external_ids,
    check_hostname,
    check_int,
    check_name,
    get_object,
    lowest_free,
    macs_in_use,
    normalize_datapath_id,
    policygroups_in,
    tunnel_ip,
    unique_name,
)
from nuage_ryu.directory.validate.parse import parse_body


@dataclass
class CreateRequest:
    """A create being planned: what the kind's planner reads, and the change it may mark.

    ``data``: the parsed body; ``parent``: the parent object (None for top-level kinds);
    ``change``: the change under construction (a planner adds guards or sets ``auto_assigned``).
    """

    state: DirectoryState
    parent: object
    data: dict
    change: Change
    rand: Callable[[int], int] | None
    token_hash: str | None
    now_ms: int

    @property
    def name(self):
        return self.data.get("name")


def _enterprise(req: CreateRequest) -> dict:
    unique_name(req.state.enterprises.values(), req.name, "enterprise", "directory")
    return {}


def _domain(req: CreateRequest) -> dict:
    state, data, parent = req.state, req.data, req.parent
    unique_name(state.domains_of(parent.id), req.name, "domain", "enterprise")
    fields: dict = {"enterprise": parent.id}
    used_vnis = {d.vni: d for d in state.domains.values()}
    if "vni" in data:
        vni = check_int(data["vni"], "vni", 1, VNI_MAX)
        if vni in used_vnis:
            holder = used_vnis[vni]
            # VNIs are global, domains are a tenant's: another enterprise's domain is never named.
            which = f"domain {holder.name!r}" if holder.enterprise == parent.id else "another enterprise"
            raise Conflict(f"vni {vni} is already used by {which}")
    else:
        vni = lowest_free(set(used_vnis), 1, VNI_MAX, "VNI")
        req.change.auto_assigned = True
    fields["vni"] = vni
    fields["ct_zone"] = lowest_free({d.ct_zone for d in state.domains.values()}, 1, CT_ZONE_MAX,
                                    "conntrack zone (one per domain)")
    req.change.auto_assigned = True  # ct_zone is always picked here
    fields["default_action"] = check_choice(data.get("default_action", "deny"), "default_action",
                                            ("allow", "deny"))
    fields["egress_nat"] = data.get("egress_nat", False)  # external connectivity (docs/external.md)
    fields["log_default"] = data.get("log_default", False)  # verdict records of the default (docs/policy.md)
    if "router_mac" in data:
        fields["router_mac"] = ipam.normalize_mac(data["router_mac"], "router_mac")
    else:
        fields["router_mac"] = ipam.generate_mac(macs_in_use(state), req.rand)
    return fields


def _zone(req: CreateRequest) -> dict:
    unique_name(req.state.zones_of(req.parent.id), req.name, "zone", "domain")
    return {"domain": req.parent.id}


def _policygroup(req: CreateRequest) -> dict:
    unique_name(req.state.policygroups_of(req.parent.id), req.name, "policy group", "domain")
    return {"domain": req.parent.id}


def _subnet(req: CreateRequest) -> dict:
    state, data, parent = req.state, req.data, req.parent
    unique_name(state.subnets_of_zone(parent.id), req.name, "subnet", "zone")
    cidr, gateway = ipam.check_subnet(data["cidr"], data.get("gateway"))
    net = ipam.parse_cidr(cidr)
    for other in state.subnets_of(parent.domain):
        o = ipam.parse_cidr(other.cidr)
        if o.first <= net.last and net.first <= o.last:
            raise Conflict(f"cidr {cidr} overlaps subnet {other.name!r} ({other.cidr}) of the same domain")
    req.change.guards.append(("domain", parent.domain, "subnet_epoch"))
    return {"zone": parent.id, "domain": parent.domain, "cidr": cidr, "gateway": gateway}


def _vport(req: CreateRequest) -> dict:
    state, data, parent, name = req.state, req.data, req.parent, req.name
    usage = state.subnet_ports(parent.id)  # precomputed sets: no scan of all vports
    if name in usage.names:
        raise Conflict(f"a vport named {name!r} already exists in this subnet")
    if data.get("ip"):
        ip = ipam.allocate_ip(parent.cidr, parent.gateway, usage.ips, data["ip"])
    else:
        ip = ipam.allocate_ip(parent.cidr, parent.gateway, usage.ips, hint=usage.max_ip)
        req.change.auto_assigned = True
    if data.get("mac"):
        mac = ipam.normalize_mac(data["mac"])
        if macs_in_use(state)(mac):
            raise Conflict(f"mac {mac} is already in use")
    else:
        mac = ipam.generate_mac(macs_in_use(state), req.rand)
        req.change.auto_assigned = True
    fields = {
        "subnet": parent.id, "domain": parent.domain, "ip": ip, "mac": mac, "gateway": parent.gateway,
        "status": "down",
        "type": check_choice(data.get("type", "container"), "type", ("container", "vm", "host")),
        "host": check_hostname(data["host"]) if data.get("host") else "",
        "policygroups": policygroups_in(state, parent.domain, data.get("policygroups", [])),
        "external_ids": MappingProxyType(check_external_ids(data.get("external_ids", {}))),
        # External connectivity (docs/external.md): the rules live in nuage_ryu/directory/external.py.
        "floating_ip": external.check_floating_ip(state, data.get("floating_ip", ""), None),
        "port_mappings": external.parse_port_mappings(data.get("port_mappings", [])),
    }
    external.check_host_ports(state, fields["host"], fields["port_mappings"], None)
    return fields


def _acl(req: CreateRequest) -> dict:
    fields = check_acl(req.state, req.parent.id, req.data, None)
    fields["domain"] = req.parent.id
    return fields


def _host(req: CreateRequest) -> dict:
    check_hostname(req.name, "name")
    if req.state.host_by_name(req.name):
        raise Conflict(f"a host named {req.name!r} already exists")
    return {"tunnel_ip": tunnel_ip(req.data.get("tunnel_ip", "")),
            "datapath_id": normalize_datapath_id(req.data.get("datapath_id", ""))}


def _token(req: CreateRequest) -> dict:
    """An enterprise token, or a host token; a host has one token: issuing another revokes the old."""
    if not req.token_hash:
        raise ValueError("token_hash is required to create a token")
    enterprise, host = req.data.get("enterprise"), req.data.get("host") or ""
    if bool(enterprise) == bool(host):
        raise ValidationError("a token is limited to an enterprise or to a host: give exactly one of "
                              "enterprise and host")
    fields = {"token_hash": req.token_hash, "created": req.now_ms, "name": req.data.get("name", "")}
    if host:
        check_hostname(host, "host")
        for old in req.state.tokens.values():
            if old.host == host:  # rotation: the old secret stops working in the same transaction
                req.change.ops.append(Op("delete", "token", old.id))
        return {**fields, "host": host}
    ent = req.state.enterprises.get(enterprise)
    if ent is None:
        raise ValidationError(f"enterprise {enterprise} does not exist")
    return {**fields, "enterprise": ent.id}


# kind -> planner of the kind's own fields (after name and description)
CREATE_PLANNERS: dict[str, Callable[[CreateRequest], dict]] = {
    "enterprise": _enterprise,
    "domain": _domain,
    "zone": _zone,
    "policygroup": _policygroup,
    "subnet": _subnet,
    "vport": _vport,
    "acl": _acl,
    "host": _host,
    "token": _token,
}


def plan_create(state: DirectoryState, kind: str, parent_id: str | None, body, *,
                new_id: str | None = None, rand: Callable[[int], int] | None = None,
                token_hash: str | None = None, now_ms: int = 0) -> Change:
    """Plan the creation of one object of ``kind`` under ``parent_id``.

    ``rand`` (bits -> int) drives MAC generation; ``token_hash``/``now_ms`` are
    used for tokens only.
    """
    data = parse_body(kind, body)
    obj_id = new_id or str(uuid.uuid4())
    parent_kind = KINDS[kind][2]
    parent = get_object(state, parent_kind, parent_id) if parent_kind else None
    change = Change(result=(kind, obj_id))
    name = data.get("name")
    fields: dict = {}
    if name is not None:
        fields["name"] = check_name(name, allow_empty=(kind in ("acl", "token")))
    if "description" in data:
        fields["description"] = check_description(data["description"])
    planner = CREATE_PLANNERS.get(kind)
    if planner is None:  # pragma: no cover - route table and KINDS agree
        raise NotFound(f"unknown object kind {kind}")
    fields.update(planner(CreateRequest(state, parent, data, change, rand, token_hash, now_ms)))
    change.ops.append(Op("insert", kind, obj_id, fields))
    return change
