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
