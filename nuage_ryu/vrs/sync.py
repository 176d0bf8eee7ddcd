"""The flow sync engine: keep one bridge's flow table equal to the desired flows.

``BridgeSync`` is a small state machine per datapath. It does no I/O and never
blocks: every method returns the OpenFlow messages (wire bytes, xids already
set) that the caller must send, in order (a list, or for a bundle a generator
that encodes while the caller sends, so that OVS works on the first chunks
while the rest is encoded), and the replies are fed back in. That keeps the
os-ken handlers short and makes the engine testable with fake replies.

How it works (details and figures in docs/sync.md):

* **Reconcile, never flush.** ``on_connect`` asks for the bridge's flows
  (OFPMP_FLOW, all tables). When the reply is complete and a desired set is
  known, the difference (deletes of stale flows, adds of new or changed ones)
  goes out; an unchanged desired set sends nothing, so restarting the agent or
  its OpenFlow connection touches no flow and drops no packet. Until the first
  ``set_desired`` nothing is deleted: an agent that has not loaded its state
  yet must not wipe the bridge.
* **One bundle per change.** A difference is sent as one OpenFlow 1.4 bundle:
  OPEN, BUNDLE_ADD(FLOW_MOD)... (strict deletes first, then adds), COMMIT, with
  ATOMIC|ORDERED, pipelined with no barrier per flow. OVS applies all or
  nothing. The COMMIT reply (matched by xid and bundle id) confirms it. One
  bundle is in flight at a time; desired changes meanwhile are coalesced into
  the next one.
* **Streamed install.** On a bridge holding none of our flows but the canary
  (a fresh bridge), every desired flow is an add: ``set_desired`` returns a
  generator that canonicalises, indexes and encodes in one pass, so the first
  chunk leaves after ~1,700 flows instead of after the whole set is indexed.
* **Ownership by cookie.** Only flows whose cookie ``owns(cookie)`` accepts
  (default ``cookies.is_ours``: the project's cookie kinds) are compared and
  deleted; flows with other cookies (another controller's, an operator's
  ``ovs-ofctl add-flow`` with cookie 0) are left alone. A desired flow with the
  same key as a foreign flow replaces it (OpenFlow ADD semantics).
* **OVS restarts.** The canary flow (``CANARY_FLOW``: table CANARY, cookie
  ``CANARY_COOKIE``, no packet ever reaches it) is always part of the desired
  set. If a read-back lacks it, the switch lost its flows behind our back (a
  new ovs-vswitchd, a ``del-flows``): every desired flow is re-added, not just
  the apparent difference.
* **Errors.** OVS answers a bad FLOW_MOD inside a bundle with an OFPErrorMsg
  carrying that BUNDLE_ADD's xid; each BUNDLE_ADD has its own xid, so the
  offending flow is known and logged. The bundle's outcome is then uncertain
  (OVS discards the whole bundle when the commit fails, but a message refused
  at add time is simply not in the bundle), so the engine re-reads the table
  and retries without the offending flow (it is *quarantined* until
  ``set_desired`` gives a different version of it; ``on_failed`` reports it).
  Errors not tied to a flow are retried from a fresh read-back at most
  ``max_retries`` times in a row (an undecodable read-back counts too); then
  the engine is STALLED until the next ``set_desired``/``resync``/reconnect,
  which starts again from a fresh read-back.

Wiring it into an os-ken app (the VRS agent does exactly this)::

    from nuage_ryu.vrs import ofwire, sync

    ofwire.install_lazy_flow_stats()  # once, before switches connect

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state(self, ev):
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            s = self.syncs[dp.id] = sync.BridgeSync(on_confirmed=self._flows_confirmed)
            sync.send(dp, s.on_connect())
            sync.send(dp, s.set_desired(self.compile_flows(dp.id)))
        elif dp.id in self.syncs:
            self.syncs.pop(dp.id).on_disconnect()

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _stats(self, ev):
        sync.send(ev.msg.datapath, self.syncs[ev.msg.datapath.id].on_flow_stats_reply(ev.msg))

    @set_ev_cls(ofp_event.EventOFPBundleCtrlMsg, MAIN_DISPATCHER)
    def _bundle(self, ev):
        sync.send(ev.msg.datapath, self.syncs[ev.msg.datapath.id].on_bundle_reply(ev.msg))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        sync.send(ev.msg.datapath, self.syncs[ev.msg.datapath.id].on_error(ev.msg))

    # whenever the directory changes (in the app thread, or under the app's lock):
    #     sync.send(dp, self.syncs[dp.id].set_desired(new_flows))

``on_confirmed(cookies, generation)`` fires when the switch holds exactly the
desired set of that generation: a vport whose cookie is in ``cookies`` can be
set ``up``. Every method must be called from one thread (the app's event
thread, or under one lock).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import random
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from nuage_ryu.vrs import ofwire
from nuage_ryu.vrs.cookies import CANARY_COOKIE, is_ours
from nuage_ryu.vrs.flow import Flow
from nuage_ryu.vrs.pipeline import CANARY, PRIO_CANARY

LOG = logging.getLogger(__name__)

CANARY_FLOW = Flow(CANARY.number, PRIO_CANARY, (), (), CANARY_COOKIE)

BUNDLE_FLAGS = ofwire.ofp.OFPBF_ATOMIC | ofwire.ofp.OFPBF_ORDERED
CHUNK_BYTES = 256 << 10  # bundle-add messages are concatenated into writes of about this size
MAX_RETRIES = 3
GC_PAUSE_THRESHOLD = 5000  # flows; above this, pause the cyclic GC while encoding/decoding

_HDR = struct.Struct("!BBHI")
_BUNDLE_CTRL = struct.Struct("!BBHIIHH")
_MP_REQUEST_FLOW = struct.Struct("!BBHIHH4xB3xII4xQQ")
_EMPTY_MATCH = struct.pack("!HH4x", 1, 4)

# States of the connection.
DISCONNECTED = "disconnected"
READING = "reading"  # flow stats requested, reply not complete
READY = "ready"  # installed flows known (and no bundle in flight)
PUSHING = "pushing"  # a bundle is in flight
STALLED = "stalled"  # too many failures in a row; waits for set_desired/resync/reconnect


# What every input method returns: the OpenFlow messages to send, in order. A list, or
# a generator that encodes a bundle while it is being sent: send all of it, in
# order, before calling the engine again.
Messages = list[bytes] | Iterator[bytes]


def send(datapath, msgs: Iterable[bytes]) -> None:
    """Send messages returned by BridgeSync on an os-ken Datapath (one write per chunk)."""
    for buf in msgs:
        datapath.send(buf)


@contextlib.contextmanager
def gc_paused(n_items: int = GC_PAUSE_THRESHOLD):
    """Pause the cyclic garbage collector around a large batch of allocations.

    Creating 100k flow objects triggers many full collections over an
    ever-growing heap; pausing it makes encoding and decoding ~1.6x faster.
    """
    if n_items < GC_PAUSE_THRESHOLD or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class Bundle:
    """One bundle in flight."""

    bundle_id: int
    generation: int
    open_xid: int
    commit_xid: int
    first_add_xid: int
    messages: list[tuple[int, Flow]]  # (command, flow), in xid order from first_add_xid
    result: dict  # the installed map once the commit succeeds
    errors: list[tuple[Flow | None, int, int]] = field(default_factory=list)  # (flow, type, code)

    def flow_for_xid(self, xid: int) -> tuple[int, Flow] | None:
        i = (xid - self.first_add_xid) & 0xFFFFFFFF
        return self.messages[i] if i < len(self.messages) else None


@dataclass
class SyncStats:
    reads: int = 0
    bundles: int = 0
    adds: int = 0
    deletes: int = 0
    bytes_sent: int = 0
    errors: int = 0
    full_pushes: int = 0  # canary missing
    streamed: int = 0  # bundles built while sent (set_desired on a bridge holding none of our flows)
    last_adds: int = 0
    last_deletes: int = 0
    # Where the time of the last operations went (CPU time in this engine, seconds).
    last_read_decode_s: float = 0.0  # decoding the flow-stats replies of the last read
    last_prepare_s: float = 0.0  # canonicalising + indexing the last desired set
    last_diff_s: float = 0.0  # the last diff
    last_encode_s: float = 0.0  # encoding the last bundle
    last_first_byte_s: float = 0.0  # from set_desired/apply_diff to the last bundle's first flow message


class BridgeSync:
    """Desired vs installed flows of one bridge; see the module docstring.

    ``on_confirmed(cookies, generation)``: the switch now holds exactly the
    desired flows of ``generation``; ``cookies`` are their cookies.
    ``on_failed(flow, err_type, err_code)``: OVS refused ``flow``; it is quarantined.
    """

    def __init__(self, owns: Callable[[int], bool] = is_ours,
                 on_confirmed: Callable[[frozenset[int], int], None] | None = None,
                 on_failed: Callable[[Flow, int, int], None] | None = None,
                 canary: Flow | None = CANARY_FLOW, max_retries: int = MAX_RETRIES,
                 name: str = "bridge") -> None:
        self.owns = owns
        self.on_confirmed = on_confirmed
        self.on_failed = on_failed
        self.canary = ofwire.canonical_flow(canary) if canary is not None else None
        self.max_retries = max_retries
        self.name = name
        self.state = DISCONNECTED
        self.desired: dict | None = None  # key -> canonical Flow; None until set_desired
        self.generation = 0
        self.installed: dict = {}  # key -> Flow, valid in READY/PUSHING
        self.confirmed_generation = -1
        self.quarantine: dict = {}  # key -> Flow refused by the switch
        self.bundle: Bundle | None = None
        self.stats = SyncStats()
        self._retries = 0
        self._force_full = False
        self._force_reread = False
        self._read_xid: int | None = None
        self._read_buf: list[Flow] = []
        self._xids = itertools.count(random.randint(1, 1 << 30))
        self._bundle_ids = itertools.count(random.randint(1, 1 << 16))
        self._t_desired = 0.0  # perf_counter of the last set_desired/apply_diff (stats)

    # ---- inputs ---------------------------------------------------------------------

    def on_connect(self) -> Messages:
        """The switch (re)connected: read its flows. Returns the flow-stats request."""
        self.bundle = None
        self._retries = 0
        return self._request_read()

    def on_disconnect(self) -> None:
        """The connection is gone; an in-flight bundle is lost (OVS discards open bundles)."""
        self.state = DISCONNECTED
        self.bundle = None
        self._read_xid = None
        self._read_buf = []

    def resync(self) -> Messages:
        """Re-read the switch's flows and reconcile (a no-op if they are as desired)."""
        if self.state == DISCONNECTED:
            return []
        if self.state == PUSHING:  # the commit reply will bring us back; then re-read
            self._force_reread = True
            return []
        self._retries = 0
        return self._request_read()

    def set_desired(self, flows: Iterable[Flow]) -> Messages:
        """Replace the desired flow set. Returns the messages to send (maybe none)."""
        t0 = self._t_desired = time.perf_counter()
        flows = list(flows)
        if self._can_stream(flows):
            return self._stream(flows)
        with gc_paused(len(flows)):
            canon = ofwire.canonical_flow
            desired = {}
            for f in flows:
                c = canon(f)
                desired[c.key] = c
            if self.canary is not None:
                desired.setdefault(self.canary.key, self.canary)
        # A new version of a quarantined flow gets another chance.
        for key, bad in list(self.quarantine.items()):
            if desired.get(key) != bad:
                del self.quarantine[key]
        sent = self._adopt(desired, t0)
        return self._push() if sent is None else sent

    def _can_stream(self, flows: list[Flow]) -> bool:
        """True when every desired flow is an add: the bundle can go out while the set is indexed.

        That is the case when the switch holds none of our flows but the canary (a fresh or
        emptied bridge: an agent's first start, every flow removed), nothing is quarantined, and
        at least one flow is not the canary (else there may be nothing to send at all).
        """
        if self.state != READY or self.quarantine or not flows:
            return False
        installed = self.installed
        if not installed:
            return True
        canary = self.canary
        if canary is None or len(installed) != 1 or canary.key not in installed:
            return False
        return any(f.table != canary.table for f in flows)

    def _stream(self, flows: list[Flow]) -> Iterator[bytes]:
        """set_desired's bundle when every flow is an add: canonicalise, index and encode in one pass.

        The same result as indexing the whole set, diffing and then encoding (``_push``), but the
        first chunk leaves after ~1,700 flows instead of after the whole set is indexed, so that
        OVS parses the bundle while the rest is prepared. The desired map is complete, and the
        bundle known to ``on_error``, by the time the generator is exhausted, which the caller
        does before calling the engine again (as for every bundle).
        """
        desired: dict = {}
        self.desired = desired
        self.generation += 1
        self.stats.last_prepare_s = self.stats.last_diff_s = 0.0
        messages: list[tuple[int, Flow]] = []
        bundle_id = next(self._bundle_ids) & 0xFFFFFFFF
        open_xid = self._next_xid()
        first = self._next_xid()
        # xids for the adds: at most one per flow and the canary; the commit takes the next one.
        self._xids = itertools.count(first + len(flows) + 1)
        commit_xid = self._next_xid()
        bundle = Bundle(bundle_id, self.generation, open_xid, commit_xid, first, messages, desired)
        self.bundle = bundle
        self.state = PUSHING
        stats = self.stats
        stats.bundles += 1
        stats.streamed += 1
        if self._force_full:
            stats.full_pushes += 1
            self._force_full = False
        return self._stream_bundle(bundle, flows)

    def _stream_bundle(self, bundle: Bundle, flows: list[Flow]) -> Iterator[bytes]:
        stats = self.stats
        desired = bundle.result
        messages = bundle.messages
        installed = self.installed  # empty, or the canary alone
        canary = self.canary
        skip_table = canary.table if installed else -1  # only a canary-table flow can be installed already
        canonical_add = ofwire.canonical_add
        encode = ofwire.encode_bundle_add
        append = messages.append
        bundle_id, xid = bundle.bundle_id, bundle.first_add_xid
        unencodable: list[Flow] = []
        done = 0
        head = _bundle_ctrl(bundle.open_xid, bundle_id, ofwire.ofp.OFPBCT_OPEN_REQUEST)
        stats.bytes_sent += len(head)
        stats.last_encode_s = 0.0
        yield head
        paused = len(flows) >= GC_PAUSE_THRESHOLD and gc.isenabled()
        if paused:
            gc.disable()  # see gc_paused: 100k new objects; re-enabled below even if abandoned
        try:
            chunks = _Chunks(stats, self._t_desired)
            for done, f in enumerate(flows, 1):  # noqa: B007 - ``done`` is read in the finally clause
                c, encode_add = canonical_add(f)
                desired[c.key] = c  # a later flow with the same key replaces it (its ADD comes later too)
                if c.table == skip_table and installed.get(c.key) == c:
                    continue
                try:
                    buf = encode_add(c, xid & 0xFFFFFFFF, bundle_id, BUNDLE_FLAGS)
                except ofwire.WireError as exc:
                    unencodable.append(c)
                    self._unencodable_streamed(c, exc)
                    continue
                append((ofwire.OFPFC_ADD, c))
                xid += 1
                data = chunks.add(buf)
                if data is not None:
                    yield data
                    chunks.resume()
            if canary is not None and canary.key not in desired:
                desired[canary.key] = canary
                if installed.get(canary.key) != canary:
                    append((ofwire.OFPFC_ADD, canary))
                    chunks.add(encode(canary, xid & 0xFFFFFFFF, bundle_id, BUNDLE_FLAGS), flush=False)
            stats.last_adds = len(messages)
            stats.last_deletes = 0
            stats.adds += len(messages)
            if unencodable:  # installed after the commit: what was sent
                bad = {id(c) for c in unencodable}
                bundle.result = {k: v for k, v in desired.items() if id(v) not in bad}
            data = chunks.rest()
            if data is not None:
                yield data
            tail = _bundle_ctrl(bundle.commit_xid, bundle_id, ofwire.ofp.OFPBCT_COMMIT_REQUEST)
            stats.bytes_sent += len(tail)
            done = -1
            yield tail
        finally:
            if paused:
                gc.enable()
            if done != -1:
                self._stream_abandoned(bundle, desired, flows, done)

    def _stream_abandoned(self, bundle: Bundle, desired: dict, flows: list[Flow], done: int) -> None:
        """The caller stopped sending a streamed bundle before its COMMIT: forget the bundle.

        Never trust a half-built desired set (the next push would delete the rest): index what
        was not reached yet. OVS discards the uncommitted bundle; ``installed`` is unchanged.
        """
        canon = ofwire.canonical_flow
        for f in flows[done:]:
            c = canon(f)
            desired[c.key] = c
        if self.canary is not None:
            desired.setdefault(self.canary.key, self.canary)
        if self.bundle is bundle:
            self.bundle = None
            self.state = READY

    def _unencodable_streamed(self, flow: Flow, exc: Exception) -> None:
        LOG.error("%s: cannot encode %r: %s", self.name, flow, exc)
        self.stats.errors += 1
        self.quarantine[flow.key] = flow
        if self.on_failed:
            self.on_failed(flow, -1, -1)

    def _adopt(self, desired: dict, t0: float) -> Messages | None:
        """Make ``desired`` the new desired set (a new generation).

        Returns what the state already decides (a re-read when stalled, nothing while reading or
        pushing), or None when READY: then the caller sends the difference.
        """
        self.desired = desired
        self.generation += 1
        self.stats.last_prepare_s = time.perf_counter() - t0
        if self.state == STALLED:
            # Retry from a fresh read-back: a stall may have left the installed view stale.
            self._retries = 0
            return self._request_read()
        if self.state != READY:
            return []
        return None

    def apply_diff(self, diff) -> Messages:
        """Change the desired set by a ``FlowDiff`` from the incremental compiler.

        The same outcome as ``set_desired`` of the whole new set, but only the diff's flows are
        canonicalised (at 50k flows a full ``set_desired`` spends ~1 s preparing what did not
        change). Needs a desired set already (``set_desired`` first, e.g. on connect).
        """
        if self.desired is None:
            raise ValueError("apply_diff before the first set_desired")
        t0 = self._t_desired = time.perf_counter()
        # In sync and nothing set aside: the switch holds exactly the old desired set, so the
        # bundle is just the diff's keys (no pass over the whole table).
        fast = self.in_sync and not self.quarantine and not self._force_full
        canon = ofwire.canonical_flow
        desired = dict(self.desired)  # the in-flight bundle may hold the old map as its result
        removed = []
        for flow in diff.delete:
            key = canon(flow).key
            if (self.canary is None or key != self.canary.key) and desired.pop(key, None) is not None:
                removed.append(key)
        changed = []
        for flow in diff.add:
            c = canon(flow)
            desired[c.key] = c
            changed.append(c.key)
        for key in changed:  # a new version of a quarantined flow gets another chance
            if key in self.quarantine and desired.get(key) != self.quarantine[key]:
                del self.quarantine[key]
        sent = self._adopt(desired, t0)
        if sent is not None:
            return sent
        if not fast:
            return self._push()
        installed = self.installed
        adds = [desired[k] for k in changed if installed.get(k) != desired[k]]
        deletes = [installed[k] for k in removed if k in installed and k not in desired]
        self.stats.last_diff_s = 0.0
        if not adds and not deletes:
            self._confirm()
            return []
        return self._open_bundle(deletes, adds, desired)

    def on_flow_stats_reply(self, msg) -> Messages:
        """One OFPMP_FLOW reply (os-ken message with ``.buf``, or raw bytes)."""
        raw = msg if isinstance(msg, (bytes, bytearray, memoryview)) else msg.buf
        xid = _HDR.unpack_from(raw, 0)[3]
        if self.state != READING or xid != self._read_xid:
            return []  # someone else's request, or a stale one
        t0 = time.perf_counter()
        try:
            with gc_paused():  # one reply: ~64 KB, a few hundred flows
                flows, more, _ = ofwire.decode_flow_stats_reply(raw)
        except (ofwire.WireError, struct.error) as exc:
            LOG.error("%s: undecodable flow-stats reply: %s", self.name, exc)
            return self._read_failed()
        self.stats.last_read_decode_s += time.perf_counter() - t0
        self._read_buf.extend(flows)
        if more:
            return []
        return self._read_done()

    def on_bundle_reply(self, msg) -> Messages:
        """An OFPBundleCtrlMsg reply; the COMMIT reply completes the bundle in flight."""
        b = self.bundle
        if b is None or msg.xid != b.commit_xid or msg.bundle_id != b.bundle_id:
            return []
        if msg.type != ofwire.ofp.OFPBCT_COMMIT_REPLY:
            return []
        return self._bundle_done(committed=True)

    def on_error(self, msg) -> Messages:
        """An OFPErrorMsg; errors for our bundle or read are handled, others ignored."""
        # Experimenter errors (OVS's NX errors in OF1.2+) have exp_type instead of a code.
        xid, etype = msg.xid, msg.type
        ecode = getattr(msg, "code", None)
        if ecode is None:
            ecode = getattr(msg, "exp_type", 0)
        if self.state == READING and xid == self._read_xid:
            LOG.error("%s: flow read failed: error type=%d code=%d", self.name, etype, ecode)
            return self._read_failed()
        b = self.bundle
        if b is None:
            return []
        found = b.flow_for_xid(xid)
        if found is not None:
            command, flow = found
            self.stats.errors += 1
            b.errors.append((flow, etype, ecode))
            what = {ofwire.OFPFC_ADD: "add", ofwire.OFPFC_DELETE: "delete by cookie"}.get(command, "delete")
            LOG.error("%s: switch refused %s of %s: error type=%d code=%d (bundle %d)", self.name, what,
                      _describe(flow), etype, ecode, b.bundle_id)
            # A bundle-level error (bad bundle id after a failed OPEN, timeout) is not the flow's fault.
            if command == ofwire.OFPFC_ADD and etype != ofwire.ofp.OFPET_BUNDLE_FAILED and \
                    self.desired is not None and self.desired.get(flow.key) == flow:
                self.quarantine[flow.key] = flow
                if self.on_failed:
                    self.on_failed(flow, etype, ecode)
            return []
        if xid in (b.open_xid, b.commit_xid):
            self.stats.errors += 1
            b.errors.append((None, etype, ecode))
            LOG.error("%s: bundle %d %s failed: error type=%d code=%d", self.name, b.bundle_id,
                      "open" if xid == b.open_xid else "commit", etype, ecode)
            if xid == b.commit_xid:
                return self._bundle_done(committed=False)
        return []

    # ---- queries --------------------------------------------------------------------

    @property
    def in_sync(self) -> bool:
        """True when the switch is known to hold exactly the current desired set."""
        return self.state == READY and self.confirmed_generation == self.generation

    def installed_cookies(self) -> frozenset[int]:
        return frozenset(f.cookie for f in self.installed.values())

    # ---- internals ------------------------------------------------------------------

    def _next_xid(self) -> int:
        return next(self._xids) & 0xFFFFFFFF or next(self._xids)

    def _request_read(self) -> Messages:
        self.state = READING
        self._read_xid = xid = self._next_xid()
        self._read_buf = []
        self.stats.last_read_decode_s = 0.0
        self.stats.reads += 1
        ofp = ofwire.ofp
        # OFPMP_FLOW request: all tables, any out port/group, any cookie, empty match.
        body = _MP_REQUEST_FLOW.pack(ofwire.OFP_VERSION, ofp.OFPT_MULTIPART_REQUEST,
                                     _MP_REQUEST_FLOW.size + len(_EMPTY_MATCH), xid,
                                     ofp.OFPMP_FLOW, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0)
        return [body + _EMPTY_MATCH]

    def _read_failed(self) -> Messages:
        self.stats.errors += 1
        self._read_xid = None
        self._read_buf = []
        self._retries += 1
        if self._retries > self.max_retries:
            LOG.error("%s: %d failed reads in a row; waiting for a change or reconnect", self.name, self._retries)
            self.state = STALLED
            return []
        return self._request_read()

    def _read_done(self) -> Messages:
        flows = self._read_buf
        self._read_buf = []
        self._read_xid = None
        owns = self.owns
        self.installed = {f.key: f for f in flows if owns(f.cookie)}
        if self.canary is not None and self.installed.get(self.canary.key) != self.canary:
            # The switch lost (or never had) our flows: re-add everything.
            self._force_full = True
            if flows or self.confirmed_generation >= 0:
                LOG.warning("%s: canary flow missing: pushing all flows", self.name)
        self.state = READY
        return self._push()

    def _push(self) -> Messages:
        """From READY: send the difference between installed and desired, if any."""
        if self.desired is None:
            return []  # never delete anything before we know what we want
        desired = self.desired
        if self.quarantine:
            desired = {k: f for k, f in desired.items() if k not in self.quarantine}
        installed = self.installed
        t0 = time.perf_counter()
        with gc_paused(len(desired)):
            adds = []
            found = 0
            get = installed.get
            canary = self.canary
            if not installed or (canary is not None and len(installed) == 1 and canary.key in installed):
                # A fresh or emptied bridge: every desired flow is an add (but an identical canary),
                # no need to look each one up.
                same = desired.get(canary.key) if installed else None
                if same is not None and same == installed[canary.key]:
                    adds = [f for f in desired.values() if f is not same]
                    found = 1
                else:
                    adds = list(desired.values())
                desired_items = ()
            else:
                desired_items = desired.items()
            for key, flow in desired_items:
                have = get(key)
                if have is None:
                    adds.append(flow)
                    continue
                found += 1
                # Identity first: after a commit ``installed`` holds the desired objects themselves.
                # The keys are equal already, so only the value part is compared.
                if have is not flow and (have.actions != flow.actions or have.cookie != flow.cookie
                                         or have.idle_timeout != flow.idle_timeout
                                         or have.hard_timeout != flow.hard_timeout):
                    adds.append(flow)
            # Every installed key was desired: nothing to delete (saves a hash per flow).
            deletes = [] if found == len(installed) else [f for k, f in installed.items() if k not in desired]
            if self._force_full:
                adds = list(desired.values())
                self.stats.full_pushes += 1
            self._force_full = False
            self.stats.last_diff_s = time.perf_counter() - t0
            if not adds and not deletes:
                self._confirm()
                return []
            return self._open_bundle(deletes, adds, desired)

    @staticmethod
    def _delete_messages(deletes: list[Flow], desired: dict) -> list[tuple[int, Flow]]:
        """Strict deletes, except one delete-by-cookie for an owner that has no desired flow left.

        A deleted vport owns a dozen flows; its cookie no longer appears in the desired set, so
        one OFPFC_DELETE with that exact cookie removes them all (OVS indexes flows by cookie).
        Every installed flow with an owned cookie is in ``installed``, so nothing else goes.
        """
        if not deletes:
            return []
        live = {f.cookie for f in desired.values()}
        gone: dict[int, int] = {}
        strict = []
        for f in deletes:
            if f.cookie in live:
                strict.append((ofwire.OFPFC_DELETE_STRICT, f))
            else:
                gone[f.cookie] = gone.get(f.cookie, 0) + 1
        by_cookie = [(ofwire.OFPFC_DELETE, ofwire.cookie_delete(c)) for c in gone]
        return by_cookie + strict

    def _open_bundle(self, deletes: list[Flow], adds: list[Flow], result: dict) -> Iterator[bytes]:
        bundle_id = next(self._bundle_ids) & 0xFFFFFFFF
        messages = self._delete_messages(deletes, result)
        messages += [(ofwire.OFPFC_ADD, f) for f in adds]
        open_xid = self._next_xid()
        first = self._next_xid()
        # Reserve consecutive xids for the bundle adds.
        self._xids = itertools.count(first + len(messages))
        commit_xid = self._next_xid()
        bundle = Bundle(bundle_id, self.generation, open_xid, commit_xid, first, messages, result)
        self.bundle = bundle
        self.state = PUSHING
        self.stats.bundles += 1
        self.stats.last_adds = len(adds)
        self.stats.last_deletes = len(deletes)
        self.stats.adds += len(adds)
        self.stats.deletes += len(deletes)
        return self._encode_bundle(bundle)

    def _encode_bundle(self, bundle: Bundle) -> Iterator[bytes]:
        """The bundle's messages, encoded while they are sent.

        A generator, so that the switch already applies the first chunks while the
        rest is being encoded (the sender drains it chunk by chunk).
        """
        stats = self.stats
        stats.last_encode_s = 0.0
        head = _bundle_ctrl(bundle.open_xid, bundle.bundle_id, ofwire.ofp.OFPBCT_OPEN_REQUEST)
        stats.bytes_sent += len(head)
        yield head
        encode = ofwire.encode_bundle_add
        bundle_id = bundle.bundle_id
        xid = bundle.first_add_xid
        chunks = _Chunks(stats, self._t_desired)
        for command, flow in bundle.messages:
            try:
                buf = encode(flow, xid & 0xFFFFFFFF, bundle_id, BUNDLE_FLAGS, command)
            except ofwire.WireError as exc:  # a compiler bug: keep it out, install the rest
                self._unencodable(bundle, flow, exc)
                buf = b""
            xid += 1
            data = chunks.add(buf)
            if data is not None:
                yield data
                chunks.resume()
        data = chunks.rest()
        if data is not None:
            yield data
        tail = _bundle_ctrl(bundle.commit_xid, bundle_id, ofwire.ofp.OFPBCT_COMMIT_REQUEST)
        stats.bytes_sent += len(tail)
        yield tail

    def _unencodable(self, bundle: Bundle, flow: Flow, exc: Exception) -> None:
        LOG.error("%s: cannot encode %r: %s", self.name, flow, exc)
        self.stats.errors += 1
        self.quarantine[flow.key] = flow
        if bundle.result.get(flow.key) is flow:
            bundle.result = {k: f for k, f in bundle.result.items() if k != flow.key}
        if self.on_failed:
            self.on_failed(flow, -1, -1)

    def _bundle_done(self, committed: bool) -> Messages:
        b = self.bundle
        self.bundle = None
        if committed and not b.errors:
            self.installed = b.result
            self._retries = 0
            self.state = READY
            if b.generation == self.generation and not self._force_reread:
                self._confirm()
                return []
            if self._force_reread:
                self._force_reread = False
                return self._request_read()
            return self._push()  # desired changed while the bundle was in flight
        # Failed or partial: what the switch holds is uncertain. Read it back and retry
        # (without quarantined flows). Only failures that quarantined nothing count.
        self._force_reread = False
        if not any(flow is not None and flow.key in self.quarantine for flow, _, _ in b.errors):
            self._retries += 1
        if self._retries > self.max_retries:
            LOG.error("%s: %d failed bundles in a row; waiting for a change or reconnect",
                      self.name, self._retries)
            self.state = STALLED
            return []
        return self._request_read()

    def _confirm(self) -> None:
        self.confirmed_generation = self.generation
        if self.on_confirmed is not None:
            self.on_confirmed(frozenset(f.cookie for f in self.installed.values()), self.generation)


class _Chunks:
    """Encoded flow messages gathered into writes of about CHUNK_BYTES, counted in the stats.

    ``add`` returns a write once the gathered messages reach CHUNK_BYTES; the caller yields it
    and calls ``resume`` (the time the consumer spends sending is not encoding time); ``rest``
    returns what is left at the end (or None). Encoding time, bytes sent and the time to the
    first write (from ``t_desired``) go into ``stats``.
    """

    __slots__ = ("stats", "t_desired", "parts", "size", "first", "t0")

    def __init__(self, stats: SyncStats, t_desired: float):
        self.stats = stats
        self.t_desired = t_desired
        self.parts: list[bytes] = []
        self.size = 0
        self.first = True
        self.t0 = time.perf_counter()

    def add(self, buf: bytes, flush: bool = True) -> bytes | None:
        self.parts.append(buf)
        self.size += len(buf)
        return self._take() if flush and self.size >= CHUNK_BYTES else None

    def resume(self) -> None:
        self.t0 = time.perf_counter()

    def rest(self) -> bytes | None:
        if self.parts:
            return self._take()
        self.stats.last_encode_s += time.perf_counter() - self.t0
        return None

    def _take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        now = time.perf_counter()
        stats = self.stats
        stats.bytes_sent += len(data)
        stats.last_encode_s += now - self.t0
        if self.first:
            self.first = False
            stats.last_first_byte_s = now - self.t_desired
        return data


def _bundle_ctrl(xid: int, bundle_id: int, ctrl_type: int) -> bytes:
    return _BUNDLE_CTRL.pack(ofwire.OFP_VERSION, ofwire.OFPT_BUNDLE_CONTROL, _BUNDLE_CTRL.size, xid,
                             bundle_id, ctrl_type, BUNDLE_FLAGS)


def _describe(flow: Flow) -> str:
    try:
        from nuage_ryu.vrs.ofmsg import to_ofctl

        return to_ofctl(flow)
    except Exception:  # noqa: BLE001 - logging must not fail
        return repr(flow)
