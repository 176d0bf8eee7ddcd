"""The VRS agent's decisions for one bridge, without I/O.

``AgentCore`` is a state machine like ``BridgeSync``: the bridge I/O
(``nuage_ryu/agent/bridge.py``) feeds it what the outside world says and does
what it answers. It never touches a socket, a thread or OVS.

Inputs and the decisions they lead to:

* the latest directory snapshot (``set_directory``, with the time the update
  was seen) and the bridge's local vport ports and VXLAN port (``set_ports``)
  → ``recompute``: which flows must change on the bridge (a ``FlowDiff`` from
  the incremental ``FlowCompiler``; a change to one vport recompiles only its
  flows), under a new flow *generation* when anything changed;
* the OpenFlow connection (``connected``/``disconnected``) → ``push_plan``: what
  to hand the sync engine after a recompute (the whole desired set once per
  connection, then only diffs); ``pushed`` records which sync generation
  carries which flow generation;
* the sync engine's confirmation (``confirmed``) → the flow generation the
  bridge now holds and the apply latency of every directory update it
  completes;
* → ``status_updates``: which vports of this host must change status in the
  directory: a vport is ``up`` once a flow generation that contains its flows
  has been confirmed installed, ``down`` when its port is gone from the bridge;
  a generation "contains its flows" only if it was compiled from a snapshot
  that holds the vport's whole domain (``DirectoryState.domain_complete``: an
  agent following only its share gets a domain after its first local vport);
* port caching: ``ports_changed`` (the interface watch saw a change) decides
  when the bridge's port rows must be listed again (``take_port_listing``);
  the listing is cached (``ports_listed``) and completed with the gateway
  ports of bare-metal vports (``gateway_ports``, ``local_ports``);
* policy counters: ``counters_due`` says when to ask the bridge for the
  statistics of the counted table, ``awaits_counters``/``counters_received``
  collect the (multipart) reply into per-rule totals (``rule_counters``),
  ``counters_report`` gives them in the directory's shape.

Every method must be called from one thread or under one lock, except
``ports_changed`` (a flag any thread may set). ``state`` and ``ofports`` are
replaced, never mutated, so a reader without the lock (the DHCP app) sees
consistent objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nuage_ryu.agent import counters
from nuage_ryu.vrs.compile import FlowCompiler, uplink
from nuage_ryu.vrs.compile.uplink import UplinkView
from nuage_ryu.vrs.flow import FlowDiff
from nuage_ryu.vrs.view import ExternalUplink, HostView, from_directory, gateway_port
from nuage_ryu.vrs.view_update import update_view

UP = "up"
DOWN = "down"

# What push_plan() answers: hand the sync engine the whole desired set (once per connection,
# so that it reconciles with its read-back), or just the compiler's diff.
FULL = "full"
DIFF = "diff"


@dataclass(frozen=True)
class Confirmation:
    """What a confirmed sync generation means for the agent."""

    generation: int  # the flow generation the bridge now holds
    latencies: list[float] = field(default_factory=list)  # seconds, directory update seen -> confirmed


class AgentCore:
    """Per-bridge state of the agent: inputs, compiled flows, flow generations, port cache, counters."""

    def __init__(self, host_name: str) -> None:
        self.host_name = host_name
        self.compiler = FlowCompiler()
        self.state = None  # nuage_ryu.directory.model.DirectoryState
        self.ofports: dict[str, int] = {}  # vport id -> ofport on this bridge
        self.tunnel_ofport: int | None = None
        self.external: ExternalUplink | None = None  # external connectivity (docs/external.md)
        self.uplink_ports: tuple[int, int] | None = None  # br-phy's (uplink, patch) ofports
        self.view: HostView | None = None
        self.generation = 0  # bumped by every recompute that changed flows
        self.confirmed_generation = 0  # the newest generation the bridge is known to hold
        self._vport_generation: dict[str, int] = {}  # local vport -> generation that first had its flows
        self._compiled_inputs: tuple | None = None  # what the current view was built from
        self._compiled_state = None  # the snapshot the current view was built from
        self.incremental_updates = 0  # recomputes that updated the view per object (for tests, benches)
        self._state_seen_at: float | None = None  # when the directory update of ``state`` was seen
        self._seen_at: dict[int, float] = {}  # generation -> when its directory update was seen
        # The OpenFlow connection, as the sync engine sees it.
        self._connected = False
        self._pushed = False  # the whole desired set went to the sync engine since (re)connect
        self._sync_generation: dict[int, int] = {}  # sync engine generation -> flow generation
        self._sync_confirmed = 0  # the newest sync generation the engine confirmed
        # Port cache: listing every port row is slow in python-ovs at 100+ ports, so the
        # rows are listed again only after the interface watch saw a change.
        self._ports_dirty = True
        self._listed_ofports: dict[str, int] | None = None
        self._listed_tunnel_ofport: int | None = None
        # Policy counters.
        self._counters_xid: int | None = None  # the outstanding flow-stats request
        self._counter_entries: list[tuple[int, int, int, int]] = []
        self.rule_counters: dict[counters.CounterKey, counters.RuleCounter] = {}
        self.unreported = False  # rule_counters changed since the last counters_report()

    # -- inputs ---------------------------------------------------------------
    def set_directory(self, state, seen_at: float | None = None) -> None:
        """The latest directory snapshot; ``seen_at`` (monotonic) is when its update was seen."""
        self.state = state
        self._state_seen_at = seen_at

    def set_ports(self, ofports: Mapping[str, int], tunnel_ofport: int | None) -> None:
        self.ofports = dict(ofports)
        self.tunnel_ofport = tunnel_ofport

    def set_external(self, external: ExternalUplink | None, uplink_ports: tuple[int, int] | None) -> None:
        """How this host reaches the outside (None: no external connectivity) and br-phy's ofports."""
        self.external = external
        self.uplink_ports = uplink_ports if external is not None else None

    def uplink_view(self) -> UplinkView | None:
        """What br-phy's steering flows depend on, from the last recompute (None: none wanted)."""
        if self.view is None or self.uplink_ports is None:
            return None
        return uplink.uplink_view(self.view, *self.uplink_ports)

    # -- outputs --------------------------------------------------------------
    def recompute(self) -> tuple[int, FlowDiff]:
        """Compile the current inputs; returns (generation, diff). An empty diff keeps the generation."""
        if self.state is None:
            return self.generation, FlowDiff()
        inputs = self._view_inputs()
        if inputs == self._compiled_inputs:
            diff = FlowDiff()  # nothing the view reads changed (a resync, an acknowledgment, counters)
        else:
            diff = self._compile()
            self._compiled_inputs = inputs
        if diff:
            self.generation += 1
            if self._state_seen_at is not None:
                self._seen_at.setdefault(self.generation, self._state_seen_at)
        vports = self.state.vports
        for vport_id in self._local_vports():
            # A vport's flows are complete only once the replica holds its whole domain (the
            # monitor condition that brought it is acknowledged): not before may it be ``up``
            # (OVN's "ovn-installed set too early with monitor-all=false").
            if self.state.domain_complete(vports[vport_id].domain):
                self._vport_generation.setdefault(vport_id, self.generation)
        for vport_id in list(self._vport_generation):
            if vport_id not in self.ofports:
                del self._vport_generation[vport_id]
        return self.generation, diff

    def _compile(self) -> FlowDiff:
        """The next view and its flows: updated per changed object when the directory's mirror says
        which changed since the last view's snapshot (``view_update``), else built whole."""
        update = None
        if self.view is not None and self._compiled_state is not None:
            update = update_view(self.view, self._compiled_state, self.state, self.ofports, self.tunnel_ofport,
                                 self.external)
        self._compiled_state = None  # until this compile succeeds (else the next one builds whole)
        if update is None:
            self.view = from_directory(self.state, self.host_name, self.tunnel_ofport, self.ofports, self.external)
            diff = self.compiler.update(self.view)
        else:
            self.view, delta = update
            diff = self.compiler.update(self.view, delta) if delta else FlowDiff()
            self.incremental_updates += 1
        self._compiled_state = self.state
        return diff

    def _view_inputs(self) -> tuple:
        """What ``from_directory`` reads, by identity for the snapshot's maps: the store shares an
        unchanged table's map between snapshots, so equal identities mean an equal view. (The maps
        themselves are kept in the tuple so that their ids cannot be reused by new objects.)"""
        st = self.state
        maps = (st.domains, st.subnets, st.vports, st.hosts, st.policygroups, st.acls)
        # (DirectoryState replaces an empty map by a new {}: all empty maps count as the same.)
        return (tuple(id(m) if m else 0 for m in maps), maps, self.tunnel_ofport, self.ofports, self.external)

    def confirm(self, generation: int) -> None:
        """The sync engine confirmed that the bridge holds the flows of ``generation``."""
        self.confirmed_generation = max(self.confirmed_generation, generation)

    def status_updates(self) -> list[tuple[str, str]]:
        """(vport id, status) pairs to write to the directory for this host's vports."""
        if self.state is None:
            return []
        out = []
        for vport in self.state.vports_on_host(self.host_name):
            gen = self._vport_generation.get(vport.id)
            want = UP if gen is not None and gen <= self.confirmed_generation else DOWN
            if vport.status != want:
                out.append((vport.id, want))
        return sorted(out)

    def _local_vports(self) -> list[str]:
        vports = self.state.vports if self.state is not None else {}
        return [vid for vid in self.ofports if vid in vports and vports[vid].host == self.host_name]

    def desired(self):
        """All desired flows (for a full reconcile after (re)connect)."""
        return self.compiler.desired()

    # -- the sync engine: which generation it holds ---------------------------
    def connected(self) -> None:
        """The bridge (re)connected: a new sync engine, which needs the whole desired set first.

        A counters request of the previous connection is forgotten too: its reply will not come
        on this one (the old connection's end may be reported after this, or never).
        """
        self._connected = True
        self._pushed = False
        self._sync_generation.clear()
        self._sync_confirmed = 0
        self._counters_xid = None

    def disconnected(self) -> None:
        """The bridge's connection is gone (its flows stay); an outstanding counters request is lost."""
        self._connected = False
        self._counters_xid = None

    def push_plan(self, diff: FlowDiff | None = None) -> str | None:
        """What to hand the sync engine now, after a recompute that produced ``diff`` (None: on connect).

        FULL: the whole desired set (``desired()``), once per connection; DIFF: ``diff``; None:
        nothing (disconnected, no directory yet, or nothing changed).
        """
        if not self._connected or self.state is None:
            return None
        if not self._pushed:
            return FULL
        return DIFF if diff else None

    def pushed(self, sync_generation: int, now: float) -> Confirmation | None:
        """The sync engine took the current flows as its ``sync_generation`` (at ``now``, monotonic).

        The engine confirms at once, while taking them, when the bridge already holds them (e.g.
        after an agent restart): that confirmation came before this call could say which flow
        generation it was, so it is returned here (as ``confirmed`` would); else None.
        """
        self._pushed = True
        self._sync_generation[sync_generation] = self.generation
        if sync_generation <= self._sync_confirmed:
            return self.confirmed(sync_generation, now)
        return None

    def confirmed(self, sync_generation: int, now: float) -> Confirmation | None:
        """The sync engine confirmed ``sync_generation`` at ``now`` (monotonic).

        Returns the flow generation the bridge now holds and the latencies of the directory
        updates it completes, or None when that sync generation carries no flow generation of
        this core (yet: see ``pushed``).
        """
        self._sync_confirmed = max(self._sync_confirmed, sync_generation)
        generation = self._sync_generation.pop(sync_generation, None)
        for older in [g for g in self._sync_generation if g < sync_generation]:
            del self._sync_generation[older]  # superseded: their flows are part of this one
        if generation is None:
            return None
        self.confirm(generation)
        latencies = [now - self._seen_at.pop(g) for g in sorted(self._seen_at) if g <= generation]
        return Confirmation(generation, latencies)

    # -- port cache -----------------------------------------------------------
    def ports_changed(self) -> None:
        """The bridge's interfaces changed: list them again before the next recompute (any thread)."""
        self._ports_dirty = True

    def take_port_listing(self) -> bool:
        """True when the bridge's vport ports must be listed now (then call ``ports_listed``).

        The request is cleared before the listing, so that a change during it asks again.
        """
        if not self._ports_dirty and self._listed_ofports is not None:
            return False
        self._ports_dirty = False
        return True

    def ports_listed(self, vport_ports: Iterable[tuple[str, int | None]], tunnel_ofport: int | None) -> None:
        """The bridge's (vport id, ofport) port rows and its VXLAN ofport, as just listed."""
        self._listed_ofports = {vport_id: ofport for vport_id, ofport in vport_ports if ofport and ofport > 0}
        self._listed_tunnel_ofport = tunnel_ofport

    def gateway_ports(self, state) -> list[tuple[str, str]]:
        """(vport id, interface) of this host's bare-metal vports: each is reached through the gateway
        port its directory entry names (its ofport is looked up on every recompute)."""
        out = []
        for vport in state.vports_on_host(self.host_name):
            ifname = gateway_port(vport)
            if ifname:
                out.append((vport.id, ifname))
        return out

    def local_ports(self, gateway_ofports: Mapping[str, int]) -> tuple[dict[str, int], int | None]:
        """({vport id: ofport}, VXLAN ofport): the cached listing plus the gateway ports' ofports."""
        ofports = dict(self._listed_ofports or {})
        ofports.update(gateway_ofports)
        return ofports, self._listed_tunnel_ofport

    # -- policy counters ------------------------------------------------------
    def counters_due(self) -> bool:
        """True when the counted table's statistics should be requested (connected, none outstanding)."""
        return self._connected and self._counters_xid is None

    def counters_requested(self, xid: int) -> None:
        """A flow-stats request of ``counters.COUNTED_TABLE`` went out with ``xid``."""
        self._counters_xid = xid
        self._counter_entries = []

    def awaits_counters(self, xid: int) -> bool:
        """True when a flow-stats reply with ``xid`` answers the counters request (not the sync engine's)."""
        return self._counters_xid is not None and xid == self._counters_xid

    def counters_received(self, entries: Iterable[tuple[int, int, int, int]], more: bool) -> bool:
        """One part of the counters reply, as (table, cookie, packets, bytes) entries.

        True when it was the last part: ``rule_counters`` then holds the new totals.
        """
        self._counter_entries += entries
        if more:
            return False
        self._counters_xid = None
        self.rule_counters = counters.aggregate(counters.CounterIndex(self.view), self._counter_entries)
        self._counter_entries = []
        self.unreported = True
        return True

    def counters_report(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        """The latest counters as the directory wants them: (per rule, per domain default action)."""
        self.unreported = False
        return counters.directory_report(self.rule_counters)
