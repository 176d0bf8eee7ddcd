"""A tiny os-ken app for the DHCP integration test (no tests in this module).

Sends DHCP (UDP 67) to the controller and answers it with
``nuage_ryu.vrs.dhcp.handle_dhcp``, the way the VRS agent's packet-in handler
does: the lease of the vport comes from the port the request arrived on. Leases
are read from the JSON file named by NUAGE_TEST_DHCP_LEASES (ofport -> lease
fields); the counters are written to NUAGE_TEST_DHCP_STATS after each packet.
"""

import json
import os

from nuage_ryu.framework import (
    CONFIG_DISPATCHER,
    MAIN_DISPATCHER,
    BaseApp,
    ofp_event,
    ofproto_v1_3,
    set_ev_cls,
)
from nuage_ryu.vrs import dhcp as responder


class DhcpTestApp(BaseApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats = responder.DhcpStats()

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        parser, ofp = dp.ofproto_parser, dp.ofproto
        to_controller = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
            parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])]
        dp.send_msg(parser.OFPFlowMod(dp, priority=100, match=parser.OFPMatch(eth_type=0x0800, ip_proto=17,
                                                                              udp_dst=67),
                                      instructions=to_controller))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        in_port = msg.match["in_port"]
        with open(os.environ["NUAGE_TEST_DHCP_LEASES"]) as f:
            fields = json.load(f).get(str(in_port))
        lease = responder.Lease(**fields) if fields else None
        reply = responder.handle_dhcp(msg.data, lease, self.stats)
        with open(os.environ["NUAGE_TEST_DHCP_STATS"] + ".tmp", "w") as f:
            json.dump(dict(self.stats.counts), f)
        os.replace(os.environ["NUAGE_TEST_DHCP_STATS"] + ".tmp", os.environ["NUAGE_TEST_DHCP_STATS"])
        if reply is None:
            return
        parser, ofp = dp.ofproto_parser, dp.ofproto
        dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                        actions=[parser.OFPActionOutput(in_port)], data=reply))
