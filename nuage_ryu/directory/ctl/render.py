"""Output: aligned tables with names and short ids, object listings, JSON and YAML.

``-o table`` (default) shows names instead of ids (rule endpoints as ``pg:web``, a vport's
policy groups by name), ids shortened to 8 digits, and fits the terminal (120 columns when
the output is not a terminal) by shortening free-text columns. ``-o wide`` adds columns,
shows full ids and never shortens. ``-o json`` / ``-o yaml`` print the API objects as they
are (ids, no names added), for scripts.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from nuage_ryu.directory.ctl.resolve import Resolver, short_id

OUTPUTS = ("table", "wide", "json", "yaml")
TABLE_WIDTH = 120
ELLIPSIS = "~"


def table_width(out: TextIO) -> int:
    """The terminal's width when writing to one, else 120 (pipes, files, tests)."""
    if hasattr(out, "isatty") and out.isatty():
        return shutil.get_terminal_size((TABLE_WIDTH, 24)).columns
    return TABLE_WIDTH


# ---------------------------------------------------------------------------
# values


def fmt(value) -> str:
    """A value as table text (no name lookups)."""
    if value is None or value == "":
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


def endpoint_text(value: dict | None, resolver: Resolver | None, wide: bool = False) -> str:
    """A rule endpoint as the CLI writes it: any, cidr:10.0.0.0/8, pg:web, zone:web, subnet:front."""
    if not value or value.get("type") == "any":
        return "any"
    if value["type"] == "cidr":
        return f"cidr:{value['cidr']}"
    prefix = "pg" if value["type"] == "policygroup" else value["type"]
    if resolver is None:
        return f"{prefix}:{value['id']}"
    name = resolver.name_of(value["type"], value["id"])
    return f"{prefix}:{name}" + (f" ({value['id']})" if wide else "")


def ports_text(row: dict) -> str:
    if row.get("icmp_type") is not None:
        code = row.get("icmp_code")
        return f"type {row['icmp_type']}" + (f" code {code}" if code is not None else "")
    return fmt(row.get("dst_ports"))


def counters_text(value) -> str:
    if not isinstance(value, dict):
        return "-"
    return f"{value.get('packets', 0)}/{value.get('bytes', 0)}"


# ---------------------------------------------------------------------------
# tables


@dataclass(frozen=True)
class Column:
    """A table column: header, how to get its text, whether it may be shortened, wide-only."""

    header: str
    text: Callable[[dict, Resolver | None, bool], str]
    shrink: bool = False
    wide_only: bool = False
    is_id: bool = False  # shortened ids: lengthened where two rows would show the same prefix


def field(name: str, header: str | None = None, shrink: bool = False, wide_only: bool = False) -> Column:
    return Column(header or name.upper(), lambda row, _r, _w: fmt(row.get(name)), shrink, wide_only)


def ref(kind: str, attr: str | None = None, header: str | None = None, wide_only: bool = False) -> Column:
    """The name of the object ``row[attr]`` refers to."""
    attr = attr or kind

    def text(row, resolver, _wide):
        if resolver is None:
            return fmt(row.get(attr))
        return resolver.name_of(kind, row.get(attr))

    return Column(header or attr.upper(), text, True, wide_only)


def ident() -> Column:
    return Column("ID", lambda row, _r, wide: row["id"] if wide else short_id(row["id"]), is_id=True)


def _names(kind: str, attr: str) -> Callable:
    def text(row, resolver, _wide):
        ids = row.get(attr) or []
        if resolver is None:
            return fmt(ids)
        return ",".join(sorted(resolver.name_of(kind, i) for i in ids)) or "-"
    return text


COLUMNS: dict[str, list[Column]] = {
    "enterprise": [field("name", shrink=True), field("description", shrink=True), ident()],
    "domain": [field("name", shrink=True), ref("enterprise"), field("vni"),
               field("default_action", "DEFAULT"), field("router_mac", "ROUTER_MAC", wide_only=True),
               field("ct_zone", "CT_ZONE", wide_only=True), field("description", shrink=True, wide_only=True),
               ident()],
    "zone": [field("name", shrink=True), ref("domain"), field("description", shrink=True), ident()],
    "subnet": [field("name", shrink=True), ref("zone"), ref("domain", wide_only=True), field("cidr"),
               field("gateway"), field("description", shrink=True, wide_only=True), ident()],
    "vport": [field("name", shrink=True), field("ip"), field("mac"), field("status"), field("host", shrink=True),
              field("type"), Column("POLICYGROUPS", _names("policygroup", "policygroups"), True),
              ref("subnet", wide_only=True), field("external_ids", "EXTERNAL_IDS", shrink=True, wide_only=True),
              ident()],
    "policygroup": [field("name", shrink=True), ref("domain"), field("description", shrink=True), ident()],
    "acl": [field("priority", "PRIO"), field("name", shrink=True),
            Column("SOURCE", lambda row, r, w: endpoint_text(row.get("source"), r, w), True),
            Column("DESTINATION", lambda row, r, w: endpoint_text(row.get("destination"), r, w), True),
            field("protocol", "PROTO"), Column("PORTS", lambda row, _r, _w: ports_text(row)),
            field("action"), field("stateful"), ref("domain", wide_only=True),
            Column("PKTS/BYTES", lambda row, _r, _w: counters_text(row.get("counters")), wide_only=True),
            field("description", shrink=True, wide_only=True), ident()],
    "host": [field("name", shrink=True), field("tunnel_ip", "TUNNEL_IP"), field("datapath_id", "DATAPATH_ID"),
             field("connected"), field("last_seen", "LAST_SEEN"), field("vport_count", "VPORTS", wide_only=True),
             field("agent_version", "AGENT_VERSION", wide_only=True), ident()],
    "token": [field("name", shrink=True), ref("enterprise"), field("host"), field("created"), ident()],
}


def _unique_prefixes(cells: list[list[str]], index: int, ids: list[str]) -> None:
    length = len(cells[0][index]) if cells else 0
    while length < 36 and len({i[:length] for i in ids}) < len(set(ids)):
        length += 1
    for row, obj_id in zip(cells, ids, strict=True):
        row[index] = obj_id[:length]


def _fit(widths: list[int], columns: list[Column], limit: int) -> list[int]:
    """Shorten the shrinkable columns (widest first, never below 8 or the header) to fit ``limit``."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - limit
    while excess > 0:
        candidates = [i for i, c in enumerate(columns) if c.shrink and widths[i] > max(8, len(c.header))]
        if not candidates:
            break
        i = max(candidates, key=lambda j: widths[j])
        widths[i] -= 1
        excess -= 1
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + ELLIPSIS


def render_table(rows: list[dict], columns: list[Column | str], resolver: Resolver | None = None,
                 wide: bool = False, width: int | None = TABLE_WIDTH) -> str:
    """The rows as an aligned table (``width`` None: never shorten)."""
    cols = [field(c) if isinstance(c, str) else c for c in columns]
    cols = [c for c in cols if wide or not c.wide_only]
    cells = [[c.text(row, resolver, wide) for c in cols] for row in rows]
    for i, c in enumerate(cols):
        if c.is_id and not wide:
            _unique_prefixes(cells, i, [row["id"] for row in rows])
    widths = [max([len(c.header)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    if width is not None and not wide:
        widths = _fit(widths, cols, width)
    lines = ["  ".join(c.header.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(_cut(v, w).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict], columns: list[Column | str], out: TextIO | None = None,
                resolver: Resolver | None = None, wide: bool = False) -> None:
    """Write ``render_table`` to ``out`` (default stdout), fitted to its width."""
    out = out or sys.stdout
    out.write(render_table(rows, columns, resolver, wide, table_width(out)))


# ---------------------------------------------------------------------------
# one object

# Fields that hold the id of another object, and that object's kind.
_REFS = {"enterprise": "enterprise", "domain": "domain", "zone": "zone", "subnet": "subnet"}


# Shown only when set: a vport's external connectivity (docs/external.md), absent on most vports.
_SHOWN_WHEN_SET = {"floating_ip", "port_mappings"}


def object_lines(kind: str, obj: dict, resolver: Resolver | None = None) -> list[tuple[str, str]]:
    """``show`` output as (key, text) pairs: referenced objects by name with their id."""
    lines = []
    for key, value in obj.items():
        if key in _SHOWN_WHEN_SET and not value:
            continue
        if key == "port_mappings" and isinstance(value, list):
            text = ", ".join(f"{m.get('protocol')}/{m.get('host_port')}:{m.get('container_port')}" for m in value)
        elif resolver is not None and key in _REFS and isinstance(value, str) and value:
            text = f"{resolver.path_of(_REFS[key], value)} ({value})"
        elif resolver is not None and key in ("source", "destination") and isinstance(value, dict):
            text = endpoint_text(value, resolver, wide=True)
        elif resolver is not None and key == "policygroups" and isinstance(value, list):
            text = ", ".join(f"{resolver.name_of('policygroup', i)} ({i})" for i in value) or "-"
        else:
            text = fmt(value)
        lines.append((key, text))
    return lines


def render_object(kind: str, obj: dict, resolver: Resolver | None = None) -> str:
    lines = object_lines(kind, obj, resolver)
    width = max((len(k) for k, _ in lines), default=0)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in lines)


# ---------------------------------------------------------------------------
# machine formats


def render_json(data) -> str:
    return json.dumps(data, indent=2) + "\n"


def render_yaml(data) -> str:
    # Imported here: PyYAML costs ~30 ms to import, which the default table output need not pay.
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def render_data(data, output: str) -> str:
    """JSON or YAML text of API data."""
    return render_yaml(data) if output == "yaml" else render_json(data)
