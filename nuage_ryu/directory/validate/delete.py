"""Planning a delete: what blocks it (``DEPENDENTS``), what a cascade takes along (``CHILDREN``), by kind."""

from __future__ import annotations

from collections.abc import Callable

from nuage_ryu.directory.errors import Conflict
from nuage_ryu.directory.model import DirectoryState
from nuage_ryu.directory.validate.change import Change, Op
from nuage_ryu.directory.validate.check import get_object

# kind -> its direct dependents that block a non-cascading delete, as (label, object); kinds not listed
# have none
DEPENDENTS: dict[str, Callable[[DirectoryState, str], list[tuple[str, object]]]] = {
    "enterprise": lambda s, i: [("domain", d) for d in s.domains_of(i)],
    "domain": lambda s, i: ([("zone", z) for z in s.zones_of(i)]
                            + [("policygroup", p) for p in s.policygroups_of(i)]
                            + [("acl", a) for a in s.acls_of(i)]),
    "zone": lambda s, i: ([("subnet", x) for x in s.subnets_of_zone(i)]
                          + [("acl", a) for a in s.acls_referencing("zone", i)]),
    "subnet": lambda s, i: ([("vport", v) for v in s.vports_of_subnet(i)]
                            + [("acl", a) for a in s.acls_referencing("subnet", i)]),
    "policygroup": lambda s, i: ([("member vport", v) for v in s.members_of(i)]
                                 + [("acl", a) for a in s.acls_referencing("policygroup", i)]),
}

# kind -> what a cascading delete removes with it, as (kind, id). Tokens of an enterprise are not
# dependents for the user, but they always go with it; member vports are not deleted with their group.
CHILDREN: dict[str, Callable[[DirectoryState, str], list[tuple[str, str]]]] = {
    "enterprise": lambda s, i: [("domain", d.id) for d in s.domains_of(i)]
    + [("token", t.id) for t in s.tokens.values() if t.enterprise == i],
    "domain": lambda s, i: [("zone", z.id) for z in s.zones_of(i)]
    + [("policygroup", p.id) for p in s.policygroups_of(i)] + [("acl", a.id) for a in s.acls_of(i)],
    "zone": lambda s, i: [("subnet", x.id) for x in s.subnets_of_zone(i)]
    + [("acl", a.id) for a in s.acls_referencing("zone", i)],
    "subnet": lambda s, i: [("vport", v.id) for v in s.vports_of_subnet(i)]
    + [("acl", a.id) for a in s.acls_referencing("subnet", i)],
    "policygroup": lambda s, i: [("acl", a.id) for a in s.acls_referencing("policygroup", i)],
}


def plan_delete(state: DirectoryState, kind: str, obj_id: str, cascade: bool = False) -> Change:
    """Plan a DELETE. With dependents: 409 unless ``cascade``, which deletes the whole subtree
    (and rules referencing deleted zones/subnets/groups) in the same transaction."""
    get_object(state, kind, obj_id)
    deps = DEPENDENTS[kind](state, obj_id) if kind in DEPENDENTS else []
    if deps and not cascade:
        counts: dict[str, int] = {}
        for dkind, _ in deps:
            counts[dkind] = counts.get(dkind, 0) + 1
        listing = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in counts.items())
        raise Conflict(f"{kind} {obj_id} still has {listing}; delete them first or use ?cascade=true")
    doomed: dict[str, str] = {}
    todo = [(kind, obj_id)]
    while todo:
        k, i = todo.pop()
        if i in doomed:
            continue
        doomed[i] = k
        if k in CHILDREN:
            todo.extend(CHILDREN[k](state, i))
    change = Change(result=None)
    for i, k in doomed.items():
        change.ops.append(Op("delete", k, i))
    # Memberships that surviving vports hold in deleted policy groups are removed, not the vports.
    drops: dict[str, set[str]] = {}
    for i, k in doomed.items():
        if k == "policygroup":
            for vport in state.members_of(i):
                if vport.id not in doomed:
                    drops.setdefault(vport.id, set()).add(i)
    for vid, groups in drops.items():
        change.ops.append(Op("update", "vport", vid, {"policygroups": state.vports[vid].policygroups - groups}))
    return change
