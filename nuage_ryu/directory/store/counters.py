"""Agents' counter reports: the check of a report, the ``RowChange`` that stores it, and which
hosts' reports a store replicates.

A report is one ``HostCounters`` row per host (owned by its ``Host`` row, so deleting the host
deletes it), written with no ``verify``: reports of different hosts, and REST writes, never
conflict. Its maps are weak references to rules and domains, so a rule deleted while a report
is in flight is dropped by the database itself and the write never fails because of it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from nuage_ryu.directory.errors import NotFound, Unavailable, ValidationError
from nuage_ryu.directory.model import DirectoryState, HostCounters
from nuage_ryu.directory.store.connection import Connection
from nuage_ryu.directory.store.mirror import COUNTERS_TABLE, Mirror
from nuage_ryu.directory.store.rows import linked_rows
from nuage_ryu.directory.store.transactions import RowChange

# OVSDB integers are signed 64-bit; OVS counters are unsigned (and never get near this).
COUNTER_MAX = 2**63 - 1

Counts = dict[str, tuple[int, int]]


def check_counts(what: str, values) -> Counts:
    """id -> (packets, bytes) with integers >= 0 (capped at the OVSDB maximum); ValidationError if not."""
    if not isinstance(values, dict):
        raise ValidationError(f"{what} must be a dict of id -> (packets, bytes)")
    out = {}
    for key, value in values.items():
        try:
            packets, nbytes = value
        except (TypeError, ValueError):
            raise ValidationError(f"{what}[{key!r}] must be (packets, bytes)") from None
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (packets, nbytes)):
            raise ValidationError(f"{what}[{key!r}]: counts must be integers >= 0")
        out[str(key)] = (min(packets, COUNTER_MAX), min(nbytes, COUNTER_MAX))
    return out


def plan_report(conn: Connection, mirror: Mirror, host_name: str, rules: Counts, defaults: Counts
                ) -> Callable[[DirectoryState], RowChange]:
    """The planner of one host's complete report (ids that do not exist are left out).

    It reads the host's link to its counter row from the IDL, so it runs under the IDL lock,
    which the transaction path holds while planning.
    """

    def plan(state: DirectoryState) -> RowChange:
        host = state.host_by_name(host_name)
        if host is None:
            raise NotFound(f"host {host_name} not found")
        want_rules = {k: v for k, v in rules.items() if k in state.acls}
        want_defaults = {k: v for k, v in defaults.items() if k in state.domains}
        host_row = conn.idl.tables["Host"].rows[uuid.UUID(host.id)]
        link = linked_rows(host_row, "counters")
        report = mirror.counter_report(str(link[0])) if link else None
        if link and report is None:
            # Linked, but the row has not reached our replica yet (condition just acked).
            return RowChange("the counters", not_replicated=True)
        if report is not None and report.rules == want_rules and report.defaults == want_defaults:
            return RowChange("the counters")
        return RowChange("the counters", _build(host_name, host_row, link, report, want_rules, want_defaults))

    return plan


def _build(host_name: str, host_row, link: list, report: HostCounters | None, rules: Counts,
           defaults: Counts) -> Callable:
    def build(idl, txn) -> None:
        table = idl.tables[COUNTERS_TABLE]
        if link:
            row = table.rows[link[0]]
        else:
            row = txn.insert(table)
            row.host = host_name
            host_row.counters = [row]
        if report is None or report.rules != rules:
            row.rule_packets = {uuid.UUID(k): v[0] for k, v in rules.items()}
            row.rule_bytes = {uuid.UUID(k): v[1] for k, v in rules.items()}
        if report is None or report.defaults != defaults:
            row.default_packets = {uuid.UUID(k): v[0] for k, v in defaults.items()}
            row.default_bytes = {uuid.UUID(k): v[1] for k, v in defaults.items()}

    return build


class CounterWatch:
    """Which hosts' counter rows a store replicates: all (the REST API), or only those of the hosts
    it reports for (agents), so that N agents do not each receive the counters of all N hosts."""

    def __init__(self, all_counters: bool, hosts: frozenset[str] = frozenset()):
        """``hosts``: hosts whose rows the store's monitor conditions already ask for (a scoped store)."""
        self.all_counters = all_counters
        self._fixed = bool(hosts)
        self._hosts: set[str] = set(hosts)

    def watch(self, conn: Connection, host_name: str, deadline: float) -> None:
        """Make sure this host's counter row is replicated (caller holds the IDL lock)."""
        if self.all_counters or host_name in self._hosts:
            return
        if self._fixed:
            raise ValidationError(f"host {host_name} is not one of the hosts this store follows")
        self._hosts.add(host_name)
        conn.idl.cond_change(COUNTERS_TABLE, [["host", "==", h] for h in sorted(self._hosts)])
        cond = conn.idl.tables[COUNTERS_TABLE].condition_state
        # ovsdb-server sends the rows the new condition selects before it acknowledges it.
        while cond.new is not None or cond.requested is not None:
            if time.monotonic() > deadline:
                raise Unavailable("the directory database did not acknowledge the counters monitor")
            conn.run_once(0.05)
