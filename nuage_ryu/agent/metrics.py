"""Prometheus metrics of a VRS agent.

The registry is passed in (Faucet's habit), so tests use a fresh one. Rule
counters are absolute values read from OVS, so they are exposed by a custom
collector from the latest snapshot instead of being incremented here.

Metrics:
  nuage_acl_packets_total{domain,rule,action,host}   packets a rule decided (see counters.py)
  nuage_acl_bytes_total{domain,rule,action,host}     bytes of those packets
      rule="default" is the domain's default action (its drops, when it is deny)
  nuage_policy_apply_seconds{host}                    directory update seen -> bundle committed
  nuage_flows{host}                                    desired flows of the bridge
  nuage_bundles_total{host}                            bundles committed
  nuage_bridge_connected{host}                         1 while the bridge is connected
  nuage_agent_startup_seconds{host,milestone}          seconds from process start to each start-up
      milestone, up to the bridge's first confirmed table (see startup.py)
  nuage_attach_phase_seconds{host,operation,phase}     one phase of an attach/detach (attach/timing.py):
      attach: directory, veth, netns, ovsdb, flows, status; detach: directory, ovsdb, veth
  nuage_attach_seconds{host,operation,outcome}         a whole attach/detach as its plugin waited for it
      (outcome: ok, or the error kind: invalid, not_found, conflict, unavailable, timeout, failed)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from nuage_ryu.agent.counters import CounterKey, RuleCounter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)


class _RuleCounterCollector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_host: dict[str, dict[CounterKey, RuleCounter]] = {}

    def update(self, host: str, counters: Mapping[CounterKey, RuleCounter]) -> None:
        with self._lock:
            self._by_host[host] = dict(counters)

    def snapshot(self) -> dict[str, dict[CounterKey, RuleCounter]]:
        with self._lock:
            return {h: dict(c) for h, c in self._by_host.items()}

    def collect(self):
        labels = ["domain", "rule", "action", "host"]
        packets = CounterMetricFamily("nuage_acl_packets", "Packets decided by an ACL rule", labels=labels)
        nbytes = CounterMetricFamily("nuage_acl_bytes", "Bytes of the packets decided by an ACL rule",
                                     labels=labels)
        for host, counters in self.snapshot().items():
            for key, counter in sorted(counters.items(), key=lambda kv: (kv[0].domain_id, kv[0].rule_id)):
                values = [key.domain_id, key.rule_id, key.action, host]
                packets.add_metric(values, counter.packets)
                nbytes.add_metric(values, counter.bytes)
        yield packets
        yield nbytes


class AgentMetrics:
    """The agent's metrics on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rules = _RuleCounterCollector()
        registry.register(self.rules)
        self.policy_apply = Histogram("nuage_policy_apply_seconds",
                                      "Directory update seen by the agent -> bundle committed on the bridge",
                                      ["host"], buckets=LATENCY_BUCKETS, registry=registry)
        self.flows = Gauge("nuage_flows", "Desired flows of the bridge", ["host"], registry=registry)
        self.bundles = Gauge("nuage_bundles_total", "Bundles committed on the bridge", ["host"],
                             registry=registry)
        self.connected = Gauge("nuage_bridge_connected", "1 while the bridge is connected", ["host"],
                               registry=registry)
        self.startup = Gauge("nuage_agent_startup_seconds",
                             "Seconds from process start to a start-up milestone (first_table: converged)",
                             ["host", "milestone"], registry=registry)
        self.attach_phase = Histogram("nuage_attach_phase_seconds",
                                      "One phase of a container attach or detach on this host",
                                      ["host", "operation", "phase"], buckets=LATENCY_BUCKETS, registry=registry)
        self.attach_total = Histogram("nuage_attach_seconds",
                                      "A whole container attach or detach, as the plugin waited for it",
                                      ["host", "operation", "outcome"], buckets=LATENCY_BUCKETS, registry=registry)

    def observe_attach(self, host: str, operation: str, phases: Mapping[str, float], total: float,
                       outcome: str) -> None:
        """Record one attach/detach: each phase it went through, and its total with its outcome."""
        for phase, seconds in phases.items():
            self.attach_phase.labels(host, operation, phase).observe(seconds)
        self.attach_total.labels(host, operation, outcome).observe(total)
