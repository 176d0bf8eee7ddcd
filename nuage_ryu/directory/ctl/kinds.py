"""The object kinds nuage-ctl knows: REST collection, parent, and how to speak of them.

One table, read by the parser (which options each kind has), the resolver (how to walk
down to an object) and the renderer (names of referenced objects).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One directory object kind as the CLI sees it."""

    name: str  # "policygroup"
    plural: str  # REST collection: "policygroups"
    parent: str | None  # parent kind (the REST path it is listed under), None = top level
    label: str  # words for messages: "policy group"
    summary: str  # one line for help

    @property
    def ancestry(self) -> list[str]:
        """Kinds from the top down to this one: vport -> enterprise, domain, zone, subnet, vport."""
        chain = [self.name]
        while KINDS[chain[0]].parent:
            chain.insert(0, KINDS[chain[0]].parent)
        return chain


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("enterprise", "enterprises", None, "enterprise", "tenants: the top of the object tree"),
    Kind("domain", "domains", "enterprise", "domain", "routing domains (VRF: own VNI, default action)"),
    Kind("zone", "zones", "domain", "zone", "zones of a domain (groups of subnets)"),
    Kind("subnet", "subnets", "zone", "subnet", "subnets of a zone (CIDR, gateway)"),
    Kind("vport", "vports", "subnet", "vport", "vports: container, VM or host interfaces on a subnet"),
    Kind("policygroup", "policygroups", "domain", "policy group", "policy groups: named sets of vports"),
    Kind("acl", "acls", "domain", "ACL rule", "ACL rules of a domain (priority, source, destination...)"),
    Kind("host", "hosts", None, "host", "hosts running a VRS agent"),
    Kind("token", "tokens", None, "token", "API tokens limited to one enterprise or one host"),
)}

# The options that name a parent scope, in tree order.
SCOPES = ("enterprise", "domain", "zone", "subnet")

# Parent options each kind accepts to narrow a name lookup (all its ancestors).
SCOPE_OPTIONS = {name: kind.ancestry[:-1] for name, kind in KINDS.items()}

# Endpoint prefixes of ACL rules (pg is short for policygroup).
ENDPOINT_KINDS = {"policygroup": "policygroup", "pg": "policygroup", "zone": "zone", "subnet": "subnet"}


def article(word: str) -> str:
    """'a' or 'an' before ``word`` (by its sound: an ACL rule, an enterprise, a host)."""
    first = word[:1]
    if word[:3].isupper() and first in "AEFHILMNORSX":  # initialisms: an ACL, an MTU, an SSL
        return "an"
    return "an" if first.lower() in "aeiou" else "a"


def with_article(word: str) -> str:
    """'an enterprise', 'a policy group', 'an ACL rule'."""
    return f"{article(word)} {word}"
