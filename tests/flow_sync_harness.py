"""A test and benchmark harness app: BridgeSync driven over a unix socket.

Runs under ``nuage-ryu-manager`` like any app. Every switch that connects gets
a ``BridgeSync`` wired exactly as the module docstring of
``nuage_ryu.vrs.sync`` shows (the VRS agent's wiring). The desired flow set
comes from a control socket (path in ``NUAGE_SYNC_HARNESS_SOCKET``), one JSON
object per line, one JSON reply per line:

* ``{"cmd": "status"}`` -> connected dpids, sync state and counters;
* ``{"cmd": "set_desired", "pickle": PATH}`` (a pickled list of Flow) or
  ``{"cmd": "set_desired", "synthetic": N}`` (``synthetic_flows(N)``):
  applies it to every connected bridge and to bridges that connect later, then
  waits until confirmed; the reply has the time from the call to the commit
  reply (``elapsed``), adds/deletes/bundles sent; with ``"reread": true`` the
  bridge is read back first and the new set is diffed against what it holds;
* ``{"cmd": "resync"}``: re-read every bridge's flows and reconcile; timed too;
* ``{"cmd": "wait_in_sync", "timeout": S}``.

The control socket is local to the machine (a unix socket) and only takes
pickles from paths the caller names: it is a test tool, not an API.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import threading
import time

from nuage_ryu.framework import (
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    BaseApp,
    ofp_event,
    ofproto_v1_4,
    set_ev_cls,
)
from nuage_ryu.vrs import ofwire, sync
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.flow import Flow, Goto, MatchField, Output, SetField

SOCKET_ENV = "NUAGE_SYNC_HARNESS_SOCKET"


def synthetic_flows(n: int) -> list[Flow]:
    """``n`` realistic flows: in_port/MAC classification and IPv4 delivery with MAC rewrite.

    A quarter are classify-style (in_port + eth_src -> set reg6, goto), the rest
    delivery-style (reg6 + ipv4_dst -> set eth_src/eth_dst, output). Cookies are
    VPORT cookies, one per 4 flows, so that the sync engine owns them.
    """
    flows = []
    mf = MatchField
    eth_type = mf("eth_type", 0x0800)
    for i in range(n):
        cookie = cookie_for(CookieKind.VPORT, f"vp-{i // 4}")
        mac = "02:00:%02x:%02x:%02x:%02x" % ((i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)
        if i % 4 == 0:
            flows.append(Flow(0, 100, (mf("eth_src", mac), mf("in_port", 1 + i % 4000)),
                              (SetField("reg6", 1000 + i % 64), SetField("reg5", 1 + i % 4000), Goto(10)),
                              cookie))
        else:
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            flows.append(Flow(10, 100, (eth_type, mf("ipv4_dst", ip), mf("reg6", 1000 + i % 64)),
                              (SetField("eth_src", "02:ff:00:00:00:01"), SetField("eth_dst", mac),
                               Output(1 + i % 4000)), cookie))
    return flows


class FlowSyncHarness(BaseApp):
    OFP_VERSIONS = [ofproto_v1_4.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        ofwire.install_lazy_flow_stats()
        self.lock = threading.RLock()  # owns self.syncs and every BridgeSync
        self.datapaths = {}
        self.syncs: dict[int, sync.BridgeSync] = {}
        self.desired: list[Flow] | None = None
        self.changed = threading.Condition(self.lock)
        self.path = os.environ.get(SOCKET_ENV, "")
        self._server = None
        if self.path:
            self._server = threading.Thread(target=self._serve, name="sync-harness", daemon=True)
            self._server.start()

    # ---- OpenFlow side (the agent's wiring) -------------------------------------------

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state(self, ev):
        dp = ev.datapath
        with self.lock:
            if ev.state == MAIN_DISPATCHER:
                s = sync.BridgeSync(on_confirmed=self._confirmed, name=f"dp {dp.id:016x}")
                self.syncs[dp.id] = s
                self.datapaths[dp.id] = dp
                sync.send(dp, s.on_connect())
                if self.desired is not None:
                    sync.send(dp, s.set_desired(self.desired))
            elif dp.id in self.syncs and self.datapaths.get(dp.id) is dp:
                self.syncs.pop(dp.id).on_disconnect()
                self.datapaths.pop(dp.id)
            self.changed.notify_all()

    def _sync_for(self, msg):
        s = self.syncs.get(msg.datapath.id)
        return s if s is not None and self.datapaths.get(msg.datapath.id) is msg.datapath else None

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _stats(self, ev):
        with self.lock:
            s = self._sync_for(ev.msg)
            if s is not None:
                sync.send(ev.msg.datapath, s.on_flow_stats_reply(ev.msg))
                self.changed.notify_all()

    @set_ev_cls(ofp_event.EventOFPBundleCtrlMsg, MAIN_DISPATCHER)
    def _bundle(self, ev):
        with self.lock:
            s = self._sync_for(ev.msg)
            if s is not None:
                sync.send(ev.msg.datapath, s.on_bundle_reply(ev.msg))
                self.changed.notify_all()

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        with self.lock:
            s = self._sync_for(ev.msg)
            if s is not None:
                sync.send(ev.msg.datapath, s.on_error(ev.msg))
                self.changed.notify_all()

    def _confirmed(self, cookies, generation):
        self.changed.notify_all()  # called with self.lock held

    # ---- control socket ---------------------------------------------------------------

    def _serve(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.path)
        srv.listen(4)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    reply = self._command(json.loads(line))
                except Exception as exc:  # noqa: BLE001 - report to the caller, keep serving
                    self.logger.exception("harness command failed")
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()

    def _status(self):
        out = {}
        for dpid, s in self.syncs.items():
            st = s.stats
            out[f"{dpid:016x}"] = {
                "state": s.state, "in_sync": s.in_sync, "generation": s.generation,
                "installed": len(s.installed), "quarantined": len(s.quarantine),
                "reads": st.reads, "bundles": st.bundles, "adds": st.adds, "deletes": st.deletes,
                "errors": st.errors, "full_pushes": st.full_pushes, "streamed": st.streamed,
                "bytes_sent": st.bytes_sent,
                "last_adds": st.last_adds, "last_deletes": st.last_deletes,
                "last_read_decode_s": st.last_read_decode_s, "last_prepare_s": st.last_prepare_s,
                "last_diff_s": st.last_diff_s, "last_encode_s": st.last_encode_s,
                "last_first_byte_s": st.last_first_byte_s,
            }
        return out

    def _wait_in_sync(self, timeout):
        deadline = time.monotonic() + timeout
        while not (self.syncs and all(s.in_sync for s in self.syncs.values())):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.wait(left)
        return True

    def _timed_push(self, push, timeout: float) -> dict:
        """Run ``push(dpid, sync)`` for every bridge (under self.lock), time it until in sync.

        Timed from here: what the agent would do with the compiler's output. ``sent`` is what each
        bridge got: [bundles, adds, deletes].
        """
        before = {d: (s.stats.bundles, s.stats.adds, s.stats.deletes) for d, s in self.syncs.items()}
        t0 = time.perf_counter()
        for dpid, s in self.syncs.items():
            push(dpid, s)
        ok = self._wait_in_sync(timeout)
        elapsed = time.perf_counter() - t0
        return {"ok": ok, "elapsed": elapsed, "sent": {
            f"{d:016x}": [a - b for a, b in zip((s.stats.bundles, s.stats.adds, s.stats.deletes),
                                                 before.get(d, (0, 0, 0)), strict=True)]
            for d, s in self.syncs.items()}, "bridges": self._status()}

    def _command(self, req):
        cmd = req.get("cmd")
        timeout = float(req.get("timeout", 60))
        if cmd == "status":
            with self.lock:
                return {"ok": True, "bridges": self._status()}
        if cmd == "wait_in_sync":
            with self.lock:
                ok = self._wait_in_sync(timeout)
                return {"ok": ok, "bridges": self._status()}
        if cmd == "set_desired":
            cpu0 = time.thread_time()  # the bench subtracts the harness's own work from the app's CPU
            if "pickle" in req:
                with open(req["pickle"], "rb") as f:
                    flows = pickle.load(f)
            else:
                flows = synthetic_flows(int(req["synthetic"]))
            synthetic_cpu_s = time.thread_time() - cpu0
            with self.lock:
                self.desired = flows

                def push(dpid, s):
                    if req.get("reread"):  # read the bridge back first, then diff against it
                        sync.send(self.datapaths[dpid], s.resync())
                    sync.send(self.datapaths[dpid], s.set_desired(flows))

                return dict(self._timed_push(push, timeout), synthetic_cpu_s=synthetic_cpu_s)
        if cmd == "apply_diff":  # a pickled FlowDiff from the incremental compiler, as the agent sends it
            with open(req["pickle"], "rb") as f:
                diff = pickle.load(f)
            with self.lock:
                return self._timed_push(lambda dpid, s: sync.send(self.datapaths[dpid], s.apply_diff(diff)),
                                        timeout)
        if cmd == "resync":
            with self.lock:
                t0 = time.perf_counter()
                for dpid, s in self.syncs.items():
                    sync.send(self.datapaths[dpid], s.resync())
                # resync() leaves in_sync False until the read-back is reconciled.
                ok = self._wait_in_sync(timeout)
                return {"ok": ok, "elapsed": time.perf_counter() - t0, "bridges": self._status()}
        return {"ok": False, "error": f"unknown command {cmd!r}"}


class HarnessClient:
    """Talks to a running harness over its control socket (used by tests and bench/)."""

    def __init__(self, path: str, timeout: float = 120.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")

    def call(self, **req) -> dict:
        self.file.write(json.dumps(req).encode() + b"\n")
        self.file.flush()
        line = self.file.readline()
        if not line:
            raise ConnectionError("harness closed the control socket")
        return json.loads(line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()
