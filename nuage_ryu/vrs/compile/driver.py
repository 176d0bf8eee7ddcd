"""The incremental flow compiler: HostView -> the flows one bridge should have.

Flows are grouped by *owner* (the static skeleton, a domain, a subnet, a vport, an ACL rule and
its members): each owner's flows depend only on a small part of the view, its *inputs*.
``FlowCompiler`` keeps every owner's inputs and flows, and on ``update(new_view)`` recompiles only
the owners whose inputs changed, returning the ``FlowDiff`` to send. Every flow carries its owner's
cookie. Which owners exist is the explicit list ``OWNER_KINDS``, one entry per compiler module.

Only domains *present* on the host (at least one vport here) produce flows, so a host's flow count
follows the vports of its own domains, not the whole system.

Two owners may produce flows with the same OpenFlow identity only when both are pure
``conjunction`` flows (policy clause flows shared by several rules); such flows are merged into one
flow carrying all their conjunction actions (``base.merge_same_key``), because OVS would otherwise
keep just the last one added and silently break the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from nuage_ryu.vrs.compile.acl import ACL_OWNERS
from nuage_ryu.vrs.compile.base import FlowConflict, Owner, OwnerKind, OwnerTag, merge_same_key
from nuage_ryu.vrs.compile.domain import DOMAIN_OWNERS, SUBNET_OWNERS
from nuage_ryu.vrs.compile.external import EXTERNAL_DOMAIN_OWNERS, EXTERNAL_STATIC_OWNERS, EXTERNAL_VPORT_OWNERS
from nuage_ryu.vrs.compile.static import STATIC_OWNERS
from nuage_ryu.vrs.compile.vport import VPORT_OWNERS
from nuage_ryu.vrs.flow import Flow, FlowDiff
from nuage_ryu.vrs.view import HostView
from nuage_ryu.vrs.view_update import ViewDelta

OWNER_KINDS: tuple[OwnerKind, ...] = (STATIC_OWNERS, DOMAIN_OWNERS, SUBNET_OWNERS, VPORT_OWNERS, ACL_OWNERS,
                                      EXTERNAL_STATIC_OWNERS, EXTERNAL_DOMAIN_OWNERS, EXTERNAL_VPORT_OWNERS)


class FlowCompiler:
    """Incremental compiler for one bridge: keeps each owner's inputs and flows between updates."""

    def __init__(self, kinds: Sequence[OwnerKind] = OWNER_KINDS) -> None:
        self.kinds = tuple(kinds)
        self._compilers: dict[OwnerTag, OwnerKind] = {tag: kind for kind in self.kinds for tag in kind.tags}
        self.view: HostView | None = None
        self._inputs: dict[Owner, object] = {}
        self._owned: dict[Owner, list[Flow]] = {}
        self._by_key: dict[tuple, dict[Owner, Flow]] = {}
        self.flows: dict[tuple, Flow] = {}  # the merged desired flows, by OpenFlow identity
        self.conflicts: list[tuple[tuple, list[Owner]]] = []  # key clashes found by the last update
        self.recompiled: list[Owner] = []  # owners the last update recompiled (for tests and logs)

    def update(self, view: HostView, delta: ViewDelta | None = None) -> FlowDiff:
        """Switch to ``view``; returns what must change in the bridge (only changed flows).

        ``delta``: what differs from the last view (``view_update.update_view``): only the owners
        it may affect are fingerprinted again, instead of every owner of the view, so a change
        costs what it touches rather than the size of the host's share. None: compare them all.
        """
        if delta is None or self.view is None:
            changed, gone = self._compare_all(view)
        else:
            changed, gone = self._compare_affected(self.view, view, delta)
        return self._apply(view, changed, gone)

    def _compare_all(self, view: HostView) -> tuple[list[Owner], list[Owner]]:
        present = view.present_domains()
        inputs: dict[Owner, object] = {}
        for kind in self.kinds:
            inputs.update(kind.inputs(view, present))
        old = self._inputs
        missing = object()
        changed = [(o, fp) for o, fp in inputs.items() if old.get(o, missing) != fp]
        gone = [o for o in old if o not in inputs]
        self._inputs = inputs
        return [o for o, _fp in changed], gone

    def _compare_affected(self, old_view: HostView, view: HostView,
                          delta: ViewDelta) -> tuple[list[Owner], list[Owner]]:
        present = view.present_domains()
        old = self._inputs
        missing = object()
        changed: list[Owner] = []
        gone: list[Owner] = []
        for kind in self.kinds:
            if kind.affected is None or kind.inputs_of is None:
                fresh = kind.inputs(view, present)
                candidates = set(fresh) | {o for o in old if o[0] in kind.tags}
            else:
                candidates = set(kind.affected(old_view, view, delta))
                fresh = kind.inputs_of(view, present, candidates)
            for owner in candidates:
                fp = fresh.get(owner, missing)
                if fp is missing:
                    if owner in old:
                        gone.append(owner)
                        del old[owner]
                elif old.get(owner, missing) != fp:
                    changed.append(owner)
                    old[owner] = fp
        return changed, gone

    def _apply(self, view: HostView, changed: list[Owner], gone: list[Owner]) -> FlowDiff:
        touched: set[tuple] = set()
        own_conflicts: list[tuple[tuple, list[Owner]]] = []
        for owner in gone:
            touched |= self._drop(owner)
        for owner in changed:
            touched |= self._drop(owner)
            new = self._compilers[owner[0]].compile(view, owner)
            self._owned[owner] = new
            for flow in new:
                holders = self._by_key.setdefault(flow.key, {})
                if owner in holders:
                    # Two of its own flows OVS takes for one (a rule's 0.0.0.0/0 clause and its
                    # catch-all clause): both count, as two owners' flows would.
                    try:
                        flow = merge_same_key((holders[owner], flow))
                    except FlowConflict as clash:
                        own_conflicts.append((flow.key, [owner]))
                        flow = clash.args[0]
                holders[owner] = flow
                touched.add(flow.key)
        self.view = view
        self.recompiled = changed
        self.conflicts = own_conflicts
        diff = FlowDiff()
        for key in touched:
            before = self.flows.get(key)
            contributors = self._by_key.get(key)
            if not contributors:
                if before is not None:
                    diff.delete.append(before)
                    del self.flows[key]
                continue
            after = self._merge(key, contributors)
            if before is None or before.actions != after.actions or before.cookie != after.cookie:
                diff.add.append(after)
            self.flows[key] = after
        # Stable, cheap order for logs and bundles (comparing whole matches is slow at 100k flows).
        diff.add.sort(key=lambda f: (f.table, -f.priority))
        diff.delete.sort(key=lambda f: (f.table, -f.priority))
        return diff

    def _drop(self, owner: Owner) -> set[tuple]:
        keys = set()
        for flow in self._owned.pop(owner, ()):
            holders = self._by_key.get(flow.key)
            if holders is not None:
                holders.pop(owner, None)
                if not holders:
                    del self._by_key[flow.key]
            keys.add(flow.key)
        return keys

    def _merge(self, key: tuple, contributors: dict[Owner, Flow]) -> Flow:
        ordered = [contributors[o] for o in sorted(contributors)]
        try:
            return merge_same_key(ordered)
        except FlowConflict as clash:
            self.conflicts.append((key, sorted(contributors)))
            return clash.args[0]

    def owned_by(self, owner: Owner) -> list[Flow]:
        """The flows an owner produced in the last update (before merging)."""
        return list(self._owned.get(owner, ()))

    def desired(self) -> list[Flow]:
        """All desired flows, merged, in a stable order."""
        return sorted(self.flows.values(), key=_stable_order)


def _stable_order(flow: Flow) -> tuple:
    # Not flow.key itself: MatchFields of one field can mix an exact value (mask None) and a masked
    # one, which do not compare.
    return (flow.table, -flow.priority, tuple((m.name, str(m.value), str(m.mask)) for m in flow.match))


def compile_host(view: HostView) -> list[Flow]:
    """All flows for one bridge (non-incremental convenience over ``FlowCompiler``)."""
    fc = FlowCompiler()
    fc.update(view)
    return fc.desired()
