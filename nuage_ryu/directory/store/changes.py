"""Which objects each published snapshot changed: what lets an agent update its view per object.

The mirror knows, for every batch of row changes it publishes, the ids it touched per table
(``DirectoryState`` plural names: ``"vports"``, ``"acls"``...). It records them here under the
snapshot's version; a reader holding an older snapshot of the same mirror asks for the union
of the changes since (``DirectoryState.changes_since``). Only the last ``keep`` versions are
kept: a reader that fell further behind gets None and rebuilds from the whole snapshot, as it
does after a reconnect's reload (recorded as None too: the mirror then does not know).

Written by the IDL thread under the store's lock, read by the agent's worker without it: each
version's entry is stored once, complete, and never changed (a dict item assignment and a
lookup are atomic), so a reader sees a version whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping


class ChangeLog:
    """Ids changed per published version (one mirror's), for the last ``keep`` versions."""

    def __init__(self, keep: int = 1024) -> None:
        self.keep = keep
        self._by_version: dict[int, Mapping[str, frozenset[str]] | None] = {}

    def record(self, version: int, changes: Mapping[str, frozenset[str]] | None) -> None:
        """``version`` differs from ``version - 1`` by ``changes`` (None: unknown, e.g. a reload)."""
        self._by_version[version] = changes
        self._by_version.pop(version - self.keep, None)

    def since(self, old: int, new: int) -> dict[str, frozenset[str]] | None:
        """The ids changed from version ``old`` to ``new``, per table; None when not known."""
        if new < old or new - old > self.keep:
            return None
        out: dict[str, set[str]] = {}
        missing = object()
        for version in range(old + 1, new + 1):
            changes = self._by_version.get(version, missing)
            if changes is missing or changes is None:
                return None
            for table, ids in changes.items():
                out.setdefault(table, set()).update(ids)
        return {table: frozenset(ids) for table, ids in out.items()}
