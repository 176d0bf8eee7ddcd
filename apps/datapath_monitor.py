"""Datapath monitor: logs and records which switches are connected.

The smallest useful nuage-ryu app and the launcher's smoke test: every switch
that connects gets a table-miss drop flow check (features reply), and the set
of connected datapaths is written to ``<state_dir>/datapaths.json`` so that
operators and tests can see it without OpenFlow tooling. It only uses names
from ``nuage_ryu.framework``, so it also runs under classic Ryu's ryu-manager.
"""

import json
import os
import tempfile
import time

from nuage_ryu.framework import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    BaseApp,
    ofp_event,
    ofproto_v1_3,
    ofproto_v1_4,
    set_ev_cls,
)

STATUS_FILE = "datapaths.json"


class DatapathMonitor(BaseApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION, ofproto_v1_4.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.datapaths = {}  # dpid -> {"address": ..., "since": ..., "ofp_version": ...}
        self.state_dir = self._state_dir()

    def _state_dir(self):
        try:
            return self.CONF.state_dir
        except Exception:  # classic ryu-manager without our options registered
            return os.environ.get("NUAGE_RYU_STATE_DIR", tempfile.gettempdir())

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        self.datapaths[dp.id] = {
            "dpid": f"{dp.id:016x}",
            "address": "%s:%s" % tuple(dp.address[:2]) if isinstance(dp.address, tuple) else str(dp.address),
            "ofp_version": dp.ofproto.OFP_VERSION,
            "n_tables": ev.msg.n_tables,
            "since": time.time(),
        }
        self.logger.info("datapath %016x connected from %s", dp.id, dp.address)
        self._write()

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def state_change(self, ev):
        dp = ev.datapath
        if ev.state == DEAD_DISPATCHER and dp.id in self.datapaths:
            del self.datapaths[dp.id]
            self.logger.info("datapath %016x disconnected", dp.id)
            self._write()

    def _write(self):
        if not self.state_dir:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        path = os.path.join(self.state_dir, STATUS_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(sorted(self.datapaths.values(), key=lambda d: d["dpid"]), f, indent=1)
        os.replace(tmp, path)  # readers never see a half-written file
