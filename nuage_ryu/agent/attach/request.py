"""What the plugins ask for: one interface to attach, its checks, and what it records on its vport."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nuage_ryu.agent.attach.errors import AttachError
from nuage_ryu.agent.attach.links import valid_ifname

OWNERS = ("cni", "docker")
CONTAINER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_UUID_RE = re.compile(r"^[0-9a-f-]{36}$")
_OBJECT_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Directory vport external_ids of an attachment (a Docker IPAM reservation carries owner/reserved/host).
VP_CONTAINER = "nuage-container-id"
VP_IFNAME = "nuage-ifname"                 # the container-side interface name
VP_HOST = "nuage-host"
VP_OWNER = "nuage-owner"
VP_RESERVED = "nuage-reserved"
VP_NETWORK = "nuage-network"


def check_container_id(container_id: str, what: str = "container id") -> None:
    """AttachError(invalid) unless ``container_id`` is 1-128 letters, digits, '_', '.', '-'."""
    if not CONTAINER_ID_RE.match(container_id or ""):
        raise AttachError("invalid", f"invalid {what} {container_id!r}")


def check_object_id(value: str, what: str) -> None:
    """AttachError(invalid) unless ``value`` is a directory object id (a UUID): checked before the
    id goes into a directory URL, so that '../x' can never address another resource."""
    if not isinstance(value, str) or not _OBJECT_ID_RE.match(value):
        raise AttachError("invalid", f"invalid {what} {value!r} (a directory id is a UUID)")


def check_ids(container_id: str, ifname: str) -> None:
    """AttachError(invalid) unless both the container id and the interface name are valid."""
    if not CONTAINER_ID_RE.match(container_id or ""):
        raise AttachError("invalid", f"invalid container id {container_id!r} "
                                     "(1-128 characters: letters, digits, '_', '.', '-')")
    check_ifname(ifname, " (1-15 characters, no '/' or spaces)")


def check_ifname(ifname: str, hint: str = "") -> None:
    """AttachError(invalid) unless ``ifname`` is a Linux interface name."""
    if not valid_ifname(ifname):
        raise AttachError("invalid", f"invalid interface name {ifname!r}{hint}")


def check_owner(owner: str) -> None:
    """AttachError(invalid) unless ``owner`` is one of OWNERS."""
    if owner not in OWNERS:
        raise AttachError("invalid", f"owner must be one of {', '.join(OWNERS)}")


@dataclass
class AttachRequest:
    """One interface to attach. ``netns`` empty means Docker mode (peer stays in the switch namespace)."""

    container_id: str
    ifname: str
    netns: str = ""
    enterprise: str = ""
    domain: str = ""
    zone: str = ""
    subnet: str = ""
    policygroups: list[str] = field(default_factory=list)
    owner: str = "cni"
    network: str = ""           # the CNI network name (GC is per network)
    vport_id: str = ""          # bind this existing (reserved) vport instead of creating one
    wait_up: bool = True
    # Ports published on the host's address (CNI portMappings): [{protocol, host_port, container_port}],
    # checked by the directory (docs/external.md)
    port_mappings: list[dict] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> AttachRequest:
        """The request of a JSON body; AttachError(invalid) for unknown fields or wrong types."""
        if not isinstance(data, dict):
            raise AttachError("invalid", "request body must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise AttachError("invalid", f"unknown field(s): {', '.join(unknown)}")
        missing = [name for name in ("container_id", "ifname") if name not in data]
        if missing:  # found by the fuzz test: a TypeError (500) before
            raise AttachError("invalid", f"missing field(s): {', '.join(missing)}")
        for key, value in data.items():
            if key == "policygroups":
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise AttachError("invalid", "policygroups must be a list of non-empty strings")
            elif key == "wait_up":
                if not isinstance(value, bool):
                    raise AttachError("invalid", "wait_up must be true or false")
            elif key == "port_mappings":
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    raise AttachError("invalid", "port_mappings must be a list of objects")
            elif not isinstance(value, str):
                raise AttachError("invalid", f"{key} must be a string")
        return cls(**data)

    def validate(self) -> None:
        """AttachError(invalid) for a request that cannot be attached whatever the directory says."""
        check_ids(self.container_id, self.ifname)
        check_owner(self.owner)
        if self.vport_id:
            check_object_id(self.vport_id, "vport id")
        if self.netns and not self.netns.startswith("/"):
            raise AttachError("invalid", f"netns must be an absolute path, not {self.netns!r}")
        if not self.vport_id and not self.subnet:
            raise AttachError("invalid", "the network must name a subnet (and its enterprise, domain, zone)")
        if not self.vport_id and not (self.enterprise and self.domain and self.zone) \
                and not _UUID_RE.match(self.subnet):
            raise AttachError("invalid", "enterprise, domain and zone are required unless subnet is an id")

    @property
    def network_key(self) -> tuple[str, str, str, str]:
        """(enterprise, domain, zone, subnet) as named by the request."""
        return (self.enterprise, self.domain, self.zone, self.subnet)

    def vport_binding(self, host_name: str) -> dict[str, str]:
        """The external_ids that bind a directory vport to this attachment on ``host_name``."""
        return {VP_CONTAINER: self.container_id, VP_IFNAME: self.ifname, VP_HOST: host_name,
                VP_OWNER: self.owner, VP_NETWORK: self.network}
