"""The JSON-RPC message parser the store gives python-ovs: same values as python-ovs's own, any chunking."""

import json
import random

import ovs.json
import pytest

from nuage_ryu.directory.store.fast_json import MessageParser

MESSAGES = [
    {"id": 1, "result": [{"uuid": ["uuid", "5a0b"]}, {}], "error": None},
    {"method": "update3", "params": ["x", "0000", {"VPort": {"u1": {"insert": {
        "name": 'a "quoted" {name} [with] \\ back\\slash', "ip": "10.0.0.2", "n": -3.5e2, "b": True,
        "ext": ["map", [["k", "v\u00e9\u4e2d\n\t"]]], "empty": "", "deep": [[[[]]]]}}}}]},
    {"s": "\\", "t": "\\\"", "u": "}{][", "v": "\U0001f600 emoji"},
]


def parse_in_chunks(parser, text: str, rng: random.Random) -> tuple[object, str]:
    rest = text
    while rest and not parser.is_done():
        n = rng.randint(1, 7)
        consumed = parser.feed(rest[:n])
        rest = rest[consumed:] if consumed < n else rest[n:]
        if consumed < min(n, len(rest) + consumed) and parser.is_done():
            break
    return parser.finish(), rest


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("seed", range(5))
def test_same_value_as_python_ovs_for_any_chunking(message, seed):
    text = json.dumps(message) + ' {"next": 1}'
    ours, rest = parse_in_chunks(MessageParser(), text, random.Random(seed))
    reference = ovs.json.Parser.__new__(ovs.json.Parser)
    reference.__init__()
    theirs, _ = parse_in_chunks(reference, text, random.Random(seed))
    assert ours == theirs == message
    assert rest.strip() == '{"next": 1}'  # the next message is left for the next parser


def test_whole_message_in_one_feed_stops_at_its_end():
    parser = MessageParser()
    text = '  {"a": [1, {"b": "}"}]}{"second": true}'
    consumed = parser.feed(text)
    assert parser.is_done() and text[consumed:] == '{"second": true}'
    assert parser.finish() == {"a": [1, {"b": "}"}]}


def test_errors_are_strings_as_python_ovs_reports_them():
    scalar = MessageParser()
    scalar.feed('"just a string"')
    assert scalar.is_done() and isinstance(scalar.finish(), str)
    broken = MessageParser()
    broken.feed('{"a": tru}')
    assert broken.is_done() and "syntax error" in broken.finish()
    partial = MessageParser()
    partial.feed('{"a": ')
    assert not partial.is_done() and isinstance(partial.finish(), str)


def big_update(rng: random.Random, rows: int) -> dict:
    """An update3-like message with strings that hold brackets, quotes and backslashes anywhere."""
    nasty = ['"', "\\", "{", "}", "[", "]", "\\\"", "é", "\n", ":", ","]
    table = {}
    for i in range(rows):
        name = "".join(rng.choice(nasty + ["a", "b"]) for _ in range(rng.randint(0, 12)))
        table[f"{i:08x}-0000-4000-8000-000000000000"] = {"insert": {
            "name": name, "ip": f"10.0.{i // 250}.{i % 250}", "subnet": ["uuid", f"{i:032x}"],
            "external_ids": ["map", [[name, name[::-1]]]], "policygroups": ["set", [["uuid", "a"], ["uuid", "b"]]]}}
    return {"method": "update3", "params": ["x", "0000", {"VPort": table}], "id": None}


@pytest.mark.parametrize("seed", range(6))
def test_large_message_in_socket_sized_chunks(seed):
    """Chunks of a few kB (python-ovs reads 4096 bytes): the object is found whole, whatever falls
    on a chunk's edge (inside a string, right after a backslash, a closing bracket)."""
    rng = random.Random(seed)
    message = big_update(rng, 300)
    text = json.dumps(message) + '{"next": 1}'
    parser = MessageParser()
    pos = 0
    while not parser.is_done():
        n = rng.choice([1, 2, 4096, rng.randint(1, 5000)])
        chunk = text[pos:pos + n]
        assert chunk, "ran out of input before the object ended"
        pos += parser.feed(chunk)
    assert parser.finish() == message
    assert text[pos:] == '{"next": 1}'
