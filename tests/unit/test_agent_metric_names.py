"""The agent's Prometheus series carry names and ids; the Grafana dashboard asks only for what it exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

import nuage_ryu
from nuage_ryu.agent.counters import DEFAULT_RULE_ID, CounterKey, RuleCounter
from nuage_ryu.agent.drops import FROM_VPORT, TO_VPORT, DropKey
from nuage_ryu.agent.metrics import AgentMetrics
from nuage_ryu.directory import model

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "nuage-ryu.json"


def directory() -> model.DirectoryState:
    vport = lambda vid, name, host, status, groups=(): model.VPort(  # noqa: E731
        vid, "s1", "d1", name, "10.0.0.2", "02:00:00:00:00:02", "10.0.0.1", host=host, status=status,
        policygroups=frozenset(groups))
    return model.DirectoryState(
        enterprises={"e1": model.Enterprise("e1", "acme")},
        domains={"d1": model.Domain("d1", "e1", "shop", 1001, 1, "02:aa:00:00:00:01")},
        policygroups={"g1": model.PolicyGroup("g1", "d1", "web")},
        acls={"r1": model.ACL("r1", "d1", 10, action="deny", name="no-ping"),
              "r2": model.ACL("r2", "d1", 20)},
        vports={"v1": vport("v1", "web-1", "h1", "up", ["g1"]), "v2": vport("v2", "db-1", "h1", "down"),
                "v3": vport("v3", "elsewhere", "h2", "up", ["g1"])},
    )


def live_metrics() -> AgentMetrics:
    """An exporter as the agent drives it: a snapshot, rule counters, drops, a bundle, an attach."""
    m = AgentMetrics(CollectorRegistry())
    m.set_directory_probe(lambda: True)
    m.rules.set_directory("h1", directory())
    m.rules.update("h1", {CounterKey("d1", "r1", "deny"): RuleCounter(4, 400),
                          CounterKey("d1", "r2", "allow"): RuleCounter(1, 60),
                          CounterKey("d1", DEFAULT_RULE_ID, "deny"): RuleCounter(2, 120)})
    m.rules.update_drops("h1", {DropKey("v1", FROM_VPORT): RuleCounter(3, 252),
                                DropKey("v1", TO_VPORT): RuleCounter(0, 0)})
    m.policy_apply.labels("h1").observe(0.02)
    m.flows.labels("h1").set(120)
    m.bundles.labels("h1").set(3)
    m.connected.labels("h1").set(1)
    m.last_sync.labels("h1").set(1.7e9)
    m.last_update.labels("h1").set(1.7e9)
    m.startup.labels("h1", "first_table").set(0.5)
    m.observe_attach("h1", "attach", {"veth": 0.01}, 0.1, "ok")
    return m


def samples(metrics: AgentMetrics) -> dict[str, list[dict]]:
    """sample name -> label sets, collected from the registry (what /metrics shows)."""
    out: dict[str, list[dict]] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            out.setdefault(s.name, []).append(dict(s.labels, _value=s.value))
    return out


def one(series: list[dict], **labels) -> dict:
    found = [s for s in series if all(s.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, series)
    return found[0]


def test_rule_series_carry_enterprise_domain_and_rule_names_and_ids():
    acl = samples(live_metrics())["nuage_acl_packets_total"]
    named = one(acl, rule_id="r1")
    assert named == {"host": "h1", "enterprise": "acme", "domain": "shop", "domain_id": "d1", "rule": "no-ping",
                     "rule_id": "r1", "priority": "10", "action": "deny", "_value": 4}
    assert one(acl, rule_id="r2")["rule"] == "priority 20"  # no name: its priority says which
    assert one(acl, rule_id=DEFAULT_RULE_ID)["rule"] == "default"


def test_vport_drop_series_carry_names_and_direction():
    drops = samples(live_metrics())["nuage_vport_policy_drops_total"]
    assert one(drops, vport="web-1", direction="from_vport") == {
        "host": "h1", "enterprise": "acme", "domain": "shop", "domain_id": "d1", "vport": "web-1",
        "vport_id": "v1", "direction": "from_vport", "_value": 3}
    assert one(drops, vport="web-1", direction="to_vport")["_value"] == 0
    assert one(samples(live_metrics())["nuage_vport_policy_drop_bytes_total"], direction="from_vport")["_value"] == 252


def test_health_and_group_gauges_come_from_the_hosts_own_share():
    s = samples(live_metrics())
    assert one(s["nuage_vports"], status="up")["_value"] == 1
    assert one(s["nuage_vports"], status="down")["_value"] == 1
    assert one(s["nuage_policygroup_vports"], policygroup="web") == {
        "host": "h1", "enterprise": "acme", "domain": "shop", "domain_id": "d1", "policygroup": "web",
        "policygroup_id": "g1", "_value": 1}  # v3 is on h2: not counted here
    assert one(s["nuage_directory_connected"], host="h1")["_value"] == 1
    assert one(s["nuage_agent_info"], host="h1")["version"] == nuage_ryu.__version__


def test_a_deleted_object_is_labelled_by_its_id():
    m = live_metrics()
    m.rules.update("h1", {CounterKey("gone-domain", "gone-rule", "allow"): RuleCounter(1, 1)})
    acl = samples(m)["nuage_acl_packets_total"]
    assert one(acl, rule_id="gone-rule")["rule"] == "gone-rule"
    assert one(acl, rule_id="gone-rule")["domain"] == "gone-domain"


# ---- the dashboard -------------------------------------------------------------------------------

FUNCTIONS = {"sum", "min", "max", "avg", "count", "topk", "bottomk", "rate", "irate", "increase", "delta",
             "histogram_quantile", "time", "clamp_min", "clamp_max", "label_values", "abs", "sort_desc"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}


def expressions(dashboard: dict) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and templating queries."""
    out = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    out += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return out


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names it filters on) of every selector; grouping labels as ("", labels)."""
    values_of = re.fullmatch(r"\s*label_values\((.+),\s*([A-Za-z_]\w*)\)\s*", expr)
    if values_of:  # Grafana's templating query: the metric selector and the label it lists
        expr = f"max by ({values_of.group(2)}) ({values_of.group(1)})"
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: no identifiers inside
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    out = []
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        out.append(("", {g.strip() for g in grouping.split(",") if g.strip()}))
    expr = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", expr)
    for name, matchers in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", expr):
        if name in FUNCTIONS or name in KEYWORDS:
            continue
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
        out.append((name, labels))
    return out


def test_every_dashboard_query_names_only_exported_metrics_and_their_labels():
    exported = samples(live_metrics())
    labels_of = {name: {k for s in series for k in s if k != "_value"} for name, series in exported.items()}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 10
    used = set()
    for expr in exprs:
        found = selectors(expr)
        metrics = [(n, ls) for n, ls in found if n]
        assert metrics, f"no metric in {expr!r}"
        known = set()
        for name, labels in metrics:
            assert name in exported, f"{expr!r} asks for {name!r}, which the agent does not export"
            assert labels <= labels_of[name], f"{expr!r}: {name} has no label {labels - labels_of[name]}"
            known |= labels_of[name]
            used.add(name)
        for _, grouping in (f for f in found if not f[0]):
            assert grouping <= known, f"{expr!r} groups by {grouping - known}, not labels of its metrics"
    # the panels the dashboard promises
    for wanted in ("nuage_acl_packets_total", "nuage_vport_policy_drops_total", "nuage_policy_apply_seconds_bucket",
                   "nuage_bridge_connected", "nuage_directory_connected", "nuage_vports",
                   "nuage_bridge_last_sync_timestamp_seconds"):
        assert wanted in used, wanted


def test_the_query_checker_refuses_an_unknown_metric_or_label():
    exported = samples(live_metrics())
    assert selectors('sum by (domain) (rate(nuage_acl_pakets_total{host=~"$host"}[5m]))')[1][0] not in exported
    (name, labels), = [s for s in selectors('nuage_vports{colour="red"}') if s[0]]
    assert name in exported and "colour" in labels
