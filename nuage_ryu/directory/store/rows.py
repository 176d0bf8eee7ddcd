"""Rows of the directory database <-> immutable model objects, in python-ovs's representation.

Two python-ovs internals are read here, each in one small function below, because python-ovs
(4.0) has no public accessor for them: a column's stored value with references as UUIDs
(``stored``), and the table of a row handed to ``Idl.notify`` (``table_name``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import MappingProxyType

from nuage_ryu.directory import external, model
from nuage_ryu.directory.model import KINDS, Endpoint

TABLE_KIND = {table: kind for kind, (table, _plural, _parent) in KINDS.items()}
# Model fields that are references to a parent row.
REF_FIELDS = {"enterprise", "domain", "zone", "subnet"}
# Model fields that live in a private table of their own (written by agents, replicated only to
# their owner and the REST API; see docs/scale.md): the mirror joins them in, and they are never
# columns of the object's own row. vport ``status`` -> VPortStatus; host ``connected`` and
# ``last_seen`` -> HostLiveness.
PRIVATE_FIELDS = {"status", "connected", "last_seen"}
STATUS_TABLE = "VPortStatus"
LIVENESS_TABLE = "HostLiveness"
VERDICT_TABLE = "Verdict"  # the agents' verdict records (store/verdicts.py): not model objects


def stored(row, column: str):
    """The committed value (an ``ovs.db.data.Datum``) of ``column``, references kept as UUIDs.

    The public ``row.<column>`` turns each reference into the referenced Row and silently drops
    it (or, for a single reference, replaces it by the zero UUID) when that row is not in the
    replica: rows a monitor condition leaves out, such as other hosts' counter reports (and, once
    agents monitor only their share, e.g. the enterprise of a domain). The model needs the ids.
    """
    return row._data[column]


def table_name(row) -> str:
    """The name of the table ``row`` belongs to (``Idl.notify`` passes the row without it)."""
    return row._table.name


def _ref(row, col: str) -> str:
    return str(stored(row, col).as_scalar())


def _optional_ref(row, col: str) -> str | None:
    values = stored(row, col).as_list()
    return str(values[0]) if values else None


def _optional(row, col: str):
    values = getattr(row, col)
    return values[0] if values else None


def _endpoint(row, prefix: str) -> Endpoint:
    etype = getattr(row, prefix + "_type")
    if etype in ("policygroup", "zone", "subnet"):
        return Endpoint(etype, id=_optional_ref(row, f"{prefix}_{etype}"))
    if etype == "cidr":
        return Endpoint("cidr", cidr=_optional(row, prefix + "_cidr"))
    return model.ANY


def _enterprise(rid: str, row) -> model.Enterprise:
    return model.Enterprise(rid, row.name, row.description)


def _domain(rid: str, row) -> model.Domain:
    return model.Domain(rid, _ref(row, "enterprise"), row.name, row.vni, row.ct_zone, row.router_mac,
                        row.default_action, row.description, row.subnet_epoch, row.egress_nat, row.log_default)


def _zone(rid: str, row) -> model.Zone:
    return model.Zone(rid, _ref(row, "domain"), row.name, row.description)


def _subnet(rid: str, row) -> model.Subnet:
    return model.Subnet(rid, _ref(row, "zone"), _ref(row, "domain"), row.name, row.cidr, row.gateway,
                        row.description)


def _policygroup(rid: str, row) -> model.PolicyGroup:
    return model.PolicyGroup(rid, _ref(row, "domain"), row.name, row.description)


def _vport(rid: str, row) -> model.VPort:
    # status: "down" here; the mirror joins in the VPortStatus row (see PRIVATE_FIELDS).
    return model.VPort(
        rid, _ref(row, "subnet"), _ref(row, "domain"), row.name, row.ip, row.mac, row.gateway,
        row.type, row.host, "down", row.description,
        frozenset(str(u) for u in stored(row, "policygroups").as_list()),
        MappingProxyType(dict(row.external_ids)),
        row.floating_ip, external.decode_port_mappings(row.port_mappings))


def _acl(rid: str, row) -> model.ACL:
    return model.ACL(
        rid, _ref(row, "domain"), row.priority, _endpoint(row, "src"), _endpoint(row, "dst"),
        row.protocol, _optional(row, "dst_ports"), _optional(row, "icmp_type"), _optional(row, "icmp_code"),
        row.action, row.stateful, row.name, row.description, row.log,
        _optional(row, "enforce") is not False)  # empty (a row older than schema 1.4) = enforced


def _host(rid: str, row) -> model.Host:
    # connected/last_seen: the mirror joins in the HostLiveness row (see PRIVATE_FIELDS).
    return model.Host(rid, row.name, row.tunnel_ip, row.datapath_id, agent_version=row.agent_version)


def _token(rid: str, row) -> model.ApiToken:
    return model.ApiToken(rid, _optional_ref(row, "enterprise"), row.token_hash, row.name, row.created, row.host)


# kind -> converter of its row into the model object
ROW_CONVERTERS: dict[str, Callable] = {
    "enterprise": _enterprise, "domain": _domain, "zone": _zone, "subnet": _subnet,
    "policygroup": _policygroup, "vport": _vport, "acl": _acl, "host": _host, "token": _token,
}


def row_to_object(kind: str, row):
    """Convert an IDL row into the immutable model object."""
    return ROW_CONVERTERS[kind](str(row.uuid), row)


def _uuid_map(row, col: str) -> dict[str, int]:
    return {str(k.value): v.value for k, v in stored(row, col).values.items()}


def row_to_counters(row) -> model.HostCounters:
    """Convert an IDL ``HostCounters`` row into the immutable report."""
    rule_bytes, default_bytes = _uuid_map(row, "rule_bytes"), _uuid_map(row, "default_bytes")
    rules = {k: (p, rule_bytes.get(k, 0)) for k, p in _uuid_map(row, "rule_packets").items()}
    defaults = {k: (p, default_bytes.get(k, 0)) for k, p in _uuid_map(row, "default_packets").items()}
    return model.HostCounters(str(row.uuid), row.host, MappingProxyType(rules), MappingProxyType(defaults))


def linked_row(row, column: str) -> str | None:
    """The id of the row an optional reference column of ``row`` links to (replicated or not)."""
    values = stored(row, column).as_list()
    return str(values[0]) if values else None


def linked_rows(row, column: str) -> list[uuid.UUID]:
    """The UUIDs a reference column of ``row`` holds, whether or not those rows are replicated."""
    return stored(row, column).as_list()


def columns(fields: dict) -> dict:
    """Model field values -> OVSDB column values (python-ovs representation)."""
    cols: dict = {}
    for key, value in fields.items():
        if key in PRIVATE_FIELDS:
            continue
        if key in REF_FIELDS:
            cols[key] = uuid.UUID(value)
        elif key in ("source", "destination"):
            prefix = "src" if key == "source" else "dst"
            cols[prefix + "_type"] = value.type
            for etype in ("policygroup", "zone", "subnet"):
                cols[f"{prefix}_{etype}"] = [uuid.UUID(value.id)] if value.type == etype else []
            cols[prefix + "_cidr"] = [value.cidr] if value.type == "cidr" else []
        elif key == "policygroups":
            cols[key] = [uuid.UUID(v) for v in sorted(value)]
        elif key == "external_ids":
            cols[key] = dict(value)
        elif key == "port_mappings":
            cols[key] = external.encode_port_mappings(value)
        elif key in ("dst_ports", "icmp_type", "icmp_code", "enforce"):
            cols[key] = [] if value is None else [value]
        else:
            cols[key] = value
    return cols
