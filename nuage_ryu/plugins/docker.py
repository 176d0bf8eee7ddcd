"""nuage-docker-plugin: libnetwork remote NetworkDriver + IpamDriver named ``nuage``.

Serves the Docker plugin protocol (HTTP POST + JSON) on a unix socket, by
default ``/run/docker/plugins/nuage.sock`` (dockerd discovers sockets there; a
``.spec`` file is written too for setups that look in /etc/docker/plugins).
Stateless: every call is translated into calls to the host's nuage agent
(docs/agent-api.md), which keeps all state in OVSDB and the directory, so the
plugin can be restarted at any time.

How the IPAM address and the endpoint meet (docs/docker.md):

* RequestPool resolves the directory subnet (``--ipam-opt`` names, or the
  ``--subnet`` CIDR when it is unique) and returns PoolID ``nuage:<subnet id>``.
* RequestAddress creates an unbound vport in that subnet (a *reservation*):
  the directory's IPAM picks the address, the vport holds it.
* CreateEndpoint finds the reservation by (subnet, address) and asks the agent
  to bind it: veth pair, OVS port, vport bound to the endpoint, wait for ``up``.
* DeleteEndpoint unbinds (veth and port go, the vport stays reserved);
  ReleaseAddress deletes the reservation.
* ProgramExternalConnectivity (``docker run -p``) publishes the endpoint's
  ``com.docker.network.portmap`` on the host's address (the vport's
  ``port_mappings``, docs/external.md); RevokeExternalConnectivity withdraws them.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import signal
import sys
import threading
import uuid

from nuage_ryu import __version__, json_input
from nuage_ryu.plugins.agent_client import DEFAULT_AGENT_SOCKET, AgentClient, AgentError
from nuage_ryu.unix_server import JSONRequestHandler, UnixHTTPServer

LOG = logging.getLogger("nuage-docker-plugin")

DEFAULT_SOCKET = "/run/docker/plugins/nuage.sock"
DEFAULT_SPEC = "/etc/docker/plugins/nuage.spec"
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
POOL_PREFIX = "nuage:"
GATEWAY_TYPE = "com.docker.network.gateway"
NETWORK_OPTIONS = ("enterprise", "domain", "zone", "subnet")
ENDPOINT_IFNAME = "eth"          # the attachment's interface key; dockerd picks the final name
DST_PREFIX = "eth"
MAX_BODY = 1 << 20
PORTMAP = "com.docker.network.portmap"  # [{Proto, IP, Port, HostIP, HostPort, HostPortEnd}]
PROTOCOLS = {6: "tcp", 17: "udp"}  # libnetwork types.Protocol numbers
ALL_ADDRESSES = ("", "0.0.0.0", "::")  # HostIP of a plain -p HOST:CONTAINER


class PluginError(Exception):
    """An operation dockerd asked for could not be done; the message goes into Err/Error."""


def port_mappings(portmap) -> list[dict]:
    """dockerd's ``com.docker.network.portmap`` -> the vport's ``port_mappings``.

    One mapping per protocol + host port: dockerd lists a binding once per host address family
    (``0.0.0.0`` and ``::``), which are the same published port here. Refused (PluginError): a
    host address other than "all" (the host's address is the one place a port is published), a
    host port range, and host port 0 (``-p 80``: a remote driver cannot tell dockerd which port it
    picked).
    """
    if not isinstance(portmap, list):
        raise PluginError(f"{PORTMAP} must be a list")
    out: dict[tuple[str, int], dict] = {}
    for binding in portmap:
        if not isinstance(binding, dict):
            raise PluginError(f"{PORTMAP} entries must be objects")
        protocol = PROTOCOLS.get(binding.get("Proto"))
        if protocol is None:
            raise PluginError(f"port binding {binding}: only tcp and udp can be published")
        host_port, port = binding.get("HostPort") or 0, binding.get("Port") or 0
        if not host_port:
            raise PluginError(f"port binding {binding}: give the host port (-p HOST:{port}); "
                              "the nuage driver cannot report a port it picked")
        if binding.get("HostPortEnd") not in (None, 0, host_port):
            raise PluginError(f"port binding {binding}: host port ranges are not supported")
        if (binding.get("HostIP") or "") not in ALL_ADDRESSES:
            raise PluginError(f"port binding {binding}: ports are published on the host's underlay address; "
                              "leave out the host IP")
        out[(protocol, host_port)] = {"protocol": protocol, "host_port": host_port, "container_port": port}
    return [out[key] for key in sorted(out)]


def _str(body: dict, key: str, required: bool = True) -> str:
    value = body.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value):
        raise PluginError(f"{key} must be a non-empty string")
    return value


# dockerd's network and endpoint ids are 64 hex digits; anything id-like is accepted, but never
# a '/', '..' or a space: these ids go into agent URLs and OVSDB external_ids.
_DOCKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _id(body: dict, key: str) -> str:
    """A Docker object id of the call (NetworkID, EndpointID), checked before any use."""
    value = _str(body, key)
    if not _DOCKER_ID.match(value) or ".." in value:
        raise PluginError(f"{key} {value!r} is not a valid id (letters, digits, '_', '.', '-')")
    return value


def _map(body: dict, key: str) -> dict:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise PluginError(f"{key} must be an object")
    return value


def _subnet_id(pool_id: str) -> str:
    if not isinstance(pool_id, str) or not pool_id.startswith(POOL_PREFIX) \
            or not _UUID.match(pool_id[len(POOL_PREFIX):]):
        raise PluginError(f"pool {pool_id!r} does not belong to the nuage IPAM driver")
    return pool_id[len(POOL_PREFIX):]


def _agent(call):
    """Run an agent call; its errors become PluginErrors with the agent's message."""
    try:
        return call()
    except AgentError as exc:
        raise PluginError(exc.message) from None


class NuageDriver:
    """The protocol logic: one method per plugin call, each taking and returning the JSON body."""

    def __init__(self, agent: AgentClient) -> None:
        self.agent = agent

    # Plugin + capabilities ------------------------------------------------------------

    def activate(self, body) -> dict:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    def net_capabilities(self, body) -> dict:
        return {"Scope": "local", "ConnectivityScope": "global"}

    def ipam_capabilities(self, body) -> dict:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    def address_spaces(self, body) -> dict:
        return {"LocalDefaultAddressSpace": "nuage-local", "GlobalDefaultAddressSpace": "nuage-global"}

    # Directory lookups ----------------------------------------------------------------

    def _names_subnet(self, options: dict) -> dict | None:
        names = {k: options.get(k, "") for k in NETWORK_OPTIONS}
        if not any(names.values()):
            return None
        for key, value in names.items():
            if not isinstance(value, str):
                raise PluginError(f"option {key} must be a string")
        if not names["subnet"]:
            raise PluginError("option subnet is required with enterprise/domain/zone")
        return _agent(lambda: self.agent.call("POST", "/v1/resolve", names))["subnet"]

    def _cidr_subnet(self, cidr: str) -> dict:
        found = _agent(lambda: self.agent.call("POST", "/v1/subnets/by-cidr", {"cidr": cidr}))["subnets"]
        if not found:
            raise PluginError(f"no directory subnet has CIDR {cidr}")
        if len(found) > 1:
            raise PluginError(f"CIDR {cidr} exists in {len(found)} directory domains; name the subnet with "
                              "-o/--ipam-opt enterprise=E domain=D zone=Z subnet=S")
        return found[0]

    def _subnet(self, subnet_id: str) -> dict:
        return _agent(lambda: self.agent.call("GET", f"/v1/subnets/{subnet_id}"))

    @staticmethod
    def _same_net(a: str, b: str) -> bool:
        try:
            return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
        except ValueError:
            return False

    # IPAM -------------------------------------------------------------------------------

    def request_pool(self, body) -> dict:
        if body.get("V6"):
            raise PluginError("the nuage IPAM driver does not manage IPv6 pools")
        if _str(body, "SubPool", required=False):
            raise PluginError("--ip-range is not supported: the directory allocates from the whole subnet")
        options = _map(body, "Options")
        unknown = sorted(set(options) - set(NETWORK_OPTIONS))
        if unknown:
            raise PluginError(f"unknown IPAM option(s): {', '.join(unknown)}")
        pool = _str(body, "Pool", required=False)
        subnet = self._names_subnet(options)
        if subnet is None:
            if not pool:
                raise PluginError("the nuage IPAM driver needs the directory subnet: give "
                                  "--subnet <its CIDR> or --ipam-opt enterprise=E --ipam-opt domain=D "
                                  "--ipam-opt zone=Z "
                                  "--ipam-opt subnet=S")
            subnet = self._cidr_subnet(pool)
        elif pool and not self._same_net(pool, subnet["cidr"]):
            raise PluginError(f"--subnet {pool} differs from the directory subnet's CIDR {subnet['cidr']}")
        prefix = ipaddress.ip_network(subnet["cidr"], strict=False).prefixlen
        return {"PoolID": POOL_PREFIX + subnet["id"], "Pool": subnet["cidr"],
                "Data": {GATEWAY_TYPE: f"{subnet['gateway']}/{prefix}"}}

    def release_pool(self, body) -> dict:
        _subnet_id(body.get("PoolID"))
        return {}

    def request_address(self, body) -> dict:
        subnet_id = _subnet_id(body.get("PoolID"))
        options = _map(body, "Options")
        wanted = _str(body, "Address", required=False).split("/")[0]
        subnet = self._subnet(subnet_id)
        prefix = ipaddress.ip_network(subnet["cidr"], strict=False).prefixlen
        if options.get("RequestAddressType") == GATEWAY_TYPE:
            if wanted and wanted != subnet["gateway"]:
                raise PluginError(f"gateway {wanted} differs from the directory subnet's gateway "
                                  f"{subnet['gateway']}")
            return {"Address": f"{subnet['gateway']}/{prefix}", "Data": {}}
        if wanted:
            try:
                ipaddress.ip_address(wanted)
            except ValueError:
                raise PluginError(f"invalid address {wanted!r}") from None
        body = {"subnet_id": subnet_id, "name": f"docker-{uuid.uuid4().hex[:12]}"}
        if wanted:
            body["ip"] = wanted
        vport = _agent(lambda: self.agent.call("POST", "/v1/reservations", body))
        return {"Address": f"{vport['ip']}/{prefix}", "Data": {}}

    def release_address(self, body) -> dict:
        subnet_id = _subnet_id(body.get("PoolID"))
        address = _str(body, "Address").split("/")[0]
        subnet = self._subnet(subnet_id)
        if address == subnet.get("gateway"):
            return {}
        _agent(lambda: self.agent.call("POST", "/v1/reservations/release",
                                       {"subnet_id": subnet_id, "ip": address}))
        return {}

    # Networks -------------------------------------------------------------------------

    def create_network(self, body) -> dict:
        network_id = _id(body, "NetworkID")
        options = _map(body, "Options")
        generic = options.get("com.docker.network.generic") or {}
        if not isinstance(generic, dict):
            raise PluginError("com.docker.network.generic must be an object")
        unknown = sorted(set(generic) - set(NETWORK_OPTIONS))
        if unknown:
            raise PluginError(f"unknown network option(s): {', '.join(unknown)} "
                              f"(known: {', '.join(NETWORK_OPTIONS)})")
        if body.get("IPv6Data"):
            raise PluginError("IPv6 is not supported by the nuage driver")
        v4 = body.get("IPv4Data") or []
        if not isinstance(v4, list) or len(v4) != 1 or not isinstance(v4[0], dict):
            raise PluginError("a nuage network has exactly one IPv4 pool (use --ipam-driver nuage)")
        pool = _str(v4[0], "Pool")
        subnet = self._names_subnet(generic) or self._cidr_subnet(pool)
        if not self._same_net(pool, subnet["cidr"]):
            raise PluginError(f"the network's pool {pool} is not the directory subnet's CIDR "
                              f"{subnet['cidr']} "
                              "(create the network with --ipam-driver nuage)")
        gateway = _str(v4[0], "Gateway", required=False).split("/")[0]
        if gateway and gateway != subnet["gateway"]:
            raise PluginError(f"gateway {gateway} differs from the directory subnet's gateway "
                              f"{subnet['gateway']}")
        _agent(lambda: self.agent.call("PUT", f"/v1/networks/{network_id}", {"subnet_id": subnet["id"]}))
        return {}

    def delete_network(self, body) -> dict:
        network_id = _id(body, "NetworkID")
        _agent(lambda: self.agent.call("DELETE", f"/v1/networks/{network_id}"))
        return {}

    def allocate_network(self, body) -> dict:
        _id(body, "NetworkID")
        return {"Options": {}}

    def free_network(self, body) -> dict:
        _id(body, "NetworkID")
        return {}

    # Endpoints ------------------------------------------------------------------------

    def _network_subnet(self, network_id: str) -> str:
        return _agent(lambda: self.agent.call("GET", f"/v1/networks/{network_id}"))["subnet_id"]

    def _attachment(self, endpoint_id: str) -> dict | None:
        for att in _agent(self.agent.attachments):
            if att["container_id"] == endpoint_id and att["owner"] == "docker":
                return att
        return None

    def create_endpoint(self, body) -> dict:
        network_id = _id(body, "NetworkID")
        endpoint_id = _id(body, "EndpointID")
        iface = _map(body, "Interface")
        options = _map(body, "Options")
        subnet_id = self._network_subnet(network_id)
        address = _str(iface, "Address", required=False).split("/")[0]
        if not address:
            raise PluginError("the endpoint has no IPv4 address; create the network with --ipam-driver nuage")
        if _str(iface, "AddressIPv6", required=False):
            raise PluginError("IPv6 is not supported by the nuage driver")
        # Endpoint driver options arrive flat in Options; accept them nested under the generic key too.
        nested = options.get("com.docker.network.generic")
        groups = options.get("policygroup", nested.get("policygroup", "") if isinstance(nested, dict) else "")
        if not isinstance(groups, str):
            raise PluginError("endpoint option policygroup must be a comma-separated string")
        reservation = _agent(lambda: self.agent.call("POST", "/v1/reservations/find",
                                                     {"subnet_id": subnet_id, "ip": address}))["vport"]
        if reservation is None:
            raise PluginError(f"address {address} was not allocated by the nuage IPAM driver "
                              "(create the network with --ipam-driver nuage)")
        mac = _str(iface, "MacAddress", required=False)
        if mac and mac.lower() != reservation["mac"].lower():
            raise PluginError(f"MAC address {mac} differs from the directory's {reservation['mac']} "
                              "(do not set --mac-address on nuage networks)")
        _agent(lambda: self.agent.attach(
            container_id=endpoint_id, ifname=ENDPOINT_IFNAME, netns="", owner="docker",
            vport_id=reservation["id"], policygroups=[g.strip() for g in groups.split(",") if g.strip()]))
        return {"Interface": {} if mac else {"MacAddress": reservation["mac"]}}

    def endpoint_info(self, body) -> dict:
        _id(body, "NetworkID")
        att = self._attachment(_id(body, "EndpointID"))
        if att is None:
            raise PluginError(f"endpoint {body['EndpointID']} does not exist on this host")
        return {"Value": {"nuage.vport": att["vport_id"], "nuage.port": att["host_ifname"],
                          "nuage.address": att["address"]}}

    def delete_endpoint(self, body) -> dict:
        _id(body, "NetworkID")
        endpoint_id = _id(body, "EndpointID")
        _agent(lambda: self.agent.detach(endpoint_id, ENDPOINT_IFNAME))
        return {}

    def join(self, body) -> dict:
        _id(body, "NetworkID")
        endpoint_id = _id(body, "EndpointID")
        _str(body, "SandboxKey")
        att = self._attachment(endpoint_id)
        if att is None or not att.get("peer_ifname"):
            raise PluginError(f"endpoint {endpoint_id} does not exist on this host (CreateEndpoint failed?)")
        return {"InterfaceName": {"SrcName": att["peer_ifname"], "DstPrefix": DST_PREFIX},
                "Gateway": att["gateway"], "StaticRoutes": [], "DisableGatewayService": True}

    def leave(self, body) -> dict:
        _id(body, "NetworkID")
        _id(body, "EndpointID")
        return {}

    def program_external(self, body) -> dict:
        """``docker run -p``: publish the endpoint's port bindings on the host's address."""
        _id(body, "NetworkID")
        endpoint_id = _id(body, "EndpointID")
        mappings = port_mappings(_map(body, "Options").get(PORTMAP) or [])
        if mappings:  # an endpoint without -p publishes nothing (EXPOSE alone does not, as with bridge)
            _agent(lambda: self.agent.set_port_mappings(endpoint_id, ENDPOINT_IFNAME, mappings))
        return {}

    def revoke_external(self, body) -> dict:
        """Container stop: withdraw what ProgramExternalConnectivity published. Idempotent."""
        _id(body, "NetworkID")
        endpoint_id = _id(body, "EndpointID")
        if self._attachment(endpoint_id) is not None:
            _agent(lambda: self.agent.set_port_mappings(endpoint_id, ENDPOINT_IFNAME, []))
        return {}

    def no_op(self, body) -> dict:
        return {}

    def routes(self) -> dict:
        return {
            "/Plugin.Activate": self.activate,
            "/NetworkDriver.GetCapabilities": self.net_capabilities,
            "/NetworkDriver.CreateNetwork": self.create_network,
            "/NetworkDriver.DeleteNetwork": self.delete_network,
            "/NetworkDriver.AllocateNetwork": self.allocate_network,
            "/NetworkDriver.FreeNetwork": self.free_network,
            "/NetworkDriver.CreateEndpoint": self.create_endpoint,
            "/NetworkDriver.EndpointOperInfo": self.endpoint_info,
            "/NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "/NetworkDriver.Join": self.join,
            "/NetworkDriver.Leave": self.leave,
            "/NetworkDriver.DiscoverNew": self.no_op,
            "/NetworkDriver.DiscoverDelete": self.no_op,
            "/NetworkDriver.ProgramExternalConnectivity": self.program_external,
            "/NetworkDriver.RevokeExternalConnectivity": self.revoke_external,
            "/IpamDriver.GetCapabilities": self.ipam_capabilities,
            "/IpamDriver.GetDefaultAddressSpaces": self.address_spaces,
            "/IpamDriver.RequestPool": self.request_pool,
            "/IpamDriver.ReleasePool": self.release_pool,
            "/IpamDriver.RequestAddress": self.request_address,
            "/IpamDriver.ReleaseAddress": self.release_address,
        }


class _Handler(JSONRequestHandler):
    server_version = "nuage-docker-plugin/1"
    content_type = CONTENT_TYPE

    def log_message(self, fmt, *args):
        LOG.debug(fmt, *args)

    def do_POST(self):  # noqa: N802 - http.server naming
        handler = self.server.routes.get(self.path)
        if handler is None:
            self._drain()  # closing with the body unread would reset the connection before our answer
            message = f"unknown plugin call {self.path}"
            self.reply_json(404, {"Err": message, "Error": message})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError(f"request body larger than {MAX_BODY} bytes")
            raw = self.rfile.read(length) if length > 0 else b""
            body = json_input.loads(raw) if raw.strip() else {}
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            # A syntactic problem: an HTTP error status, as the remote driver protocol asks.
            self.reply_json(400, {"Err": f"{self.path}: malformed request: {exc}", "Error": str(exc)})
            return
        try:
            result = handler(body)
            LOG.info("%s ok", self.path)
        except PluginError as exc:
            LOG.warning("%s failed: %s", self.path, exc)
            result = {"Err": str(exc), "Error": str(exc)}
        except Exception as exc:  # never crash on a request
            LOG.exception("%s failed", self.path)
            message = f"internal error: {type(exc).__name__}: {exc}"
            result = {"Err": message, "Error": message}
        self.reply_json(200, result)

    def _drain(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)

    def do_GET(self):  # noqa: N802
        self.reply_json(405, {"Err": "plugin calls are POST"})


class DockerPlugin:
    """The plugin socket (+ spec file); ``start()`` serves in a thread, ``stop()`` removes both."""

    def __init__(self, agent_socket: str = DEFAULT_AGENT_SOCKET, socket_path: str = DEFAULT_SOCKET,
                 spec_file: str = "") -> None:
        self.driver = NuageDriver(AgentClient(agent_socket))
        self.socket_path = socket_path
        self.spec_file = spec_file
        self._server: UnixHTTPServer | None = None

    def start(self) -> DockerPlugin:
        self._server = UnixHTTPServer.start(self.socket_path, _Handler, self.driver.routes(),
                                            name="nuage-docker-plugin")
        if self.spec_file:
            os.makedirs(os.path.dirname(self.spec_file) or ".", exist_ok=True)
            with open(self.spec_file + ".tmp", "w") as spec:
                spec.write(f"unix://{os.path.abspath(self.socket_path)}\n")
            os.replace(self.spec_file + ".tmp", self.spec_file)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(self.spec_file)
            self._server = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nuage-docker-plugin",
                                     description="Docker network + IPAM driver 'nuage' "
                                                 "(libnetwork remote API)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help=f"plugin socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--agent-socket", default=DEFAULT_AGENT_SOCKET,
                        help=f"the nuage agent's socket (default {DEFAULT_AGENT_SOCKET})")
    parser.add_argument("--spec-file", default="",
                        help=f"also write a discovery spec file, e.g. {DEFAULT_SPEC} "
                             "(not needed when the socket is in /run/docker/plugins)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plugin = DockerPlugin(args.agent_socket, args.socket, args.spec_file).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    LOG.info("listening on %s (agent %s)", args.socket, args.agent_socket)
    stop.wait()
    plugin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
