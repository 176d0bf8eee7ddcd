"""A stand-in for dockerd's side of the libnetwork remote-driver protocol (no Docker engine runs here).

``Dockerd`` sends the plugin exactly the calls dockerd sends for
``docker network create -d nuage --ipam-driver nuage ...``, ``docker run
--network ...`` and ``docker rm``, in dockerd's order, and does with the answers
what dockerd's sandbox code does: move the interface named in Join's SrcName
into the container's namespace, rename it, set its MAC, address and default
route. Failures are followed by dockerd's own rollback calls. The tests and the
demo use it over the plugin's real unix socket.
"""

from __future__ import annotations

import subprocess
import uuid

from nuage_ryu.plugins.agent_client import AgentClient


class DockerError(Exception):
    """The plugin answered with Err/Error."""


def new_id() -> str:
    """A 64-hex-digit id, like dockerd's network and endpoint ids."""
    return uuid.uuid4().hex + uuid.uuid4().hex


def _ns(netns: str, *argv: str) -> None:
    proc = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DockerError(f"{' '.join(argv)} in {netns}: {proc.stderr.strip()}")


PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17}  # libnetwork types.Protocol


def port_options(publish) -> dict:
    """The two options dockerd derives from ``-p``: libnetwork ``types.PortBinding`` and ``TransportPort``
    lists as JSON (Proto as its number; net.IP marshalled as text, "" when no host address is given)."""
    bindings, exposed = [], []
    for protocol, host_port, port in publish:
        proto = PROTOCOL_NUMBERS[protocol]
        bindings.append({"Proto": proto, "IP": "", "Port": port, "HostIP": "", "HostPort": host_port,
                         "HostPortEnd": host_port})
        exposed.append({"Proto": proto, "Port": port})
    return {"com.docker.network.endpoint.exposedports": exposed, "com.docker.network.portmap": bindings}


class Dockerd:
    """Plays dockerd against the plugin socket ``sock``; ``host_netns``: where the plugin's veths appear."""

    def __init__(self, sock: str, host_netns: str | None = None, timeout: float = 30) -> None:
        self.client = AgentClient(sock, timeout=timeout)
        self.host_netns = host_netns
        self.spaces: dict = {}

    def call(self, path: str, body: dict | None) -> dict:
        return self.client.call("POST", path, body)

    def ok(self, path: str, body: dict | None) -> dict:
        reply = self.call(path, body)
        if reply.get("Err") or reply.get("Error"):
            raise DockerError(f"{path}: {reply.get('Err') or reply.get('Error')}")
        return reply

    def activate(self) -> dict:
        """Plugin discovery: /Plugin.Activate, then both drivers' capabilities and address spaces."""
        implements = self.call("/Plugin.Activate", None)
        self.ok("/NetworkDriver.GetCapabilities", None)
        self.ok("/IpamDriver.GetCapabilities", None)
        self.spaces = self.ok("/IpamDriver.GetDefaultAddressSpaces", None)
        return implements

    def network_create(self, pool: str = "", options: dict | None = None, ipam_options: dict | None = None) -> dict:
        """``docker network create -d nuage --ipam-driver nuage [--subnet POOL] [--ipam-opt k=v] [-o k=v]``.

        Returns {"id", "pool_id", "gateway"} or {"error"} after dockerd's rollback.
        """
        network_id = new_id()
        reply = self.call("/IpamDriver.RequestPool", {
            "AddressSpace": self.spaces.get("LocalDefaultAddressSpace", ""), "Pool": pool, "SubPool": "",
            "Options": ipam_options or {}, "V6": False})
        if reply.get("Error"):
            return {"error": reply["Error"]}
        pool_id, gateway = reply["PoolID"], reply["Data"]["com.docker.network.gateway"]
        gw = self.ok("/IpamDriver.RequestAddress", {
            "PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}})
        if gw["Address"] != gateway:
            raise DockerError(f"IPAM gave gateway {gw['Address']}, RequestPool said {gateway}")
        reply = self.call("/NetworkDriver.CreateNetwork", {
            "NetworkID": network_id,
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": dict(options or {})},
            "IPv4Data": [{"AddressSpace": "nuage-local", "Pool": reply["Pool"], "Gateway": gateway,
                          "AuxAddresses": {}}],
            "IPv6Data": []})
        if reply.get("Err"):  # dockerd rolls back the IPAM side
            self.ok("/IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": gateway.split("/")[0]})
            self.ok("/IpamDriver.ReleasePool", {"PoolID": pool_id})
            return {"error": reply["Err"]}
        return {"id": network_id, "pool_id": pool_id, "gateway": gateway}

    def release(self, net: dict, address: str) -> None:
        self.ok("/IpamDriver.ReleaseAddress", {"PoolID": net["pool_id"], "Address": address.split("/")[0]})

    def network_rm(self, net: dict) -> None:
        """``docker network rm``."""
        self.ok("/NetworkDriver.DeleteNetwork", {"NetworkID": net["id"]})
        self.release(net, net["gateway"])
        self.ok("/IpamDriver.ReleasePool", {"PoolID": net["pool_id"]})

    def run(self, net: dict, sandbox: str, endpoint_options: dict | None = None,
            publish: list[tuple[str, int, int]] = ()) -> dict:
        """``docker run --network NET [-p HOST:CONTAINER/PROTO ...]``: address, endpoint, join, then the
        sandbox work, then the external connectivity.

        ``sandbox``: the container's network namespace (``ip netns`` name, created by the caller).
        ``publish``: (protocol, host port, container port) per ``-p``.
        Returns the container's record, or {"error"} after dockerd's rollback.
        """
        endpoint_id = new_id()
        ports = port_options(publish)
        addr = self.ok("/IpamDriver.RequestAddress", {"PoolID": net["pool_id"], "Address": "", "Options": {}})
        reply = self.call("/NetworkDriver.CreateEndpoint", {
            "NetworkID": net["id"], "EndpointID": endpoint_id,
            "Interface": {"Address": addr["Address"], "AddressIPv6": "", "MacAddress": ""},
            "Options": {**ports, **(endpoint_options or {})}})
        if reply.get("Err"):
            self.release(net, addr["Address"])
            return {"error": reply["Err"]}
        mac = reply["Interface"]["MacAddress"]
        info = self.ok("/NetworkDriver.EndpointOperInfo", {"NetworkID": net["id"], "EndpointID": endpoint_id})
        join = self.call("/NetworkDriver.Join", {"NetworkID": net["id"], "EndpointID": endpoint_id,
                                                 "SandboxKey": f"/var/run/docker/netns/{sandbox}", "Options": {}})
        if join.get("Err"):
            self.ok("/NetworkDriver.DeleteEndpoint", {"NetworkID": net["id"], "EndpointID": endpoint_id})
            self.release(net, addr["Address"])
            return {"error": join["Err"]}
        src = join["InterfaceName"]["SrcName"]
        name = join["InterfaceName"]["DstPrefix"] + "0"
        move = ["ip", "link", "set", src, "netns", sandbox]
        if self.host_netns:
            move = ["ip", "netns", "exec", self.host_netns, *move]
        subprocess.run(move, check=True, capture_output=True)
        for argv in (["ip", "link", "set", src, "name", name], ["ip", "link", "set", name, "address", mac],
                     ["ip", "addr", "add", addr["Address"], "dev", name], ["ip", "link", "set", name, "up"],
                     ["ip", "route", "add", "default", "via", join["Gateway"]]):
            _ns(sandbox, *argv)
        # dockerd passes the sandbox's options: the port bindings and exposed ports again.
        self.ok("/NetworkDriver.ProgramExternalConnectivity", {
            "NetworkID": net["id"], "EndpointID": endpoint_id, "Options": ports})
        return {"id": endpoint_id, "sandbox": sandbox, "address": addr["Address"], "mac": mac, "ifname": name,
                "info": info["Value"], "net": net}

    def rm(self, ctr: dict) -> None:
        """``docker rm -f``: revoke, leave, the sandbox's interface goes, delete endpoint, release address."""
        net = ctr["net"]
        ids = {"NetworkID": net["id"], "EndpointID": ctr["id"]}
        self.ok("/NetworkDriver.RevokeExternalConnectivity", ids)
        self.ok("/NetworkDriver.Leave", ids)
        subprocess.run(["ip", "netns", "exec", ctr["sandbox"], "ip", "link", "del", ctr["ifname"]],
                       capture_output=True)
        self.ok("/NetworkDriver.DeleteEndpoint", ids)
        self.release(net, ctr["address"])
