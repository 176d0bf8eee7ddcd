"""The VRS agent's decisions for one bridge, without I/O.

``AgentCore`` takes what the outside world says — the latest directory
snapshot, the bridge's local vport ports (from OVSDB) and the VXLAN port — and
answers two questions:

* which flows must change on the bridge (``recompute`` → ``FlowDiff``, from the
  incremental ``FlowCompiler``; a change to one vport recompiles only its flows);
* which vports of this host must change status in the directory
  (``status_updates``): a vport is ``up`` once a flow generation that contains
  its flows has been confirmed installed by the sync engine, ``down`` when its
  port is gone from the bridge.

The app (``apps/vrs_agent.py``) owns the threads and sockets and calls these
from one worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping

from nuage_ryu.vrs import policy  # noqa: F401 - registers the ACL owner kind with the compiler
from nuage_ryu.vrs.compiler import FlowCompiler
from nuage_ryu.vrs.flow import FlowDiff
from nuage_ryu.vrs.view import HostView, from_directory

UP = "up"
DOWN = "down"


class AgentCore:
    """Per-bridge state of the agent: inputs, compiled flows, flow generations."""

    def __init__(self, host_name: str) -> None:
        self.host_name = host_name
        self.compiler = FlowCompiler()
        self.state = None  # nuage_ryu.directory.model.DirectoryState
        self.ofports: dict[str, int] = {}  # vport id -> ofport on this bridge
        self.tunnel_ofport: int | None = None
        self.view: HostView | None = None
        self.generation = 0  # bumped by every recompute that changed flows
        self.confirmed_generation = 0  # the newest generation the bridge is known to hold
        self._vport_generation: dict[str, int] = {}  # local vport -> generation that first had its flows

    # -- inputs ---------------------------------------------------------------
    def set_directory(self, state) -> None:
        self.state = state

    def set_ports(self, ofports: Mapping[str, int], tunnel_ofport: int | None) -> None:
        self.ofports = dict(ofports)
        self.tunnel_ofport = tunnel_ofport

    # -- outputs --------------------------------------------------------------
    def recompute(self) -> tuple[int, FlowDiff]:
        """Compile the current inputs; returns (generation, diff). An empty diff keeps the generation."""
        if self.state is None:
            return self.generation, FlowDiff()
        self.view = from_directory(self.state, self.host_name, self.tunnel_ofport, self.ofports)
        diff = self.compiler.update(self.view)
        if diff:
            self.generation += 1
        for vport_id in self._local_vports():
            self._vport_generation.setdefault(vport_id, self.generation)
        for vport_id in list(self._vport_generation):
            if vport_id not in self.ofports:
                del self._vport_generation[vport_id]
        return self.generation, diff

    def confirm(self, generation: int) -> None:
        """The sync engine confirmed that the bridge holds the flows of ``generation``."""
        self.confirmed_generation = max(self.confirmed_generation, generation)

    def status_updates(self) -> list[tuple[str, str]]:
        """(vport id, status) pairs to write to the directory for this host's vports."""
        if self.state is None:
            return []
        out = []
        for vport in self.state.vports.values():
            if vport.host != self.host_name:
                continue
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
