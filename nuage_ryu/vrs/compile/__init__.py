"""The flow compiler: a host's view of the directory -> the flows its bridge should have. Pure, no I/O.

Layout, one job per module:

============ ====================================================================================
``base``     match builder, address helpers, the owner vocabulary (``OwnerTag`` tied to the cookie
             kinds, ``OwnerKind``) and the merge of flows with one OpenFlow identity
``static``   the pipeline skeleton every bridge has (owner ``static``)
``domain``   a present domain's tunnel classification, conntrack and default action; subnet gateways
``vport``    a vport's ARP answer and routes, and on its own host its port flows
``acl``      the domain's ACL rules as conjunctive flows (owners ``acl`` and ``acl-member``)
``external`` egress NAT, floating IPs, published ports (owners ``external-static``, ``external``,
             ``external-vport``; docs/external.md)
``uplink``   br-phy's steering flows (not br-int's: no owner kind, cookie kind UPLINK)
``driver``   ``FlowCompiler``: incremental recompilation over the explicit list ``OWNER_KINDS``
============ ====================================================================================

Dependencies point one way: ``driver`` -> the owner-kind modules -> ``base``.
"""

from nuage_ryu.vrs.compile.acl import (
    PolicyError,
    RulePlan,
    compile_member,
    compile_rule,
    conj_ids,
    parse_ports,
    plan_domain,
    policy_index,
    port_range_masks,
    rule_cookie,
    service_matches,
    services_may_overlap,
)
from nuage_ryu.vrs.compile.base import (
    UNOWNED_COOKIE_KINDS,
    FlowConflict,
    Owner,
    OwnerKind,
    OwnerTag,
    cidr_match,
    ip_to_int,
    match,
    merge_same_key,
)
from nuage_ryu.vrs.compile.domain import compile_domain, compile_subnet, default_action_cookie
from nuage_ryu.vrs.compile.driver import OWNER_KINDS, FlowCompiler, compile_host
from nuage_ryu.vrs.compile.static import compile_static
from nuage_ryu.vrs.compile.vport import compile_vport

__all__ = [
    "OWNER_KINDS",
    "UNOWNED_COOKIE_KINDS",
    "FlowCompiler",
    "FlowConflict",
    "Owner",
    "OwnerKind",
    "OwnerTag",
    "PolicyError",
    "RulePlan",
    "cidr_match",
    "compile_domain",
    "compile_host",
    "compile_member",
    "compile_rule",
    "compile_static",
    "compile_subnet",
    "compile_vport",
    "conj_ids",
    "default_action_cookie",
    "ip_to_int",
    "match",
    "merge_same_key",
    "parse_ports",
    "plan_domain",
    "policy_index",
    "port_range_masks",
    "rule_cookie",
    "service_matches",
    "services_may_overlap",
]
