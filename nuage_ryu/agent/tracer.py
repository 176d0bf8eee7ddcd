"""The agent's side of "explain a packet": answer the directory's trace requests for its hosts.

A request (a ``TraceRequest`` row of this agent's host, ``nuage_ryu/directory/store/trace_rows.py``)
names the source vport and the packet. The agent builds the frame that vport would send from its
current host view, runs it through ``ovs-appctl ofproto/trace`` on the host's br-int, and writes
back what the datapath did (``nuage_ryu/vrs/trace.py``: verdict, deciding policy flow, tables,
output).

Never on the agent's event path: the store's IDL thread only enqueues; one worker thread of its
own runs the command (bounded by ``timeout``) and writes the answer. The queue is bounded too: a
flood of requests is dropped (the directory's wait then times out), not queued for minutes.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Mapping

from nuage_ryu.vrs import trace
from nuage_ryu.vrs.reference import Packet

APPCTL_TIMEOUT_S = 5.0
QUEUE_LIMIT = 64
DEFAULT_RUNDIR = "/var/run/openvswitch"


def rundir_of(ovsdb_remote: str) -> str | None:
    """The OVS rundir of a host whose OVSDB is a local unix socket (ovs-vswitchd's control socket
    lives there); None for a remote OVSDB (central mode over TCP: no local control socket)."""
    if ovsdb_remote.startswith("unix:"):
        return os.path.dirname(ovsdb_remote[len("unix:"):]) or DEFAULT_RUNDIR
    return None


def packet_of(request: dict) -> Packet:
    """The reference packet a trace request describes (the directory checked its fields)."""
    return Packet(request["src_ip"], request["dst_ip"], int(request["protocol"]), int(request.get("src_port", 0)),
                  int(request.get("dst_port", 0)), int(request.get("icmp_type", 0)), int(request.get("icmp_code", 0)))


class Tracer:
    """Answers trace requests: ``on_requests`` from the store's listener, one worker thread."""

    def __init__(self, store, bridges: Callable[[], Mapping[str, object]], lock: threading.RLock,
                 logger: logging.Logger | None = None, timeout: float = APPCTL_TIMEOUT_S,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
        """``bridges()``: {host name: ManagedBridge}; ``lock``: the agent's lock around the cores."""
        self._store = store
        self._bridges = bridges
        self._lock = lock
        self._log = logger or logging.getLogger(__name__)
        self.timeout = timeout
        self._run = run
        self._queue: queue.Queue = queue.Queue(QUEUE_LIMIT)
        self._seen: set[str] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._worker, name="trace-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(self.timeout + 1)

    def on_requests(self, requests: Mapping[str, object]) -> None:
        """A store listener (IDL thread): enqueue the new pending requests of our hosts. Never blocks."""
        if self._stopping.is_set():
            return
        hosts = self._bridges()
        current = set(requests)
        self._seen &= current  # forget withdrawn requests
        for req in requests.values():
            if req.id in self._seen or req.state != "pending" or req.host not in hosts or req.expired():
                continue
            self._seen.add(req.id)
            try:
                self._queue.put_nowait(req)
            except queue.Full:  # the directory's wait times out and says so; nothing queued for minutes
                self._log.warning("trace %s dropped: %d requests already queued", req.id, QUEUE_LIMIT)

    def _worker(self) -> None:
        while not self._stopping.is_set():
            req = self._queue.get()
            if req is None:
                return
            if req.expired():
                continue
            self._answer(req, self.answer(req))

    def _answer(self, req, answer: dict) -> None:
        try:
            self._store.answer_trace(req.id, answer)
        except Exception as exc:  # withdrawn meanwhile (the directory stopped waiting), or unreachable
            self._log.info("trace %s not answered: %s", req.id, exc)

    def answer(self, req) -> dict:
        """The datapath's view of one request (an ``error`` key when it cannot be traced)."""
        bridge = self._bridges().get(req.host)
        if bridge is None:
            return {"error": f"host {req.host} is not managed by this agent"}
        with self._lock:
            view = bridge.core.view
        if view is None:
            return {"error": f"{req.host}: no flows compiled yet"}
        try:
            pkt = packet_of(req.request)
            frame, in_port = trace.frame_for(view, req.request["src_vport"], pkt)
        except (KeyError, ValueError, TypeError) as exc:
            return {"error": f"cannot build the packet: {exc}"}
        rundir = rundir_of(bridge.ovsdb_remote)
        if rundir is None:
            return {"error": f"{req.host}: OVSDB {bridge.ovsdb_remote} is not local; ofproto/trace needs "
                             "ovs-vswitchd's control socket on this machine"}
        flow = trace.ofctl_flow(frame, in_port)
        argv = ["ovs-appctl", "-t", "ovs-vswitchd", "ofproto/trace", "--ct-next", trace.CT_NEXT, bridge.bridge,
                flow]
        started = time.monotonic()
        try:
            proc = self._run(argv, capture_output=True, text=True, timeout=self.timeout,
                             env={**os.environ, "OVS_RUNDIR": rundir}, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"ofproto/trace did not answer within {self.timeout:g} s", "flow": flow}
        except OSError as exc:
            return {"error": f"cannot run ovs-appctl: {exc}", "flow": flow}
        if proc.returncode != 0:
            return {"error": f"ofproto/trace failed: {(proc.stderr or proc.stdout).strip()[-300:]}", "flow": flow}
        answer = trace.explain(view, trace.parse(proc.stdout, bridge.bridge), in_port)
        answer.update(flow=flow, seconds=round(time.monotonic() - started, 4))
        return answer
