"""The one place that imports the OpenFlow framework.

nuage-ryu runs on os-ken (the maintained continuation of Ryu, native threads).
The same apps also load under classic Ryu 4.34's ``ryu-manager``: when Ryu is
already running (its app manager is imported) or os-ken is absent, the names
below come from ``ryu`` instead. Apps import everything framework-related from
here and nowhere else.
"""

import sys

from nuage_ryu.quiet import silence_eventlet_warning

silence_eventlet_warning()  # before the framework (and through it python-ovs/eventlet) is imported

if "ryu.base.app_manager" in sys.modules:  # loaded by classic ryu-manager
    FRAMEWORK = "ryu"
else:
    try:
        import os_ken  # noqa: F401

        FRAMEWORK = "os_ken"
    except ImportError:  # pragma: no cover - only in the classic Ryu venv
        FRAMEWORK = "ryu"

if FRAMEWORK == "os_ken":
    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.controller import dpset, ofp_event
    from os_ken.controller.handler import (
        CONFIG_DISPATCHER,
        DEAD_DISPATCHER,
        HANDSHAKE_DISPATCHER,
        MAIN_DISPATCHER,
        set_ev_cls,
    )
    from os_ken.lib import hub, type_desc
    from os_ken.lib.packet import arp, dhcp, ethernet, ipv4, packet, udp, vlan
    from os_ken.ofproto import (
        nicira_ext,
        ofproto_v1_3,
        ofproto_v1_3_parser,
        ofproto_v1_4,
        ofproto_v1_4_parser,
    )

    BaseApp = app_manager.OSKenApp
else:  # pragma: no cover - exercised by the classic Ryu integration test
    from ryu import cfg
    from ryu.base import app_manager
    from ryu.controller import dpset, ofp_event
    from ryu.controller.handler import (
        CONFIG_DISPATCHER,
        DEAD_DISPATCHER,
        HANDSHAKE_DISPATCHER,
        MAIN_DISPATCHER,
        set_ev_cls,
    )
    from ryu.lib import hub, type_desc
    from ryu.lib.packet import arp, dhcp, ethernet, ipv4, packet, udp, vlan
    from ryu.ofproto import nicira_ext, ofproto_v1_3, ofproto_v1_3_parser, ofproto_v1_4, ofproto_v1_4_parser

    BaseApp = app_manager.RyuApp

CONF = cfg.CONF

__all__ = [
    "FRAMEWORK",
    "CONF",
    "BaseApp",
    "app_manager",
    "dpset",
    "ofp_event",
    "set_ev_cls",
    "CONFIG_DISPATCHER",
    "DEAD_DISPATCHER",
    "HANDSHAKE_DISPATCHER",
    "MAIN_DISPATCHER",
    "hub",
    "arp",
    "dhcp",
    "ethernet",
    "ipv4",
    "packet",
    "udp",
    "vlan",
    "nicira_ext",
    "ofproto_v1_3",
    "ofproto_v1_3_parser",
    "ofproto_v1_4",
    "ofproto_v1_4_parser",
    "type_desc",
]
