"""Explain a packet, the directory's side (nuage_ryu/directory/trace.py) on an in-memory directory:
the body's checks, resolving the two ends, the decision and path, the datapath comparison, and the
round trip to the agent with a store that answers like the real one (``ask``/``wait``/``withdraw``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nuage_ryu.directory import trace as T
from nuage_ryu.directory.errors import BadRequest, Conflict, NotFound, ValidationError
from nuage_ryu.directory.model import (
    ACL,
    ANY,
    DirectoryState,
    Domain,
    Endpoint,
    Enterprise,
    Host,
    PolicyGroup,
    Subnet,
    VPort,
    Zone,
)
from nuage_ryu.directory.store.trace_rows import ANSWERED, TraceRequest

WEB, APP, DB = "pg-web", "pg-app", "pg-db"


def state(default="deny", connected=True) -> DirectoryState:
    return DirectoryState.from_objects([
        Enterprise("e1", "acme"), Enterprise("e2", "globex"),
        Domain("d1", "e1", "prod", 1001, 1, "02:d1:00:00:00:01", default),
        Domain("d2", "e2", "prod", 1002, 2, "02:d2:00:00:00:01", "allow"),
        Zone("z-web", "d1", "web"), Zone("z-app", "d1", "app"), Zone("z-g", "d2", "web"),
        Subnet("s-web", "z-web", "d1", "web", "10.10.1.0/24", "10.10.1.1"),
        Subnet("s-app", "z-app", "d1", "app", "10.10.2.0/24", "10.10.2.1"),
        Subnet("s-g", "z-g", "d2", "web", "10.10.1.0/24", "10.10.1.1"),
        PolicyGroup(WEB, "d1", "web"), PolicyGroup(APP, "d1", "app"), PolicyGroup(DB, "d1", "db"),
        VPort("v-web1", "s-web", "d1", "web1", "10.10.1.2", "02:00:00:00:01:02", "10.10.1.1", host="h1",
              policygroups=frozenset({WEB})),
        VPort("v-web2", "s-web", "d1", "web2", "10.10.1.3", "02:00:00:00:01:03", "10.10.1.1", host="h2",
              policygroups=frozenset({WEB})),
        VPort("v-app1", "s-app", "d1", "app1", "10.10.2.2", "02:00:00:00:02:02", "10.10.2.1", host="h2",
              policygroups=frozenset({APP})),
        VPort("v-g1", "s-g", "d2", "g1", "10.10.1.2", "02:00:00:00:0a:02", "10.10.1.1", host="h1"),
        VPort("v-g2", "s-g", "d2", "g2", "10.10.1.3", "02:00:00:00:0a:03", "10.10.1.1", host="h3"),
        ACL("r100", "d1", 100, Endpoint("policygroup", id=WEB), Endpoint("policygroup", id=APP), "tcp", "8080",
            name="web-to-app"),
        ACL("r50", "d1", 50, ANY, ANY, "icmp", icmp_type=8, action="deny", name="no-ping"),
        Host("h1-id", "h1", "192.0.2.11", connected=connected), Host("h2-id", "h2", "192.0.2.12", connected=True),
    ])


def everything(_kind, _obj) -> bool:
    return True


def acme_only(kind, obj, st=state()) -> bool:
    return st.enterprise_of(kind, obj) == "e1"


def explain(body, st=None, visible=everything) -> dict:
    st = st or state()
    q = T.parse_query(body)
    domain, src, dst = T.resolve_ends(st, visible, q)
    return T.decide(st, domain, src, dst, q)


# ---- the body ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body,error", [
    ([], BadRequest), ({"from": "web1"}, ValidationError), ({"from": "", "to": "app1"}, ValidationError),
    ({"from": "web1", "to": "app1", "nope": 1}, BadRequest),
    ({"from": "web1", "to": "app1", "protocol": "tcp"}, ValidationError),  # tcp needs a port
    ({"from": "web1", "to": "app1", "protocol": "icmp", "port": 80}, ValidationError),
    ({"from": "web1", "to": "app1", "protocol": "gre"}, ValidationError),
    ({"from": "web1", "to": "app1", "protocol": 255}, ValidationError),
    ({"from": "web1", "to": "app1", "protocol": True}, ValidationError),
    ({"from": "web1", "to": "app1", "port": 0}, ValidationError),
    ({"from": "web1", "to": "app1", "port": "80x"}, ValidationError),
    ({"from": "web1", "to": "app1", "port": 80, "icmp_type": 8}, ValidationError),
    ({"from": "web1", "to": "app1", "timeout": 0}, ValidationError),
    ({"from": "web1", "to": "app1", "timeout": 31}, ValidationError),
    ({"from": "web1", "to": "app1", "datapath": "no"}, ValidationError),
    ({"from": "web1", "to": "app1", "domain": ""}, ValidationError),
])
def test_bad_bodies_are_refused_with_a_message(body, error):
    with pytest.raises(error):
        T.parse_query(body)


def test_protocol_defaults_tcp_with_a_port_else_icmp_echo():
    assert T.parse_query({"from": "a", "to": "b", "port": 80}).protocol == 6
    q = T.parse_query({"from": "a", "to": "b"})
    assert (q.protocol, q.icmp_type, q.icmp_code) == (1, 8, 0)
    assert T.parse_query({"from": "a", "to": "b", "protocol": "any"}).protocol_name == "any"
    assert T.parse_query({"from": "a", "to": "b", "protocol": "47"}).protocol == 47


# ---- resolving ---------------------------------------------------------------------------------------


def test_vports_by_name_id_prefix_and_path():
    st = state()
    for ref in ("web1", "v-web1", "acme/prod/web/web/web1", "web/web1"):
        assert T.resolve_vport(st, everything, ref).id == "v-web1", ref
    with pytest.raises(NotFound):
        T.resolve_vport(st, everything, "nobody")
    with pytest.raises(NotFound):  # another enterprise's vport is not there for a tenant
        T.resolve_vport(st, acme_only, "g1")


def test_an_ambiguous_name_is_a_409_naming_the_candidates():
    st = state()
    dup = VPort("v-dup", "s-g", "d2", "web1", "10.10.1.9", "02:00:00:00:0a:09", "10.10.1.1", host="h1")
    st = DirectoryState.from_objects([*st.enterprises.values(), *st.domains.values(), *st.zones.values(),
                                      *st.subnets.values(), *st.policygroups.values(), *st.vports.values(), dup,
                                      *st.acls.values(), *st.hosts.values()])
    with pytest.raises(Conflict, match="ambiguous"):
        T.resolve_vport(st, everything, "web1")
    assert T.resolve_vport(st, everything, "acme/prod/web/web/web1").id == "v-web1"


def test_an_address_in_two_domains_needs_the_domain():
    with pytest.raises(ValidationError, match="domain"):
        explain({"from": "10.10.1.2", "to": "10.10.1.3"})
    answer = explain({"from": "10.10.1.2", "to": "10.10.1.3", "domain": "globex/prod"})
    assert answer["from"]["name"] == "g1" and answer["to"]["name"] == "g2"  # the addresses name the vports


# ---- deciding ------------------------------------------------------------------------------------------


def test_the_first_matching_rule_decides_and_is_shown_with_names():
    answer = explain({"from": "web1", "to": "app1", "port": 8080})
    assert answer["verdict"] == "allow" and answer["default_action"] is False
    assert answer["rule"]["id"] == "r100" and answer["rule"]["source"]["name"] == "web"
    assert answer["path"]["hosts"] == ["h1", "h2"]
    assert [t["name"] for t in answer["path"]["hops"][1]["tables"]][-2:] == ["EGRESS_POLICY", "OUTPUT"]
    ping = explain({"from": "web1", "to": "app1"})
    assert ping["rule"]["id"] == "r50" and ping["verdict"] == "deny"  # priority 50 comes first
    assert [t["name"] for t in ping["path"]["hops"][0]["tables"]][-2:] == ["INGRESS_POLICY", "POLICY_DROP"]


def test_no_rule_is_the_default_action():
    answer = explain({"from": "app1", "to": "web1", "port": 8080})
    assert answer["rule"] is None and answer["default_action"] is True and answer["verdict"] == "deny"
    assert answer["policy"]["deciding"] == "default"


def test_another_domains_vport_is_its_address_in_the_sources_domain():
    # web1 (acme) -> g2 (globex) 10.10.1.3: in acme that address is web2's.
    answer = explain({"from": "web1", "to": "g2", "port": 8080})
    assert answer["to"]["name"] == "web2" and "another domain" in answer["notes"][0]
    assert answer["default_action"] is True and answer["verdict"] == "deny"


def test_an_allowed_packet_to_nowhere_is_denied_by_forwarding():
    # globex: default allow, but 10.10.2.2 (acme's app1) is no address of globex: not routable.
    answer = explain({"from": "g1", "to": "app1", "port": 8080})
    assert answer["policy"]["verdict"] == "allow" and answer["verdict"] == "deny"
    assert answer["to"]["forwarding"] == "unknown" and any("egress NAT is off" in n for n in answer["notes"])


# ---- the datapath round trip ---------------------------------------------------------------------------


class AnsweringStore:
    """ask/wait/withdraw as DirectoryStore has them; ``answer`` plays the agent (None: it never answers)."""

    def __init__(self, answer):
        self.answer = answer
        self.asked, self.withdrawn = [], []

    def ask_trace(self, host, request, expires_ms):
        self.asked.append((host, request))
        return "req-1"

    def wait_trace(self, request_id, deadline):
        if self.answer is None:
            return None
        return TraceRequest(request_id, self.asked[-1][0], self.asked[-1][1], self.answer, ANSWERED, 0)

    def withdraw_trace(self, request_id):
        self.withdrawn.append(request_id)


def observed(verdict="allow", rule="r100", default=False, output=None):
    return {"host": "h1", "verdict": verdict, "tables": [{"table": 0, "name": "CLASSIFY"}],
            "policy": {"rule": rule, "default_action": default, "cookie": "0x7"},
            "output": output if output is not None else {"host": "h2", "vni": 1001, "port": 100}}


def test_agreement_and_each_kind_of_difference():
    st = state()
    body = {"from": "web1", "to": "app1", "port": 8080}
    store = AnsweringStore(observed())
    answer = T.run_trace(store, st, everything, body)
    assert answer["datapath"] == "agree" and store.withdrawn == ["req-1"]
    assert store.asked[0] == ("h1", {"src_vport": "v-web1", "src_ip": "10.10.1.2", "dst_ip": "10.10.2.2",
                                     "protocol": 6, "src_port": 40000, "dst_port": 8080, "icmp_type": 0,
                                     "icmp_code": 0})
    assert answer["path"]["hops"][0]["observed"] is True
    for obs, words in ((observed(verdict="deny", output={}), "verdict"),
                       (observed(rule=None, default=True), "deciding"),
                       (observed(output={"host": "h3", "vni": 1001}), "output")):
        answer = T.run_trace(AnsweringStore(obs), st, everything, body)
        assert answer["datapath"] == "disagree", obs
        assert any(d.startswith(words) for d in answer["datapath_detail"]["differences"]), answer["datapath_detail"]


def test_unavailable_says_why():
    st = state()
    body = {"from": "web1", "to": "app1", "port": 8080, "timeout": 0.5}
    assert "within 0.5 s" in T.run_trace(AnsweringStore(None), st, everything, body)["datapath_detail"]["reason"]
    assert "not connected" in T.run_trace(AnsweringStore(observed()), state(connected=False), everything,
                                          body)["datapath_detail"]["reason"]
    agent_error = T.run_trace(AnsweringStore({"error": "vport v-web1 has no port"}), st, everything, body)
    assert agent_error["datapath"] == "unavailable" and "no port" in agent_error["datapath_detail"]["reason"]
    address = T.run_trace(AnsweringStore(observed()), st, everything,
                          {"from": "10.10.2.77", "to": "app1", "port": 8080})
    assert address["datapath"] == "unavailable" and "address" in address["datapath_detail"]["reason"]
    off = T.run_trace(AnsweringStore(observed()), st, everything, {**body, "datapath": False})
    assert off["datapath"] == "unavailable"


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3), max_leaves=8)
_FIELD_VALUES = st.sampled_from(["web1", "app1", "g1", "10.10.1.2", "10.10.9.9", "v-web1", "acme/prod", "tcp",
                                 "udp", "icmp", "any", "47", "", "web", "nobody"]) | _JSON


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(T.FIELDS + ("extra",)), _FIELD_VALUES, max_size=6) | _JSON)
def test_any_body_is_an_answer_or_a_4xx_never_a_crash(body):
    st_ = state()
    try:
        answer = T.run_trace(AnsweringStore(observed()), st_, everything, body)
    except (BadRequest, ValidationError, NotFound, Conflict) as exc:
        assert 400 <= exc.status < 500
        return
    assert answer["verdict"] in ("allow", "deny") and answer["datapath"] in ("agree", "disagree", "unavailable")
