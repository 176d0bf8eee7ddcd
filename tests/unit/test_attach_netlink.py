"""The attach path's own rtnetlink messages (attach/netlink.py) and LinkOps on them, against the real kernel."""

from __future__ import annotations

import errno
import json
import struct
import subprocess

import pytest

from nuage_ryu.agent.attach import netlink
from nuage_ryu.agent.attach.links import LinkError, LinkOps
from tests.ovs_fixtures import namespace, unique_netns_name


def test_attributes_are_padded_to_four_bytes_and_parse_back_nested():
    inner = netlink.attr_str(netlink.IFLA_INFO_KIND, "veth")
    assert len(inner) == 12  # 4 header + "veth\0" (5) + 3 padding
    outer = netlink.attr(netlink.IFLA_LINKINFO, inner) + netlink.attr_u32(netlink.IFLA_MTU, 1450)
    parsed = netlink.parse_attrs(outer)
    assert struct.unpack("=I", parsed[netlink.IFLA_MTU])[0] == 1450
    assert netlink.parse_attrs(parsed[netlink.IFLA_LINKINFO])[netlink.IFLA_INFO_KIND] == b"veth\0"
    assert netlink.attr_mac(netlink.IFLA_ADDRESS, "02:00:0a:0b:0c:0d")[4:10] == bytes([2, 0, 10, 11, 12, 13])


def _ip_json(ns: str, *args: str) -> list:
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


@pytest.fixture
def spaces():
    with namespace(unique_netns_name("nl")) as host, namespace(unique_netns_name("nl")) as container:
        yield host, container


def test_veth_with_peer_in_the_container_then_its_address_route_and_up(spaces):
    host, container = spaces
    links = LinkOps(host, tx_checksum_offload=True)
    mac = links.create_veth("nrtest0000001", "eth0", 1450, netns=f"/var/run/netns/{container}",
                            peer_mac="02:00:00:00:00:07")
    (host_end,) = _ip_json(host, "link", "show", "nrtest0000001")
    assert host_end["address"] == mac and host_end["mtu"] == 1450 and "UP" in host_end["flags"]
    assert links.exists("nrtest0000001") and links.mac_of("nrtest0000001") == mac
    assert links.has_interface(f"/var/run/netns/{container}", "eth0")
    assert not links.has_interface(f"/var/run/netns/{container}", "eth9")

    links.configure(f"/var/run/netns/{container}", "eth0", "10.77.0.5/24", "10.77.0.1")
    iface = links.inspect(f"/var/run/netns/{container}", "eth0")  # pyroute2's view of the same
    assert iface.addresses == ("10.77.0.5/24",) and iface.default_gateway == "10.77.0.1"
    assert iface.up and iface.mac == "02:00:00:00:00:07" and iface.mtu == 1450

    with pytest.raises(LinkError) as exists:  # the same name again: EEXIST, as the service expects
        links.create_veth("nrtest0000001", "eth1", 1450, netns=f"/var/run/netns/{container}")
    assert exists.value.errno == errno.EEXIST
    with pytest.raises(LinkError, match="File exists"):  # configured twice: the address is there
        links.configure(f"/var/run/netns/{container}", "eth0", "10.77.0.5/24", "10.77.0.1")
    with pytest.raises(LinkError, match="interface not found"):
        links.configure(f"/var/run/netns/{container}", "eth7", "10.77.0.6/24", None)

    assert links.delete("nrtest0000001") is True
    assert links.delete("nrtest0000001") is False  # absent: no error
    assert not links.exists("nrtest0000001")
    assert not links.has_interface(f"/var/run/netns/{container}", "eth0")  # the peer went with it
    assert links.delete_in_netns(f"/var/run/netns/{container}", "eth0") is False


def test_a_refused_request_is_a_netlink_error_with_its_errno(spaces):
    host, _ = spaces
    with LinkOps(host)._rtnl() as nl:
        assert nl.link("nothing-here") is None
        with pytest.raises(netlink.NetlinkError) as err:
            nl.configure_ipv4(987654, "10.1.2.3", 24, None)  # no such link index
        assert err.value.errno == errno.ENODEV
