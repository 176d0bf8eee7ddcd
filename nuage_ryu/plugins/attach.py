"""The per-host attach service: wires a container interface onto the overlay.

The VRS agent hosts one ``AttachService`` behind its local unix socket (see
``nuage_ryu/plugins/agent_server.py``); the CNI and Docker plugins are thin clients of it.
An attach is a sequence of steps, each with its undo:

1. the vport in the directory (created, or a Docker IPAM reservation bound),
2. the veth pair in the switch's namespace (``nr…`` host end, ``nc…`` peer),
3. CNI: the peer moved into the container namespace, renamed, MAC/IP/MTU/default route set, up,
4. the OVS port on the integration bridge with the external_ids contract,
5. its ofport, then the vport's ``up`` (flows installed by the agent).

If any step fails, the steps done so far are undone in reverse, so a failed
attach leaves no veth, OVSDB row or vport behind. There is no state in process
memory: an attachment *is* its OVS port (external_ids below) plus its vport,
so the service can be restarted at any time and finds everything again.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from nuage_ryu.plugins.directory_client import DirectoryClientError, DirectoryUnavailable
from nuage_ryu.plugins.links import LinkError, LinkOps, link_names, valid_ifname

VXLAN_OVERHEAD = 50

# OVS Interface external_ids (besides HostOVS's contract keys nuage-vport-id,
# nuage-container-id, nuage-ifname = host end, iface-id).
EXT_CONTAINER_IFNAME = "nuage-container-ifname"
EXT_NETNS = "nuage-netns"
EXT_OWNER = "nuage-owner"
EXT_ADDRESS = "nuage-address"
EXT_GATEWAY = "nuage-gateway"
EXT_MAC = "nuage-mac"
EXT_SUBNET = "nuage-subnet-id"
EXT_PEER = "nuage-peer"
EXT_NETWORK = "nuage-network"
# Directory vport external_ids.
VP_CONTAINER = "nuage-container-id"
VP_IFNAME = "nuage-ifname"
VP_HOST = "nuage-host"
VP_OWNER = "nuage-owner"
VP_RESERVED = "nuage-reserved"
VP_NETWORK = "nuage-network"
# Bridge external_ids prefix for Docker network -> directory subnet bindings.
DOCKER_NET_PREFIX = "nuage-docker-net-"

OWNERS = ("cni", "docker")
RESOLVE_TTL = 5.0  # seconds a network's (enterprise, domain, zone, subnet) -> subnet lookup is reused
EXT_VPORT_ID = "nuage-vport-id"
EXT_CONTAINER = "nuage-container-id"


@dataclass(frozen=True)
class OvsPort:
    """A vport port found by name (same fields as HostOVS's VPortPort)."""

    ifname: str
    ofport: int | None
    vport_id: str
    container_id: str
    external_ids: dict
CONTAINER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class AttachError(Exception):
    """An attach/detach/check request failed. ``kind`` says how the caller should react.

    invalid: bad request, fix the input · not_found: a named directory object is missing ·
    conflict: the name/interface is taken · unavailable / timeout: retry later ·
    check_failed: CHECK found a difference · failed: anything else.
    """

    STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "check_failed": 412,
              "failed": 500, "unavailable": 503, "timeout": 504}

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind if kind in self.STATUS else "failed"
        self.message = message

    @property
    def status(self) -> int:
        return self.STATUS[self.kind]

    def as_dict(self) -> dict:
        return {"error": {"code": self.kind, "message": self.message}}


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

    @classmethod
    def from_dict(cls, data: dict) -> AttachRequest:
        if not isinstance(data, dict):
            raise AttachError("invalid", "request body must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise AttachError("invalid", f"unknown field(s): {', '.join(unknown)}")
        for key, value in data.items():
            if key == "policygroups":
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise AttachError("invalid", "policygroups must be a list of non-empty strings")
            elif key == "wait_up":
                if not isinstance(value, bool):
                    raise AttachError("invalid", "wait_up must be true or false")
            elif not isinstance(value, str):
                raise AttachError("invalid", f"{key} must be a string")
        return cls(**data)


class _SharedExclusiveLock:
    """A readers-writer lock: many holders of ``shared()`` or one of ``exclusive()``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # new shared holders wait from now on
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _check_ids(container_id: str, ifname: str) -> None:
    if not CONTAINER_ID_RE.match(container_id or ""):
        raise AttachError("invalid", f"invalid container id {container_id!r} "
                                     "(1-128 characters: letters, digits, '_', '.', '-')")
    if not valid_ifname(ifname):
        raise AttachError("invalid", f"invalid interface name {ifname!r} (1-15 characters, no '/' or spaces)")


def _directory_error(exc: DirectoryClientError) -> AttachError:
    if isinstance(exc, DirectoryUnavailable):
        return AttachError("unavailable", exc.message)
    if exc.status == 404:
        return AttachError("not_found", exc.message)
    if exc.status == 409:
        return AttachError("conflict", f"directory: {exc.message}")
    if exc.status in (400, 422):
        return AttachError("invalid", f"directory: {exc.message}")
    return AttachError("failed", f"directory: {exc.message}")


class AttachService:
    """Attach/detach container interfaces on one host. Thread-safe.

    directory: a ``DirectoryClient`` (or anything with its methods).
    ovs: a ``HostOVS`` (add_vport_port, delete_vport_port, list_vport_ports, wait_for_ofport,
    bridge_config, api).
    links: a ``LinkOps`` working in the namespace of the switch's ports.
    wait_vport_up(vport_id, timeout) -> bool: the agent's "flows installed" signal;
    default: poll the vport's status in the directory.
    """

    def __init__(self, directory, ovs, links: LinkOps | None = None, *, bridge: str = "br-int",
                 host_name: str, underlay_mtu: int = 1500,
                 wait_vport_up: Callable[[str, float], bool] | None = None,
                 up_timeout: float = 10.0, dns: dict | None = None) -> None:
        if not host_name:
            raise ValueError("host_name is required")
        self.directory = directory
        self.ovs = ovs
        self.links = links or LinkOps()
        self.bridge = bridge
        self.host_name = host_name
        self.mtu = underlay_mtu - VXLAN_OVERHEAD
        self.wait_vport_up = wait_vport_up or self._poll_directory_up
        self.up_timeout = up_timeout
        self.dns = dns or {}
        # Attaches and detaches of different interfaces run in parallel (shared side);
        # GC, which looks at everything, runs alone (exclusive side).
        self._lock = _SharedExclusiveLock()
        self._busy: dict[tuple[str, str], tuple[threading.Lock, int]] = {}
        self._busy_guard = threading.Lock()
        self._resolved: dict[tuple, tuple[float, dict]] = {}

    # Helpers -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _key(self, container_id: str, ifname: str) -> Iterator[None]:
        """Serialise operations on one (container, interface); others proceed in parallel."""
        key = (container_id, ifname)
        with self._busy_guard:
            lock, users = self._busy.get(key, (threading.Lock(), 0))
            self._busy[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._busy_guard:
                lock, users = self._busy[key]
                if users <= 1:
                    del self._busy[key]
                else:
                    self._busy[key] = (lock, users - 1)

    def _poll_directory_up(self, vport_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            vport = self.directory.get_vport(vport_id)
            if vport is not None and vport.get("status") == "up":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _ports(self) -> list:
        try:
            return self.ovs.list_vport_ports(self.bridge)
        except Exception as exc:  # HostOVSError
            raise AttachError("unavailable", f"local OVSDB: {exc}") from None

    def _find(self, container_id: str, ifname: str | None = None) -> list:
        """The OVS ports of a container (of one interface: a lookup by its derived port name)."""
        if ifname is None:
            return [p for p in self._ports() if p.container_id == container_id]
        host_if = link_names(container_id, ifname)[0]
        try:
            row = self.ovs.interface_config(host_if)
        except Exception as exc:  # HostOVSError
            raise AttachError("unavailable", f"local OVSDB: {exc}") from None
        if row is None:
            return []
        ids = row["external_ids"]
        if ids.get(EXT_VPORT_ID) is None or ids.get(EXT_CONTAINER) != container_id \
                or ids.get(EXT_CONTAINER_IFNAME) != ifname:
            return []
        return [OvsPort(ifname=host_if, ofport=row["ofport"], vport_id=ids[EXT_VPORT_ID],
                        container_id=container_id, external_ids=ids)]

    def _resolve(self, req: AttachRequest) -> dict:
        """The subnet of a request; cached briefly, since a burst of ADDs names the same network."""
        key = (req.enterprise, req.domain, req.zone, req.subnet)
        now = time.monotonic()
        with self._busy_guard:
            hit = self._resolved.get(key)
        if hit is not None and now - hit[0] < RESOLVE_TTL:
            return hit[1]
        net = self.directory.resolve_subnet(*key)
        with self._busy_guard:
            if len(self._resolved) > 256:
                self._resolved.clear()
            self._resolved[key] = (now, net)
        return net

    def _forget(self, req: AttachRequest) -> None:
        with self._busy_guard:
            self._resolved.pop((req.enterprise, req.domain, req.zone, req.subnet), None)

    @staticmethod
    def _describe(port, vport: dict | None = None) -> dict:
        ids = port.external_ids
        address = ids.get(EXT_ADDRESS, "")
        result = {
            "container_id": port.container_id,
            "ifname": ids.get(EXT_CONTAINER_IFNAME, ""),
            "netns": ids.get(EXT_NETNS, ""),
            "owner": ids.get(EXT_OWNER, ""),
            "host_ifname": port.ifname,
            "peer_ifname": ids.get(EXT_PEER, ""),
            "ofport": port.ofport,
            "vport_id": port.vport_id,
            "subnet_id": ids.get(EXT_SUBNET, ""),
            "address": address,
            "ip": address.split("/")[0],
            "gateway": ids.get(EXT_GATEWAY, ""),
            "mac": ids.get(EXT_MAC, ""),
        }
        if vport is not None:
            result["status"] = vport.get("status", "down")
            result["policygroups"] = list(vport.get("policygroups", []))
        return result

    def _run_undo(self, undo: list[tuple[str, Callable[[], object]]]) -> list[str]:
        """Run undo steps in reverse; return the ones that failed (they are reported, not raised)."""
        failed = []
        for name, step in reversed(undo):
            try:
                step()
            except Exception as exc:  # keep undoing the rest
                failed.append(f"{name}: {exc}")
        return failed

    # Attach ------------------------------------------------------------------------

    def attach(self, req: AttachRequest) -> dict:
        """Attach one interface; returns the attachment (see ``_describe``) plus ``mtu``/``dns``.

        Idempotent: the same (container id, ifname) returns the existing attachment.
        """
        _check_ids(req.container_id, req.ifname)
        if req.owner not in OWNERS:
            raise AttachError("invalid", f"owner must be one of {', '.join(OWNERS)}")
        if req.netns and not req.netns.startswith("/"):
            raise AttachError("invalid", f"netns must be an absolute path, not {req.netns!r}")
        if not req.vport_id and not req.subnet:
            raise AttachError("invalid", "the network must name a subnet (and its enterprise, domain, zone)")
        if not req.vport_id and not (req.enterprise and req.domain and req.zone) \
                and not re.match(r"^[0-9a-f-]{36}$", req.subnet):
            raise AttachError("invalid", "enterprise, domain and zone are required unless subnet is an id")
        self._settle_checksum_offload()
        with self._key(req.container_id, req.ifname):
            found = None
            with self._lock.shared():
                existing = self._find(req.container_id, req.ifname)
                if existing:
                    found = self._existing(existing[0], req)
                    if found is None:
                        self._teardown(existing[0])
            if found is not None:
                # A repeated ADD answers like the first one: once the vport is up (e.g. again,
                # after an agent restart), but it never tears a working attachment down.
                if req.wait_up and found.get("status") != "up":
                    if not self.wait_vport_up(found["vport_id"], self.up_timeout):
                        raise AttachError("timeout", f"vport {found['vport_id']} is not up after "
                                                     f"{self.up_timeout:g}s (is the VRS agent connected?)")
                    found["status"] = "up"
                return found
            with self._lock.shared():
                host_if, peer = link_names(req.container_id, req.ifname)
                if req.netns:
                    if not self._netns_exists(req.netns):
                        raise AttachError("invalid", f"network namespace {req.netns} does not exist")
                    if self.links.has_interface(req.netns, req.ifname):
                        raise AttachError("conflict", f"interface {req.ifname} already exists in {req.netns}")
                undo: list[tuple[str, Callable[[], object]]] = []
                try:
                    result = self._attach_steps(req, host_if, peer, undo)
                except BaseException as exc:
                    leftovers = self._run_undo(undo)
                    raise self._attach_error(exc, leftovers) from None
            # Waiting for the flows does not hold the global lock: other attaches proceed.
            try:
                if req.wait_up and not self.wait_vport_up(result["vport_id"], self.up_timeout):
                    raise AttachError("timeout", f"vport {result['vport_id']} did not become up within "
                                                 f"{self.up_timeout:g}s (is the VRS agent connected to "
                                                 f"{self.bridge}?)")
            except BaseException as exc:
                with self._lock.shared():
                    leftovers = self._run_undo(undo)
                raise self._attach_error(exc, leftovers) from None
            result["status"] = "up" if req.wait_up else "down"
            return result

    def _settle_checksum_offload(self) -> None:
        """Links left on "auto": TX checksum offload goes off when br-int is a netdev bridge.

        The userspace datapath never completes checksums a kernel left to the
        "hardware" of a veth (TCP would silently fail), the kernel one does.
        """
        if getattr(self.links, "tx_checksum_offload", True) is not None:
            return
        try:
            datapath_type = self.ovs.bridge_config(self.bridge).get("datapath_type")
        except Exception:  # bridge not there yet: decide on a later attach
            return
        self.links.tx_checksum_offload = datapath_type != "netdev"

    @staticmethod
    def _netns_exists(path: str) -> bool:
        return os.path.exists(path)

    @staticmethod
    def _attach_error(exc: BaseException, leftovers: list[str]) -> AttachError:
        if isinstance(exc, AttachError):
            err = exc
        elif isinstance(exc, DirectoryClientError):
            err = _directory_error(exc)
        elif isinstance(exc, LinkError):
            err = AttachError("failed", str(exc))
        else:
            err = AttachError("failed", f"{type(exc).__name__}: {exc}")
        if leftovers:
            err = AttachError(err.kind, err.message + "; rollback incomplete: " + "; ".join(leftovers))
        return err

    def _attach_steps(self, req: AttachRequest, host_if: str, peer: str, undo: list) -> dict:
        directory = self.directory
        # 1. vport
        if req.vport_id:
            vport = directory.get_vport(req.vport_id)
            if vport is None:
                raise AttachError("not_found", f"vport {req.vport_id} not found")
            ext = dict(vport.get("external_ids") or {})
            if ext.get(VP_CONTAINER) not in (None, "", req.container_id):
                raise AttachError("conflict", f"vport {req.vport_id} is bound to {ext[VP_CONTAINER]}")
            subnet = directory.get("subnets", vport["subnet"]) or {}
            pg_ids = directory.resolve_policygroups(vport["domain"], req.policygroups) \
                if req.policygroups else list(vport.get("policygroups", []))
            bound = dict(ext, **{VP_CONTAINER: req.container_id, VP_IFNAME: req.ifname,
                                 VP_HOST: self.host_name, VP_OWNER: req.owner, VP_NETWORK: req.network})
            directory.update_vport(req.vport_id, {"external_ids": bound, "policygroups": pg_ids,
                                                  "host": self.host_name})
            old = {"external_ids": ext, "policygroups": list(vport.get("policygroups", [])),
                   "host": vport.get("host", "")}
            undo.append(("restore vport", lambda: directory.update_vport(req.vport_id, old)))
        else:
            fields = {"name": f"{req.container_id[:40]}-{req.ifname}", "type": "container",
                      "host": self.host_name,
                      "external_ids": {VP_CONTAINER: req.container_id, VP_IFNAME: req.ifname,
                                       VP_HOST: self.host_name, VP_OWNER: req.owner,
                                       VP_NETWORK: req.network}}
            for attempt in (1, 2):
                subnet = self._resolve(req)["subnet"]
                try:
                    fields["policygroups"] = pg_ids = directory.resolve_policygroups(subnet["domain"],
                                                                                     req.policygroups)
                    vport = directory.create_vport(subnet["id"], fields)
                    break
                except DirectoryClientError as exc:
                    # A cached subnet deleted or renamed meanwhile: look it up again, once.
                    self._forget(req)
                    if attempt == 2 or exc.status not in (404, 422):
                        raise
            vport_id = vport["id"]
            undo.append(("delete vport", lambda: directory.delete_vport(vport_id)))
        prefix = ipaddress.ip_network(subnet["cidr"], strict=False).prefixlen
        address = f"{vport['ip']}/{prefix}"
        gateway = vport.get("gateway") or subnet.get("gateway", "")
        # 2. veth, the peer created in the container namespace under its final name and MAC
        #    (undo registered first: deleting is idempotent, and a half-made pair must go too)
        undo.append(("delete veth", lambda: self.links.delete(host_if)))
        try:
            host_mac = self.links.create_veth(host_if, req.ifname if req.netns else peer, self.mtu,
                                              netns=req.netns or None, peer_mac=vport["mac"])
        except LinkError as exc:
            # EEXIST: a leftover host end of a crash between veth and OVS port; replace it once.
            if exc.errno != errno.EEXIST or not self.links.delete(host_if):
                raise
            host_mac = self.links.create_veth(host_if, req.ifname if req.netns else peer, self.mtu,
                                              netns=req.netns or None, peer_mac=vport["mac"])
        # 3. container side: address, default route, up
        if req.netns:
            self.links.configure(req.netns, req.ifname, address, gateway or None)
        # 4. OVS port
        extra = {EXT_CONTAINER_IFNAME: req.ifname, EXT_NETNS: req.netns, EXT_OWNER: req.owner,
                 EXT_NETWORK: req.network,
                 EXT_ADDRESS: address, EXT_GATEWAY: gateway, EXT_MAC: vport["mac"],
                 EXT_SUBNET: subnet["id"]}
        if not req.netns:
            extra[EXT_PEER] = peer
        undo.append(("delete OVS port", lambda: self.ovs.delete_vport_port(self.bridge, host_if)))
        try:
            self.ovs.add_vport_port(self.bridge, host_if, vport["id"], req.container_id, extra_ids=extra)
        except Exception as exc:
            raise AttachError("unavailable", f"local OVSDB: {exc}") from None
        # 5. ofport
        try:
            ofport = self.ovs.wait_for_ofport(host_if, self.up_timeout)
        except Exception as exc:
            raise AttachError("timeout", f"OVS port {host_if}: {exc}") from None
        return {
            "container_id": req.container_id, "ifname": req.ifname, "netns": req.netns, "owner": req.owner,
            "host_ifname": host_if, "host_mac": host_mac,
            "peer_ifname": "" if req.netns else peer, "ofport": ofport,
            "vport_id": vport["id"], "subnet_id": subnet["id"], "address": address,
            "ip": vport["ip"], "gateway": gateway, "mac": vport["mac"], "mtu": self.mtu,
            "policygroups": pg_ids, "dns": self.dns,
        }

    def _existing(self, port, req: AttachRequest) -> dict | None:
        """The attachment for a repeated ADD if it is complete; None if it must be rebuilt."""
        try:
            vport = self.directory.get_vport(port.vport_id)
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None
        if vport is None or not self.links.exists(port.ifname):
            return None
        if req.netns and (port.external_ids.get(EXT_NETNS) != req.netns
                          or not self.links.has_interface(req.netns, req.ifname)):
            return None  # the same container id in another namespace: a stale attachment
        result = self._describe(port, vport)
        result.update(host_mac=self.links.mac_of(port.ifname) or "", mtu=self.mtu, dns=self.dns)
        return result

    # Detach ------------------------------------------------------------------------

    def _teardown(self, port) -> None:
        """Remove one attachment: directory side first, so a directory outage leaves it retryable."""
        owner = port.external_ids.get(EXT_OWNER, "cni")
        try:
            if owner == "docker":
                vport = self.directory.get_vport(port.vport_id)
                if vport is not None:
                    ext = {k: v for k, v in (vport.get("external_ids") or {}).items()
                           if k not in (VP_CONTAINER, VP_IFNAME)}
                    self.directory.update_vport(port.vport_id, {"external_ids": ext})
            else:
                self.directory.delete_vport(port.vport_id)
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None
        try:
            self.ovs.delete_vport_port(self.bridge, port.ifname)
        except Exception as exc:
            raise AttachError("unavailable", f"local OVSDB: {exc}") from None
        self.links.delete(port.ifname)

    def detach(self, container_id: str, ifname: str = "") -> dict:
        """Remove the container's attachment(s) (all of them without ``ifname``). Idempotent."""
        if not CONTAINER_ID_RE.match(container_id or ""):
            raise AttachError("invalid", f"invalid container id {container_id!r}")
        if ifname and not valid_ifname(ifname):
            raise AttachError("invalid", f"invalid interface name {ifname!r}")
        with self._key(container_id, ifname or "*"), self._lock.shared():
            removed = []
            for port in self._find(container_id, ifname or None):
                self._teardown(port)
                removed.append(self._describe(port))
            if ifname:
                self.links.delete(link_names(container_id, ifname)[0])
            return {"detached": removed}

    # Check, list, GC, status ----------------------------------------------------------

    def check(self, container_id: str, ifname: str, netns: str = "") -> dict:
        """Verify that the attachment is complete and as recorded; AttachError(check_failed) if not."""
        _check_ids(container_id, ifname)
        ports = self._find(container_id, ifname)
        if not ports:
            raise AttachError("check_failed",
                              f"no attachment for container {container_id} interface {ifname}")
        port = ports[0]
        problems = []
        try:
            vport = self.directory.get_vport(port.vport_id)
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None
        if vport is None:
            problems.append(f"vport {port.vport_id} is missing from the directory")
        elif not self.wait_vport_up(port.vport_id, 0):
            problems.append(f"vport {port.vport_id} is {vport.get('status')}, not up")
        if port.ofport is None or port.ofport < 0:
            problems.append(f"OVS port {port.ifname} has no ofport")
        if not self.links.exists(port.ifname):
            problems.append(f"host interface {port.ifname} is missing")
        result = self._describe(port, vport)
        netns = netns or result["netns"]
        if netns and result["owner"] == "cni":
            try:
                iface = self.links.inspect(netns, ifname)
            except LinkError as exc:
                iface = None
                problems.append(str(exc))
            if iface is None:
                problems.append(f"interface {ifname} is missing in {netns}")
            else:
                if result["address"] not in iface.addresses:
                    problems.append(f"{ifname} lacks address {result['address']} "
                                    f"(has {list(iface.addresses)})")
                if iface.mac.lower() != result["mac"].lower():
                    problems.append(f"{ifname} has MAC {iface.mac}, expected {result['mac']}")
                if iface.mtu != self.mtu:
                    problems.append(f"{ifname} has MTU {iface.mtu}, expected {self.mtu}")
                if result["gateway"] and iface.default_gateway != result["gateway"]:
                    problems.append(f"{ifname} default route via {iface.default_gateway}, "
                                    f"expected {result['gateway']}")
                if not iface.up:
                    problems.append(f"{ifname} is down")
        if problems:
            raise AttachError("check_failed", "; ".join(problems))
        result["mtu"] = self.mtu
        return result

    def list_attachments(self) -> list[dict]:
        """Every attachment on this host (from OVSDB only; no directory call)."""
        return [self._describe(p) for p in self._ports()]

    def gc(self, valid: list[dict], owner: str = "cni", network: str | None = None) -> dict:
        """Remove ``owner``'s attachments not in ``valid`` ([{container_id, ifname}]) and leftovers.

        With ``network``, only attachments made for that (CNI) network are considered:
        a runtime sends GC per network, with that network's valid attachments only.
        Leftovers: host-end veths without an OVS port, and this host's vports of ``owner``
        (and ``network``) that no OVS port refers to (an agent crash in the middle of an attach).
        """
        if owner not in OWNERS:
            raise AttachError("invalid", f"owner must be one of {', '.join(OWNERS)}")
        keep = set()
        for item in valid:
            if not isinstance(item, dict) or not isinstance(item.get("container_id"), str) \
                    or not isinstance(item.get("ifname"), str):
                raise AttachError("invalid", "valid attachments must be objects with container_id and ifname")
            keep.add((item["container_id"], item["ifname"]))
        removed: dict[str, list] = {"attachments": [], "links": [], "vports": []}
        with self._lock.exclusive():
            with self._busy_guard:
                busy = set(self._busy)
            ports = self._ports()
            for port in ports:
                key = (port.container_id, port.external_ids.get(EXT_CONTAINER_IFNAME, ""))
                if port.external_ids.get(EXT_OWNER, "cni") != owner or key in keep or key in busy:
                    continue
                if network is not None and port.external_ids.get(EXT_NETWORK, "") != network:
                    continue
                self._teardown(port)
                removed["attachments"].append(self._describe(port))
            live = {p.ifname for p in self._ports()}
            busy_links = {link_names(c, i)[0] for c, i in busy}
            for name in self.links.list_names():
                if name not in live and name not in busy_links:
                    self.links.delete(name)
                    removed["links"].append(name)
            known = {p.vport_id for p in self._ports()}
            try:
                for vport in self.directory.host_vports(self.host_name):
                    ext = vport.get("external_ids") or {}
                    key = (ext.get(VP_CONTAINER, ""), ext.get(VP_IFNAME, ""))
                    if ext.get(VP_OWNER) != owner or vport["id"] in known or key in keep or key in busy:
                        continue
                    if network is not None and ext.get(VP_NETWORK, "") != network:
                        continue
                    if owner == "docker" and ext.get(VP_RESERVED):
                        continue  # IPAM reservations belong to dockerd's ReleaseAddress
                    self.directory.delete_vport(vport["id"])
                    removed["vports"].append(vport["id"])
            except DirectoryClientError as exc:
                raise _directory_error(exc) from None
        return removed

    def status(self) -> dict:
        """Readiness: the bridge exists in OVSDB and the directory answers."""
        problems = []
        try:
            self.ovs.bridge_config(self.bridge)
        except Exception as exc:
            problems.append(f"integration bridge {self.bridge}: {exc}")
        try:
            self.directory.list("/enterprises")
        except DirectoryClientError as exc:
            problems.append(f"directory: {exc.message}")
        return {"ready": not problems, "host": self.host_name, "bridge": self.bridge, "mtu": self.mtu,
                "problems": problems}

    # Docker: IPAM reservations and network bindings ---------------------------------------

    def resolve(self, enterprise: str, domain: str, zone: str, subnet: str) -> dict:
        """The directory objects a network spec names (for the Docker plugin)."""
        try:
            return self.directory.resolve_subnet(enterprise, domain, zone, subnet)
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None

    def subnets_by_cidr(self, cidr: str) -> list[dict]:
        """Directory subnets whose CIDR is ``cidr`` (any enterprise)."""
        try:
            wanted = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise AttachError("invalid", f"invalid CIDR {cidr!r}") from None
        found = []
        try:
            for ent in self.directory.list("/enterprises"):
                for dom in self.directory.list(f"/enterprises/{ent['id']}/domains"):
                    for zon in self.directory.list(f"/domains/{dom['id']}/zones"):
                        for sub in self.directory.list(f"/zones/{zon['id']}/subnets"):
                            if ipaddress.ip_network(sub["cidr"], strict=False) == wanted:
                                found.append(sub)
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None
        return found

    def get_subnet(self, subnet_id: str) -> dict:
        try:
            sub = self.directory.get("subnets", subnet_id)
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None
        if sub is None:
            raise AttachError("not_found", f"subnet {subnet_id} not found")
        return sub

    def reserve(self, subnet_id: str, name: str, ip: str = "") -> dict:
        """Create an unbound vport (an IPAM reservation) in ``subnet_id``; ``ip`` to ask for one."""
        fields = {"name": name, "type": "container", "host": self.host_name,
                  "external_ids": {VP_OWNER: "docker", VP_RESERVED: "1", VP_HOST: self.host_name}}
        if ip:
            fields["ip"] = ip
        try:
            return self.directory.create_vport(subnet_id, fields)
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None

    def find_reservation(self, subnet_id: str, ip: str) -> dict | None:
        try:
            for vport in self.directory.list_vports(subnet_id):
                if vport.get("ip") == ip and (vport.get("external_ids") or {}).get(VP_RESERVED):
                    return vport
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None
        return None

    def release(self, subnet_id: str, ip: str) -> dict:
        """Delete the reservation holding ``ip`` in ``subnet_id``; idempotent."""
        vport = self.find_reservation(subnet_id, ip)
        if vport is None:
            return {"released": None}
        for port in self._ports():
            if port.vport_id == vport["id"]:
                raise AttachError("conflict", f"address {ip} is still attached to {port.container_id}")
        try:
            self.directory.delete_vport(vport["id"])
        except DirectoryClientError as exc:
            raise _directory_error(exc) from None
        return {"released": vport["id"]}

    def _bridge_ids(self) -> dict:
        try:
            return dict(self.ovs.bridge_config(self.bridge)["external_ids"])
        except Exception as exc:
            raise AttachError("unavailable", f"local OVSDB: {exc}") from None

    def set_network(self, network_id: str, subnet_id: str) -> None:
        """Remember a Docker network's subnet in the bridge's external_ids (survives restarts)."""
        if not CONTAINER_ID_RE.match(network_id or ""):
            raise AttachError("invalid", f"invalid network id {network_id!r}")
        try:
            self.ovs.api.db_set("Bridge", self.bridge,
                                ("external_ids", {DOCKER_NET_PREFIX + network_id: subnet_id})
                                ).execute(check_error=True)
        except Exception as exc:
            raise AttachError("unavailable", f"local OVSDB: {exc}") from None

    def get_network(self, network_id: str) -> str | None:
        return self._bridge_ids().get(DOCKER_NET_PREFIX + network_id)

    def delete_network(self, network_id: str) -> None:
        try:
            self.ovs.api.db_remove("Bridge", self.bridge, "external_ids",
                                   DOCKER_NET_PREFIX + network_id).execute(check_error=True)
        except Exception as exc:
            raise AttachError("unavailable", f"local OVSDB: {exc}") from None
