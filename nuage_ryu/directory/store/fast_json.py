"""A faster JSON-RPC message parser for python-ovs when its C extension (``ovs._json``) is missing.

python-ovs reads every OVSDB message through ``ovs.json.Parser``; without the C extension (the
PyPI wheel has none) that parser lexes one character per Python call: a bulk commit of 1,000
vports spends about a third of its CPU there (≈340 characters per row in the update that comes
back), and an agent's initial load of a large directory the same share.

``MessageParser`` keeps python-ovs's interface (``feed`` returns the characters consumed,
``is_done``, ``finish`` returns the value or an error string) but only tracks where the top-level
value ends: it jumps between quotes and brackets with regular expressions, and the stdlib's C
decoder parses the complete message once. JSON-RPC messages are always objects, which is all it
accepts; a top-level scalar ends as a parse error (as junk would).

``install()`` makes python-ovs use it; the store calls it when it opens a connection. It does
nothing when the C extension is there.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

import ovs.json

_STRUCTURE = re.compile(r'["{}\[\]]')
_IN_STRING = re.compile(r'["\\]')
_NOT_SPACE = re.compile(r"\S")
# The tokens of a chunk in one pass of the C regex engine: a whole string (group 1 empty), a
# bracket (group 1), or a string still open at the chunk's end (group 2; group 3: a backslash
# whose escaped character is in the next chunk).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|([\[\]{}])|("(?:[^"\\]|\\.)*)(\\?)\Z', re.S)
# The rest of a string a chunk starts in: up to its closing quote, or (group 1) to the chunk's end.
_STRING_END = re.compile(r'(?:[^"\\]|\\.)*"')
_STRING_TAIL = re.compile(r'(?:[^"\\]|\\.)*(\\?)\Z', re.S)
_DEPTH = {"{": 1, "[": 1, "}": -1, "]": -1, "": 0}


class MessageParser:
    """Incremental parser of one JSON object (python-ovs ``ovs.json.Parser`` interface)."""

    def __init__(self, check_trailer: bool = False):
        self._parts: list[str] = []
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._done = False
        self._error: str | None = None

    def feed(self, s: str) -> int:
        """Consume ``s`` up to the end of the object; returns how many characters were consumed."""
        if self._done:
            return 0
        i = 0
        if self._depth > 0:
            # Inside the object (most chunks of a large message): C-level passes over the chunk,
            # unless the object may end in it; the character-by-character scan finds where.
            if self._in_string:
                i = self._finish_string(s)
                if i is None:
                    self._parts.append(s)
                    return len(s)
            if self._inside_to_the_end(s, i):
                self._parts.append(s)
                return len(s)
        return self._scan(s, i)

    def _finish_string(self, s: str) -> int | None:
        """Where the string the chunk starts in ends (after its quote); None: it goes on past ``s``."""
        i = 0
        if self._escape:
            if not s:
                return None
            self._escape, i = False, 1
        m = _STRING_END.match(s, i)
        if m is None:
            self._escape = bool(_STRING_TAIL.match(s, i).group(1))
            return None
        self._in_string = False
        return m.end()

    def _inside_to_the_end(self, s: str, i: int) -> bool:
        """True (state updated) if the object is still open at every point of ``s[i:]``."""
        tokens = _TOKENS.findall(s, i)
        if not tokens:
            return True
        depth = self._depth
        lowest = min(accumulate([_DEPTH[t[0]] for t in tokens], initial=depth))
        if lowest <= 0:
            return False
        last = tokens[-1]
        self._depth = depth + sum(_DEPTH[t[0]] for t in tokens)
        if last[1]:
            self._in_string, self._escape = True, bool(last[2])
        return True

    def _scan(self, s: str, i: int) -> int:
        """Character-level scan of ``s`` from ``i`` (state as left by the previous chunk)."""
        n = len(s)
        while i < n:
            if self._in_string:
                if self._escape:
                    self._escape = False
                    i += 1
                    continue
                m = _IN_STRING.search(s, i)
                if m is None:
                    i = n
                    break
                i = m.end()
                if m.group() == "\\":
                    self._escape = True
                else:
                    self._in_string = False
                continue
            if self._depth == 0:
                m = _NOT_SPACE.search(s, i)
                if m is None:
                    i = n
                    break
                if s[m.start()] != "{":
                    self._error = f"syntax error: a JSON-RPC message must be an object, not {s[m.start()]!r}"
                    self._done = True
                    return m.start() + 1
            m = _STRUCTURE.search(s, i)
            if m is None:
                i = n
                break
            i = m.end()
            c = m.group()
            if c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    self._parts.append(s[:i])
                    self._done = True
                    return i
        self._parts.append(s[:i])
        return i

    def is_done(self) -> bool:
        return self._done

    def finish(self):
        """The parsed object, or an error message string (python-ovs's convention)."""
        if self._error is not None:
            return self._error
        if not self._done:
            return "unexpected end of input"
        try:
            return json.loads("".join(self._parts))
        except ValueError as exc:
            return f"syntax error: {exc}"


def install() -> None:
    """Make python-ovs parse JSON-RPC messages with ``MessageParser`` (unless its C parser is present)."""
    if ovs.json.PARSER != ovs.json.PARSER_C:
        ovs.json.Parser = MessageParser
