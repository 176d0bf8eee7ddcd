"""Directory object model: immutable objects, their API fields, and a state snapshot.

Pure data, no I/O. The same field declarations drive request parsing
(``validate.py``), the JSON representation and the OpenAPI document
(``openapi.py``), so the three cannot drift apart.

Ids are the OVSDB row UUIDs as strings. Parent references are ids too.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

# ---------------------------------------------------------------------------
# Objects

ENDPOINT_TYPES = ("any", "policygroup", "zone", "subnet", "cidr")
VPORT_TYPES = ("container", "vm", "host")
ACTIONS = ("allow", "deny")
VPORT_STATUSES = ("down", "up")


@dataclass(frozen=True, slots=True)
class Enterprise:
    id: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Domain:
    """A routing domain (VRF): own VNI, own conntrack zone, own virtual router MAC."""

    id: str
    enterprise: str
    name: str
    vni: int
    ct_zone: int
    router_mac: str
    default_action: str = "deny"
    description: str = ""
    subnet_epoch: int = 0
    egress_nat: bool = False  # vports may reach outside addresses, NATed to their host's (docs/external.md)
    log_default: bool = False  # the default action's decisions become verdict records (docs/policy.md)


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    domain: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Subnet:
    id: str
    zone: str
    domain: str
    name: str
    cidr: str
    gateway: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class PolicyGroup:
    id: str
    domain: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class VPort:
    """A container/VM/host interface on the overlay; membership in policy groups lives here."""

    id: str
    subnet: str
    domain: str
    name: str
    ip: str
    mac: str
    gateway: str
    type: str = "container"
    host: str = ""
    status: str = "down"
    description: str = ""
    policygroups: frozenset[str] = frozenset()
    external_ids: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    floating_ip: str = ""  # 1:1 external address served by the vport's host; "" = none
    port_mappings: tuple[PortMapping, ...] = ()  # published on the host's address (docs/external.md)


@dataclass(frozen=True, slots=True, order=True)
class PortMapping:
    """A published port: connections to ``host_port`` on the vport's host reach ``container_port``."""

    protocol: str  # tcp | udp
    host_port: int
    container_port: int

    def as_dict(self) -> dict:
        return {"protocol": self.protocol, "host_port": self.host_port, "container_port": self.container_port}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An ACL rule endpoint: any, a policy group / zone / subnet (by id), or a CIDR."""

    type: str
    id: str | None = None
    cidr: str | None = None

    def as_dict(self) -> dict:
        if self.type == "any":
            return {"type": "any"}
        if self.type == "cidr":
            return {"type": "cidr", "cidr": self.cidr}
        return {"type": self.type, "id": self.id}


ANY = Endpoint("any")


@dataclass(frozen=True, slots=True)
class ACL:
    """A security rule of a domain. Lower priority number is evaluated first."""

    id: str
    domain: str
    priority: int
    source: Endpoint = ANY
    destination: Endpoint = ANY
    protocol: str = "any"
    dst_ports: str | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    action: str = "allow"
    stateful: bool = True
    name: str = ""
    description: str = ""
    log: bool = False  # its decisions become verdict records (docs/policy.md, "Verdict logs")
    enforce: bool = True  # False = audit mode: counts and logs what it would decide, decides nothing


@dataclass(frozen=True, slots=True)
class Host:
    """A hypervisor/container host running a VRS agent. last_seen: ms since the epoch, 0 = never.

    ``agent_version``: ``nuage_ryu.__version__`` of the agent that last registered the host ("" until
    an agent of schema 1.4.0 or later did)."""

    id: str
    name: str
    tunnel_ip: str = ""
    datapath_id: str = ""
    connected: bool = False
    last_seen: int = 0
    agent_version: str = ""


@dataclass(frozen=True, slots=True)
class HostCounters:
    """The policy counters one host's agent last reported (absolute totals of the flows on that host).

    ``rules``: ACL id -> (packets, bytes); ``defaults``: domain id -> (packets, bytes) of the
    domain's default action. Only ids that existed when the report was written are kept.
    """

    id: str
    host: str
    rules: Mapping[str, tuple[int, int]] = field(default_factory=lambda: MappingProxyType({}))
    defaults: Mapping[str, tuple[int, int]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A bearer token limited to one enterprise, or to one host (its attach service); only its
    SHA-256 is stored. Exactly one of ``enterprise`` and ``host`` is set."""

    id: str
    enterprise: str | None
    token_hash: str
    name: str = ""
    created: int = 0
    host: str = ""


# ---------------------------------------------------------------------------
# API fields, declared once


@dataclass(frozen=True)
class Field:
    """One JSON field of an object.

    kind: string, integer, boolean, ip, ip_or_empty, cidr, mac, enum, endpoint, ports,
    protocol, ids (list of ids), map (string->string), id, timestamp, counters, portmaps (list of
    {protocol, host_port, container_port}).
    access: "required" / "optional" (client may set on create), "server" (read-only).
    """

    name: str
    kind: str
    access: str = "optional"
    mutable: bool = False
    choices: tuple = ()
    minimum: int | None = None
    maximum: int | None = None
    nullable: bool = False
    description: str = ""


def _name(mutable: bool = True) -> Field:
    return Field("name", "string", "required", mutable, description="Name, unique within the parent.")


def _descr() -> Field:
    return Field("description", "string", "optional", True, description="Free text.")


def _id() -> Field:
    return Field("id", "id", "server", description="Object id (OVSDB row UUID).")


FIELDS: dict[str, tuple[Field, ...]] = {
    "enterprise": (_id(), _name(), _descr()),
    "domain": (
        _id(),
        Field("enterprise", "id", "server"),
        _name(),
        _descr(),
        Field("vni", "integer", "optional", minimum=1, maximum=16777215,
              description="VXLAN network identifier; unique; lowest free one when absent."),
        Field("default_action", "enum", "optional", True, choices=ACTIONS,
              description="What happens to traffic no rule matches (default deny)."),
        Field("router_mac", "mac", "optional",
              description="MAC of the distributed virtual router; generated when absent."),
        Field("ct_zone", "integer", "server", description="Conntrack zone of the domain (1..65535)."),
        Field("egress_nat", "boolean", "optional", True,
              description="Vports may open connections to addresses outside the domain, NATed to their "
                          "host's address; the policy still decides (default false, docs/external.md)."),
        Field("log_default", "boolean", "optional", True,
              description="Packets the default action decides become verdict records (default false; "
                          "docs/policy.md)."),
        Field("default_action_counters", "counters", "server",
              description="Packets/bytes decided by the default action, summed over the hosts' reports."),
    ),
    "zone": (_id(), Field("domain", "id", "server"), _name(), _descr()),
    "subnet": (
        _id(),
        Field("zone", "id", "server"),
        Field("domain", "id", "server"),
        _name(),
        _descr(),
        Field("cidr", "cidr", "required", description="IPv4 network, e.g. 10.0.1.0/24."),
        Field("gateway", "ip", "optional", description="Default gateway; first usable address when absent."),
    ),
    "vport": (
        _id(),
        Field("subnet", "id", "server"),
        Field("zone", "id", "server"),
        Field("domain", "id", "server"),
        _name(),
        _descr(),
        Field("type", "enum", "optional", choices=VPORT_TYPES, description="Default container."),
        Field("host", "string", "optional", True, description="Name of the host the vport lives on."),
        Field("ip", "ip", "optional", description="Allocated from the subnet when absent."),
        Field("mac", "mac", "optional", description="Generated (locally administered) when absent."),
        Field("gateway", "ip", "server", description="The subnet's gateway."),
        Field("status", "enum", "server", choices=VPORT_STATUSES,
              description="down until the host's agent has installed the vport's flows."),
        Field("policygroups", "ids", "optional", True, description="Ids of the policy groups it belongs to."),
        Field("external_ids", "map", "optional", True,
              description="Free string map for plugins (container id, interface name...)."),
        Field("floating_ip", "ip_or_empty", "optional", True,
              description="External address (from the directory's floating_ip_pool) bound 1:1 to this vport "
                          "on whichever host it runs; empty = none."),
        Field("port_mappings", "portmaps", "optional", True,
              description="Ports published on the host's address: [{protocol, host_port, container_port}]."),
    ),
    "policygroup": (_id(), Field("domain", "id", "server"), _name(), _descr()),
    "acl": (
        _id(),
        Field("domain", "id", "server"),
        Field("name", "string", "optional", True),
        _descr(),
        Field("priority", "integer", "required", True, minimum=1, maximum=65535,
              description="Unique in the domain; lower is evaluated first."),
        Field("source", "endpoint", "optional", True, description="Default any."),
        Field("destination", "endpoint", "optional", True, description="Default any."),
        Field("protocol", "protocol", "optional", True, description="any, tcp, udp, icmp or 0..255."),
        Field("dst_ports", "ports", "optional", True, nullable=True,
              description="'80' or '8000-8080'; tcp/udp only."),
        Field("icmp_type", "integer", "optional", True, minimum=0, maximum=255, nullable=True),
        Field("icmp_code", "integer", "optional", True, minimum=0, maximum=255, nullable=True),
        Field("action", "enum", "optional", True, choices=ACTIONS, description="Default allow."),
        Field("stateful", "boolean", "optional", True, description="Let replies through (default true)."),
        Field("log", "boolean", "optional", True,
              description="Packets this rule decides become verdict records: the host's log and "
                          "GET /api/v1/verdicts (default false; rate-limited per host)."),
        Field("enforce", "boolean", "optional", True,
              description="false = audit mode: the rule counts and logs what it would decide, traffic "
                          "goes on to the next rules (default true; docs/policy.md)."),
        Field("counters", "counters", "server",
              description="Packets/bytes this rule decided, summed over the hosts' reports."),
    ),
    "host": (
        _id(),
        Field("name", "string", "required", description="Host name, unique."),
        Field("tunnel_ip", "ip_or_empty", "optional", True,
              description="VXLAN tunnel endpoint; empty until known (an agent may register without one)."),
        Field("datapath_id", "string", "optional", True, description="br-int datapath id, 16 hex digits."),
        Field("connected", "boolean", "server"),
        Field("last_seen", "timestamp", "server", nullable=True, description="Last agent heartbeat (UTC)."),
        Field("agent_version", "string", "server",
              description="Version of the VRS agent that registered the host (empty until one reported it)."),
        Field("vport_count", "integer", "server", description="Vports bound to this host."),
    ),
    "token": (
        _id(),
        Field("enterprise", "id", "optional", nullable=True,
              description="Enterprise the token is limited to (an enterprise token); null for a host token."),
        Field("host", "string", "optional",
              description="Host name the token is limited to (a host token: that host's attach service may "
                          "read the directory and create, change and delete the vports bound to that host); "
                          "empty for an enterprise token. Issuing a host token again replaces the old one."),
        Field("name", "string", "optional", description="Label."),
        Field("created", "timestamp", "server", nullable=True),
    ),
}

# kind -> OVSDB table, plural (collection path), parent kind (None for top level)
KINDS: dict[str, tuple[str, str, str | None]] = {
    "enterprise": ("Enterprise", "enterprises", None),
    "domain": ("Domain", "domains", "enterprise"),
    "zone": ("Zone", "zones", "domain"),
    "subnet": ("Subnet", "subnets", "zone"),
    "vport": ("VPort", "vports", "subnet"),
    "policygroup": ("PolicyGroup", "policygroups", "domain"),
    "acl": ("ACL", "acls", "domain"),
    "host": ("Host", "hosts", None),
    "token": ("ApiToken", "tokens", None),
}

OBJECT_CLASSES = {
    "enterprise": Enterprise,
    "domain": Domain,
    "zone": Zone,
    "subnet": Subnet,
    "vport": VPort,
    "policygroup": PolicyGroup,
    "acl": ACL,
    "host": Host,
    "token": ApiToken,
}


def iso_time(ms: int) -> str | None:
    """ms since the epoch -> ISO 8601 UTC string (None for 0 = never)."""
    if not ms:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------
# Snapshot


@dataclass(frozen=True)
class SubnetPorts:
    """The vports of one subnet with the sets that vport creation checks (names, addresses).

    ``max_ip`` is the highest address (as an int) handed out so far: an allocation hint only.
    """

    vports: Mapping[str, VPort]
    names: Collection[str]  # frozenset, or a persistent map used as a set (store)
    ips: Collection[str]
    max_ip: int = 0

    @classmethod
    def build(cls, vports: Iterable[VPort]) -> SubnetPorts:
        by_id = {v.id: v for v in vports}
        ips = frozenset(v.ip for v in by_id.values())
        names = frozenset(v.name for v in by_id.values())
        return cls(by_id, names, ips, max((ip_int(i) for i in ips), default=0))


EMPTY_SUBNET = SubnetPorts({}, frozenset(), frozenset(), 0)


def ip_int(ip: str) -> int:
    """Dotted-quad IPv4 -> int (fast; the address must be valid)."""
    a, b, c, d = ip.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


class DirectoryState:
    """An immutable snapshot of the whole directory, indexed for the lookups validators and agents need.

    The maps are ``id -> object``; never mutate them. Derived indexes are built lazily,
    once per snapshot.
    """

    def __init__(
        self,
        enterprises: Mapping[str, Enterprise] | None = None,
        domains: Mapping[str, Domain] | None = None,
        zones: Mapping[str, Zone] | None = None,
        subnets: Mapping[str, Subnet] | None = None,
        vports: Mapping[str, VPort] | None = None,
        policygroups: Mapping[str, PolicyGroup] | None = None,
        acls: Mapping[str, ACL] | None = None,
        hosts: Mapping[str, Host] | None = None,
        tokens: Mapping[str, ApiToken] | None = None,
        subnet_ports: Mapping[str, SubnetPorts] | None = None,
        macs: Collection[str] | None = None,
        complete_domains: frozenset[str] | None = None,
        placement=None,
        version: int = 0,
        changelog=None,
    ):
        """``subnet_ports``/``macs`` may be given precomputed (the store maintains them
        incrementally, so that a write does not cost O(all vports)); else built lazily.

        ``complete_domains``: in the replica of an agent that follows only its share of the
        directory, the domains whose objects it is known to hold completely (the monitor
        condition that brought them is acknowledged); None: the whole directory is here."""
        self.enterprises = enterprises or {}
        self.domains = domains or {}
        self.zones = zones or {}
        self.subnets = subnets or {}
        self.vports = vports or {}
        self.policygroups = policygroups or {}
        self.acls = acls or {}
        self.hosts = hosts or {}
        self.tokens = tokens or {}
        self.complete_domains = complete_domains
        self.placement = placement
        self.version = version
        self.changelog = changelog
        if subnet_ports is not None:
            self.__dict__["_subnet_ports"] = subnet_ports
        if macs is not None:
            self.__dict__["_macs"] = macs

    @classmethod
    def from_objects(cls, objects: Iterable[object]) -> DirectoryState:
        """Build a state from a flat list of objects (tests, tools)."""
        maps: dict[str, dict] = {KINDS[k][1]: {} for k in KINDS}
        for obj in objects:
            maps[KINDS[kind_of(obj)][1]][obj.id] = obj
        return cls(**maps)

    def changes_since(self, older: DirectoryState) -> dict[str, frozenset[str]] | None:
        """Ids changed per table (plural names: ``"vports"``...) from ``older`` to this snapshot;
        None when not known (not two snapshots of one mirror, or too far apart)."""
        if self.changelog is None or older.changelog is not self.changelog:
            return None
        return self.changelog.since(older.version, self.version)

    def domain_complete(self, domain_id: str) -> bool:
        """True when this snapshot holds every object of the domain (always, for a full replica)."""
        return self.complete_domains is None or domain_id in self.complete_domains

    def table(self, kind: str) -> Mapping[str, object]:
        """The id -> object map of ``kind``."""
        return getattr(self, KINDS[kind][1])

    def get(self, kind: str, obj_id: str):
        """The object of ``kind`` with ``obj_id``, or None."""
        return self.table(kind).get(obj_id)

    # -- derived indexes (lazily, once per snapshot) --
    @staticmethod
    def _group(objs: Iterable, attr: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for obj in objs:
            out.setdefault(getattr(obj, attr), []).append(obj)
        return out

    @cached_property
    def _domains_by_enterprise(self):
        return self._group(self.domains.values(), "enterprise")

    @cached_property
    def _zones_by_domain(self):
        return self._group(self.zones.values(), "domain")

    @cached_property
    def _subnets_by_domain(self):
        return self._group(self.subnets.values(), "domain")

    @cached_property
    def _subnets_by_zone(self):
        return self._group(self.subnets.values(), "zone")

    @cached_property
    def _subnet_ports(self) -> Mapping[str, SubnetPorts]:
        groups = self._group(self.vports.values(), "subnet")
        return {sid: SubnetPorts.build(vps) for sid, vps in groups.items()}

    @cached_property
    def _vports_by_domain(self):
        return self._group(self.vports.values(), "domain")

    @cached_property
    def _vports_by_host(self):
        return self._group(self.vports.values(), "host")

    @cached_property
    def _members(self):
        out: dict[str, list[VPort]] = {}
        for vport in self.vports.values():
            for pg in vport.policygroups:
                out.setdefault(pg, []).append(vport)
        return out

    @cached_property
    def _pgs_by_domain(self):
        return self._group(self.policygroups.values(), "domain")

    @cached_property
    def _acls_by_domain(self):
        return self._group(self.acls.values(), "domain")

    @cached_property
    def _hosts_by_name(self):
        return {h.name: h for h in self.hosts.values()}

    @cached_property
    def _tokens_by_hash(self):
        return {t.token_hash: t for t in self.tokens.values()}

    @cached_property
    def _macs(self) -> frozenset[str]:
        return frozenset(v.mac for v in self.vports.values())

    # -- public lookups --
    def domains_of(self, enterprise_id: str) -> list[Domain]:
        return list(self._domains_by_enterprise.get(enterprise_id, ()))

    def zones_of(self, domain_id: str) -> list[Zone]:
        return list(self._zones_by_domain.get(domain_id, ()))

    def subnets_of(self, domain_id: str) -> list[Subnet]:
        return list(self._subnets_by_domain.get(domain_id, ()))

    def subnets_of_zone(self, zone_id: str) -> list[Subnet]:
        return list(self._subnets_by_zone.get(zone_id, ()))

    def vports_of(self, domain_id: str) -> list[VPort]:
        return list(self._vports_by_domain.get(domain_id, ()))

    def vports_of_subnet(self, subnet_id: str) -> list[VPort]:
        return list(self.subnet_ports(subnet_id).vports.values())

    def subnet_ports(self, subnet_id: str) -> SubnetPorts:
        """Vports, names and addresses in use of one subnet."""
        return self._subnet_ports.get(subnet_id, EMPTY_SUBNET)

    def vport_indexes(self) -> tuple[Mapping[str, SubnetPorts], Collection[str]]:
        """The per-subnet vport index and the set of MACs in use (to derive a state from this one)."""
        return self._subnet_ports, self._macs

    def vports_on_host(self, host_name: str) -> list[VPort]:
        if self.placement is not None:  # no pass over all vports (a scoped replica keeps it)
            return [self.vports[vid] for vid in self.placement.by_host.get(host_name, ())]
        return list(self._vports_by_host.get(host_name, ()))

    def members_of(self, policygroup_id: str) -> list[VPort]:
        """Vports that belong to the policy group."""
        return list(self._members.get(policygroup_id, ()))

    def policygroups_of(self, domain_id: str) -> list[PolicyGroup]:
        return list(self._pgs_by_domain.get(domain_id, ()))

    def acls_of(self, domain_id: str) -> list[ACL]:
        """Rules of the domain in evaluation order (lowest priority number first)."""
        return sorted(self._acls_by_domain.get(domain_id, ()), key=lambda a: a.priority)

    def host_by_name(self, name: str) -> Host | None:
        return self._hosts_by_name.get(name)

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        return self._tokens_by_hash.get(token_hash)

    def mac_in_use(self, mac: str) -> bool:
        return mac in self._macs

    def enterprise_of(self, kind: str, obj) -> str | None:
        """Id of the enterprise an object belongs to (None for hosts)."""
        if kind == "enterprise":
            return obj.id
        if kind == "token":
            return obj.enterprise
        if kind == "host":
            return None
        if kind == "domain":
            return obj.enterprise
        domain = self.domains.get(obj.domain)
        return domain.enterprise if domain else None

    def acls_referencing(self, kind: str, obj_id: str) -> list[ACL]:
        """Rules whose source or destination is the given policy group/zone/subnet."""
        return [a for a in self.acls.values()
                if (a.source.type == kind and a.source.id == obj_id)
                or (a.destination.type == kind and a.destination.id == obj_id)]


class CounterSnapshot:
    """The hosts' counter reports (immutable), kept apart from ``DirectoryState``: counters change
    every few seconds and are not configuration, so they neither invalidate the state's indexes
    nor wake the agents' listeners."""

    def __init__(self, reports: Mapping[str, HostCounters] | None = None):
        self.reports = reports or {}  # HostCounters row id -> report

    def _sum(self, attr: str, obj_id: str) -> dict:
        by_host = {}
        for report in self.reports.values():
            value = getattr(report, attr).get(obj_id)
            if value is not None:
                by_host[report.host] = {"packets": value[0], "bytes": value[1]}
        return {"packets": sum(v["packets"] for v in by_host.values()),
                "bytes": sum(v["bytes"] for v in by_host.values()),
                "by_host": dict(sorted(by_host.items()))}

    def of_rule(self, acl_id: str) -> dict:
        """``{"packets", "bytes", "by_host": {host: {"packets", "bytes"}}}`` of an ACL rule."""
        return self._sum("rules", acl_id)

    def of_default(self, domain_id: str) -> dict:
        """The same for a domain's default action."""
        return self._sum("defaults", domain_id)

    def of_host(self, host_name: str) -> HostCounters | None:
        """The last report of one host, if any."""
        for report in self.reports.values():
            if report.host == host_name:
                return report
        return None


NO_COUNTERS = CounterSnapshot()


def kind_of(obj) -> str:
    """The kind name ('vport', ...) of an object."""
    for kind, cls in OBJECT_CLASSES.items():
        if isinstance(obj, cls):
            return kind
    raise TypeError(f"not a directory object: {obj!r}")


def as_dict(kind: str, obj, state: DirectoryState | None = None,
            counters: CounterSnapshot = NO_COUNTERS) -> dict:
    """The API (JSON) representation of an object (``counters``: the hosts' reports, for ACLs and domains)."""
    out: dict = {}
    for f in FIELDS[kind]:
        if f.name == "zone" and kind == "vport":
            subnet = state.subnets.get(obj.subnet) if state else None
            out["zone"] = subnet.zone if subnet else None
        elif f.name == "vport_count" and kind == "host":
            out["vport_count"] = len(state.vports_on_host(obj.name)) if state else 0
        elif f.kind == "counters":
            out[f.name] = counters.of_rule(obj.id) if kind == "acl" else counters.of_default(obj.id)
        elif f.kind == "endpoint":
            out[f.name] = getattr(obj, f.name).as_dict()
        elif f.kind == "ids":
            out[f.name] = sorted(getattr(obj, f.name))
        elif f.kind == "map":
            out[f.name] = dict(getattr(obj, f.name))
        elif f.kind == "portmaps":
            out[f.name] = [m.as_dict() for m in getattr(obj, f.name)]
        elif f.kind == "timestamp":
            out[f.name] = iso_time(getattr(obj, f.name))
        else:
            out[f.name] = getattr(obj, f.name)
    return out
