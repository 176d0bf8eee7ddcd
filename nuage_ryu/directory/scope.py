"""A VRS agent's share of the directory, as OVSDB monitor conditions.

An agent needs only what its own hosts carry: their vports, then every domain those
vports are in, and within those domains the subnets, zones, policy groups, rules and
vports, plus the host rows of the hosts that carry those vports (their tunnel IPs).
Nothing else is ever sent to it: no other domain, no API token, no other host's
liveness or counters (those live in tables of their own, monitored by their owner
only — the idea of OVN's ``Chassis_Private``).

The share is a fixed point reached in two steps: the agent first receives the vports
bound to its hosts, learns their domains from them, and widens its conditions; the
rows that arrive then (the domains' vports) name the carrier hosts. :func:`scope_of`
computes the share from what the agent currently holds; :func:`monitor_conditions`
turns it into one condition per table. Pure: no I/O, used by the store's mirror.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Tables whose rows belong to one domain, by the column that names it.
DOMAIN_SCOPED = {"Zone": "domain", "Subnet": "domain", "PolicyGroup": "domain", "ACL": "domain"}
# Tables an agent never receives a row of (Verdict: agents only insert their records, docs/policy.md).
NEVER = ("ApiToken", "Verdict")
# Tables keyed by host name that an agent receives only for its own hosts.
OWN_HOST_ONLY = {"HostCounters": "host", "HostLiveness": "name", "VPortStatus": "host",
                 "TraceRequest": "host"}  # trace requests: the source host's agent answers (docs/policy.md)

MATCH_NOTHING: list = [False]


@dataclass(frozen=True)
class Scope:
    """What one agent follows: its own hosts, the domains present on them, the hosts carrying those domains."""

    hosts: frozenset[str]
    domains: frozenset[str] = frozenset()
    enterprises: frozenset[str] = frozenset()
    carriers: frozenset[str] = frozenset()


def scope_of(hosts: Iterable[str], vports: Iterable, domains: Mapping[str, object]) -> Scope:
    """The share of an agent managing ``hosts``, from the vports and domains it holds.

    ``vports`` are objects with ``host`` and ``domain`` (ids); ``domains`` maps a domain id
    to an object with ``enterprise``. A domain is local when one of ``hosts`` carries a
    vport of it; a carrier is any host with a vport in a local domain.
    """
    own = frozenset(hosts)
    vports = list(vports)
    local = frozenset(vp.domain for vp in vports if vp.host in own)
    carriers = frozenset(vp.host for vp in vports if vp.domain in local and vp.host) | own
    enterprises = frozenset(domains[d].enterprise for d in local if d in domains)
    return Scope(own, local, enterprises, carriers)


def _any_of(column: str, values: Iterable[str], uuid: bool = False) -> list:
    clauses = [[column, "==", ["uuid", v] if uuid else v] for v in sorted(values)]
    return clauses or list(MATCH_NOTHING)


def monitor_conditions(scope: Scope) -> dict[str, list]:
    """One OVSDB ``where`` condition (a disjunction of clauses) per table of the directory schema.

    Conditions are sorted so that the same scope always gives the same request
    (python-ovs sends a ``monitor_cond_change`` only when a condition differs).
    """
    cond: dict[str, list] = {
        "VPort": _any_of("host", scope.hosts) + [c for c in _any_of("domain", scope.domains, uuid=True)
                                                   if c is not False],
        "Domain": _any_of("_uuid", scope.domains, uuid=True),
        "Enterprise": _any_of("_uuid", scope.enterprises, uuid=True),
        "Host": _any_of("name", scope.carriers),
    }
    for table, column in DOMAIN_SCOPED.items():
        cond[table] = _any_of(column, scope.domains, uuid=True)
    for table, column in OWN_HOST_ONLY.items():
        cond[table] = _any_of(column, scope.hosts)
    for table in NEVER:
        cond[table] = list(MATCH_NOTHING)
    return cond


# Tables whose condition names the local domains, by the column their clauses use: a domain is
# complete in a replica once every one of these conditions that the server acknowledged names it.
DOMAIN_TABLES = {"Domain": "_uuid", "VPort": "domain", **DOMAIN_SCOPED}


def condition_domains(cond: Sequence, column: str) -> frozenset[str]:
    """The domain ids a condition (as built by :func:`monitor_conditions`) selects by ``column``."""
    return frozenset(c[2][1] for c in cond if isinstance(c, list) and c[0] == column and c[1] == "==")


def condition_values(cond: Sequence, column: str) -> frozenset[str]:
    """The plain values a condition selects by ``column`` (e.g. the host names of VPort's)."""
    return frozenset(c[2] for c in cond if isinstance(c, list) and c[0] == column and c[1] == "=="
                     and isinstance(c[2], str))


def acknowledged_domains(acked: Mapping[str, Sequence]) -> frozenset[str]:
    """Domains named by the acknowledged condition of every table of ``DOMAIN_TABLES``.

    ``acked`` maps those tables to the condition the server last acknowledged. ovsdb-server
    sends the rows a new condition selects before it replies to the change, so once a domain
    is in every acknowledged condition the replica holds all of its objects.
    """
    domains: frozenset[str] | None = None
    for table, column in DOMAIN_TABLES.items():
        named = condition_domains(acked.get(table, ()), column)
        domains = named if domains is None else domains & named
    return domains or frozenset()
