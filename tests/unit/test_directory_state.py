"""DirectoryState lookups (what validators and the VRS agent read)."""

from nuage_ryu.directory import model as m


def sample():
    objs = [
        m.Enterprise("e1", "acme"),
        m.Domain("d1", "e1", "prod", vni=10, ct_zone=1, router_mac="02:00:00:00:00:01"),
        m.Domain("d2", "e1", "dev", vni=11, ct_zone=2, router_mac="02:00:00:00:00:02"),
        m.Zone("z1", "d1", "web"),
        m.Subnet("s1", "z1", "d1", "front", "10.0.1.0/24", "10.0.1.1"),
        m.Subnet("s2", "z1", "d1", "back", "10.0.2.0/24", "10.0.2.1"),
        m.PolicyGroup("p1", "d1", "www"),
        m.VPort("v1", "s1", "d1", "a", "10.0.1.2", "02:00:00:00:01:02", "10.0.1.1", host="h1",
                policygroups=frozenset({"p1"})),
        m.VPort("v2", "s1", "d1", "b", "10.0.1.9", "02:00:00:00:01:09", "10.0.1.1", host="h2"),
        m.VPort("v3", "s2", "d1", "c", "10.0.2.2", "02:00:00:00:02:02", "10.0.2.1", host="h1"),
        m.ACL("a2", "d1", 20, source=m.Endpoint("zone", id="z1")),
        m.ACL("a1", "d1", 10, destination=m.Endpoint("policygroup", id="p1")),
        m.Host("h1id", "h1", "192.0.2.1"),
        m.ApiToken("t1", "e1", "hash1"),
    ]
    return m.DirectoryState.from_objects(objs)


def test_parent_child_lookups():
    st = sample()
    assert {d.id for d in st.domains_of("e1")} == {"d1", "d2"}
    assert [z.id for z in st.zones_of("d1")] == ["z1"]
    assert {s.id for s in st.subnets_of("d1")} == {"s1", "s2"}
    assert {s.id for s in st.subnets_of_zone("z1")} == {"s1", "s2"}
    assert {v.id for v in st.vports_of("d1")} == {"v1", "v2", "v3"}
    assert {v.id for v in st.vports_of_subnet("s1")} == {"v1", "v2"}
    assert st.vports_of_subnet("nope") == [] and st.subnets_of("d2") == []


def test_agent_lookups():
    st = sample()
    assert {v.id for v in st.vports_on_host("h1")} == {"v1", "v3"}
    assert [v.id for v in st.members_of("p1")] == ["v1"]
    assert [p.id for p in st.policygroups_of("d1")] == ["p1"]
    assert [a.id for a in st.acls_of("d1")] == ["a1", "a2"]
    assert st.host_by_name("h1").tunnel_ip == "192.0.2.1" and st.host_by_name("h9") is None
    assert [a.id for a in st.acls_referencing("zone", "z1")] == ["a2"]
    assert st.token_by_hash("hash1").enterprise == "e1"


def test_subnet_usage_and_macs():
    st = sample()
    usage = st.subnet_ports("s1")
    assert usage.names == {"a", "b"} and usage.ips == {"10.0.1.2", "10.0.1.9"}
    assert usage.max_ip == m.ip_int("10.0.1.9")
    assert st.mac_in_use("02:00:00:00:02:02") and not st.mac_in_use("02:00:00:00:09:09")


def test_enterprise_of_every_kind():
    st = sample()
    for kind, obj_id in (("domain", "d1"), ("zone", "z1"), ("subnet", "s1"), ("vport", "v1"),
                         ("policygroup", "p1"), ("acl", "a1"), ("token", "t1"), ("enterprise", "e1")):
        assert st.enterprise_of(kind, st.get(kind, obj_id)) == "e1"
    assert st.enterprise_of("host", st.get("host", "h1id")) is None


def test_as_dict_shapes():
    st = sample()
    vport = m.as_dict("vport", st.vports["v1"], st)
    assert vport["zone"] == "z1" and vport["policygroups"] == ["p1"] and vport["status"] == "down"
    acl = m.as_dict("acl", st.acls["a2"], st)
    assert acl["source"] == {"type": "zone", "id": "z1"} and acl["destination"] == {"type": "any"}
    assert acl["counters"] == {"packets": 0, "bytes": 0, "by_host": {}}  # nobody reported yet
    assert m.as_dict("host", st.hosts["h1id"])["last_seen"] is None
    assert m.iso_time(1_700_000_000_000) == "2023-11-14T22:13:20.000+00:00"


def test_counters_are_summed_over_hosts_per_rule_and_per_domain_default():
    st = sample()
    counters = m.CounterSnapshot({
        "r1": m.HostCounters("r1", "node-1", {"a2": (10, 1000), "a1": (1, 60)}, {"d1": (3, 300)}),
        "r2": m.HostCounters("r2", "node-2", {"a2": (5, 400)}, {}),
    })
    acl = m.as_dict("acl", st.acls["a2"], st, counters)
    assert acl["counters"] == {"packets": 15, "bytes": 1400, "by_host": {
        "node-1": {"packets": 10, "bytes": 1000}, "node-2": {"packets": 5, "bytes": 400}}}
    assert m.as_dict("acl", st.acls["a1"], st, counters)["counters"]["by_host"] == {
        "node-1": {"packets": 1, "bytes": 60}}
    domain = m.as_dict("domain", st.domains["d1"], st, counters)
    assert domain["default_action_counters"] == {"packets": 3, "bytes": 300,
                                                 "by_host": {"node-1": {"packets": 3, "bytes": 300}}}
    assert counters.of_host("node-2").rules == {"a2": (5, 400)} and counters.of_host("node-3") is None
