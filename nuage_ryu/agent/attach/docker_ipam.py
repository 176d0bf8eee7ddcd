"""Docker's side of the attach service: IPAM reservations and network bindings.

libnetwork asks for an address (IPAM ``RequestAddress``) before it creates the
endpoint, so the Docker plugin first *reserves* an unbound vport in the
directory (it gets IP and MAC there); the attach later binds that vport. A
Docker network's directory subnet is remembered in the bridge's external_ids,
so the binding survives restarts of the plugin and of the agent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from nuage_ryu.agent.attach.errors import AttachError, directory_errors, ovsdb_errors
from nuage_ryu.agent.attach.request import (
    VP_HOST,
    VP_OWNER,
    VP_RESERVED,
    check_container_id,
    check_object_id,
)
from nuage_ryu.hostovs.contract import BRIDGE_DOCKER_NET_PREFIX, VPortPort

if TYPE_CHECKING:  # annotations only: the bindings need just the methods (tests hand in proxies)
    from nuage_ryu.directory.client import DirectoryClient
    from nuage_ryu.hostovs.host import HostOVS



class DockerBindings:
    """Reservations (unbound vports of this host) and Docker network -> subnet bindings.

    directory: a ``DirectoryClient``; ovs: a ``HostOVS``; ports() lists the bridge's
    vport ports (an address still attached is never released).
    """

    def __init__(self, directory: DirectoryClient, ovs: HostOVS, *, bridge: str, host_name: str,
                 ports: Callable[[], list[VPortPort]]) -> None:
        self.directory = directory
        self.ovs = ovs
        self.bridge = bridge
        self.host_name = host_name
        self._ports = ports

    # Directory lookups for the plugin ------------------------------------------------

    def resolve(self, enterprise: str, domain: str, zone: str, subnet: str) -> dict:
        """The directory objects a network spec names."""
        with directory_errors():
            return self.directory.resolve_subnet(enterprise, domain, zone, subnet)

    def subnets_by_cidr(self, cidr: str) -> list[dict]:
        """Directory subnets whose CIDR is ``cidr`` (any enterprise)."""
        try:
            wanted = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise AttachError("invalid", f"invalid CIDR {cidr!r}") from None
        with directory_errors():
            return [sub for sub in self.directory.subnets()
                    if ipaddress.ip_network(sub["cidr"], strict=False) == wanted]

    def get_subnet(self, subnet_id: str) -> dict:
        """The subnet ``subnet_id``; AttachError(not_found) when there is none."""
        check_object_id(subnet_id, "subnet id")
        with directory_errors():
            sub = self.directory.find("subnets", subnet_id)
        if sub is None:
            raise AttachError("not_found", f"subnet {subnet_id} not found")
        return sub

    # Reservations --------------------------------------------------------------------------

    def reserve(self, subnet_id: str, name: str, ip: str = "") -> dict:
        """Create an unbound vport (an IPAM reservation) in ``subnet_id``; ``ip`` to ask for one."""
        check_object_id(subnet_id, "subnet id")
        fields = {"name": name, "type": "container", "host": self.host_name,
                  "external_ids": {VP_OWNER: "docker", VP_RESERVED: "1", VP_HOST: self.host_name}}
        if ip:
            fields["ip"] = ip
        with directory_errors():
            return self.directory.create_vport(subnet_id, fields)

    def find_reservation(self, subnet_id: str, ip: str) -> dict | None:
        """The reservation holding ``ip`` in ``subnet_id``, or None."""
        check_object_id(subnet_id, "subnet id")
        with directory_errors():
            for vport in self.directory.list_vports(subnet_id):
                if vport.get("ip") == ip and (vport.get("external_ids") or {}).get(VP_RESERVED):
                    return vport
        return None

    def release(self, subnet_id: str, ip: str) -> dict:
        """Delete the reservation holding ``ip`` in ``subnet_id``; idempotent, refused while attached."""
        vport = self.find_reservation(subnet_id, ip)
        if vport is None:
            return {"released": None}
        for port in self._ports():
            if port.vport_id == vport["id"]:
                raise AttachError("conflict", f"address {ip} is still attached to {port.container_id}")
        with directory_errors():
            self.directory.delete_vport(vport["id"])
        return {"released": vport["id"]}

    # Network bindings ------------------------------------------------------------------------

    def set_network(self, network_id: str, subnet_id: str) -> None:
        """Remember a Docker network's subnet in the bridge's external_ids (survives restarts)."""
        check_container_id(network_id, "network id")
        check_object_id(subnet_id, "subnet id")
        with ovsdb_errors():
            self.ovs.api.db_set("Bridge", self.bridge,
                                ("external_ids", {BRIDGE_DOCKER_NET_PREFIX + network_id: subnet_id})
                                ).execute(check_error=True)

    def get_network(self, network_id: str) -> str | None:
        """The subnet id a Docker network is bound to, None if it is not a nuage network here."""
        check_container_id(network_id, "network id")
        with ovsdb_errors():
            ids = dict(self.ovs.bridge_config(self.bridge)["external_ids"])
        return ids.get(BRIDGE_DOCKER_NET_PREFIX + network_id)

    def delete_network(self, network_id: str) -> None:
        """Forget a Docker network's binding; idempotent."""
        check_container_id(network_id, "network id")
        with ovsdb_errors():
            self.ovs.api.db_remove("Bridge", self.bridge, "external_ids",
                                   BRIDGE_DOCKER_NET_PREFIX + network_id).execute(check_error=True)
