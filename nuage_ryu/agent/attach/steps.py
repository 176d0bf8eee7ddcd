"""Steps paired with their undo: what lets a failed attach leave nothing behind.

An attach runs its steps through one ``Rollback``; each step that changes the
world registers how to take the change back. When a later step fails,
``undo()`` runs the registered undos in reverse order and reports (does not
raise) the ones that failed, so the caller's error can say what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Rollback:
    """The undos of the steps done so far."""

    def __init__(self) -> None:
        self._undos: list[tuple[str, Callable[[], object]]] = []

    def step(self, name: str, do: Callable[[], T], undo: Callable[[T], object]) -> T:
        """Run ``do``; once it has succeeded, register ``undo(its result)`` as ``name``."""
        result = do()
        self._undos.append((name, lambda: undo(result)))
        return result

    def guarded_step(self, name: str, do: Callable[[], T], undo: Callable[[], object]) -> T:
        """Register ``undo`` first, then run ``do``: for a step that may fail half-done.

        ``undo`` must then be harmless when ``do`` did nothing (deleting what is absent).
        """
        self._undos.append((name, undo))
        return do()

    def undo(self) -> list[str]:
        """Run the undos in reverse; return "name: error" for each one that failed."""
        failed = []
        for name, action in reversed(self._undos):
            try:
                action()
            except Exception as exc:  # keep undoing the rest
                failed.append(f"{name}: {exc}")
        return failed
