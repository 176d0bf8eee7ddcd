"""The per-subnet vport index (names, addresses) and the MAC set, kept as persistent maps.

Both the store's mirror (every row change) and the planners' working state (every planned op)
maintain them incrementally, so that a vport write never costs a pass over all vports.
"""

from __future__ import annotations

import immutables

from nuage_ryu.directory import model

EMPTY_PORTS = model.SubnetPorts(immutables.Map(), immutables.Map(), immutables.Map(), 0)


def discard(m: immutables.Map, key) -> immutables.Map:
    """``m`` without ``key`` (unchanged when absent)."""
    return m.delete(key) if key in m else m


def index_vport(subnet_ports: immutables.Map, macs: immutables.Map, old, new) -> tuple[immutables.Map, immutables.Map]:
    """The index and MAC set after vport ``old`` became ``new`` (either may be None: create, delete)."""
    if old is not None:
        sp = subnet_ports.get(old.subnet)
        if sp is not None and old.id in sp.vports:
            sp = model.SubnetPorts(sp.vports.delete(old.id), discard(sp.names, old.name),
                                   discard(sp.ips, old.ip), sp.max_ip)
            subnet_ports = subnet_ports.set(old.subnet, sp) if len(sp.vports) else subnet_ports.delete(old.subnet)
        macs = discard(macs, old.mac)
    if new is not None:
        sp = subnet_ports.get(new.subnet) or EMPTY_PORTS
        # max_ip only grows: it is an allocation hint ("continue after the last one handed out").
        sp = model.SubnetPorts(sp.vports.set(new.id, new), sp.names.set(new.name, True),
                               sp.ips.set(new.ip, True), max(sp.max_ip, model.ip_int(new.ip)))
        subnet_ports = subnet_ports.set(new.subnet, sp)
        macs = macs.set(new.mac, True)
    return subnet_ports, macs


# ---- placement: where vports are, by host and by domain (scoped replicas: the agents) ---------------


class Placement:
    """Which vports each host and each domain holds, as persistent maps of persistent sets.

    ``by_host``: host name -> {vport id: domain id}; ``by_domain``: domain id -> {vport id: host};
    ``carriers``: domain id -> {host name: number of its vports there}. A scoped store keeps it
    from the row changes, so that its share (the domains of its hosts' vports, the hosts carrying
    them) and an agent's lookups by host or domain never walk all the vports it holds.
    """

    __slots__ = ("by_host", "by_domain", "carriers")

    def __init__(self, by_host: immutables.Map | None = None, by_domain: immutables.Map | None = None,
                 carriers: immutables.Map | None = None):
        self.by_host = by_host if by_host is not None else immutables.Map()
        self.by_domain = by_domain if by_domain is not None else immutables.Map()
        self.carriers = carriers if carriers is not None else immutables.Map()

    def moved(self, old, new) -> Placement:
        """The placement after vport ``old`` became ``new`` (either may be None: create, delete)."""
        if old is not None and new is not None and (old.host, old.domain) == (new.host, new.domain):
            return self
        by_host, by_domain, carriers = self.by_host, self.by_domain, self.carriers
        if old is not None:
            by_host = _remove_member(by_host, old.host, old.id)
            by_domain = _remove_member(by_domain, old.domain, old.id)
            count = carriers.get(old.domain, immutables.Map()).get(old.host, 0) - 1
            carriers = _set_count(carriers, old.domain, old.host, count)
        if new is not None:
            by_host = by_host.set(new.host, by_host.get(new.host, immutables.Map()).set(new.id, new.domain))
            by_domain = by_domain.set(new.domain,
                                      by_domain.get(new.domain, immutables.Map()).set(new.id, new.host))
            count = carriers.get(new.domain, immutables.Map()).get(new.host, 0) + 1
            carriers = _set_count(carriers, new.domain, new.host, count)
        return Placement(by_host, by_domain, carriers)

    def local_domains(self, hosts) -> frozenset[str]:
        """Domains with a vport on one of ``hosts``."""
        out: set[str] = set()
        for host in hosts:
            out.update(self.by_host.get(host, {}).values())
        return frozenset(out)

    def carriers_of(self, domains) -> frozenset[str]:
        """Hosts with a vport in one of ``domains`` (hosts of vports without a host excluded)."""
        out: set[str] = set()
        for domain in domains:
            out.update(h for h in self.carriers.get(domain, {}) if h)
        return frozenset(out)

    @classmethod
    def of(cls, vports) -> Placement:
        """The placement of a collection of vports (a rebuild)."""
        placement = cls()
        for vport in vports:
            placement = placement.moved(None, vport)
        return placement


def _remove_member(index: immutables.Map, key, member) -> immutables.Map:
    members = index.get(key)
    if members is None or member not in members:
        return index
    members = members.delete(member)
    return index.set(key, members) if len(members) else index.delete(key)


def _set_count(counts: immutables.Map, domain, host, count: int) -> immutables.Map:
    hosts = counts.get(domain, immutables.Map())
    hosts = hosts.set(host, count) if count > 0 else discard(hosts, host)
    return counts.set(domain, hosts) if len(hosts) else discard(counts, domain)
