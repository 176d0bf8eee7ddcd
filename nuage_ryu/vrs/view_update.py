"""A host's view updated per object: the next ``HostView`` from the last one and what changed.

``from_directory`` maps a whole directory snapshot to a view: a pass over the host's share.
An agent whose share holds thousands of vports then pays that pass (and the compiler's pass over
every owner's inputs) for each change, however small. ``update_view`` instead takes the ids the
directory's mirror says changed since the snapshot of the last view
(``DirectoryState.changes_since``) and copies the last view with only those objects replaced,
and returns with it the ``ViewDelta``: which of the view's objects differ, that the compiler
(``FlowCompiler.update``) turns into the owners to recompile.

It answers None -- build the whole view -- whenever the change is not local to a few objects:
the changes are not known, the set of domains present on the host changes (a first or last
local vport of a domain, a domain row arriving), the VXLAN port, the external uplink or the host
name changed. ``ViewIndex`` holds the lookups by domain, host, subnet and policy group that the
compiler needs to go from a changed object to the owners it feeds; it is immutable (persistent
maps), built once for a whole view and then updated with each delta.

Pure: no I/O. ``tests/unit/test_view_update.py`` checks, on random change sequences, that the
view, the compiler's fingerprints and its flows are exactly what a full rebuild gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import immutables

from nuage_ryu.vrs.view import (
    AclRule,
    ExternalUplink,
    Host,
    HostView,
    LocalPort,
    view_domain,
    view_group,
    view_rule,
    view_subnet,
    view_vport,
)

EMPTY = immutables.Map()


@dataclass(frozen=True)
class ViewDelta:
    """Ids of the view's objects that were added, removed or changed, per map of ``HostView``
    (hosts by name, local ports by vport id)."""

    domains: frozenset[str] = frozenset()
    subnets: frozenset[str] = frozenset()
    vports: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    local_ports: frozenset[str] = frozenset()
    policygroups: frozenset[str] = frozenset()
    acl_rules: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return any((self.domains, self.subnets, self.vports, self.hosts, self.local_ports, self.policygroups,
                    self.acl_rules))


# ---- lookups by domain, host, subnet, group --------------------------------------------------------


def _add(index: immutables.Map, key, member) -> immutables.Map:
    return index.set(key, index.get(key, EMPTY).set(member, True))


def _remove(index: immutables.Map, key, member) -> immutables.Map:
    members = index.get(key)
    if members is None or member not in members:
        return index
    members = members.delete(member)
    return index.set(key, members) if len(members) else index.delete(key)


def _rule_groups(rule: AclRule) -> set[str]:
    return {ep.id for ep in (rule.source, rule.destination) if ep.type == "policygroup" and ep.id}


class ViewIndex:
    """The view's objects by what they belong to (persistent maps: key -> {id: True}).

    Keyed by the objects' own attributes whether or not the object they name exists (a vport
    naming a policy group not in the view yet is listed under it), so that an object arriving
    finds what depends on it."""

    __slots__ = ("vports_by_domain", "vports_by_host", "vports_by_subnet", "subnets_by_domain",
                 "rules_by_domain", "rules_by_group", "members_named")

    def __init__(self) -> None:
        self.vports_by_domain = self.vports_by_host = self.vports_by_subnet = EMPTY
        self.subnets_by_domain = self.rules_by_domain = self.rules_by_group = self.members_named = EMPTY

    @classmethod
    def of(cls, view: HostView) -> ViewIndex:
        """The index of a whole view."""
        idx = cls()
        return idx.updated(HostView(view.host_name, view.tunnel_port_ofport), view,
                           ViewDelta(subnets=frozenset(view.subnets), vports=frozenset(view.vports),
                                     acl_rules=frozenset(view.acl_rules)))

    def updated(self, old: HostView, new: HostView, delta: ViewDelta) -> ViewIndex:
        """The index of ``new``, this being the index of ``old`` and ``delta`` their difference."""
        out = ViewIndex()
        vbd, vbh, vbs, named = self.vports_by_domain, self.vports_by_host, self.vports_by_subnet, self.members_named
        for vid in delta.vports:
            before, after = old.vports.get(vid), new.vports.get(vid)
            if before is not None:
                vbd, vbh = _remove(vbd, before.domain_id, vid), _remove(vbh, before.host, vid)
                vbs = _remove(vbs, before.subnet_id, vid)
                for g in before.policygroups:
                    named = _remove(named, g, vid)
            if after is not None:
                vbd, vbh = _add(vbd, after.domain_id, vid), _add(vbh, after.host, vid)
                vbs = _add(vbs, after.subnet_id, vid)
                for g in after.policygroups:
                    named = _add(named, g, vid)
        sbd = self.subnets_by_domain
        for sid in delta.subnets:
            before, after = old.subnets.get(sid), new.subnets.get(sid)
            if before is not None:
                sbd = _remove(sbd, before.domain_id, sid)
            if after is not None:
                sbd = _add(sbd, after.domain_id, sid)
        rbd, rbg = self.rules_by_domain, self.rules_by_group
        for rid in delta.acl_rules:
            before, after = old.acl_rules.get(rid), new.acl_rules.get(rid)
            if before is not None:
                rbd = _remove(rbd, before.domain_id, rid)
                for g in _rule_groups(before):
                    rbg = _remove(rbg, g, rid)
            if after is not None:
                rbd = _add(rbd, after.domain_id, rid)
                for g in _rule_groups(after):
                    rbg = _add(rbg, g, rid)
        out.vports_by_domain, out.vports_by_host, out.vports_by_subnet, out.members_named = vbd, vbh, vbs, named
        out.subnets_by_domain, out.rules_by_domain, out.rules_by_group = sbd, rbd, rbg
        return out


def view_index(view: HostView) -> ViewIndex:
    """The view's index: the one ``update_view`` carried over, else built once for this view."""
    idx = view.__dict__.get("_view_index")
    if idx is None:
        idx = ViewIndex.of(view)
        view.__dict__["_view_index"] = idx  # a view is immutable: its index never goes stale
    return idx


# ---- the update -------------------------------------------------------------------------------------


def _present_directory_domains(state, host_name: str) -> frozenset[str] | None:
    """Domains of the host's vports in the snapshot (what ``from_directory`` calls present),
    from the mirror's placement index; None without one (no cheap way: build the whole view)."""
    placement = state.placement
    if placement is None:
        return None
    return frozenset(placement.by_host.get(host_name, EMPTY).values())


def update_view(old: HostView, old_state, state, ofports: Mapping[str, int], tunnel_port_ofport: int | None,
                external: ExternalUplink | None) -> tuple[HostView, ViewDelta] | None:
    """The view ``from_directory(state, ...)`` would build, from ``old`` (built from ``old_state``)
    and the changes between the snapshots; None when a whole rebuild is needed (module docstring)."""
    if tunnel_port_ofport != old.tunnel_port_ofport or external != old.external:
        return None
    changes = state.changes_since(old_state)
    if changes is None:
        return None
    present = _present_directory_domains(state, old.host_name)
    if present is None or present != _present_directory_domains(old_state, old.host_name):
        return None
    domains = _replace(old.domains, changes.get("domains", ()), state.domains, view_domain,
                       lambda d: d.id in present)
    if domains is not None and frozenset(d for d in present if d in domains[0]) != old.present_domains():
        return None  # a present domain's row came or went: every owner of it changes
    subnets = _replace(old.subnets, changes.get("subnets", ()), state.subnets, view_subnet,
                       lambda s: s.domain in present)
    vports = _replace(old.vports, changes.get("vports", ()), state.vports, view_vport,
                      lambda v: v.domain in present)
    groups = _replace(old.policygroups, changes.get("policygroups", ()), state.policygroups, view_group,
                      lambda g: g.domain in present)
    rules = _replace(old.acl_rules, changes.get("acls", ()), state.acls, view_rule,
                     lambda a: a.domain in present)
    hosts = _replace_hosts(old, old_state, state, changes.get("hosts", ()))
    local = _replace_local_ports(old.local_ports, ofports)
    parts = (domains, subnets, vports, hosts, local, groups, rules)
    delta = ViewDelta(*(p[1] if p is not None else frozenset() for p in parts))
    if not delta:
        return old, delta
    maps = [p[0] if p is not None else current for p, current in
            zip(parts, (old.domains, old.subnets, old.vports, old.hosts, old.local_ports, old.policygroups,
                        old.acl_rules), strict=True)]
    new = HostView(old.host_name, old.tunnel_port_ofport, *maps, external=old.external)
    new.__dict__["_present"] = old.present_domains()  # checked unchanged above
    new.__dict__["_view_index"] = view_index(old).updated(old, new, delta)
    return new, delta


def _replace(current: Mapping, ids: Iterable[str], source: Mapping, convert, keep) -> tuple[Mapping, frozenset] | None:
    """``current`` with the objects ``ids`` taken again from ``source``; None if none differs."""
    changed = []
    for oid in ids:
        obj = source.get(oid)
        new = convert(obj) if obj is not None and keep(obj) else None
        if new != current.get(oid):
            changed.append((oid, new))
    if not changed:
        return None
    # A persistent map: replacing a few objects costs O(log n), not a copy of the whole map.
    with (current if isinstance(current, immutables.Map) else immutables.Map(dict(current))).mutate() as out:
        for oid, new in changed:
            if new is None:
                del out[oid]
            else:
                out[oid] = new
        return out.finish(), frozenset(oid for oid, _ in changed)


def _replace_hosts(old: HostView, old_state, state, ids: Iterable[str]) -> tuple[Mapping, frozenset] | None:
    names = set()
    for hid in ids:
        for snapshot in (old_state, state):
            host = snapshot.hosts.get(hid)
            if host is not None:
                names.add(host.name)
    if not names:
        return None
    # The view keys hosts by name, the snapshot by row id: look the names up in the new snapshot.
    by_name = {state.hosts[hid].name: state.hosts[hid] for hid in ids if hid in state.hosts}
    changed = []
    for name in names:
        host = by_name.get(name) or state.host_by_name(name)
        new = Host(host.name, host.tunnel_ip) if host is not None and host.tunnel_ip else None
        if new != old.hosts.get(name):
            changed.append((name, new))
    if not changed:
        return None
    out = dict(old.hosts)
    for name, new in changed:
        if new is None:
            out.pop(name, None)
        else:
            out[name] = new
    return MappingProxyType(out), frozenset(name for name, _ in changed)


def _replace_local_ports(current: Mapping[str, LocalPort],
                         ofports: Mapping[str, int]) -> tuple[Mapping, frozenset] | None:
    changed = [vid for vid, port in ofports.items() if (lp := current.get(vid)) is None or lp.ofport != port]
    changed += [vid for vid in current if vid not in ofports]
    if not changed:
        return None
    return MappingProxyType({vid: LocalPort(vid, port) for vid, port in ofports.items()}), frozenset(changed)
