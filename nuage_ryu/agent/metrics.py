"""Prometheus metrics of a VRS agent (every metric, its labels and the dashboard: docs/metrics.md).

The registry is passed in (Faucet's habit), so tests use a fresh one. Rule and
vport drop counters are absolute values read from OVS, so they are exposed by a
custom collector from the latest reading instead of being incremented here; their
name labels are looked up at scrape time in the agent's latest directory snapshot
(``metric_labels``).

Metrics (all carry ``host``):
  nuage_acl_packets_total{enterprise,domain,domain_id,rule,rule_id,priority,action}
                                                   packets a rule decided (see counters.py);
      rule="default" (rule_id "default") is the domain's default action (its drops, when it is deny)
  nuage_acl_bytes_total{...same}                   bytes of those packets
  nuage_vport_policy_drops_total{enterprise,domain,domain_id,vport,vport_id,direction}
                                                   packets policy dropped for a local vport
      (direction: from_vport = it sent them, to_vport = they were for it; see drops.py)
  nuage_vport_policy_drop_bytes_total{...same}     bytes of those packets
  nuage_policygroup_vports{enterprise,domain,domain_id,policygroup,policygroup_id}
                                                   local vports in a policy group
  nuage_vports{status}                             local vports by status (up: flows installed)
  nuage_policy_apply_seconds                       directory update seen -> bundle committed (histogram)
  nuage_flows                                      desired flows of the bridge
  nuage_bundles_total                              bundles committed
  nuage_bridge_connected                           1 while the bridge is connected
  nuage_bridge_last_sync_timestamp_seconds         when the bridge last confirmed a flow generation
  nuage_directory_connected                        1 while the agent is connected to the directory
  nuage_directory_last_update_timestamp_seconds    when the bridge last recomputed from a directory snapshot
  nuage_agent_info{version}                        1, with the agent's version
  nuage_agent_startup_seconds{milestone}           seconds from process start to each start-up
      milestone, up to the bridge's first confirmed table (see startup.py)
  nuage_attach_phase_seconds{operation,phase}      one phase of an attach/detach (attach/timing.py):
      attach: directory, veth, netns, ovsdb, flows, status; detach: directory, ovsdb, veth
  nuage_attach_seconds{operation,outcome}          a whole attach/detach as its plugin waited for it
      (outcome: ok, or the error kind: invalid, not_found, conflict, unavailable, timeout, failed)
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

import nuage_ryu
from nuage_ryu.agent.counters import CounterKey, RuleCounter
from nuage_ryu.agent.drops import DropKey
from nuage_ryu.agent.metric_labels import domain_labels, rule_labels, vport_labels
from nuage_ryu.directory.model import DirectoryState

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
RULE_LABELS = ("host", "enterprise", "domain", "domain_id", "rule", "rule_id", "priority", "action")
DROP_LABELS = ("host", "enterprise", "domain", "domain_id", "vport", "vport_id", "direction")
GROUP_LABELS = ("host", "enterprise", "domain", "domain_id", "policygroup", "policygroup_id")


@dataclass
class _HostReadings:
    state: DirectoryState | None = None
    rules: dict[CounterKey, RuleCounter] = field(default_factory=dict)
    drops: dict[DropKey, RuleCounter] = field(default_factory=dict)


class _NamedCollector:
    """The series read from OVS and the directory, labelled with names at scrape time.

    Writers (OpenFlow handlers, the worker) replace whole values under a lock; a scrape copies the
    references and works on immutable data outside it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_host: dict[str, _HostReadings] = {}
        self.directory_connected: Callable[[], bool] | None = None  # probe set by the app

    def _host(self, host: str) -> _HostReadings:
        return self._by_host.setdefault(host, _HostReadings())

    def update(self, host: str, counters: Mapping[CounterKey, RuleCounter]) -> None:
        """The latest rule/default-action totals of a host."""
        with self._lock:
            self._host(host).rules = dict(counters)

    def update_drops(self, host: str, drops: Mapping[DropKey, RuleCounter]) -> None:
        """The latest per-vport drop totals of a host."""
        with self._lock:
            self._host(host).drops = dict(drops)

    def set_directory(self, host: str, state: DirectoryState) -> None:
        """The directory snapshot a host's bridge was last computed from (names for the labels)."""
        with self._lock:
            self._host(host).state = state

    def state_of(self, host: str) -> DirectoryState | None:
        """The snapshot last given to ``set_directory`` for ``host``."""
        with self._lock:
            readings = self._by_host.get(host)
            return readings.state if readings is not None else None

    def snapshot(self) -> dict[str, dict[CounterKey, RuleCounter]]:
        with self._lock:
            return {h: dict(r.rules) for h, r in self._by_host.items()}

    def _readings(self) -> dict[str, _HostReadings]:
        with self._lock:
            return {h: _HostReadings(r.state, dict(r.rules), dict(r.drops)) for h, r in self._by_host.items()}

    def _directory_up(self) -> bool:
        probe = self.directory_connected
        try:
            return probe is not None and bool(probe())
        except Exception:  # a store being torn down: a scrape must still answer
            return False

    def collect(self):
        readings = self._readings()
        packets = CounterMetricFamily("nuage_acl_packets", "Packets decided by an ACL rule (or a default action)",
                                      labels=RULE_LABELS)
        nbytes = CounterMetricFamily("nuage_acl_bytes", "Bytes of the packets decided by an ACL rule",
                                     labels=RULE_LABELS)
        drops = CounterMetricFamily("nuage_vport_policy_drops", "Packets dropped by policy for a local vport",
                                    labels=DROP_LABELS)
        drop_bytes = CounterMetricFamily("nuage_vport_policy_drop_bytes",
                                         "Bytes of the packets dropped by policy for a local vport",
                                         labels=DROP_LABELS)
        groups = GaugeMetricFamily("nuage_policygroup_vports", "Local vports in a policy group",
                                   labels=GROUP_LABELS)
        vports = GaugeMetricFamily("nuage_vports", "Local vports by status (up: their flows are installed)",
                                   labels=("host", "status"))
        directory = GaugeMetricFamily("nuage_directory_connected",
                                      "1 while the agent is connected to the directory", labels=("host",))
        info = GaugeMetricFamily("nuage_agent_info", "The VRS agent (value 1) and its version",
                                 labels=("host", "version"))
        connected = 1.0 if self._directory_up() else 0.0
        for host, r in sorted(readings.items()):
            state = r.state
            for key, counter in sorted(r.rules.items(), key=lambda kv: (kv[0].domain_id, kv[0].rule_id)):
                values = [host, *domain_labels(state, key.domain_id), *rule_labels(state, key.rule_id), key.action]
                packets.add_metric(values, counter.packets)
                nbytes.add_metric(values, counter.bytes)
            for key, counter in sorted(r.drops.items(), key=lambda kv: (kv[0].vport_id, kv[0].direction)):
                values = [host, *vport_labels(state, key.vport_id), key.direction]
                drops.add_metric(values, counter.packets)
                drop_bytes.add_metric(values, counter.bytes)
            directory.add_metric([host], connected)
            info.add_metric([host, nuage_ryu.__version__], 1)
            if state is None:
                continue
            local = state.vports_on_host(host)
            statuses = Counter(v.status for v in local)
            for status in ("up", "down"):
                vports.add_metric([host, status], statuses.get(status, 0))
            members = Counter(g for v in local for g in v.policygroups)
            for gid, count in sorted(members.items()):
                group = state.policygroups.get(gid)
                if group is None:
                    continue
                groups.add_metric([host, *domain_labels(state, group.domain), group.name, gid], count)
        yield from (packets, nbytes, drops, drop_bytes, groups, vports, directory, info)


class AgentMetrics:
    """The agent's metrics on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rules = _NamedCollector()  # rule counters, vport drops, directory-derived gauges
        registry.register(self.rules)
        self.policy_apply = Histogram("nuage_policy_apply_seconds",
                                      "Directory update seen by the agent -> bundle committed on the bridge",
                                      ["host"], buckets=LATENCY_BUCKETS, registry=registry)
        self.flows = Gauge("nuage_flows", "Desired flows of the bridge", ["host"], registry=registry)
        self.bundles = Gauge("nuage_bundles_total", "Bundles committed on the bridge", ["host"],
                             registry=registry)
        self.connected = Gauge("nuage_bridge_connected", "1 while the bridge is connected", ["host"],
                               registry=registry)
        self.last_sync = Gauge("nuage_bridge_last_sync_timestamp_seconds",
                               "When (Unix time) the bridge last confirmed a flow generation", ["host"],
                               registry=registry)
        self.last_update = Gauge("nuage_directory_last_update_timestamp_seconds",
                                 "When (Unix time) the bridge was last recomputed from a directory snapshot",
                                 ["host"], registry=registry)
        self.startup = Gauge("nuage_agent_startup_seconds",
                             "Seconds from process start to a start-up milestone (first_table: converged)",
                             ["host", "milestone"], registry=registry)
        self.attach_phase = Histogram("nuage_attach_phase_seconds",
                                      "One phase of a container attach or detach on this host",
                                      ["host", "operation", "phase"], buckets=LATENCY_BUCKETS, registry=registry)
        self.attach_total = Histogram("nuage_attach_seconds",
                                      "A whole container attach or detach, as the plugin waited for it",
                                      ["host", "operation", "outcome"], buckets=LATENCY_BUCKETS, registry=registry)

    def set_directory_probe(self, probe: Callable[[], bool]) -> None:
        """``probe()`` says whether the agent is connected to the directory (read at each scrape)."""
        self.rules.directory_connected = probe

    def observe_attach(self, host: str, operation: str, phases: Mapping[str, float], total: float,
                       outcome: str) -> None:
        """Record one attach/detach: each phase it went through, and its total with its outcome."""
        for phase, seconds in phases.items():
            self.attach_phase.labels(host, operation, phase).observe(seconds)
        self.attach_total.labels(host, operation, outcome).observe(total)
