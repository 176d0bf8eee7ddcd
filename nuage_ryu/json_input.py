"""Strict decoding of JSON that comes from outside (REST bodies, the agent socket, plugin calls, CNI stdin).

One decoder for every surface, so that each refuses the same inputs with the same words:

* nesting deeper than ``MAX_DEPTH`` (the stdlib decoder recurses: ~1000 levels raise
  RecursionError, which used to become a 500, a CNI code 100 or a dropped connection);
* an object with the same key twice (the stdlib keeps the last one silently, so two readers of
  the same body could disagree on what it says);
* anything that is not valid UTF-8 JSON (``NaN``/``Infinity`` too: they are not JSON).

Every refusal is a ``JSONInputError`` (a ValueError), which each surface maps to its own
"bad request" answer.
"""

from __future__ import annotations

# Deep enough for every real body (an ACL is 3 levels), far from the interpreter's recursion limit.
MAX_DEPTH = 32

class JSONInputError(ValueError):
    """The input is not acceptable JSON; the message says why (for the client)."""


def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook``: the object as a dict, JSONInputError when a key repeats."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise JSONInputError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def reject_constant(name: str):
    """``parse_constant``: NaN and Infinity are not JSON."""
    raise JSONInputError(f"{name} is not a JSON value")


def nesting_depth(value, limit: int = MAX_DEPTH) -> int:
    """How deep arrays/objects nest in a decoded ``value``; stops counting above ``limit``."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH):
    """Decode ``raw`` strictly (see the module docstring); raises JSONInputError."""
    import json  # here, not at the top: the plugins' fast path (plugins/lean.py) shares the rules, not json
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"not UTF-8: {exc}") from None
    try:
        # The C decoder stops a very deep input itself (RecursionError at the interpreter's limit,
        # cheaply); the limit of this module is then checked on the (bounded) result.
        value = json.loads(raw, object_pairs_hook=no_duplicates, parse_constant=reject_constant)
    except JSONInputError:
        raise
    except RecursionError:
        raise JSONInputError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JSONInputError(f"malformed JSON: {exc}") from None
    if nesting_depth(value, max_depth) > max_depth:
        raise JSONInputError(f"JSON nested deeper than {max_depth} levels")
    return value
