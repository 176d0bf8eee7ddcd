"""External connectivity in the directory: floating IPs, port mappings, the floating IP pool.

Pure checks used by the change planner (``validate``) and the row codec (``store``), kept in
one module so that the rules of docs/external.md §4 live in one place:

* a vport's ``floating_ip`` is an IPv4 address inside the directory's floating IP pool, used by
  no other vport (409);
* a vport's ``port_mappings`` are ``{protocol: tcp|udp, host_port, container_port}``; no two
  vports on one host publish the same protocol + host port (409), and a host never publishes
  the VXLAN port.

The pool (``[directory] floating_ip_pool``) is operator configuration, not tenant data: the
directory service sets it once at start (``configure_pool``); every API process of a
deployment reads the same configuration file. An empty pool refuses every floating IP.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable, Iterator

from nuage_ryu.directory import ipam
from nuage_ryu.directory.errors import BadRequest, Conflict, ValidationError
from nuage_ryu.directory.model import DirectoryState, PortMapping

PROTOCOLS = ("tcp", "udp")
VXLAN_UDP_PORT = 4789  # the hosts' own tunnel traffic: never publishable
MAX_PORT_MAPPINGS = 64  # per vport; a container publishing more is a mistake, not a use

_pool: tuple[ipaddress.IPv4Network, ...] = ()


def parse_pool(text: str) -> tuple[ipaddress.IPv4Network, ...]:
    """``"198.51.100.0/24, 203.0.113.128/25"`` -> networks (ValueError on a bad entry)."""
    nets = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            nets.append(ipaddress.IPv4Network(part, strict=False))
    return tuple(nets)


def configure_pool(text: str) -> None:
    """Set the floating IP pool of this directory process (``[directory] floating_ip_pool``)."""
    global _pool
    _pool = parse_pool(text)


def pool() -> tuple[ipaddress.IPv4Network, ...]:
    """The configured floating IP pool (empty: no floating IPs)."""
    return _pool


@contextlib.contextmanager
def pool_configured(text: str) -> Iterator[None]:
    """Use ``text`` as the pool inside the block (tests, tools), then restore the previous one."""
    global _pool
    before = _pool
    configure_pool(text)
    try:
        yield
    finally:
        _pool = before


# ---- floating IPs ----------------------------------------------------------------------


def check_floating_ip(state: DirectoryState, value: str, self_id: str | None) -> str:
    """A vport's floating IP: '' (none), or a free address of the pool."""
    if value == "":
        return ""
    address = ipaddress.IPv4Address(str(ipam.parse_ipv4(value, "floating_ip")))
    if not any(address in net for net in _pool):
        where = ", ".join(str(n) for n in _pool) or "none configured"
        raise ValidationError(f"floating_ip {address} is not in the floating IP pool ({where})")
    for vport in state.vports.values():
        if vport.floating_ip == str(address) and vport.id != self_id:
            raise Conflict(f"floating_ip {address} is already bound to vport {vport.id}")
    return str(address)


# ---- port mappings -----------------------------------------------------------------------


def parse_port_mappings(value) -> tuple[PortMapping, ...]:
    """The JSON list of a vport's ``port_mappings`` -> sorted PortMappings (400/422 on bad input)."""
    if not isinstance(value, list):
        raise BadRequest("field 'port_mappings' must be a list of objects")
    if len(value) > MAX_PORT_MAPPINGS:
        raise ValidationError(f"at most {MAX_PORT_MAPPINGS} port mappings per vport")
    out = set()
    for i, item in enumerate(value):
        what = f"port_mappings[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{what} must be an object")
        extra = set(item) - {"protocol", "host_port", "container_port"}
        if extra:
            raise BadRequest(f"{what}: unexpected {', '.join(sorted(extra))}")
        protocol = item.get("protocol", "tcp")
        if protocol not in PROTOCOLS:
            raise ValidationError(f"{what}.protocol {protocol!r} is not tcp or udp")
        ports = []
        for key in ("host_port", "container_port"):
            port = item.get(key)
            if not isinstance(port, int) or isinstance(port, bool):
                raise BadRequest(f"{what}.{key} must be an integer")
            if not 1 <= port <= 65535:
                raise ValidationError(f"{what}.{key} {port} is out of range 1..65535")
            ports.append(port)
        if protocol == "udp" and ports[0] == VXLAN_UDP_PORT:
            raise ValidationError(f"{what}: udp {VXLAN_UDP_PORT} is the hosts' VXLAN port")
        out.add(PortMapping(protocol, ports[0], ports[1]))
    mappings = tuple(sorted(out))
    seen: set[tuple[str, int]] = set()
    for m in mappings:
        if (m.protocol, m.host_port) in seen:
            raise ValidationError(f"{m.protocol} host port {m.host_port} is mapped twice")
        seen.add((m.protocol, m.host_port))
    return mappings


def check_host_ports(state: DirectoryState, host: str, mappings: Iterable[PortMapping], self_id: str | None) -> None:
    """No other vport of ``host`` publishes one of these protocol + host ports (409)."""
    wanted = {(m.protocol, m.host_port) for m in mappings}
    if not host or not wanted:
        return
    for vport in state.vports_on_host(host):
        if vport.id == self_id:
            continue
        for m in vport.port_mappings:
            if (m.protocol, m.host_port) in wanted:
                raise Conflict(f"{m.protocol} port {m.host_port} of host {host} is already published by "
                               f"vport {vport.id}")


# ---- OVSDB column codec: a set of strings "tcp/8080:80" -----------------------------------


def encode_port_mappings(mappings: Iterable[PortMapping]) -> list[str]:
    """PortMappings -> the ``VPort.port_mappings`` column (set of "proto/host:container")."""
    return sorted(f"{m.protocol}/{m.host_port}:{m.container_port}" for m in mappings)


def decode_port_mappings(values: Iterable[str]) -> tuple[PortMapping, ...]:
    """The column back into PortMappings; entries that do not parse are skipped (never written by us)."""
    out = []
    for text in values:
        protocol, _, ports = text.partition("/")
        host, _, container = ports.partition(":")
        if protocol in PROTOCOLS and host.isdigit() and container.isdigit():
            out.append(PortMapping(protocol, int(host), int(container)))
    return tuple(sorted(out))
