"""Flow cookies: which object owns a flow.

A cookie is 64 bits: the top 8 say the kind of owner, the low 56 a stable hash
of the owner's id. Sync, deletes (``cookie/cookie_mask``) and counters go by
cookie: ``cookie_for(CookieKind.VPORT, vport_id)`` with ``cookie_mask=FULL_MASK``
selects exactly one vport's flows; ``kind_cookie(kind)`` with ``KIND_MASK``
selects every flow of one kind. A 56-bit hash makes a collision between two of
a host's few thousand owners negligible (birthday bound ~1e-9 at 10k owners).
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

KIND_SHIFT = 56
KIND_MASK = 0xFF << KIND_SHIFT
ID_MASK = (1 << KIND_SHIFT) - 1
FULL_MASK = (1 << 64) - 1


class CookieKind(IntEnum):
    """Owner kinds. Values are part of the on-switch format: never renumber, only append."""

    STATIC = 1  # pipeline skeleton: table-miss drops, tunnel output
    CANARY = 2  # the restart detector
    DOMAIN = 3  # per-domain: tunnel classification, conntrack, policy skeleton
    SUBNET = 4  # gateway ARP
    VPORT = 5  # a vport on this host
    REMOTE_VPORT = 6  # a vport on another host (ARP answer + route to its host)
    ACL_RULE = 7  # a rule's conjunction/verdict flows (its counters)
    POLICY_MEMBER = 8  # a policy clause flow for one endpoint member (vport, subnet, cidr)
    ACL_DEFAULT = 9  # a domain's default action (its drop/allow counters)
    REMOTE_HOST = 10  # reserved: per-remote-host flows
    EXTERNAL = 11  # external connectivity: skeleton of the EXT_* tables, a domain's exits and NAT zone
    FLOATING_IP = 12  # a local vport's floating IP (ARP, both rewrites)
    PORT_MAPPING = 13  # a local vport's published ports
    UPLINK = 14  # the physical bridge's steering flows
    # a domain's audit tables (entry, clauses, the enforcing rules' silent stops); an audit rule's
    # own verdict flow carries ACL_RULE (its counters)
    ACL_AUDIT = 15


def _id_hash(object_id: str) -> int:
    digest = hashlib.blake2b(object_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ID_MASK


def cookie_for(kind: CookieKind, object_id: str = "") -> int:
    """The cookie of every flow owned by ``object_id`` of this kind."""
    return (int(kind) << KIND_SHIFT) | _id_hash(object_id)


def kind_of(cookie: int) -> CookieKind | None:
    """The owner kind encoded in a cookie; None for a cookie this project did not write."""
    try:
        return CookieKind((cookie & KIND_MASK) >> KIND_SHIFT)
    except ValueError:
        return None


def kind_cookie(kind: CookieKind) -> int:
    """Cookie value to use with ``KIND_MASK`` to select all flows of one kind."""
    return int(kind) << KIND_SHIFT


def is_ours(cookie: int) -> bool:
    """True for cookies written by this project (the sync engine leaves other flows alone)."""
    return kind_of(cookie) is not None


STATIC_COOKIE = cookie_for(CookieKind.STATIC, "pipeline")
CANARY_COOKIE = cookie_for(CookieKind.CANARY, "canary")
