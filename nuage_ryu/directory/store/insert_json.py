"""New rows as OVSDB ``insert`` operations in JSON, written directly instead of through python-ovs rows.

A row the transaction path inserts has known, plain column values (``rows.columns``). Setting
them on a python-ovs ``Row`` costs per column a default computation, a ``Datum`` conversion and
a constraint check, and ``Transaction.commit`` then turns every ``Datum`` back into JSON: ≈40 %
of a bulk load's CPU. ``RowEncoder`` compiles, once per column from the IDL's schema, a small
function that checks a value against the column's type (atomic type, enum, integer range, string
length, set size) and returns its JSON as ``Datum.to_json`` would write it; the operation goes
into the transaction with ``Transaction.add_op``. Values the planner let through but the schema
refuses are a ``ValidationError`` (422) here, as python-ovs's checks were before.

A column whose value is the type's default is left out of the row: the database fills it in,
and its update echoes a new row without it (see ``store/echo.py``, which compares the two).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import ovs.db.idl
import ovs.db.types as types

from nuage_ryu.directory.errors import ValidationError

_Encoder = Callable[[object], object]
_DEFAULT_ATOMS = {types.StringType: "", types.IntegerType: 0, types.RealType: 0.0, types.BooleanType: False}
_ZERO_UUID = ["uuid", str(uuid.UUID(int=0))]


class _Refused(Exception):
    """A value the column's type does not take (turned into a ValidationError naming the column)."""


def _atom_encoder(base: types.BaseType) -> _Encoder:
    """value -> its JSON atom, checked against ``base`` (python-ovs ``Atom.check_constraints``)."""
    atomic = base.type
    enum = None if base.enum is None else frozenset(atom.value for atom in base.enum.values)
    if atomic == types.StringType:
        min_len, max_len = base.min_length, base.max_length
        checked_len = min_len > 0 or max_len < (1 << 62)

        def string(value):
            if type(value) is not str:
                raise _Refused(f"is not a string but {type(value).__name__}")
            if "\x00" in value:
                raise _Refused("contains a NUL character, which the directory database cannot store")
            if enum is not None and value not in enum:
                raise _Refused(f"is {value!r}, not one of {', '.join(sorted(enum))}")
            if checked_len and not min_len <= len(value.encode()) <= max_len:
                raise _Refused(f"is not {min_len}..{max_len} bytes long")
            return value
        return string
    if atomic == types.IntegerType:
        low, high = base.min, base.max

        def integer(value):
            if type(value) is not int:  # bool is an int, and python-ovs refuses it too
                raise _Refused(f"is not an integer but {type(value).__name__}")
            if (low is not None and value < low) or (high is not None and value > high):
                raise _Refused(f"is {value}, out of range {low}..{high}")
            if enum is not None and value not in enum:
                raise _Refused(f"is {value}, not one of {sorted(enum)}")
            return value
        return integer
    if atomic == types.RealType:
        def real(value):
            if type(value) not in (int, float):
                raise _Refused(f"is not a number but {type(value).__name__}")
            value = float(value)
            if (base.min is not None and value < base.min) or (base.max is not None and value > base.max):
                raise _Refused(f"is {value}, out of range {base.min}..{base.max}")
            return value
        return real
    if atomic == types.BooleanType:
        def boolean(value):
            if type(value) is not bool:
                raise _Refused(f"is not true or false but {type(value).__name__}")
            return value
        return boolean
    if atomic == types.UuidType:
        def reference(value):
            if not isinstance(value, uuid.UUID):
                raise _Refused(f"is not a UUID but {type(value).__name__}")
            return ["uuid", str(value)]
        return reference
    raise ValueError(f"unsupported atomic type {atomic}")  # pragma: no cover - the schema has no other


def _order(atom):
    """What a JSON atom sorts and deduplicates by: a UUID by its text (= the server's order), else itself."""
    return atom[1] if type(atom) is list else atom


def column_encoder(column_type: types.Type) -> tuple[_Encoder, object]:
    """(value -> JSON datum, the JSON of the column's default) for one column's type.

    Values as ``rows.columns`` gives them: a scalar for a column of exactly one value, a list
    (or one value) for an optional or set column, a dict for a map.
    """
    key = _atom_encoder(column_type.key)
    n_min, n_max = column_type.n_min, column_type.n_max
    if column_type.is_scalar():
        default = _ZERO_UUID if column_type.key.type == types.UuidType else _DEFAULT_ATOMS[column_type.key.type]
        return key, default
    if column_type.is_map():
        value = _atom_encoder(column_type.value)

        def mapping(m):
            if not isinstance(m, dict):
                raise _Refused(f"is not a map but {type(m).__name__}")
            if not n_min <= len(m) <= n_max:
                raise _Refused(f"has {len(m)} entries, the column takes {n_min}..{n_max}")
            pairs = {}
            for k, v in m.items():
                atom = key(k)
                pairs[_order(atom)] = [atom, value(v)]
            return ["map", [pairs[k] for k in sorted(pairs)]]
        return mapping, ["map", []]

    def members(values):
        if not isinstance(values, (list, tuple, set, frozenset)):
            values = (values,)  # one value (python-ovs takes it too): e.g. an optional reference
        atoms = {}
        for v in values:
            atom = key(v)
            atoms[_order(atom)] = atom
        if not n_min <= len(atoms) <= n_max:
            raise _Refused(f"has {len(atoms)} values, the column takes {n_min}..{n_max}")
        if len(atoms) == 1:  # a set of one is written as its atom (Datum.to_json, and the server)
            return next(iter(atoms.values()))
        return ["set", [atoms[k] for k in sorted(atoms)]]
    return members, ["set", []]


class RowEncoder:
    """Builds ``insert`` operations for the tables of one IDL (column encoders compiled on first use)."""

    def __init__(self, idl: ovs.db.idl.Idl):
        self.idl = idl
        self._tables = idl.tables
        self._columns: dict[tuple[str, str], tuple[_Encoder, object]] = {}

    def row(self, table: str, values: dict, what: str) -> dict:
        """The JSON row of a new ``table`` row with column ``values`` (defaults left out).

        ``what`` names the object in errors ("vport"). Raises ValidationError for a value the
        column's type refuses, KeyError for a column the table does not have.
        """
        out = {}
        for col, value in values.items():
            enc = self._columns.get((table, col))
            if enc is None:
                enc = self._columns[(table, col)] = column_encoder(self._tables[table].columns[col].type)
            try:
                datum = enc[0](value)
            except _Refused as exc:
                raise ValidationError(f"{what} field {col!r} {exc}") from None
            if datum != enc[1]:
                out[col] = datum
        return out


def insert_op(table: str, row_uuid: str, row: dict) -> dict:
    """The ``insert`` operation of ``row`` (from ``RowEncoder.row``) with its UUID kept (persisted)."""
    return {"op": "insert", "table": table, "uuid": row_uuid, "row": row}
