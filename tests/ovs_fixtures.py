"""Shared pytest helpers: a private Open vSwitch instance in a temporary directory.

Use the fixtures by importing them into a test module (pytest picks up imported
fixtures)::

    from tests.ovs_fixtures import ovs, ovsdb  # noqa: F401

    def test_something(ovs):
        ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")

or use the context manager directly::

    with private_ovs() as ovs: ...

``ovsdb`` runs ovsdb-server only (enough for pure database tests, faster);
``ovs`` adds ovs-vswitchd with the userspace datapath available, inside a
network namespace of its own (``ovs.netns``): two userspace datapaths in one
namespace fight over the ``ovs-netdev`` tap device and the bridges' taps, so
sharing the root namespace with anyone else's OVS breaks bridge creation.
Create test interfaces with ``ovs.run(["ip", "link", ...])`` so they land there.
Teardown stops the daemons by pid, deletes the namespace and removes the
directory, also when the test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

from nuage_ryu.hostovs.process import OvsInstance

_netns_serial = itertools.count(1)


def unique_netns_name(prefix: str = "nrt") -> str:
    """A network namespace name no other test process uses (pid + counter)."""
    return f"{prefix}-{os.getpid()}-{next(_netns_serial)}"


@contextlib.contextmanager
def private_ovs(vswitchd: bool = True, netns: str | None = None, own_netns: bool | None = None,
                prefix: str = "nr-ovs-") -> Iterator[OvsInstance]:
    """A started OvsInstance under a fresh /tmp directory, stopped and removed on exit.

    /tmp rather than pytest's tmp_path: unix socket paths must stay short.
    ``own_netns`` (default: when ovs-vswitchd runs and no ``netns`` is given)
    creates a fresh namespace for the instance and deletes it afterwards.
    """
    if own_netns is None:
        own_netns = vswitchd and netns is None
    rundir = tempfile.mkdtemp(prefix=prefix)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, rundir, ignore_errors=True)
        if own_netns:
            netns = stack.enter_context(namespace(unique_netns_name()))
        instance = OvsInstance(rundir, netns=netns)
        # Registered before start so a half-started instance is stopped too.
        stack.callback(instance.stop)
        instance.start(vswitchd=vswitchd)
        yield instance


@pytest.fixture
def ovs() -> Iterator[OvsInstance]:
    """ovsdb-server + ovs-vswitchd in a temporary rundir."""
    with private_ovs(vswitchd=True) as instance:
        yield instance


@pytest.fixture
def ovsdb() -> Iterator[OvsInstance]:
    """ovsdb-server only, in a temporary rundir."""
    with private_ovs(vswitchd=False) as instance:
        yield instance


@contextlib.contextmanager
def namespace(name: str) -> Iterator[str]:
    """A network namespace named ``name``, deleted on exit (also on failure)."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


# Earlier name of ``namespace``, kept for modules that already import it.
netns = namespace
