"""JSON and unix stream sockets for the per-call plugin path, through the C modules only.

``import json`` costs about as much as starting the interpreter (json.decoder and
json.encoder import ``re`` and compile regular expressions, ``re`` pulls in
enum, functools, collections), and so does ``import socket`` (enum again, selectors).
Measured by bench/plugin_start.py: both together more than doubled the CPU time of a
``nuage-cni`` call. Their C halves (``_json``, ``_socket``) are built into CPython
and import in well under a millisecond, so this module offers just what the plugins
need on top of them: ``loads``, ``dumps`` (same output as ``json.dumps`` with its
defaults) and ``unix_stream_socket``. Without the C modules (another Python) it
falls back to the standard packages.

Error paths may import ``json`` (the C scanner reports through json.decoder's
JSONDecodeError, a ValueError): only a failing call pays for it.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None
try:
    import _socket
except ImportError:  # pragma: no cover
    _socket = None

from nuage_ryu.json_input import MAX_DEPTH, JSONInputError, nesting_depth, no_duplicates, reject_constant

_WHITESPACE = " \t\n\r"


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads (those of ``json.JSONDecoder()``)."""

    strict = True
    object_hook = None
    # The same refusals as every other surface (nuage_ryu/json_input.py): repeated keys, NaN/Infinity.
    object_pairs_hook = staticmethod(no_duplicates)
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(reject_constant)
    memo: dict = {}


def _not_serializable(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_ScannerContext())
    _encode = _json.make_encoder(None, _not_serializable, _json.encode_basestring_ascii, None,
                                 ": ", ", ", False, False, True)

    def loads(data: bytes | str):
        """The JSON value of ``data`` (UTF-8 bytes or str); ValueError if it is not one JSON text."""
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        text = text.strip(_WHITESPACE)
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            raise JSONInputError("malformed JSON: Expecting value: line 1 column 1 (char 0)") from None
        except RecursionError:
            raise JSONInputError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        except SystemError:
            # The C scanner raises json.decoder.JSONDecodeError only if json.decoder is loaded
            # already (else NULL without an exception): let the strict decoder say what is wrong.
            from nuage_ryu import json_input

            return json_input.loads(text)
        if end != len(text):
            raise JSONInputError(f"malformed JSON: extra data at char {end}")
        if nesting_depth(value, MAX_DEPTH) > MAX_DEPTH:
            raise JSONInputError(f"JSON nested deeper than {MAX_DEPTH} levels")
        return value

    def dumps(value) -> str:
        """``json.dumps(value)``: ASCII, ``", "`` and ``": "`` separators."""
        return "".join(_encode(value, 0))
else:  # pragma: no cover
    import json

    dumps = json.dumps


def unix_stream_socket():
    """A new AF_UNIX SOCK_STREAM socket (connect, settimeout, sendall, recv, close)."""
    if _socket is not None:
        return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    import socket  # pragma: no cover

    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # pragma: no cover
