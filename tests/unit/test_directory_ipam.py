"""IPAM edges: reserved addresses, /31, /32, exhaustion, reuse, MACs."""

import pytest

from nuage_ryu.directory import ipam
from nuage_ryu.directory.errors import Conflict, ValidationError


def test_default_gateway_is_first_usable():
    assert ipam.check_subnet("10.0.1.0/24", None) == ("10.0.1.0/24", "10.0.1.1")


def test_gateway_must_be_inside_and_not_network_or_broadcast():
    assert ipam.check_subnet("10.0.1.0/24", "10.0.1.254")[1] == "10.0.1.254"
    for bad in ("10.0.2.1", "10.0.1.0", "10.0.1.255"):
        with pytest.raises(ValidationError):
            ipam.check_subnet("10.0.1.0/24", bad)


@pytest.mark.parametrize("cidr", ["10.0.1.1/24", "10.0.1.0/33", "10.0.1.0", "nonsense/24", "fe80::/64",
                                  "10.0.1.0/x", "0.0.0.0/0"])
def test_invalid_cidrs(cidr):
    with pytest.raises(ValidationError):
        ipam.check_subnet(cidr, None)


def test_host_bits_message_suggests_network():
    with pytest.raises(ValidationError, match="did you mean 10.0.1.0/24"):
        ipam.parse_cidr("10.0.1.7/24")


def test_never_network_broadcast_or_gateway():
    # /30: network .0, gateway .1, usable .2, broadcast .3 -> exactly one vport
    assert ipam.capacity("10.0.0.0/30") == 1
    assert ipam.allocate_ip("10.0.0.0/30", "10.0.0.1", []) == "10.0.0.2"
    with pytest.raises(Conflict, match="exhausted"):
        ipam.allocate_ip("10.0.0.0/30", "10.0.0.1", ["10.0.0.2"])


@pytest.mark.parametrize("ip", ["10.0.0.0", "10.0.0.3", "10.0.0.1"])
def test_requested_reserved_address_is_422(ip):
    with pytest.raises(ValidationError):
        ipam.allocate_ip("10.0.0.0/30", "10.0.0.1", [], ip)


def test_requested_outside_or_malformed_is_422():
    for ip in ("10.0.1.5", "10.0.0.256", "abc", "10.0.0"):
        with pytest.raises(ValidationError):
            ipam.allocate_ip("10.0.0.0/24", "10.0.0.1", [], ip)


def test_requested_in_use_is_409_and_free_is_granted():
    with pytest.raises(Conflict, match="already in use"):
        ipam.allocate_ip("10.0.0.0/24", "10.0.0.1", ["10.0.0.9"], "10.0.0.9")
    assert ipam.allocate_ip("10.0.0.0/24", "10.0.0.1", ["10.0.0.9"], "10.0.0.10") == "10.0.0.10"


def test_slash_31_both_addresses_usable_gateway_takes_one():
    cidr, gw = ipam.check_subnet("10.0.0.0/31", None)
    assert gw == "10.0.0.0"
    assert ipam.capacity(cidr) == 1
    assert ipam.allocate_ip(cidr, gw, []) == "10.0.0.1"
    with pytest.raises(Conflict, match="exhausted"):
        ipam.allocate_ip(cidr, gw, ["10.0.0.1"])
    # the gateway may be the upper address, then the lower one is for the vport
    assert ipam.allocate_ip("10.0.0.0/31", "10.0.0.1", []) == "10.0.0.0"


def test_slash_32_cannot_host_vports():
    with pytest.raises(ValidationError, match="/32"):
        ipam.check_subnet("10.0.0.7/32", None)


def test_exhaustion_message_is_clear():
    used = [f"10.0.0.{i}" for i in range(2, 7)]
    with pytest.raises(Conflict, match=r"10.0.0.0/29 is exhausted: all 5 addresses are in use"):
        ipam.allocate_ip("10.0.0.0/29", "10.0.0.1", used)


def test_sequential_allocation_and_reuse_after_release():
    cidr, gw = "10.0.0.0/29", "10.0.0.1"
    used: list[str] = []
    for _ in range(5):
        used.append(ipam.allocate_ip(cidr, gw, used))
    assert used == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    used.remove("10.0.0.4")  # released
    assert ipam.allocate_ip(cidr, gw, used) == "10.0.0.4"


def test_allocation_continues_after_highest_before_reusing():
    # a just-released low address is not handed out while higher ones are free
    assert ipam.allocate_ip("10.0.0.0/24", "10.0.0.1", ["10.0.0.3"]) == "10.0.0.4"


def test_gateway_in_middle_is_skipped():
    assert ipam.allocate_ip("10.0.0.0/29", "10.0.0.3", ["10.0.0.2"]) == "10.0.0.4"
    got = set()
    used: list[str] = []
    for _ in range(5):
        ip = ipam.allocate_ip("10.0.0.0/29", "10.0.0.3", used)
        used.append(ip)
        got.add(ip)
    assert "10.0.0.3" not in got and len(got) == 5


def test_mac_normalisation_and_unicast():
    assert ipam.normalize_mac("02-AA-bb-cc-dd-ee") == "02:aa:bb:cc:dd:ee"
    for bad in ("01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "zz", "02:aa:bb"):
        with pytest.raises(ValidationError):
            ipam.normalize_mac(bad)


def test_generated_mac_is_local_unicast_and_unused():
    values = iter([0x0102030405, 0x0102030405, 0xAABBCCDDEE])
    taken = {"02:01:02:03:04:05"}
    mac = ipam.generate_mac(lambda m: m in taken, lambda bits: next(values))
    assert mac == "02:aa:bb:cc:dd:ee"
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01
