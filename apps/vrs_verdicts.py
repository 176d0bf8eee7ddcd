"""Verdict logs: the VRS agent's records of logged decisions (docs/policy.md, "Verdict logs").

One feature per app, like ``vrs_dhcp``. A logged rule, an audit rule or a domain's logged
default action copies the packet's headers to the controller through the bridge's verdict-log
meter (``controller(max_len=128,meter_id=1)``; the meter is set up by the agent's
``ManagedBridge`` on connect, before any flow). For each copy this app

    packet-in (datapath, table, cookie, headers)
      -> the agent's ``ManagedBridge`` for the datapath id, its directory snapshot
      -> ``nuage_ryu.agent.verdicts.verdict_record``: rule/default, verdict, 5-tuple, vport names
      -> one JSON line in the agent's log (logger ``nuage_ryu.verdict``)
      -> a bounded queue, sent to the directory in batches of at most ``[vrs] verdict_export_rate``
         records per second (table ``Verdict``: ``GET /api/v1/verdicts``, ``nuage-ctl flows``).

Counted on the agent's Prometheus registry: ``nuage_verdict_records_total{host,result}``,
``nuage_verdict_meter_dropped_packets_total{host}`` (copies the meter dropped in the datapath,
read from the meter's statistics), ``nuage_verdict_export_dropped_total`` (records that never
reached the directory: queue full or write failed). The handler never blocks: directory writes
run on the app's own thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from nuage_ryu.agent import verdicts
from nuage_ryu.apps.companion import AgentCompanion
from nuage_ryu.framework import MAIN_DISPATCHER, hub, ofp_event, ofproto_v1_4, set_ev_cls
from nuage_ryu.vrs import pipeline as P

RECORD_LOG = logging.getLogger("nuage_ryu.verdict")
EXPORT_INTERVAL_S = 1.0
QUEUE_CAPACITY = 10000


class VerdictCollector:
    """Prometheus view of the app's counters (reads copies of plain dicts: safe against the handler)."""

    def __init__(self, app: VrsVerdicts) -> None:
        self.app = app

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        records = CounterMetricFamily("nuage_verdict_records", "Verdict copies the agent received, by result",
                                      labels=["host", "result"])
        for (host, result), n in sorted(dict(self.app.counts).items()):
            records.add_metric([host, result], n)
        yield records
        dropped = CounterMetricFamily("nuage_verdict_meter_dropped_packets",
                                      "Verdict copies the bridge's meter dropped (over [vrs] verdict_log_rate)",
                                      labels=["host"])
        for host, n in sorted(dict(self.app.meter_dropped).items()):
            dropped.add_metric([host], n)
        yield dropped
        lost = CounterMetricFamily("nuage_verdict_export_dropped",
                                   "Verdict records not sent to the directory (queue full or write failed)")
        lost.add_metric([], self.app.queue.dropped + self.app.export_failed)
        yield lost


class VrsVerdicts(AgentCompanion):
    """Turns the verdict copies of the bridges the VrsAgent manages into records."""

    OFP_VERSIONS = [ofproto_v1_4.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts: collections.Counter = collections.Counter()  # (host, result) -> n
        self.meter_dropped: dict[str, int] = {}
        self.queue = verdicts.ExportQueue(QUEUE_CAPACITY)
        self.export_failed = 0
        self._names: dict[int, verdicts.NamesCache] = {}
        self._stopping = threading.Event()

    def collector(self):
        return VerdictCollector(self)

    def start(self):
        if self.vrs_agent() is None:
            self.logger.warning("VrsAgent is not loaded in this process: verdict copies are ignored")
        thread = super().start()
        self.threads.append(hub.spawn(self._export_loop))
        self.threads.append(hub.spawn(self._meter_stats_loop))
        return thread

    def stop(self):
        self._stopping.set()
        super().stop()

    # -- OpenFlow ----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        if not verdicts.is_verdict_packet_in(msg.table_id):
            return  # DHCP and anything else: not a verdict copy
        try:
            self.handle_copy(msg.datapath.id, msg.table_id, msg.cookie, msg.data, time.time())
        except Exception:  # never let one packet take the app's event thread down
            self.log_failure("verdict packet-in failed")

    def handle_copy(self, dpid: int, table_id: int, cookie: int, frame: bytes, now: float) -> dict | None:
        """One verdict copy -> its record (logged, queued for the directory); None if not recorded."""
        agent = self.vrs_agent()
        bridge = agent.bridges.get(dpid) if agent is not None else None
        if bridge is None or bridge.core.state is None:
            return None
        names = self._names.setdefault(dpid, verdicts.NamesCache()).of(bridge.core.state)
        result, record = verdicts.verdict_record(names, bridge.host_name, table_id, cookie, frame, now)
        self.counts[(bridge.host_name, result)] += 1
        if record is None:
            return None
        RECORD_LOG.info(verdicts.log_line(record))
        if agent.CONF.vrs.verdict_export_rate:
            self.queue.put(dict(record, epoch=now))
        return record

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    def meter_stats_reply(self, ev):
        agent = self.vrs_agent()
        bridge = agent.bridges.get(ev.msg.datapath.id) if agent is not None else None
        dropped = verdicts.meter_dropped(ev.msg.body)
        if bridge is not None and dropped is not None:
            self.meter_dropped[bridge.host_name] = dropped

    # -- threads -------------------------------------------------------------------
    def _meter_stats_loop(self) -> None:
        while not self._stopping.wait(self._interval()):
            agent = self.vrs_agent()
            for bridge in list(agent.bridges.values()) if agent is not None else ():
                dp = bridge.datapath
                if dp is None:
                    continue
                try:
                    dp.send_msg(dp.ofproto_parser.OFPMeterStatsRequest(dp, 0, P.METER_VERDICT_LOG))
                except Exception as exc:  # a connection going down: the next round asks again
                    self.logger.debug("meter stats request to %s failed: %s", bridge.host_name, exc)

    def _interval(self) -> float:
        agent = self._agent
        return agent.CONF.vrs.stats_interval if agent is not None else 5.0

    def _export_loop(self) -> None:
        while not self._stopping.wait(EXPORT_INTERVAL_S):
            agent = self.vrs_agent()
            store = getattr(agent, "store", None)
            if store is None or not len(self.queue):
                continue
            by_host: dict[str, list[dict]] = {}
            for record in self.queue.take(agent.CONF.vrs.verdict_export_rate * max(1, len(agent.bridges))):
                by_host.setdefault(record["host"], []).append(record)
            for host, batch in by_host.items():
                try:
                    store.insert_verdicts(host, batch)
                except Exception as exc:  # best effort: the log has every record
                    self.export_failed += len(batch)
                    self.logger.info("%d verdict records of %s not sent to the directory: %s", len(batch),
                                     host, exc)
