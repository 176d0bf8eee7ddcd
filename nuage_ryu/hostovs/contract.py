"""The external_ids contract of a vport's port on the integration bridge (docs/ovsdb.md).

One definition for everything that writes or reads these rows: ``HostOVS``
(host.py) writes and lists them, the attach service records an attachment in
them, the VRS agent maps ports to vports with them. Pure data, no OVSDB import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# Interface external_ids of every vport port (HostOVS sets them).
EXT_VPORT_ID = "nuage-vport-id"
EXT_CONTAINER_ID = "nuage-container-id"
EXT_IFNAME = "nuage-ifname"              # the host-side interface name (= the Interface's name)
EXT_IFACE_ID = "iface-id"                # = vport id, the OVN/Neutron convention

# Interface external_ids the attach service adds: an attachment *is* its port plus its vport,
# so everything needed to describe, check or remove it after a restart is recorded here.
EXT_CONTAINER_IFNAME = "nuage-container-ifname"
EXT_NETNS = "nuage-netns"
EXT_OWNER = "nuage-owner"                # cni | docker
EXT_NETWORK = "nuage-network"            # the CNI network name (GC is per network)
EXT_ADDRESS = "nuage-address"            # ip/prefix
EXT_GATEWAY = "nuage-gateway"
EXT_MAC = "nuage-mac"
EXT_SUBNET = "nuage-subnet-id"
EXT_PEER = "nuage-peer"                  # Docker: the container end left in the host namespace

# Bridge external_ids: a Docker network's directory subnet (``<prefix><network id>`` = subnet id).
BRIDGE_DOCKER_NET_PREFIX = "nuage-docker-net-"


@dataclasses.dataclass(frozen=True)
class VPortPort:
    """A container (vport) port on a bridge, as recorded in OVSDB."""

    ifname: str
    ofport: int | None
    vport_id: str
    container_id: str
    external_ids: dict[str, str]


def vport_external_ids(vport_id: str, container_id: str, ifname: str,
                       extra_ids: Mapping[str, str] | None = None) -> dict[str, str]:
    """Interface external_ids for a container port: ``extra_ids`` plus the contract keys."""
    ids = dict(extra_ids or {})
    ids.update({EXT_VPORT_ID: vport_id, EXT_CONTAINER_ID: container_id, EXT_IFNAME: ifname,
                EXT_IFACE_ID: vport_id})
    return ids


def vport_port(ifname: str, ofport: int | None, external_ids: Mapping[str, str]) -> VPortPort | None:
    """The record of an Interface row, None when it is not a vport's port (no vport id)."""
    ids = dict(external_ids)
    if EXT_VPORT_ID not in ids:
        return None
    return VPortPort(ifname=ifname, ofport=ofport, vport_id=ids[EXT_VPORT_ID],
                     container_id=ids.get(EXT_CONTAINER_ID, ""), external_ids=ids)
