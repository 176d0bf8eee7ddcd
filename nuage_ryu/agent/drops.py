"""Per-vport policy drop counters from flow statistics (pure).

What the policy tables deny (a deny rule, a domain's default deny) goes to POLICY_DROP, where each
local vport has two drop flows carrying its own cookie (``compile.vport``): one for what it sent
(matched by REG_SRC_PORT, priority ``PRIO_DROP_SENT``) and one for what was sent to it from the
overlay or the outside (REG_DST_PORT, ``PRIO_DROP_RECEIVED``). Their statistics, read back here,
are the vport's drops; the flow's priority tells the direction.

A packet between two local vports is decided once, on the sending side, so it counts as
``from_vport`` of its sender only; a packet between hosts denied on the sending host counts there
(``from_vport``) and never reaches the receiver.

``DropPoll`` is the request/reply state of one bridge's statistics read of POLICY_DROP (like the
core's rule counters, but a separate request: the two tables are read independently).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nuage_ryu.agent.counters import RuleCounter
from nuage_ryu.vrs.cookies import CookieKind, cookie_for
from nuage_ryu.vrs.pipeline import POLICY_DROP, PRIO_DROP_RECEIVED, PRIO_DROP_SENT

DROP_TABLE = POLICY_DROP.number
FROM_VPORT = "from_vport"  # the vport sent it
TO_VPORT = "to_vport"  # it was addressed to the vport
DIRECTION_OF_PRIORITY = {PRIO_DROP_SENT: FROM_VPORT, PRIO_DROP_RECEIVED: TO_VPORT}


@dataclass(frozen=True)
class DropKey:
    vport_id: str
    direction: str  # FROM_VPORT | TO_VPORT


def drop_index(vport_ids: Iterable[str]) -> dict[int, str]:
    """cookie -> vport id for the local vports ``vport_ids`` (the cookie of their POLICY_DROP flows)."""
    return {cookie_for(CookieKind.VPORT, vid): vid for vid in vport_ids}


def aggregate(index: dict[int, str], entries: Iterable[tuple[int, int, int, int, int]]
              ) -> dict[DropKey, RuleCounter]:
    """Sum flow-stats ``(table, priority, cookie, packets, bytes)`` entries of POLICY_DROP per vport and
    direction; every indexed vport gets both directions (0 until something is dropped)."""
    out = {DropKey(vid, d): RuleCounter() for vid in index.values() for d in (FROM_VPORT, TO_VPORT)}
    for table, priority, cookie, packets, nbytes in entries:
        vid = index.get(cookie)
        direction = DIRECTION_OF_PRIORITY.get(priority)
        if table != DROP_TABLE or vid is None or direction is None:
            continue
        counter = out[DropKey(vid, direction)]
        counter.packets += packets
        counter.bytes += nbytes
    return out


class DropPoll:
    """One outstanding flow-stats request of POLICY_DROP at a time, its (multipart) reply collected."""

    def __init__(self) -> None:
        self._xid: int | None = None
        self._entries: list[tuple[int, int, int, int, int]] = []

    def due(self) -> bool:
        """True when no request is outstanding."""
        return self._xid is None

    def requested(self, xid: int) -> None:
        """A request went out with ``xid``."""
        self._xid = xid
        self._entries = []

    def awaits(self, xid: int) -> bool:
        """True when a flow-stats reply with ``xid`` answers this poll's request."""
        return self._xid is not None and xid == self._xid

    def received(self, index: dict[int, str], entries: Iterable[tuple[int, int, int, int, int]],
                 more: bool) -> dict[DropKey, RuleCounter] | None:
        """One part of the reply; the totals once the last part is in, else None."""
        self._entries += entries
        if more:
            return None
        totals = aggregate(index, self._entries)
        self.forget()
        return totals

    def forget(self) -> None:
        """The connection changed: an outstanding request's reply will not come."""
        self._xid = None
        self._entries = []
