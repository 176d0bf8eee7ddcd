"""What a planned request changes: row operations on model objects, applied as one transaction.

The store turns a ``Change`` into one OVSDB transaction; ``apply_change`` applies it in
memory (what the database does), for tests and tools that need a directory without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from nuage_ryu.directory.model import KINDS, OBJECT_CLASSES, DirectoryState


@dataclass
class Op:
    """One row operation. ``fields`` use model attribute names and model values."""

    action: str  # insert | update | delete
    kind: str
    id: str
    fields: dict = field(default_factory=dict)


@dataclass
class Change:
    """Everything one request changes, applied as one transaction.

    result: (kind, id) of the object the request returns.
    guards: (kind, id, column) to verify-and-increment, so that concurrent writers
      (other API processes) that checked the same invariant conflict and re-plan.
    auto_assigned: an address/VNI/zone was picked automatically, so an index
      conflict means "someone else took it meanwhile": re-plan instead of failing.
    """

    ops: list[Op] = field(default_factory=list)
    result: tuple[str, str] | None = None
    guards: list[tuple[str, str, str]] = field(default_factory=list)
    auto_assigned: bool = False


def new_object(op: Op):
    """The model object an ``insert`` operation creates (as the database's row will read back)."""
    return OBJECT_CLASSES[op.kind](id=op.id, **op.fields)


def apply_change(state: DirectoryState, change: Change) -> DirectoryState:
    """Apply a planned change in memory (what the database does): a new state, ``state`` untouched.

    Used by tests and tools that need a directory without a database. Does not
    re-check invariants; the planner did.
    """
    maps = {plural: dict(state.table(kind)) for kind, (_t, plural, _p) in KINDS.items()}
    for kind, obj_id, column in change.guards:
        table = maps[KINDS[kind][1]]
        table[obj_id] = replace(table[obj_id], **{column: getattr(table[obj_id], column) + 1})
    for op in change.ops:
        table = maps[KINDS[op.kind][1]]
        if op.action == "insert":
            table[op.id] = new_object(op)
        elif op.action == "update":
            table[op.id] = replace(table[op.id], **op.fields)
        else:
            table.pop(op.id, None)
    return DirectoryState(**maps)
