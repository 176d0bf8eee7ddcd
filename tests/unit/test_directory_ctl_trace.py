"""``nuage-ctl trace``: the request body it sends, and its output (golden, tests/unit/golden/ctl/trace*.txt).

The canned answer (tests/unit/golden/ctl/trace-answer.json) is a real one, recorded by
tests/integration/test_trace_lab.py (NUAGE_TRACE_SAMPLE=FILE) with the lab's host prefix removed.
"""

from __future__ import annotations

import copy
import io
import json
import os

import pytest

from nuage_ryu.directory.ctl import trace
from nuage_ryu.directory.ctl.parser import build_parser
from tests.unit.test_directory_ctl_tables import GOLDEN, golden

with open(os.path.join(GOLDEN, "trace-answer.json")) as _f:
    ANSWER = json.load(_f)


class TraceApi:
    """Answers POST /trace with a canned answer and records the body."""

    def __init__(self, answer: dict):
        self.answer = answer
        self.bodies: list = []

    def post(self, path: str, body):
        assert path == "/trace"
        self.bodies.append(body)
        return copy.deepcopy(self.answer)


def run(answer: dict, *argv: str) -> tuple[str, dict]:
    args = build_parser().parse_args(["trace", *argv])
    api = TraceApi(answer)
    out = io.StringIO()
    trace.run(args, api, out)
    return out.getvalue(), api.bodies[-1]


def test_the_body_carries_what_was_typed():
    _, body = run(ANSWER, "app1", "db1", "--port", "5432")
    assert body == {"from": "app1", "to": "db1", "port": 5432}
    _, body = run(ANSWER, "10.0.0.7", "app1", "--protocol", "udp", "--port", "53", "--src-port", "5353",
                  "--domain", "acme/prod", "--trace-timeout", "2", "--no-datapath")
    assert body == {"from": "10.0.0.7", "to": "app1", "protocol": "udp", "port": 53, "src_port": 5353,
                    "domain": "acme/prod", "timeout": 2.0, "datapath": False}
    _, body = run(ANSWER, "web1", "db1", "--protocol", "47")
    assert body["protocol"] == 47
    _, body = run(ANSWER, "web1", "db1", "--protocol", "icmp", "--icmp-type", "13", "--icmp-code", "0")
    assert (body["icmp_type"], body["icmp_code"]) == (13, 0)


@pytest.mark.parametrize("name,argv", [("trace.txt", ()), ("trace-wide.txt", ("-o", "wide"))])
def test_golden_output(name, argv):
    golden(name, run(ANSWER, "app1", "db1", "--port", "5432", *argv)[0])


def test_json_and_yaml_are_the_answer_itself():
    text, _ = run(ANSWER, "app1", "db1", "--port", "5432", "--json")
    assert json.loads(text) == ANSWER
    text, _ = run(ANSWER, "app1", "db1", "--port", "5432", "-o", "yaml")
    assert "datapath: agree" in text


def test_a_disagreement_and_an_unavailable_datapath_are_shown():
    answer = copy.deepcopy(ANSWER)
    answer["datapath"] = "disagree"
    answer["datapath_detail"]["differences"] = ["verdict: expected allow, datapath deny"]
    text, _ = run(answer, "app1", "db1", "--port", "5432")
    assert "disagree (h2" in text and "- verdict: expected allow, datapath deny" in text
    answer["datapath"] = "unavailable"
    answer["datapath_detail"] = {"reason": "host h2 is not connected (its agent is down)"}
    text, _ = run(answer, "app1", "db1", "--port", "5432")
    assert "unavailable: host h2 is not connected" in text
    answer.update(rule=None, default_action=True, verdict="deny")
    answer["policy"]["verdict"] = "deny"
    text, _ = run(answer, "app1", "db1", "--port", "5432")
    assert "the default action (deny) of domain prod: no rule matches" in text
