"""Every validation rule of the directory model, on in-memory states (no database)."""

import pytest

from nuage_ryu.directory import validate as v
from nuage_ryu.directory.errors import BadRequest, Conflict, NotFound, ValidationError
from nuage_ryu.directory.model import DirectoryState, as_dict


class Dir:
    """A directory in memory: plan + apply_change, as the store does with OVSDB."""

    def __init__(self):
        self.state = DirectoryState()

    def create(self, kind, parent, body, **kw):
        change = v.plan_create(self.state, kind, parent, body, **kw)
        self.state = v.apply_change(self.state, change)
        return self.state.get(*change.result)

    def update(self, kind, obj_id, body):
        self.state = v.apply_change(self.state, v.plan_update(self.state, kind, obj_id, body))
        return self.state.get(kind, obj_id)

    def delete(self, kind, obj_id, cascade=False):
        self.state = v.apply_change(self.state, v.plan_delete(self.state, kind, obj_id, cascade))


@pytest.fixture
def d():
    d = Dir()
    d.ent = d.create("enterprise", None, {"name": "acme"})
    d.dom = d.create("domain", d.ent.id, {"name": "prod"})
    d.zone = d.create("zone", d.dom.id, {"name": "web"})
    d.sub = d.create("subnet", d.zone.id, {"name": "front", "cidr": "10.0.1.0/24"})
    d.pg = d.create("policygroup", d.dom.id, {"name": "www"})
    d.other = d.create("domain", d.ent.id, {"name": "dev"})
    d.ozone = d.create("zone", d.other.id, {"name": "web"})
    d.osub = d.create("subnet", d.ozone.id, {"name": "front", "cidr": "10.0.1.0/24"})
    d.opg = d.create("policygroup", d.other.id, {"name": "www"})
    return d


# -- body parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "x", 3, None])
def test_body_must_be_object(d, body):
    with pytest.raises(BadRequest, match="JSON object"):
        v.plan_create(d.state, "enterprise", None, body)


def test_unknown_field_is_400(d):
    with pytest.raises(BadRequest, match="unknown field 'colour'"):
        v.plan_create(d.state, "enterprise", None, {"name": "x", "colour": "red"})


@pytest.mark.parametrize("kind,parent,body", [
    ("enterprise", None, {"name": 5}),
    ("domain", "ENT", {"name": "x", "vni": "5"}),
    ("domain", "ENT", {"name": "x", "vni": True}),
    ("acl", "DOM", {"priority": 1, "stateful": "yes"}),
    ("vport", "SUB", {"name": "x", "policygroups": "pg"}),
    ("vport", "SUB", {"name": "x", "external_ids": {"a": 1}}),
    ("acl", "DOM", {"priority": 1, "source": "any"}),
    ("acl", "DOM", {"priority": 1, "protocol": 6.5}),
])
def test_wrong_json_types_are_400(d, kind, parent, body):
    parent = {"ENT": d.ent.id, "DOM": d.dom.id, "SUB": d.sub.id}.get(parent)
    with pytest.raises(BadRequest, match="must be"):
        v.plan_create(d.state, kind, parent, body)


def test_required_field_missing_is_422(d):
    with pytest.raises(ValidationError, match="'cidr' is required"):
        v.plan_create(d.state, "subnet", d.zone.id, {"name": "x"})
    with pytest.raises(ValidationError, match="'priority' is required"):
        v.plan_create(d.state, "acl", d.dom.id, {})


def test_read_only_field_on_create_is_422(d):
    with pytest.raises(ValidationError, match="read-only"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "x", "status": "up"})
    with pytest.raises(ValidationError, match="read-only"):
        v.plan_create(d.state, "enterprise", None, {"name": "x", "id": "abc"})


def test_update_accepts_unchanged_read_only_fields_and_refuses_changes(d):
    vp = d.create("vport", d.sub.id, {"name": "c1"})

    body = as_dict("vport", vp, d.state)
    body["host"] = "node-1"
    assert d.update("vport", vp.id, body).host == "node-1"
    with pytest.raises(ValidationError, match="'ip' cannot be changed"):
        v.plan_update(d.state, "vport", vp.id, {"ip": "10.0.1.99"})
    with pytest.raises(ValidationError, match="'status' is read-only"):
        v.plan_update(d.state, "vport", vp.id, {"status": "up"})
    with pytest.raises(ValidationError, match="'cidr' cannot be changed"):
        v.plan_update(d.state, "subnet", d.sub.id, {"cidr": "10.9.0.0/16"})


def test_update_without_change_plans_nothing(d):
    assert v.plan_update(d.state, "zone", d.zone.id, {"name": "web"}).ops == []


def test_update_of_missing_object_is_404(d):
    with pytest.raises(NotFound):
        v.plan_update(d.state, "zone", "00000000-0000-0000-0000-000000000000", {"name": "x"})


# -- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "x" * 256, "tab\there", " lead", "trail ",
                                  "5a0e1d6a-2d70-4d53-9d2c-b6e9a1d7c001"])
def test_invalid_names_are_422(d, name):
    with pytest.raises(ValidationError):
        v.plan_create(d.state, "enterprise", None, {"name": name})


def test_names_unique_per_parent(d):
    with pytest.raises(Conflict):
        v.plan_create(d.state, "enterprise", None, {"name": "acme"})
    with pytest.raises(Conflict):
        v.plan_create(d.state, "domain", d.ent.id, {"name": "prod"})
    with pytest.raises(Conflict):
        v.plan_create(d.state, "zone", d.dom.id, {"name": "web"})
    with pytest.raises(Conflict):
        v.plan_create(d.state, "subnet", d.zone.id, {"name": "front", "cidr": "10.0.2.0/24"})
    with pytest.raises(Conflict):
        v.plan_create(d.state, "policygroup", d.dom.id, {"name": "www"})
    d.create("vport", d.sub.id, {"name": "c1"})
    with pytest.raises(Conflict):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c1"})
    # the same names under another parent are fine (the fixture has zone/subnet/pg "web"/"front"/"www"
    # in both domains)
    other = d.create("enterprise", None, {"name": "globex"})
    assert d.create("domain", other.id, {"name": "prod"}).name == "prod"


def test_rename_checks_uniqueness_but_not_against_itself(d):
    z2 = d.create("zone", d.dom.id, {"name": "db"})
    with pytest.raises(Conflict):
        v.plan_update(d.state, "zone", z2.id, {"name": "web"})
    assert d.update("zone", z2.id, {"name": "database"}).name == "database"


# -- domains -----------------------------------------------------------------------------------------------


def test_vni_auto_lowest_free_and_unique(d):
    assert (d.dom.vni, d.other.vni) == (1, 2)
    d.create("domain", d.ent.id, {"name": "x", "vni": 4})
    assert d.create("domain", d.ent.id, {"name": "y"}).vni == 3
    assert d.create("domain", d.ent.id, {"name": "z"}).vni == 5
    with pytest.raises(Conflict, match="vni 4 is already used"):
        v.plan_create(d.state, "domain", d.ent.id, {"name": "w", "vni": 4})


@pytest.mark.parametrize("vni", [0, -1, 16777216])
def test_vni_range(d, vni):
    with pytest.raises(ValidationError, match="1..16777215"):
        v.plan_create(d.state, "domain", d.ent.id, {"name": "w", "vni": vni})
    assert d.create("domain", d.ent.id, {"name": "max", "vni": 16777215}).vni == 16777215


def test_ct_zones_unique_and_router_mac_generated_local_unicast(d):
    assert d.dom.ct_zone != d.other.ct_zone
    first = int(d.dom.router_mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert d.dom.default_action == "deny"


def test_router_mac_and_default_action_checked(d):
    with pytest.raises(ValidationError):
        v.plan_create(d.state, "domain", d.ent.id, {"name": "w", "router_mac": "01:00:00:00:00:01"})
    with pytest.raises(ValidationError):
        v.plan_create(d.state, "domain", d.ent.id, {"name": "w", "default_action": "drop"})
    dom = d.create("domain", d.ent.id, {"name": "w", "router_mac": "02:00:00:00:00:AA",
                                        "default_action": "allow"})
    assert (dom.router_mac, dom.default_action) == ("02:00:00:00:00:aa", "allow")
    assert d.update("domain", dom.id, {"default_action": "deny"}).default_action == "deny"
    with pytest.raises(ValidationError, match="cannot be changed"):
        v.plan_update(d.state, "domain", dom.id, {"vni": 999})


def test_domain_parent_must_exist(d):
    with pytest.raises(NotFound):
        v.plan_create(d.state, "domain", "00000000-0000-0000-0000-000000000001", {"name": "x"})


# -- subnets -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "10.0.1.128/25", "10.0.1.0/24"])
def test_subnets_may_not_overlap_in_a_domain(d, cidr):
    z2 = d.create("zone", d.dom.id, {"name": "db"})
    with pytest.raises(Conflict, match="overlaps subnet 'front'"):
        v.plan_create(d.state, "subnet", z2.id, {"name": "s", "cidr": cidr})


def test_subnets_may_overlap_across_domains(d):
    assert d.osub.cidr == d.sub.cidr


def test_subnet_create_guards_the_domain(d):
    change = v.plan_create(d.state, "subnet", d.zone.id, {"name": "s2", "cidr": "10.0.2.0/24"})
    assert change.guards == [("domain", d.dom.id, "subnet_epoch")]


def test_subnet_gateway_checks(d):
    with pytest.raises(ValidationError, match="outside"):
        v.plan_create(d.state, "subnet", d.zone.id,
                      {"name": "s", "cidr": "10.0.2.0/24", "gateway": "10.0.3.1"})
    with pytest.raises(ValidationError, match="/32"):
        v.plan_create(d.state, "subnet", d.zone.id, {"name": "s", "cidr": "10.0.2.1/32"})
    s = d.create("subnet", d.zone.id, {"name": "s", "cidr": "10.0.2.0/24", "gateway": "10.0.2.254"})
    assert s.gateway == "10.0.2.254"


# -- vports ------------------------------------------------------------------------------------------------


def test_vport_gets_ip_mac_gateway_and_down_status(d):
    vp = d.create("vport", d.sub.id, {"name": "c1", "host": "node-1", "external_ids": {"ifname": "eth0"}})
    assert (vp.ip, vp.gateway, vp.status, vp.type) == ("10.0.1.2", "10.0.1.1", "down", "container")
    assert vp.mac.startswith("02:") and vp.domain == d.dom.id
    assert dict(vp.external_ids) == {"ifname": "eth0"}


def test_vport_requested_ip_and_mac(d):
    vp = d.create("vport", d.sub.id, {"name": "c1", "ip": "10.0.1.50", "mac": "0a:00:00:00:00:01"})
    assert (vp.ip, vp.mac) == ("10.0.1.50", "0a:00:00:00:00:01")
    with pytest.raises(Conflict, match="10.0.1.50 is already in use"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c2", "ip": "10.0.1.50"})
    with pytest.raises(Conflict, match="mac"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c2", "mac": "0A:00:00:00:00:01"})
    with pytest.raises(ValidationError):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c2", "ip": "10.0.1.1"})  # gateway
    with pytest.raises(ValidationError):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c2", "mac": "ff:ff:ff:ff:ff:ff"})
    # the same ip in another domain is fine
    assert d.create("vport", d.osub.id, {"name": "c1", "ip": "10.0.1.50"}).ip == "10.0.1.50"


def test_vport_auto_assignment_is_marked_for_retry(d):
    assert v.plan_create(d.state, "vport", d.sub.id, {"name": "c"}).auto_assigned
    fixed = v.plan_create(d.state, "vport", d.sub.id,
                          {"name": "c", "ip": "10.0.1.9", "mac": "02:00:00:00:00:09"})
    assert not fixed.auto_assigned


def test_vport_type_host_and_groups_checked(d):
    with pytest.raises(ValidationError):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c", "type": "router"})
    with pytest.raises(ValidationError):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c", "host": "bad host!"})
    with pytest.raises(ValidationError, match="does not exist in this domain"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "c", "policygroups": [d.opg.id]})
    vp = d.create("vport", d.sub.id, {"name": "c", "type": "vm", "policygroups": [d.pg.id]})
    assert vp.policygroups == frozenset({d.pg.id})
    assert [m.id for m in d.state.members_of(d.pg.id)] == [vp.id]
    assert d.update("vport", vp.id, {"policygroups": []}).policygroups == frozenset()


def test_vport_in_exhausted_subnet_is_409(d):
    tiny = d.create("subnet", d.zone.id, {"name": "p2p", "cidr": "10.0.9.0/31"})
    assert d.create("vport", tiny.id, {"name": "a"}).ip == "10.0.9.1"
    with pytest.raises(Conflict, match="exhausted"):
        v.plan_create(d.state, "vport", tiny.id, {"name": "b"})


# -- ACL rules ---------------------------------------------------------------------------------------------


def acl(d, **body):
    body.setdefault("priority", 100)
    return v.plan_create(d.state, "acl", d.dom.id, body)


def test_acl_defaults_and_normalisation(d):
    rule = d.create("acl", d.dom.id, {"priority": 10, "protocol": "6", "dst_ports": "80"})
    assert (rule.protocol, rule.dst_ports, rule.action, rule.stateful) == ("tcp", "80", "allow", True)
    assert rule.source.type == "any" and rule.destination.type == "any"
    assert d.create("acl", d.dom.id, {"priority": 11, "protocol": 47}).protocol == "47"
    udp = d.create("acl", d.dom.id, {"priority": 12, "protocol": "UDP", "dst_ports": "8000-8080"})
    assert udp.dst_ports == "8000-8080"


def test_acl_priority_unique_and_in_range(d):
    d.create("acl", d.dom.id, {"priority": 10})
    with pytest.raises(ValidationError, match="priority 10"):
        acl(d, priority=10)
    d.create("acl", d.other.id, {"priority": 10})  # other domain: fine
    for bad in (0, 65536):
        with pytest.raises(ValidationError):
            acl(d, priority=bad)


@pytest.mark.parametrize("body", [
    {"protocol": "gre"}, {"protocol": 256}, {"protocol": -1},
    {"protocol": "icmp", "dst_ports": "80"}, {"protocol": "any", "dst_ports": "80"},
    {"protocol": "tcp", "dst_ports": "0"}, {"protocol": "tcp", "dst_ports": "70000"},
    {"protocol": "tcp", "dst_ports": "90-80"}, {"protocol": "tcp", "dst_ports": "http"},
    {"protocol": "tcp", "icmp_type": 8}, {"protocol": "icmp", "icmp_type": 256},
    {"protocol": "icmp", "icmp_code": 0}, {"action": "reject"},
    {"source": {"type": "group", "id": "x"}},
    {"source": {"type": "cidr", "cidr": "10.0.0.1/8"}},
    {"destination": {"type": "policygroup", "id": "00000000-0000-0000-0000-000000000000"}},
])
def test_acl_invalid_values_are_422(d, body):
    with pytest.raises(ValidationError):
        acl(d, **body)


def test_acl_endpoint_extra_keys_are_400(d):
    with pytest.raises(BadRequest):
        acl(d, source={"type": "any", "id": d.pg.id})
    with pytest.raises(BadRequest):
        acl(d, source={"type": "policygroup"})


@pytest.mark.parametrize("etype", ["policygroup", "zone", "subnet"])
def test_acl_endpoints_must_be_in_the_same_domain(d, etype):
    other = {"policygroup": d.opg, "zone": d.ozone, "subnet": d.osub}[etype]
    mine = {"policygroup": d.pg, "zone": d.zone, "subnet": d.sub}[etype]
    with pytest.raises(ValidationError, match="does not exist in this domain"):
        acl(d, source={"type": etype, "id": other.id})
    rule = d.create("acl", d.dom.id, {"priority": 5, "destination": {"type": etype, "id": mine.id}})
    assert rule.destination.id == mine.id


def test_acl_icmp_and_cidr(d):
    rule = d.create("acl", d.dom.id, {"priority": 7, "protocol": "icmp", "icmp_type": 8, "icmp_code": 0,
                                      "source": {"type": "cidr", "cidr": "192.168.0.0/16"}, "action": "deny",
                                      "stateful": False})
    assert (rule.icmp_type, rule.icmp_code, rule.source.cidr) == (8, 0, "192.168.0.0/16")
    assert rule.stateful is False


def test_acl_update_revalidates_the_whole_rule(d):
    rule = d.create("acl", d.dom.id, {"priority": 7, "protocol": "tcp", "dst_ports": "22"})
    with pytest.raises(ValidationError, match="dst_ports needs protocol tcp or udp"):
        v.plan_update(d.state, "acl", rule.id, {"protocol": "icmp"})
    changed = d.update("acl", rule.id, {"protocol": "icmp", "dst_ports": None, "priority": 8})
    assert (changed.protocol, changed.dst_ports, changed.priority) == ("icmp", None, 8)
    d.create("acl", d.dom.id, {"priority": 9})
    with pytest.raises(ValidationError, match="priority 9"):
        v.plan_update(d.state, "acl", rule.id, {"priority": 9})


def test_acls_of_sorted_by_priority(d):
    for p in (30, 10, 20):
        d.create("acl", d.dom.id, {"priority": p})
    assert [a.priority for a in d.state.acls_of(d.dom.id)] == [10, 20, 30]


# -- hosts and tokens --------------------------------------------------------------------------------------


def test_host_rules(d):
    h = d.create("host", None, {"name": "node-1", "tunnel_ip": "192.0.2.10", "datapath_id": "0x1A"})
    assert (h.datapath_id, h.connected, h.last_seen) == ("000000000000001a", False, 0)
    with pytest.raises(Conflict):
        v.plan_create(d.state, "host", None, {"name": "node-1"})
    for body in ({"name": "bad name"}, {"name": "n2", "tunnel_ip": "300.1.1.1"},
                 {"name": "n2", "datapath_id": "xyz"}, {"name": "n2", "datapath_id": "1" * 17}):
        with pytest.raises(ValidationError):
            v.plan_create(d.state, "host", None, body)
    with pytest.raises(ValidationError, match="read-only"):
        v.plan_update(d.state, "host", h.id, {"connected": True})
    assert d.update("host", h.id, {"tunnel_ip": "192.0.2.11"}).tunnel_ip == "192.0.2.11"
    vp = d.create("vport", d.sub.id, {"name": "c1", "host": "node-1"})
    assert d.state.vports_on_host("node-1") == [vp]


def test_token_needs_existing_enterprise(d):
    with pytest.raises(ValidationError, match="does not exist"):
        v.plan_create(d.state, "token", None, {"enterprise": "nope"}, token_hash="h")
    t = d.create("token", None, {"enterprise": d.ent.id, "name": "ci"}, token_hash="abc", now_ms=5)
    assert d.state.token_by_hash("abc") == t


# -- deletes -----------------------------------------------------------------------------------------------


def test_delete_with_children_is_409_without_cascade(d):
    with pytest.raises(Conflict, match=r"1 zone, 1 policygroup; .*cascade=true"):
        v.plan_delete(d.state, "domain", d.dom.id)
    with pytest.raises(Conflict, match="2 domains"):
        v.plan_delete(d.state, "enterprise", d.ent.id)
    with pytest.raises(Conflict, match="1 subnet"):
        v.plan_delete(d.state, "zone", d.zone.id)
    d.create("vport", d.sub.id, {"name": "c1"})
    with pytest.raises(Conflict, match="1 vport"):
        v.plan_delete(d.state, "subnet", d.sub.id)


def test_delete_policygroup_with_members_or_rules(d):
    vp = d.create("vport", d.sub.id, {"name": "c1", "policygroups": [d.pg.id]})
    rule = d.create("acl", d.dom.id, {"priority": 1, "source": {"type": "policygroup", "id": d.pg.id}})
    keep = d.create("acl", d.dom.id, {"priority": 2})
    with pytest.raises(Conflict, match="1 member vport, 1 acl"):
        v.plan_delete(d.state, "policygroup", d.pg.id)
    d.delete("policygroup", d.pg.id, cascade=True)
    assert d.pg.id not in d.state.policygroups
    assert d.state.vports[vp.id].policygroups == frozenset()  # vport kept, membership gone
    assert rule.id not in d.state.acls and keep.id in d.state.acls


def test_cascade_deletes_subtree_and_referencing_rules(d):
    vp = d.create("vport", d.sub.id, {"name": "c1"})
    z_rule = d.create("acl", d.dom.id, {"priority": 1, "source": {"type": "zone", "id": d.zone.id}})
    s_rule = d.create("acl", d.dom.id, {"priority": 2, "source": {"type": "subnet", "id": d.sub.id}})
    d.delete("zone", d.zone.id, cascade=True)
    assert vp.id not in d.state.vports and d.sub.id not in d.state.subnets
    assert z_rule.id not in d.state.acls and s_rule.id not in d.state.acls
    assert d.dom.id in d.state.domains


def test_enterprise_cascade_removes_everything_including_tokens(d):
    d.create("token", None, {"enterprise": d.ent.id}, token_hash="abc")
    d.create("vport", d.sub.id, {"name": "c1"})
    d.create("acl", d.dom.id, {"priority": 1})
    d.delete("enterprise", d.ent.id, cascade=True)
    st = d.state
    assert not (st.enterprises or st.domains or st.zones or st.subnets or st.vports or st.acls
                or st.policygroups or st.tokens)


def test_delete_leaf_and_missing(d):
    vp = d.create("vport", d.sub.id, {"name": "c1"})
    d.delete("vport", vp.id)
    assert vp.id not in d.state.vports
    with pytest.raises(NotFound):
        v.plan_delete(d.state, "vport", vp.id)


# -- membership --------------------------------------------------------------------------------------------


def test_membership_set_add_remove(d):
    a = d.create("vport", d.sub.id, {"name": "a"})
    b = d.create("vport", d.sub.id, {"name": "b"})
    other = d.create("vport", d.osub.id, {"name": "x"})

    def members():
        return sorted(m.name for m in d.state.members_of(d.pg.id))

    d.state = v.apply_change(d.state, v.plan_membership(d.state, d.pg.id, [a.id], "add"))
    assert members() == ["a"]
    d.state = v.apply_change(d.state, v.plan_membership(d.state, d.pg.id, [b.id], "set"))
    assert members() == ["b"]
    d.state = v.apply_change(d.state, v.plan_membership(d.state, d.pg.id, [b.id], "remove"))
    assert members() == []
    with pytest.raises(ValidationError, match="does not exist in this domain"):
        v.plan_membership(d.state, d.pg.id, [other.id], "add")
    with pytest.raises(BadRequest):
        v.plan_membership(d.state, d.pg.id, "nope", "add")
