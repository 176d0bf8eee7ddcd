"""Names for the agent's Prometheus labels, looked up in its directory snapshot (pure).

Series carry an object's name *and* its id (docs/metrics.md): the name for people and dashboards,
the id because names may change and are unique only within their parent. An object the snapshot
does not hold (deleted between a counter read and a scrape) is labelled with its id as name.

Cardinality: every label set is bounded by objects of the host's own share of the directory —
rules and default actions of the domains present on the host, its own vports, its policy groups;
name labels are functions of the id labels, so they add no series of their own (a rename replaces
a series instead of adding one).
"""

from __future__ import annotations

from nuage_ryu.directory.model import DirectoryState

DEFAULT_RULE = "default"  # rule / rule_id of a domain's default action


def domain_labels(state: DirectoryState | None, domain_id: str) -> tuple[str, str, str]:
    """(enterprise, domain, domain_id) names of a domain."""
    domain = state.domains.get(domain_id) if state is not None else None
    if domain is None:
        return "", domain_id, domain_id
    enterprise = state.enterprises.get(domain.enterprise)
    return (enterprise.name if enterprise is not None else domain.enterprise), domain.name, domain_id


def rule_labels(state: DirectoryState | None, rule_id: str) -> tuple[str, str, str]:
    """(rule, rule_id, priority) of an ACL rule: its name, or ``priority N`` when it has none.

    The default action is ``("default", "default", "")``."""
    if rule_id == DEFAULT_RULE:
        return DEFAULT_RULE, DEFAULT_RULE, ""
    acl = state.acls.get(rule_id) if state is not None else None
    if acl is None:
        return rule_id, rule_id, ""
    return (acl.name or f"priority {acl.priority}"), rule_id, str(acl.priority)


def vport_labels(state: DirectoryState | None, vport_id: str) -> tuple[str, str, str, str, str]:
    """(enterprise, domain, domain_id, vport, vport_id) of a vport."""
    vport = state.vports.get(vport_id) if state is not None else None
    if vport is None:
        return "", "", "", vport_id, vport_id
    return (*domain_labels(state, vport.domain), vport.name, vport_id)
