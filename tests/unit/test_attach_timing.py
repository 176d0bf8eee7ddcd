"""Phase timings of attach/detach and their Prometheus histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from nuage_ryu.agent.attach.timing import PhaseTimes
from nuage_ryu.agent.metrics import AgentMetrics


def test_phases_add_up_and_are_reported_in_milliseconds():
    times = PhaseTimes("attach")
    with times.phase("veth"):
        pass
    times.add("veth", 0.002)
    times.add("flows", -1.0)  # a clock skew between threads never makes a negative phase
    ms = times.as_ms()
    assert set(ms) == {"veth", "flows", "total"}
    assert ms["veth"] >= 2.0 and ms["flows"] == 0.0 and ms["total"] >= 0


def test_observe_attach_fills_the_phase_and_total_histograms():
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    metrics.observe_attach("h1", "attach", {"directory": 0.004, "ovsdb": 0.02}, 0.05, "ok")
    metrics.observe_attach("h1", "attach", {"directory": 0.003}, 0.01, "not_found")

    def value(name, **labels):
        return registry.get_sample_value(name, labels)

    assert value("nuage_attach_phase_seconds_count", host="h1", operation="attach", phase="directory") == 2
    assert value("nuage_attach_phase_seconds_sum", host="h1", operation="attach", phase="ovsdb") == 0.02
    assert value("nuage_attach_seconds_count", host="h1", operation="attach", outcome="ok") == 1
    assert value("nuage_attach_seconds_count", host="h1", operation="attach", outcome="not_found") == 1
    assert value("nuage_attach_phase_seconds_bucket", host="h1", operation="attach", phase="ovsdb",
                 le="0.025") == 1
