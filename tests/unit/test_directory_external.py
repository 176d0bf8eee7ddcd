"""External connectivity in the directory model: egress_nat, floating IPs, port mappings (no database)."""

import pytest

from nuage_ryu.directory import external
from nuage_ryu.directory import validate as v
from nuage_ryu.directory.errors import BadRequest, Conflict, ValidationError
from nuage_ryu.directory.model import FIELDS, DirectoryState, PortMapping, as_dict
from nuage_ryu.directory.openapi import field_schema

POOL = "198.51.100.0/28"


class Dir:
    def __init__(self):
        self.state = DirectoryState()

    def create(self, kind, parent, body):
        change = v.plan_create(self.state, kind, parent, body)
        self.state = v.apply_change(self.state, change)
        return self.state.get(*change.result)

    def update(self, kind, obj_id, body):
        self.state = v.apply_change(self.state, v.plan_update(self.state, kind, obj_id, body))
        return self.state.get(kind, obj_id)

    def delete(self, kind, obj_id):
        self.state = v.apply_change(self.state, v.plan_delete(self.state, kind, obj_id))


@pytest.fixture
def d():
    with external.pool_configured(POOL):
        d = Dir()
        d.ent = d.create("enterprise", None, {"name": "acme"})
        d.dom = d.create("domain", d.ent.id, {"name": "prod"})
        d.zone = d.create("zone", d.dom.id, {"name": "web"})
        d.sub = d.create("subnet", d.zone.id, {"name": "front", "cidr": "10.0.1.0/24"})
        yield d


def test_egress_nat_is_off_unless_asked_for_and_can_be_switched(d):
    assert d.dom.egress_nat is False
    assert as_dict("domain", d.dom)["egress_nat"] is False
    on = d.create("domain", d.ent.id, {"name": "open", "egress_nat": True})
    assert on.egress_nat is True
    assert d.update("domain", d.dom.id, {"egress_nat": True}).egress_nat is True
    assert d.update("domain", d.dom.id, {"egress_nat": False}).egress_nat is False


def test_egress_nat_must_be_a_boolean(d):
    with pytest.raises(BadRequest, match="boolean"):
        v.plan_update(d.state, "domain", d.dom.id, {"egress_nat": "yes"})


def test_floating_ip_from_the_pool_is_bound_to_one_vport_only(d):
    a = d.create("vport", d.sub.id, {"name": "a", "host": "h1", "floating_ip": "198.51.100.5"})
    assert a.floating_ip == "198.51.100.5"
    assert as_dict("vport", a, d.state)["floating_ip"] == "198.51.100.5"
    with pytest.raises(Conflict, match="already bound"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "b", "floating_ip": "198.51.100.5"})
    # Putting back what GET showed is fine; moving it away frees it.
    assert d.update("vport", a.id, {"floating_ip": "198.51.100.5"}).floating_ip == "198.51.100.5"
    assert d.update("vport", a.id, {"floating_ip": ""}).floating_ip == ""
    assert d.create("vport", d.sub.id, {"name": "b", "floating_ip": "198.51.100.5"}).floating_ip


def test_floating_ip_outside_the_pool_or_not_an_address_is_422(d):
    with pytest.raises(ValidationError, match="not in the floating IP pool"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "a", "floating_ip": "198.51.100.16"})
    with pytest.raises(ValidationError, match="not a valid IPv4"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "a", "floating_ip": "banana"})


def test_without_a_pool_no_floating_ip_is_accepted(d):
    with external.pool_configured(""), pytest.raises(ValidationError, match="none configured"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "a", "floating_ip": "198.51.100.5"})


def test_floating_ip_survives_its_vport_only_as_a_free_address(d):
    """Delete the vport, re-create it on another host with the same address: allowed at once."""
    a = d.create("vport", d.sub.id, {"name": "a", "host": "h1", "floating_ip": "198.51.100.7"})
    d.delete("vport", a.id)
    again = d.create("vport", d.sub.id, {"name": "a", "host": "h2", "floating_ip": "198.51.100.7"})
    assert (again.host, again.floating_ip) == ("h2", "198.51.100.7")


def test_port_mappings_are_normalised_sorted_and_shown(d):
    a = d.create("vport", d.sub.id, {"name": "a", "host": "h1", "port_mappings": [
        {"protocol": "udp", "host_port": 5353, "container_port": 53},
        {"host_port": 8080, "container_port": 80}]})
    assert a.port_mappings == (PortMapping("tcp", 8080, 80), PortMapping("udp", 5353, 53))
    shown = as_dict("vport", a, d.state)["port_mappings"]
    assert shown == [{"protocol": "tcp", "host_port": 8080, "container_port": 80},
                     {"protocol": "udp", "host_port": 5353, "container_port": 53}]
    # GET -> PUT round trip in another order is no change.
    assert d.update("vport", a.id, {"port_mappings": list(reversed(shown))}).port_mappings == a.port_mappings
    assert d.update("vport", a.id, {"port_mappings": []}).port_mappings == ()


def test_one_host_port_is_published_once_per_host(d):
    mapping = [{"protocol": "tcp", "host_port": 8080, "container_port": 80}]
    a = d.create("vport", d.sub.id, {"name": "a", "host": "h1", "port_mappings": mapping})
    with pytest.raises(Conflict, match="already published"):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "b", "host": "h1", "port_mappings": mapping})
    # Another host, or the other protocol, is fine.
    d.create("vport", d.sub.id, {"name": "b", "host": "h2", "port_mappings": mapping})
    d.create("vport", d.sub.id, {"name": "c", "host": "h1", "port_mappings": [
        {"protocol": "udp", "host_port": 8080, "container_port": 80}]})
    # Moving b onto h1 would publish 8080/tcp twice there.
    b = [x for x in d.state.vports.values() if x.name == "b"][0]
    with pytest.raises(Conflict, match="already published"):
        v.plan_update(d.state, "vport", b.id, {"host": "h1"})
    assert d.update("vport", a.id, {"port_mappings": mapping}).port_mappings  # itself: no conflict


@pytest.mark.parametrize("mappings,error,match", [
    ({"host_port": 1}, BadRequest, "list of objects"),
    (["tcp/80"], BadRequest, "must be an object"),
    ([{"host_port": 80, "container_port": 80, "host_ip": "1.2.3.4"}], BadRequest, "unexpected host_ip"),
    ([{"protocol": "sctp", "host_port": 80, "container_port": 80}], ValidationError, "not tcp or udp"),
    ([{"host_port": 0, "container_port": 80}], ValidationError, "out of range"),
    ([{"host_port": 80, "container_port": 70000}], ValidationError, "out of range"),
    ([{"host_port": "80", "container_port": 80}], BadRequest, "must be an integer"),
    ([{"protocol": "udp", "host_port": 4789, "container_port": 4789}], ValidationError, "VXLAN"),
    ([{"host_port": 80, "container_port": 80}, {"host_port": 80, "container_port": 81}], ValidationError,
     "mapped twice"),
])
def test_bad_port_mappings_are_refused(d, mappings, error, match):
    with pytest.raises(error, match=match):
        v.plan_create(d.state, "vport", d.sub.id, {"name": "a", "port_mappings": mappings})


def test_port_mapping_column_codec_round_trips_and_skips_garbage():
    mappings = (PortMapping("tcp", 8080, 80), PortMapping("udp", 5353, 53))
    encoded = external.encode_port_mappings(mappings)
    assert encoded == ["tcp/8080:80", "udp/5353:53"]
    assert external.decode_port_mappings([*encoded, "junk", "sctp/1:1"]) == mappings


def test_pool_parsing():
    assert [str(n) for n in external.parse_pool(" 198.51.100.0/24, 203.0.113.128/25 ")] == [
        "198.51.100.0/24", "203.0.113.128/25"]
    assert external.parse_pool("") == ()
    with pytest.raises(ValueError):
        external.parse_pool("300.0.0.0/8")


def test_openapi_describes_port_mappings():
    field = next(f for f in FIELDS["vport"] if f.name == "port_mappings")
    schema = field_schema(field)
    assert schema["type"] == "array"
    assert set(schema["items"]["properties"]) == {"protocol", "host_port", "container_port"}
