"""What one bridge needs to know: the compiler's input, as frozen data.

The agent fills a ``HostView`` from the directory snapshot plus what its own
bridge reports (ofports); ``from_directory`` is that mapping. The view keeps the
whole directory's vports of the domains it lists: the compiler itself decides
which domains are *present* on the host (have a vport here) and compiles only
those, so handing it more than needed is harmless.

Field names follow the brief of the VRS compiler (``domain_id``...), not the
directory model's (``domain``...); ``from_directory`` shows the correspondence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType


@dataclass(frozen=True)
class Domain:
    id: str
    vni: int  # VXLAN network id, unique per domain; also the value of REG_DOMAIN
    router_mac: str  # the distributed virtual router's MAC, the same on every host
    default_action: str = "deny"  # "allow" | "deny"
    ct_zone: int = 0  # conntrack zone of the domain (16 bits)
    egress_nat: bool = False  # its vports may open connections to the outside (docs/external.md)


@dataclass(frozen=True)
class Subnet:
    id: str
    domain_id: str
    cidr: str  # "10.0.1.0/24"
    gateway: str  # "10.0.1.1", answered with the domain's router MAC
    zone_id: str | None = None


@dataclass(frozen=True)
class VPort:
    id: str
    domain_id: str
    subnet_id: str
    mac: str
    ip: str
    host: str  # Host.name of the host it runs on
    type: str = "container"  # "container" | "vm" | "host"
    policygroups: frozenset[str] = frozenset()
    vlan: int | None = None  # VLAN tag on its local port (e.g. a bare-metal trunk), None = untagged
    floating_ip: str | None = None  # 1:1 external address, served by its host
    published: tuple[PublishedPort, ...] = ()  # ports published on its host's address


@dataclass(frozen=True, order=True)
class PublishedPort:
    """``protocol`` (tcp|udp) ``host_port`` on the host's external address -> the vport's ``container_port``."""

    protocol: str
    host_port: int
    container_port: int


@dataclass(frozen=True)
class ExternalUplink:
    """How this host reaches the outside (docs/external.md): None in a view = no external connectivity.

    ``ip``: the host's own underlay address (what NATed traffic leaves with); ``mac``: the MAC of
    the physical bridge's internal port (the host stack, which routes outbound packets);
    ``patch_ofport``: br-int's end of the patch to the physical bridge; ``ports``: the NAT source
    port range.
    """

    ip: str
    mac: str
    patch_ofport: int
    ports: tuple[int, int] = (61000, 65535)


@dataclass(frozen=True)
class Host:
    name: str
    tunnel_ip: str


@dataclass(frozen=True)
class LocalPort:
    vport_id: str
    ofport: int  # its OpenFlow port number on this bridge


@dataclass(frozen=True)
class PolicyGroup:
    id: str
    domain_id: str


@dataclass(frozen=True)
class Endpoint:
    """ACL endpoint: type any | policygroup | zone | subnet (``id``) | cidr (``cidr``)."""

    type: str = "any"
    id: str | None = None
    cidr: str | None = None


ANY = Endpoint()


@dataclass(frozen=True)
class AclRule:
    id: str
    domain_id: str
    priority: int  # 1..65535, lower evaluated first, unique within the domain
    source: Endpoint = ANY
    destination: Endpoint = ANY
    protocol: str | int = "any"  # any | tcp | udp | icmp | IP protocol number
    dst_ports: str | None = None  # "80" or "8000-8080" (tcp/udp only)
    icmp_type: int | None = None
    icmp_code: int | None = None
    action: str = "allow"  # allow | deny
    stateful: bool = True


LOGICAL_VLAN_SHIFT = 16


def _frozen(items: Iterable, key) -> Mapping:
    return MappingProxyType({key(i): i for i in items})


@dataclass(frozen=True, eq=False)
class HostView:
    """Everything the compiler reads for one bridge. Maps are id -> object (hosts: name -> Host)."""

    host_name: str
    tunnel_port_ofport: int | None  # the flow-based VXLAN port; None = not created yet (no remote traffic)
    domains: Mapping[str, Domain] = field(default_factory=dict)
    subnets: Mapping[str, Subnet] = field(default_factory=dict)
    vports: Mapping[str, VPort] = field(default_factory=dict)
    hosts: Mapping[str, Host] = field(default_factory=dict)
    local_ports: Mapping[str, LocalPort] = field(default_factory=dict)  # by vport id
    policygroups: Mapping[str, PolicyGroup] = field(default_factory=dict)
    acl_rules: Mapping[str, AclRule] = field(default_factory=dict)
    external: ExternalUplink | None = None

    @classmethod
    def of(
        cls,
        host_name: str,
        tunnel_port_ofport: int | None,
        domains: Iterable[Domain] = (),
        subnets: Iterable[Subnet] = (),
        vports: Iterable[VPort] = (),
        hosts: Iterable[Host] = (),
        local_ports: Iterable[LocalPort] = (),
        policygroups: Iterable[PolicyGroup] = (),
        acl_rules: Iterable[AclRule] = (),
        external: ExternalUplink | None = None,
    ) -> HostView:
        """Build a view from lists of objects (indexes them by id)."""
        by_id = lambda o: o.id  # noqa: E731
        return cls(
            host_name,
            tunnel_port_ofport,
            _frozen(domains, by_id),
            _frozen(subnets, by_id),
            _frozen(vports, by_id),
            _frozen(hosts, lambda h: h.name),
            _frozen(local_ports, lambda p: p.vport_id),
            _frozen(policygroups, by_id),
            _frozen(acl_rules, by_id),
            external,
        )

    def replace(self, **changes) -> HostView:
        """A copy with some maps replaced (``changes`` values may be iterables of objects)."""
        current = dict(
            domains=self.domains.values(), subnets=self.subnets.values(), vports=self.vports.values(),
            hosts=self.hosts.values(), local_ports=self.local_ports.values(),
            policygroups=self.policygroups.values(), acl_rules=self.acl_rules.values(),
        )
        current.update(changes)
        current.setdefault("external", self.external)
        host_name = current.pop("host_name", self.host_name)
        tunnel = current.pop("tunnel_port_ofport", self.tunnel_port_ofport)
        return HostView.of(host_name, tunnel, **current)

    # -- derived lookups (cheap; the compiler caches what it needs per update) --
    def present_domains(self) -> frozenset[str]:
        """Domains with at least one vport on this host: the only ones that get flows here."""
        return self._present

    @cached_property
    def _present(self) -> frozenset[str]:
        # Computed once per view (the view is immutable); cached_property bypasses the frozen setattr.
        return frozenset(v.domain_id for v in self.vports.values()
                         if v.host == self.host_name and v.domain_id in self.domains)

    def local_port(self, vport: VPort) -> LocalPort | None:
        """The bridge port of a vport of this host, None if remote or not plugged yet."""
        if vport.host != self.host_name:
            return None
        return self.local_ports.get(vport.id)

    def logical_port(self, vport: VPort) -> int | None:
        """The number that stands for a local vport in REG_SRC_PORT/REG_DST_PORT; None if not local.

        Its ofport, and for a VLAN-tagged vport (bare metal behind a shared gateway port) also
        its VLAN in bits 16..27: several servers on one port must stay distinct in the pipeline.
        OVS ofports stay below 0xff00, so they fit the low 16 bits.
        """
        local = self.local_port(vport)
        if local is None:
            return None
        return local.ofport | ((vport.vlan or 0) << LOGICAL_VLAN_SHIFT)


# A bare-metal server (vport type "host") sits behind a gateway port of its host's
# bridge and is told apart by its VLAN: the vport's external_ids name both.
GATEWAY_PORT_KEY = "gateway_port"
GATEWAY_VLAN_KEY = "vlan"


def gateway_vlan(vport) -> int | None:
    """The VLAN of a bare-metal vport on its gateway port, None for untagged/other vports."""
    if vport.type != "host":
        return None
    try:
        vlan = int(vport.external_ids.get(GATEWAY_VLAN_KEY, ""))
    except ValueError:
        return None
    return vlan if 1 <= vlan <= 4094 else None


def gateway_port(vport) -> str | None:
    """The bridge interface a bare-metal vport is reached through (None for other vports)."""
    if vport.type != "host":
        return None
    return vport.external_ids.get(GATEWAY_PORT_KEY) or None


def view_domain(d) -> Domain:
    """The view's Domain of a ``directory.model.Domain``."""
    return Domain(d.id, d.vni, d.router_mac, d.default_action, d.ct_zone, d.egress_nat)


def view_subnet(s) -> Subnet:
    """The view's Subnet of a ``directory.model.Subnet``."""
    return Subnet(s.id, s.domain, s.cidr, s.gateway, s.zone)


def view_vport(v) -> VPort:
    """The view's VPort of a ``directory.model.VPort``."""
    return VPort(v.id, v.domain, v.subnet, v.mac, v.ip, v.host, v.type, frozenset(v.policygroups),
                 gateway_vlan(v), v.floating_ip or None,
                 tuple(PublishedPort(m.protocol, m.host_port, m.container_port) for m in v.port_mappings))


def view_group(g) -> PolicyGroup:
    """The view's PolicyGroup of a ``directory.model.PolicyGroup``."""
    return PolicyGroup(g.id, g.domain)


def view_rule(a) -> AclRule:
    """The view's AclRule of a ``directory.model.ACL``."""
    return AclRule(a.id, a.domain, a.priority, Endpoint(a.source.type, a.source.id, a.source.cidr),
                   Endpoint(a.destination.type, a.destination.id, a.destination.cidr), a.protocol,
                   a.dst_ports, a.icmp_type, a.icmp_code, a.action, a.stateful)


def from_directory(state, host_name: str, tunnel_port_ofport: int | None,
                   ofports: Mapping[str, int], external: ExternalUplink | None = None) -> HostView:
    """Map a ``nuage_ryu.directory.model.DirectoryState`` snapshot to this host's view.

    ``ofports`` is {vport id: ofport} for the vports plugged into this bridge (from the
    local OVSDB external_ids). Only the domains present on ``host_name`` are copied,
    with all their subnets, vports, groups and rules; hosts are copied whole (a few).
    (``view_update.update_view`` gives the same view from the last one and what changed.)
    """
    present = {v.domain for v in state.vports.values() if v.host == host_name}
    domains = [view_domain(d) for d in state.domains.values() if d.id in present]
    subnets = [view_subnet(s) for s in state.subnets.values() if s.domain in present]
    vports = [view_vport(v) for v in state.vports.values() if v.domain in present]
    hosts = [Host(h.name, h.tunnel_ip) for h in state.hosts.values() if h.tunnel_ip]
    local = [LocalPort(vid, port) for vid, port in ofports.items()]
    groups = [view_group(g) for g in state.policygroups.values() if g.domain in present]
    rules = [view_rule(a) for a in state.acls.values() if a.domain in present]
    return HostView.of(host_name, tunnel_port_ofport, domains, subnets, vports, hosts, local, groups, rules,
                       external)
