"""Per-rule policy counters from flow statistics (pure).

Every ACL verdict flow carries its rule's cookie (``compile.rule_cookie``) and
every default-action flow its domain's (``compile.default_action_cookie``). The agent
periodically reads the flow statistics of INGRESS_POLICY — the table where the
*sending* host decides — so that a packet is counted once in the whole system
even when it crosses hosts (the receiving host's EGRESS_POLICY re-evaluates it
but is not counted). What a counter counts: the packets a rule *decided*: for a
stateful rule, the first packet of each connection (the rest are conntrack
``+est`` and skip the rules); for a stateless rule, every packet.

``CounterIndex`` maps cookies back to rules/domains (from the host's view);
``aggregate`` sums flow-stats entries into ``RuleCounter`` records;
``directory_report`` puts them in the shape the directory stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nuage_ryu.vrs.compile import default_action_cookie, rule_cookie
from nuage_ryu.vrs.pipeline import INGRESS_AUDIT, INGRESS_POLICY
from nuage_ryu.vrs.view import HostView

COUNTED_TABLE = INGRESS_POLICY.number
# ... and the sending side's audit table: an audit rule counts the packets it would have decided there
# (docs/policy.md, "Audit mode"); its own verdict flows carry the rule's cookie, nothing else there does.
COUNTED_TABLES = (COUNTED_TABLE, INGRESS_AUDIT.number)
DEFAULT_RULE_ID = "default"  # rule id under which a domain's default action is reported


@dataclass(frozen=True)
class CounterKey:
    domain_id: str
    rule_id: str  # an ACL id, or DEFAULT_RULE_ID
    action: str  # allow | deny


@dataclass
class RuleCounter:
    packets: int = 0
    bytes: int = 0


class CounterIndex:
    """cookie -> CounterKey for the rules and default actions of a host's domains."""

    def __init__(self, view: HostView | None) -> None:
        self.by_cookie: dict[int, CounterKey] = {}
        if view is None:
            return
        for rule in view.acl_rules.values():
            self.by_cookie[rule_cookie(rule.id)] = CounterKey(
                rule.domain_id, rule.id, rule.action)
        for domain in view.domains.values():
            self.by_cookie[default_action_cookie(domain.id)] = CounterKey(
                domain.id, DEFAULT_RULE_ID, domain.default_action)


def aggregate(index: CounterIndex, entries: Iterable[tuple[int, int, int, int]]) -> dict[CounterKey, RuleCounter]:
    """Sum flow-stats ``(table, cookie, packets, bytes)`` entries of the counted table per rule."""
    out: dict[CounterKey, RuleCounter] = {key: RuleCounter() for key in index.by_cookie.values()}
    for table, cookie, packets, nbytes in entries:
        if table not in COUNTED_TABLES:
            continue
        key = index.by_cookie.get(cookie)
        if key is None:
            continue
        counter = out[key]
        counter.packets += packets
        counter.bytes += nbytes
    return out


def directory_report(totals: Mapping[CounterKey, RuleCounter]
                     ) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """``aggregate``'s totals as the directory's ``report_counters`` wants them.

    Returns ({rule id: (packets, bytes)}, {domain id: (packets, bytes) of its default action}).
    """
    rules, defaults = {}, {}
    for key, counter in totals.items():
        if key.rule_id == DEFAULT_RULE_ID:
            defaults[key.domain_id] = (counter.packets, counter.bytes)
        else:
            rules[key.rule_id] = (counter.packets, counter.bytes)
    return rules, defaults
