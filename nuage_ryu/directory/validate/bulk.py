"""Planning a bulk request: an ordered list of create/update/delete operations -> ONE ``Change``.

Each operation is planned by the planner its single call uses (``plan_create``, ``plan_update``,
``plan_delete``) on the state the earlier operations left (``WorkingState``), so it is validated
exactly as that call would be; the first refusal fails the whole request, naming the operation.
The resulting row operations are merged per object (create then update = one insert; create then
delete = nothing) into one change, which the store commits as one transaction: all or nothing.

A create may carry a client-chosen ``ref``; a later operation names that object as ``"$ref"``
wherever the API takes an object id: ``parent``, ``id``, and inside ``body`` the id fields
(vport ``policygroups``, rule ``source``/``destination`` ``id``).

Tokens are not created in bulk (their secret is shown once, by ``POST /tokens``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nuage_ryu.directory.errors import BadRequest, DirectoryError, PayloadTooLarge, ValidationError
from nuage_ryu.directory.model import FIELDS, KINDS, DirectoryState
from nuage_ryu.directory.validate.change import Change, Op
from nuage_ryu.directory.validate.create import plan_create
from nuage_ryu.directory.validate.delete import plan_delete
from nuage_ryu.directory.validate.update import plan_update
from nuage_ryu.directory.validate.working import WorkingState

MAX_OPERATIONS = 2000
ACTIONS = ("create", "update", "delete")
BULK_KINDS = tuple(k for k in KINDS if k != "token")
MAX_REF = 255
_OP_KEYS = {"create": {"action", "kind", "parent", "ref", "body"},
            "update": {"action", "kind", "id", "body"},
            "delete": {"action", "kind", "id", "cascade"}}


@dataclass(frozen=True)
class BulkOperation:
    """One operation of a bulk request, as parsed (references not yet resolved)."""

    index: int
    action: str  # create | update | delete
    kind: str
    parent: str | None = None  # create under this parent (id or "$ref")
    id: str | None = None  # update/delete this object (id or "$ref")
    body: dict = field(default_factory=dict)
    ref: str | None = None  # create: the name later operations use for the new object
    cascade: bool = False

    def describe(self) -> str:
        """'create vport ref web-1' / 'delete zone 1a2b...' for error messages."""
        target = f"ref {self.ref!r}" if self.ref else (self.id or "")
        name = self.body.get("name") if isinstance(self.body, dict) else None
        if not target and name:
            target = repr(name)
        return f"{self.action} {self.kind}" + (f" {target}" if target else "")


class BulkOperationError:
    """Turns an error of one operation into the bulk's error: same class, message naming the operation."""

    @staticmethod
    def wrap(op: BulkOperation, exc: DirectoryError) -> DirectoryError:
        message = f"operation {op.index} ({op.describe()}): {exc.message}"
        try:
            err = type(exc)(message)
        except TypeError:  # an error class with other arguments: keep its status and code
            err = DirectoryError(message)
            err.status, err.code = exc.status, exc.code
        err.operation = op.index
        return err


@dataclass
class BulkPlan:
    """The merged change and, per operation in order, the id of the object it concerns."""

    change: Change
    ids: list[str]


def _string(value, what: str, index: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"operation {index}: {what} must be a non-empty string")
    return value


def parse_bulk(body, max_operations: int = MAX_OPERATIONS) -> list[BulkOperation]:
    """The operations of a bulk body ``{"operations": [...]}`` (JSON types and keys; -> 400/413)."""
    if not isinstance(body, dict) or set(body) != {"operations"}:
        raise BadRequest('body must be {"operations": [{"action": ..., "kind": ...}, ...]}')
    raw = body["operations"]
    if not isinstance(raw, list) or not raw:
        raise BadRequest("operations must be a non-empty list")
    if len(raw) > max_operations:
        raise PayloadTooLarge(f"{len(raw)} operations; a bulk request takes at most {max_operations}")
    ops: list[BulkOperation] = []
    refs: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"operation {index} must be an object")
        action = item.get("action")
        if action not in ACTIONS:
            raise BadRequest(f"operation {index}: action must be one of {', '.join(ACTIONS)}")
        kind = item.get("kind")
        if kind not in BULK_KINDS:
            raise BadRequest(f"operation {index}: kind must be one of {', '.join(BULK_KINDS)}")
        extra = set(item) - _OP_KEYS[action]
        if extra:
            raise BadRequest(f"operation {index}: {action} takes only {', '.join(sorted(_OP_KEYS[action]))}; "
                             f"unexpected {', '.join(sorted(extra))}")
        body_ = item.get("body", {})
        if action != "delete" and not isinstance(body_, dict):
            raise BadRequest(f"operation {index}: body must be an object")
        parent = ref = obj_id = None
        cascade = False
        if action == "create":
            if KINDS[kind][2] is not None:
                parent = _string(item.get("parent"), "parent", index)
            elif "parent" in item:
                raise BadRequest(f"operation {index}: a {kind} has no parent")
            ref = _string(item.get("ref"), "ref", index, required=False)
            if ref is not None:
                if len(ref) > MAX_REF or ref.startswith("$"):
                    raise BadRequest(f"operation {index}: ref must be 1..{MAX_REF} characters, not starting "
                                     "with '$'")
                if ref in refs:
                    raise BadRequest(f"operation {index}: ref {ref!r} is already used by an earlier operation")
                refs.add(ref)
        else:
            obj_id = _string(item.get("id"), "id", index)
            if action == "delete":
                cascade = item.get("cascade", False)
                if not isinstance(cascade, bool):
                    raise BadRequest(f"operation {index}: cascade must be true or false")
        ops.append(BulkOperation(index, action, kind, parent, obj_id, body_ if action != "delete" else {},
                                 ref, cascade))
    return ops


class _Refs:
    """Refs defined so far: name -> (kind, id)."""

    def __init__(self):
        self.known: dict[str, tuple[str, str]] = {}

    def resolve(self, value: str, expected: str | None, what: str) -> str:
        if not isinstance(value, str) or not value.startswith("$"):
            return value
        found = self.known.get(value[1:])
        if found is None:
            raise BadRequest(f"{what}: unknown reference {value!r} (a ref is defined by the \"ref\" of an "
                             "earlier create)")
        kind, obj_id = found
        if expected is not None and kind != expected:
            raise ValidationError(f"{what}: reference {value!r} is a {kind}, not a {expected}")
        return obj_id

    def body(self, kind: str, body: dict) -> dict:
        """A copy of ``body`` with references in its id fields replaced by ids."""
        out = dict(body)
        for f in FIELDS[kind]:
            value = out.get(f.name)
            if value is None:
                continue
            if f.kind == "ids" and isinstance(value, list):
                out[f.name] = [self.resolve(v, "policygroup", f.name) for v in value]
            elif f.kind == "endpoint" and isinstance(value, dict) and "id" in value:
                out[f.name] = {**value, "id": self.resolve(value["id"], value.get("type"), f"{f.name}.id")}
            elif f.kind == "id":
                out[f.name] = self.resolve(value, f.name if f.name in KINDS else None, f.name)
        return out


# Called before each operation is planned, on the working state, with the resolved parent and object
# ids: raises (NotFound/Forbidden) what the single call's authorisation would.
Authorize = Callable[[DirectoryState, BulkOperation, str | None, str | None], None]


def plan_bulk(state: DirectoryState, operations: list[BulkOperation], new_ids: list[str], *,
              authorize: Authorize | None = None, rand: Callable[[int], int] | None = None) -> BulkPlan:
    """Plan every operation in order on a working state; one merged change, or the first error.

    ``new_ids[i]``: the id operation i creates (chosen once by the caller, so that a re-plan after a
    lost race or a lost reply inserts the same rows).
    """
    working = WorkingState(state)
    refs = _Refs()
    changes: list[Change] = []
    ids: list[str] = []
    for op in operations:
        try:
            current = working.state
            if op.action == "create":
                parent_kind = KINDS[op.kind][2]
                parent = refs.resolve(op.parent, parent_kind, "parent") if op.parent else None
                if authorize:
                    authorize(current, op, parent, None)
                change = plan_create(current, op.kind, parent, refs.body(op.kind, op.body),
                                     new_id=new_ids[op.index], rand=rand)
                obj_id = change.result[1]
                if op.ref:
                    refs.known[op.ref] = (op.kind, obj_id)
            else:
                obj_id = refs.resolve(op.id, op.kind, "id")
                if authorize:
                    authorize(current, op, None, obj_id)
                if op.action == "update":
                    change = plan_update(current, op.kind, obj_id, refs.body(op.kind, op.body))
                else:
                    change = plan_delete(current, op.kind, obj_id, op.cascade)
        except DirectoryError as exc:
            raise BulkOperationError.wrap(op, exc) from None
        working.apply(change)
        changes.append(change)
        ids.append(obj_id)
    return BulkPlan(merge_changes(changes), ids)


def merge_changes(changes: list[Change]) -> Change:
    """One change doing what ``changes`` do in order, with one row operation per object."""
    merged: dict[str, Op] = {}
    inserted: set[str] = set()
    for change in changes:
        for op in change.ops:
            prev = merged.get(op.id)
            if op.action == "insert":
                merged[op.id] = Op("insert", op.kind, op.id, dict(op.fields))
                inserted.add(op.id)
            elif op.action == "update":
                if prev is None:
                    merged[op.id] = Op("update", op.kind, op.id, dict(op.fields))
                else:
                    prev.fields.update(op.fields)
            elif op.id in inserted:  # created and deleted within the bulk: never written
                merged.pop(op.id, None)
            else:
                merged[op.id] = Op("delete", op.kind, op.id)
    touched = inserted | {i for i, op in merged.items() if op.action == "delete"}
    guards: list[tuple[str, str, str]] = []
    for change in changes:
        for guard in change.guards:
            # A guard on a row this bulk inserts or deletes protects nothing another writer could race on.
            if guard[1] not in touched and guard not in guards:
                guards.append(guard)
    return Change(ops=list(merged.values()), result=None, guards=guards,
                  auto_assigned=any(c.auto_assigned for c in changes))
