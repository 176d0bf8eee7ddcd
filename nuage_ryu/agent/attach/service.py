"""The per-host attach service: wires a container interface onto the overlay.

The VRS agent hosts one ``AttachService`` behind its local unix socket (see
server.py, built by factory.py); the CNI and Docker plugins are thin clients of it.
An attach is a sequence of steps, each paired with its undo (steps.py):

1. the vport in the directory (created, or a Docker IPAM reservation bound),
2. the veth pair in the switch's namespace (``nr…`` host end, ``nc…`` peer),
3. CNI: the peer moved into the container namespace, renamed, MAC/IP/MTU/default route set, up,
4. the OVS port on the integration bridge with the external_ids contract (hostovs/contract.py),
5. its ofport, then the vport's ``up`` (flows installed by the agent).

If any step fails, the steps done so far are undone in reverse, so a failed
attach leaves no veth, OVSDB row or vport behind.

Concurrent requests (a burst of ADDs, a node drain) run in parallel threads, and
the steps that are one transaction each share it (batch.py): the OVS port rows of
every attach (and detach) that arrives within ``batch_window`` are committed in
one OVSDB transaction, and their vports are created (deleted) in one directory
bulk request when the directory has the bulk API (bulk.py; else one call each);
the agent's worker turns all of their vports into one flow bundle and one status
write. Each caller keeps its own steps, result, error and rollback: a batch the
database refuses is retried item by item, so the bad item fails alone. Every
attach and detach is timed by phase (timing.py).

There is no state in process memory: an attachment *is* its OVS port (external_ids) plus its vport, so the
service can be restarted at any time and finds everything again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import functools
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from nuage_ryu.agent.attach.batch import Coalescer, each_alone
from nuage_ryu.agent.attach.bulk import BulkVPorts
from nuage_ryu.agent.attach.docker_ipam import DockerBindings
from nuage_ryu.agent.attach.errors import AttachError, as_attach_error, directory_errors, ovsdb_errors
from nuage_ryu.agent.attach.links import LinkError, LinkOps, link_names, open_netns
from nuage_ryu.agent.attach.locks import KeyedLocks, SharedExclusiveLock
from nuage_ryu.agent.attach.request import (
    VP_CONTAINER,
    VP_HOST,
    VP_IFNAME,
    VP_NETWORK,
    VP_OWNER,
    VP_RESERVED,
    AttachRequest,
    check_container_id,
    check_ids,
    check_ifname,
    check_owner,
)
from nuage_ryu.agent.attach.steps import Rollback
from nuage_ryu.agent.attach.timing import PhaseObserver, PhaseTimes
from nuage_ryu.directory.client import CannotConnect, DirectoryClient
from nuage_ryu.directory.errors import Conflict, DirectoryError, NotFound, ValidationError
from nuage_ryu.hostovs.contract import (
    EXT_ADDRESS,
    EXT_CONTAINER_ID,
    EXT_CONTAINER_IFNAME,
    EXT_GATEWAY,
    EXT_MAC,
    EXT_NETNS,
    EXT_NETWORK,
    EXT_OWNER,
    EXT_PEER,
    EXT_SUBNET,
    VPortPort,
    vport_port,
)
from nuage_ryu.hostovs.host import VPortSpec

VXLAN_OVERHEAD = 50
RESOLVE_TTL = 5.0  # seconds a network's (enterprise, domain, zone, subnet) -> subnet lookup is reused
# Seconds the first of concurrent requests waits for others to share its OVSDB transaction. Short:
# a batch that is being committed collects the next arrivals anyway (group commit).
BATCH_WINDOW = 0.002
DIRECTORY_CONCURRENCY = 2  # bulk directory requests in flight at once (batch.py: pipelining)
ADD_PORT, DELETE_PORT = "add", "delete"  # the two kinds of port row change (one transaction for both)

if TYPE_CHECKING:  # an annotation only: the service needs just the methods (tests hand in proxies)
    from nuage_ryu.hostovs.host import HostOVS



class _SubnetCache:
    """Recent network -> subnet lookups: a burst of ADDs names the same network."""

    def __init__(self, ttl: float = RESOLVE_TTL, size: int = 256) -> None:
        self.ttl, self.size = ttl, size
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, dict]] = {}

    def get(self, key: tuple, lookup: Callable[[], dict]) -> dict:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = lookup()
        with self._lock:
            if len(self._entries) > self.size:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value

    def forget(self, key: tuple) -> None:
        with self._lock:
            self._entries.pop(key, None)


def describe(port: VPortPort, vport: dict | None = None) -> dict:
    """An attachment as the agent socket reports it, from its OVS port (and its vport's status)."""
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


class AttachService:
    """Attach/detach container interfaces on one host. Thread-safe.

    directory: a ``DirectoryClient`` (per-request connections, since many threads share it).
    ovs: a ``HostOVS`` (add_vport_port, delete_vport_port, list_vport_ports, wait_for_ofport,
    interface_config, bridge_config, api).
    links: a ``LinkOps`` working in the namespace of the switch's ports.
    wait_vport_up(vport_id, timeout) -> bool: the agent's "flows installed" signal;
    default: poll the vport's status in the directory.
    ``docker``: the Docker IPAM reservations and network bindings of this host.
    flows_confirmed_at(vport_id) -> monotonic time the agent confirmed the vport's flows (None:
    unknown); splits the wait for ``up`` into the ``flows`` and ``status`` phases.
    observe: called with every attach/detach's phase timings (the agent's Prometheus histogram).
    """

    def __init__(self, directory: DirectoryClient, ovs: HostOVS, links: LinkOps | None = None, *,
                 bridge: str = "br-int",
                 host_name: str, underlay_mtu: int = 1500,
                 wait_vport_up: Callable[[str, float], bool] | None = None,
                 up_timeout: float = 10.0, dns: dict | None = None,
                 flows_confirmed_at: Callable[[str], float | None] | None = None,
                 observe: PhaseObserver | None = None, batch_window: float = BATCH_WINDOW) -> None:
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
        self.docker = DockerBindings(directory, ovs, bridge=bridge, host_name=host_name, ports=self._ports)
        self._lock = SharedExclusiveLock()   # shared: attach/detach; exclusive: GC
        self._busy = KeyedLocks()            # (container id, ifname) being worked on
        self._subnets = _SubnetCache()
        self.flows_confirmed_at = flows_confirmed_at
        self.observe = observe
        self._in_flight = 0  # attaches and detaches running now: the batch window is waited only if > 1
        self._in_flight_lock = threading.Lock()

        def crowded() -> bool:
            return self._in_flight > 1

        # The port rows of attaches *and* detaches share a transaction: each one is a full
        # reconfiguration of ovs-vswitchd, and a host in churn has both in flight.
        self._port_changes = Coalescer(self._change_ports, window=batch_window, crowded=crowded)
        # A detach removes its OVS port row and its veth at once (the kernel's veth delete is
        # tens of ms of RCU waits, not CPU): the veth goes on one of these threads.
        self._veth_deleter = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                                   thread_name_prefix="veth-delete")
        self._bulk = BulkVPorts(directory)
        # Creates and deletes have queues of their own: in one queue (one bulk request for both)
        # an ADD's create waited behind the DELs' deletes, +20 ms per ADD in churn (docs/cni.md).
        self._vport_creates = Coalescer(self._bulk.create, window=batch_window, crowded=crowded,
                                        concurrency=DIRECTORY_CONCURRENCY)
        self._vport_deletes = Coalescer(self._bulk.delete, window=batch_window, crowded=crowded,
                                        concurrency=DIRECTORY_CONCURRENCY)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    # Batched directory steps (one bulk request for all concurrent callers) -----------

    def _create_vport_row(self, subnet_id: str, fields: dict) -> dict:
        if not self._bulk.supported():  # no bulk API: each caller's own call, in parallel
            return self.directory.create_vport(subnet_id, fields)
        return self._vport_creates.submit((subnet_id, fields))

    def _delete_vport_row(self, vport_id: str) -> bool:
        if not self._bulk.supported():
            return self.directory.delete_vport(vport_id)
        return self._vport_deletes.submit(vport_id)

    # Batched OVSDB steps (one transaction for all concurrent callers) ---------------

    def _change_ports(self, changes: list[tuple[str, VPortSpec | str]]) -> list:
        """(ADD_PORT, spec) and (DELETE_PORT, ifname) changes in one transaction; refused (or one
        name both added and removed): each one alone, in order, so the bad one fails alone."""
        adds = [item for op, item in changes if op == ADD_PORT]
        deletes = [item for op, item in changes if op == DELETE_PORT]
        if not {spec.ifname for spec in adds} & set(deletes):
            try:
                if not deletes:
                    self.ovs.add_vport_ports(self.bridge, adds)
                elif not adds:
                    self.ovs.delete_vport_ports(self.bridge, deletes)
                else:
                    self.ovs.change_vport_ports(self.bridge, adds, deletes)
                return [None] * len(changes)
            except Exception as exc:
                if len(changes) == 1:
                    return [exc]
        return each_alone(changes, self._change_port)

    def _change_port(self, change: tuple[str, VPortSpec | str]) -> None:
        op, item = change
        if op == ADD_PORT:
            self.ovs.add_vport_ports(self.bridge, [item])
        else:
            self.ovs.delete_vport_ports(self.bridge, [item])

    def _add_ports(self, specs: list[VPortSpec]) -> list:
        """The outcomes of adding the port rows ``specs`` as one batch (as concurrent attaches would)."""
        return self._change_ports([(ADD_PORT, spec) for spec in specs])

    def _delete_ports(self, ifnames: list[str]) -> list:
        """The outcomes of removing the port rows ``ifnames`` as one batch (absent ones are skipped)."""
        return self._change_ports([(DELETE_PORT, name) for name in ifnames])

    def _delete_port(self, ifname: str) -> None:
        self._port_changes.submit((DELETE_PORT, ifname))

    def _observed(self, times: PhaseTimes, outcome: str) -> None:
        if self.observe is not None:
            try:
                self.observe(times.operation, dict(times.phases), times.total(), outcome)
            except Exception:  # metrics never fail a request
                pass
    # Helpers -----------------------------------------------------------------------

    def _poll_directory_up(self, vport_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            vport = self.directory.get_vport(vport_id)
            if vport is not None and vport.get("status") == "up":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _ports(self) -> list[VPortPort]:
        with ovsdb_errors():
            return self.ovs.list_vport_ports(self.bridge)

    def _find(self, container_id: str, ifname: str | None = None) -> list[VPortPort]:
        """The OVS ports of a container (of one interface: a lookup by its derived port name)."""
        if ifname is None:
            return [p for p in self._ports() if p.container_id == container_id]
        host_if = link_names(container_id, ifname)[0]
        with ovsdb_errors():
            row = self.ovs.interface_config(host_if)
        port = None if row is None else vport_port(host_if, row["ofport"], row["external_ids"])
        if port is None or port.external_ids.get(EXT_CONTAINER_ID) != container_id \
                or port.external_ids.get(EXT_CONTAINER_IFNAME) != ifname:
            return []
        return [port]

    def _get_vport(self, vport_id: str) -> dict | None:
        with directory_errors():
            return self.directory.get_vport(vport_id)

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

    # Attach ------------------------------------------------------------------------

    def attach(self, req: AttachRequest) -> dict:
        """Attach one interface; returns the attachment (see ``describe``) plus ``mtu``/``dns``.

        Idempotent: the same (container id, ifname) returns the existing attachment.
        """
        req.validate()
        self._settle_checksum_offload()
        times = PhaseTimes("attach")
        try:
            with self._counted():
                result = self._attach(req, times)
        except AttachError as exc:
            self._observed(times, exc.kind)
            raise
        self._observed(times, "ok")
        result["timings"] = times.as_ms()
        return result

    def _attach(self, req: AttachRequest, times: PhaseTimes) -> dict:
        with self._busy.hold((req.container_id, req.ifname)):
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
            rollback = Rollback()
            with self._lock.shared():
                if req.netns:
                    if not os.path.exists(req.netns):
                        raise AttachError("invalid", f"network namespace {req.netns} does not exist")
                    try:  # a FIFO or any other file: refused at once, never waited on
                        os.close(open_netns(req.netns))
                    except LinkError as exc:
                        raise AttachError("invalid", str(exc)) from None
                    if self.links.has_interface(req.netns, req.ifname) and not self._drop_unfinished(req):
                        raise AttachError("conflict", f"interface {req.ifname} already exists in {req.netns}")
                try:
                    result = self._attach_steps(req, rollback, times)
                except BaseException as exc:
                    raise self._rolled_back(exc, rollback) from None
            # Waiting for the flows does not hold the global lock: other attaches proceed.
            try:
                if req.wait_up and not self._wait_up(result["vport_id"], times):
                    raise AttachError("timeout", f"vport {result['vport_id']} did not become up within "
                                                 f"{self.up_timeout:g}s (is the VRS agent connected to "
                                                 f"{self.bridge}?)")
            except BaseException as exc:
                with self._lock.shared():
                    raise self._rolled_back(exc, rollback) from None
            result["status"] = "up" if req.wait_up else "down"
            return result

    def _wait_up(self, vport_id: str, times: PhaseTimes) -> bool:
        """Wait for the vport's ``up``; its time is the ``flows`` phase, then ``status`` when known."""
        start = time.monotonic()
        up = self.wait_vport_up(vport_id, self.up_timeout)
        end = time.monotonic()
        confirmed = self.flows_confirmed_at(vport_id) if self.flows_confirmed_at and up else None
        if confirmed is None:
            times.add("flows", end - start)
        else:
            confirmed = min(max(confirmed, start), end)
            times.add("flows", confirmed - start)
            times.add("status", end - confirmed)
        return up

    def _drop_unfinished(self, req: AttachRequest) -> bool:
        """Remove what an attach of ``req`` that never finished (agent killed) left; True if it was that.

        Its host end still exists but has no OVS port (else ``_find`` had found it): the interface
        in the container is its veth peer, ours, and goes with it.
        """
        host_if = link_names(req.container_id, req.ifname)[0]
        if not self.links.exists(host_if):
            return False
        self.links.delete(host_if)
        return not self.links.has_interface(req.netns, req.ifname)

    @staticmethod
    def _rolled_back(exc: BaseException, rollback: Rollback) -> AttachError:
        """Undo the steps done; the error of ``exc``, saying what could not be undone."""
        leftovers = rollback.undo()
        err = as_attach_error(exc)
        if leftovers:
            err = AttachError(err.kind, err.message + "; rollback incomplete: " + "; ".join(leftovers))
        return err

    def _attach_steps(self, req: AttachRequest, rollback: Rollback, times: PhaseTimes) -> dict:
        host_if, peer = link_names(req.container_id, req.ifname)
        # 1. vport
        with times.phase("directory"):
            vport, subnet, pg_ids = (self._bind_vport if req.vport_id else self._create_vport)(req, rollback)
        prefix = ipaddress.ip_network(subnet["cidr"], strict=False).prefixlen
        address = f"{vport['ip']}/{prefix}"
        gateway = vport.get("gateway") or subnet.get("gateway", "")
        # 2. veth, the peer created in the container namespace under its final name and MAC
        #    (undo registered first: deleting is idempotent, and a half-made pair must go too)
        with times.phase("veth"):
            host_mac = rollback.guarded_step("delete veth",
                                             lambda: self._create_veth(req, host_if, peer, vport),
                                             lambda: self.links.delete(host_if))
        # 3. container side: address, default route, up (undone with the veth)
        if req.netns:
            with times.phase("netns"):
                self.links.configure(req.netns, req.ifname, address, gateway or None)
        # 4. OVS port
        extra = {EXT_CONTAINER_IFNAME: req.ifname, EXT_NETNS: req.netns, EXT_OWNER: req.owner,
                 EXT_NETWORK: req.network, EXT_ADDRESS: address, EXT_GATEWAY: gateway, EXT_MAC: vport["mac"],
                 EXT_SUBNET: subnet["id"]}
        if not req.netns:
            extra[EXT_PEER] = peer

        spec = VPortSpec(host_if, vport["id"], req.container_id, extra_ids=extra)

        def add_port() -> None:
            with ovsdb_errors():
                self._port_changes.submit((ADD_PORT, spec))  # one transaction with the concurrent ones

        with times.phase("ovsdb"):
            rollback.guarded_step("delete OVS port", add_port, lambda: self._delete_port(host_if))
            # 5. ofport
            with ovsdb_errors(f"OVS port {host_if}", kind="timeout"):
                ofport = self.ovs.wait_for_ofport(host_if, self.up_timeout)
        return {
            "container_id": req.container_id, "ifname": req.ifname, "netns": req.netns, "owner": req.owner,
            "host_ifname": host_if, "host_mac": host_mac,
            "peer_ifname": "" if req.netns else peer, "ofport": ofport,
            "vport_id": vport["id"], "subnet_id": subnet["id"], "address": address,
            "ip": vport["ip"], "gateway": gateway, "mac": vport["mac"], "mtu": self.mtu,
            "policygroups": pg_ids, "dns": self.dns,
        }

    def _bind_vport(self, req: AttachRequest, rollback: Rollback) -> tuple[dict, dict, list[str]]:
        """Step 1 (Docker): bind the reserved vport ``req.vport_id``; undo: restore it as it was."""
        directory = self.directory
        vport = directory.get_vport(req.vport_id)
        if vport is None:
            raise AttachError("not_found", f"vport {req.vport_id} not found")
        ext = dict(vport.get("external_ids") or {})
        if ext.get(VP_CONTAINER) not in (None, "", req.container_id):
            raise AttachError("conflict", f"vport {req.vport_id} is bound to {ext[VP_CONTAINER]}")
        subnet = directory.find("subnets", vport["subnet"]) or {}
        pg_ids = directory.resolve_policygroups(vport["domain"], req.policygroups) \
            if req.policygroups else list(vport.get("policygroups", []))
        old = {"external_ids": ext, "policygroups": list(vport.get("policygroups", [])),
               "host": vport.get("host", "")}
        bound = {"external_ids": dict(ext, **req.vport_binding(self.host_name)), "policygroups": pg_ids,
                 "host": self.host_name}
        rollback.step("restore vport", lambda: directory.update_vport(req.vport_id, bound),
                      lambda _: directory.update_vport(req.vport_id, old))
        return vport, subnet, pg_ids

    def _create_vport(self, req: AttachRequest, rollback: Rollback) -> tuple[dict, dict, list[str]]:
        """Step 1 (CNI): create the vport in the subnet the request names; undo: delete it."""
        directory = self.directory
        fields = {"name": f"{req.container_id[:40]}-{req.ifname}", "type": "container",
                  "host": self.host_name, "external_ids": req.vport_binding(self.host_name)}
        if req.port_mappings:  # published with the vport, so that deleting it (DEL) leaves nothing
            fields["port_mappings"] = req.port_mappings
        for attempt in (1, 2):
            subnet = self._subnets.get(req.network_key, lambda: directory.resolve_subnet(*req.network_key))
            subnet = subnet["subnet"]
            try:
                pg_ids = directory.resolve_policygroups(subnet["domain"], req.policygroups)
                create = functools.partial(self._create_vport_row, subnet["id"], dict(fields, policygroups=pg_ids))
                vport = rollback.step("delete vport", create, lambda created: directory.delete_vport(created["id"]))
                return vport, subnet, pg_ids
            except (NotFound, ValidationError):
                # A cached subnet deleted or renamed meanwhile: look it up again, once.
                self._subnets.forget(req.network_key)
                if attempt == 2:
                    raise
            except Conflict:
                # The name is taken by the vport of an attach of this same interface that never
                # reached OVSDB (the agent was killed): it is ours, remove it and create anew, once.
                if attempt == 2 or not self._drop_orphan_vport(subnet["id"], fields["name"], req):
                    raise
            except (DirectoryError, CannotConnect):
                self._subnets.forget(req.network_key)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop_orphan_vport(self, subnet_id: str, name: str, req: AttachRequest) -> bool:
        """Delete the vport ``name`` if it is bound to ``req``'s interface on this host; True if it was."""
        binding = req.vport_binding(self.host_name)
        for vport in self.directory.list(f"/subnets/{subnet_id}/vports", name=name):
            ext = vport.get("external_ids") or {}
            ours = all(ext.get(k) == binding[k] for k in (VP_CONTAINER, VP_IFNAME, VP_HOST))
            if vport.get("name") == name and ours:
                self.directory.delete_vport(vport["id"])
                return True
        return False

    def _create_veth(self, req: AttachRequest, host_if: str, peer: str, vport: dict) -> str:
        """Step 2: the veth pair; returns the host end's MAC."""
        def create() -> str:
            return self.links.create_veth(host_if, req.ifname if req.netns else peer, self.mtu,
                                          netns=req.netns or None, peer_mac=vport["mac"])
        try:
            return create()
        except LinkError as exc:
            # EEXIST: a leftover host end of a crash between veth and OVS port; replace it once.
            if exc.errno != errno.EEXIST or not self.links.delete(host_if):
                raise
            return create()

    def _existing(self, port: VPortPort, req: AttachRequest) -> dict | None:
        """The attachment for a repeated ADD if it is complete; None if it must be rebuilt."""
        vport = self._get_vport(port.vport_id)
        if vport is None or not self.links.exists(port.ifname):
            return None
        if req.netns and (port.external_ids.get(EXT_NETNS) != req.netns
                          or not self.links.has_interface(req.netns, req.ifname)):
            return None  # the same container id in another namespace: a stale attachment
        result = describe(port, vport)
        result.update(host_mac=self.links.mac_of(port.ifname) or "", mtu=self.mtu, dns=self.dns)
        return result

    # Detach ------------------------------------------------------------------------

    def _teardown(self, port: VPortPort, times: PhaseTimes | None = None) -> None:
        """Remove one attachment: directory side first, so a directory outage leaves it retryable.

        Then its OVS port row and its veth at the same time: the kernel's veth delete is tens of
        ms of RCU waits, not CPU, and runs on a thread of its own meanwhile. (Started together
        with the directory side instead, it made the concurrent ADDs' directory step ~10 ms
        slower in churn and the DEL no faster: docs/cni.md.)
        """
        times = times or PhaseTimes("detach")
        with times.phase("directory"), directory_errors():
            if port.external_ids.get(EXT_OWNER, "cni") == "docker":
                vport = self.directory.get_vport(port.vport_id)
                if vport is not None:
                    ext = {k: v for k, v in (vport.get("external_ids") or {}).items()
                           if k not in (VP_CONTAINER, VP_IFNAME)}
                    self.directory.update_vport(port.vport_id, {"external_ids": ext})
            else:
                self._delete_vport_row(port.vport_id)  # one bulk request with the concurrent detaches'
        veth = self._veth_deleter.submit(self._timed_delete, port.ifname)
        try:
            with times.phase("ovsdb"), ovsdb_errors():
                self._delete_port(port.ifname)  # one transaction with the concurrent ones
        finally:
            seconds = veth.result()[1] if veth.exception() is None else 0.0
            times.add("veth", seconds)
        veth.result()  # a failed veth delete fails the detach (the runtime retries it)

    def _timed_delete(self, ifname: str) -> tuple[bool, float]:
        start = time.monotonic()
        return self.links.delete(ifname), time.monotonic() - start

    def detach(self, container_id: str, ifname: str = "") -> dict:
        """Remove the container's attachment(s) (all of them without ``ifname``). Idempotent."""
        check_container_id(container_id)
        if ifname:
            check_ifname(ifname)
        times = PhaseTimes("detach")
        try:
            with self._counted(), self._busy.hold((container_id, ifname or "*")), self._lock.shared():
                removed = []
                for port in self._find(container_id, ifname or None):
                    self._teardown(port, times)
                    removed.append(describe(port))
                if ifname:
                    with times.phase("veth"):
                        self.links.delete(link_names(container_id, ifname)[0])
        except AttachError as exc:
            self._observed(times, exc.kind)
            raise
        self._observed(times, "ok")
        return {"detached": removed, "timings": times.as_ms()}

    # Check, list, GC, status ----------------------------------------------------------

    def check(self, container_id: str, ifname: str, netns: str = "") -> dict:
        """Verify that the attachment is complete and as recorded; AttachError(check_failed) if not."""
        check_ids(container_id, ifname)
        ports = self._find(container_id, ifname)
        if not ports:
            raise AttachError("check_failed",
                              f"no attachment for container {container_id} interface {ifname}")
        port = ports[0]
        problems = []
        vport = self._get_vport(port.vport_id)
        if vport is None:
            problems.append(f"vport {port.vport_id} is missing from the directory")
        elif not self.wait_vport_up(port.vport_id, 0):
            problems.append(f"vport {port.vport_id} is {vport.get('status')}, not up")
        if port.ofport is None or port.ofport < 0:
            problems.append(f"OVS port {port.ifname} has no ofport")
        if not self.links.exists(port.ifname):
            problems.append(f"host interface {port.ifname} is missing")
        result = describe(port, vport)
        netns = netns or result["netns"]
        if netns and result["owner"] == "cni":
            problems += self._container_problems(netns, ifname, result)
        if problems:
            raise AttachError("check_failed", "; ".join(problems))
        result["mtu"] = self.mtu
        return result

    def _container_problems(self, netns: str, ifname: str, expected: dict) -> list[str]:
        """How the container's interface differs from the recorded attachment."""
        try:
            iface = self.links.inspect(netns, ifname)
        except LinkError as exc:
            return [str(exc), f"interface {ifname} is missing in {netns}"]
        if iface is None:
            return [f"interface {ifname} is missing in {netns}"]
        problems = []
        if expected["address"] not in iface.addresses:
            problems.append(f"{ifname} lacks address {expected['address']} (has {list(iface.addresses)})")
        if iface.mac.lower() != expected["mac"].lower():
            problems.append(f"{ifname} has MAC {iface.mac}, expected {expected['mac']}")
        if iface.mtu != self.mtu:
            problems.append(f"{ifname} has MTU {iface.mtu}, expected {self.mtu}")
        if expected["gateway"] and iface.default_gateway != expected["gateway"]:
            problems.append(f"{ifname} default route via {iface.default_gateway}, "
                            f"expected {expected['gateway']}")
        if not iface.up:
            problems.append(f"{ifname} is down")
        return problems

    def set_port_mappings(self, container_id: str, ifname: str, port_mappings: list) -> dict:
        """Publish ports of an attached interface on the host's address ([] = none; docs/external.md).

        The directory checks them (protocol, ranges, one host port once per host) and the agents'
        flows follow. Returns the vport's mappings as the directory stored them.
        """
        check_container_id(container_id)
        check_ifname(ifname)
        if not isinstance(port_mappings, list):
            raise AttachError("invalid", "port_mappings must be a list of objects")
        with self._busy.hold((container_id, ifname)), self._lock.shared():
            ports = self._find(container_id, ifname)
            if not ports:
                raise AttachError("not_found", f"no attachment {container_id}/{ifname} on this host")
            with directory_errors():
                vport = self.directory.update_vport(ports[0].vport_id, {"port_mappings": port_mappings})
        return {"vport_id": ports[0].vport_id, "port_mappings": vport.get("port_mappings", [])}

    def list_attachments(self) -> list[dict]:
        """Every attachment on this host (from OVSDB only; no directory call)."""
        return [describe(p) for p in self._ports()]

    def gc(self, valid: list[dict], owner: str = "cni", network: str | None = None) -> dict:
        """Remove ``owner``'s attachments not in ``valid`` ([{container_id, ifname}]) and leftovers.

        With ``network``, only attachments made for that (CNI) network are considered:
        a runtime sends GC per network, with that network's valid attachments only.
        Leftovers: host-end veths without an OVS port, and this host's vports of ``owner``
        (and ``network``) that no OVS port refers to (an agent crash in the middle of an attach).
        """
        check_owner(owner)
        keep = set()
        for item in valid:
            if not isinstance(item, dict) or not isinstance(item.get("container_id"), str) \
                    or not isinstance(item.get("ifname"), str):
                raise AttachError("invalid", "valid attachments must be objects with container_id and ifname")
            keep.add((item["container_id"], item["ifname"]))
        removed: dict[str, list] = {"attachments": [], "links": [], "vports": []}
        with self._lock.exclusive():
            busy = self._busy.busy()
            for port in self._ports():
                key = (port.container_id, port.external_ids.get(EXT_CONTAINER_IFNAME, ""))
                if port.external_ids.get(EXT_OWNER, "cni") != owner or key in keep or key in busy:
                    continue
                if network is not None and port.external_ids.get(EXT_NETWORK, "") != network:
                    continue
                self._teardown(port)
                removed["attachments"].append(describe(port))
            live = {p.ifname for p in self._ports()}
            busy_links = {link_names(c, i)[0] for c, i in busy}
            for name in self.links.list_names():
                if name not in live and name not in busy_links:
                    self.links.delete(name)
                    removed["links"].append(name)
            known = {p.vport_id for p in self._ports()}
            with directory_errors():
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
        except (DirectoryError, CannotConnect) as exc:
            problems.append(f"directory: {exc}")
        return {"ready": not problems, "host": self.host_name, "bridge": self.bridge, "mtu": self.mtu,
                "problems": problems,
                "batches": {"ovsdb": self._port_changes.stats(),
                            "directory_create": self._vport_creates.stats(),
                            "directory_delete": self._vport_deletes.stats(),
                            "directory_bulk_api": self._bulk.available}}
