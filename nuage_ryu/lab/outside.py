"""The lab's outside world: a router on the underlay and an "internet" server behind it.

Layout (docs/lab.md, "Outside world")::

    <prefix>-ul  ul-br ──── rtr:eth0 192.0.2.1/24   (the underlay's default gateway)
    <prefix>-rtr            eth1 203.0.113.1/24 ──── <prefix>-inet eth0 203.0.113.80/24

203.0.113.0/24 is TEST-NET-3 (RFC 5737): outside the underlay (192.0.2.0/24) and outside
any overlay subnet a test would use, so a packet that reaches the server has really left
the overlay. Hosts and the controller node get ``default via 192.0.2.1``; the server's
default route is the router, so replies to any underlay address come back.

Pure plan (``plan_outside``) and the steps that build it (``build_outside``), kept apart
from ``lab.py`` so the core lab stays as it was when the outside world is not asked for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from nuage_ryu.lab import netns

OUTSIDE_NET = ipaddress.ip_network("203.0.113.0/24")  # RFC 5737 TEST-NET-3
ROUTER_UNDERLAY_IP = "192.0.2.1"
ROUTER_OUTSIDE_IP = "203.0.113.1"
INTERNET_IP = "203.0.113.80"
# The lab directory's floating IP pool: on the underlay segment, above every host address
# (hosts are .11-.110), so the router reaches a floating IP by ARP like any underlay address.
FLOATING_IP_POOL = "192.0.2.192/26"
ROUTER_OUTSIDE_IF = "eth1"
INTERNET_IF = "eth0"

# Router: forwards between the two links. No redirects: hosts on the underlay should keep
# using the router, not be told to take shortcuts the lab does not have.
ROUTER_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0",
                  "net.ipv4.conf.default.send_redirects": "0"}


def plan_outside(prefix: str) -> dict:
    """The ``outside`` section of lab.json: the router node and the internet node."""
    return {
        "router": {"name": "rtr", "netns": f"{prefix}-rtr", "underlay_ip": ROUTER_UNDERLAY_IP,
                   "outside_ip": ROUTER_OUTSIDE_IP},
        "internet": {"name": "inet", "netns": f"{prefix}-inet", "ip": INTERNET_IP},
        "subnet": str(OUTSIDE_NET),
    }


def outside_netns(outside: dict | None) -> list[str]:
    """The namespaces of the outside world (to create, look into and delete), inner first."""
    if not outside:
        return []
    return [outside["internet"]["netns"], outside["router"]["netns"]]


def build_outside(outside: dict, underlay_prefixlen: int, plug_node: Callable[[str, str], None],
                  base_sysctls: dict[str, str]) -> None:
    """Create the router (plugged into the underlay by ``plug_node(netns, port)``) and the server."""
    router, internet = outside["router"], outside["internet"]
    plug_node(router["netns"], router["name"])
    netns.set_sysctl(router["netns"], ROUTER_SYSCTLS)
    netns.ip("addr", "add", f"{router['underlay_ip']}/{underlay_prefixlen}", "dev", "eth0",
             netns=router["netns"])

    netns.add(internet["netns"])
    netns.set_sysctl(internet["netns"], base_sysctls)
    netns.ip("link", "add", ROUTER_OUTSIDE_IF, "type", "veth", "peer", "name", INTERNET_IF,
             "netns", internet["netns"], netns=router["netns"])
    netns.ip("addr", "add", f"{router['outside_ip']}/{OUTSIDE_NET.prefixlen}", "dev", ROUTER_OUTSIDE_IF,
             netns=router["netns"])
    netns.ip("link", "set", ROUTER_OUTSIDE_IF, "up", netns=router["netns"])
    netns.ip("addr", "add", f"{internet['ip']}/{OUTSIDE_NET.prefixlen}", "dev", INTERNET_IF,
             netns=internet["netns"])
    netns.ip("link", "set", INTERNET_IF, "up", netns=internet["netns"])
    netns.ip("link", "set", "lo", "up", netns=internet["netns"])
    netns.ip("route", "add", "default", "via", router["outside_ip"], netns=internet["netns"])
    # The server's TCP is forwarded by the router onto the underlay and read by the hosts'
    # userspace datapaths: its checksums must be complete when it leaves (docs/lab.md).
    netns.disable_tx_checksum(internet["netns"], [INTERNET_IF])
    netns.disable_tx_checksum(router["netns"], [ROUTER_OUTSIDE_IF])


def route_via_router(node_netns: str, outside: dict, dev: str) -> None:
    """Give a node of the underlay its default route through the lab's router."""
    netns.ip("route", "replace", "default", "via", outside["router"]["underlay_ip"], "dev", dev,
             netns=node_netns)
