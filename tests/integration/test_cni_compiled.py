"""The compiled ``nuage-cni`` (``launcher install --compiled``, plugins/cni_fast.c).

Every CNI conformance test of test_cni.py runs again here with the compiled executable
(imported below, same assertions), and two more show which path it takes: the agent's
``/v1/cni`` when the agent answers (a build whose Python fallback does not exist still
attaches), the Python plugin when it does not (same error as the Python plugin).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from nuage_ryu.plugins import launcher
from tests.attach_helpers import run_cni

# The conformance tests and their fixtures (lab, clean, containers), collected and run again here.
from tests.integration.test_cni import *  # noqa: F403

pytestmark = pytest.mark.integration

if shutil.which("cc") is None and shutil.which("gcc") is None:  # pragma: no cover - the lab machines have one
    pytest.skip("no C compiler: the compiled nuage-cni cannot be built", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def compiled_cni():
    """The compiled nuage-cni (with its Python fallback) as the executable every test runs."""
    bin_dir = tempfile.mkdtemp(prefix="nr-cnic-")
    paths = launcher.install(bin_dir, ["nuage-cni"], compiled=True)
    binary = os.path.join(bin_dir, "nuage-cni")
    assert paths == [binary, os.path.join(bin_dir, launcher.COMPILED_FALLBACK)]
    with open(binary, "rb") as f:
        assert f.read(4) == b"\x7fELF"  # really compiled, not the launcher script
    old = os.environ.get("NUAGE_TEST_CNI")
    os.environ["NUAGE_TEST_CNI"] = binary
    try:
        yield binary
    finally:
        if old is None:
            os.environ.pop("NUAGE_TEST_CNI", None)
        else:
            os.environ["NUAGE_TEST_CNI"] = old
        shutil.rmtree(bin_dir, ignore_errors=True)


@pytest.fixture
def without_fallback(tmp_path):
    """A build whose Python fallback does not exist: whatever succeeds went through the agent."""
    binary = tmp_path / "nuage-cni"
    source = os.path.join(os.path.dirname(launcher.__file__), "cni_fast.c")
    subprocess.run([shutil.which("cc") or shutil.which("gcc"), "-O2", '-DFALLBACK_PYTHON="/nonexistent/python"',
                    '-DFALLBACK_SCRIPT="/nonexistent/nuage-cni-python"', "-o", str(binary), source], check=True)
    return str(binary)


def test_the_agent_runs_the_call_when_it_answers(clean, containers, without_fallback):
    host = clean
    ns = containers()
    rc, out = run_cni("ADD", host.conf, "ctr-fast", ns, binary=without_fallback)
    assert rc == 0, out
    assert out["ips"][0]["address"].startswith("10.") and out["interfaces"][1]["sandbox"] == ns
    rc, out = run_cni("ADD", dict(host.conf, subnet="no-such-subnet"), "ctr-fast2", ns, ifname="eth1",
                      binary=without_fallback)
    assert rc == 1 and out["code"] == 7, out  # the Python plugin's error, computed in the agent
    rc, out = run_cni("DEL", host.conf, "ctr-fast", ns, binary=without_fallback)
    assert rc == 0 and out is None


def test_an_unreachable_agent_falls_back_to_the_python_plugin(clean, containers, compiled_cni):
    host = clean
    ns = containers()
    conf = dict(host.conf, agent_socket=os.path.join(host.directory.state_dir, "no-agent-here.sock"))
    rc, out = run_cni("ADD", conf, "ctr-nobody", ns)
    assert rc == 1 and out["code"] == 11, out  # try again later: what the Python plugin answers
    rc, out = run_cni("ADD", conf, "ctr-nobody", ns, binary=os.path.join(os.path.dirname(compiled_cni),
                                                                          launcher.COMPILED_FALLBACK))
    assert rc == 1 and out["code"] == 11, out  # the same as its fallback run directly
