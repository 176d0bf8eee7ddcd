"""AttachService rollback: a failure at every step of an attach leaves nothing behind.

Real directory, real OVS (own netns), real veth and container namespaces; the
failure itself is injected by wrapping one method of a real dependency (the
wrapped method may first do its real work, then fail, like a crash right after it).
"""

from __future__ import annotations

import os

import pytest

from nuage_ryu.agent.attach.errors import AttachError
from nuage_ryu.agent.attach.links import LinkError, LinkOps, link_names
from nuage_ryu.agent.attach.request import AttachRequest
from nuage_ryu.agent.attach.service import AttachService
from nuage_ryu.directory.client import CannotConnect, DirectoryClient
from nuage_ryu.hostovs.host import HostOVS, HostOVSError
from tests.attach_helpers import directory_service, host_state, make_network, ns_exec, prepare_bridge
from tests.ovs_fixtures import namespace, private_ovs, unique_netns_name

pytestmark = pytest.mark.integration
HOST = "rollback-host"
EMPTY = {"ports": [], "links": [], "vports": []}


class Failing:
    """Proxy of ``target`` whose ``method`` raises ``exc`` (after running for real when ``after``)."""

    def __init__(self, target, method: str, exc: Exception, after: bool = False):
        self._target, self._method, self._exc, self._after = target, method, exc, after
        self.calls = 0

    def __getattr__(self, name):
        real = getattr(self._target, name)
        if name != self._method:
            return real

        def fail(*args, **kwargs):
            self.calls += 1
            if self._after:
                real(*args, **kwargs)
            raise self._exc
        return fail


@pytest.fixture(scope="module")
def env():
    with directory_service() as directory, private_ovs() as ovs:
        make_network(directory)
        prepare_bridge(ovs)
        hostovs = HostOVS(ovs.db_remote)
        try:
            yield directory, ovs, hostovs
        finally:
            hostovs.close()


@pytest.fixture
def container():
    with namespace(unique_netns_name("nrc")) as name:
        yield name


def _service(directory, hostovs, links, up=lambda vport_id, timeout: True):
    return AttachService(directory, hostovs, links, host_name=HOST, wait_vport_up=up, up_timeout=2)


def _request(ns: str, **kw) -> AttachRequest:
    fields = dict(container_id="ctr-rb", ifname="eth0", netns=f"/var/run/netns/{ns}", enterprise="acme",
                  domain="prod", zone="web", subnet="web-net")
    fields.update(kw)
    return AttachRequest(**fields)


CASES = [
    # (label, which dependency, method, exception, after real work, expected error kind)
    ("directory down on create", "directory", "create_vport", CannotConnect("down"), False,
     "unavailable"),
    ("vport created then directory fails", "directory", "create_vport", CannotConnect("lost reply"),
     True, "unavailable"),
    ("veth creation fails", "links", "create_veth", LinkError("no veth"), False, "failed"),
    ("veth made then failure", "links", "create_veth", LinkError("late"), True, "failed"),
    ("configuring the netns fails", "links", "configure", LinkError("no address"), False, "failed"),
    ("configured in netns then failure", "links", "configure", LinkError("late"), True, "failed"),
    ("OVSDB refuses the port", "ovs", "add_vport_ports", HostOVSError("refused"), False, "unavailable"),
    ("port added then OVSDB fails", "ovs", "add_vport_ports", HostOVSError("late"), True, "unavailable"),
    ("no ofport", "ovs", "wait_for_ofport", HostOVSError("no ofport"), False, "timeout"),
]


@pytest.mark.parametrize("label,which,method,exc,after,kind", CASES, ids=[c[0] for c in CASES])
def test_failure_at_each_step_leaves_nothing(env, container, label, which, method, exc, after, kind):
    directory, ovs, hostovs = env
    deps = {"directory": directory, "ovs": hostovs, "links": LinkOps(ovs.netns)}
    deps[which] = Failing(deps[which], method, exc, after)
    service = _service(deps["directory"], deps["ovs"], deps["links"])
    with pytest.raises(AttachError) as err:
        service.attach(_request(container))
    assert err.value.kind == kind, err.value.message
    assert deps[which].calls == 1
    if after and which == "directory":
        # The lost-reply vport is unknown to the service: GC is what removes it.
        assert len(host_state(ovs, directory, HOST)["vports"]) == 1
        _service(directory, hostovs, LinkOps(ovs.netns)).gc([])
    assert host_state(ovs, directory, HOST) == EMPTY, label
    assert ns_exec(container, "ip", "link", "show", "eth0").returncode != 0
    # The same attach then succeeds and detaches cleanly.
    service = _service(directory, hostovs, LinkOps(ovs.netns))
    assert service.attach(_request(container))["status"] == "up"
    service.detach("ctr-rb", "eth0")
    assert host_state(ovs, directory, HOST) == EMPTY


def test_vport_never_up_is_rolled_back(env, container):
    directory, ovs, hostovs = env
    service = _service(directory, hostovs, LinkOps(ovs.netns), up=lambda vport_id, timeout: False)
    with pytest.raises(AttachError) as err:
        service.attach(_request(container))
    assert err.value.kind == "timeout" and "did not become up" in err.value.message
    assert host_state(ovs, directory, HOST) == EMPTY
    assert ns_exec(container, "ip", "link", "show", "eth0").returncode != 0


def test_default_wait_reads_directory_status(env, container):
    """Without an injected signal the service waits for the vport's status in the directory."""
    directory, ovs, hostovs = env
    service = AttachService(directory, hostovs, LinkOps(ovs.netns), host_name=HOST, up_timeout=0.3)
    with pytest.raises(AttachError) as err:
        service.attach(_request(container))
    assert err.value.kind == "timeout"
    assert host_state(ovs, directory, HOST) == EMPTY


def test_bad_requests_change_nothing(env, container):
    directory, ovs, hostovs = env
    service = _service(directory, hostovs, LinkOps(ovs.netns))
    bad = [
        dict(container_id=""), dict(container_id="a b"), dict(ifname=""), dict(ifname="x" * 16),
        dict(ifname="a/b"), dict(netns="relative"), dict(netns="/var/run/netns/nope"), dict(subnet=""),
        dict(zone=""), dict(enterprise="nope"), dict(policygroups=["nope"]), dict(owner="kubelet"),
        dict(vport_id="00000000-0000-0000-0000-000000000000"),
    ]
    for change in bad:
        with pytest.raises(AttachError) as err:
            service.attach(_request(container, **change))
        assert err.value.kind in ("invalid", "not_found"), (change, err.value.message)
        assert host_state(ovs, directory, HOST) == EMPTY, change
    for body in ({"container_id": 5}, {"bogus": "x"}, [], {"policygroups": "web"}, {"wait_up": "yes"}):
        with pytest.raises(AttachError):
            AttachRequest.from_dict(body)


def test_directory_unreachable(env, container):
    _directory, ovs, hostovs = env
    down = DirectoryClient("unix:/tmp/nuage-no-directory.sock", "t", timeout=1, keep_alive=False)
    service = _service(down, hostovs, LinkOps(ovs.netns))
    with pytest.raises(AttachError) as err:
        service.attach(_request(container))
    assert err.value.kind == "unavailable" and "unreachable" in err.value.message
    assert host_state(ovs, _directory, HOST) == EMPTY


def test_rollback_reports_what_it_could_not_undo(env, container):
    directory, ovs, hostovs = env
    broken = Failing(Failing(directory, "delete_vport", CannotConnect("gone")), "x", Exception())
    links = Failing(LinkOps(ovs.netns), "configure", LinkError("no address"))
    service = _service(broken, hostovs, links)
    with pytest.raises(AttachError) as err:
        service.attach(_request(container))
    assert "rollback incomplete: delete vport" in err.value.message
    # Everything else was undone; GC (directory back) removes the vport.
    state = host_state(ovs, directory, HOST)
    assert state["ports"] == [] and state["links"] == [] and len(state["vports"]) == 1
    _service(directory, hostovs, LinkOps(ovs.netns)).gc([])
    assert host_state(ovs, directory, HOST) == EMPTY
    assert os.path.exists(f"/var/run/netns/{container}")


def test_leftover_host_veth_is_replaced(env, container):
    """A crash between "veth created" and "OVS port added" leaves the host end behind: the next ADD copes."""
    directory, ovs, hostovs = env
    host_if, peer = link_names("ctr-rb", "eth0")
    ovs.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer])
    service = _service(directory, hostovs, LinkOps(ovs.netns))
    result = service.attach(_request(container))
    assert result["host_ifname"] == host_if
    assert host_state(ovs, directory, HOST)["links"] == [host_if]
    service.detach("ctr-rb", "eth0")
    assert host_state(ovs, directory, HOST) == EMPTY


def test_docker_bind_rolled_back_restores_the_reservation(env):
    """Binding an IPAM reservation (Docker) fails late: the vport is back to an unbound reservation."""
    directory, ovs, hostovs = env
    service = _service(directory, hostovs, LinkOps(ovs.netns))
    subnet = service.docker.resolve("acme", "prod", "web", "web-net")["subnet"]
    reserved = service.docker.reserve(subnet["id"], "docker-test")
    failing = _service(directory, Failing(hostovs, "add_vport_ports", HostOVSError("refused"), after=True),
                       LinkOps(ovs.netns))
    with pytest.raises(AttachError):
        failing.attach(AttachRequest(container_id="ep1", ifname="eth", owner="docker",
                                     vport_id=reserved["id"], policygroups=["web"]))
    vport = directory.get_vport(reserved["id"])
    assert vport["external_ids"] == reserved["external_ids"] and vport["policygroups"] == []
    state = host_state(ovs, directory, HOST)
    assert state["ports"] == [] and state["links"] == [] and state["vports"] == [reserved["id"]]
    # Bound for real, then detached: unbound again; the reservation is released by IPAM only.
    result = service.attach(AttachRequest(container_id="ep1", ifname="eth", owner="docker",
                                          vport_id=reserved["id"]))
    bound = directory.get_vport(reserved["id"])
    assert result["peer_ifname"] and bound["external_ids"]["nuage-container-id"] == "ep1"
    with pytest.raises(AttachError) as err:
        service.docker.release(subnet["id"], reserved["ip"])
    assert err.value.kind == "conflict"
    service.detach("ep1", "eth")
    assert "nuage-container-id" not in directory.get_vport(reserved["id"])["external_ids"]
    assert service.docker.release(subnet["id"], reserved["ip"]) == {"released": reserved["id"]}
    assert host_state(ovs, directory, HOST) == EMPTY
